"""Everything the platform uses past a public API of Airflow, Cosmos or dbt-duckdb, in one place:
private symbols, non-public modules and patches, each gated by the tested release or checked by
``tests/unit/test_dependency_internals.py`` (and ``test_triggerer_workloads.py``), so that an
upgrade fails there, by name, instead of deep in a running DAG. Airflow's metadata database is
read by ``elt_platform.run_history`` alone; nothing else in the package reaches past a public
API (the same test walks every import).

Each dependency is imported where it is used: importing this module loads none of them.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import sys
from collections import OrderedDict
from typing import Any, ClassVar

# The private names of Cosmos 1.15 used below, by module (the test imports each):
# - a task group's cache folder (where its partial-parse file lives), shared by the node tasks
#   that run alone with the build, and the newest partial-parse file in it, which spares the
#   reuse decision's `dbt ls` a whole parse;
# - the watcher internals the build's producer shares: how a dbt JSON event is logged, and the
#   lock serialising XCom pushes to the task supervisor;
# - the watcher producer's "reliable retry": every XCom the build publishes is also kept in an
#   Airflow Variable, which a retry after a crash restores (Airflow clears a retried task's
#   XComs), and which is deleted once the build has succeeded.
COSMOS_PRIVATE_NAMES = {
    "cosmos.cache": ("_create_cache_identifier", "_get_latest_partial_parse", "_obtain_cache_dir_path"),
    "cosmos.operators._watcher.base": ("_log_dbt_msg",),
    "cosmos.operators._watcher.state": ("safe_xcom_push",),
    "cosmos.operators._watcher.xcom": (
        "_delete_xcom_backup_variable",
        "_init_xcom_backup",
        "_restore_xcom_from_variable",
    ),
}

log = logging.getLogger(__name__)

# Private hooks and attributes of cosmos.operators.watcher.DbtProducerWatcherOperator that
# elt_platform.transform.producer.BuildProducer overrides, calls or reads (the test checks each exists).
PRODUCER_METHODS = (
    "_apply_node_state_tokens",
    "_apply_source_freshness",
    "_push_node_state_xcom",
    "_push_source_freshness_results",
    "_make_parse_callable",  # the reader of dbt's JSON log lines, which publishes each node's result
)
PRODUCER_ATTRIBUTES = ("_check_source_freshness", "_sources_json")


def cache_dir_of(dag: Any, task_group: Any) -> Any:
    """The folder Cosmos caches a task group's dbt artefacts in."""
    from cosmos.cache import _create_cache_identifier, _obtain_cache_dir_path

    return _obtain_cache_dir_path(_create_cache_identifier(dag, task_group))


def latest_partial_parse(project_dir: Any, cache_dir: Any) -> Any:
    """The newest dbt partial-parse file of a project: the one Cosmos keeps in a task group's
    cache folder, or the project's own; None without one."""
    from pathlib import Path

    from cosmos.cache import _get_latest_partial_parse

    return _get_latest_partial_parse(Path(project_dir), Path(cache_dir))


def log_dbt_event(event: dict) -> None:
    """Log one of dbt's JSON log events as Cosmos's watcher logs them."""
    from cosmos.operators._watcher.base import _log_dbt_msg

    _log_dbt_msg(event)


def build_despite_watcher_retry_guard(producer: Any, context: Any, **kwargs: Any) -> Any:
    """A retry of the build, after its process died: what the watcher producer's ``execute``
    does on a first try (the freshness check, then Cosmos's LOCAL ``dbt build`` underneath).

    Cosmos 1.15's producer skips every retry, since it would rebuild every node; the
    platform's retry builds only the nodes not done yet (``BuildProducer.execute``).
    """
    from cosmos import settings as cosmos_settings
    from cosmos.operators._watcher.xcom import _init_xcom_backup
    from cosmos.operators.watcher import DbtProducerWatcherOperator

    _init_xcom_backup(context, persist=cosmos_settings.enable_watcher_reliable_retry)
    if producer._check_source_freshness:
        producer._apply_source_freshness(context)
    return super(DbtProducerWatcherOperator, producer).execute(context, **kwargs)


def replace_operator_classes(tasks: Any, classes: dict[type, type]) -> int:
    """Each Cosmos operator of a rendered ``DbtTaskGroup`` found in ``classes`` becomes the
    subclass given there (``transform.dbt_operators``); returns how many did.

    Cosmos 1.15's ``DbtTaskGroup`` builds its operators from class paths of its own
    (``cosmos.airflow.graph.calculate_operator_class``) and offers no way to name others; its
    LOCAL operators hand ``run_subprocess`` and ``run_dbt_runner`` the temporary copy of the
    project as the working directory, which the subclasses replace.
    """
    changed = 0
    for task in tasks:
        subclass = classes.get(type(task))
        if subclass is not None:
            object.__setattr__(task, "__class__", subclass)
            changed += 1
    return changed


