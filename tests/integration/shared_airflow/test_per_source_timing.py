"""Each dashboard fresh as soon as its own loads land, under the real scheduler.

The shop's load (source-faker) is made as slow as the test needs: the test holds the lock of that
connection's own store, which a sync takes before its connector writes, so the sync runs and waits.
Meanwhile the help desk's load lands, its build runs, and its dashboard is published fresh.
"""

from __future__ import annotations

import time

import pytest

from elt_platform.ingestion.sync_store import store_path
from elt_platform.warehouse import warehouse_lock
from tests.integration.shared_airflow.conftest import _result

pytestmark = pytest.mark.integration

DAG_ID = "one_slow_load"
SHOP = "Shop storefront (Faker demo data)"


def health(stack) -> dict[str, dict]:
    response = stack.client.get(f"{stack.base_url}/dashboards/api/health")
    response.raise_for_status()
    return {d["name"]: d for d in response.json()["dashboards"] if d["dag_id"] == DAG_ID}


def test_a_dashboard_of_a_fast_load_is_fresh_while_a_slow_load_of_the_same_run_still_syncs(stack):
    with warehouse_lock(store_path(stack.warehouses[DAG_ID], "shop_faker")):
        run_id = stack.trigger(DAG_ID)
        deadline = time.monotonic() + 900
        while (states := _states(stack, run_id)).get("dashboards.support_operations") not in {
            "success",
            "skipped",
            "failed",
            "upstream_failed",
        }:
            assert time.monotonic() < deadline, states
            time.sleep(2)
        assert states["dashboards.support_operations"] == "success"
        assert states["sync_shop_faker"] == "running"  # still loading
        assert states["transform.dbt_build__support_desk"] == "success"
        assert states.get("transform.dbt_build__shop_faker") in {None, "scheduled", "queued"}  # never started
        assert states.get("transform.orders") in {None, "scheduled", "queued", "deferred"}
        during = health(stack)
        support, sales, customers = (during[n] for n in ("support_operations", "sales_performance", "customer_360"))
        assert (support["status"], support["run_id"], support["run_in_progress"]) == ("fresh", run_id, True)
        assert sales["refreshing"] and sales["waiting_for"] == [SHOP]
        assert customers["refreshing"] and customers["waiting_for"] == [SHOP]
    result = _result(stack, DAG_ID, run_id)  # the shop's load goes on once the lock is let go
    assert result.state == "success"
    states = dict(result.states)
    assert states.pop("transform.fail_run_if_a_node_failed") == "skipped"
    assert set(states.values()) == {"success"}, states
    after = health(stack)
    assert {name: d["status"] for name, d in after.items()} == dict.fromkeys(after, "fresh")
    assert {d["run_id"] for d in after.values()} == {run_id}


def _states(stack, run_id: str) -> dict[str, str | None]:
    return {task_id: ti["state"] for task_id, ti in stack.task_instances(DAG_ID, run_id).items()}
