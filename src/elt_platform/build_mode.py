"""One ``dbt build`` per DAG run behind one Airflow task per dbt node (the default transform mode).

Cosmos's WATCHER execution mode renders the project as a *producer* task, which runs a
single ``dbt build``, and one sensor per dbt node, which reports that node's result. This
module keeps that shape and changes what the pipeline's guarantees need:

- **No worker process per node.** Each node's task starts in the triggerer
  (``start_from_trigger``) and a passing node ends there (``TaskSuccessEvent``). Only a
  node that failed, warned or must run alone goes to a worker, where it raises with dbt's
  own error (failure location, retries and alerts as for any task) or runs dbt for itself.
- **Syncs gate exactly the models that read from them.** The producer waits for every sync
  to finish, whatever its outcome, and excludes from the build everything downstream of a
  source whose sync did not succeed. Those nodes' tasks are ``upstream_failed`` through the
  normal Airflow dependencies (sync -> source -> models); every other model runs.
- **A model fails its own task, never the producer's.** dbt's "some nodes failed" exit ends
  the producer successfully; only a dbt run that could not happen at all fails it.
- **A retry re-runs that node only.** A later try of a node's task waits for the producer to
  finish, then runs ``dbt run``/``dbt test``/``dbt source freshness`` for that node alone.
  So does a node dbt skipped because an upstream model failed, once the upstream task has
  succeeded on retry.
- **One writer.** The producer holds the warehouse pool slot; node tasks hold no slot while
  they wait, and a node's own dbt run takes a file lock first when the warehouse is DuckDB.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow.exceptions import AirflowException
from airflow.sdk.bases.operator import BaseOperator
from airflow.triggers.base import BaseTrigger, StartTriggerArgs, TaskSuccessEvent, TriggerEvent
from asgiref.sync import sync_to_async
from cosmos.dbt.graph import DbtNode
from cosmos.operators._watcher.base import _log_dbt_msg
from cosmos.operators._watcher.state import (
    DBT_FAILED_STATUSES,
    DBT_SUCCESS_STATUSES,
    get_dbt_event_xcom_key,
    get_status_xcom_key,
)
from cosmos.operators.watcher import (
    DbtProducerWatcherOperator,
    DbtRunWatcherOperator,
    DbtSourceWatcherOperator,
    DbtTestWatcherOperator,
)

try:
    from airflow.task.trigger_rule import TriggerRule
except ImportError:  # pragma: no cover - Airflow < 3.1
    from airflow.utils.trigger_rule import TriggerRule

PRODUCER_STATES_DONE = {"success", "failed", "skipped", "upstream_failed"}
# dbt log events the node tasks need from the producer: a node's final status, and the
# events that tell a skip caused by an upstream failure apart (Cosmos turns those into "failed").
TERMINAL_EVENTS = {"NodeFinished", "LogSkipBecauseError", "SkippingDetails"}
NODE_TASK_POOL = "default_pool"


@contextmanager
def warehouse_lock(name: str | None) -> Iterator[None]:
    """Hold an exclusive lock named after the warehouse pool, or nothing when ``name`` is None.

    DuckDB allows one writer per file. The producer holds the pool slot; a node task that
    runs dbt for itself holds this lock (LocalExecutor: every writer is on this machine).
    """
    if name is None:
        yield
        return
    path = Path(tempfile.gettempdir()) / f"elt-warehouse-{name}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def descendants(nodes: dict[str, DbtNode], roots: set[str]) -> set[str]:
    """Every node that depends, directly or not, on one of ``roots``."""
    dependents: dict[str, set[str]] = {}
    for node_id, node in nodes.items():
        for parent in node.depends_on:
            dependents.setdefault(parent, set()).add(node_id)
    found: set[str] = set()
    stack = list(roots)
    while stack:
        for child in dependents.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


class BuildProducer(DbtProducerWatcherOperator):
    """Runs the DAG run's one ``dbt build`` and publishes each node's result as it finishes."""

    # Set by ``refine``: dbt source unique_id -> id of the sync task that loads it.
    source_syncs: dict[str, str]
    lock_name: str | None

    def excluded_nodes(self, context: Any, dag: Any, task_group: Any, nodes: Any, sources_json: Any) -> list:
        """Cosmos's freshness callback: what this build must leave out, with the state to publish.

        Left out: everything downstream of a source whose sync did not succeed, or whose
        freshness check errored. Their tasks are held back by Airflow (upstream_failed).
        """
        nodes = nodes or {}
        ti = context["ti"]
        sync_ids = sorted(set(self.source_syncs.values()))
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=sync_ids, run_ids=[ti.run_id]) if sync_ids else {}
        sync_state = states.get(ti.run_id, {})
        failed = {source for source, sync in self.source_syncs.items() if sync_state.get(sync) != "success"}
        stale = {
            r["unique_id"]
            for r in (sources_json or {}).get("results", [])
            if r.get("status") in {"error", "runtime error"}
        }
        if failed:
            self.log.info("Sources whose sync did not succeed: %s", ", ".join(sorted(failed)))
        if stale:
            self.log.info("Sources whose freshness check errored: %s", ", ".join(sorted(stale)))
        held_back = descendants(nodes, failed | stale)
        runnable = {"model", "seed", "snapshot"}
        return sorted((uid, "skipped") for uid in held_back if str(nodes[uid].resource_type.value) in runnable)

    def _make_parse_callable(self) -> Any:
        """Publish only final node results: one XCom per event would slow every dbt thread down."""
        parse = super()._make_parse_callable()

        def parse_terminal(line: str, extra_kwargs: Any) -> None:
            try:
                name = json.loads(line).get("info", {}).get("name")
            except (json.JSONDecodeError, AttributeError):
                name = None
            if name in TERMINAL_EVENTS or name is None:
                parse(line, extra_kwargs)
            else:
                _log_dbt_msg(json.loads(line))

        return parse_terminal

    def handle_exception_dbt_runner(self, result: Any) -> None:
        if result.exception is None and result.result is not None:
            self.log.warning("dbt build finished with failed nodes: each fails its own task.")
            return
        super().handle_exception_dbt_runner(result)

    def handle_exception_subprocess(self, result: Any) -> None:
        if result.exit_code == 1:  # dbt: nodes failed (2 would be a dbt error)
            self.log.warning("dbt build finished with failed nodes: each fails its own task.")
            return
        super().handle_exception_subprocess(result)

    def execute(self, context: Any, **kwargs: Any) -> Any:
        with warehouse_lock(self.lock_name):
            return super().execute(context, **kwargs)


class NodeResult:
    """What a node task does on a worker: only when its node failed, warned or must run alone."""

    node_kind: str  # "model", "source" or "tests"
    lock_name: str | None
    on_warning: Any = None

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        outcome = event["outcome"]
        if outcome == "run_alone":
            self.log.info("%s", event["reason"])
            return self.run_alone(context)
        if outcome == "not_reported":
            producer = event["producer_task_id"]
            if event["producer_state"] == "success":
                self.log.info("dbt build (%s) did not run %s: running it alone.", producer, self.model_unique_id)
                return self.run_alone(context)
            raise AirflowException(
                f"dbt build ({producer}) ended '{event['producer_state']}' before reporting on "
                f"{self.model_unique_id}: see that task's log. A retry of this task runs it alone."
            )
        results: dict[str, dict[str, Any]] = event["results"]
        for node_id, result in results.items():
            self.log.info("%s: %s %s", node_id, result["status"], result.get("msg") or "")
        failed = {
            n: r for n, r in results.items() if r["status"] in DBT_FAILED_STATUSES and r.get("event") != "skipped"
        }
        if failed:
            message = "\n".join(f"{n}: {r.get('msg') or r['status']}" for n, r in failed.items())
            raise AirflowException(f"dbt {self.node_kind} {self.model_unique_id} failed:\n{message}")
        if any(r["status"] not in DBT_SUCCESS_STATUSES for r in results.values()):
            # Skipped by dbt because an upstream model failed; that upstream has now succeeded.
            self.log.info("dbt build skipped %s after an upstream failure: running it alone.", self.model_unique_id)
            return self.run_alone(context)
        warned = {n: r for n, r in results.items() if r["status"] == "warn"}
        self.warn(context, list(warned), [r.get("msg") or "warn" for r in warned.values()])
        return None

    def warn(self, context: Any, names: list[str], messages: list[str]) -> None:
        if names and self.on_warning is not None:
            self.on_warning({**context, "test_names": names, "test_results": messages})

    def run_alone(self, context: Any) -> None:
        """This node alone, as Cosmos LOCAL would run it (used by retries and re-runs)."""
        with warehouse_lock(self.lock_name):
            result = self.build_and_run_cmd(context, cmd_flags=self.alone_flags())
        if self.node_kind == "tests":
            from cosmos.dbt.runner import extract_message_by_status

            names, messages = extract_message_by_status(result, ["warn"]) if hasattr(result, "result") else ([], [])
            self.warn(context, names, messages)

    def alone_flags(self) -> list[str]:
        name = DbtNode.get_resource_name_from_unique_id(self.model_unique_id)
        return ["--select", f"source:{name}" if self.node_kind == "source" else name]


class ModelResult(NodeResult, DbtRunWatcherOperator):
    node_kind = "model"


class NodeTestsResult(NodeResult, DbtTestWatcherOperator):
    node_kind = "tests"


class SourceResult(NodeResult, DbtSourceWatcherOperator):
    node_kind = "source"


class NodeResultTrigger(BaseTrigger):
    """Waits in the triggerer for the producer's result on a node (or a model's tests).

    Runs as the first step of the node's task (``start_from_trigger``): a pass ends the task
    here; anything else resumes it on a worker with the results. A later try resumes it on a
    worker as soon as the producer is done, to run the node alone.
    """

    def __init__(self, producer_task_id: str, node_ids: list[str], kind: str, poll_seconds: float = 1.0):
        super().__init__()
        self.producer_task_id = producer_task_id
        self.node_ids = list(node_ids)
        self.kind = kind
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "producer_task_id": self.producer_task_id,
                "node_ids": self.node_ids,
                "kind": self.kind,
                "poll_seconds": self.poll_seconds,
            },
        )

    async def _xcom(self, key: str) -> Any:
        from airflow.sdk.execution_time.xcom import XCom

        ti = self.task_instance
        return await sync_to_async(XCom.get_one)(
            run_id=ti.run_id, key=key, task_id=self.producer_task_id, dag_id=ti.dag_id, map_index=-1
        )

    async def _producer_state(self) -> str | None:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        ti = self.task_instance
        states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
            dag_id=ti.dag_id, task_ids=[self.producer_task_id], run_ids=[ti.run_id]
        )
        return states.get(ti.run_id, {}).get(self.producer_task_id)

    async def _result(self, node_id: str) -> dict[str, Any] | None:
        """The node's final result, or None while dbt has not finished it."""
        event = await self._xcom(get_dbt_event_xcom_key(node_id)) or {}
        if self.kind == "tests":
            status = event.get("status")
        else:
            published = await self._xcom(get_status_xcom_key(node_id))
            status = published.get("status") if isinstance(published, dict) else published
        if status is None or status not in DBT_SUCCESS_STATUSES | DBT_FAILED_STATUSES | {"skipped"}:
            return None
        return {"status": str(status), "event": event.get("status"), "msg": event.get("msg")}

    async def _results(self) -> dict[str, dict[str, Any]] | None:
        results = {}
        for node_id in self.node_ids:
            result = await self._result(node_id)
            if result is None:
                return None
            results[node_id] = result
        return results

    async def run(self) -> AsyncIterator[TriggerEvent]:
        first_try = self.task_instance.try_number <= 1
        producer_checked = 0.0
        while True:
            results = await self._results() if first_try else None
            if results is not None:
                if all(r["status"] in DBT_SUCCESS_STATUSES and r["status"] != "warn" for r in results.values()):
                    yield TaskSuccessEvent()
                else:
                    yield TriggerEvent({"outcome": "results", "results": results})
                return
            # The producer's state matters only when a result is missing: ask every few polls.
            if time.monotonic() - producer_checked >= max(5 * self.poll_seconds, 5):
                producer_checked = time.monotonic()
                state = await self._producer_state()
                if state in PRODUCER_STATES_DONE:
                    if not first_try:
                        reason = f"Try {self.task_instance.try_number}: dbt build is done, running this node alone."
                        yield TriggerEvent({"outcome": "run_alone", "reason": reason})
                        return
                    results = await self._results()  # published just before the producer ended?
                    if results is None:
                        yield TriggerEvent(
                            {
                                "outcome": "not_reported",
                                "producer_state": state,
                                "producer_task_id": self.producer_task_id,
                            }
                        )
                        return
                    continue
            await asyncio.sleep(self.poll_seconds)


