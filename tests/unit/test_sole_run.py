"""``elt run`` refuses to run beside a live scheduler or another ``elt run`` of the same DAG on the
same metadata database (``airflow dags test`` ignores pools: both would write the warehouse)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import airflow.models.dag  # noqa: F401  at collection: croniter runs `file` on import, which unit tests refuse
import pytest

from elt_platform.cli.sole_run import AnotherWriter, sole_run
from elt_platform.run_history import RunHistory


@pytest.fixture
def session(tmp_path):
    """A real (SQLite) Airflow metadata database with the current schema."""
    from airflow.models import import_all_models
    from airflow.models.base import Base
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    import_all_models()
    engine = create_engine(f"sqlite:///{tmp_path / 'airflow.db'}")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


def test_a_scheduler_heartbeating_is_live_and_a_silent_one_is_not(session):
    from airflow.jobs.job import Job, JobState

    assert RunHistory(session).live_scheduler() is None
    job = Job(job_type="SchedulerJob")
    job.hostname, job.state, job.latest_heartbeat = "scheduler-host-1", JobState.RUNNING, datetime.now(UTC)
    session.add(job)
    session.flush()
    assert RunHistory(session).live_scheduler() == "scheduler-host-1"
    job.latest_heartbeat = datetime.now(UTC) - timedelta(hours=1)  # killed: no heartbeat since
    session.flush()
    assert RunHistory(session).live_scheduler() is None


def test_a_second_run_of_the_same_dag_is_refused_and_another_dag_is_not(monkeypatch):
    monkeypatch.setattr("elt_platform.run_history.live_scheduler", lambda: None)
    with sole_run("shop_elt"):
        with (
            pytest.raises(AnotherWriter, match=r"Another `elt run` of DAG shop_elt is running .* Fix: wait"),
            sole_run("shop_elt"),
        ):
            pass
        with sole_run("other_dag"):
            pass
    with sole_run("shop_elt"):  # released once the first run ended
        pass


def test_a_live_scheduler_is_named_with_the_fix(monkeypatch):
    monkeypatch.setattr("elt_platform.run_history.live_scheduler", lambda: "scheduler-host-1")
    refused = r"A scheduler on scheduler-host-1 serves .* Fix: trigger the DAG there .*airflow dags trigger shop_elt"
    with pytest.raises(AnotherWriter, match=refused), sole_run("shop_elt"):
        pass
