"""Run one sync with PyAirbyte. Executed by the ingestion environment's Python, never by Airflow.

Reads a JSON request on stdin (see :mod:`elt_platform.ingestion.local_sync`), runs the real
Airbyte source connector, and writes the raw tables into the connection's own store (a DuckDB
file, never the warehouse: :mod:`elt_platform.ingestion.sync_store`) in Airbyte's raw shape
(``_airbyte_raw_id``, ``_airbyte_extracted_at``, ``_airbyte_meta``). The last stdout line
carries the result as JSON: per stream, its sync mode and the records this run wrote.

``python -m elt_platform.ingestion.local_sync_runner install <ingestion dir>`` installs each
connection's connector into its own virtualenv ahead of the first run.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import sys
import time
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
    """Read the request's streams into its store (a DuckDB file PyAirbyte caches into, never the warehouse).

    Incremental streams are read from the state the store keeps and merged by primary key
    (PyAirbyte's write strategy "auto": merge where the stream has a primary key, append where it
    has only a cursor). Full-refresh streams ignore and replace their state and replace their table.
    PyAirbyte applies ``force_full_refresh`` to a whole read, so a connection with both kinds is read
    twice: the incremental streams, then the full-refresh ones.
    """
    import airbyte as ab

    streams = {item["name"]: item["sync_mode"] for item in request["streams"]}
    source = ab.get_source(
        request["connector"],
        config=request["config"],
        pip_url=request["package"],
        install_if_missing=True,
        streams=list(streams),
    )
    cache = ab.DuckDBCache(
        db_path=request["store_path"],
        schema_name=request["raw_schema"],
        table_prefix=request["table_prefix"],
    )
    can_increment = {
        s.name
        for s in source.discovered_catalog.streams
        if INCREMENTAL in {getattr(m, "value", m) for m in s.supported_sync_modes or ()}
    }
    modes = {
        name: INCREMENTAL
        if mode == INCREMENTAL and name in can_increment and not request.get("full_refresh")
        else FULL_REFRESH
        for name, mode in streams.items()
    }
    reads = {}
    for mode, options in READS.items():
        names = [name for name in streams if modes[name] == mode]
        if not names:
            continue
        started = time.time()
        result = source.read(cache=cache, streams=names, **options)
        written = records_written_since(cache, request["raw_schema"], request["table_prefix"], names, started)
        if sum(written.values()) != result.processed_records:
            print(
                f"The connector sent {result.processed_records} records and {sum(written.values())} rows were "
                "written or updated: it sent some primary keys more than once",
                flush=True,
            )
        reads.update({name: {"sync_mode": mode, "records": written[name]} for name in names})
    return {"raw_schema": request["raw_schema"], "reads": {name: reads[name] for name in streams}}


INCREMENTAL = "incremental"
FULL_REFRESH = "full_refresh"
# How each kind of stream is read (the values are elt_platform.ingestion.connections.SyncMode's).
READS = {
    INCREMENTAL: {"write_strategy": "auto"},
    FULL_REFRESH: {"force_full_refresh": True, "write_strategy": "replace"},
}


def records_written_since(cache, raw_schema: str, prefix: str, streams: list[str], started: float) -> dict[str, int]:
    """Per stream, the rows this read inserted or updated in the store: their ``_airbyte_extracted_at``
    is the time the connector emitted them, so at or after the read's start (to the millisecond)."""
    import sqlalchemy

    since = datetime.datetime.fromtimestamp(int(started * 1000) / 1000, tz=datetime.UTC)
    counts = {}
    with cache.get_sql_engine().connect() as con:
        for name in streams:
            table = ".".join('"' + part.replace('"', '""') + '"' for part in (raw_schema, prefix + name))
            counts[name] = con.execute(
                sqlalchemy.text(f"select count(*) from {table} where _airbyte_extracted_at >= :since"),
                {"since": since},
            ).scalar_one()
    return counts


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
