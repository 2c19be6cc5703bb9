"""The producer: the DAG run's one ``dbt build``, publishing each node's result as dbt finishes it.

Each ``dbt_build…`` task is Cosmos's WATCHER producer, subclassed: the build of the nodes
that read one set of loads (``elt_platform.transform.builds``). It runs once those syncs and
the builds it reads from have ended, leaves out everything downstream of a source whose sync
did not succeed (or whose freshness check errored) and of a node an earlier build did not
pass, and publishes a ``NodeRecord`` per node into one XCom (``results.RESULTS_XCOM_KEY``)
from a background thread, so the node tasks of a run read one XCom per build instead of one
per node.

**Whole after a crash.** If the build's process dies (out of memory, a lost worker), Airflow
retries the task once. The retry builds, in one ``dbt build``, every node whose task has not
yet succeeded and dbt had not passed: Airflow clears a retried task's XComs, so the results
the crashed try published are kept in an Airflow Variable too (Cosmos's "reliable retry"),
published again by the retry and deleted once the build has succeeded. Node tasks keep
waiting while the build is up for retry, so a run that recovers ends ``success`` and alerts
nobody.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import TaskInstanceState
from airflow.sdk.exceptions import AirflowException, AirflowSkipException
from cosmos.constants import InvocationMode
from cosmos.operators.watcher import DbtProducerWatcherOperator

from elt_platform import lineage_events
from elt_platform.dbt_manifest.graph import descendants
from elt_platform.dependency_internals import (
    build_despite_watcher_retry_guard,
    forget_previous_tries,
    latest_partial_parse,
    log_dbt_event,
    publish_with_backup,
    restore_previous_try,
)
from elt_platform.run_params import full_refresh_requested
from elt_platform.transform import build_state
from elt_platform.transform.dbt_operators import InProjectFolder, dbt_output_env
from elt_platform.transform.results import RESULTS_XCOM_KEY, REUSED, NodeRecord, records_of
from elt_platform.warehouse import duckdb_file, missing_tables, warehouse_lock

# dbt's events for a node it skips because an upstream node failed (then "NodeFinished": skipped).
UPSTREAM_FAILURE_SKIP_EVENTS = frozenset({"LogSkipBecauseError", "SkippingDetails"})
# A crash of the build's process is retried once, at once; dbt's own failures end the task successfully.
CRASH_RETRIES = 1
CRASH_RETRY_DELAY = timedelta(seconds=1)


class XComPublisher:
    """Publishes the build's node records as one XCom from a background thread.

    dbt's threads only add to a dict; the thread pushes it whenever it changed, at most every
    ``interval`` seconds.
    """

    def __init__(self, task_instance: Any, interval: float = 0.5, records: dict[str, NodeRecord] | None = None):
        self.task_instance = task_instance
        self.interval = interval
        self.records: dict[str, dict[str, Any]] = {uid: r.as_json() for uid, r in (records or {}).items()}
        self.changed = threading.Event()
        self.closing = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="dbt-results-publisher", daemon=True)
        self.thread.start()

    def put(self, unique_id: str, record: NodeRecord) -> None:
        with self.lock:
            self.records[unique_id] = record.as_json()
        self.changed.set()

    def _push(self) -> BaseException | None:
        self.changed.clear()
        with self.lock:
            snapshot = dict(self.records)
        try:
            publish_with_backup(self.task_instance, RESULTS_XCOM_KEY, snapshot)
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


def _left_out_of_the_running_build(context: Any, _dag: Any, _group: Any, _nodes: Any, sources_json: Any) -> Any:
    """Cosmos's freshness callback. Airflow runs a copy of the parsed operator, so the callback
    asks the running task (``context["task"]``), which holds this try's state."""
    return context["task"].left_out(context, sources_json)


