"""The warehouse: dbt's profile for it (a Cosmos profile mapping from an Airflow connection),
the lock its DuckDB file needs, and the row counts dashboards' assets report."""

from __future__ import annotations

import fcntl
import logging
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cosmos.profiles import (
    DuckDBUserPasswordProfileMapping,
    GoogleCloudOauthProfileMapping,
    GoogleCloudServiceAccountDictProfileMapping,
)
from cosmos.profiles.base import BaseProfileMapping

from elt_platform.settings import Settings

log = logging.getLogger(__name__)


def profile_mapping(settings: Settings) -> BaseProfileMapping:
    """DuckDB: the file path is the connection's host. BigQuery: project in the connection's
    extra; the dataset is per environment (``analytics_<environment>``)."""
    conn_id = settings.warehouse_conn_id
    if settings.warehouse_type == "duckdb":
        return DuckDBUserPasswordProfileMapping(conn_id=conn_id, profile_args={"threads": settings.dbt_threads})
    # bigquery, the only other choice Settings accepts
    args = {"dataset": settings.dataset, "threads": settings.dbt_threads}
    if settings.bigquery_api_endpoint:
        args["api_endpoint"] = settings.bigquery_api_endpoint
    if settings.bigquery_auth == "service-account":
        return GoogleCloudServiceAccountDictProfileMapping(conn_id=conn_id, profile_args=args)
    return GoogleCloudOauthProfileMapping(conn_id=conn_id, profile_args=args)  # adc


@contextmanager
def warehouse_lock(name: str | None) -> Iterator[None]:
    """An exclusive lock named after the warehouse pool; nothing when ``name`` is None.

    DuckDB allows one writer per file. ``dbt_build`` holds the pool slot; a node that runs
    dbt alone holds this lock (LocalExecutor: every writer runs on this machine). The holder
    lets go of the file before the lock (``release_the_file_dbt_kept_open``).
    """
    if name is None:
        yield
        return
    path = Path(tempfile.gettempdir()) / f"elt-warehouse-{name}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            release_the_file_dbt_kept_open()
            fcntl.flock(handle, fcntl.LOCK_UN)


def release_the_file_dbt_kept_open() -> None:
    """Close the DuckDB file that dbt, run in this process (dbtRunner), keeps open after it ends.

    dbt-duckdb keeps it open between invocations (its ``keep_open``, on by default) until the
    process exits, and a task's process exits a moment after Airflow has recorded its success:
    the next task reading or writing the file, in another process, could start in between and
    fail on DuckDB's file lock. Closed, it is opened again by the next invocation that needs it.
    """
    connections = sys.modules.get("dbt.adapters.duckdb.connections")  # not imported: dbt did not run here
    if connections is None:
        return
    manager = connections.DuckDBConnectionManager
    try:
        environment = manager.env()
    except Exception:  # dbt-duckdb: "environment requested before creation", no file opened
        return
    environment.close()


def count_rows(settings: Settings, tables: dict[str, tuple[str, str]]) -> dict[str, int]:
    """Rows per table (name -> (schema, table)), with reads only. DuckDB only: on BigQuery, the
    table's own metadata has the count and nothing is queried (an empty dict)."""
    if settings.warehouse_type != "duckdb" or not tables:
        return {}
    import duckdb
    from airflow.sdk import Connection

    path = Connection.get(settings.warehouse_conn_id).host
    counts = {}
    # Not read_only: a process that ran dbt in-process (``airflow dags test``) holds a connection
    # to the file already, and DuckDB refuses a second one with another configuration. The pool
    # slot and the lock keep every writer out meanwhile.
    with warehouse_lock(settings.warehouse_pool), duckdb.connect(path) as con:
        for name, (schema, table) in tables.items():
            quoted = ".".join('"' + part.replace('"', '""') + '"' for part in (schema, table))
            try:
                counts[name] = con.execute(f"select count(*) from {quoted}").fetchone()[0]
            except duckdb.Error as exc:  # e.g. a mart dbt has not built yet: counted next time
                log.warning("Could not count the rows of %s.%s: %s", schema, table, exc)
    return counts
