"""Break one model, or one sync, in a copy of the project and check where the failure lands.

The runs are the scenario DAGs of tests/integration/scenarios.py, shared with test_alerts.py:
``alerts_models`` has a model with broken SQL, ``alerts_sync`` a help-desk sync that fails.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.integration.scenarios import BROKEN_MODEL

pytestmark = pytest.mark.integration

FAKER_ONLY = {"stg_faker__users", "stg_faker__products", "stg_faker__purchases"}
FAIL_RUN = "transform.fail_run_if_a_node_failed"  # fails the run: the dashboards' tasks follow the failure
SUPPORT_ONLY = {"stg_support__tickets", "int_tickets_aggregated_to_customers", "tickets"}
# A test reading both connections' models: held back when either side fails.
TICKETS_TO_CUSTOMERS = "relationships_tickets_customer_id__customer_id__ref_customers_"


def tasks(models: set[str]) -> set[str]:
    return {f"transform.{m}" for m in models}


def transform(result, state: str) -> set[str]:
    return {t for t in result.with_state(state) if t.startswith("transform.")}


def test_broken_model_fails_only_its_own_task(stack, runs):
    result = runs["alerts_models"]

    assert result.state == "failed"
    assert result.with_state("failed") == {f"transform.{BROKEN_MODEL}", FAIL_RUN}
    held_back = tasks(
        {
            "orders",
            "products",
            "customers",
            "relationships_orders_product_id__product_id__ref_products_",
            TICKETS_TO_CUSTOMERS,
        }
    )
    assert held_back == transform(result, "upstream_failed")  # held back by the scheduler, never started
    assert tasks(FAKER_ONLY | SUPPORT_ONLY) <= result.with_state("success")
    log = stack.task_log("alerts_models", result.run_id, f"transform.{BROKEN_MODEL}", 1)
    assert "no_such_column" in log.text


def test_a_broken_model_s_dashboards_are_stale_naming_it_with_dbt_s_error(runs):
    result = runs["alerts_models"]
    # no asset event for the two that read it; the help desk's dashboard is fresh (its warn test only warns)
    assert result.states["dashboards.sales_performance"] == "skipped"
    assert result.states["dashboards.customer_360"] == "skipped"
    assert result.states["dashboards.support_operations"] == "success"
    health = result.health  # the API server's JSON, right after the run
    assert {name: d["status"] for name, d in health.items()} == {
        "customer_360": "stale",
        "sales_performance": "stale",
        "support_operations": "fresh",
    }
    for name in ("customer_360", "sales_performance"):
        (cause,) = health[name]["causes"]
        assert (cause["kind"], cause["name"]) == ("model", BROKEN_MODEL)
        assert "no_such_column" in cause["message"]
        assert cause["needs_fix"]  # a binder error: no retry fixes it
        run = quote(result.run_id)
        assert cause["log_url"] == f"/dags/alerts_models/runs/{run}/tasks/transform.{BROKEN_MODEL}?try_number=1"
    assert health["sales_performance"]["held_back"] == ["orders", "products"]


def test_failed_sync_holds_back_only_the_models_that_read_from_it(runs):
    result = runs["alerts_sync"]

    assert result.state == "failed"
    assert result.with_state("failed") == {"sync_support_desk", FAIL_RUN}
    # the source it loads, and what reads from it: held back, never started
    assert result.with_state("upstream_failed") == tasks(
        SUPPORT_ONLY | {"customers", "support.tickets", TICKETS_TO_CUSTOMERS}
    )
    faker_side = {"orders", "products", BROKEN_MODEL} | FAKER_ONLY
    assert tasks(faker_side) <= result.with_state("success")
    assert "sync_shop_faker" in result.with_state("success")
    # Exactly the dashboards reading the help desk are stale: no asset event for them.
    dashboards = {t: s for t, s in result.states.items() if t.startswith("dashboards.")}
    assert dashboards == {
        "dashboards.marts": "success",
        "dashboards.customer_360": "skipped",
        "dashboards.sales_performance": "success",
        "dashboards.support_operations": "skipped",
    }
