"""The dashboards task group, the fresh_by check DAG, and what the pages and badges show."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowRescheduleException, AirflowSkipException, TaskDeferred

from elt_platform.dag_factory import build_elt_dag
from elt_platform.health.pages import badge_svg, list_page, plain_text
from elt_platform.health.plugin import badge_token
from elt_platform.health.publish import PublishDashboardHealth, PublishMarts
from elt_platform.health.report import CauseView, DashboardHealth
from tests.conftest import REPO

DASHBOARDS = ("customer_360", "sales_performance", "support_operations")
# ELT_BADGE_SECRET must be at least 32 bytes.
SECRET, OTHER_SECRET = "badge-secret-of-the-unit-tests-0123456789", "another-badge-secret-of-32-bytes-or-more"


@pytest.fixture(scope="module")
def dag(manifest_path):
    return build_elt_dag(dag_id="health", dbt_project_dir=REPO / "dbt_project", ingestion_dir=REPO / "ingestion")


def test_each_dashboard_waits_for_the_builds_of_its_own_marts_and_follows_its_marts_tasks(dag):
    """Not after the run's other loads: the help desk's dashboard waits for nothing of the shop. Its
    marts' tasks are upstream of it too, so that clearing one with its downstream runs it again."""
    marts = dag.get_task("dashboards.marts")
    assert type(marts) is PublishMarts
    assert marts.pool == "warehouse" and marts.trigger_rule == "all_done"  # counts rows once writers are done
    relationships = "transform.relationships_orders_product_id__product_id__ref_products_"
    assert {relationships, "transform.orders", "transform.customers", "transform.tickets"} <= marts.upstream_task_ids
    waits_for = {
        # not the build of the tickets -> customers relationships test: it waits for the shop's load too
        "support_operations": ["transform.dbt_build__support_desk"],
        "sales_performance": ["transform.dbt_build__shop_faker"],
        "customer_360": ["transform.dbt_build__shop_faker", "transform.dbt_build__shop_faker__support_desk"],
    }
    follows = {"support_operations": {"transform.tickets"}, "sales_performance": {"transform.orders", relationships}}
    for name in DASHBOARDS:
        task = dag.get_task(f"dashboards.{name}")
        assert type(task) is PublishDashboardHealth
        assert task.waits_for == waits_for[name] and set(waits_for[name]) < task.upstream_task_ids
        assert follows.get(name, {"transform.customers"}) < task.upstream_task_ids
        assert (task.trigger_rule, task.pool, task.retries) == ("always", "default_pool", 0)
        assert task.start_from_trigger and task.start_trigger_args.trigger_kwargs["task_ids"] == waits_for[name]
        assert task.start_trigger_args.trigger_kwargs["dashboard"]["exposure"] == name


class RunSoFar(SimpleNamespace):
    """What a dashboard's task reads of its run: task states and the builds' results; what it records."""

    def get_task_states(self, dag_id, task_ids, run_ids):
        return {self.run_id: {task: self.states.get(task, "deferred") for task in task_ids}}

    def xcom_pull(self, task_ids, key, include_prior_dates=False, map_indexes=None):
        return self.results.get(task_ids) if key == "dbt_results" else None

    def xcom_push(self, key, value):
        self.pushed[key] = value


def support_dashboard(dag, monkeypatch, states, failed=()):
    """``dashboards.support_operations`` and a context where dbt passed every node of the help desk but ``failed``."""
    from elt_platform.health import publish

    monkeypatch.setattr(publish, "count_rows", lambda settings, tables, project_dir: dict.fromkeys(tables, 400))
    task = dag.get_task("dashboards.support_operations")
    build = "transform.dbt_build__support_desk"
    results = {build: {}}
    for uid, (_, _, watched) in dag.get_task(build).node_tasks.items():
        for node in watched or [uid]:
            results[build][node] = {"status": "error" if node.split(".")[2] in failed else "pass"}
    ti = RunSoFar(dag_id=dag.dag_id, run_id="r1", task_id=task.task_id, states=states, results=results, pushed={})
    events = {asset: SimpleNamespace(extra=None) for asset in task.outlets}
    inlets = {asset: [] for asset in task.outlets}
    return task, {"ti": ti, "outlet_events": events, "inlet_events": inlets, "dag_run": None}


