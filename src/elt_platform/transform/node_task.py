"""A dbt node's task, and its trigger: the node's result in this run's build, or the node built alone.

The task starts in the triggerer (``start_from_trigger``): no worker process, no DAG parse.
Its trigger applies ``policy.decide`` to the build's published records until the outcome's
effect (``policy.EFFECTS``) is to succeed there or to resume on a worker, where
``DbtNodeTask.execute_complete`` acts on the same outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from airflow.sdk import BaseOperator, TaskInstanceState, TriggerRule
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
)
from airflow.triggers.base import BaseTrigger, StartTriggerArgs, TaskSuccessEvent, TriggerEvent
from asgiref.sync import sync_to_async
from cosmos.config import ProfileConfig

from elt_platform.run_params import full_refresh_requested
from elt_platform.settings import AIRFLOW_DEFAULT_POOL
from elt_platform.transform.dbt_errors import DeterministicDbtError, is_deterministic
from elt_platform.transform.dbt_operators import (
    DbtBuildInProjectFolder,
    DbtSourceInProjectFolder,
    DbtTestInProjectFolder,
)
from elt_platform.transform.policy import BUILD_ENDED, Decision, Effect, Outcome, decide
from elt_platform.transform.results import RESULTS_XCOM_KEY, NodeRecord, records_of
from elt_platform.warehouse import duckdb_file, warehouse_lock


class NodeKind(StrEnum):
    """What a node task stands for, which decides how it is built when it runs alone."""

    MODEL = "model"  # a model, seed or snapshot, with the tests on it alone
    SOURCE = "source"  # a source's freshness and its tests
    TEST = "test"  # a test reading several nodes


NODE_TASK_POOL = AIRFLOW_DEFAULT_POOL


@dataclass
class NodeRunner:
    """How a node runs alone, shared by every node task: Cosmos's LOCAL operators, built on demand."""

    project_dir: Path
    profile_config: ProfileConfig
    execution_args: dict[str, Any]
    # The Airflow connection of the DuckDB file whose lock every dbt invocation takes; None on BigQuery.
    duckdb_conn_id: str | None
    on_warning: Callable[[Any], None] | None = field(default=None, repr=False)
    cache_dir: Path | None = None

    def run(self, task: DbtNodeTask, context: Any) -> None:
        common = {
            "task_id": task.task_id,
            "project_dir": str(self.project_dir),
            "profile_config": self.profile_config,
            "install_deps": False,
            "should_store_compiled_sql": False,
            "emit_datasets": False,
            "on_warning_callback": self.on_warning,
            "cache_dir": self.cache_dir,
            **self.execution_args,
        }
        if task.kind == NodeKind.TEST:
            operators = [DbtTestInProjectFolder(select=task.select, **common)]
        else:
            # Only the tests on this node alone: a test reading two nodes has a task of its own.
            full_refresh = full_refresh_requested(context)
            operators = [
                DbtBuildInProjectFolder(
                    select=task.select, indirect_selection="cautious", full_refresh=full_refresh, **common
                )
            ]
            if task.kind == NodeKind.SOURCE and task.has_freshness:
                operators.insert(0, DbtSourceInProjectFolder(select=task.select, **common))
        # A failure no retry can fix raises DeterministicDbtError from the operator itself.
        with warehouse_lock(duckdb_file(self.duckdb_conn_id) if self.duckdb_conn_id else None):
            for operator in operators:
                operator.execute(context)


