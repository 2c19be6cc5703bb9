"""The default transform mode under the scheduler: one dbt build per run, one task per dbt node.

Uses the DAG runs of tests/integration/shared_airflow/conftest.py: ``shop_elt`` (all green),
``alerts_models`` (a broken model, and a model that fails twice and then recovers) and
``alerts_sync`` (the help-desk sync fails).
"""

from __future__ import annotations

import pytest

from elt_platform.transform.triggerer_plugin import LIGHTENED
from tests.integration.scenarios import BROKEN_MODEL

pytestmark = pytest.mark.integration

# One build per set of loads; the shop's side holds the broken and the slow models of the scenarios.
PRODUCER = "transform.dbt_build__shop_faker"
SUPPORT_BUILD, BOTH_BUILD = "transform.dbt_build__support_desk", "transform.dbt_build__shop_faker__support_desk"
BUILDS = {PRODUCER, SUPPORT_BUILD, BOTH_BUILD}
FAIL_RUN = "transform.fail_run_if_a_node_failed"


def on_a_worker(tis: dict[str, dict]) -> set[str]:
    """Tasks that went through the executor; the others started and ended in the triggerer."""
    return {t for t, ti in tis.items() if t.startswith("transform.") and ti["queued_when"] is not None}


def test_one_dbt_build_per_set_of_loads_and_passing_nodes_never_reach_a_worker(runs):
    tis = runs["shop_elt"].tis
    nodes = {t for t in tis if t.startswith("transform.") and t not in {*BUILDS, FAIL_RUN}}
    assert len(nodes) == 10 + 4 + 4  # models, source tables, tests reading two models
    assert {tis[t]["state"] for t in nodes} == {"success"}
    assert tis[FAIL_RUN]["state"] == "skipped"  # nothing failed
    assert {(tis[b]["state"], tis[b]["try_number"]) for b in BUILDS} == {("success", 1)}
    assert on_a_worker(tis) == BUILDS


def test_the_triggerer_readied_itself_for_the_node_tasks_as_it_started(stack, runs):
    """Airflow loaded the plugin from its entry point, and its listener ran in the real triggerer
    before any node task started there (the runs above are green through it)."""
    log = (stack.home / "triggerer.log").read_text()
    first_node_task = log.index("Start from trigger enabled for task transform.")  # Airflow's own line
    assert LIGHTENED in log[:first_node_task]


def test_a_failing_model_fails_its_own_task_not_the_build(runs):
    tis = runs["alerts_models"].tis
    assert (tis[PRODUCER]["state"], tis[PRODUCER]["try_number"]) == ("success", 1)
    assert tis[f"transform.{BROKEN_MODEL}"]["state"] == "failed"


def test_a_retry_runs_that_model_alone_then_what_dbt_skipped_after_it(stack, runs):
    run = runs["alerts_models"]
    log = stack.task_log("alerts_models", run.run_id, "transform.stg_support__tickets", 2).text
    assert "Try 2: dbt build has ended. Running model.shop_analytics.stg_support__tickets alone." in log
    assert "START sql view model main.stg_support__tickets" in log
    assert log.count("START sql") == 1  # this model and no other
    assert "transient glitch" in log
    # dbt build skipped what reads from it; once it had recovered, each of those ran alone, once
    for model in ("int_tickets_aggregated_to_customers", "tickets"):
        ti = run.tis[f"transform.{model}"]
        assert (ti["state"], ti["try_number"]) == ("success", 1), model
    assert on_a_worker(run.tis) == BUILDS | {
        FAIL_RUN,
        f"transform.{BROKEN_MODEL}",
        "transform.stg_support__tickets",
        "transform.int_tickets_aggregated_to_customers",
        "transform.tickets",
    }


def test_a_failed_sync_leaves_what_reads_from_it_out_of_the_build(stack, runs):
    """The help desk's sync failed: its build has nothing to build, the combined build leaves out
    customers, the shop's build runs whole."""
    run = runs["alerts_sync"]
    cause = "Left out of this build: what reads sources that did not sync: source.shop_analytics.support.tickets."
    for build in (SUPPORT_BUILD, BOTH_BUILD):
        assert cause in stack.task_log("alerts_sync", run.run_id, build, 1).text, build
    assert cause not in stack.task_log("alerts_sync", run.run_id, PRODUCER, 1).text
    states = {b: run.tis[b]["state"] for b in BUILDS}
    assert states == {PRODUCER: "success", SUPPORT_BUILD: "skipped", BOTH_BUILD: "skipped"}
    assert on_a_worker(run.tis) == BUILDS | {FAIL_RUN}  # the faker side passed in its build
