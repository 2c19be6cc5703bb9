"""The private symbols of Cosmos and Airflow the package relies on: each one still there.

An upgrade of astronomer-cosmos or apache-airflow that moves one fails here, by name.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from airflow.jobs import triggerer_job_runner
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
from airflow.serialization.serialized_objects import DagSerialization
from cosmos.operators.watcher import DbtProducerWatcherOperator

from elt_platform import dependency_internals
from tests.conftest import REPO

PACKAGE = REPO / "src" / "elt_platform"


@pytest.mark.parametrize("name", dependency_internals.__all__)
def test_every_name_the_adapter_offers_imports(name):
    assert getattr(dependency_internals, name) is not None


def test_the_trigger_runtime_and_the_secrets_masker_import():
    runtime_task_instance, xcom = dependency_internals.trigger_runtime()
    assert hasattr(runtime_task_instance, "get_task_states") and hasattr(xcom, "get_one")
    assert dependency_internals.redact("plain text") == "plain text"


@pytest.mark.parametrize("name", dependency_internals.PRODUCER_METHODS)
def test_the_producer_hooks_the_build_overrides_exist(name):
    assert callable(getattr(DbtProducerWatcherOperator, name))


def test_the_producer_attributes_the_build_reads_exist():
    producer = DbtProducerWatcherOperator(task_id="p", project_dir=str(REPO / "dbt_project"), profile_config=None)
    assert [name for name in dependency_internals.PRODUCER_ATTRIBUTES if not hasattr(producer, name)] == []


def _private_imports(path: Path) -> list[str]:
    """Private modules or names of cosmos and airflow a module imports, or reaches through a module alias."""
    tree = ast.parse(path.read_text())
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in {"cosmos", "airflow"}:
            module_private = any(part.startswith("_") for part in node.module.split("."))
            names_private = [a.name for a in node.names if a.name.startswith("_")]
            if module_private or names_private or node.module.startswith("airflow.sdk.execution_time"):
                found.append(f"{node.module}: {', '.join(a.name for a in node.names)}")
            modules |= {a.asname or a.name for a in node.names}
    for node in ast.walk(tree):
        aliased = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
        if aliased and node.attr.startswith("_") and not node.attr.startswith("__"):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_no_other_module_imports_a_private_symbol():
    offenders = {
        str(p.relative_to(PACKAGE)): _private_imports(p)
        for p in PACKAGE.rglob("*.py")
        if p.name != "dependency_internals.py" and _private_imports(p)
    }
    assert offenders == {}


def test_a_resumed_build_runs_cosmos_s_local_build_under_the_watcher_s_retry_guard():
    """The watcher producer skips every retry; the resume calls the LOCAL build beneath it.
    If Cosmos drops the guard, this fails and the adapter's bypass can go."""
    import inspect

    assert "does not support Airflow retries" in inspect.getsource(DbtProducerWatcherOperator.execute)
    beneath = super(DbtProducerWatcherOperator, DbtProducerWatcherOperator).execute
    assert "self.build_and_run_cmd(" in inspect.getsource(beneath)  # Cosmos's plain dbt run, nothing watcher-specific


def _serialized(dag_id: str, tasks: int) -> dict:
    with DAG(dag_id, schedule=None) as dag:
        for index in range(tasks):
            EmptyOperator(task_id=f"t{index}")
    return DagSerialization.to_dict(dag)


def test_the_triggerer_deserializes_each_dag_once_and_a_new_version_anew(monkeypatch):
    import inspect

    runner = triggerer_job_runner
    # The runner turns each workload's DAG back into a DAG through this name: what the adapter wraps.
    assert f"{dependency_internals.TRIGGER_RUNNER_DESERIALIZER}.from_dict(" in inspect.getsource(
        runner.TriggerRunner.create_runtime_ti
    )
    # Airflow's own class, whatever an earlier import of node_task did here; put back after the test.
    original = DagSerialization
    monkeypatch.setattr(runner, dependency_internals.TRIGGER_RUNNER_DESERIALIZER, original)
    assert dependency_internals.deserialize_each_dag_once_in_the_triggerer() is True
    shared = getattr(runner, dependency_internals.TRIGGER_RUNNER_DESERIALIZER)
    assert shared is not original and dependency_internals.deserialize_each_dag_once_in_the_triggerer() is True
    assert getattr(runner, dependency_internals.TRIGGER_RUNNER_DESERIALIZER) is shared  # not wrapped twice

    calls = []
    monkeypatch.setattr(original, "from_dict", classmethod(lambda cls, data: calls.append(data) or object()))
    v1, v1_again, v2 = _serialized("d", 2), _serialized("d", 2), _serialized("d", 3)
    first = shared.from_dict(v1)
    assert shared.from_dict(v1_again) is first  # equal content, another message: deserialized once
    assert shared.from_dict(v2) is not first  # a new version of the DAG: deserialized anew
    assert len(calls) == 2


def test_outside_the_triggerer_nothing_is_wrapped(monkeypatch):
    monkeypatch.delitem(sys.modules, dependency_internals.TRIGGER_RUNNER_MODULE, raising=False)
    assert dependency_internals.deserialize_each_dag_once_in_the_triggerer() is False
