"""A real Airflow on 127.0.0.1: API server, scheduler (LocalExecutor), DAG processor and triggerer.

The integration tests and the benchmark (bench/run.py) run on it.

Its metadata lives in a database of its own on the local PostgreSQL server: SQLite
locks up ("database is locked") once several DAG runs write at the same time.

Driven through Airflow's public REST API (``/api/v2``), like a person in the UI would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import psycopg2

from devstack import BIN

TERMINAL = {"success", "failed"}
POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}


def admin_sql(statement: str) -> None:
    """One statement on the local PostgreSQL server, outside a transaction (create/drop database)."""
    conn = psycopg2.connect(**POSTGRES)
    try:
        conn.autocommit = True
        conn.cursor().execute(statement)
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AirflowStack:
    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        env: dict[str, str],
        pools: tuple[str, ...] = ("warehouse",),
        bin_dir: Path = BIN,
    ):
        self.home = home
        self.bin_dir = bin_dir
        self.pools = pools
        self.database = f"airflow_test_{uuid.uuid4().hex[:12]}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
                f"postgresql+psycopg2://{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}/{self.database}"
            ),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API_AUTH__JWT_SECRET": "test-only-jwt-secret",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # A file is parsed when it appears; those of a test or benchmark do not change after that.
            # Re-parsing each every 30 s (the default) cost about 4 CPU-minutes in a suite run on 2 cores.
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            # Only the runs a test triggers: unpausing an @daily DAG would also start a scheduled run.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
            **env,
        }
        self.procs: list[subprocess.Popen] = []
        self.client = httpx.Client(base_url=f"{self.base_url}/api/v2", timeout=30)

    def airflow(self, *args: str) -> None:
        subprocess.run([str(self.bin_dir / "airflow"), *args], env=self.env, check=True, capture_output=True)

    def _admin(self, statement: str) -> None:
        admin_sql(statement)

    def start(self) -> AirflowStack:
        self.home.mkdir(parents=True, exist_ok=True)
        self._admin(f"create database {self.database}")
        self.airflow("db", "migrate")
        for pool in self.pools:
            self.airflow("pools", "set", pool, "1", "DuckDB allows one writer per file")
        for name, args in self.components():
            self.launch(name, args)
        self.wait_until(lambda: self.client.get("/monitor/health").status_code == 200, 120, "API server health")
        return self

    def components(self) -> list[tuple[str, list[str]]]:
        """Each Airflow process to run: its name (and log file) and its command line."""
        return [
            ("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.port)]),
            ("scheduler", ["scheduler"]),
            ("dag-processor", ["dag-processor"]),
            ("triggerer", ["triggerer"]),
        ]

    def launch(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """One Airflow process in a session of its own, so that it can be killed with its children."""
        log = (self.home / f"{name}.log").open("w")
        proc = subprocess.Popen(
            [str(self.bin_dir / "airflow"), *args],
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # what it left behind (log servers, task processes)
        self.client.close()
        self._admin(f"drop database if exists {self.database} with (force)")

    @staticmethod
    def wait_until(ready, timeout: float, what: str, interval: float = 2):
        """What ``ready()`` returns once it is truthy, asking every ``interval`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if value := ready():
                    return value
            except httpx.HTTPError:
                pass
            time.sleep(interval)
        raise TimeoutError(f"{what} not ready after {timeout} s")

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        self.wait_until(lambda: self.client.get(f"/dags/{dag_id}").status_code == 200, 180, f"DAG {dag_id} parsed")
        self.client.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        response = self.client.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        response.raise_for_status()
        return response.json()["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 900) -> str:
        state = {}

        def done() -> bool:
            state["value"] = self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
            return state["value"] in TERMINAL

        self.wait_until(done, timeout, f"run {run_id} of {dag_id}")
        return state["value"]

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict]:
        response = self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 500})
        response.raise_for_status()
        return {ti["task_id"]: ti for ti in response.json()["task_instances"]}

    def clear_with_downstream(self, dag_id: str, run_id: str, task_id: str) -> list[str]:
        response = self.client.post(
            f"/dags/{dag_id}/clearTaskInstances",
            json={
                "dry_run": False,
                "dag_run_id": run_id,
                "task_ids": [task_id],
                "include_downstream": True,
                "only_failed": False,
                "reset_dag_runs": True,
            },
        )
        response.raise_for_status()
        return sorted(ti["task_id"] for ti in response.json()["task_instances"])

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int | str) -> httpx.Response:
        return self.client.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            headers={"Accept": "application/json"},
        )

    def all_task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """Every task instance of the run, page by page (``task_instances`` reads the first 500)."""
        found: list[dict] = []
        while True:
            params = {"limit": 100, "offset": len(found), "order_by": "id"}
            response = self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params=params)
            response.raise_for_status()
            page = response.json()
            found.extend(page["task_instances"])
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def fail_run(self, dag_id: str, run_id: str) -> None:
        """Mark the run failed (its tasks stop). The API server can answer 500 while the scheduler holds the
        run's rows: it is asked again, up to ten times."""
        for _ in range(10):
            response = self.client.patch(f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": "failed"})
            if response.status_code < 500:
                break
            time.sleep(3)
        response.raise_for_status()
