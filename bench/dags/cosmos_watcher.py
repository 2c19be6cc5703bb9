"""Benchmark airflow DAG: Cosmos ExecutionMode.WATCHER over a generated dbt project (as it comes, or faster sensors).

One producer task runs a single ``dbt build``; one deferrable sensor task per dbt node
reports that node's result. Rendered from the manifest. The one-slot pool holds the
producer, the one writer (DuckDB allows one writer per file); the sensors only read
the producer's results and wait in the triggerer beside it.

``OPERATOR_ARGS`` is the only difference between the configurations rendered from this
template: Cosmos's default (none) for ``cosmos_watcher``, the sensors' ``poke_interval``
for ``cosmos_watcher_poke_1s``.

A template: bench/run.py substitutes the placeholders (string.Template).
"""

import ast
from datetime import datetime
from pathlib import Path

from cosmos import DbtDag, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import PRODUCER_WATCHER_TASK_ID, ExecutionMode, LoadMode

PROJECT_DIR = Path("${project_dir}")
OPERATOR_ARGS = ast.literal_eval("${operator_args}")

dag = DbtDag(
    dag_id="${dag_id}",
    project_config=ProjectConfig(
        dbt_project_path=PROJECT_DIR,
        manifest_path=PROJECT_DIR / "target" / "manifest.json",
    ),
    profile_config=ProfileConfig(
        profile_name="${profile_name}",
        target_name="${target_name}",
        profiles_yml_filepath=PROJECT_DIR / "profiles.yml",
    ),
    execution_config=ExecutionConfig(execution_mode=ExecutionMode.WATCHER),
    render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST),
    operator_args=OPERATOR_ARGS,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
)
dag.task_dict[PRODUCER_WATCHER_TASK_ID].pool = "${pool}"
