"""Benchmark airflow DAG: Cosmos ExecutionMode.WATCHER with every task in the pool.

As cosmos_watcher.py, but the pool is set for the whole DAG (``default_args``), so
the sensors share the producer's one slot: they start only once the producer is
done, one at a time. Not one of the default configurations: it shows what that
pool placement costs.

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
    execution_config=ExecutionConfig(execution_mode=ExecutionMode.WATCHER),
    render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST),
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"pool": "${pool}"},
)
