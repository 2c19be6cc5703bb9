"""Every private symbol of Cosmos and Airflow this project relies on, in one place.

Public APIs do not offer these; an upgrade that moves, renames or drops one fails in
``tests/unit/test_dependency_internals.py``, which imports each name, instead of somewhere
deep in a running DAG. Nothing else in the package imports a private module of either.
"""

from __future__ import annotations

import hashlib
import sys
from collections import OrderedDict
from typing import Any, ClassVar

import msgspec
from cosmos import settings as cosmos_settings

# Cosmos 1.15: a task group's cache folder (where its partial-parse file lives), which the
# node tasks that run alone share with the build.
from cosmos.cache import _create_cache_identifier, _obtain_cache_dir_path

# Cosmos 1.15's watcher internals that the build's producer shares: how a dbt JSON event is
# logged, and the lock serialising XCom pushes to the task supervisor.
from cosmos.operators._watcher.base import _log_dbt_msg
from cosmos.operators._watcher.state import safe_xcom_push

# Cosmos 1.15's "reliable retry" for its watcher producer: every XCom the build publishes is also
# kept in an Airflow Variable, which a retry after a crash restores (Airflow clears a retried
# task's XComs), and which is deleted once the build has succeeded.
from cosmos.operators._watcher.xcom import (
    _delete_xcom_backup_variable,
    _init_xcom_backup,
    _restore_xcom_from_variable,
)
from cosmos.operators.watcher import DbtProducerWatcherOperator

# Private hooks and attributes of cosmos.operators.watcher.DbtProducerWatcherOperator that
# elt_platform.transform.producer.BuildProducer overrides, calls or reads (the test checks each exists).
PRODUCER_METHODS = (
    "_apply_node_state_tokens",
    "_apply_source_freshness",
    "_push_node_state_xcom",
    "_push_source_freshness_results",
)
PRODUCER_ATTRIBUTES = ("_check_source_freshness", "_sources_json")


def cache_dir_of(dag: Any, task_group: Any) -> Any:
    """The folder Cosmos caches a task group's dbt artefacts in."""
    return _obtain_cache_dir_path(_create_cache_identifier(dag, task_group))


def build_despite_watcher_retry_guard(producer: DbtProducerWatcherOperator, context: Any, **kwargs: Any) -> Any:
    """A retry of the build, after its process died: what the watcher producer's ``execute``
    does on a first try (the freshness check, then Cosmos's LOCAL ``dbt build`` underneath).

    Cosmos 1.15's producer skips every retry, since it would rebuild every node; the
    platform's retry builds only the nodes not done yet (``BuildProducer.execute``).
    """
    _init_xcom_backup(context, persist=cosmos_settings.enable_watcher_reliable_retry)
    if producer._check_source_freshness:
        producer._apply_source_freshness(context)
    return super(DbtProducerWatcherOperator, producer).execute(context, **kwargs)


def publish_with_backup(task_instance: Any, key: str, value: Any) -> None:
    """An XCom push, one at a time to the task supervisor, kept in the build's backup Variable too."""
    safe_xcom_push(task_instance=task_instance, key=key, value=value)


def restore_previous_try(context: Any) -> bool:
    """On a retry: publish again what the crashed try had published (False: nothing was kept)."""
    return _restore_xcom_from_variable(context)


def forget_previous_tries(context: Any) -> None:
    """Once the build has ended well: its backup Variable is no longer needed."""
    _delete_xcom_backup_variable(context)


def trigger_runtime() -> tuple[Any, Any]:
    """Airflow 3.3's task-runtime classes that a trigger uses to read XComs and task states
    (``RuntimeTaskInstance``, ``XCom``); imported late, inside the triggerer."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
    from airflow.sdk.execution_time.xcom import XCom

    return RuntimeTaskInstance, XCom


# Airflow 3.3's trigger runner: the module, and the name in it that turns each workload's
# serialized DAG back into a DAG (``TriggerRunner.create_runtime_ti``).
TRIGGER_RUNNER_MODULE = "airflow.jobs.triggerer_job_runner"
TRIGGER_RUNNER_DESERIALIZER = "DagSerialization"


def deserialize_each_dag_once_in_the_triggerer(keep: int = 8) -> bool:
    """In a triggerer, deserialize each distinct serialized DAG once, not once per task started there.

    Airflow 3.3 hands every task that starts in the triggerer (``start_from_trigger``) the whole
    serialized DAG, and its trigger runner deserializes it for each one on its event loop: 0.1 s
    at 1,000 models on a quiet machine, 0.15 to 0.35 s under load, for each of the 1,000 node
    tasks, while the blocked loop stops reading the supervisor's messages. This wraps the
    runner's deserializer with a cache keyed by a hash of the serialized DAG itself (so a new
    DAG version is deserialized anew); the DAG object is only read there (``get_task``), so the
    node tasks of a run can share it. A no-op (False) in a process that has not loaded the
    triggerer (the scheduler, the DAG processor, a worker).
    """
    runner = sys.modules.get(TRIGGER_RUNNER_MODULE)
    if runner is None:
        return False
    original = getattr(runner, TRIGGER_RUNNER_DESERIALIZER)
    if getattr(original, "deserializes_each_dag_once", False):
        return True

    class DeserializeEachDagOnce(original):  # type: ignore[misc, valid-type]
        deserializes_each_dag_once = True
        dags: ClassVar[OrderedDict[bytes, Any]] = OrderedDict()

        @classmethod
        def from_dict(cls, serialized_obj: dict[str, Any]) -> Any:
            key = hashlib.blake2b(msgspec.json.encode(serialized_obj), digest_size=16).digest()
            if key in cls.dags:
                cls.dags.move_to_end(key)
            else:
                cls.dags[key] = original.from_dict(serialized_obj)
                if len(cls.dags) > keep:
                    cls.dags.popitem(last=False)
            return cls.dags[key]

    setattr(runner, TRIGGER_RUNNER_DESERIALIZER, DeserializeEachDagOnce)
    return True


def redact(value: str) -> str:
    """Airflow's secrets masker, as it masks task logs (imported late: the worker has it set up)."""
    from airflow.sdk._shared.secrets_masker import redact as airflow_redact

    return airflow_redact(value)


__all__ = [
    "PRODUCER_ATTRIBUTES",
    "PRODUCER_METHODS",
    "_log_dbt_msg",
    "build_despite_watcher_retry_guard",
    "cache_dir_of",
    "deserialize_each_dag_once_in_the_triggerer",
    "forget_previous_tries",
    "publish_with_backup",
    "redact",
    "restore_previous_try",
    "trigger_runtime",
]
