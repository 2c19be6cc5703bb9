"""The default transform mode: one ``dbt build`` per DAG run, one Airflow task per dbt node.

The ``transform`` task group holds one task, ``dbt_build``, that runs the run's single
``dbt build`` (Cosmos's WATCHER *producer*: it publishes each node's result to XCom as
dbt finishes it), and one task per dbt node, wired like the dbt graph:

- ``transform.<model>``: the model (seed, snapshot) and its own tests, as ``dbt build``
  sees them;
- ``transform.<source>.<table>``: the source's freshness check and tests, after the sync
  that loads it;
- ``transform.<test>``: a test reading two nodes (e.g. ``relationships``), after both.

Guarantees, and how they are kept:

- **Cheap per-node tasks.** A node's task starts in the triggerer (``start_from_trigger``)
  and, when its node passed, ends there (``TaskSuccessEvent``): no worker process, no DAG
  parse. Only a node that failed, warned or must run alone resumes on a worker. The tasks
  are plain operators rendered from a compact copy of the manifest, so a 1,000-model DAG
  parses in a fraction of a second.
- **Syncs gate exactly the models that read from them.** ``dbt_build`` runs once every
  sync has finished, whatever the outcome, and leaves out everything downstream of a source
  whose sync did not succeed (or whose freshness check errored). Those nodes' tasks are
  ``upstream_failed`` through the Airflow edges sync -> source -> models; all else runs.
- **A failure lands on its node.** dbt's "some nodes failed" exit ends ``dbt_build``
  successfully; the node's own task fails with dbt's error, retries and alerts as any task.
  Tasks downstream of it are ``upstream_failed``.
- **A retry re-runs that node only.** A later try waits for ``dbt_build`` to end, then runs
  ``dbt build --select <node>`` alone. So does a node dbt skipped because an upstream node
  failed, once that upstream task has succeeded on retry (or after a *Clear*).
- **One writer.** ``dbt_build`` holds the warehouse pool slot (DuckDB: one writer per
  file); node tasks hold no slot while they wait, and a node running alone takes a file
  lock first when the warehouse is DuckDB.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import queue
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow.exceptions import AirflowException
from airflow.sdk import BaseOperator, TaskGroup
from airflow.triggers.base import BaseTrigger, StartTriggerArgs, TaskSuccessEvent, TriggerEvent
from asgiref.sync import sync_to_async
from cosmos import cache as cosmos_cache
from cosmos import settings as cosmos_settings
from cosmos.airflow.compatibility import AirflowSkipException
from cosmos.config import ProfileConfig
from cosmos.operators._watcher.base import _log_dbt_msg
from cosmos.operators._watcher.state import (
    DBT_FAILED_STATUSES,
    DBT_SUCCESS_STATUSES,
    get_dbt_event_xcom_key,
    get_status_xcom_key,
    xcom_set_lock,
)
from cosmos.operators.watcher import DbtProducerWatcherOperator

from elt_platform.dbt_manifest import Manifest

try:
    from airflow.task.trigger_rule import TriggerRule
except ImportError:  # pragma: no cover - Airflow < 3.1
    from airflow.utils.trigger_rule import TriggerRule

PRODUCER_TASK_ID = "dbt_build"
NODE_TASK_POOL = "default_pool"
PRODUCER_DONE = {"success", "failed", "skipped", "upstream_failed"}
FINAL = DBT_SUCCESS_STATUSES | DBT_FAILED_STATUSES | {"skipped"}
PASSED = {"success", "pass"}
# dbt's events for a node it skips because an upstream node failed (then "NodeFinished": skipped).
UPSTREAM_FAILURE_SKIP_EVENTS = {"LogSkipBecauseError", "SkippingDetails"}


def published_status(value: Any) -> str | None:
    """A node's status as the producer publishes it: {"status": ..., "outlet_uris": [...]}."""
    status = value.get("status") if isinstance(value, dict) else value
    return None if status is None else str(status)


