"""The incremental mart ``orders`` at its edges, built by real dbt on a real DuckDB file: a table
that exists but is empty, a late row at the high-water mark, and a purchase without ``updated_at``.

The raw tables are written directly, in Airbyte's raw shape, so that each run sees exactly the rows
the test put there.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import duckdb
import pytest

from devstack import BIN
from tests.conftest import copy_project

pytestmark = pytest.mark.integration

EARLIER = "2025-01-01 09:00:00+00"
LATEST = "2025-01-02 09:00:00+00"  # the high-water mark once the first rows are in
PRODUCTS = (
    "id bigint, make varchar, model varchar, year bigint, price double, created_at timestamptz, updated_at timestamptz"
)
PURCHASES = (
    "id bigint, user_id bigint, product_id bigint, added_to_cart_at timestamptz, purchased_at timestamptz,"
    " returned_at timestamptz, created_at timestamptz, updated_at timestamptz"
)
AIRBYTE = "_airbyte_raw_id varchar, _airbyte_extracted_at timestamptz, _airbyte_meta json"


def add_purchase(con, purchase_id: int, updated_at: str | None, *, paid: bool = True, returned: bool = False) -> None:
    con.execute(
        "insert into raw_faker.purchases values (?, 1, 10, ?, ?, ?, ?, ?, ?, now(), '{}')",
        [
            purchase_id,
            EARLIER,
            EARLIER if paid else None,
            LATEST if returned else None,
            EARLIER,
            updated_at,
            f"raw-{purchase_id}",
        ],
    )


def build(dbt_dir: Path, warehouse: Path) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """`dbt build` of orders and everything upstream; returns dbt's output and each node's status.
    Only tests whose parents are all built are selected (``cautious``): the relationships tests
    reach into models outside ``+orders``."""
    run = subprocess.run(
        [str(BIN / "dbt"), "build", "--select", "+orders", "--indirect-selection", "cautious", "--profiles-dir", "."],
        cwd=dbt_dir,
        env={**os.environ, "ELT_DUCKDB_PATH": str(warehouse)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    results = json.loads((dbt_dir / "target" / "run_results.json").read_text())["results"]
    return run, {r["unique_id"].split(".")[2]: r["status"] for r in results}


def orders(warehouse: Path) -> list[int]:
    with duckdb.connect(str(warehouse)) as con:
        return [row[0] for row in con.execute("select order_id from main.orders order by order_id").fetchall()]


def test_orders_loads_into_an_empty_table_keeps_late_rows_at_the_mark_and_flags_a_missing_updated_at(tmp_path):
    dbt_dir, _ = copy_project(tmp_path)
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema raw_faker")
        con.execute(f"create table raw_faker.products ({PRODUCTS}, {AIRBYTE})")
        con.execute(f"create table raw_faker.purchases ({PURCHASES}, {AIRBYTE})")
        con.execute(
            "insert into raw_faker.products values (10, 'Mazda', 'MX-5', 2020, 15000, ?, ?, 'raw-p10', now(), '{}')",
            [EARLIER, EARLIER],
        )
        add_purchase(con, 1, EARLIER)
        add_purchase(con, 2, LATEST, returned=True)
        add_purchase(con, 3, LATEST, paid=False)  # still in the cart: never an order
        add_purchase(con, 4, LATEST)

    first, statuses = build(dbt_dir, warehouse)
    assert first.returncode == 0, first.stdout[-4000:]
    assert statuses["orders"] == "success"
    assert "not_null_orders_updated_at" in statuses  # the check that part (c) relies on is built
    assert orders(warehouse) == [1, 2, 4]

    # (a) The table exists but is empty: max(updated_at) is null, and every row must still load.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("delete from main.orders")
    refill, _ = build(dbt_dir, warehouse)
    assert refill.returncode == 0, refill.stdout[-4000:]
    assert orders(warehouse) == [1, 2, 4]

    # (b) A purchase arrives after that run with updated_at equal to the mark already loaded.
    with duckdb.connect(str(warehouse)) as con:
        add_purchase(con, 5, LATEST)
    late, _ = build(dbt_dir, warehouse)
    assert late.returncode == 0, late.stdout[-4000:]
    assert orders(warehouse) == [1, 2, 4, 5]  # once each: the rows re-read at the mark replaced themselves

    # (c) A purchase without updated_at is in orders, and the build fails on that test alone.
    with duckdb.connect(str(warehouse)) as con:
        add_purchase(con, 6, None)
    flagged, statuses = build(dbt_dir, warehouse)
    assert flagged.returncode == 1
    assert {name for name, status in statuses.items() if status not in {"success", "pass"}} == {
        "not_null_orders_updated_at"
    }
    assert statuses["not_null_orders_updated_at"] == "fail"
    assert "Failure in test not_null_orders_updated_at" in flagged.stdout
    assert orders(warehouse) == [1, 2, 4, 5, 6]
