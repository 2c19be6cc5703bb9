"""Benchmark airflow DAG: the project's own transform, in its default mode, over a generated dbt project.

Built by ``elt_platform.dag_factory.build_elt_dag`` from the manifest, with nothing to
ingest (the generated sources are declared external), the warehouse connection and pool
of the benchmark, and the configuration's overrides (``project_default_per_model``: the
per-model mode); every other setting is the project's default (``Settings.from_env()``).

A template: bench/run.py substitutes the placeholders (string.Template).
"""

import ast
from dataclasses import replace
from pathlib import Path

from elt_platform.dag_factory import build_elt_dag
from elt_platform.settings import Settings

PROJECT_DIR = Path("${project_dir}")

dag = build_elt_dag(
    dag_id="${dag_id}",
    dbt_project_dir=PROJECT_DIR,
    manifest_path=PROJECT_DIR / "target" / "manifest.json",
    settings=replace(
        Settings.from_env(),
        warehouse_conn_id="${conn_id}",
        warehouse_pool="${pool}",
        **ast.literal_eval("${overrides}"),
    ),
)
