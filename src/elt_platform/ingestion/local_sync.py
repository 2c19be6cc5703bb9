"""The embedded ingestion backend: real Airbyte source connectors run by PyAirbyte into DuckDB.

PyAirbyte cannot share Airflow's environment, so the sync task starts
:mod:`elt_platform.ingestion.local_sync_runner` with the ingestion environment's Python and
talks to it over stdin/stdout. Secrets are resolved on the worker, at run time, and
passed on stdin: never on the command line, never in XCom.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
from typing import Any

from airflow.sdk.exceptions import AirflowException

from elt_platform.ingestion.connections import ConnectionSpec
from elt_platform.ingestion.local_sync_runner import ERROR_PREFIX, RESULT_PREFIX
from elt_platform.settings import Settings


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


def sync_request(spec: ConnectionSpec, config: dict[str, Any], warehouse_path: str) -> dict[str, Any]:
    """What the runner reads on stdin: one connection's connector, resolved config, streams and destination."""
    return {
        "connector": spec.source.connector,
        "package": spec.source.package,
        "config": config,
        "streams": spec.streams,
        "warehouse_path": warehouse_path,
        "raw_schema": spec.destination.raw_schema,
        "table_prefix": spec.destination.table_prefix,
    }


def run_local_sync(request: dict[str, Any], settings: Settings, log: Any) -> dict[str, Any]:
    """Run the runner with ``request`` on stdin; stream its output to ``log``; return its result."""
    if settings.ingestion_python is None or not settings.ingestion_python.exists():
        raise AirflowException(
            f"ELT_INGESTION_PYTHON={settings.ingestion_python} is not an interpreter. "
            "Fix: run `make install`, which creates the PyAirbyte environment and sets it."
        )
    proc = subprocess.Popen(
        [str(settings.ingestion_python), "-m", "elt_platform.ingestion.local_sync_runner"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=runner_env(settings),
        text=True,
    )
    try:
        return _converse(proc, request, log)
    finally:
        if proc.poll() is None:  # the task timed out or was killed: stop the connector too
            proc.kill()


def _converse(proc: subprocess.Popen, request: dict[str, Any], log: Any) -> dict[str, Any]:
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
