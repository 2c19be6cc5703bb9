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
  and, when dbt passed its node, ends there (``TaskSuccessEvent``): no worker process, no
  DAG parse. Model tasks start with the run (trigger rule ``always``) and check their
  upstream tasks themselves (``decide``), so each passes as soon as dbt has built it rather
  than one scheduler round trip per dependency level after its parents. All the node tasks
  of a run share one read of the build's results (one XCom) and of the task states per
  poll. The tasks are plain operators rendered from a compact copy of the manifest, so a
  1,000-model DAG parses in a fraction of a second.
- **Syncs gate exactly the models that read from them.** ``dbt_build`` runs once every
  sync has finished, whatever the outcome, and leaves out everything downstream of a source
  whose sync did not succeed (or whose freshness check errored). The source's task is
  ``upstream_failed`` (sync -> source is a plain Airflow dependency); the models that read
  from it end ``skipped``, their log naming the upstream task that held them back.
- **A failure lands on its node.** dbt's "some nodes failed" exit ends ``dbt_build``
  successfully; the node's own task fails with dbt's error, retries and alerts as any task.
  Tasks downstream of it wait for its last try, then end ``skipped`` ("Held back: upstream
  ... (failed)"), or run once it has recovered.
- **A retry re-runs that node only.** A later try waits for ``dbt_build`` to end, then runs
  ``dbt build --select <node>`` alone. So does a node dbt skipped because an upstream node
  failed, once that upstream task has succeeded on retry (or after a *Clear*).
- **One writer.** ``dbt_build`` holds the warehouse pool slot (DuckDB: one writer per
  file); node tasks hold no slot while they wait, and a node running alone takes a file
  lock first when the warehouse is DuckDB.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import BaseOperator, TaskGroup
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSkipException,
)
from airflow.triggers.base import BaseTrigger, StartTriggerArgs, TaskSkippedEvent, TaskSuccessEvent, TriggerEvent
from asgiref.sync import sync_to_async
from cosmos import settings as cosmos_settings
from cosmos.config import ProfileConfig
from cosmos.exceptions import CosmosDbtRunError
from cosmos.operators.local import DbtBuildLocalOperator, DbtSourceLocalOperator, DbtTestLocalOperator
from cosmos.operators.watcher import DbtProducerWatcherOperator

from elt_platform.dbt_errors import DeterministicDbtError, dbt_failure_summary, is_deterministic
from elt_platform.dbt_manifest import Manifest
from elt_platform.dependency_internals import (
    DBT_FAILED_STATUSES,
    DBT_SUCCESS_STATUSES,
    _log_dbt_msg,
    cache_dir_of,
    trigger_runtime,
    xcom_set_lock,
)
from elt_platform.warehouse import warehouse_lock

try:
    from airflow.task.trigger_rule import TriggerRule
except ImportError:  # pragma: no cover - Airflow < 3.1
    from airflow.utils.trigger_rule import TriggerRule

PRODUCER_TASK_ID = "dbt_build"
RESULTS_XCOM_KEY = "dbt_results"
NODE_TASK_POOL = "default_pool"
PRODUCER_DONE = {"success", "failed", "skipped", "upstream_failed"}
TASK_DONE = {"success", "failed", "skipped", "upstream_failed", "removed"}
FINAL = DBT_SUCCESS_STATUSES | DBT_FAILED_STATUSES | {"skipped"}
PASSED = {"success", "pass"}
# dbt's events for a node it skips because an upstream node failed (then "NodeFinished": skipped).
UPSTREAM_FAILURE_SKIP_EVENTS = {"LogSkipBecauseError", "SkippingDetails"}


