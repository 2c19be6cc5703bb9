"""The dashboard status rules on the bundled project's real lineage, one injected outcome at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from elt_platform.dbt_manifest import load_manifest
from elt_platform.dbt_manifest.graph import downstream, has_own_task
from elt_platform.health.lineage import dashboards, tables
from elt_platform.health.rules import (
    Kind,
    NodeResult,
    PartState,
    RunOutcome,
    Status,
    TaskOutcome,
    assess,
    promise_deadline,
    promise_kept,
    status_since,
)

SYNCS = {"faker": "sync_shop_faker", "support": "sync_support_desk"}
T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
LOADED = {"faker": T0 - timedelta(minutes=3), "support": T0 - timedelta(minutes=2)}
RELATIONSHIPS = "transform.relationships_orders_product_id__product_id__ref_products_"


@pytest.fixture(scope="module")
def project(manifest_path):
    manifest = load_manifest(manifest_path)
    return manifest, dashboards(manifest, SYNCS, "transform")


def green_run(manifest, run_id="r1", state="success") -> tuple[dict[str, TaskOutcome], dict[str, NodeResult]]:
    """Every task succeeded; dbt passed every node; each source's newest row per LOADED."""
    tasks = {sync: TaskOutcome("success", 1, f"/log/{sync}", T0) for sync in SYNCS.values()}
    results = {}
    for uid, model in manifest.models.items():
        tasks[f"transform.{model.task_id}"] = TaskOutcome("success", 1, f"/log/{model.task_id}", T0)
        results[uid] = NodeResult("success")
    for uid, source in manifest.sources.items():
        tasks[f"transform.{source.task_id}"] = TaskOutcome("success", 1, "", T0)
        results[uid] = NodeResult("pass", max_loaded_at=LOADED[source.source_name])
    for uid, test in manifest.tests.items():
        results[uid] = NodeResult("pass")
        if has_own_task(manifest, test):  # the renderers' rule: else its node's task reports it
            tasks[f"transform.{test.task_id}"] = TaskOutcome("success", 1, "", T0)
    return tasks, results


def run(tasks, results, run_id="r1", state="success") -> RunOutcome:
    return RunOutcome(run_id, state, T0 - timedelta(minutes=2), T0, tasks, results)


def statuses(project, outcome, previous=None) -> dict[str, Status]:
    return {name: assess(d, outcome, previous).status for name, d in project[1].items()}


def model_id(manifest, name):
    return next(uid for uid, m in manifest.models.items() if m.name == name)


def test_lineage_reaches_from_each_dashboard_back_to_the_connections_that_load_it(project):
    _, every = project
    assert {p.name for p in every["sales_performance"].connections} == {"sync_shop_faker"}
    assert {p.name for p in every["support_operations"].connections} == {"sync_support_desk"}
    assert {p.name for p in every["customer_360"].connections} == {"sync_shop_faker", "sync_support_desk"}
    parts = every["sales_performance"].parts
    assert {p.name for p in parts.values() if p.kind is Kind.SOURCE} == {"faker.products", "faker.purchases"}
    tickets = [p for p in parts.values() if "ticket" in p.name]
    assert tickets == []  # nothing of the help desk
    # a test reading two models has a task of its own; a test of one model reports in the model's task
    relationships = next(p for p in parts.values() if p.task_id == RELATIONSHIPS)
    assert relationships.kind is Kind.TEST
    assert parts[model_id(project[0], "orders")].task_id == "transform.orders"


def test_nothing_run_yet_is_unknown(project):
    assert set(statuses(project, None).values()) == {Status.UNKNOWN}


def test_a_green_run_makes_every_dashboard_fresh_as_of_its_oldest_source(project):
    manifest, every = project
    tasks, results = green_run(manifest)
    outcome = run(tasks, results)
    assert set(statuses(project, outcome).values()) == {Status.FRESH}
    assert assess(every["customer_360"], outcome).data_as_of == LOADED["faker"]
    assert assess(every["support_operations"], outcome).data_as_of == LOADED["support"]


