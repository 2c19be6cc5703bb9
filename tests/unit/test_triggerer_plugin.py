"""The plugin that readies the triggerer: Airflow finds it, and its listener lightens the triggerer's work."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from airflow.jobs import triggerer_job_runner
from airflow.models.dagbag import DBDagBag

from elt_platform import dependency_internals
from elt_platform.transform.node_task import NODE_RESULT_TRIGGER, DbtNodeTask, NodeResultTrigger
from elt_platform.transform.triggerer_plugin import ReadyTheTriggerer, TransformTriggererPlugin


def test_airflow_finds_the_plugin_and_its_listener():
    from airflow.listeners.listener import get_listener_manager

    found = {ep.name: ep.value for ep in entry_points(group="airflow.plugins")}
    assert found["transform_triggerer"] == f"{TransformTriggererPlugin.__module__}:{TransformTriggererPlugin.__name__}"
    assert any(isinstance(listener, ReadyTheTriggerer) for listener in get_listener_manager().pm.get_plugins())


def test_as_the_triggerer_s_job_starts_the_node_tasks_get_only_their_part_of_the_dag(
    airflow_s_own_triggerer, airflow_s_own_event_handling
):
    supervisor = getattr(triggerer_job_runner, dependency_internals.TRIGGERER_SUPERVISOR)
    ReadyTheTriggerer().on_starting(component=object())
    assert supervisor._create_workload.own_part_only == {NODE_RESULT_TRIGGER}
    assert getattr(triggerer_job_runner, dependency_internals.TRIGGERER_DAG_BAG).shares_deserialized_dags
    assert _task_end_handler().quiet_success_of == {DbtNodeTask.__name__}  # and queue no success callback
    # The classpath the node tasks' workloads carry is the one the runner imports their trigger by.
    task = DbtNodeTask(
        task_id="a", kind="model", unique_id="model.p.a", select="a", watch=["model.p.a"], runner=None,
        producer_task_id="build", poll_seconds=1.0,
    )  # fmt: skip
    assert task.start_trigger_args.trigger_cls == NODE_RESULT_TRIGGER
    module, name = NODE_RESULT_TRIGGER.rsplit(".", 1)
    assert getattr(import_module(module), name) is NodeResultTrigger


def test_the_setting_turns_the_patch_off(airflow_s_own_triggerer, airflow_s_own_event_handling, monkeypatch):
    supervisor = getattr(triggerer_job_runner, dependency_internals.TRIGGERER_SUPERVISOR)
    airflow_s_own = supervisor._create_workload
    monkeypatch.setenv("ELT_TRIGGERER_PATCH", "false")
    ReadyTheTriggerer().on_starting(component=object())
    assert supervisor._create_workload is airflow_s_own
    assert getattr(triggerer_job_runner, dependency_internals.TRIGGERER_DAG_BAG) is DBDagBag
    assert not hasattr(_task_end_handler(), "quiet_success_of")


def _task_end_handler():
    """Airflow's handler of a task's end in the triggerer, as now registered."""
    from airflow.models import trigger
    from airflow.triggers.base import BaseTaskEndEvent

    return trigger.handle_event_submit.dispatch(BaseTaskEndEvent)


def test_unreadable_settings_leave_the_triggerer_running_as_airflow_ships_it(
    airflow_s_own_triggerer, airflow_s_own_event_handling, monkeypatch, caplog
):
    supervisor = getattr(triggerer_job_runner, dependency_internals.TRIGGERER_SUPERVISOR)
    airflow_s_own = supervisor._create_workload
    monkeypatch.setenv("ELT_TRIGGERER_PATCH", "sometimes")
    ReadyTheTriggerer().on_starting(component=object())  # no exception: the triggerer starts
    assert supervisor._create_workload is airflow_s_own
    assert "ELT_TRIGGERER_PATCH='sometimes' is neither true nor false" in caplog.text