def node_results(statuses: dict[str, str], events: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each node's status, with dbt's raw status and message where there is an event."""
    found = {}
    for node_id, status in statuses.items():
        event = events.get(node_id) or {}
        found[node_id] = {"status": status, "event": event.get("status"), "msg": event.get("msg")}
    return found


class XComPublisher:
    """Pushes XComs from one background thread, in order, so dbt's threads never wait on the API."""

    def __init__(self, task_instance: Any):
        self.task_instance = task_instance
        self.queue: queue.SimpleQueue[tuple[str, Any] | None] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="xcom-publisher", daemon=True)
        self.thread.start()

    def put(self, key: str, value: Any) -> None:
        self.queue.put((key, value))

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            try:
                with xcom_set_lock:  # Cosmos's lock: one message at a time to the task supervisor
                    self.task_instance.xcom_push(key=item[0], value=item[1])
            except Exception as error:  # kept for close(): the node tasks would wait for nothing
                self.error = self.error or error

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise AirflowException(f"Could not publish dbt results to XCom: {self.error}") from self.error


@contextmanager
def warehouse_lock(name: str | None) -> Iterator[None]:
    """An exclusive lock named after the warehouse pool; nothing when ``name`` is None.

    DuckDB allows one writer per file. ``dbt_build`` holds the pool slot; a node that runs
    dbt alone holds this lock (LocalExecutor: every writer runs on this machine).
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


def descendants(parents: dict[str, tuple[str, ...]], roots: set[str]) -> set[str]:
    """Every node that depends, directly or not, on one of ``roots``."""
    children: dict[str, set[str]] = {}
    for node_id, node_parents in parents.items():
        for parent in node_parents:
            children.setdefault(parent, set()).add(node_id)
    found: set[str] = set()
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


class BuildProducer(DbtProducerWatcherOperator):
    """Runs the DAG run's one ``dbt build`` and publishes each node's result as dbt finishes it."""

    def __init__(
        self, *, source_syncs: dict[str, str], parents: dict[str, tuple[str, ...]], lock_name: str | None, **kwargs
    ):
        super().__init__(freshness_callback=self.left_out, **kwargs)
        self.source_syncs = source_syncs  # dbt source unique_id -> the sync task that loads it
        self.parents = parents  # buildable node unique_id -> the nodes it reads
        self.lock_name = lock_name

    def left_out(self, context: Any, *_: Any) -> list[tuple[str, str]]:
        """What this build leaves out, published as "skipped": everything downstream of a
        source whose sync did not succeed or whose freshness check errored."""
        ti = context["ti"]
        syncs = sorted(set(self.source_syncs.values()))
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=syncs, run_ids=[ti.run_id]) if syncs else {}
        sync_state = states.get(ti.run_id, {})
        failed = {source for source, sync in self.source_syncs.items() if sync_state.get(sync) != "success"}
        stale = {
            r["unique_id"]
            for r in (getattr(self, "_sources_json", None) or {}).get("results", [])
            if r.get("status") in {"error", "runtime error"}
        }
        for label, sources in (("did not sync", failed), ("errored on freshness", stale)):
            if sources:
                self.log.info("Sources that %s: %s; what reads them is left out.", label, ", ".join(sorted(sources)))
        return sorted((uid, "skipped") for uid in descendants(self.parents, failed | stale) if uid in self.parents)

    def _make_parse_callable(self) -> Callable[[str, Any], None]:
        """Read dbt's JSON log: log every line, publish each node's final result.

        A result is one XCom (``<node>_status``), plus dbt's event (``<node>_dbt_event``:
        raw status and message) when the node did not pass. A node dbt skipped because an
        upstream node failed is published as "failed", with its raw status "skipped".
        """
        skipped_after_failure: set[str] = set()
        publisher = self.publisher

        def on_line(line: str, extra_kwargs: Any) -> None:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                if line.strip():
                    self.log.info("%s", line)
                return
            _log_dbt_msg(event)
            name = event.get("info", {}).get("name")
            data = event.get("data") or {}
            unique_id = (data.get("node_info") or {}).get("unique_id")
            if not unique_id:
                return
            if name in UPSTREAM_FAILURE_SKIP_EVENTS:
                skipped_after_failure.add(unique_id)
            elif name == "NodeFinished":
                raw = data["node_info"].get("node_status")
                status = "failed" if raw == "skipped" and unique_id in skipped_after_failure else raw
                publisher.put(get_status_xcom_key(unique_id), {"status": status})
                if status not in PASSED:
                    message = (data.get("run_result") or {}).get("message") or event.get("info", {}).get("msg")
                    publisher.put(get_dbt_event_xcom_key(unique_id), {"status": raw, "msg": message})

        return on_line

    def handle_exception_dbt_runner(self, result: Any) -> None:
        if result.exception is None and result.result is not None:
            self.log.warning("dbt build finished with failed nodes: each one fails its own task.")
            return
        super().handle_exception_dbt_runner(result)

    def handle_exception_subprocess(self, result: Any) -> None:
        if result.exit_code == 1:  # dbt's exit code for failed nodes; 2 is dbt itself failing
            self.log.warning("dbt build finished with failed nodes: each one fails its own task.")
            return
        super().handle_exception_subprocess(result)

    def execute(self, context: Any, **kwargs: Any) -> Any:
        left_out = self.left_out(context)
        if self.parents and {uid for uid, _ in left_out} >= set(self.parents):
            raise AirflowSkipException("Nothing to build: every dbt node reads from a sync that did not succeed.")
        self.publisher = XComPublisher(context["ti"])
        try:
            with warehouse_lock(self.lock_name):
                if not self._check_source_freshness:  # else Cosmos calls left_out again, after the freshness check
                    self._apply_node_state_tokens(context, left_out)
                return super().execute(context, **kwargs)
        finally:
            self.publisher.close()  # every result is published before this task ends


@dataclass
class NodeRunner:
    """How a node runs alone, shared by every node task: Cosmos's LOCAL operators, built on demand."""

    project_dir: Path
    profile_config: ProfileConfig
    execution_args: dict[str, Any]
    lock_name: str | None
    on_warning: Callable[[Any], None] | None = field(default=None, repr=False)
    cache_dir: Path | None = None

    def run(self, task: DbtNodeTask, context: Any) -> None:
        from cosmos.operators.local import DbtBuildLocalOperator, DbtSourceLocalOperator, DbtTestLocalOperator

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
        if task.kind == "test":
            operators = [DbtTestLocalOperator(select=task.select, **common)]
        else:
            # Only the tests on this node alone: a test reading two nodes has a task of its own.
            operators = [DbtBuildLocalOperator(select=task.select, indirect_selection="cautious", **common)]
            if task.kind == "source" and task.has_freshness:
                operators.insert(0, DbtSourceLocalOperator(select=task.select, **common))
        with warehouse_lock(self.lock_name):
            for operator in operators:
                operator.execute(context)


