"""The warehouse: dbt's profile for it (a Cosmos profile mapping from an Airflow connection),
the lock its DuckDB file needs, and the row counts dashboards' assets report."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from cosmos.profiles import (
    DuckDBUserPasswordProfileMapping,
    GoogleCloudOauthProfileMapping,
    GoogleCloudServiceAccountDictProfileMapping,
)
from cosmos.profiles.base import BaseProfileMapping

from elt_platform.dependency_internals import close_the_duckdb_file_dbt_keeps_open
from elt_platform.private_dirs import private_dir
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


def duckdb_file(conn_id: str) -> Path:
    """The DuckDB file an Airflow connection locates (its host), read at run time."""
    from airflow.sdk import Connection

    host = Connection.get(conn_id).host
    if not host:
        raise ValueError(
            f"Airflow connection '{conn_id}' has no host. Fix: set its host to the DuckDB file's path, "
            'e.g. AIRFLOW_CONN_WAREHOUSE=\'{"conn_type": "duckdb", "host": "/path/analytics.duckdb"}\''
        )
    return Path(host)


def lock_file(database: str | Path) -> Path:
    """The lock of one DuckDB file: named after its real path (two names of one file share it), in a
    folder only this user can enter (a lock in a folder anyone can write to can be held by anyone)."""
    real = os.path.realpath(database)
    digest = hashlib.sha256(real.encode()).hexdigest()[:16]
    return private_dir("locks") / f"{Path(real).name}-{digest}.lock"


@contextmanager
def warehouse_lock(database: str | Path | None) -> Iterator[None]:
    """Exclusive use of the DuckDB file ``database``; nothing when it is None (BigQuery).

    DuckDB allows one writer process per file. Every writer takes this lock, whatever started it:
    the syncs, ``dbt_build``, a node that runs dbt alone, the row counts, and per-model tasks
    (``hold_for_the_task``); the Airflow pool is the scheduler's view of the same rule. The
    holder lets go of the file before the lock (``release_the_file_dbt_kept_open``).
    """
    if database is None:
        yield
        return
    with lock_file(database).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            release_the_file_dbt_kept_open()
            fcntl.flock(handle, fcntl.LOCK_UN)


_held_for_the_task: list[AbstractContextManager] = []


def hold_for_the_task(conn_id: str) -> Callable[[Any], None]:
    """A ``pre_execute`` hook taking the warehouse lock for a task Cosmos runs (per-model mode).

    ``release_after_the_task`` lets go of it; if the task fails first, its process's exit does.
    """

    def take(context: Any) -> None:
        lock = warehouse_lock(duckdb_file(conn_id))
        lock.__enter__()
        _held_for_the_task.append(lock)

    return take


def release_after_the_task(context: Any, result: Any = None) -> None:
    """The ``post_execute`` hook of :func:`hold_for_the_task`."""
    while _held_for_the_task:
        _held_for_the_task.pop().__exit__(None, None, None)


def release_the_file_dbt_kept_open() -> None:
    """Close the DuckDB file that dbt, run in this process (dbtRunner), keeps open after it ends.

    dbt-duckdb keeps it open between invocations (its ``keep_open``, on by default) until the
    process exits, and a task's process exits a moment after Airflow has recorded its success:
    the next task reading or writing the file, in another process, could start in between and
    fail on DuckDB's file lock. Closed, it is opened again by the next invocation that needs it.
    """
    close_the_duckdb_file_dbt_keeps_open()


def quoted_name(name: str) -> str:
    """``"name"`` for DuckDB, whatever characters it holds (a name is data, not SQL)."""
    return '"' + name.replace('"', '""') + '"'


def quoted_table(schema: str, table: str) -> str:
    """``"schema"."table"`` for DuckDB, whatever characters the names hold (a name is data, not SQL)."""
    return ".".join(quoted_name(part) for part in (schema, table))


def count_rows(
    settings: Settings, tables: dict[str, tuple[str, str]], project_dir: Path, database: Path | None = None
) -> dict[str, int]:
    """Rows per table (name -> (schema, table)), with reads only. DuckDB only: on BigQuery, the
    table's own metadata has the count and nothing is queried (an empty dict). ``database``: the
    DuckDB file to count in, instead of the one the warehouse connection locates (``elt summary``).

    A view reading files by paths relative to the dbt project's folder (``read_csv('../data/x.csv')``)
    resolves them from there, as dbt did when it built it (DuckDB's ``file_search_path``)."""
    if (database is None and settings.warehouse_type != "duckdb") or not tables:
        return {}
    import duckdb

    path = database or duckdb_file(settings.warehouse_conn_id)
    counts = {}
    # Not read_only: a process that ran dbt in-process (``airflow dags test``) holds a connection
    # to the file already, and DuckDB refuses a second one with another configuration. The pool
    # slot and the lock keep every writer out meanwhile.
    with warehouse_lock(path), duckdb.connect(str(path)) as con:
        con.execute("set file_search_path = ?", [str(project_dir)])
        for name, (schema, table) in tables.items():
            try:
                counts[name] = con.execute(f"select count(*) from {quoted_table(schema, table)}").fetchone()[0]
            except duckdb.Error as exc:  # e.g. a mart dbt has not built yet: counted next time
                log.warning("Could not count the rows of %s.%s: %s", schema, table, exc)
    return counts


def missing_tables(database: Path, relations: Mapping[str, tuple[str, str, str]]) -> set[str]:
    """Of ``relations`` (key -> (database, schema, name), as dbt built them), those the DuckDB file
    ``database`` does not hold: a new file, or a table dropped by hand. Reads only; the caller
    holds the file's lock (``warehouse_lock``)."""
    if not relations:
        return set()
    if not database.exists():
        return set(relations)
    import duckdb

    # Not read_only, as in count_rows: dbt, run in this process, may hold the file open already.
    with duckdb.connect(str(database)) as con:
        rows = con.execute("select table_catalog, table_schema, table_name from information_schema.tables").fetchall()
    present = {tuple(part.lower() for part in row) for row in rows}
    return {key for key, relation in relations.items() if tuple(p.lower() for p in relation) not in present}