class DbtNodeTask(BaseOperator):
    """One dbt node (a model with its own tests, a source's freshness and tests, or a test
    reading several nodes): its result in this run's ``dbt build``, or the node built alone."""

    ui_color = "#e8f7e4"
    template_fields = ()

    def __init__(
        self,
        *,
        kind: NodeKind,
        unique_id: str,
        select: str,
        watch: list[str],
        runner: NodeRunner,
        producer_task_id: str,
        poll_seconds: float,
        has_freshness: bool = False,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("on_success_callback"):
            # The triggerer queues no success callback for these tasks (triggerer_plugin.py).
            raise ValueError(
                f"{kwargs.get('task_id')}: a dbt node's task takes no on_success_callback. Fix: put it on "
                "the DAG (on_success_callback of the DAG runs once per run) or on a task after the transform."
            )
        super().__init__(pool=NODE_TASK_POOL, **kwargs)
        self.kind = NodeKind(kind)
        self.unique_id = unique_id
        self.select = select
        self.has_freshness = has_freshness
        self.runner = runner
        self.watch = watch
        self.producer_task_id = producer_task_id
        self.poll_seconds = poll_seconds
        self.start_from_trigger = True
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=NODE_RESULT_TRIGGER,
            trigger_kwargs={"producer_task_id": producer_task_id, "node_ids": watch, "poll_seconds": poll_seconds},
            next_method="execute_complete",
            next_kwargs=None,
            timeout=None,
        )

    def execute(self, context: Any) -> None:
        """Reached only when the task did not start in the triggerer (``airflow dags test``)."""
        ti = context["ti"]
        build_state = ti.get_task_states(dag_id=ti.dag_id, task_ids=[self.producer_task_id], run_ids=[ti.run_id])
        records = records_of(ti.xcom_pull(task_ids=self.producer_task_id, key=RESULTS_XCOM_KEY))
        decision = decide(
            try_number=ti.try_number,
            watched=self.watch,
            records=records,
            build_state=build_state.get(ti.run_id, {}).get(self.producer_task_id),
        )
        if decision.effect is Effect.KEEP_WAITING:
            raise AirflowRescheduleException(datetime.now(UTC) + timedelta(seconds=2))
        if decision.effect is Effect.SUCCEED_IN_TRIGGERER:
            return None
        return self.execute_complete(context, decision.as_event())

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        """On a worker: act on the outcome the trigger (or ``execute``) decided."""
        decision = Decision.from_event(event)
        for node_id, record in decision.records.items():
            self.log.info("%s: %s%s", node_id, record.status, f"\n{record.message}" if record.message else "")
        match decision.outcome:
            case Outcome.FAILED:
                self._fail(decision.records)
            case Outcome.WARNED:
                self._warn(decision.records, context)
            case Outcome.RUN_ALONE:
                self.log.info("%s Running %s alone.", decision.reason, self.unique_id)
                self.runner.run(self, context)
            case Outcome.NOT_REPORTED:
                raise AirflowException(f"{decision.reason} See its log. A retry of this task runs the node alone.")
            case _:
                raise AirflowException(f"Outcome {decision.outcome.value} is not acted on by a worker.")

    def _fail(self, failed: dict[str, NodeRecord]) -> None:
        message = "\n".join(f"{node}: {record.message or record.status}" for node, record in failed.items())
        if all(is_deterministic(record.message or "", record.status) for record in failed.values()):
            raise DeterministicDbtError(f"dbt {self.kind} {self.unique_id} failed:\n{message}")
        raise AirflowException(f"dbt {self.kind} {self.unique_id} failed:\n{message}")

    def _warn(self, warned: dict[str, NodeRecord], context: Any) -> None:
        if self.runner.on_warning is not None:
            names, messages = list(warned), [record.message or "warn" for record in warned.values()]
            self.runner.on_warning({**context, "test_names": names, "test_results": messages})