class DbtNodeTask(BaseOperator):
    """One dbt node: its result in this run's ``dbt build``, or the node built alone."""

    ui_color = "#e8f7e4"
    template_fields = ()

    def __init__(
        self,
        *,
        kind: str,
        unique_id: str,
        select: str,
        watch: list[str],
        runner: NodeRunner,
        producer_task_id: str,
        poll_seconds: float,
        has_freshness: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(pool=NODE_TASK_POOL, **kwargs)
        self.kind = kind  # "model" (also seed, snapshot), "source" or "test"
        self.unique_id = unique_id
        self.select = select
        self.has_freshness = has_freshness
        self.runner = runner
        self.watch = watch
        self.producer_task_id = producer_task_id
        self.start_from_trigger = True
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=f"{NodeResultTrigger.__module__}.{NodeResultTrigger.__qualname__}",
            trigger_kwargs={"producer_task_id": producer_task_id, "node_ids": watch, "poll_seconds": poll_seconds},
            next_method="execute_complete",
            next_kwargs=None,
            timeout=None,
        )

    def execute(self, context: Any) -> None:
        """Reached only when the task did not start in the triggerer (``airflow dags test``):
        use dbt build's results if it has published them all, else run the node alone."""
        ti = context["ti"]
        statuses = {}
        for node_id in self.watch:
            status = published_status(ti.xcom_pull(task_ids=self.producer_task_id, key=get_status_xcom_key(node_id)))
            if status not in FINAL:
                self.log.info("dbt build has not reported on %s: running it alone.", node_id)
                return self.runner.run(self, context)
            statuses[node_id] = status
        events = {
            node_id: ti.xcom_pull(task_ids=self.producer_task_id, key=get_dbt_event_xcom_key(node_id))
            for node_id, status in statuses.items()
            if status not in PASSED
        }
        return self.execute_complete(context, {"outcome": "results", "results": node_results(statuses, events)})

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        outcome = event["outcome"]
        if outcome == "run_alone":
            self.log.info("%s Running %s alone.", event["reason"], self.unique_id)
            return self.runner.run(self, context)
        if outcome == "not_reported":
            producer, state = event["producer_task_id"], event["producer_state"]
            if state == "success":
                self.log.info("dbt build (%s) did not run %s: running it alone.", producer, self.unique_id)
                return self.runner.run(self, context)
            raise AirflowException(
                f"dbt build ({producer}) ended '{state}' before reporting on {self.unique_id}: see that task's "
                "log. A retry of this task runs the node alone."
            )
        results: dict[str, dict[str, Any]] = event["results"]
        for node_id, result in results.items():
            self.log.info("%s: %s%s", node_id, result["status"], f"\n{result['msg']}" if result.get("msg") else "")
        # A node dbt skipped because an upstream node failed is published as "failed"; its dbt event says "skipped".
        failed = {n: r for n, r in results.items() if r["status"] in DBT_FAILED_STATUSES and r["event"] != "skipped"}
        if failed:
            message = "\n".join(f"{n}: {r.get('msg') or r['status']}" for n, r in failed.items())
            raise AirflowException(f"dbt {self.kind} {self.unique_id} failed:\n{message}")
        if any(r["status"] not in DBT_SUCCESS_STATUSES for r in results.values()):
            # Upstream failed in dbt build; its task has succeeded since (retry or clear).
            self.log.info("dbt build skipped %s after an upstream failure: running it alone.", self.unique_id)
            return self.runner.run(self, context)
        warned = {n: r for n, r in results.items() if r["status"] == "warn"}
        if warned and self.runner.on_warning is not None:
            names, messages = list(warned), [r.get("msg") or "warn" for r in warned.values()]
            self.runner.on_warning({**context, "test_names": names, "test_results": messages})
        return None