class XComPublisher:
    """Publishes the build's node results as one XCom, ``dbt_results``, from a background thread.

    dbt's threads only add to a dict; the thread pushes it whenever it changed, at most every
    ``interval`` seconds, so the node tasks read one XCom per DAG run instead of one per node.
    """

    def __init__(self, task_instance: Any, interval: float = 0.5):
        self.task_instance = task_instance
        self.interval = interval
        self.results: dict[str, dict[str, Any]] = {}
        self.changed = threading.Event()
        self.closing = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="dbt-results-publisher", daemon=True)
        self.thread.start()

    def put(self, unique_id: str, result: dict[str, Any]) -> None:
        with self.lock:
            self.results[unique_id] = result
        self.changed.set()

    def _push(self) -> BaseException | None:
        self.changed.clear()
        with self.lock:
            snapshot = dict(self.results)
        try:
            with xcom_set_lock:  # Cosmos's lock: one message at a time to the task supervisor
                self.task_instance.xcom_push(key=RESULTS_XCOM_KEY, value=snapshot)
        except Exception as error:
            return error
        return None

    def _run(self) -> None:
        while not self.closing.is_set():
            if self.changed.wait(timeout=self.interval):
                if self._push() is not None:
                    # e.g. `airflow dags test`, whose in-process supervisor talks to one thread only:
                    # the node tasks then get every result at once, from close().
                    return
                self.closing.wait(self.interval)

    def close(self) -> None:
        """Publish everything, from the calling thread, before the build task ends."""
        self.closing.set()
        self.thread.join()
        if (error := self._push()) is not None:
            raise AirflowException(f"Could not publish dbt results to XCom: {error}") from error


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

    def _push_node_state_xcom(self, ti: Any, unique_id: str, state: str) -> None:
        """Cosmos publishes what the build leaves out here: into ``dbt_results`` instead."""
        self.publisher.put(unique_id, {"status": state, "event": state, "msg": "left out of this run's dbt build"})

    def _push_source_freshness_results(self, context: Any) -> None:
        """Each source's freshness status (pass, warn, error), into ``dbt_results``."""
        for result in (self._sources_json or {}).get("results", []):
            status = result.get("status")
            if result.get("unique_id") and status:
                message = result.get("error") or f"source freshness: {status}"
                self.publisher.put(
                    result["unique_id"],
                    # max_loaded_at: how recent the source's data is, for dashboards' "data as of".
                    {"status": status, "event": status, "msg": message, "max_loaded_at": result.get("max_loaded_at")},
                )

    def run_subprocess(self, command: list[str], env: dict[str, str], cwd: str, **kwargs: Any) -> Any:
        """dbt as a subprocess (the image's own virtualenv, ``ELT_DBT_EXECUTABLE``) prints only
        info-level events, and ``NodeFinished``, which carries each node's result and dbt's
        message, is a debug event: ask for debug, and log only what dbt would show at info.
        (In-process, dbt hands every event to the callback whatever the level.)"""
        return super().run_subprocess([*command, "--log-level", "debug"], env, cwd, **kwargs)

    def _make_parse_callable(self) -> Callable[[str, Any], None]:
        """Read dbt's JSON log: log every line at info and above and publish each node's final result.

        A node dbt skipped because an upstream node failed is published as "failed", with
        dbt's own status ("skipped") as its event, as Cosmos does.
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
            if event.get("info", {}).get("level") != "debug":
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
                run_result = data.get("run_result") or {}
                message = None
                if status not in PASSED:
                    message = run_result.get("message") or event.get("info", {}).get("msg")
                publisher.put(unique_id, {"status": status, "event": raw, "msg": message})

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


@dataclass(frozen=True)
class Decision:
    """What a node's task does next, given the build's results and its upstream tasks' states."""

    action: str  # "pass", "wait", "held_back", "results", "run_alone" or "not_reported"
    reason: str = ""
    results: dict[str, dict[str, Any]] = field(default_factory=dict)


