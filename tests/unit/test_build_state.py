"""What a build keeps for the next run, and which of its nodes it reuses (ELT_BUILD_STATE)."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from elt_platform.dag_factory import build_elt_dag
from elt_platform.settings import Settings, SettingsError
from elt_platform.transform import build_state
from elt_platform.transform.results import REUSED, records_of
from tests.conftest import REPO

SHOP = "transform.dbt_build__shop_faker"
ORDERS = "model.shop_analytics.orders"


@pytest.fixture(scope="module")
def dag(manifest_path, tmp_path_factory):
    from dataclasses import replace

    settings = replace(Settings.from_env({}), build_state=str(tmp_path_factory.mktemp("state")))
    return build_elt_dag(
        dag_id="reuse", dbt_project_dir=REPO / "dbt_project", ingestion_dir=REPO / "ingestion", settings=settings
    )


def test_the_state_is_per_dag_and_build_and_a_missing_or_broken_one_says_why(tmp_path):
    folder = build_state.state_folder(str(tmp_path), "shop_elt", SHOP)
    assert str(folder).endswith(f"shop_elt/{SHOP}")
    into = tmp_path / "into"
    into.mkdir()
    assert "no previous state" in build_state.fetch(folder, into)
    folder.mkdir(parents=True)
    (folder / build_state.MANIFEST).write_text('{"nodes": {')
    assert "unreadable" in build_state.fetch(folder, into) and "JSONDecodeError" in build_state.fetch(folder, into)


def test_what_a_build_did_not_pass_is_left_out_of_its_state_so_dbt_reads_it_as_new(tmp_path, manifest_path):
    folder = build_state.state_folder(str(tmp_path), "shop_elt", SHOP)
    ran = manifest_path.read_text()
    sources = {"results": [{"unique_id": "source.x", "status": "pass"}]}
    build_state.save(folder, ran, {ORDERS}, sources, {"model.shop_analytics.products": 1.5})
    into = tmp_path / "into"
    into.mkdir()
    assert build_state.fetch(folder, into) is None
    kept = json.loads((into / build_state.MANIFEST).read_text())
    assert ORDERS not in kept["nodes"] and "model.shop_analytics.products" in kept["nodes"]
    assert json.loads((into / build_state.SOURCES).read_text())["results"][0]["unique_id"] == "source.x"
    assert build_state.last_seconds(into) == {"model.shop_analytics.products": 1.5}
    build_state.save(folder, ran, set(), None, {})  # a build with no freshness check keeps none
    assert not (folder / build_state.SOURCES).exists()


def test_dbt_selects_what_changed_what_reads_newer_data_or_a_rebuilt_node_or_an_unmeasured_source():
    selector = build_state.reuse_selector(True, {"fqn:p.b", "fqn:p.a"}, {"crm.accounts"})
    assert selector == "state:modified+ source_status:fresher+ fqn:p.a+ fqn:p.b+ source:crm.accounts+"
    assert build_state.reuse_selector(False, set(), set()) == "state:modified+"  # no freshness checked


def test_the_setting_is_an_absolute_folder_or_a_url():
    assert Settings.from_env({"ELT_BUILD_STATE": "gs://bucket/state"}).build_state == "gs://bucket/state"
    with pytest.raises(SettingsError, match="ELT_BUILD_STATE='state' is neither an absolute folder nor a URL"):
        Settings.from_env({"ELT_BUILD_STATE": "state"})


def _context(states=None, try_number=1, full_refresh=False):
    ti = SimpleNamespace(dag_id="reuse", task_id=SHOP, try_number=try_number, xcom_pull=lambda **kw: None)
    return {"ti": ti, "params": {"full_refresh": full_refresh}, "dag_run": None}


def test_a_build_reuses_its_nodes_dbt_would_not_build_and_their_own_tests_with_them(dag, caplog):
    producer = dag.get_task(SHOP)
    stg = "model.shop_analytics.stg_faker__purchases"
    to_build = {stg, *producer.node_tasks[stg][2]}
    reused = producer._unchanged(to_build, held=set())
    assert stg not in reused and ORDERS in reused
    # a test whose own SQL changed runs again, with the node it checks
    test = next(t for t in producer.node_tasks[ORDERS][2] if t.startswith("test."))
    assert ORDERS not in producer._unchanged({test}, held=set())
    assert ORDERS not in producer._unchanged(set(), held={ORDERS})  # held back: left out, not reused
    assert not any(uid.startswith("source.") for uid in producer._unchanged(set(), held=set()))  # checks each load

    published = {}
    producer.publisher = SimpleNamespace(put=lambda uid, record: published.__setitem__(uid, record.as_json()))
    producer._push_node_state_xcom(None, ORDERS, REUSED)
    assert set(published) == set(producer.node_tasks[ORDERS][2]) and ORDERS in published
    assert all(r.passed for r in records_of(published).values())  # its task succeeds in the triggerer


def test_a_retry_a_full_refresh_or_a_first_run_builds_every_node(dag, caplog):
    producer = dag.get_task(SHOP)
    assert producer.reusable(_context(try_number=2), None, set()) == set()
    with caplog.at_level(logging.INFO):
        assert producer.reusable(_context(full_refresh=True), None, set()) == set()
        assert producer.reusable(_context(), None, set()) == set()
    assert "the run asks for a full refresh" in caplog.text
    assert "no previous state" in caplog.text


def test_the_dashboard_page_the_terminal_and_the_summary_say_what_reusing_saved():
    from elt_platform.health.pages import detail_page, plain_text
    from elt_platform.transform.results import NodeRecord, reuse_saving
    from tests.unit.test_health_publishing import health

    results = {
        ORDERS: NodeRecord(REUSED, seconds=2.25),
        "test.shop_analytics.not_null_orders_order_id.1": NodeRecord(REUSED, seconds=0.5),
        "model.shop_analytics.tickets": NodeRecord("success", seconds=1.0),
    }
    assert reuse_saving(results) == (1, 2.8)  # one model; it and its test took 2.75 s last time
    assert reuse_saving(results, nodes={"model.shop_analytics.tickets"}) == (0, 0.0)
    fresh = health(status="fresh").model_copy(update={"causes": [], "reused": 3, "reused_seconds": 12.5})
    note = "3 tables it reads had nothing new and were kept as built, saving about 12.5 s"
    assert note in detail_page(fresh, link=lambda url: url, badge_url=None)
    assert note in plain_text([fresh])
    assert "kept as built" not in plain_text([health(status="fresh").model_copy(update={"causes": []})])


def test_a_save_cut_short_keeps_the_old_freshness_so_the_next_run_rebuilds(tmp_path, manifest_path):
    """The manifest (without what failed) is written before the freshness: between the two, new
    data still reads as newer than the state, and what reads it is built again, not reused."""
    folder = build_state.state_folder(str(tmp_path), "shop_elt", SHOP)
    ran = manifest_path.read_text()
    build_state.save(folder, ran, set(), {"results": ["old"]}, {})
    with pytest.raises(TypeError):
        build_state.save(folder, ran, {ORDERS}, {"results": {"cannot", "be", "written"}}, {})
    assert ORDERS not in json.loads((folder / build_state.MANIFEST).read_text())["nodes"]
    assert json.loads((folder / build_state.SOURCES).read_text()) == {"results": ["old"]}


def test_a_source_without_a_freshness_check_is_selected_by_its_own_name_whatever_it_holds():
    """dbt matches ``source:`` parts with fnmatch: ``orders[1]`` unescaped would select ``orders1``
    and not itself, and what reads it would be reused though its data cannot be told new."""
    from fnmatch import fnmatch

    from elt_platform.dbt_manifest.nodes import SourceTable
    from elt_platform.transform.render import _reuse

    table = SourceTable("source.p.crm.orders[1]", "crm", "orders[1]", "raw", "m.yml", has_freshness=False)
    measured = SourceTable("source.p.crm.users", "crm", "users", "raw", "m.yml", has_freshness=True)
    manifest = SimpleNamespace(sources={t.unique_id: t for t in (table, measured)}, models={})
    producer = SimpleNamespace(read_elsewhere={}, node_tasks={})
    (unmeasured,) = _reuse(manifest, "/state", producer, {})["unmeasured"]
    source, _, name = unmeasured.partition(".")
    assert fnmatch("crm", source) and fnmatch("orders[1]", name) and not fnmatch("orders1", name)


def test_a_node_is_built_again_once_its_build_after_has_passed_since_its_last_build(tmp_path, manifest_path):
    """dbt's freshness.build_after, counted from the last build the state records; a node the
    state has no build of is due."""
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    built_at = {ORDERS: (now - timedelta(hours=5)).isoformat(), "model.p.fresh": (now - timedelta(hours=3)).isoformat()}
    due = build_state.due({ORDERS: 4 * 3600, "model.p.fresh": 4 * 3600, "model.p.new": 60}, built_at, now)
    assert set(due) == {ORDERS, "model.p.new"}
    assert due[ORDERS] == "its freshness.build_after (4:00:00) has passed: last built 5:00:00 ago"
    assert "does not record" in due["model.p.new"]
    broken = {ORDERS: "yesterday", "model.p.fresh": "2026-12-06T11:00:00"}  # a hand-edited state; a naive time
    assert set(build_state.due({ORDERS: 60, "model.p.fresh": 60}, broken, now)) == {ORDERS, "model.p.fresh"}
    selector = build_state.reuse_selector(True, set(), set(), {"fqn:p.orders"})
    assert selector == "state:modified+ source_status:fresher+ fqn:p.orders+"

    folder = build_state.state_folder(str(tmp_path), "shop_elt", SHOP)
    build_state.save(folder, manifest_path.read_text(), set(), None, {}, built_at)
    into = tmp_path / "into"
    into.mkdir()
    assert build_state.fetch(folder, into) is None
    assert build_state.last_built_at(into) == built_at


def test_build_after_is_read_from_the_model_config_as_dbt_parses_it(tmp_path, manifest_path):
    from elt_platform.dbt_manifest import load_manifest

    raw = json.loads(manifest_path.read_text())
    raw["nodes"][ORDERS]["config"]["freshness"] = {"build_after": {"count": 4, "period": "hour", "updates_on": "any"}}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(raw))
    models = load_manifest(path).models
    assert models[ORDERS].build_after_seconds == 4 * 3600
    assert models["model.shop_analytics.products"].build_after_seconds is None

    from dataclasses import replace

    from elt_platform.transform.render import _reuse

    producer = SimpleNamespace(read_elsewhere={}, node_tasks={ORDERS: ("transform.orders", "fqn:x.orders", [])})
    manifest = replace(load_manifest(path), sources={})
    assert _reuse(manifest, "/state", producer, {})["build_after"] == {ORDERS: [4 * 3600, "fqn:x.orders"]}


def test_a_reused_node_whose_table_is_not_in_the_warehouse_is_built_again_with_what_reads_it(tmp_path, manifest_path):
    """A new DuckDB file (or a table dropped by hand) beside an old state: what the state says
    was built is not there, and reusing it would leave the dashboards without it."""
    import duckdb

    from elt_platform.warehouse import missing_tables

    folder = build_state.state_folder(str(tmp_path), "shop_elt", SHOP)
    build_state.save(folder, manifest_path.read_text(), set(), None, {})
    into = tmp_path / "into"
    into.mkdir()
    build_state.fetch(folder, into)
    relations = build_state.relations(into)
    raw = json.loads(manifest_path.read_text())["nodes"][ORDERS]
    assert relations[ORDERS] == (raw["database"], raw["schema"], raw["alias"])
    assert not any(uid.startswith("test.") for uid in relations)

    warehouse = tmp_path / f"{raw['database']}.duckdb"
    products = "model.shop_analytics.products"
    assert missing_tables(warehouse, {ORDERS: relations[ORDERS]}) == {ORDERS}  # no file: nothing in it
    assert not warehouse.exists()
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f'create schema if not exists "{raw["schema"]}"')
        con.execute(f'create table "{raw["schema"]}"."{raw["alias"].upper()}" (id int)')
    assert missing_tables(warehouse, {ORDERS: relations[ORDERS], products: relations[products]}) == {products}
    renamed = tmp_path / "another.duckdb"
    warehouse.rename(renamed)  # another file: its catalog is not the one the state's build wrote to
    assert missing_tables(renamed, {ORDERS: relations[ORDERS]}) == {ORDERS}


def test_what_the_warehouse_file_lacks_is_built_again_with_what_reads_it(dag, tmp_path, monkeypatch, caplog):
    import duckdb

    producer = dag.get_task(SHOP)
    warehouse = tmp_path / "analytics.duckdb"
    conn = {"conn_type": "duckdb", "host": str(warehouse)}
    monkeypatch.setenv(f"AIRFLOW_CONN_{producer.duckdb_conn_id.upper()}", json.dumps(conn))
    unchanged = producer._unchanged(set(), held=set())
    kept = {uid: ("analytics", "main", uid.rpartition(".")[2]) for uid in unchanged}
    purchases, users = "model.shop_analytics.stg_faker__purchases", "model.shop_analytics.stg_faker__users"
    with duckdb.connect(str(warehouse)) as con:
        for uid, (_, schema, name) in kept.items():
            if uid != purchases:  # dropped by hand
                con.execute(f'create table "{schema}"."{name}" (id int)')
    with caplog.at_level(logging.INFO):
        rebuilt = producer._not_in_warehouse(unchanged, kept)
    assert {purchases, "model.shop_analytics.int_purchases_joined_to_products", ORDERS} <= rebuilt
    assert users not in rebuilt
    assert f"Building {purchases} and what reads them: the warehouse file does not hold their tables" in caplog.text
    warehouse.unlink()  # a new warehouse file: nothing the state says was built is there
    assert producer._not_in_warehouse(unchanged, kept) >= unchanged