def test_a_failed_sync_makes_exactly_the_dashboards_reading_it_stale_naming_the_sync(project):
    manifest, every = project
    tasks, results = green_run(manifest)
    tasks["sync_support_desk"] = TaskOutcome("failed", 2, "/log/sync_support_desk", T0)
    tasks["transform.support.tickets"] = TaskOutcome("upstream_failed")
    for name in ("stg_support__tickets", "int_tickets_aggregated_to_customers", "tickets", "customers"):
        tasks[f"transform.{name}"] = TaskOutcome("upstream_failed")
        results.pop(model_id(manifest, name))
    results.pop(next(uid for uid in manifest.sources if uid.endswith("support.tickets")))
    outcome = run(tasks, results, state="failed")

    assert statuses(project, outcome) == {
        "customer_360": Status.STALE,
        "sales_performance": Status.FRESH,
        "support_operations": Status.STALE,
    }
    support = assess(every["support_operations"], outcome)
    assert [(c.kind, c.name, c.log_url) for c in support.causes] == [
        (Kind.CONNECTION, "sync_support_desk", "/log/sync_support_desk")
    ]
    assert support.held_back == ("stg_support__tickets", "tickets")
    assert support.part_states["sync_support_desk"] is PartState.FAILED
    assert not support.causes[0].needs_fix  # the next run may well sync


def test_the_previous_data_keeps_its_as_of_while_a_sync_fails(project):
    manifest, every = project
    first = run(*green_run(manifest))
    tasks, results = green_run(manifest)
    tasks["sync_support_desk"] = TaskOutcome("failed")
    tasks["transform.support.tickets"] = TaskOutcome("upstream_failed")
    results = {uid: r for uid, r in results.items() if not uid.endswith("support.tickets")}
    later = {
        uid: NodeResult(r.status, max_loaded_at=T0 + timedelta(hours=1)) if r.max_loaded_at else r
        for uid, r in results.items()
    }
    second = run(tasks, later, "r2", "failed")
    assessed = assess(every["customer_360"], second, assess(every["customer_360"], first))
    assert assessed.sources_as_of["support.tickets"] == LOADED["support"]  # still yesterday's help desk data
    assert assessed.sources_as_of["faker.users"] == T0 + timedelta(hours=1)
    assert assessed.data_as_of == LOADED["support"]


def test_a_failed_error_test_on_built_data_breaks_its_dashboards_naming_the_test(project):
    manifest, every = project
    tasks, results = green_run(manifest)
    test_id = next(uid for uid, t in manifest.tests.items() if t.name == "unique_orders_order_id")
    results[test_id] = NodeResult("fail", "Got 3 results, configured to fail if != 0")
    tasks["transform.orders"] = TaskOutcome("failed", 1, "/log/orders", T0)
    outcome = run(tasks, results, state="failed")

    got = statuses(project, outcome)
    assert got["sales_performance"] is Status.BROKEN
    assert got["support_operations"] is Status.FRESH
    sales = assess(every["sales_performance"], outcome)
    assert [(c.kind, c.name, c.message) for c in sales.causes] == [
        (Kind.TEST, "unique_orders_order_id", "Got 3 results, configured to fail if != 0")
    ]
    assert sales.causes[0].needs_fix
    assert sales.part_states[model_id(manifest, "orders")] is PartState.TEST_FAILED


def test_a_broken_model_makes_its_dashboards_stale_with_dbt_s_error_and_holds_back_what_reads_it(project):
    manifest, every = project
    tasks, results = green_run(manifest)
    broken = model_id(manifest, "int_purchases_joined_to_products")
    error = 'Binder Error: Referenced column "no_such_column" not found in FROM clause!'
    results[broken] = NodeResult("error", error)
    tasks["transform.int_purchases_joined_to_products"] = TaskOutcome("failed", 1, "/log/int", T0)
    for name in ("orders", "products", "customers"):
        tasks[f"transform.{name}"] = TaskOutcome("upstream_failed")
        results[model_id(manifest, name)] = NodeResult("skipped")
    tasks[RELATIONSHIPS] = TaskOutcome("upstream_failed")
    outcome = run(tasks, results, state="failed")

    sales = assess(every["sales_performance"], outcome)
    assert sales.status is Status.STALE
    assert [(c.kind, c.name, c.message, c.needs_fix) for c in sales.causes] == [
        (Kind.MODEL, "int_purchases_joined_to_products", error, True)
    ]
    assert sales.held_back == ("orders", "products")
    assert statuses(project, outcome)["support_operations"] is Status.FRESH