def decide(
    *,
    try_number: int,
    node_ids: list[str],
    upstream_task_ids: list[str],
    results: dict[str, dict[str, Any]],
    states: dict[str, str | None],
    producer_task_id: str,
) -> Decision:
    """The node task's whole policy, the same in the triggerer and on a worker.

    - First try, and dbt passed the node (and its tests): it passed. dbt ran it, so everything
      it reads passed in this build too.
    - Else wait until the build has ended (or reported on the node) and every upstream task
      has ended. An upstream task that did not succeed holds this node back (``skipped``).
    - Then: a later try, or a node the build did not report on, runs alone; dbt's results
      (a failure, a warning, a skip after an upstream failure since recovered) go to the worker.
    """
    mine = {n: results[n] for n in node_ids if n in results and results[n].get("status") in FINAL}
    complete = len(mine) == len(node_ids)
    if try_number <= 1 and complete and all(r["status"] in PASSED for r in mine.values()):
        return Decision("pass")
    producer_state = states.get(producer_task_id)
    producer_done = producer_state in PRODUCER_DONE
    if not producer_done and (try_number > 1 or not complete):
        return Decision("wait", "waiting for dbt build")
    pending = [u for u in upstream_task_ids if states.get(u) not in TASK_DONE]
    if pending:
        return Decision("wait", f"waiting for {', '.join(pending)}")
    failed = {u: states[u] for u in upstream_task_ids if states[u] != "success"}
    if failed:
        held = ", ".join(f"{u} ({state})" for u, state in failed.items())
        return Decision("held_back", f"Held back: upstream {held}.")
    if try_number > 1:
        return Decision("run_alone", f"Try {try_number}: dbt build has ended.")
    if not complete:
        if producer_state == "success":
            return Decision("run_alone", f"dbt build ({producer_task_id}) did not report on every node.")
        return Decision("not_reported", f"dbt build ({producer_task_id}) ended '{producer_state}'.")
    return Decision("results", results=mine)


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
            operators = [DbtTestAlone(select=task.select, **common)]
        else:
            # Only the tests on this node alone: a test reading two nodes has a task of its own.
            operators = [DbtBuildAlone(select=task.select, indirect_selection="cautious", **common)]
            if task.kind == "source" and task.has_freshness:
                operators.insert(0, DbtFreshnessAlone(select=task.select, **common))
        with warehouse_lock(self.lock_name):
            for operator in operators:
                try:
                    operator.execute(context)
                except (AirflowFailException, AirflowSkipException):
                    raise
                except (AirflowException, CosmosDbtRunError) as error:  # dbt as a subprocess, or in-process
                    if is_deterministic(str(error)):
                        raise DeterministicDbtError(str(error)) from error
                    raise


class _DbtSummaryOnFailure:
    """Cosmos logs a failed dbt subprocess's output but raises only "non-zero exit code 1": the
    exception carries dbt's own summary of what failed too, for the alert and for dbt_errors."""

    def handle_exception_subprocess(self, result: Any) -> None:
        try:
            super().handle_exception_subprocess(result)  # type: ignore[misc]
        except AirflowSkipException:
            raise
        except AirflowException as error:
            raise AirflowException(f"{error}\n{dbt_failure_summary(result.full_output)}") from None


class DbtBuildAlone(_DbtSummaryOnFailure, DbtBuildLocalOperator):
    """``dbt build --select <node>``, for a node that runs alone."""


class DbtTestAlone(_DbtSummaryOnFailure, DbtTestLocalOperator):
    """``dbt test --select <test>``, for a test reading several nodes that runs alone."""