class _RunView:
    """The build's records and state for one DAG run, read at most once per poll interval
    however many node tasks of that run wait in this triggerer."""

    views: ClassVar[dict[tuple[str, str, str], _RunView]] = {}

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.read_at = 0.0
        self.records: dict[str, NodeRecord] = {}
        self.build_state: str | None = None

    @classmethod
    def of(cls, dag_id: str, run_id: str, producer_task_id: str) -> _RunView:
        return cls.views.setdefault((dag_id, run_id, producer_task_id), cls())

    async def refresh(self, trigger: NodeResultTrigger, max_age: float) -> None:
        async with self.lock:
            if time.monotonic() - self.read_at < max_age:
                return
            # The node task's runtime instance, which the triggerer hands a trigger whose task starts
            # there: Airflow's public RuntimeTaskInstanceProtocol (``airflow.sdk.types.TaskInstance``).
            ti = trigger.task_instance
            states = await sync_to_async(ti.get_task_states)(
                dag_id=ti.dag_id, task_ids=[trigger.producer_task_id], run_ids=[ti.run_id]
            )
            self.build_state = states.get(ti.run_id, {}).get(trigger.producer_task_id)
            raw = None
            if (
                self.build_state == TaskInstanceState.RUNNING or self.build_state in BUILD_ENDED
            ):  # else it has published nothing
                raw = await sync_to_async(ti.xcom_pull)(
                    task_ids=trigger.producer_task_id, key=RESULTS_XCOM_KEY, map_indexes=-1, run_id=ti.run_id
                )
            self.records = records_of(raw)
            self.read_at = time.monotonic()


class NodeResultTrigger(BaseTrigger):
    """The node task's wait, in the triggerer: ``decide`` on the build's records until the
    outcome's effect is to succeed here or to resume on a worker."""

    def __init__(self, producer_task_id: str, node_ids: list[str], poll_seconds: float = 1.0):
        super().__init__()
        self.producer_task_id = producer_task_id
        self.node_ids = list(node_ids)
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {
            "producer_task_id": self.producer_task_id,
            "node_ids": self.node_ids,
            "poll_seconds": self.poll_seconds,
        }
        return NODE_RESULT_TRIGGER, kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ti = self.task_instance
        view = _RunView.of(ti.dag_id, ti.run_id, self.producer_task_id)
        last_reason = None
        try:
            while True:
                await view.refresh(self, self.poll_seconds)
                decision = decide(
                    try_number=ti.try_number, watched=self.node_ids, records=view.records, build_state=view.build_state
                )
                if decision.reason != last_reason:
                    # ainfo: written from a thread, so the event loop, which reads the triggerer
                    # supervisor's messages, never waits on a log write (the supervisor, in turn,
                    # may be waiting for it to read before it drains the logs).
                    await self.log.ainfo("%s: %s", decision.outcome.value, decision.reason or "dbt passed it.")
                    last_reason = decision.reason
                if decision.effect is Effect.SUCCEED_IN_TRIGGERER:
                    yield TaskSuccessEvent()
                    return
                if decision.effect is Effect.RESUME_ON_WORKER:
                    yield TriggerEvent(decision.as_event())
                    return
                await asyncio.sleep(self.poll_seconds)
        finally:
            if view.build_state in BUILD_ENDED:
                _RunView.views.pop((ti.dag_id, ti.run_id, self.producer_task_id), None)


NODE_RESULT_TRIGGER = f"{NodeResultTrigger.__module__}.{NodeResultTrigger.__qualname__}"


class FailRunIfANodeFailed(BaseOperator):
    """The transform group's last task: fails the DAG run when a node's task failed.

    Airflow sets a run's state from its leaf tasks, and the dashboards' tasks follow the
    transform: without this task, a run whose failure is behind them would end ``success``.
    It runs only when a task upstream of it failed (trigger rule ``one_failed``) and alerts
    nobody: the failed task has already.
    """

    ui_color = "#f5d5d5"

    def __init__(self, **kwargs: Any) -> None:
        kwargs |= {"trigger_rule": TriggerRule.ONE_FAILED, "retries": 0, "pool": NODE_TASK_POOL}
        super().__init__(on_failure_callback=None, on_retry_callback=None, **kwargs)

    def execute(self, context: Any) -> None:
        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=sorted(self.upstream_task_ids), run_ids=[ti.run_id])
        failed = sorted(
            t
            for t, state in states.get(ti.run_id, {}).items()
            if state in {TaskInstanceState.FAILED, TaskInstanceState.UPSTREAM_FAILED}
        )
        raise AirflowFailException(f"Failed in this run: {', '.join(failed) or 'a task of the transform group'}.")
