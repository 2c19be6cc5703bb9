"""Unit tests run no process: one that does belongs in tests/commands/ (or tests/integration/)."""

from __future__ import annotations

import subprocess

# croniter runs `file` on the interpreter as it is first imported (platform.architecture()), which
# Airflow does for the first DAG with a schedule: loaded here, before processes are refused.
import croniter  # noqa: F401
import pytest


@pytest.fixture(autouse=True)
def no_processes(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(
            f"A unit test started a process ({args[0] if args else kwargs.get('args')}): "
            "move the test to tests/commands/."
        )

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture
def airflow_s_own_triggerer(monkeypatch):
    """The triggerer's module with Airflow's own names, whatever an earlier test's patch left; put back after."""
    from airflow.jobs import triggerer_job_runner
    from airflow.models.dagbag import DBDagBag

    from elt_platform import dependency_internals

    supervisor = getattr(triggerer_job_runner, dependency_internals.TRIGGERER_SUPERVISOR)
    create_workload = supervisor._create_workload
    while hasattr(create_workload, "__wrapped__"):
        create_workload = create_workload.__wrapped__
    monkeypatch.setattr(supervisor, "_create_workload", create_workload)
    monkeypatch.setattr(triggerer_job_runner, dependency_internals.TRIGGERER_DAG_BAG, DBDagBag)
    return triggerer_job_runner


@pytest.fixture
def airflow_s_own_event_handling(monkeypatch):
    """Airflow's own handling of a task's end in the triggerer, whatever an earlier test patched; put back after."""
    from airflow.callbacks.database_callback_sink import DatabaseCallbackSink
    from airflow.models import trigger
    from airflow.triggers.base import BaseTaskEndEvent

    handler = trigger.handle_event_submit.dispatch(BaseTaskEndEvent)
    while hasattr(handler, "__wrapped__"):
        handler = handler.__wrapped__
    send = DatabaseCallbackSink.send
    while hasattr(send, "__wrapped__"):
        send = send.__wrapped__
    trigger.handle_event_submit.register(BaseTaskEndEvent, handler)
    monkeypatch.setattr(DatabaseCallbackSink, "send", send)
    yield
    trigger.handle_event_submit.register(BaseTaskEndEvent, handler)