def publish_with_backup(task_instance: Any, key: str, value: Any) -> None:
    """An XCom push, one at a time to the task supervisor, kept in the build's backup Variable too."""
    from cosmos.operators._watcher.state import safe_xcom_push

    safe_xcom_push(task_instance=task_instance, key=key, value=value)


def restore_previous_try(context: Any) -> bool:
    """On a retry: publish again what the crashed try had published (False: nothing was kept)."""
    from cosmos.operators._watcher.xcom import _restore_xcom_from_variable

    return _restore_xcom_from_variable(context)


def forget_previous_tries(context: Any) -> None:
    """Once the build has ended well: its backup Variable is no longer needed."""
    from cosmos.operators._watcher.xcom import _delete_xcom_backup_variable

    _delete_xcom_backup_variable(context)


def close_the_duckdb_file_dbt_keeps_open() -> None:
    """dbt-duckdb 1.11's connection manager keeps one DuckDB environment (and its file) open in the
    process between dbt invocations; close it, if dbt ran in this process and opened one."""
    connections = sys.modules.get("dbt.adapters.duckdb.connections")  # not imported: dbt did not run here
    if connections is None:
        return
    try:
        environment = connections.DuckDBConnectionManager.env()
    except Exception:  # dbt-duckdb: "environment requested before creation", no file opened
        return
    environment.close()


def airflow_setting(section: str, key: str, fallback: str | None = None) -> str | None:
    """One of Airflow's own settings (``[section] key``), as the running component sees it.

    Airflow 3's configuration object (``airflow.configuration.conf``) is not in its public
    interface; the Task SDK's is meant for tasks, not for the API server or the CLI.
    """
    from airflow.configuration import conf

    return conf.get(section, key, fallback=fallback)


def link_tasks(upstream: Any, downstream: Any) -> None:
    """``upstream >> downstream`` between two tasks of the DAG being built, as Airflow 3.3 records
    it (``DependencyMixin._set_relatives``: each side's task ids), without its check that both
    tasks share one DAG, which hashes the whole DAG once per edge: over a third of the parse of a
    1,000-model DAG. Only for tasks created inside one DAG, where the check cannot fail."""
    upstream.downstream_task_ids.add(downstream.node_id)
    downstream.upstream_task_ids.add(upstream.node_id)


def terminal_task_states() -> frozenset[str]:
    """Airflow 3.3's ``TerminalTIState``: the task states a try ends in for good (the Task SDK's
    generated API models; ``airflow.sdk`` exports ``TaskInstanceState`` but not this subset)."""
    from airflow.sdk.api.datamodels._generated import TerminalTIState

    return frozenset(state.value for state in TerminalTIState)


# Airflow 3.3's triggerer: the module of its supervisor (and of the runner it forks), the
# supervisor's class, whose ``_create_workload`` builds each trigger's workload, and the name of the
# DAG bag it builds them with (``build_trigger_workloads``).
TRIGGERER_MODULE = "airflow.jobs.triggerer_job_runner"
TRIGGERER_SUPERVISOR = "TriggerRunnerSupervisor"
TRIGGERER_DAG_BAG = "DBDagBag"
# The Airflow releases the triggerer patch was measured on, [first, past the last): on any other
# the patch stays off and says so. To widen it, run tests/unit/test_triggerer_workloads.py on the
# new release: it measures Airflow's own cost and the patch's, through Airflow's own code.
TRIGGERER_PATCH_AIRFLOW = ("3.3.0", "3.4.0")


def within_releases(version: str, releases: tuple[str, str]) -> bool:
    """Whether ``version`` is in ``releases``, [first, past the last); a pre-release counts as its
    release (3.4.0rc1 is 3.4.0's): the gates of the adapter and of the read model use this."""
    from packaging.version import Version

    first, past_last = (Version(v) for v in releases)
    return first <= Version(Version(version).base_version) < past_last


def triggerer_patch_fits(airflow_version: str) -> bool:
    """Whether the triggerer patch was measured on this Airflow release (``TRIGGERER_PATCH_AIRFLOW``)."""
    return within_releases(airflow_version, TRIGGERER_PATCH_AIRFLOW)


def in_a_triggerer() -> bool:
    """Whether this process runs Airflow's triggerer (it has loaded the triggerer's module)."""
    return TRIGGERER_MODULE in sys.modules