def test_without_dbt_s_results_a_failed_model_task_is_stale_and_a_failed_test_task_broken(project):
    """The per-model mode records task states only: the same rules, with what is known."""
    manifest, every = project
    tasks, _ = green_run(manifest)
    tasks["transform.tickets"] = TaskOutcome("failed", 3, "/log/tickets", T0)
    tasks[RELATIONSHIPS] = TaskOutcome("failed", 1, "/log/rel", T0)
    outcome = run(tasks, {}, state="failed")

    support = assess(every["support_operations"], outcome)
    assert (support.status, support.causes[0].name) == (Status.STALE, "tickets")
    sales = assess(every["sales_performance"], outcome)
    assert (sales.status, [c.task_id for c in sales.causes]) == (Status.BROKEN, [RELATIONSHIPS])


def test_a_source_past_its_freshness_error_after_makes_its_dashboards_stale(project):
    manifest, every = project
    tasks, results = green_run(manifest)
    source = next(uid for uid in manifest.sources if uid.endswith("support.tickets"))
    results[source] = NodeResult("error", "source freshness: error", T0 - timedelta(days=3))
    tasks["transform.support.tickets"] = TaskOutcome("failed", 1, "/log/support.tickets", T0)
    outcome = run(tasks, results, state="failed")

    support = assess(every["support_operations"], outcome)
    assert support.status is Status.STALE
    assert [(c.kind, c.name, c.message) for c in support.causes] == [
        (Kind.SOURCE, "support.tickets", "source freshness: error")
    ]
    assert support.data_as_of == T0 - timedelta(days=3)  # what the raw table holds: three days old


def test_a_check_that_failed_in_the_build_but_passed_when_its_model_ran_again_breaks_nothing(project):
    """After a fix, *Clear* re-runs the model alone; its task's success outranks the build's old result."""
    manifest, every = project
    tasks, results = green_run(manifest)
    test_id = next(uid for uid, t in manifest.tests.items() if t.name == "unique_orders_order_id")
    results[test_id] = NodeResult("fail", "Got 3 results, configured to fail if != 0")
    tasks["transform.orders"] = TaskOutcome("success", 2, "/log/orders", T0)
    assert assess(every["sales_performance"], run(tasks, results)).status is Status.FRESH


def test_a_run_in_progress_keeps_the_last_status_until_it_fails_or_refreshes_everything(project):
    manifest, every = project
    before = assess(every["sales_performance"], run(*green_run(manifest)))
    tasks, results = green_run(manifest)
    tasks["transform.orders"] = TaskOutcome("deferred")
    results.pop(model_id(manifest, "orders"))
    running = run(tasks, results, "r2", "running")

    now = assess(every["sales_performance"], running, before)
    assert (now.status, now.refreshing) == (Status.FRESH, True)
    assert now.part_states[model_id(manifest, "orders")] is PartState.PENDING
    tasks["sync_shop_faker"] = TaskOutcome("failed")
    failing = assess(every["sales_performance"], run(tasks, results, "r2", "running"), before)
    assert failing.status is Status.STALE  # a failure shows at once
    ended = assess(every["sales_performance"], run({**tasks, "sync_shop_faker": TaskOutcome("success")}, results))
    assert ended.status is Status.STALE  # the run ended without refreshing orders
    assert ended.causes[0].message == "the run ended before it ran"