class NodeResultTrigger(BaseTrigger):
    """Waits in the triggerer for ``dbt build``'s results on some dbt nodes (a node and its tests).

    The first step of a node's task (``start_from_trigger``): all passed ends the task here;
    anything else resumes it on a worker with the results. A later try resumes it on a worker
    as soon as ``dbt build`` has ended, to run the node alone.
    """

    def __init__(self, producer_task_id: str, node_ids: list[str], poll_seconds: float = 1.0):
        super().__init__()
        self.producer_task_id = producer_task_id
        self.node_ids = list(node_ids)
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {"producer_task_id": self.producer_task_id, "node_ids": self.node_ids}
        return f"{type(self).__module__}.{type(self).__qualname__}", {**kwargs, "poll_seconds": self.poll_seconds}

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

    async def _statuses(self) -> dict[str, str] | None:
        """Each watched node's final status, or None while dbt has not finished them all."""
        statuses = {}
        for node_id in self.node_ids:
            status = published_status(await self._xcom(get_status_xcom_key(node_id)))
            if status not in FINAL:
                return None
            statuses[node_id] = status
        return statuses

    async def _results(self, statuses: dict[str, str]) -> dict[str, dict[str, Any]]:
        """With dbt's own event (message, raw status) for the nodes that did not simply pass."""
        events = {n: await self._xcom(get_dbt_event_xcom_key(n)) for n, s in statuses.items() if s not in PASSED}
        return node_results(statuses, events)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        first_try = self.task_instance.try_number <= 1
        producer_checked = 0.0
        while True:
            statuses = await self._statuses() if first_try else None
            if statuses is not None:
                if all(s in PASSED for s in statuses.values()):
                    yield TaskSuccessEvent()
                else:
                    yield TriggerEvent({"outcome": "results", "results": await self._results(statuses)})
                return
            # The producer's state matters only while a result is missing: ask every few polls.
            if time.monotonic() - producer_checked >= max(5 * self.poll_seconds, 5):
                producer_checked = time.monotonic()
                state = await self._producer_state()
                if state in PRODUCER_DONE:
                    if not first_try:
                        reason = f"Try {self.task_instance.try_number}: dbt build has ended."
                        yield TriggerEvent({"outcome": "run_alone", "reason": reason})
                        return
                    if await self._statuses() is None:  # else: published just before it ended
                        producer = self.producer_task_id
                        yield TriggerEvent(
                            {"outcome": "not_reported", "producer_state": state, "producer_task_id": producer}
                        )
                        return
                    continue
            await asyncio.sleep(self.poll_seconds)


