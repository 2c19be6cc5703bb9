"""Each connection's own store, and the short hand-over of its rows to the warehouse. Runs on the worker.

On the embedded backend a connector never writes the warehouse: PyAirbyte reads into the
connection's store (a DuckDB file of its own, which also keeps the streams' incremental state),
holding only that store's lock. The rows then reach the warehouse in one short transaction under
the warehouse's writer lock, so a slow read never blocks a build.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from elt_platform.warehouse import quoted_name, quoted_table, warehouse_lock

STORES_FOLDER = "sync_stores"
# The store's name inside the warehouse's connection while it is attached: not a DuckDB file stem
# a warehouse is likely to have (an attached database may not take the warehouse's own name).
STORE_ALIAS = "elt_sync_store"


def store_path(warehouse: str | Path, connection: str) -> Path:
    """Where ``connection`` syncs to: ``<warehouse folder>/sync_stores/<warehouse file>/<connection>.duckdb``.

    Derived from the warehouse file, so nothing more is configured, and one per warehouse: two
    warehouses in one folder (two DAGs, two environments) never share a connection's incremental
    state. Deleting it makes the next sync of that connection a full one (its state is in it)."""
    warehouse = Path(warehouse)
    return warehouse.parent / STORES_FOLDER / warehouse.name / f"{connection}.duckdb"


@dataclass(frozen=True)
class HandOver:
    """What one hand-over did: rows per raw table, and how long it waited for and held the lock."""

    rows: dict[str, int]
    wait_seconds: float
    lock_seconds: float


def hand_over(
    store: Path, warehouse: Path, raw_schema: str, tables: Mapping[str, str], log: logging.Logger | None = None
) -> HandOver:
    """Replace each raw table ``<raw_schema>.<table>`` of the warehouse by the store's, in one transaction.

    ``tables``: stream name -> table name (``ConnectionSpec.tables``). The store is attached read-only
    and the connection closed before the warehouse lock is let go. Tables are copied whole, exactly
    as PyAirbyte wrote them (Airbyte's raw shape, deduplicated in the store).
    """
    import duckdb

    log = log or logging.getLogger(__name__)
    asked = time.monotonic()
    with warehouse_lock(warehouse):
        taken = time.monotonic()
        rows: dict[str, int] = {}
        # Not read_only: a process that ran dbt in-process keeps the file open with this configuration.
        with duckdb.connect(str(warehouse)) as con:
            path = "'" + str(store).replace("'", "''") + "'"  # ATTACH takes no parameters
            con.execute(f"attach {path} as {STORE_ALIAS} (read_only)")
            try:
                con.execute("begin transaction")
                con.execute(f"create schema if not exists {quoted_name(raw_schema)}")
                for stream, table in tables.items():
                    target = quoted_table(raw_schema, table)
                    source = f"{STORE_ALIAS}.{quoted_table(raw_schema, table)}"
                    try:
                        con.execute(f"create or replace table {target} as select * from {source}")
                    except duckdb.CatalogException as exc:
                        raise RuntimeError(
                            f"The store {store} has no table {raw_schema}.{table} for stream {stream!r}: "
                            f"the connector wrote nothing for it ({exc})"
                        ) from None
                    rows[table] = con.execute(f"select count(*) from {target}").fetchone()[0]
                con.execute("commit")
            except BaseException:
                with contextlib.suppress(duckdb.Error):  # nothing to roll back if it failed to begin
                    con.execute("rollback")
                raise
            finally:
                con.execute(f"detach {STORE_ALIAS}")
        held = time.monotonic() - taken
    result = HandOver(rows=rows, wait_seconds=taken - asked, lock_seconds=held)
    log.info(
        "Handed %s over to the warehouse: held its lock %.2f s (waited %.2f s for it); rows per table: %s",
        store.name,
        result.lock_seconds,
        result.wait_seconds,
        rows,
    )
    return result