class DbtFreshnessAlone(_DbtSummaryOnFailure, DbtSourceLocalOperator):
    """``dbt source freshness --select <source>``, before a source's tests run alone."""


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
        self.poll_seconds = poll_seconds
        self.start_from_trigger = True

    def start_in_triggerer(self) -> None:
        """Once the task's upstream is wired: what the triggerer needs to start it."""
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=f"{NodeResultTrigger.__module__}.{NodeResultTrigger.__qualname__}",
            trigger_kwargs={
                "producer_task_id": self.producer_task_id,
                "node_ids": self.watch,
                "upstream_task_ids": self.waits_for,
                "poll_seconds": self.poll_seconds,
            },
            next_method="execute_complete",
            next_kwargs=None,
            timeout=None,
        )

    @property
    def waits_for(self) -> list[str]:
        """Upstream tasks it checks itself (trigger rule "always"); the scheduler gates the others."""
        return sorted(self.upstream_task_ids) if self.trigger_rule == TriggerRule.ALWAYS else []

    def execute(self, context: Any) -> None:
        """Reached only when the task did not start in the triggerer (``airflow dags test``)."""
        ti = context["ti"]
        states = ti.get_task_states(
            dag_id=ti.dag_id, task_ids=[self.producer_task_id, *self.waits_for], run_ids=[ti.run_id]
        ).get(ti.run_id, {})
        results = ti.xcom_pull(task_ids=self.producer_task_id, key=RESULTS_XCOM_KEY) or {}
        decision = decide(
            try_number=ti.try_number,
            node_ids=self.watch,
            upstream_task_ids=self.waits_for,
            results=results,
            states=states,
            producer_task_id=self.producer_task_id,
        )
        if decision.action == "pass":
            return None
        if decision.action == "wait":
            raise AirflowRescheduleException(datetime.now(UTC) + timedelta(seconds=2))
        if decision.action == "held_back":
            raise AirflowSkipException(decision.reason)
        return self.execute_complete(context, event_of(decision))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        outcome = event["outcome"]
        if outcome == "run_alone":
            self.log.info("%s Running %s alone.", event["reason"], self.unique_id)
            return self.runner.run(self, context)
        if outcome == "not_reported":
            raise AirflowException(
                f"{event['reason']} It did not report on {self.unique_id}: see its log. "
                "A retry of this task runs the node alone."
            )
        results: dict[str, dict[str, Any]] = event["results"]
        for node_id, result in results.items():
            self.log.info("%s: %s%s", node_id, result["status"], f"\n{result['msg']}" if result.get("msg") else "")
        # A node dbt skipped because an upstream node failed is published as "failed"; its dbt event says "skipped".
        failed = {n: r for n, r in results.items() if r["status"] in DBT_FAILED_STATUSES and r["event"] != "skipped"}
        if failed:
            message = "\n".join(f"{n}: {r.get('msg') or r['status']}" for n, r in failed.items())
            if all(is_deterministic(r.get("msg") or "", r["status"]) for r in failed.values()):
                raise DeterministicDbtError(f"dbt {self.kind} {self.unique_id} failed:\n{message}")
            raise AirflowException(f"dbt {self.kind} {self.unique_id} failed:\n{message}")
        if any(r["status"] not in DBT_SUCCESS_STATUSES for r in results.values()):
            # dbt build skipped it after an upstream failure, or left it out; its upstream tasks have succeeded since.
            self.log.info("dbt build did not run %s; its upstream succeeded since: running it alone.", self.unique_id)
            return self.runner.run(self, context)
        warned = {n: r for n, r in results.items() if r["status"] == "warn"}
        if warned and self.runner.on_warning is not None:
            names, messages = list(warned), [r.get("msg") or "warn" for r in warned.values()]
            self.runner.on_warning({**context, "test_names": names, "test_results": messages})
        return None


class FailRunIfANodeFailed(BaseOperator):
    """The transform group's last task: fails the DAG run when a node's task failed.

    Airflow sets a run's state from its leaf tasks, and a failed model's downstream tasks end
    ``skipped`` (held back): without this task, such a run would end ``success``. It runs
    only when a task upstream of it failed (trigger rule ``one_failed``) and alerts nobody:
    the failed task has already.
    """

    ui_color = "#f5d5d5"

    def __init__(self, **kwargs: Any) -> None:
        kwargs |= {"trigger_rule": TriggerRule.ONE_FAILED, "retries": 0, "pool": NODE_TASK_POOL}
        super().__init__(on_failure_callback=None, on_retry_callback=None, **kwargs)

    def execute(self, context: Any) -> None:
        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=sorted(self.upstream_task_ids), run_ids=[ti.run_id])
        failed = sorted(t for t, state in states.get(ti.run_id, {}).items() if state in {"failed", "upstream_failed"})
        raise AirflowFailException(f"Failed in this run: {', '.join(failed) or 'a task of the transform group'}.")


def event_of(decision: Decision) -> dict[str, Any]:
    """The trigger event that resumes a node task on a worker."""
    if decision.action == "results":
        return {"outcome": "results", "results": decision.results}
    return {"outcome": decision.action, "reason": decision.reason}


