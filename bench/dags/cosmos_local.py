"""Benchmark airflow DAG: Cosmos ExecutionMode.LOCAL as it comes, over a generated dbt project.

One task per dbt node (``<model>.run`` then ``<model>.test``), each its own dbt
invocation (dbtRunner, which Cosmos picks when dbt is importable). Rendered from the
manifest. Every task is in the one-slot pool: DuckDB allows one writer per file.

A template: bench/run.py substitutes the placeholders (string.Template).
"""

from datetime import datetime
from pathlib import Path

from cosmos import DbtDag, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, LoadMode

PROJECT_DIR = Path("${project_dir}")

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
    execution_config=ExecutionConfig(execution_mode=ExecutionMode.LOCAL),
    render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST),
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"pool": "${pool}"},
)
