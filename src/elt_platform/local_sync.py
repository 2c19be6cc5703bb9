"""The embedded ingestion backend: real Airbyte source connectors run by PyAirbyte into DuckDB.

PyAirbyte cannot share Airflow's environment, so the operator starts
:mod:`elt_platform.local_sync_runner` with the ingestion environment's Python and
talks to it over stdin/stdout. Secrets are resolved here, on the worker, at run
time, and passed on stdin: never on the command line, never in XCom.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, Connection
from airflow.sdk.exceptions import AirflowException
from airflow.sdk.log import mask_secret

from elt_platform.connections import load_connection_file, resolve_config
from elt_platform.local_sync_runner import ERROR_PREFIX, RESULT_PREFIX
from elt_platform.settings import Settings


class LocalAirbyteSyncOperator(BaseOperator):
    """Sync one ingestion connection with its real Airbyte connector into the DuckDB warehouse.

    Returns rows synced per stream, e.g. ``{"streams": {"users": 500}, "raw_schema": "raw_faker"}``.
    """

    ui_color = "#615EFF"

    def __init__(self, *, connection_file: str, warehouse_conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.connection_file = connection_file
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        settings = Settings.from_env()
        path = Path(self.connection_file)
        loaded, problems = load_connection_file(path)
        if loaded is None:
            raise AirflowException("; ".join(str(p) for p in problems))
        spec = loaded.spec
        if settings.ingestion_python is None or not settings.ingestion_python.exists():
            raise AirflowException(
                f"ELT_INGESTION_PYTHON={settings.ingestion_python} is not an interpreter. "
                "Fix: run `make install`, which creates the PyAirbyte environment and sets it."
            )
        config = resolve_config(
            spec.source.config, path.parent, lookup_connection=Connection.get, on_secret=mask_secret
        )
        warehouse = Connection.get(self.warehouse_conn_id)
        if not warehouse.host:
            raise AirflowException(f"Airflow connection '{self.warehouse_conn_id}' has no host (the DuckDB file path)")
        Path(warehouse.host).parent.mkdir(parents=True, exist_ok=True)
        request = {
            "connector": spec.source.connector,
            "package": spec.source.package,
            "config": config,
            "streams": spec.streams,
            "warehouse_path": warehouse.host,
            "raw_schema": spec.destination.raw_schema,
            "table_prefix": spec.destination.table_prefix,
        }
        self.log.info(
            "Syncing %s (%s) with %s: streams %s into %s.%s*",
            spec.name,
            spec.title,
            spec.source.package,
            spec.streams,
            spec.destination.raw_schema,
            spec.destination.table_prefix,
        )
        result = run_local_sync(request, settings, self.log)
        self.log.info("Rows synced per stream: %s", result["streams"])
        return result


def runner_env(settings: Settings) -> dict[str, str]:
    python = settings.ingestion_python
    assert python is not None
    env = dict(os.environ)
    # uv lives in the ingestion environment; PyAirbyte uses it to install connectors.
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("AIRBYTE_OFFLINE_MODE", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    if settings.connectors_dir:
        env["AIRBYTE_INSTALL_DIR"] = str(settings.connectors_dir)
        env.setdefault("AIRBYTE_LOGGING_ROOT", str(settings.connectors_dir / "logs"))
    # The runner must not inherit this interpreter's packages.
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    return env


def run_local_sync(request: dict[str, Any], settings: Settings, log: Any) -> dict[str, Any]:
    """Run the runner with ``request`` on stdin; stream its output to ``log``; return its result."""
    assert settings.ingestion_python is not None
    proc = subprocess.Popen(
        [str(settings.ingestion_python), "-m", "elt_platform.local_sync_runner"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=runner_env(settings),
        text=True,
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write(json.dumps(request))
    proc.stdin.close()
    tail: collections.deque[str] = collections.deque(maxlen=20)
    result: dict[str, Any] | None = None
    error = ""
    for line in proc.stdout:
        line = line.rstrip()
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
            continue
        if line.startswith(ERROR_PREFIX):
            error = json.loads(line[len(ERROR_PREFIX) :])
            continue
        if line.strip():
            tail.append(line)
            log.info("%s", line)
    code = proc.wait()
    if code != 0 or result is None:
        reason = error or "Last output:\n" + "\n".join(tail)
        raise AirflowException(f"Sync with {request['connector']} failed (exit code {code}): {reason}")
    return result
