"""The embedded ingestion backend: real Airbyte source connectors run by PyAirbyte into DuckDB.

Each connection syncs into a store of its own (:mod:`elt_platform.ingestion.sync_store`), which
keeps its streams' incremental state; its tables then replace the warehouse's raw tables in a
short step under the warehouse's lock, so the warehouse is never locked while a connector reads.

PyAirbyte cannot share Airflow's environment, so the sync task starts
:mod:`elt_platform.ingestion.local_sync_runner` with the ingestion environment's Python and
talks to it over stdin/stdout. Secrets are resolved on the worker, at run time, and
passed on stdin: never on the command line, never in XCom.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException

from elt_platform.ingestion.connections import ConnectionSpec
from elt_platform.ingestion.local_sync_runner import ERROR_PREFIX, PARENT_PID_VARIABLE, RESULT_PREFIX
from elt_platform.ingestion.sync_store import hand_over, store_path
from elt_platform.private_dirs import task_dir
from elt_platform.settings import Settings
from elt_platform.warehouse import warehouse_lock

# What the connector's process may inherit from the worker: locale, proxies, certificates, the
# package indexes it installs from, and PyAirbyte's own settings. Not Airflow's connections, its
# metadata database, the badge secret or anything else: the connector is third-party code, and its
# secrets reach it on stdin, resolved from its own file's references.
INHERITED = ("HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")
INHERITED_PREFIXES = ("LC_", "AIRBYTE_", "UV_", "PIP_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")


def runner_env(settings: Settings, temp_dir: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The runner's whole environment: the allowlist above, plus where it installs, logs and writes temporary files."""
    environ = os.environ if environ is None else environ
    python = settings.ingestion_python
    assert python is not None
    env = {
        name: value
        for name, value in environ.items()
        if name in INHERITED or name.startswith(INHERITED_PREFIXES) or name.upper() in PROXIES
    }
    # uv lives in the ingestion environment; PyAirbyte uses it to install connectors.
    env["PATH"] = f"{python.parent}{os.pathsep}{environ.get('PATH', os.defpath)}"
    env.setdefault("AIRBYTE_OFFLINE_MODE", "1")
    env["DO_NOT_TRACK"] = "1"
    if settings.connectors_dir:
        env["AIRBYTE_INSTALL_DIR"] = str(settings.connectors_dir)
        env.setdefault("AIRBYTE_LOGGING_ROOT", str(settings.connectors_dir / "logs"))
    # PyAirbyte writes the resolved config, secrets included, to a world-readable temporary file:
    # only into this task's private folder, removed when the sync ends.
    env["TMPDIR"] = env["AIRBYTE_TEMP_DIR"] = str(temp_dir)
    env[PARENT_PID_VARIABLE] = str(os.getpid())
    return env


def sync_request(
    spec: ConnectionSpec, config: dict[str, Any], store_path: str, full_refresh: bool = False
) -> dict[str, Any]:
    """What the runner reads on stdin: one connection's connector, resolved config, streams and store.

    ``full_refresh``: every stream read in full, whatever its sync mode (the run's ``full_refresh`` param).
    """
    return {
        "connector": spec.source.connector,
        "package": spec.source.package,
        "config": config,
        "streams": [{"name": s.name, "sync_mode": s.sync_mode.value} for s in spec.stream_specs],
        "full_refresh": full_refresh,
        "store_path": store_path,
        "raw_schema": spec.destination.raw_schema,
        "table_prefix": spec.destination.table_prefix,
    }


def sync_locally(
    spec: ConnectionSpec,
    config: dict[str, Any],
    warehouse: Path,
    settings: Settings,
    log: Any,
    full_refresh: bool = False,
) -> dict[str, Any]:
    """One local sync: the connector reads into the connection's store (under the store's lock
    alone), then the store's tables replace the warehouse's raw tables under the warehouse's lock.

    Returns what the sync task puts in XCom: ``rows_synced`` (records this run read), ``streams``
    (rows per raw table once handed over) and ``reads`` (per stream, its sync mode and records)."""
    store = store_path(warehouse, spec.name)
    store.parent.mkdir(parents=True, exist_ok=True)
    with warehouse_lock(store):  # one sync of a connection at a time writes its store
        started = time.monotonic()
        result = run_local_sync(sync_request(spec, config, str(store), full_refresh), settings, log)
        read_seconds = time.monotonic() - started
        reads = result["reads"]
        log.info(
            "Read %s records in %.1f s into %s: %s",
            sum(r["records"] for r in reads.values()),
            read_seconds,
            store,
            ", ".join(f"{name} {r['records']} ({r['sync_mode']})" for name, r in reads.items()),
        )
        handed = hand_over(store, warehouse, spec.destination.raw_schema, spec.tables, log)
    return {
        "backend": "local",
        "raw_schema": spec.destination.raw_schema,
        "rows_synced": sum(r["records"] for r in reads.values()),
        "streams": {stream: handed.rows[table] for stream, table in spec.tables.items()},
        "reads": reads,
        "read_seconds": round(read_seconds, 3),
        "hand_over_wait_seconds": round(handed.wait_seconds, 3),
        "hand_over_lock_seconds": round(handed.lock_seconds, 3),
    }


def run_local_sync(request: dict[str, Any], settings: Settings, log: Any) -> dict[str, Any]:
    """Run the runner with ``request`` on stdin; stream its output to ``log``; return its result."""
    if settings.ingestion_python is None or not settings.ingestion_python.exists():
        raise AirflowException(
            f"ELT_INGESTION_PYTHON={settings.ingestion_python} is not an interpreter. "
            "Fix: run `make install`, which creates the PyAirbyte environment and sets it."
        )
    temp_dir = task_dir("syncs")  # a killed task's folder is removed by the next sync on this machine
    try:
        proc = subprocess.Popen(
            [str(settings.ingestion_python), "-m", "elt_platform.ingestion.local_sync_runner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=runner_env(settings, temp_dir),
            cwd=temp_dir,
            text=True,
        )
        try:
            return _converse(proc, request, log)
        finally:
            if proc.poll() is None:  # the task timed out or was killed: stop the connector too
                proc.kill()
                proc.wait()
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


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