class _RunView:
    """The build's results and the transform tasks' states of one DAG run, read at most once
    per poll interval however many node tasks of that run wait in this triggerer."""

    views: ClassVar[dict[tuple[str, str, str], _RunView]] = {}

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.read_at = 0.0
        self.results: dict[str, dict[str, Any]] = {}
        self.states: dict[str, str | None] = {}

    @classmethod
    def of(cls, dag_id: str, run_id: str, group_id: str) -> _RunView:
        return cls.views.setdefault((dag_id, run_id, group_id), cls())

    async def refresh(self, trigger: NodeResultTrigger, max_age: float) -> None:
        async with self.lock:
            if time.monotonic() - self.read_at < max_age:
                return
            RuntimeTaskInstance, XCom = trigger_runtime()
            ti = trigger.task_instance
            self.results = (
                await sync_to_async(XCom.get_one)(
                    run_id=ti.run_id,
                    key=RESULTS_XCOM_KEY,
                    task_id=trigger.producer_task_id,
                    dag_id=ti.dag_id,
                    map_index=-1,
                )
                or {}
            )
            group_id = trigger.producer_task_id.rpartition(".")[0] or None
            states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
                dag_id=ti.dag_id, task_group_id=group_id, run_ids=[ti.run_id]
            )
            self.states = states.get(ti.run_id, {})
            self.read_at = time.monotonic()


class NodeResultTrigger(BaseTrigger):
    """The node task's wait, in the triggerer: ``decide`` on the build's results and the
    upstream tasks' states until it may pass (ended here), be held back (ended here, skipped)
    or must go to a worker (failure, warning, or a run alone)."""

    def __init__(
        self,
        producer_task_id: str,
        node_ids: list[str],
        upstream_task_ids: list[str] | None = None,
        poll_seconds: float = 1.0,
    ):
        super().__init__()
        self.producer_task_id = producer_task_id
        self.node_ids = list(node_ids)
        self.upstream_task_ids = list(upstream_task_ids or [])
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {"producer_task_id": self.producer_task_id, "node_ids": self.node_ids}
        kwargs |= {"upstream_task_ids": self.upstream_task_ids, "poll_seconds": self.poll_seconds}
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ti = self.task_instance
        view = _RunView.of(ti.dag_id, ti.run_id, self.producer_task_id)
        last_reason = ""
        try:
            while True:
                await view.refresh(self, self.poll_seconds)
                decision = decide(
                    try_number=ti.try_number,
                    node_ids=self.node_ids,
                    upstream_task_ids=self.upstream_task_ids,
                    results=view.results,
                    states=view.states,
                    producer_task_id=self.producer_task_id,
                )
                if decision.reason != last_reason:
                    self.log.info("%s", decision.reason or decision.action)
                    last_reason = decision.reason
                if decision.action == "pass":
                    yield TaskSuccessEvent()
                    return
                if decision.action == "held_back":
                    yield TaskSkippedEvent()
                    return
                if decision.action != "wait":
                    yield TriggerEvent(event_of(decision))
                    return
                await asyncio.sleep(self.poll_seconds)
        finally:
            if view.states.get(self.producer_task_id) in PRODUCER_DONE:
                _RunView.views.pop((ti.dag_id, ti.run_id, self.producer_task_id), None)