def _patchable_triggerer() -> bool:
    """In a triggerer of an Airflow release the triggerer patches were measured on (else says why not)."""
    if not in_a_triggerer():
        return False
    import airflow

    if triggerer_patch_fits(airflow.__version__):
        return True
    log.warning(
        "Triggerer patch off: Airflow %s is outside %s, the releases it was measured on. Node tasks "
        "started in the triggerer get the whole DAG, and each queues a success callback, as Airflow "
        "does. To turn it on, run tests/unit/test_triggerer_workloads.py on this release and widen "
        "TRIGGERER_PATCH_AIRFLOW (elt_platform/dependency_internals.py).",
        airflow.__version__,
        "..".join(TRIGGERER_PATCH_AIRFLOW),
    )
    return False


def lighten_the_triggerer_s_work_per_task(trigger_classpath: str, keep: int = 8) -> bool:
    """In a triggerer, make the cost of starting a task there independent of the DAG's size.

    Airflow 3.3 hands every task that starts in the triggerer (``start_from_trigger``) the whole
    serialized DAG, for its template context: the supervisor deserializes the DAG to build each
    task's workload (1.5 s at 2,000 models beside a running dbt build), copies it into the
    workload (2.7 MB), and sends it to the runner, which decodes it on the event loop that
    reads the supervisor's messages. Per task, that grows with the DAG; per run, with its
    square: a 2,000-model run stalled with 250 workloads, about 0.7 GB, on their way to the
    runner (docs/benchmarks/transform-2000.md).

    Here the supervisor deserializes each version of a DAG once (keyed by its version and hash:
    a DAG rewritten in place is read anew) and shares it, since it only reads it (``get_task``);
    and a task whose trigger is ``trigger_classpath`` gets only its own part of the DAG: the
    task, and the task groups it is in (``dag_data_of_one_task``), all its trigger's context
    needs. A no-op (False) outside a triggerer, and on an Airflow the patch was not measured on.
    """
    if not _patchable_triggerer():
        return False
    triggerer = sys.modules[TRIGGERER_MODULE]
    bag = getattr(triggerer, TRIGGERER_DAG_BAG)
    if not getattr(bag, "shares_deserialized_dags", False):
        setattr(triggerer, TRIGGERER_DAG_BAG, _dag_bag_sharing_dags(bag, keep))
    supervisor = getattr(triggerer, TRIGGERER_SUPERVISOR)
    if not hasattr(supervisor._create_workload, "own_part_only"):
        supervisor._create_workload = _sending_only_their_own_part(supervisor._create_workload)
    supervisor._create_workload.own_part_only.add(trigger_classpath)
    return True


def quiet_success_callbacks_of(operators: set[str]) -> bool:
    """In a triggerer, queue no success-callback request for a task of these operators that ends there.

    Airflow 3.3's triggerer queues one for every task that ends in it with success
    (``airflow.models.trigger.handle_event_submit``), whether or not the task has a success
    callback, and the DAG processor parses the whole DAG file for each batch of them: about half
    of Airflow's own CPU in a 200-model run (docs/airflow-triggerer-patch.md). The operators named
    here must have no success callback (``DbtNodeTask`` refuses one). A no-op (False) outside a
    triggerer, and on an Airflow the patch was not measured on.
    """
    if not _patchable_triggerer():
        return False
    from airflow.callbacks.database_callback_sink import DatabaseCallbackSink
    from airflow.models import trigger
    from airflow.triggers.base import BaseTaskEndEvent

    airflow_s = trigger.handle_event_submit.dispatch(BaseTaskEndEvent)
    if hasattr(airflow_s, "quiet_success_of"):
        airflow_s.quiet_success_of.update(operators)
        return True

    def handle_task_end(event: Any, *, task_instance: Any, session: Any) -> None:
        quiet = event.task_instance_state == "success" and task_instance.operator in handle_task_end.quiet_success_of
        token = _quiet_success.set(quiet)
        try:
            airflow_s(event, task_instance=task_instance, session=session)
        finally:
            _quiet_success.reset(token)

    handle_task_end.quiet_success_of = set(operators)  # type: ignore[attr-defined]
    handle_task_end.__wrapped__ = airflow_s  # type: ignore[attr-defined]
    trigger.handle_event_submit.register(BaseTaskEndEvent, handle_task_end)
    send = DatabaseCallbackSink.send

    @functools.wraps(send)
    def send_unless_quiet(self: Any, callback: Any, **kwargs: Any) -> None:
        if _quiet_success.get() and getattr(callback, "task_callback_type", None) == "success":
            return
        send(self, callback, **kwargs)

    DatabaseCallbackSink.send = send_unless_quiet
    return True