BUILT = {"sync_support_desk": "success", "transform.dbt_build__support_desk": "success"}


def test_a_dashboard_is_fresh_as_soon_as_dbt_passed_what_it_reads_before_the_node_tasks_report(dag, monkeypatch):
    task, context = support_dashboard(dag, monkeypatch, BUILT)
    task.execute_complete(context, {"ended": task.waits_for})
    assert context["ti"].pushed["health"]["status"] == "fresh"
    (event,) = context["outlet_events"].values()
    assert event.extra["rows"] == {"tickets": 400}


def test_a_failure_waits_in_the_triggerer_again_should_a_part_not_have_ended(dag, monkeypatch):
    """A model's task may yet pass on a retry: no verdict while it has not ended (the trigger waits for
    that; a worker finds a part not ended only if a task was cleared after the trigger fired)."""
    task, context = support_dashboard(dag, monkeypatch, BUILT, failed={"stg_support__tickets"})
    with pytest.raises(TaskDeferred) as deferred:
        task.execute_complete(context, {"ended": task.waits_for})
    assert context["ti"].pushed == {}
    assert deferred.value.trigger.task_ids == task.waits_for
    assert deferred.value.trigger.not_before_seconds >= 5  # the scheduler reads the worker's exit first
    waiting = task.waits_for
    ended = BUILT | {"transform.support.tickets": "success", "transform.stg_support__tickets": "failed"}
    ended |= {"transform.tickets": "upstream_failed"}
    ended |= {"transform.relationships_tickets_customer_id__customer_id__ref_customers_": "upstream_failed"}
    task, context = support_dashboard(dag, monkeypatch, ended, failed={"stg_support__tickets"})
    with pytest.raises(AirflowSkipException, match="stale"):
        task.execute_complete(context, {"ended": waiting})
    assert context["ti"].pushed["health"]["status"] == "stale"


def test_without_the_triggerer_a_dashboard_waits_for_its_builds_by_rescheduling(dag, monkeypatch):
    task, context = support_dashboard(dag, monkeypatch, {"sync_support_desk": "success"})
    with pytest.raises(AirflowRescheduleException):
        task.execute(context)  # its build has not ended
    task, context = support_dashboard(dag, monkeypatch, BUILT)
    task.execute(context)
    assert context["ti"].pushed["health"]["status"] == "fresh"


def test_the_dashboards_trigger_fires_once_its_builds_have_ended_and_the_verdict_can_be_told(dag, monkeypatch):
    """The whole wait is in the triggerer: the task is never deferred again from a worker (Airflow 3.3
    fails such a task when its trigger fires before the scheduler has read the worker's exit)."""
    import asyncio

    from elt_platform.health.verdict_trigger import VerdictReadyTrigger

    task, context = support_dashboard(dag, monkeypatch, {}, failed={"stg_support__tickets"})
    kwargs = task.start_trigger_args.trigger_kwargs | {"poll_seconds": 0.01}
    trigger = VerdictReadyTrigger(**kwargs)
    assert VerdictReadyTrigger(**trigger.serialize()[1]).serialize() == trigger.serialize()
    failed = {"transform.support.tickets": "success", "transform.stg_support__tickets": "failed"}
    ended = failed | {
        "transform.tickets": "upstream_failed",
        "transform.relationships_tickets_customer_id__customer_id__ref_customers_": "upstream_failed",
    }
    seen = iter(
        [
            {"sync_support_desk": "success"},  # its build runs
            BUILT,  # its build ended, with a failure: every part must end first
            BUILT | failed,  # tickets not ended: it may yet pass on a retry
            BUILT | ended,
        ]
    )
    ti = context["ti"]
    polls = []

    def get_task_states(dag_id, task_ids, run_ids):
        polls.append(states := next(seen) if len(polls) < 4 else polls[-1])
        return {ti.run_id: {t: states.get(t) for t in task_ids}}

    trigger.task_instance = SimpleNamespace(
        dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, get_task_states=get_task_states, xcom_pull=ti.xcom_pull
    )

    async def first_event():
        return await anext(trigger.run())

    event = asyncio.run(first_event())
    assert event.payload == {"ended": task.waits_for} and len(polls) == 4
    with pytest.raises(AirflowSkipException, match="stale"):
        task.execute_complete(context | {"ti": RunSoFar(**vars(ti) | {"states": BUILT | ended})}, event.payload)
    assert ti.pushed["health"]["status"] == "stale"