def render(
    manifest: Manifest,
    *,
    source_syncs: dict[str, BaseOperator],
    runner: NodeRunner,
    producer_args: dict[str, Any],
    warehouse_pool: str,
    poll_seconds: float,
    group_id: str,
) -> tuple[TaskGroup, dict[str, str]]:
    """The transform task group, in the DAG being built; returns it and each task's dbt node."""
    attached: dict[str, list[str]] = {}  # node -> its own tests (those reading it alone)
    detached = []
    for test in manifest.tests.values():
        parents = [p for p in test.depends_on if p in manifest.models or p in manifest.sources]
        if len(parents) == 1:
            attached.setdefault(parents[0], []).append(test.unique_id)
        elif parents:
            detached.append(test)
    node_args = {"runner": runner, "poll_seconds": poll_seconds}
    tasks: dict[str, BaseOperator] = {}
    with TaskGroup(group_id=group_id) as group:
        # Where Cosmos keeps dbt's partial parse between runs, as its converter does: without
        # it, every build would parse the whole project again.
        if cosmos_settings.enable_cache:
            runner.cache_dir = cosmos_cache._obtain_cache_dir_path(
                cosmos_cache._create_cache_identifier(group.dag, group)
            )
        producer = BuildProducer(
            task_id=PRODUCER_TASK_ID,
            task_display_name="dbt build",
            project_dir=str(runner.project_dir),
            profile_config=runner.profile_config,
            cache_dir=runner.cache_dir,
            source_syncs={uid: sync.task_id for uid, sync in source_syncs.items()},
            parents={uid: m.depends_on for uid, m in manifest.models.items()},
            lock_name=runner.lock_name,
            # The per-node results come from dbt's events: no aggregation of tests per model.
            tests_per_model={},
            _check_source_freshness=any(s.has_freshness for s in manifest.sources.values()),
            install_deps=False,
            emit_datasets=False,
            pool=warehouse_pool,
            trigger_rule=TriggerRule.ALL_DONE,  # whatever the syncs' outcome; it leaves out what they hold back
            retries=0,  # a node's retry runs that node alone; a second build would redo every node
            doc_md="Runs this DAG run's one `dbt build`; each dbt node's task reports its node's result.",
            **runner.execution_args,
            **producer_args,
        )
        for sync in {s.task_id: s for s in source_syncs.values()}.values():
            sync >> producer
        for uid, source in manifest.sources.items():
            watch = ([uid] if source.has_freshness else []) + attached.get(uid, [])
            tasks[uid] = DbtNodeTask(
                task_id=source.name,
                kind="source",
                unique_id=uid,
                select=f"source:{source.name}",
                watch=watch,
                has_freshness=source.has_freshness,
                producer_task_id=producer.task_id,
                doc_md=f"Freshness and tests of dbt source `{source.name}` ({source.file}).",
                **node_args,
            )
        for uid, model in manifest.models.items():
            tasks[uid] = DbtNodeTask(
                task_id=model.name,
                kind="model",
                unique_id=uid,
                select=model.name,
                watch=[uid, *attached.get(uid, [])],
                producer_task_id=producer.task_id,
                doc_md=f"dbt {model.resource_type} `{model.name}` ({model.file}) and its tests.",
                **{**node_args, **model.operator_kwargs},
            )
        for test in detached:
            tasks[test.unique_id] = DbtNodeTask(
                task_id=test.name,
                kind="test",
                unique_id=test.unique_id,
                select=test.name,
                watch=[test.unique_id],
                producer_task_id=producer.task_id,
                doc_md=f"dbt test `{test.name}`, on {', '.join(test.depends_on)}.",
                **node_args,
            )
    for uid, source_task in ((u, t) for u, t in tasks.items() if u in manifest.sources):
        if uid in source_syncs:
            source_syncs[uid] >> source_task
    parents_of = {uid: m.depends_on for uid, m in manifest.models.items()}
    parents_of.update({t.unique_id: t.depends_on for t in detached})
    for uid, parents in parents_of.items():
        for parent in parents:
            if parent in tasks:
                tasks[parent] >> tasks[uid]
    return group, {task.task_id: uid for uid, task in tasks.items()}
