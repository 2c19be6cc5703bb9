"""Run real DAGs with `airflow dags test`: real connectors, real dbt, a real DuckDB file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BIN, REPO

pytestmark = pytest.mark.integration


@dataclass
class DagRunResult:
    dag_id: str
    states: dict[str, str]
    warehouse: Path
    log: Path
    returncode: int

    def with_state(self, state: str) -> set[str]:
        return {task for task, s in self.states.items() if s == state}


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow-home")
    if not Path(os.environ.get("ELT_INGESTION_PYTHON", "/missing")).exists():
        pytest.fail("ELT_INGESTION_PYTHON is not set to the PyAirbyte environment: run the suite with `make test`")
    subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"],
        env={**os.environ, "AIRFLOW_HOME": str(home)},
        check=True,
        capture_output=True,
    )
    return home


@pytest.fixture(scope="session")
def run_dag(airflow_home: Path):
    """Run one DAG to completion in ``dags_folder`` against its own warehouse file; return task states."""

    def run(dag_id: str, dags_folder: Path, warehouse: Path) -> DagRunResult:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW_CONN_WAREHOUSE": json.dumps({"conn_type": "duckdb", "host": str(warehouse)}),
            # Failures here are deterministic; retries and alerts are exercised in test_alerts.py.
            "ELT_TASK_RETRIES": "0",
        }
        log = airflow_home / f"{dag_id}.log"
        with log.open("w") as out:
            proc = subprocess.run(
                [str(BIN / "airflow"), "dags", "test", dag_id],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=1200,
            )
        with sqlite3.connect(airflow_home / "airflow.db") as db:
            rows = db.execute("select task_id, state from task_instance where dag_id = ?", (dag_id,)).fetchall()
        assert rows, f"DAG {dag_id} did not run; see {log}:\n{log.read_text()[-3000:]}"
        return DagRunResult(dag_id, dict(rows), warehouse, log, proc.returncode)

    return run


@pytest.fixture(scope="session")
def pipeline_run(run_dag, tmp_path_factory: pytest.TempPathFactory) -> DagRunResult:
    """The repository's own DAG, run once end to end and shared by the assertions about it."""
    warehouse = tmp_path_factory.mktemp("warehouse") / "analytics.duckdb"
    return run_dag("shop_elt", REPO / "dags", warehouse)
