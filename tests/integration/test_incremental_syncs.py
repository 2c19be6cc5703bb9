"""Local syncs of the Faker connection, twice and more, through the real runner (PyAirbyte and the
real connector in the ingestion environment), the real hand-over to a DuckDB warehouse and a real
`dbt build` of ``orders``: a second sync reads only what is new, raw tables hold each primary key
once, ``orders`` adds exactly the new purchases, full refreshes re-read everything, and the
warehouse's lock is free while the connector reads."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import pytest

from elt_platform.ingestion.connections import load_connection_file, resolve_config
from elt_platform.ingestion.local_sync import sync_locally
from elt_platform.settings import Settings
from elt_platform.warehouse import warehouse_lock
from tests.conftest import copy_project
from tests.integration.test_orders_incremental import build, orders

pytestmark = pytest.mark.integration

EVERYTHING = {"users": 500, "products": 100, "purchases": 500}  # the bundled file: count 500
NOTHING = {"users": 0, "products": 0, "purchases": 0}


class RecordingLog:
    """What the sync logs, kept for the test (and each line's time)."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []

    def info(self, message: str, *args: object) -> None:
        self.lines.append((time.monotonic(), message % args))

    warning = info

    def first(self, start: str) -> float | None:
        return next((at for at, line in self.lines if line.startswith(start)), None)


class Faker:
    """The bundled Faker connection file, copied, and synced into one warehouse."""

    def __init__(self, tmp_path: Path) -> None:
        self.dbt_dir, ingestion_dir = copy_project(tmp_path)
        self.file = ingestion_dir / "shop_faker.yml"
        self.warehouse = tmp_path / "warehouse" / "analytics.duckdb"

    def edit(self, old: str, new: str) -> None:
        text = self.file.read_text()
        assert old in text
        self.file.write_text(text.replace(old, new))

    def sync(self, full_refresh: bool = False, log: RecordingLog | None = None) -> dict:
        loaded, problems = load_connection_file(self.file)
        assert loaded is not None, problems
        config = resolve_config(loaded.spec.source.config, self.file)
        return sync_locally(
            loaded.spec, config, self.warehouse, Settings.from_env(), log or RecordingLog(), full_refresh
        )

    def raw(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(sql).fetchall()

    def raw_ids(self, table: str) -> dict[int, str]:
        """Primary key -> _airbyte_raw_id (which changes when the row is written again)."""
        rows = self.raw(f"select id, _airbyte_raw_id from raw_faker.{table}")
        assert len(rows) == len({pk for pk, _ in rows}), f"raw_faker.{table} holds a primary key twice"
        return dict(rows)


def records(result: dict) -> dict[str, int]:
    return {name: read["records"] for name, read in result["reads"].items()}


def modes(result: dict) -> set[str]:
    return {read["sync_mode"] for read in result["reads"].values()}


def test_a_second_sync_reads_only_what_is_new_and_orders_adds_exactly_those_rows(tmp_path):
    faker = Faker(tmp_path)

    first = faker.sync()
    assert records(first) == EVERYTHING and modes(first) == {"incremental"}
    assert first["streams"] == EVERYTHING and first["rows_synced"] == 1100
    run, statuses = build(faker.dbt_dir, faker.warehouse)
    assert run.returncode == 0, run.stdout[-4000:]
    assert statuses["orders"] == "success"
    first_orders = orders(faker.warehouse)
    assert first_orders and len(first_orders) == len(set(first_orders))
    before = {table: faker.raw_ids(table) for table in EVERYTHING}

    # Faker with always_updated: false has nothing new on a second run: it reads nothing.
    second = faker.sync()
    assert records(second) == NOTHING and modes(second) == {"incremental"}
    assert second["rows_synced"] == 0 and second["streams"] == EVERYTHING
    assert {table: faker.raw_ids(table) for table in EVERYTHING} == before  # no row written again
    run, _ = build(faker.dbt_dir, faker.warehouse)
    assert run.returncode == 0, run.stdout[-4000:]
    assert orders(faker.warehouse) == first_orders

    # Faker 7.2.1 ignores a larger count once a stream has state (always_updated: false): still nothing.
    faker.edit("count: 500", "count: 600")
    grown = faker.sync()
    assert records(grown) == NOTHING

    # always_updated: true re-sends every record with a new updated_at: merged by primary key, the
    # raw tables gain the new keys once and orders exactly the new purchases that were paid for.
    faker.edit("always_updated: false", "always_updated: true")
    resent = faker.sync()
    assert records(resent) == {"users": 600, "products": 100, "purchases": 600}
    users, purchases = faker.raw_ids("users"), faker.raw_ids("purchases")
    assert set(users) == set(range(1, 601)) and len(purchases) == 600
    assert set(purchases) > set(before["purchases"])
    run, _ = build(faker.dbt_dir, faker.warehouse)
    assert run.returncode == 0, run.stdout[-4000:]
    new_orders = {
        pk
        for (pk,) in faker.raw(
            "select id from raw_faker.purchases where purchased_at is not null and id not in "
            f"({', '.join(map(str, before['purchases']))})"
        )
    }
    assert new_orders, "the grown count brought no new paid purchase: the check below proves nothing"
    after = orders(faker.warehouse)
    assert len(after) == len(set(after))
    assert set(after) - set(first_orders) == new_orders


def test_a_full_refresh_stream_and_a_full_refresh_run_read_everything_again(tmp_path):
    faker = Faker(tmp_path)
    faker.edit("  - products\n", "  - {name: products, sync_mode: full_refresh}\n")

    first = faker.sync()
    assert records(first) == EVERYTHING
    assert first["reads"]["products"]["sync_mode"] == "full_refresh"
    assert first["reads"]["users"]["sync_mode"] == "incremental"
    before = {table: faker.raw_ids(table) for table in EVERYTHING}

    second = faker.sync()
    assert records(second) == {"users": 0, "products": 100, "purchases": 0}
    products = faker.raw_ids("products")
    assert set(products) == set(before["products"])
    assert not set(products.values()) & set(before["products"].values())  # every product row replaced
    assert faker.raw_ids("users") == before["users"]

    everything = faker.sync(full_refresh=True)
    assert records(everything) == EVERYTHING and modes(everything) == {"full_refresh"}
    assert everything["streams"] == EVERYTHING
    users = faker.raw_ids("users")
    assert set(users) == set(before["users"]) and not set(users.values()) & set(before["users"].values())

    # The full refresh replaced the state: the next run is incremental again and finds nothing new.
    after = faker.sync()
    assert records(after) == {"users": 0, "products": 100, "purchases": 0}


def test_the_warehouse_lock_is_free_while_the_connector_reads(tmp_path):
    """The warehouse is held elsewhere (a build) for the whole sync: the connector's read ends
    all the same, and only the hand-over waits for the lock."""
    faker = Faker(tmp_path)
    faker.warehouse.parent.mkdir(parents=True)
    log = RecordingLog()
    outcome: dict = {}
    sync = threading.Thread(target=lambda: outcome.update(faker.sync(log=log)))

    with warehouse_lock(faker.warehouse):
        held = time.monotonic()
        sync.start()
        deadline = held + 120
        while log.first("Read ") is None and sync.is_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        read_done = log.first("Read ")
        assert read_done is not None, "the connector's read did not end while the warehouse was locked"
        time.sleep(2)
        assert sync.is_alive(), "the hand-over did not wait for the warehouse's lock"
        assert not faker.warehouse.exists()  # nothing reached the warehouse meanwhile
        released = time.monotonic()
    sync.join(timeout=120)

    assert records(outcome) == EVERYTHING and outcome["streams"] == EVERYTHING
    assert outcome["hand_over_wait_seconds"] >= released - read_done - 0.5
    assert outcome["hand_over_lock_seconds"] < 5