def test_while_one_load_still_runs_the_dashboards_that_do_not_read_it_are_fresh_and_the_others_say_what_they_wait_for(
    project,
):
    """The help desk's sync is still running: the shop's dashboard is fresh from this run; the other
    two keep their last status, refreshing, and name the load they wait for."""
    manifest, every = project
    tasks, results = green_run(manifest)
    help_desk = {uid for uid, source in manifest.sources.items() if source.source_name == "support"}
    help_desk |= downstream(manifest, help_desk)
    help_desk |= {uid for uid, test in manifest.tests.items() if help_desk.intersection(test.depends_on)}
    nodes = {**manifest.models, **manifest.sources, **manifest.tests}
    for uid in help_desk:  # not started: the scheduler waits for the sync
        tasks[f"transform.{nodes[uid].task_id}"] = TaskOutcome("scheduled")
        results.pop(uid, None)
    tasks["sync_support_desk"] = TaskOutcome("running")
    running = run(tasks, results, "r2", "running")
    before = {name: assess(d, run(*green_run(manifest))) for name, d in every.items()}
    now = {name: assess(d, running, before[name]) for name, d in every.items()}
    assert (now["sales_performance"].status, now["sales_performance"].run_id) == (Status.FRESH, "r2")
    assert not now["sales_performance"].refreshing and now["sales_performance"].waiting_for == ()
    for name in ("support_operations", "customer_360"):
        assert (now[name].status, now[name].run_id, now[name].refreshing) == (Status.FRESH, "r1", True)
        assert now[name].waiting_for == ("sync_support_desk",)


def test_a_node_dbt_built_counts_as_refreshed_before_its_task_reports_it(project):
    """A mart's task passes as soon as dbt built it; its upstream's tasks may end later."""
    manifest, every = project
    tasks, results = green_run(manifest)
    tasks["transform.stg_faker__products"] = TaskOutcome("deferred")  # its result is in: dbt built it
    tasks["transform.faker.products"] = TaskOutcome(None)
    assert assess(every["sales_performance"], run(tasks, results, state="running")).status is Status.FRESH
    results.pop(model_id(manifest, "stg_faker__products"))  # no result, the run over: it never ran
    ended = assess(every["sales_performance"], run(tasks, results))
    assert ended.status is Status.STALE and [c.name for c in ended.causes] == ["stg_faker__products"]


def test_a_mart_is_assessed_with_its_own_lineage(project):
    manifest, _ = project
    marts = [model_id(manifest, n) for n in ("orders", "tickets")]
    every = tables(manifest, marts, SYNCS, "transform")
    tasks, results = green_run(manifest)
    tasks["sync_support_desk"] = TaskOutcome("failed")
    tasks["transform.support.tickets"] = TaskOutcome("upstream_failed")
    outcome = run(tasks, results, state="failed")
    assert {n: assess(t, outcome).status for n, t in every.items()} == {"orders": Status.FRESH, "tickets": Status.STALE}


def test_status_since_is_the_start_of_the_latest_streak():
    day = timedelta(days=1)
    history = [(Status.STALE, T0), (Status.STALE, T0 - day), (Status.FRESH, T0 - 2 * day), (Status.STALE, T0 - 3 * day)]
    assert status_since(Status.STALE, history) == T0 - day
    assert status_since(Status.FRESH, history) is None


def test_a_promise_is_kept_by_a_fresh_run_in_the_24_hours_before_its_deadline():
    now = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)  # 10:30 in Paris
    deadline = promise_deadline("07:00", "Europe/Paris", now)
    assert deadline == datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    assert promise_deadline("11:00", "Europe/Paris", now) == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert promise_kept(deadline, [deadline - timedelta(hours=2)])
    assert not promise_kept(deadline, [deadline + timedelta(minutes=1), deadline - timedelta(hours=25)])
    assert promise_deadline("7am", "UTC", now) is None


