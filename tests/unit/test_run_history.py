"""The read model against a real (SQLite) Airflow metadata database with the current schema: rows written
as Airflow writes them, read back as typed, frozen records (tests/commands/test_run_history.py reads a run
that Airflow itself made)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk import DagRunState, TaskInstanceState
from airflow.sdk.serde import serialize

from elt_platform import run_history
from elt_platform.run_history import RETURN_VALUE_KEY, RunHistory, UntestedAirflow, XComSelector
from elt_platform.task_states import TRY_ENDED
from tests.unit import test_health_report as metadata_db

# The empty metadata database of the health report's tests, and a session whose rows are gone after each test.
engine = metadata_db.engine
session = metadata_db.session
register = metadata_db.register

DAG_ID = "shop_elt"
T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def add_run(session, run_id, run_after, state="success", minutes=5, conf=None, dag_id=DAG_ID, started=True):
    from airflow.models import DagRun
    from sqlalchemy import insert

    start = run_after if started else None
    end = run_after + timedelta(minutes=minutes) if started and state in ("success", "failed") else None
    session.execute(
        insert(DagRun.__table__).values(
            dag_id=dag_id, run_id=run_id, run_type="manual", state=state, conf=conf,
            logical_date=run_after, run_after=run_after, start_date=start, end_date=end,
        )
    )  # fmt: skip


def add_task(session, run_id, task_id, state, try_number=1, map_index=-1, seconds=10.0):
    from airflow.models import TaskInstance
    from sqlalchemy import insert

    start = T0 + timedelta(minutes=1) if state else None
    end = start + timedelta(seconds=seconds) if state and state not in ("running", "queued") else None
    session.execute(
        insert(TaskInstance.__table__).values(
            dag_id=DAG_ID, run_id=run_id, task_id=task_id, map_index=map_index, state=state,
            try_number=try_number, pool="default_pool", start_date=start, end_date=end,
            duration=seconds if end else None,
        )
    )  # fmt: skip


def add_xcom(session, run_id, task_id, key, value, serialize=True):
    """As Airflow stores one: serialized by the API server's own encoder, or (``serialize=False``) as the
    Task SDK's value arrives through the execution API, JSON already."""
    from airflow.models.xcom import XComModel

    XComModel.set(key, value, dag_id=DAG_ID, task_id=task_id, run_id=run_id, serialize=serialize, session=session)


