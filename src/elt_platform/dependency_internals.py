"""Every private symbol of Cosmos and Airflow this project relies on, in one place.

Public APIs do not offer these; an upgrade that moves, renames or drops one fails in
``tests/unit/test_dependency_internals.py``, which imports each name, instead of somewhere
deep in a running DAG. Nothing else in the package imports a private module of either.
"""

from __future__ import annotations

from typing import Any

# Cosmos 1.15: a task group's cache folder (where its partial-parse file lives), which the
# node tasks that run alone share with the build.
from cosmos.cache import _create_cache_identifier, _obtain_cache_dir_path

# Cosmos 1.15's watcher internals that the build's producer shares: how a dbt JSON event is
# logged, dbt's final statuses, and the lock serialising XCom pushes to the task supervisor.
from cosmos.operators._watcher.base import _log_dbt_msg
from cosmos.operators._watcher.state import DBT_FAILED_STATUSES, DBT_SUCCESS_STATUSES, xcom_set_lock

# Private hooks and attributes of cosmos.operators.watcher.DbtProducerWatcherOperator that
# elt_platform.build_mode.BuildProducer overrides or reads (the test checks each exists).
PRODUCER_METHODS = ("_apply_node_state_tokens", "_push_node_state_xcom", "_push_source_freshness_results")
PRODUCER_ATTRIBUTES = ("_check_source_freshness", "_sources_json")


def cache_dir_of(dag: Any, task_group: Any) -> Any:
    """The folder Cosmos caches a task group's dbt artefacts in."""
    return _obtain_cache_dir_path(_create_cache_identifier(dag, task_group))


def trigger_runtime() -> tuple[Any, Any]:
    """Airflow 3.3's task-runtime classes that a trigger uses to read XComs and task states
    (``RuntimeTaskInstance``, ``XCom``); imported late, inside the triggerer."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
    from airflow.sdk.execution_time.xcom import XCom

    return RuntimeTaskInstance, XCom


def redact(value: str) -> str:
    """Airflow's secrets masker, as it masks task logs (imported late: the worker has it set up)."""
    from airflow.sdk._shared.secrets_masker import redact as airflow_redact

    return airflow_redact(value)


__all__ = [
    "DBT_FAILED_STATUSES",
    "DBT_SUCCESS_STATUSES",
    "PRODUCER_ATTRIBUTES",
    "PRODUCER_METHODS",
    "_log_dbt_msg",
    "cache_dir_of",
    "redact",
    "trigger_runtime",
    "xcom_set_lock",
]
