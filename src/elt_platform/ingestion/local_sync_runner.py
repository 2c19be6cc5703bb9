"""Run one sync with PyAirbyte. Executed by the ingestion environment's Python, never by Airflow.

Reads a JSON request on stdin (see :mod:`elt_platform.ingestion.local_sync`), runs the real
Airbyte source connector, and writes the raw tables into DuckDB in Airbyte's raw
shape (``_airbyte_raw_id``, ``_airbyte_extracted_at``, ``_airbyte_meta``). The
last stdout line carries the result as JSON.

``python -m elt_platform.ingestion.local_sync_runner install <ingestion dir>`` installs each
connection's connector into its own virtualenv ahead of the first run.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

RESULT_PREFIX = "ELT_SYNC_RESULT "
ERROR_PREFIX = "ELT_SYNC_ERROR "
# The sync task's pid: the runner ends when that process does, even if it is killed outright.
PARENT_PID_VARIABLE = "ELT_SYNC_PARENT_PID"
PR_SET_PDEATHSIG = 1


def end_with_the_task() -> None:
    """Have Linux kill this process when the task's process dies (a SIGKILL leaves no time to stop it)."""
    parent = os.environ.get(PARENT_PID_VARIABLE)
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(parent):  # the task died before the call above
        os._exit(1)


def sync(request: dict) -> dict:
    import airbyte as ab

    source = ab.get_source(
        request["connector"],
        config=request["config"],
        pip_url=request["package"],
        install_if_missing=True,
        streams=request["streams"],
    )
    cache = ab.DuckDBCache(
        db_path=request["warehouse_path"],
        schema_name=request["raw_schema"],
        table_prefix=request["table_prefix"],
    )
    result = source.read(cache=cache, force_full_refresh=True, write_strategy="replace")
    return {
        "raw_schema": request["raw_schema"],
        "streams": {name: len(dataset) for name, dataset in result.streams.items()},
    }


def connector_error(exc: Exception) -> str:
    """The connector's own error (its last Airbyte TRACE ERROR message), then PyAirbyte's summary."""
    messages = []
    log_file = getattr(exc, "log_file", None)
    if log_file and Path(log_file).is_file():
        for line in Path(log_file).read_text(errors="replace").splitlines():
            start = line.find('{"type": "TRACE"')
            if start < 0:
                continue
            try:
                error = json.loads(line[start:]).get("trace", {}).get("error")
            except ValueError:
                continue
            if error:
                messages.append(" ".join(filter(None, (error.get("internal_message"), error.get("message")))))
    summary = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
    return "\n".join([*messages[-1:], summary])


def install(ingestion_dir: Path) -> None:
    import airbyte as ab

    from elt_platform.ingestion.connections import load_connections
    from elt_platform.settings import Settings

    for conn in load_connections(ingestion_dir, data_root=Settings.from_env().ingestion_data_root):
        source = conn.spec.source
        print(f"Installing {source.package} for connection {conn.spec.name}", flush=True)
        ab.get_source(source.connector, pip_url=source.package, install_if_missing=True)


def main() -> None:
    end_with_the_task()
    if sys.argv[1:2] == ["install"]:
        install(Path(sys.argv[2]))
        return
    try:
        result = sync(json.load(sys.stdin))
    except Exception as exc:
        # One line the operator can quote: the connector's own message, not a traceback.
        print(ERROR_PREFIX + json.dumps(connector_error(exc)), flush=True)
        raise
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
