"""Airflow as the production image runs it, on 127.0.0.1: CeleryExecutor, login enforced,
remote task logs, and every component twice where the platform promises high availability.

- Airflow runs from the image's own environment (``.venvs/image-airflow``, built by the
  Dockerfile's script from ``requirements-image.txt``), dbt from the image's dbt environment
  (``.venvs/image-dbt``), with the ``ENV`` the Dockerfile sets.
- Celery: the machine's Redis as broker, PostgreSQL as metadata database and result backend.
- FAB's auth manager: no one gets in without logging in.
- Task logs go to an S3 bucket (the S3 wire protocol, served by moto on 127.0.0.1) and every
  process keeps its local logs in a folder of its own, as separate pods would: a finished
  task's log can only reach the API server through the bucket.
- Each process names itself like its pod (tests/integration/process_hostname.py).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from pathlib import Path

import httpx
import psutil
import psycopg2

from devstack.airflow_stack import POSTGRES, AirflowStack, free_port
from tests.conftest import REPO

IMAGE_AIRFLOW_BIN = REPO / ".venvs" / "image-airflow" / "bin"
IMAGE_DBT = REPO / ".venvs" / "image-dbt" / "bin" / "dbt"
REDIS_DB = 7
USER, PASSWORD = "ana", "rehearsal-password-7c1f"
WORKERS = ("worker-a", "worker-b")
SCHEDULERS = ("scheduler-a", "scheduler-b")
TRIGGERERS = ("triggerer-a", "triggerer-b")
# Paths in the image, and where the same things are on this machine.
IMAGE_PATHS = {"/opt/elt/dbt-venv/bin/dbt": str(IMAGE_DBT), "/opt/elt/dags": str(REPO / "dags")}


def dockerfile_env() -> dict[str, str]:
    """The ``ENV`` the Dockerfile sets, with the image's paths mapped to this machine's."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    env = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env |= dict(re.findall(r"(\w+)=(\S+)", line))
    return {name: IMAGE_PATHS.get(value, value) for name, value in env.items()}


class ProductionCluster(AirflowStack):
    def __init__(self, home: Path, dags_folder: Path, env: dict[str, str], log_bucket_url: str):
        missing = [p for p in (IMAGE_AIRFLOW_BIN / "airflow", IMAGE_DBT) if not p.exists()]
        if missing:
            raise RuntimeError(
                f"{missing} missing: run the suite with `make test`, which builds the image's environments"
            )
        super().__init__(home, dags_folder, {}, pools=(), bin_dir=IMAGE_AIRFLOW_BIN)
        database = f"postgresql://{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}/{self.database}"
        # The test process's own settings (tests/conftest.py, the Makefile) stay out: only the image's.
        self.env = {k: v for k, v in self.env.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "ELT_"))}
        self.env |= dockerfile_env() | {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database.replace("postgresql:", "postgresql+psycopg2:"),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{database}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
            "AIRFLOW__API__SECRET_KEY": "rehearsal-session-secret",
            "AIRFLOW__API_AUTH__JWT_SECRET": "rehearsal-jwt-secret",
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.integration.process_hostname.hostname",
            "PYTHONPATH": str(REPO),
            "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
            "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": log_bucket_url,
            "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "task_logs",
            "AIRFLOW__LOGGING__DELETE_LOCAL_LOGS": "True",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            # A lost worker, scheduler or triggerer is noticed within seconds (defaults: minutes).
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "15",
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            **env,
        }
        self.named: dict[str, subprocess.Popen] = {}
        self.session = httpx.Client(base_url=self.base_url, timeout=30)

    def _flush_broker(self) -> None:
        subprocess.run(
            [str(IMAGE_AIRFLOW_BIN / "python"), "-c", f"import redis; redis.Redis(db={REDIS_DB}).flushdb()"],
            check=True,
        )

    def start(self) -> ProductionCluster:
        self._flush_broker()
        super().start()
        self.airflow(
            "users", "create", "--role", "User", "--username", USER, "--password", PASSWORD,
            "--email", "ana@example.com", "--firstname", "Ana", "--lastname", "Lytics",
        )  # fmt: skip
        return self

    def components(self) -> list[tuple[str, list[str]]]:
        return [
            ("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.port)]),
            ("dag-processor", ["dag-processor"]),
            *((name, ["scheduler"]) for name in SCHEDULERS),
            *((name, ["triggerer"]) for name in TRIGGERERS),
            *((name, ["celery", "worker", "--celery-hostname", f"{name}@rehearsal"]) for name in WORKERS),
        ]

    def launch(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        own = {
            "ELT_REHEARSAL_HOSTNAME": name,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "local-logs" / name),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        }
        proc = super().launch(name, args, own | (env or {}))
        self.named[name] = proc
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL a component and every process under it, as a lost node takes its whole pod.

        Task processes run in sessions of their own, so a process group is not enough."""
        main = psutil.Process(self.named[name].pid)
        for proc in [main, *main.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        self.named[name].wait(timeout=30)

    def shut_down(self, name: str) -> None:
        """SIGTERM, as Kubernetes stops a pod (warm shutdown: a Celery worker finishes its tasks)."""
        self.named[name].terminate()
        self.named[name].wait(timeout=120)

    def log_in(self) -> None:
        """Through FAB's login form, like a person: the session's JWT cookie then authenticates the API."""
        form = self.session.get("/auth/login/")
        csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form.text).group(1)
        answer = self.session.post("/auth/login/", data={"username": USER, "password": PASSWORD, "csrf_token": csrf})
        if answer.status_code != 302 or "_token" not in self.session.cookies:
            raise AssertionError(f"login refused: {answer.status_code} {answer.text[:300]}")
        self.client.cookies.set("_token", self.session.cookies["_token"])

    def query(self, sql: str) -> list[tuple]:
        """The metadata database, for what the REST API does not show (which triggerer holds a trigger)."""
        conn = psycopg2.connect(**{**POSTGRES, "dbname": self.database})
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            conn.close()

    def stop(self) -> None:
        super().stop()
        self.session.close()
