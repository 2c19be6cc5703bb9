"""Benchmark airflow DAG (safe mode parses files naming both words): the project's own ``build_elt_dag`` over a
generated dbt project; bench/run.py fills in the placeholders. Nothing to ingest (the sources are external), the
benchmark's warehouse connection and pool, the configuration's overrides (``project_default_per_model``: the
per-model mode), the rest ``Settings.from_env()``."""

import ast
from dataclasses import replace
from pathlib import Path

from elt_platform.dag_factory import build_elt_dag
from elt_platform.settings import Settings

PROJECT_DIR = Path("${project_dir}")
OVERRIDES = ast.literal_eval("${overrides}")

dag = build_elt_dag(
    dag_id="${dag_id}",
    dbt_project_dir=PROJECT_DIR,
    manifest_path=PROJECT_DIR / "target" / "manifest.json",
    settings=replace(Settings.from_env(), warehouse_conn_id="${conn_id}", warehouse_pool="${pool}", **OVERRIDES),
)
