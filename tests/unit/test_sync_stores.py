"""Sync modes in the ingestion files, the runner's request, the run's ``full_refresh`` param, and the
hand-over of a connection's store to the warehouse (real DuckDB files, in this process)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import jsonschema
import pytest

from elt_platform.ingestion.connections import ConnectionSpec, SyncMode, load_connections
from elt_platform.ingestion.local_sync import sync_request
from elt_platform.ingestion.sync_store import hand_over, store_path
from elt_platform.run_params import full_refresh_requested
from elt_platform.warehouse import lock_file, quoted_name, quoted_table
from tests.conftest import REPO

FAKER = (REPO / "ingestion" / "shop_faker.yml").read_text()
MIXED = FAKER.replace("  - products\n", "  - {name: products, sync_mode: full_refresh}\n  - {name: reviews}\n")


def _load(tmp_path: Path, text: str) -> ConnectionSpec:
    (tmp_path / "shop_faker.yml").write_text(text)
    [loaded] = load_connections(tmp_path)
    return loaded.spec


def test_a_stream_is_a_name_or_a_mapping_and_names_stay_names(tmp_path):
    spec = _load(tmp_path, MIXED)

    assert spec.streams == ["users", "products", "reviews", "purchases"]  # what airbyte_contract and tables read
    assert {s.name: s.sync_mode for s in spec.stream_specs} == {
        "users": SyncMode.INCREMENTAL,
        "products": SyncMode.FULL_REFRESH,
        "reviews": SyncMode.INCREMENTAL,
        "purchases": SyncMode.INCREMENTAL,
    }
    assert spec.tables["products"] == "products"


def test_the_field_is_written_streams_only(tmp_path):
    (tmp_path / "shop_faker.yml").write_text(FAKER.replace("streams:", "stream_specs:"))
    with pytest.raises(Exception, match="stream_specs: unknown field") as raised:
        load_connections(tmp_path)
    assert "streams: required field is missing" in str(raised.value)


def test_the_committed_schema_accepts_both_forms_and_refuses_a_bad_sync_mode():
    import yaml

    schema = json.loads((REPO / "ingestion" / "connection.schema.json").read_text())
    jsonschema.validate(yaml.safe_load(MIXED), schema)
    bad = yaml.safe_load(MIXED.replace("sync_mode: full_refresh", "sync_mode: full"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_the_request_carries_each_stream_s_mode_and_the_run_s_full_refresh(tmp_path):
    spec = _load(tmp_path, MIXED)

    request = sync_request(spec, {"count": 1}, "/stores/shop_faker.duckdb", full_refresh=True)

    assert request["streams"][:2] == [
        {"name": "users", "sync_mode": "incremental"},
        {"name": "products", "sync_mode": "full_refresh"},
    ]
    assert request["full_refresh"] is True
    assert request["store_path"] == "/stores/shop_faker.duckdb"
    assert "warehouse_path" not in request  # the connector's process is never told where the warehouse is
    assert sync_request(spec, {}, "/s")["full_refresh"] is False


class _Run:
    def __init__(self, conf):
        self.conf = conf


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"params": {"full_refresh": True}}, True),
        ({"params": {"full_refresh": False}, "dag_run": _Run({"full_refresh": True})}, False),  # the param decides
        ({"params": {}, "dag_run": _Run({"full_refresh": True})}, True),  # a DAG without the param
        ({"params": {"full_refresh": "true"}}, False),  # a string is not a yes
        ({"params": {}, "dag_run": _Run(None)}, False),
        ({}, False),
    ],
)
def test_the_full_refresh_param(context, expected):
    assert full_refresh_requested(context) is expected


def test_the_store_is_beside_the_warehouse_and_has_a_lock_of_its_own(tmp_path):
    warehouse = tmp_path / "warehouse" / "analytics.duckdb"
    store = store_path(warehouse, "shop_faker")
    assert store == tmp_path / "warehouse" / "sync_stores" / "analytics.duckdb" / "shop_faker.duckdb"
    assert lock_file(store) != lock_file(warehouse)
    # another warehouse in the same folder (another DAG): a store, and incremental state, of its own
    assert store_path(tmp_path / "warehouse" / "staging.duckdb", "shop_faker") != store


def _raw_table(con, schema: str, table: str, ids: list[int]) -> None:
    con.execute(f"create schema if not exists {quoted_name(schema)}")
    name = quoted_table(schema, table)
    con.execute(
        f"create or replace table {name} (id bigint, _airbyte_raw_id varchar, "
        "_airbyte_extracted_at timestamptz, _airbyte_meta json)"
    )
    for i in ids:
        con.execute(f"insert into {name} values (?, ?, now(), '{{}}')", [i, f"r{i}"])


def test_the_hand_over_replaces_each_raw_table_by_the_store_s(tmp_path):
    store, warehouse = tmp_path / "store.duckdb", tmp_path / "analytics.duckdb"
    with duckdb.connect(str(store)) as con:
        _raw_table(con, 'raw"faker', "users", [1, 2, 3])
        _raw_table(con, 'raw"faker', "products", [7])
    with duckdb.connect(str(warehouse)) as con:
        con.execute('create schema "raw""faker"')
        con.execute('create table "raw""faker".users (id bigint, dropped_column varchar)')
        con.execute('insert into "raw""faker".users values (99, \'old\')')

    done = hand_over(store, warehouse, 'raw"faker', {"users": "users", "products": "products"})

    assert done.rows == {"users": 3, "products": 1}
    assert done.lock_seconds >= 0 and done.wait_seconds >= 0
    with duckdb.connect(str(warehouse)) as con:
        assert con.execute('select id from "raw""faker".users order by id').fetchall() == [(1,), (2,), (3,)]
        columns = [c[0] for c in con.execute('describe "raw""faker".users').fetchall()]
        assert columns == ["id", "_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta"]
        assert [d[0] for d in con.execute("select database_name from duckdb_databases()").fetchall()].count(
            "elt_sync_store"
        ) == 0  # detached
    with duckdb.connect(str(store)) as con:  # the store is let go of: its next sync can write it
        con.execute("insert into \"raw\"\"faker\".products values (8, 'r8', now(), '{}')")


def test_a_stream_the_store_lacks_leaves_every_raw_table_as_it_was(tmp_path):
    store, warehouse = tmp_path / "store.duckdb", tmp_path / "analytics.duckdb"
    with duckdb.connect(str(store)) as con:
        _raw_table(con, "raw_faker", "users", [1, 2, 3])
    with duckdb.connect(str(warehouse)) as con:
        _raw_table(con, "raw_faker", "users", [42])

    with pytest.raises(RuntimeError, match=r"has no table raw_faker\.purchases for stream 'purchases'"):
        hand_over(store, warehouse, "raw_faker", {"users": "users", "purchases": "purchases"})

    with duckdb.connect(str(warehouse)) as con:  # one transaction: users was not replaced either
        assert con.execute("select id from raw_faker.users").fetchall() == [(42,)]