def test_runs_are_newest_first_with_their_facts(session):
    add_run(session, "r1", T0 - timedelta(days=2), conf={"full_refresh": True})
    add_run(session, "r2", T0 - timedelta(days=1), state="failed", minutes=7)
    add_run(session, "r3", T0, state="queued", started=False)
    add_run(session, "other", T0 + timedelta(hours=1), dag_id="another_dag")
    history = RunHistory(session)

    assert [r.run_id for r in history.runs(DAG_ID)] == ["r3", "r2", "r1"]
    assert [r.run_id for r in history.runs(DAG_ID, limit=2)] == ["r3", "r2"]
    assert [r.run_id for r in history.runs(DAG_ID, after=T0 - timedelta(days=1))] == ["r3", "r2"]
    assert history.latest_run(DAG_ID).run_id == "r3"
    assert history.latest_run(DAG_ID, after=T0 + timedelta(minutes=1)) is None
    assert history.run(DAG_ID, "no_such_run") is None

    first = history.run(DAG_ID, "r1")
    assert (first.state, first.run_type, first.logical_date) == (DagRunState.SUCCESS, "manual", T0 - timedelta(days=2))
    assert first.conf == {"full_refresh": True}
    assert first.duration == timedelta(minutes=5)
    failed, queued = history.run(DAG_ID, "r2"), history.run(DAG_ID, "r3")
    assert (failed.state, failed.duration) == (DagRunState.FAILED, timedelta(minutes=7))
    assert (queued.state, queued.start_date, queued.duration, queued.conf) == (DagRunState.QUEUED, None, None, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.state = DagRunState.FAILED
    with pytest.raises(TypeError):
        first.conf["full_refresh"] = False


def test_a_run_s_task_instances_as_of_their_latest_try(session):
    add_run(session, "r1", T0, state="running")
    add_run(session, "r2", T0 + timedelta(days=1), state="running")
    add_task(session, "r1", "sync_shop_faker", "success", seconds=12.5)
    add_task(session, "r1", "sync_support_desk", "up_for_retry")
    add_task(session, "r1", "transform.dbt_build", "failed", try_number=2)
    add_task(session, "r1", "transform.orders", "upstream_failed", try_number=0)
    add_task(session, "r1", "dashboards.marts", None, try_number=0)
    add_task(session, "r1", "load_files", "success", map_index=1)
    add_task(session, "r1", "load_files", "running", map_index=0)
    add_task(session, "r2", "sync_shop_faker", "running")
    history = RunHistory(session)

    tasks = history.task_instances(DAG_ID, "r1")
    assert [(t.task_id, t.map_index, t.state, t.try_number) for t in tasks] == [
        ("dashboards.marts", -1, None, 0),
        ("load_files", 0, TaskInstanceState.RUNNING, 1),
        ("load_files", 1, TaskInstanceState.SUCCESS, 1),
        ("sync_shop_faker", -1, TaskInstanceState.SUCCESS, 1),
        ("sync_support_desk", -1, TaskInstanceState.UP_FOR_RETRY, 1),
        ("transform.dbt_build", -1, TaskInstanceState.FAILED, 2),
        ("transform.orders", -1, TaskInstanceState.UPSTREAM_FAILED, 0),
    ]
    sync = next(t for t in tasks if t.task_id == "sync_shop_faker")
    assert (sync.dag_id, sync.run_id, sync.duration) == (DAG_ID, "r1", 12.5)
    assert sync.end_date - sync.start_date == timedelta(seconds=12.5)

    # A try ended (up_for_retry included, whose group holds it as an Enum member, not its text).
    ended = history.task_instances(DAG_ID, "r1", states=TRY_ENDED)
    assert {(t.task_id, t.map_index) for t in ended} == {
        ("load_files", 1),
        ("sync_shop_faker", -1),
        ("sync_support_desk", -1),
        ("transform.dbt_build", -1),
        ("transform.orders", -1),
    }

    links = {(t.task_id, t.map_index): t.log_url for t in tasks}
    assert links[("transform.dbt_build", -1)] == f"/dags/{DAG_ID}/runs/r1/tasks/transform.dbt_build?try_number=2"
    assert links[("dashboards.marts", -1)] == f"/dags/{DAG_ID}/runs/r1/tasks/dashboards.marts"  # never tried
    assert links[("load_files", 1)] == f"/dags/{DAG_ID}/runs/r1/tasks/load_files/mapped/1?try_number=1"


def test_a_run_id_is_quoted_in_a_log_link(session):
    run_id = "manual__2026-11-27T06:00:00+00:00"
    add_run(session, run_id, T0, state="running")
    add_task(session, run_id, "sync_shop_faker", "failed")
    [task] = RunHistory(session).task_instances(DAG_ID, run_id)
    assert task.log_url == (
        f"/dags/{DAG_ID}/runs/manual__2026-11-27T06%3A00%3A00%2B00%3A00/tasks/sync_shop_faker?try_number=1"
    )


def test_the_xcoms_selected_come_back_as_pushed(session):
    add_run(session, "r1", T0)
    add_run(session, "r2", T0 + timedelta(days=1))
    add_xcom(session, "r1", "sync_shop_faker", RETURN_VALUE_KEY, {"rows_synced": 1200}, serialize=False)
    add_xcom(session, "r1", "sync_support_desk", "error", "the CSV export is missing")
    add_xcom(session, "r1", "transform.dbt_build", "error", "dbt build failed")
    add_xcom(session, "r1", "transform.dbt_build", "dbt_results", {"model.shop.orders": ["success", 0.4]})
    add_xcom(session, "r1", "transform.orders", "dbt_results", {"not": "the producer's"})
    add_xcom(session, "r1", "dashboards.sales", "health", ("a", "tuple"))  # Airflow's encoder keeps a tuple
    add_xcom(session, "r1", "dashboards.tickets", "health", serialize(("b", 2)), serialize=False)  # the Task SDK's
    add_xcom(session, "r2", "sync_support_desk", "error", "another run's")
    history = RunHistory(session)

    found = history.xcoms(DAG_ID, "r1", XComSelector("error"), XComSelector("dbt_results", "transform.dbt_build"))
    assert found == {
        ("sync_support_desk", "error"): "the CSV export is missing",
        ("transform.dbt_build", "error"): "dbt build failed",
        ("transform.dbt_build", "dbt_results"): {"model.shop.orders": ["success", 0.4]},
    }
    assert history.xcoms(DAG_ID, "r1", XComSelector(RETURN_VALUE_KEY)) == {
        ("sync_shop_faker", RETURN_VALUE_KEY): {"rows_synced": 1200}
    }
    assert history.xcoms(DAG_ID, "r1", XComSelector("health")) == {
        ("dashboards.sales", "health"): ("a", "tuple"),
        ("dashboards.tickets", "health"): ("b", 2),
    }
    assert history.xcoms(DAG_ID, "r1") == {}


def test_an_xcom_s_history_is_of_ended_runs_in_the_window_newest_first(session):
    for day, state in ((40, "success"), (20, "success"), (10, "failed"), (0, "running")):
        run_id = f"r-{day}"
        add_run(session, run_id, T0 - timedelta(days=day), state=state)
        add_xcom(session, run_id, "dashboards.sales", "health", {"status": f"day {day}"})
        add_xcom(session, run_id, "dashboards.tickets", "health", {"status": "other task"})
        add_xcom(session, run_id, "dashboards.sales", "error", "another key")
    found = RunHistory(session).xcom_history(DAG_ID, ["dashboards.sales"], "health", T0 - timedelta(days=30))
    assert [(x.run_id, x.task_id, x.value) for x in found] == [
        ("r-10", "dashboards.sales", {"status": "day 10"}),
        ("r-20", "dashboards.sales", {"status": "day 20"}),
    ]
    assert found[0].run_ended_at == T0 - timedelta(days=10) + timedelta(minutes=5)


def test_outlet_assets_are_the_active_ones_of_the_group_and_their_events_are_dated(session):
    from airflow.models.asset import AssetEvent, AssetModel

    register(session, "sales_performance", {"elt": {"exposure": "sales_performance"}})
    register(session, "customer_360", None)
    retired = AssetModel(name=f"{DAG_ID}.retired", uri=f"dbt-exposure://{DAG_ID}/retired", group="dashboard")
    other_group = AssetModel(name="raw.orders", uri="duckdb://raw/orders", group="asset")
    session.add_all([retired, other_group])
    session.flush()
    history = RunHistory(session)

    assets = history.outlet_assets("dashboard")
    assert [(a.name, a.uri, a.extra, a.dag_id, a.task_id) for a in sorted(assets, key=lambda a: a.name)] == [
        (f"{DAG_ID}.customer_360", f"dbt-exposure://{DAG_ID}/customer_360", None, DAG_ID, "dashboards.customer_360"),
        (
            f"{DAG_ID}.sales_performance",
            f"dbt-exposure://{DAG_ID}/sales_performance",
            {"elt": {"exposure": "sales_performance"}},
            DAG_ID,
            "dashboards.sales_performance",
        ),
    ]
    sales = next(a for a in assets if a.name.endswith("sales_performance"))
    for hours in (1, 30, 60):
        session.add(AssetEvent(asset_id=sales.asset_id, timestamp=T0 - timedelta(hours=hours)))
    session.flush()
    events = history.asset_event_times([sales.asset_id, retired.id], T0 - timedelta(days=2))
    assert events == {sales.asset_id: [T0 - timedelta(hours=1), T0 - timedelta(hours=30)]} or events == {
        sales.asset_id: [T0 - timedelta(hours=30), T0 - timedelta(hours=1)]
    }
    assert history.asset_event_times([], T0) == {}


@pytest.mark.parametrize(("paused", "next_run"), [(False, T0 + timedelta(hours=6)), (True, None)])
def test_a_dag_s_next_run_is_due_unless_it_is_paused(session, paused, next_run):
    from airflow.models import DagModel
    from sqlalchemy import insert

    session.execute(
        insert(DagModel.__table__).values(
            dag_id=DAG_ID, bundle_name="dags-folder", is_paused=paused, max_active_tasks=16,
            max_consecutive_failed_dag_runs=0, has_task_concurrency_limits=False,
            next_dagrun=T0, next_dagrun_create_after=T0 + timedelta(hours=6),
        )
    )  # fmt: skip
    history = RunHistory(session)
    facts = history.dag(DAG_ID)
    assert (facts.is_paused, facts.next_logical_date, facts.next_run) == (paused, T0, next_run)
    assert history.dag("no_such_dag") is None


def test_a_scheduler_heartbeating_is_live_and_a_silent_one_is_not(session):
    from airflow.jobs.job import Job, JobState

    history = RunHistory(session)
    assert history.live_scheduler() is None
    job = Job(job_type="SchedulerJob")
    job.hostname, job.state, job.latest_heartbeat = "scheduler-host-1", JobState.RUNNING, datetime.now(UTC)
    session.add(job)
    session.flush()
    assert history.live_scheduler() == "scheduler-host-1"
    job.latest_heartbeat = datetime.now(UTC) - timedelta(hours=1)  # killed: no heartbeat since
    session.flush()
    assert history.live_scheduler() is None


def test_a_history_is_built_over_a_session_or_taken_as_it_is(session):
    history = RunHistory(session)
    assert RunHistory.of(history) is history
    assert RunHistory.of(session).session is session


@pytest.mark.parametrize("version", ["3.3.0", "3.3.2", "3.3.10"])
def test_the_releases_tested_are_read(version):
    run_history.check_airflow_version(version)


@pytest.mark.parametrize("version", ["3.2.9", "3.4.0", "3.4.0rc1", "4.0.0"])
def test_another_release_is_refused_naming_what_to_check(version):
    with pytest.raises(UntestedAirflow) as refused:
        run_history.check_airflow_version(version)
    message = str(refused.value)
    assert "elt_platform.run_history" in message and version in message
    assert "Fix: re-check its queries" in message and "TESTED_AIRFLOW" in message
    assert isinstance(refused.value, ImportError)  # an import of the module fails, in one named place
