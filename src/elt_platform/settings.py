"""Every environment-dependent value, read in one place.

Values come from environment variables so that the same code runs on a laptop, in
CI and in the container image. Reading them is cheap and safe at DAG-parse time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    # Airflow connection that locates the warehouse; Cosmos maps it to the dbt profile.
    warehouse_conn_id: str
    # Airflow pool every warehouse writer runs in. DuckDB allows one writer per file.
    warehouse_pool: str
    # dbt target name written into the profile Cosmos generates.
    dbt_target: str
    # Python of the PyAirbyte environment that runs local syncs.
    ingestion_python: Path | None
    # Where PyAirbyte keeps one virtualenv per source connector.
    connectors_dir: Path | None
    # Retries of every task, unless overridden.
    task_retries: int

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        ingestion_python = env.get("ELT_INGESTION_PYTHON")
        connectors_dir = env.get("ELT_CONNECTORS_DIR")
        return cls(
            warehouse_conn_id=env.get("ELT_WAREHOUSE_CONN_ID", "warehouse"),
            warehouse_pool=env.get("ELT_WAREHOUSE_POOL", "warehouse"),
            dbt_target=env.get("ELT_DBT_TARGET", "local"),
            ingestion_python=Path(ingestion_python) if ingestion_python else None,
            connectors_dir=Path(connectors_dir) if connectors_dir else None,
            task_retries=int(env.get("ELT_TASK_RETRIES", "0")),
        )