def test_everything_held_back_with_no_failure_among_its_parts_is_stale_not_fresh(project):
    """E.g. a run marked failed by hand: what had not run ends skipped, and nothing the dashboard reads failed."""
    manifest, every = project
    tasks, _ = green_run(manifest)
    for task_id in tasks:
        tasks[task_id] = TaskOutcome("skipped")
    outcome = run(tasks, {}, state="failed")
    support = assess(every["support_operations"], outcome)
    assert support.status is Status.STALE
    assert "sync_support_desk" in [c.name for c in support.causes]
    assert all(c.message.startswith("not refreshed in this run") for c in support.causes)


def test_a_failed_check_whose_data_never_reached_the_dashboard_makes_it_stale_not_broken(project):
    """dbt build skips what reads a node whose test failed: the marts still hold the previous data."""
    manifest, every = project
    tasks, results = green_run(manifest)
    checked = "not_null_int_purchases_joined_to_products_purchase_id"
    test_id = next(uid for uid, t in manifest.tests.items() if t.name == checked)
    results[test_id] = NodeResult("fail", "Got 2 results, configured to fail if != 0")
    tasks["transform.int_purchases_joined_to_products"] = TaskOutcome("failed", 1, "/log/int", T0)
    for name in ("orders", "products"):
        tasks[f"transform.{name}"] = TaskOutcome("upstream_failed")
        results[model_id(manifest, name)] = NodeResult("skipped")
    sales = assess(every["sales_performance"], run(tasks, results, state="failed"))
    assert sales.status is Status.STALE
    assert sales.held_back == ("orders", "products")


def test_data_as_of_moves_only_when_the_new_data_reached_the_dashboard(project):
    manifest, every = project
    first = assess(every["sales_performance"], run(*green_run(manifest)))
    tasks, results = green_run(manifest)
    later = {uid: NodeResult(r.status, max_loaded_at=T0 + timedelta(hours=5)) if r.max_loaded_at else r
             for uid, r in results.items()}  # fmt: skip
    later[model_id(manifest, "stg_faker__purchases")] = NodeResult("error", "Runtime Error")
    tasks["transform.stg_faker__purchases"] = TaskOutcome("failed", 1, "", T0)
    for name in ("int_purchases_joined_to_products", "orders", "products"):
        tasks[f"transform.{name}"] = TaskOutcome("upstream_failed")
    second = assess(every["sales_performance"], run(tasks, later, "r2", "failed"), first)
    assert second.status is Status.STALE
    assert second.sources_as_of["faker.purchases"] == LOADED["faker"]  # its new rows stopped at staging
    assert second.sources_as_of["faker.products"] == LOADED["faker"]  # so did these: products was held back


def test_a_deadline_in_the_hour_that_repeats_when_dst_ends_is_today_s():
    # 25 Oct 2026 in Paris: 03:00 CEST becomes 02:00 CET, so 02:30 happens at 00:30 and at 01:30 UTC.
    now = datetime(2026, 10, 25, 1, 15, tzinfo=UTC)  # 02:15 CET, the second pass
    assert promise_deadline("02:30", "Europe/Paris", now) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_every_unreadable_fresh_by_is_named_at_once_and_a_readable_one_is_promised(manifest_path):
    import dataclasses

    from elt_platform.errors import ConfigurationError
    from elt_platform.health.promises import check_fresh_by

    manifest = load_manifest(manifest_path)
    first, second, *_ = manifest.exposures.values()
    exposures = {
        first.unique_id: dataclasses.replace(first, fresh_by="7 am"),
        second.unique_id: dataclasses.replace(second, fresh_by="07:00", fresh_by_timezone="Mars/Olympus"),
    }
    with pytest.raises(ConfigurationError) as raised:
        check_fresh_by(dataclasses.replace(manifest, exposures=exposures))
    assert [p.field for p in raised.value.problems] == [
        f"exposure {first.name}, meta.fresh_by",
        f"exposure {second.name}, meta.fresh_by_timezone",
    ]
    promised = dataclasses.replace(second, fresh_by="07:00", fresh_by_timezone="Europe/Paris")
    one_promise = dataclasses.replace(manifest, exposures={first.unique_id: first, second.unique_id: promised})
    assert check_fresh_by(one_promise) == [promised]  # the first promises nothing