def render(
    manifest: Manifest,
    *,
    source_syncs: dict[str, BaseOperator],
    runner: NodeRunner,
    warehouse_pool: str,
    poll_seconds: float,
    group_id: str,
    start_with_run_max_models: int = 500,
) -> tuple[TaskGroup, dict[str, str]]:
    """The transform task group, in the DAG being built; returns it and each task's dbt node.

    Up to ``start_with_run_max_models`` models, every model task starts with the run
    (trigger rule ``always``) and passes as soon as dbt has built its model. Above it, the
    scheduler starts each one after its parents (``all_success``), a dependency level at a
    time: Airflow 3.3 hands each task started in the triggerer the whole serialized DAG, so
    a thousand at once overwhelm it (docs/benchmarks.md). Held-back models are then
    ``upstream_failed`` rather than ``skipped``.
    """
    node_rule = TriggerRule.ALWAYS if len(manifest.models) <= start_with_run_max_models else TriggerRule.ALL_SUCCESS
    attached: dict[str, list[str]] = {}  # node -> its own tests (those reading it alone)
    for test in manifest.tests.values():
        if len(parents := manifest.nodes_read_by(test)) == 1:
            attached.setdefault(parents[0], []).append(test.unique_id)
    detached = manifest.tests_reading_several_nodes()
    node_args = {"runner": runner, "poll_seconds": poll_seconds}
    tasks: dict[str, BaseOperator] = {}
    inlined: dict[str, BaseOperator] = {}  # ephemeral models: dbt inlines them, nothing reports on them
    with TaskGroup(group_id=group_id) as group:
        # Where Cosmos keeps dbt's partial parse between runs, as its converter does: without
        # it, every build would parse the whole project again.
        if cosmos_settings.enable_cache:
            runner.cache_dir = cache_dir_of(group.dag, group)
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
        )
        for sync in {s.task_id: s for s in source_syncs.values()}.values():
            sync >> producer
        for uid, source in manifest.sources.items():
            watch = ([uid] if source.has_freshness else []) + attached.get(uid, [])
            loaded_by = "loaded outside this platform" if source.external else "after the sync that loads it"
            tasks[uid] = DbtNodeTask(
                task_id=source.task_id,
                task_display_name=source.name,
                kind="source",
                unique_id=uid,
                select=f"source:{source.name}",
                watch=watch,
                has_freshness=source.has_freshness,
                producer_task_id=producer.task_id,
                doc_md=f"Freshness and tests of dbt source `{source.name}` ({source.file}), {loaded_by}. "
                f"dbt node `{uid}`.",
                **node_args,
            )
        for uid, model in manifest.models.items():
            if model.is_ephemeral:
                # Kept in the graph so that what reads it waits for what it reads, and is held back with it.
                inlined[uid] = EmptyOperator(
                    task_id=model.task_id,
                    task_display_name=model.display_name,
                    pool=NODE_TASK_POOL,
                    doc_md=f"Ephemeral dbt model `{model.display_name}` ({model.file}): dbt inlines it into the "
                    f"models that read it, so nothing runs here. dbt node `{uid}`.",
                )
                continue
            tasks[uid] = DbtNodeTask(
                task_id=model.task_id,
                task_display_name=model.display_name,
                kind="model",
                unique_id=uid,
                select=model.selector,
                watch=[uid, *attached.get(uid, [])],
                producer_task_id=producer.task_id,
                doc_md=f"dbt {model.resource_type} `{model.display_name}` ({model.file}) and its tests. "
                f"dbt node `{uid}`.",
                # Starts with the run and passes as soon as dbt passed it; checks its upstream itself.
                trigger_rule=node_rule,
                **{**node_args, **model.operator_kwargs},
            )
        for test in detached:
            tasks[test.unique_id] = DbtNodeTask(
                task_id=test.task_id,
                task_display_name=test.name,
                kind="test",
                unique_id=test.unique_id,
                select=test.selector,
                watch=[test.unique_id],
                producer_task_id=producer.task_id,
                doc_md=f"dbt test `{test.name}`, on {', '.join(test.depends_on)}.",
                trigger_rule=node_rule,
                **node_args,
            )
    for uid, source_task in ((u, t) for u, t in tasks.items() if u in manifest.sources):
        if uid in source_syncs:
            source_syncs[uid] >> source_task
    by_node = tasks | inlined
    parents_of = {uid: m.depends_on for uid, m in manifest.models.items()}
    parents_of.update({t.unique_id: t.depends_on for t in detached})
    for uid, parents in parents_of.items():
        for parent in parents:
            if parent in by_node:
                by_node[parent] >> by_node[uid]
    for task in tasks.values():
        task.start_in_triggerer()
    with group:
        outcome = FailRunIfANodeFailed(
            task_id="fail_run_if_a_node_failed",
            doc_md="Fails the DAG run when a dbt node's task failed (its downstream tasks end skipped).",
        )
    [producer, *tasks.values(), *inlined.values()] >> outcome
    return group, {task.task_id: uid for uid, task in tasks.items()}