_quiet_success: contextvars.ContextVar[bool] = contextvars.ContextVar("quiet_success", default=False)


def dag_data_of_one_task(dag_data: dict[str, Any], task_id: str) -> dict[str, Any]:
    """A serialized DAG cut down to one task, and the task groups it is in (the rest untouched)."""
    dag = dag_data["dag"]
    (task,) = (t for t in dag["tasks"] if t["__var"]["task_id"] == task_id)
    alone = {**task, "__var": {k: v for k, v in task["__var"].items() if k != "downstream_task_ids"}}
    return {**dag_data, "dag": {**dag, "tasks": [alone], "task_group": _groups_holding(dag["task_group"], task_id)}}


def _groups_holding(group: dict[str, Any], task_id: str) -> dict[str, Any] | None:
    children = {}
    for label, (kind, value) in group["children"].items():
        if kind == "operator" and value == task_id:
            children[label] = [kind, value]
        elif kind == "taskgroup" and (inner := _groups_holding(value, task_id)) is not None:
            children[label] = [kind, inner]
    return {**group, "children": children} if children or group["_group_id"] is None else None


def _sending_only_their_own_part(create_workload: Any) -> Any:
    @functools.wraps(create_workload)
    def _create_workload(self: Any, *args: Any, **kwargs: Any) -> Any:
        workload = create_workload(self, *args, **kwargs)
        if workload is None or not workload.dag_data or workload.classpath not in _create_workload.own_part_only:
            return workload
        return workload.model_copy(update={"dag_data": dag_data_of_one_task(workload.dag_data, workload.ti.task_id)})

    _create_workload.own_part_only = set()  # type: ignore[attr-defined]
    return _create_workload


class _ModelWithSharedDag:
    """A ``SerializedDagModel`` whose ``dag`` is the one already deserialized for its version and hash."""

    def __init__(self, model: Any, dag: Any) -> None:
        self._model = model
        self.dag = dag

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def _dag_bag_sharing_dags(original: type, keep: int) -> type:
    class DagBagSharingDags(original):  # type: ignore[misc, valid-type]
        shares_deserialized_dags = True
        dags: ClassVar[OrderedDict[tuple[Any, ...], Any]] = OrderedDict()

        def get_serialized_dag_model(self, version_id: Any, session: Any) -> Any:
            model = super().get_serialized_dag_model(version_id=version_id, session=session)
            if model is None or isinstance(model, _ModelWithSharedDag):
                return model
            key = (model.dag_version_id, model.dag_hash, self.load_op_links)
            if key in self.dags:
                self.dags.move_to_end(key)
            else:
                self.dags[key] = model.dag
                if len(self.dags) > keep:
                    self.dags.popitem(last=False)
            return _ModelWithSharedDag(model, self.dags[key])

    return DagBagSharingDags


def redact(value: str) -> str:
    """Airflow's secrets masker, as it masks task logs (imported late: the worker has it set up)."""
    from airflow.sdk._shared.secrets_masker import redact as airflow_redact

    return airflow_redact(value)


# Airflow 3.3's API server, for the dashboard pages (a plugin's FastAPI app, which Airflow does not
# authenticate): the dependency that authenticates a request with Airflow's own login, and the auth
# manager the server set up. The auth manager's interface (BaseAuthManager) is public; these two ways
# to reach it are not: "Public Interface for Airflow 3.0+" names neither module.


def request_user() -> Any:
    """The FastAPI dependency answering a request's user, from its JWT (the UI's session cookie or an
    ``Authorization: Bearer`` header); it answers 401 without one (``core_api.security.get_user``)."""
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def auth_manager() -> Any:
    """The API server's auth manager, a ``BaseAuthManager`` (``airflow.api_fastapi.app.get_auth_manager``)."""
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


__all__ = [
    "PRODUCER_ATTRIBUTES",
    "PRODUCER_METHODS",
    "airflow_setting",
    "auth_manager",
    "build_despite_watcher_retry_guard",
    "cache_dir_of",
    "close_the_duckdb_file_dbt_keeps_open",
    "dag_data_of_one_task",
    "forget_previous_tries",
    "in_a_triggerer",
    "lighten_the_triggerer_s_work_per_task",
    "publish_with_backup",
    "quiet_success_callbacks_of",
    "redact",
    "replace_operator_classes",
    "request_user",
    "restore_previous_try",
    "terminal_task_states",
    "triggerer_patch_fits",
    "within_releases",
]
