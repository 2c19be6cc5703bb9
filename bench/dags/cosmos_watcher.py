"""Benchmark airflow DAG (safe mode parses files naming both words): Cosmos ExecutionMode.WATCHER as it comes,
over a generated dbt project; bench/run.py fills in the placeholders. One producer task runs ``dbt build`` in the
one-slot pool (DuckDB allows one writer per file); one deferrable sensor per node reports its result.
``OPERATOR_ARGS``: none, or the sensors' ``poke_interval``."""

import ast
from datetime import datetime
from pathlib import Path

from cosmos import DbtDag, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import PRODUCER_WATCHER_TASK_ID, ExecutionMode, LoadMode

PROJECT_DIR = Path("${project_dir}")
OPERATOR_ARGS = ast.literal_eval("${operator_args}")

dag = DbtDag(
    dag_id="${dag_id}",
    project_config=ProjectConfig(dbt_project_path=PROJECT_DIR, manifest_path=PROJECT_DIR / "target" / "manifest.json"),
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
