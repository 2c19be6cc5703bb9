"""Builds that reuse what nothing changed (ELT_BUILD_STATE), under the real scheduler.

The first run has no state: it builds every node. Before each later run, the shop's Faker
connection has no new records (``always_updated: false``), while the help desk's CSV is read
again in full (a new ``_airbyte_extracted_at``): dbt's ``source_status:fresher`` sees newer
data in the help desk's source only. The second run rebuilds exactly what reads it, reuses the
rest, and every task, table and dashboard ends as after a full build. A full refresh reuses
nothing; a model whose SQL changed is rebuilt with what reads it; one that failed is rebuilt
by the next run, though its SQL is back to that of its last good build.
"""

from __future__ import annotations

import pytest

from devstack.crash import published_results
from elt_platform.dbt_manifest import load_manifest
from elt_platform.dbt_manifest.graph import descendants
from tests import conformance
from tests.integration.shared_airflow.conftest import _result

pytestmark = pytest.mark.integration

DAG_ID = "reuse_unchanged"
PRODUCTS = "model.shop_analytics.products"
BUILDS = ("dbt_build__shop_faker", "dbt_build__support_desk", "dbt_build__shop_faker__support_desk")


def _statuses(stack, run_id: str) -> dict[str, str]:
    statuses = {}
    for build in BUILDS:
        records = published_results(stack.client, DAG_ID, run_id, f"transform.{build}") or {}
        statuses |= {uid: record.status for uid, record in records.items()}
    return statuses


def test_a_second_run_rebuilds_exactly_what_reads_new_data_and_reuses_the_rest(stack, tmp_path):
    first_id = stack.trigger(DAG_ID)
    first = _result(stack, DAG_ID, first_id)
    assert first.state == "success"
    built = _statuses(stack, first_id)
    assert built and "reused" not in built.values()  # no state yet: every node built

    second_id = stack.trigger(DAG_ID)
    second = _result(stack, DAG_ID, second_id)
    assert second.state == "success"
    states = dict(second.states)
    assert states.pop("transform.fail_run_if_a_node_failed") == "skipped"
    assert set(states.values()) == {"success"}, states  # a reused node's task succeeds

    manifest = load_manifest(stack.projects[DAG_ID] / "target" / "manifest.json")
    parents = {uid: m.depends_on for uid, m in manifest.models.items()}
    parents |= {uid: t.depends_on for uid, t in manifest.tests.items()}
    reads_new_data = descendants(parents, {"source.shop_analytics.support.tickets"})
    statuses = _statuses(stack, second_id)
    # A source's freshness check and tests check each load: they run every time.
    on_sources = {uid for uid, t in manifest.tests.items() if all(p.startswith("source.") for p in t.depends_on)}
    nodes = {uid for uid in statuses if uid.split(".")[0] in {"model", "test"}} - on_sources
    assert {statuses[uid] for uid in on_sources} == {"pass"}
    reused = {uid for uid in nodes if statuses[uid] == "reused"}
    assert nodes - reused == nodes & reads_new_data
    assert reused == nodes - reads_new_data
    assert {"model.shop_analytics.orders", "model.shop_analytics.stg_faker__users"} <= reused
    assert {"model.shop_analytics.tickets", "model.shop_analytics.customers"}.isdisjoint(reused)

    # Zero stale results: every table as a plain dbt build of every node leaves it.
    warehouse = stack.warehouses[DAG_ID]
    by_hand = conformance.built_in_full(stack.projects[DAG_ID], warehouse, tmp_path)
    assert conformance.table_contents(warehouse) == conformance.table_contents(by_hand)

    health = {d["name"]: d for d in _health(stack)}
    assert {name: d["status"] for name, d in health.items()} == dict.fromkeys(
        ("customer_360", "sales_performance", "support_operations"), "fresh"
    )
    # What reusing saved, as the pages and `elt health` say it: the shop's tables, with their last build's time.
    sales, support = health["sales_performance"], health["support_operations"]
    assert sales["reused"] >= 4 and sales["reused_seconds"] > 0
    assert (support["reused"], support["reused_seconds"]) == (0, 0.0)

    # The run's full_refresh param (the UI's, `elt run --full-refresh`): every node built again.
    third_id = stack.trigger(DAG_ID, conf={"full_refresh": True})
    assert _result(stack, DAG_ID, third_id).state == "success"
    assert "reused" not in _statuses(stack, third_id).values()

    # A model's SQL changed, and breaks it: dbt builds it and what reads it (which it holds back).
    products_sql = stack.projects[DAG_ID] / "models" / "marts" / "sales" / "products.sql"
    working = products_sql.read_text()
    products_sql.write_text(working.replace("select * from {{ ref('stg_faker__products') }}", "select no_such"))
    fourth_id = stack.trigger(DAG_ID)
    assert _result(stack, DAG_ID, fourth_id).state == "failed"
    statuses = _statuses(stack, fourth_id)
    products = {PRODUCTS} | descendants(parents, {PRODUCTS})
    assert statuses[PRODUCTS] == "error"
    assert {uid for uid in nodes if statuses.get(uid) == "reused"} == nodes - reads_new_data - products

    # Fixed, back to the SQL of its last good build: the failed run left it out of the state, so
    # it is built again, with what reads it; the rest is reused.
    products_sql.write_text(working)
    fifth_id = stack.trigger(DAG_ID)
    assert _result(stack, DAG_ID, fifth_id).state == "success"
    statuses = _statuses(stack, fifth_id)
    assert statuses[PRODUCTS] == "success"
    assert {uid for uid in nodes if statuses.get(uid) == "reused"} == nodes - reads_new_data - products
    # Everything else ran in the build, the orders->products test too, though orders is reused.
    relationships = next(uid for uid in nodes if ".relationships_orders_product_id__" in uid)
    assert relationships in products and statuses[relationships] == "pass"
    assert {statuses.get(uid) for uid in nodes & products} == {"success", "pass"}


def _health(stack) -> list[dict]:
    response = stack.client.get(f"{stack.base_url}/dashboards/api/health")
    response.raise_for_status()
    return [d for d in response.json()["dashboards"] if d["dag_id"] == DAG_ID]