class BuildProducer(InProjectFolder, DbtProducerWatcherOperator):
    """Runs the DAG run's one ``dbt build`` (from the project's folder) and publishes each node's
    result as dbt finishes it."""

    def __init__(
        self,
        *,
        source_syncs: dict[str, str],
        parents: dict[str, tuple[str, ...]],
        checks: dict[str, tuple[str, ...]],
        node_tasks: dict[str, tuple[str, str, list[str]]],
        read_elsewhere: dict[str, tuple[str, str, list[str]]],
        duckdb_conn_id: str | None,
        reuse: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        kwargs |= {"retries": CRASH_RETRIES, "retry_delay": CRASH_RETRY_DELAY, "retry_exponential_backoff": False}
        # A crash that the retry recovers from alerts nobody; a retry that fails too alerts as any failure.
        kwargs |= {"on_retry_callback": None}
        super().__init__(freshness_callback=_left_out_of_the_running_build, **kwargs)
        self.source_syncs = source_syncs  # dbt source unique_id -> the sync task that loads it
        self.parents = parents  # model, seed, snapshot unique_id -> the nodes it reads
        self.checks = checks  # a test with a task of its own -> the nodes it reads
        self.node_tasks = node_tasks  # this build's nodes: unique_id -> (task id, dbt selector, nodes it watches)
        # What this build's nodes read that an earlier build builds: unique_id -> (that build, its task, watched).
        self.read_elsewhere = read_elsewhere
        self.duckdb_conn_id = duckdb_conn_id  # whose file's lock the build holds; None on BigQuery
        self.done: set[str] = set()  # on a retry: nodes whose tasks succeeded, or that dbt passed, before it
        self.node_lineage: list[Any] = []  # each node's OpenLineage events, with lineage on
        # With ELT_BUILD_STATE: {"state": its value, "selectors": the dbt selector of each node another
        # build builds, "unmeasured": the sources with no freshness check, "build_after": this
        # build's nodes with dbt's freshness.build_after, [seconds, selector]}.
        self.reuse = reuse or {}
        self.reused: set[str] = set()  # this try's nodes that nothing changed: not built again
        self.ran_manifest: str | None = None  # the manifest dbt wrote as it built, for the state
        self.last_seconds: dict[str, float] = {}  # each node's dbt time at its last build, from the state
        self.last_built_at: dict[str, str] = {}  # when each node was last built, from the state
        self.started_at = ""  # when this try began: the data it builds is at least that recent

    def not_loaded(self, context: Any) -> set[str]:
        """This run's sources whose sync did not succeed."""
        ti = context["ti"]
        syncs = sorted(set(self.source_syncs.values()))
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=syncs, run_ids=[ti.run_id]) if syncs else {}
        sync_state = states.get(ti.run_id, {})
        return {
            source for source, sync in self.source_syncs.items() if sync_state.get(sync) != TaskInstanceState.SUCCESS
        }

    def not_passed_elsewhere(self, context: Any) -> set[str]:
        """Nodes an earlier build of this run built that neither it passed with their own tests nor
        their own task has since (run alone): what reads them is held back here, as one ``dbt build``
        skips what reads a failure."""
        ti = context["ti"]
        if not self.read_elsewhere:
            return set()
        tasks = sorted({task_id for _, task_id, _ in self.read_elsewhere.values()})
        succeeded = {
            task_id
            for task_id, state in ti.get_task_states(dag_id=ti.dag_id, task_ids=tasks, run_ids=[ti.run_id])
            .get(ti.run_id, {})
            .items()
            if state == TaskInstanceState.SUCCESS
        }
        records = self._records_elsewhere(ti)
        return {
            uid
            for uid, (_, task_id, watched) in self.read_elsewhere.items()
            if task_id not in succeeded and not all(node in records and records[node].passed for node in watched)
        }

    def held_back(self, context: Any, sources_json: dict[str, Any] | None = None) -> set[str]:
        """This build's nodes that it leaves out: everything downstream of a source whose sync did
        not succeed or whose freshness check errored (``sources_json``: dbt's freshness results,
        once checked), or of a node an earlier build did not pass."""
        failed = self.not_loaded(context)
        stale = {
            r["unique_id"]
            for r in (sources_json or {}).get("results", [])
            if r.get("status") in {"error", "runtime error"}
        }
        elsewhere = self.not_passed_elsewhere(context)
        parents = self.parents | self.checks
        held = (descendants(parents, failed | stale | elsewhere) - self.done) & set(self.node_tasks)
        for label, roots in (
            ("sources that did not sync", failed),
            ("sources that errored on freshness", stale),
            ("nodes an earlier build did not pass", elsewhere),
        ):
            if causes := sorted(root for root in roots if descendants(parents, {root}) & held):
                self.log.info("Left out of this build: what reads %s: %s.", label, ", ".join(causes))
        return held

    def left_out(self, context: Any, sources_json: dict[str, Any] | None = None) -> list[tuple[str, str]]:
        """The models, seeds and snapshots this build leaves out (``held_back``), and the nodes it
        reuses (``reusable``), for Cosmos to exclude."""
        held = self.held_back(context, sources_json)
        self.reused = self.reusable(context, sources_json, held)
        return self._exclusions(held)

    def _exclusions(self, held: set[str]) -> list[tuple[str, str]]:
        """Cosmos's pairs: each node left out of dbt's build, and why (its state)."""
        pairs = [(uid, "skipped") for uid in held if uid in self.parents]
        return sorted(pairs + [(uid, REUSED) for uid in self.reused])

    def reusable(self, context: Any, sources_json: dict[str, Any] | None, held: set[str]) -> set[str]:
        """This build's nodes that nothing changed since their last successful build, by dbt's own
        selection (``build_state``): not their code or configuration, not the data of a source they
        read, not a node another build of this run rebuilt. Empty, saying why, when it cannot tell."""
        if not self.reuse:
            return set()
        ti = context["ti"]
        if ti.try_number > 1:
            return set()  # a retry builds what is not done
        if full_refresh_requested(context):
            self.log.info("Building every node: the run asks for a full refresh.")
            return set()
        folder = build_state.state_folder(self.reuse["state"], ti.dag_id, ti.task_id)
        with tempfile.TemporaryDirectory(prefix="elt-state-") as scratch:
            state_dir, target_dir = Path(scratch, "state"), Path(scratch, "target")
            state_dir.mkdir()
            target_dir.mkdir()
            if why := build_state.fetch(folder, state_dir):
                self.log.info("Building every node: %s.", why)
                return set()
            self.last_seconds = build_state.last_seconds(state_dir)
            self.last_built_at = build_state.last_built_at(state_dir)
            build_after = {uid: seconds for uid, (seconds, _) in self.reuse.get("build_after", {}).items()}
            due = build_state.due(build_after, self.last_built_at, datetime.now(UTC))
            for uid, why in sorted(due.items()):
                self.log.info("Building %s and what reads it: %s.", uid, why)
            if sources_json is not None:
                (target_dir / build_state.SOURCES).write_text(json.dumps(sources_json))
            records = self._records_elsewhere(ti)
            rebuilt = {
                selector
                for uid, selector in self.reuse["selectors"].items()
                if uid in records and records[uid].status != REUSED
            }
            due_now = {self.reuse["build_after"][uid][1] for uid in due}
            selector = build_state.reuse_selector(sources_json is not None, rebuilt, self.reuse["unmeasured"], due_now)
            try:
                to_build = self._dbt_ls(selector, state_dir, target_dir, Path(scratch))
            except Exception as error:
                self.log.warning("Building every node: dbt could not compare with the previous state: %s", error)
                return set()
            kept = build_state.relations(state_dir)
        unchanged = self._unchanged(to_build, held)
        unchanged -= self._not_in_warehouse(unchanged, kept)
        if unchanged:
            self.log.info(
                "Reusing %s of %s nodes: nothing they read, and not their code, changed since their last build: %s.",
                len(unchanged),
                len(self.node_tasks),
                ", ".join(sorted(unchanged)),
            )
        return unchanged

    def _unchanged(self, to_build: set[str], held: set[str]) -> set[str]:
        """This build's nodes outside ``to_build`` (dbt's), but what is held back or done: a node, and
        a test with a task of its own, whose every watched node (its own tests) dbt would not build."""
        checked_by: dict[str, set[str]] = {}
        for uid, (_, _, watched) in self.node_tasks.items():
            for node in watched:
                checked_by.setdefault(node, set()).add(uid)
        must_build = set(to_build)
        for test in to_build:  # a test whose own SQL changed runs again: with the node it checks
            must_build |= checked_by.get(test, set())
        unchanged = {
            uid
            for uid, (_, _, watched) in self.node_tasks.items()
            if not uid.startswith("source.")  # a source's freshness and tests check each load: they always run
            and uid not in held
            and uid not in self.done
            and not must_build.intersection([uid, *watched])
        }
        return unchanged

    def _not_in_warehouse(self, unchanged: set[str], kept: dict[str, tuple[str, str, str]]) -> set[str]:
        """Of the nodes nothing changed, those to build all the same: on DuckDB, those whose table
        the warehouse file does not hold (a new file, or a table dropped by hand), with what reads
        them. On BigQuery nothing is checked (docs: "Reusing unchanged nodes")."""
        if not self.duckdb_conn_id or not unchanged:
            return set()
        relations = {uid: kept[uid] for uid in unchanged if uid in kept}
        missing = missing_tables(duckdb_file(self.duckdb_conn_id), relations)
        if not missing:
            return set()
        self.log.info(
            "Building %s and what reads them: the warehouse file does not hold their tables "
            "(a new file, or dropped by hand).",
            ", ".join(sorted(missing)),
        )
        return missing | descendants({**self.parents, **self.checks}, missing)

    def _records_elsewhere(self, ti: Any) -> dict[str, NodeRecord]:
        """What the earlier builds of this run published, of the nodes this build reads from them
        among others (each node, and each of its tests, is in the results of one build only)."""
        records: dict[str, NodeRecord] = {}
        for build in sorted({build for build, _, _ in self.read_elsewhere.values()}):
            records |= records_of(ti.xcom_pull(task_ids=build, key=RESULTS_XCOM_KEY))
        return records

    def _dbt_ls(self, selector: str, state_dir: Path, target_dir: Path, scratch: Path) -> set[str]:
        """dbt's selection of ``selector`` against the previous state, read from the project's folder,
        writing nothing into it."""
        with self.profile_config.ensure_profile() as (profile_path, env_vars):
            args = [
                "--project-dir",
                self.project_dir,
                "--profiles-dir",
                str(profile_path.parent),
                "--profile",
                self.profile_config.profile_name,
                "--target",
                self.profile_config.target_name,
                "--state",
                str(state_dir),
                "--select",
                selector,
                "--resource-type",
                "model",
                "seed",
                "snapshot",
                "test",
            ]
            env = dbt_output_env(dict(env_vars), scratch) | {"DBT_TARGET_PATH": str(target_dir)}
            # dbt's partial parse, as the build's own dbt gets it: a second or less instead of a whole parse.
            cached = self.partial_parse and self.cache_dir is not None
            if cached and (latest := latest_partial_parse(self.project_dir, self.cache_dir)):
                shutil.copy(latest, target_dir / latest.name)
            executable = self.dbt_executable_path if self.invocation_mode == InvocationMode.SUBPROCESS else None
            return build_state.dbt_ls(args, executable, self.project_dir, env)

    def _push_node_state_xcom(self, ti: Any, unique_id: str, state: str) -> None:
        """Cosmos publishes what the build leaves out here: into ``dbt_results`` instead. A reused
        node's own tests are reused with it."""
        if state == REUSED:
            for node in self.node_tasks[unique_id][2] or [unique_id]:
                message = "reused: nothing changed since its last build"
                self.publisher.put(node, NodeRecord(REUSED, message, seconds=self.last_seconds.get(node)))
            return
        self.publisher.put(unique_id, NodeRecord(state, "left out of this run's dbt build", left_out=True))

    def _push_source_freshness_results(self, context: Any) -> None:
        """Each source's freshness status (pass, warn, error), into ``dbt_results``."""
        for result in (self._sources_json or {}).get("results", []):
            status = result.get("status")
            if result.get("unique_id") and status:
                message = result.get("error") or f"source freshness: {status}"
                self.publisher.put(
                    result["unique_id"], NodeRecord(status, message, max_loaded_at=result.get("max_loaded_at"))
                )

    def run_subprocess(self, command: list[str], env: dict[str, str], cwd: str, **kwargs: Any) -> Any:
        """dbt as a subprocess (the image's own virtualenv, ``ELT_DBT_EXECUTABLE``) prints only
        info-level events, and ``NodeFinished``, which carries each node's result and dbt's
        message, is a debug event: ask for debug, and log only what dbt would show at info.
        (In-process, dbt hands every event to the callback whatever the level.)"""
        return super().run_subprocess([*command, "--log-level", "debug"], env, cwd, **kwargs)

    def _make_parse_callable(self) -> Callable[[str, Any], None]:
        """Read dbt's JSON log: log every line at info and above and publish each node's final result."""
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
                log_dbt_event(event)
            name = event.get("info", {}).get("name")
            data = event.get("data") or {}
            unique_id = (data.get("node_info") or {}).get("unique_id")
            if not unique_id:
                return
            if name in UPSTREAM_FAILURE_SKIP_EVENTS:
                skipped_after_failure.add(unique_id)
            elif name == "NodeFinished":
                status = data["node_info"].get("node_status")
                passed = status in {"success", "pass"}
                message = None if passed else (data.get("run_result") or {}).get("message") or event["info"].get("msg")
                after_failure = status == "skipped" and unique_id in skipped_after_failure
                seconds = (data.get("run_result") or {}).get("execution_time")
                record = NodeRecord(status, message, skipped_after_failure=after_failure, seconds=seconds)
                publisher.put(unique_id, record)

        return on_line

    def handle_exception_dbt_runner(self, result: Any) -> None:
        if result.success:
            return
        if result.exception is None and result.result is not None:
            self.log.warning("dbt build finished with failed nodes: each one fails its own task.")
            return
        super().handle_exception_dbt_runner(result)

    def handle_exception_subprocess(self, result: Any) -> None:
        if result.exit_code == 0:
            return
        if result.exit_code == 1:  # dbt's exit code for failed nodes; 2 is dbt itself failing
            self.log.warning("dbt build finished with failed nodes: each one fails its own task.")
            return
        super().handle_exception_subprocess(result)

    def succeeded_before(self, context: Any) -> set[str]:
        """On a retry: the nodes whose tasks have already succeeded in this run."""
        ti = context["ti"]
        group_id = self.task_id.rpartition(".")[0] or None
        states = ti.get_task_states(dag_id=ti.dag_id, task_group_id=group_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        return {
            uid for uid, (task_id, _, _) in self.node_tasks.items() if states.get(task_id) == TaskInstanceState.SUCCESS
        }

    def passed_before(self, previous: dict[str, NodeRecord]) -> set[str]:
        """On a retry: the nodes whose every watched node (the node and its own tests) dbt had
        passed in the crashed try, whether or not their tasks had read it yet."""
        return {
            uid
            for uid, (_, _, watched) in self.node_tasks.items()
            if all(node in previous and previous[node].passed for node in watched)
        }

    def execute(self, context: Any, **kwargs: Any) -> Any:
        ti = context["ti"]
        self.started_at = datetime.now(UTC).isoformat()
        resuming = ti.try_number > 1
        previous: dict[str, NodeRecord] = {}
        if resuming:
            if restore_previous_try(context):
                previous = records_of(ti.xcom_pull(task_ids=ti.task_id, key=RESULTS_XCOM_KEY))
            self.done = self.succeeded_before(context) | self.passed_before(previous)
            self.log.warning(
                "Try %s: the previous try ended without finishing (its process died, or it was cleared). "
                "Building what is not done yet; %s of %s nodes had already succeeded or passed in dbt.",
                ti.try_number,
                len(self.done),
                len(self.node_tasks),
            )
        held = self.held_back(context)
        pending = self.pending_selectors(self.done | held | self.not_loaded(context))
        if not pending:
            raise AirflowSkipException(
                "Nothing left to build: every node's task had succeeded."
                if resuming
                else "Nothing to build: every node of this build reads from a sync, or a node, that did not succeed."
            )
        # The nodes left to build, by name: a test reading two nodes already built is built too
        # (excluding its parents would drop it).
        self.select = " ".join(pending)
        self.publisher = XComPublisher(ti, records=previous)
        try:
            for uid in sorted(held - set(self.parents)):  # tests of several nodes; Cosmos publishes the models
                self._push_node_state_xcom(ti, uid, "skipped")
            with warehouse_lock(duckdb_file(self.duckdb_conn_id) if self.duckdb_conn_id else None):
                if not self._check_source_freshness:  # else Cosmos calls left_out again, after the freshness check
                    self.reused = self.reusable(context, None, held)
                    self._apply_node_state_tokens(context, self._exclusions(held))
                if resuming:
                    result = build_despite_watcher_retry_guard(self, context, **kwargs)
                else:
                    result = super().execute(context, **kwargs)
        finally:
            self.publisher.close()  # every result is published before this task ends
        forget_previous_tries(context)  # after the last publish, which keeps a backup too
        self._save_state(ti)
        self._emit_node_lineage(ti)
        return result

    def _save_state(self, ti: Any) -> None:
        """What the next run compares with: the manifest without what this build did not pass."""
        if not self.reuse or self.ran_manifest is None:
            return
        records = records_of(self.publisher.records)
        not_passed = set()
        for uid, (_, _, watched) in self.node_tasks.items():
            nodes = [uid, *watched]
            if not all(node in records and records[node].passed for node in nodes):
                not_passed.update(nodes)
        folder = build_state.state_folder(self.reuse["state"], ti.dag_id, ti.task_id)
        try:
            seconds = {uid: r.seconds for uid, r in records.items() if r.passed and r.seconds is not None}
            built_at = {uid: self.started_at for uid, r in records.items() if r.passed and r.status != REUSED}
            reused = {uid for uid, r in records.items() if r.status == REUSED}
            built_at |= {uid: at for uid, at in self.last_built_at.items() if uid in reused}  # as last built
            sources = getattr(self, "_sources_json", None)
            build_state.save(folder, self.ran_manifest, not_passed, sources, seconds, built_at)
        except Exception:
            self.log.exception("Could not keep this build's state: the next run builds every node")

    def calculate_openlineage_events_completes(
        self, env: dict[str, Any], project_dir: Path, dbt_command_line: list[str] | None = None
    ) -> bool:
        """Cosmos's hook after dbt built (``project_dir``: its private copy, about to be deleted), for
        this task's own lineage (the COMPLETE events). Keeps the manifest dbt ran, for the build's
        state; with lineage on, every node's START and FAIL events too, to emit them per node."""
        if self.reuse:
            try:
                self.ran_manifest = (Path(project_dir) / "target" / build_state.MANIFEST).read_text()
            except OSError as error:  # the build goes on; the next run builds every node
                self.log.warning("dbt wrote no manifest to keep for the next run: %s", error)
        if not lineage_events.enabled():
            return super().calculate_openlineage_events_completes(env, project_dir, dbt_command_line)
        try:
            profile = self.profile_config
            events = lineage_events.dbt_node_events(
                env, project_dir, profile.profile_name, profile.target_name, dbt_command_line
            )
        except Exception:
            self.log.exception("Could not read the OpenLineage events of this build's nodes")
            return True
        self.node_lineage = events.events()
        self.openlineage_events_completes = events.completes
        return True

    def _emit_node_lineage(self, ti: Any) -> None:
        """Each node's OpenLineage events, when lineage is on. Lineage that cannot be sent costs
        the build nothing: logged."""
        if not self.node_lineage:
            return
        try:
            lineage_events.emit(lineage_events.parented(self.node_lineage, ti))
        except Exception:
            self.log.exception("Could not emit the OpenLineage events of this build's nodes")

    def pending_selectors(self, done: set[str]) -> list[str]:
        """dbt selectors of this build's nodes but ``done``."""
        return sorted(selector for uid, (_, selector, _) in self.node_tasks.items() if uid not in done)