def test_once_dbt_passed_what_a_dashboard_reads_its_trigger_fires_without_waiting_for_the_node_tasks(dag, monkeypatch):
    import asyncio

    from elt_platform.health.verdict_trigger import VerdictReadyTrigger

    task, context = support_dashboard(dag, monkeypatch, BUILT)
    trigger = VerdictReadyTrigger(**task.start_trigger_args.trigger_kwargs)
    trigger.task_instance = context["ti"]
    event = asyncio.run(anext(trigger.run()))
    assert event.payload == {"ended": task.waits_for}


def test_each_dashboard_is_an_asset_that_says_where_its_lineage_comes_from(dag):
    task = dag.get_task("dashboards.support_operations")
    (asset,) = task.outlets
    assert (asset.name, asset.uri, asset.group) == (
        "health.support_operations",
        "dbt-exposure://health/support_operations",
        "dashboard",
    )
    elt = asset.extra["elt"]
    assert elt["exposure"] == "support_operations" and elt["group"] == "transform"
    assert elt["syncs"] == {"faker": "sync_shop_faker", "support": "sync_support_desk"}
    assert elt["titles"]["sync_support_desk"] == "Help desk tickets (CSV export)"
    assert elt["manifest"] == str(REPO / "dbt_project" / "target" / "manifest.json")
    # what it reads: its own events (its promise) and the table it shows
    assert [a.name for a in task.inlets] == ["health.support_operations", "health.tickets"]


def health(label="Sales <b>performance</b>", status="stale", causes=()) -> DashboardHealth:
    return DashboardHealth(
        dag_id="shop_elt", name="sales", label=label, url="", description="", owner="Sales", owner_email="",
        status=status, refreshing=False, run_id="r1", data_as_of=datetime(2026, 11, 27, 6, 2, tzinfo=UTC),
        sources_as_of={}, since=None, causes=list(causes), held_back=[], next_run=None, expected_fresh=None,
        needs_fix=False, connections=[], promise=None, lineage=[],
    )  # fmt: skip


def test_the_badge_shows_name_status_and_age_escaped_and_nothing_else():
    cause = CauseView(kind="model", name="orders", task_id="transform.orders", message="secret row 42", log_url="",
                      needs_fix=True)  # fmt: skip
    svg = badge_svg(health(causes=[cause]))
    assert "Sales &lt;b&gt;performance&lt;/b&gt;" in svg and "<b>" not in svg
    assert "stale · 27 Nov 2026, 06:02 UTC" in svg
    assert "secret row 42" not in svg and "orders" not in svg  # no cause, no data, no table