def _start_in_triggerer(task: BaseOperator, trigger_kwargs: dict[str, Any]) -> None:
    task.start_from_trigger = True
    task.start_trigger_args = StartTriggerArgs(
        trigger_cls=f"{NodeResultTrigger.__module__}.{NodeResultTrigger.__qualname__}",
        trigger_kwargs=trigger_kwargs,
        next_method="execute_complete",
        next_kwargs=None,
        timeout=None,
    )


def refine(
    tasks: list[BaseOperator],
    *,
    source_syncs: dict[str, str],
    warehouse_pool: str,
    lock_name: str | None,
    poll_seconds: float,
    on_warning: Any,
) -> BaseOperator:
    """Turn the tasks Cosmos rendered in WATCHER mode into this mode's tasks; returns the producer."""
    [producer] = [t for t in tasks if isinstance(t, DbtProducerWatcherOperator)]
    producer.__class__ = BuildProducer
    producer.source_syncs = source_syncs
    producer.lock_name = lock_name
    producer._freshness_callback = producer.excluded_nodes
    producer.pool = warehouse_pool
    producer.trigger_rule = TriggerRule.ALL_DONE  # runs whatever the syncs' outcome; excludes what they hold back
    producer.retries = 0  # a node's retry runs that node alone; a second whole build would redo every node
    tests_per_model: dict[str, list[str]] = producer.tests_per_model
    # Tests on two models (relationships) have a task of their own, after both models' tests.
    detached = {
        t.model_unique_id for t in tasks if type(t) is DbtTestWatcherOperator and t.model_unique_id.startswith("test.")
    }
    swaps = {
        DbtRunWatcherOperator: ModelResult,
        DbtTestWatcherOperator: NodeTestsResult,
        DbtSourceWatcherOperator: SourceResult,
    }
    for task in tasks:
        new_class = swaps.get(type(task))
        if new_class is None:
            continue
        task.__class__ = new_class
        task.lock_name = lock_name
        task.on_warning = on_warning
        task.producer_task_id = producer.task_id
        task.pool = NODE_TASK_POOL  # waiting holds no warehouse slot; running alone takes the lock
        node_id = task.model_unique_id
        # A model's tests task watches each of its tests; a detached test watches itself.
        own_tests = [t for t in tests_per_model.get(node_id, []) if t not in detached]
        node_ids = (own_tests or [node_id]) if new_class is NodeTestsResult else [node_id]
        kwargs = {"producer_task_id": producer.task_id, "node_ids": node_ids, "kind": task.node_kind}
        _start_in_triggerer(task, {**kwargs, "poll_seconds": poll_seconds})
    return producer
