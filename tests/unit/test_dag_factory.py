"""The factory's wiring: expected task ids, and every edge from a sync to the models that read it."""

from __future__ import annotations

import pytest

from elt_platform.dag_factory import build_elt_dag
from tests.conftest import BUNDLED_MODELS, REPO, copy_project

SOURCES = ["faker.users", "faker.products", "faker.purchases", "support.tickets"]


@pytest.fixture(scope="module")
def dag(manifest_path):
    return build_elt_dag(dag_id="wiring", dbt_project_dir=REPO / "dbt_project", ingestion_dir=REPO / "ingestion")


def upstream(dag, task_id: str) -> set[str]:
    return dag.get_task(task_id).upstream_task_ids


def all_upstream(dag, task_id: str) -> set[str]:
    return {t.task_id for t in dag.get_task(task_id).get_flat_relatives(upstream=True)}


def test_one_sync_per_connection_and_one_task_per_model_and_source(dag):
    ids = set(dag.task_ids)
    assert {t for t in ids if not t.startswith(("transform.", "dashboards."))} == {
        "sync_shop_faker",
        "sync_support_desk",
    }
    assert {f"transform.{node}" for node in [*BUNDLED_MODELS, *SOURCES]} <= ids
    relationships = {t for t in ids if t.startswith("transform.relationships_")}
    assert len(relationships) == 4  # tests reading two models: a task each, after both
    # one build per set of loads
    builds = {"transform.dbt_build__shop_faker", "transform.dbt_build__support_desk"}
    builds |= {"transform.dbt_build__shop_faker__support_desk"}
    own = {"sync_shop_faker", "sync_support_desk", "transform.fail_run_if_a_node_failed"} | builds
    dashboards = {f"dashboards.{d}" for d in ("marts", "customer_360", "sales_performance", "support_operations")}
    assert ids == own | relationships | dashboards | {f"transform.{node}" for node in [*BUNDLED_MODELS, *SOURCES]}


def test_each_source_waits_for_the_sync_that_loads_it(dag):
    for table in ("users", "products", "purchases"):
        assert upstream(dag, f"transform.faker.{table}") == {"sync_shop_faker"}
    assert upstream(dag, "transform.support.tickets") == {"sync_support_desk"}


@pytest.mark.parametrize(
    ("model", "syncs"),
    [
        ("stg_faker__users", {"sync_shop_faker"}),
        ("orders", {"sync_shop_faker"}),
        ("products", {"sync_shop_faker"}),
        ("tickets", {"sync_support_desk"}),
        ("int_tickets_aggregated_to_customers", {"sync_support_desk"}),
        ("customers", {"sync_shop_faker", "sync_support_desk"}),
    ],
)
def test_a_model_waits_for_exactly_the_syncs_it_reads_from(dag, model, syncs):
    found = {t for t in all_upstream(dag, f"transform.{model}") if t.startswith("sync_")}
    assert found == syncs


def test_model_edges_follow_dbt_refs(dag):
    assert upstream(dag, "transform.stg_faker__users") == {"transform.faker.users"}
    assert upstream(dag, "transform.customers") == {
        "transform.stg_faker__users",
        "transform.orders",
        "transform.int_tickets_aggregated_to_customers",
    }
    assert upstream(dag, "transform.relationships_orders_product_id__product_id__ref_products_") == {
        "transform.orders",
        "transform.products",
    }


def test_factory_renders_any_project_path(tmp_path):
    dbt_dir, ingestion_dir = copy_project(tmp_path)
    other = build_elt_dag(dag_id="copy", dbt_project_dir=dbt_dir, ingestion_dir=ingestion_dir)
    assert other.get_task("transform.orders").runner.project_dir == dbt_dir
    assert other.get_task("transform.dbt_build__shop_faker").project_dir == str(dbt_dir)
    assert other.get_task("sync_support_desk").connection_file == str(ingestion_dir / "support_desk.yml")