def test_badge_tokens_are_per_dashboard_versioned_and_off_without_a_secret():
    assert badge_token("shop_elt", "sales", "") is None
    one = badge_token("shop_elt", "sales", SECRET)
    assert one != badge_token("shop_elt", "support", SECRET) != badge_token("shop_elt", "sales", OTHER_SECRET)
    assert re.fullmatch(r"v1\.[0-9a-f]{64}", one)
    # Unambiguous parts: "a/b" + "c" and "a" + "b/c" were one message when a "/" joined them.
    assert badge_token("shop_elt/sales", "x", SECRET) != badge_token("shop_elt", "sales/x", SECRET)
    signed = hmac.new(SECRET.encode(), b"elt-badge-v1\nshop_elt\nsales", hashlib.sha256).hexdigest()
    assert one == f"v1.{signed}"  # the version is signed too, not only shown


def test_the_list_page_and_the_terminal_say_why_in_words():
    message = "[Errno 2] No such file or directory\nTraceback"
    cause = CauseView(kind="connection", name="Help desk tickets", task_id="sync_support_desk",
                      message=message, log_url="/dags/x", needs_fix=False)  # fmt: skip
    page = list_page([health(causes=[cause])], datetime(2026, 11, 27, tzinfo=UTC))
    assert "The data load Help desk tickets did not succeed." in page
    assert "Sales &lt;b&gt;performance&lt;/b&gt;" in page
    text = plain_text([health(label="Sales", causes=[cause])])
    assert "STALE" in text and "The data load Help desk tickets did not succeed: [Errno 2] No such file" in text
    assert "Traceback" not in text  # the first line of the message only


def test_during_a_run_the_pages_and_the_terminal_say_which_load_a_dashboard_waits_for():
    """One dashboard still waits for the shop's load (hostile title, escaped); another is already fresh."""
    waiting = health(label="Sales", status="fresh").model_copy(
        update={"refreshing": True, "waiting_for": ["Shop <i>storefront</i>"], "run_in_progress": True}
    )
    done = health(label="Support", status="fresh").model_copy(update={"run_in_progress": True, "causes": []})
    page = list_page([waiting, done], datetime(2026, 11, 27, tzinfo=UTC))
    assert "A refresh is running, waiting for the data load Shop &lt;i&gt;storefront&lt;/i&gt;" in page
    assert "Refreshed by the run in progress, which is still loading data for other dashboards" in page
    text = plain_text([waiting, done])
    assert "Sales    FRESH" in text and "waiting for the data load Shop <i>storefront</i>" in text
    assert text.count("Refreshed by the run in progress") == 1


def test_a_badge_token_in_any_text_is_refused_not_a_server_error(monkeypatch):
    from fastapi import HTTPException

    from elt_platform.health.plugin import _badge_health

    monkeypatch.setenv("ELT_BADGE_SECRET", SECRET)
    for token in ("é-not-ascii", "v1.é-not-ascii", badge_token("shop_elt", "sales", OTHER_SECRET)):
        with pytest.raises(HTTPException) as refused:
            _badge_health("shop_elt", "sales", token)
        assert refused.value.status_code == 403
    # A token of the scheme before versions (the first 32 hex digits of HMAC("dag/name")) is refused, saying so.
    unversioned = hmac.new(SECRET.encode(), b"shop_elt/sales", hashlib.sha256).hexdigest()[:32]
    with pytest.raises(HTTPException) as old:
        _badge_health("shop_elt", "sales", unversioned)
    assert old.value.status_code == 403 and "earlier scheme" in old.value.detail
    monkeypatch.delenv("ELT_BADGE_SECRET")
    with pytest.raises(HTTPException) as off:
        _badge_health("shop_elt", "sales", badge_token("shop_elt", "sales", SECRET))
    assert off.value.status_code == 404 and "ELT_BADGE_SECRET" in off.value.detail


def test_only_a_web_address_becomes_the_dashboard_s_link():
    from elt_platform.health.pages import detail_page

    page = detail_page(health().model_copy(update={"url": "javascript:alert(1)"}), lambda p: p, None)
    assert 'href="javascript:' not in page and "javascript:alert(1)" in page
    page = detail_page(health().model_copy(update={"url": "https://bi.example.com/d"}), lambda p: p, None)
    assert '<a href="https://bi.example.com/d">' in page
