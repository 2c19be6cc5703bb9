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


@pytest.mark.parametrize("module", dependency_internals.COSMOS_PRIVATE_NAMES)
def test_every_private_name_of_cosmos_the_adapter_uses_still_exists(module):
    from importlib import import_module

    names = dependency_internals.COSMOS_PRIVATE_NAMES[module]
    assert [name for name in names if not callable(getattr(import_module(module), name, None))] == []


def test_the_secrets_masker_masks_what_it_was_told_to():
    from airflow.sdk.log import mask_secret

    mask_secret("planted-password")
    assert dependency_internals.redact("plain text") == "plain text"
    assert "planted-password" not in dependency_internals.redact("login with planted-password")


@pytest.mark.parametrize("name", dependency_internals.PRODUCER_METHODS)
def test_the_producer_hooks_the_build_overrides_exist(name):
    assert callable(getattr(DbtProducerWatcherOperator, name))


def test_the_producer_attributes_the_build_reads_exist():
    producer = DbtProducerWatcherOperator(task_id="p", project_dir=str(REPO / "dbt_project"), profile_config=None)
    assert [name for name in dependency_internals.PRODUCER_ATTRIBUTES if not hasattr(producer, name)] == []


# The only modules that may reach past a dependency's public API: the adapter for private symbols and
# patches, and the read model for Airflow's metadata database.
ADAPTER = {"dependency_internals.py", "run_history.py"}
# Airflow 3's public interface (its "Public Interface for Airflow 3.0+" page): the Task SDK, providers,
# and the extension points the platform plugs into. Everything else of Airflow is non-public.
AIRFLOW_PUBLIC = (
    "airflow.sdk",
    "airflow.providers.",
    "airflow.plugins_manager",
    "airflow.listeners",
    "airflow.triggers.base",
    "airflow.api_fastapi.auth.managers.",
)
AIRFLOW_SDK_INTERNAL = ("airflow.sdk.execution_time", "airflow.sdk.api", "airflow.sdk._shared")
# dbt adapters' modules are their own implementation; dbt-duckdb's plugin API is not used here.
DBT_ADAPTER_INTERNAL = "dbt.adapters.duckdb"


def _past_a_public_api(module: str, names: list[str]) -> bool:
    root = module.split(".")[0]
    if any(part.startswith("_") for part in module.split(".")) or any(n.startswith("_") for n in names):
        return root in {"airflow", "cosmos", "dbt"}
    if root == "airflow":
        public = module == "airflow" or any(module == p or module.startswith(p) for p in AIRFLOW_PUBLIC)
        return not public or module.startswith(AIRFLOW_SDK_INTERNAL)
    return module.startswith(DBT_ADAPTER_INTERNAL)


def _reaches_past_public_apis(path: Path) -> list[str]:
    """What a module imports (at the top or inside a function) past the public API of Airflow, Cosmos
    or dbt-duckdb: private modules or names, Airflow's non-public modules (its metadata database's
    ORM among them), private attributes reached through an imported module, and dbt-duckdb's
    modules named in strings (``sys.modules.get(...)``)."""
    tree = ast.parse(path.read_text())
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [a.name for a in node.names]
            if _past_a_public_api(node.module, names):
                found.append(f"{node.module}: {', '.join(names)}")
            if node.module.split(".")[0] in {"cosmos", "airflow", "dbt"}:
                modules |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if _past_a_public_api(a.name, [])]
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith(DBT_ADAPTER_INTERNAL)
        ):
            found.append(repr(node.value))
    for node in ast.walk(tree):
        aliased = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
        if aliased and node.attr.startswith("_") and not node.attr.startswith("__"):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_no_module_but_the_adapter_reaches_past_a_public_api():
    offenders = {
        str(p.relative_to(REPO)): found
        for p in [*PACKAGE.rglob("*.py"), *(REPO / "dags").rglob("*.py")]
        if p.name not in ADAPTER and (found := _reaches_past_public_apis(p))
    }
    assert offenders == {}


def test_the_import_walk_finds_what_it_looks_for(tmp_path):
    """The rule above catches each kind of reach it names (it would pass on anything otherwise)."""
    module = tmp_path / "reaching.py"
    module.write_text(
        "import sys\n"
        "from airflow.models import DagRun\n"
        "from airflow.sdk import DAG, TaskInstanceState\n"
        "from cosmos.operators._watcher.base import helper\n"
        "from cosmos import settings\n"
        "def f():\n"
        "    from airflow.utils.session import create_session\n"
        "    from airflow.sdk.execution_time.xcom import XCom\n"
        "    sys.modules.get('dbt.adapters.duckdb.connections')\n"
        "    return settings._private\n"
    )
    assert _reaches_past_public_apis(module) == [
        "airflow.models: DagRun",
        "cosmos.operators._watcher.base: helper",
        "airflow.utils.session: create_session",
        "airflow.sdk.execution_time.xcom: XCom",
        "'dbt.adapters.duckdb.connections'",
        "settings._private",
    ]


def _dependency_private_overrides() -> dict[str, list[str]]:
    """Private methods of Cosmos or Airflow classes that the package's own subclasses override."""
    import importlib
    import inspect

    found = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name in ADAPTER or path.name == "__main__.py":
            continue
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        module = importlib.import_module(name)
        for cls in vars(module).values():
            if not (inspect.isclass(cls) and cls.__module__ == name):
                continue
            theirs = [b for b in cls.__mro__[1:] if b.__module__.split(".")[0] in {"airflow", "cosmos"}]
            for attr in vars(cls):
                # not Python's own (_abc_impl) nor a base class's name-mangled cache (_BaseOperator__...)
                ours = attr.startswith("_") and not attr.startswith("__") and attr != "_abc_impl" and "__" not in attr
                if ours and any(hasattr(b, attr) for b in theirs):
                    found.setdefault(f"{name}.{cls.__name__}", []).append(attr)
    return found


def test_private_hooks_overridden_are_the_ones_the_adapter_lists():
    listed = set(dependency_internals.PRODUCER_METHODS)
    unlisted = {cls: [a for a in attrs if a not in listed] for cls, attrs in _dependency_private_overrides().items()}
    assert {cls: attrs for cls, attrs in unlisted.items() if attrs} == {}


def test_a_resumed_build_runs_cosmos_s_local_build_under_the_watcher_s_retry_guard():
    """The watcher producer skips every retry; the resume calls the LOCAL build beneath it.
    If Cosmos drops the guard, this fails and the adapter's bypass can go."""
    import inspect

    assert "does not support Airflow retries" in inspect.getsource(DbtProducerWatcherOperator.execute)
    beneath = super(DbtProducerWatcherOperator, DbtProducerWatcherOperator).execute
    assert "self.build_and_run_cmd(" in inspect.getsource(beneath)  # Cosmos's plain dbt run, nothing watcher-specific


def _serialized_with_groups() -> dict:
    from airflow.sdk import TaskGroup

    with DAG("groups", schedule=None, default_args={"retries": 3}) as dag:
        first = EmptyOperator(task_id="first")
        with TaskGroup("outer"):
            with TaskGroup("inner"):
                mine = EmptyOperator(task_id="mine", doc_md="the task the trigger runs")
            other = EmptyOperator(task_id="other")
        first >> mine >> other
    return DagSerialization.to_dict(dag)


def test_one_task_s_part_of_a_dag_is_that_task_in_its_groups_and_builds_its_trigger_s_context():
    import json
    from datetime import UTC, datetime

    whole = _serialized_with_groups()
    part = dependency_internals.dag_data_of_one_task(whole, "outer.inner.mine")
    assert len(json.dumps(part)) < len(json.dumps(whole))
    dag = DagSerialization.from_dict(part)
    assert dag.dag_id == "groups" and list(dag.task_dict) == ["outer.inner.mine"]
    task = dag.get_task("outer.inner.mine")
    assert task.task_group.group_id == "outer.inner" and task.task_group.parent_group.group_id == "outer"
    assert (task.retries, task.doc_md) == (3, "the task the trigger runs")  # the task itself, untouched
    assert DagSerialization.from_dict(whole).get_task("outer.inner.mine").downstream_task_ids == {"outer.other"}

    # What the triggerer's runner builds from it: the trigger's task instance and template context.
    now = datetime(2026, 12, 1, tzinfo=UTC)
    ti = _ti_of("outer.inner.mine")
    run = {"dag_id": "groups", "run_id": "r1", "logical_date": now, "run_after": now, "start_date": now,
           "run_type": "manual", "state": "running", "consumed_asset_events": [], "data_interval_start": None,
           "data_interval_end": None, "end_date": None, "partition_key": None}  # fmt: skip
    runtime_ti = triggerer_job_runner.TriggerRunner.create_runtime_ti(ti, part, run)
    context = runtime_ti.get_template_context()
    assert context["task"] is runtime_ti.task and context["dag"].dag_id == "groups" and context["run_id"] == "r1"
    assert context["ti"] is runtime_ti and context["task"].task_group.group_id == "outer.inner"


def test_only_the_chosen_trigger_s_tasks_get_only_their_part_of_the_dag(airflow_s_own_triggerer, monkeypatch):
    from airflow.executors.workloads.trigger import RunTrigger

    whole = _serialized_with_groups()
    supervisor = getattr(airflow_s_own_triggerer, dependency_internals.TRIGGERER_SUPERVISOR)

    def airflow_s_create_workload(self, trigger, dag_bag, render_log_fname, session):
        return trigger and RunTrigger(
            id=1, classpath=trigger, encrypted_kwargs="", ti=_ti_of("outer.inner.mine"), dag_data=whole, dag_run_data={}
        )

    monkeypatch.setattr(supervisor, "_create_workload", airflow_s_create_workload)
    assert dependency_internals.lighten_the_triggerer_s_work_per_task("mine.NodeTrigger") is True
    assert dependency_internals.lighten_the_triggerer_s_work_per_task("mine.NodeTrigger") is True  # wrapped once
    ours = supervisor._create_workload(None, "mine.NodeTrigger", None, None, None)
    assert ours.dag_data == dependency_internals.dag_data_of_one_task(whole, "outer.inner.mine")
    assert supervisor._create_workload(None, "theirs.Trigger", None, None, None).dag_data == whole  # untouched
    assert supervisor._create_workload(None, None, None, None, None) is None  # a trigger skipped by Airflow


def _ti_of(task_id: str):
    from uuid import uuid4

    from airflow.executors.workloads.task import TaskInstanceDTO

    return TaskInstanceDTO(
        id=uuid4(), dag_version_id=uuid4(), task_id=task_id, dag_id="groups", run_id="r1",
        try_number=1, map_index=-1, pool_slots=1, priority_weight=1, queue="default",
    )  # fmt: skip


class _StoredDag:
    """What the supervisor reads of a serialized DAG model; each ``dag`` read deserializes anew."""

    deserialized = 0

    def __init__(self, version_id: str, dag_hash: str) -> None:
        self.dag_version_id, self.dag_hash, self.data = version_id, dag_hash, {"dag": version_id}

    @property
    def dag(self) -> object:
        _StoredDag.deserialized += 1
        return object()


def test_the_triggerer_s_supervisor_deserializes_each_dag_version_once(airflow_s_own_triggerer, monkeypatch):
    from airflow.models.dagbag import DBDagBag

    stored = {"v1": _StoredDag("v1", "h1"), "v2": _StoredDag("v2", "h2")}
    monkeypatch.setattr(DBDagBag, "get_serialized_dag_model", lambda self, version_id, session: stored.get(version_id))
    monkeypatch.setattr(_StoredDag, "deserialized", 0)
    assert dependency_internals.lighten_the_triggerer_s_work_per_task("mine.NodeTrigger") is True
    bag_class = getattr(airflow_s_own_triggerer, dependency_internals.TRIGGERER_DAG_BAG)
    assert bag_class is not DBDagBag and issubclass(bag_class, DBDagBag)

    # A new bag for every batch of workloads, as the supervisor makes one.
    first, again = bag_class().get_serialized_dag_model("v1", None), bag_class().get_serialized_dag_model("v1", None)
    assert first.dag is again.dag and _StoredDag.deserialized == 1
    assert first.data == {"dag": "v1"} and first.dag_hash == "h1"  # the rest is the model's own
    assert bag_class().get_serialized_dag_model("v2", None).dag is not first.dag and _StoredDag.deserialized == 2
    stored["v1"] = _StoredDag("v1", "h1-rewritten")  # the same version, rewritten in place
    assert bag_class().get_serialized_dag_model("v1", None).dag is not first.dag and _StoredDag.deserialized == 3
    assert bag_class().get_serialized_dag_model("gone", None) is None


def test_outside_the_triggerer_nothing_is_wrapped(monkeypatch):
    monkeypatch.delitem(sys.modules, dependency_internals.TRIGGERER_MODULE, raising=False)
    assert not dependency_internals.in_a_triggerer()
    assert dependency_internals.lighten_the_triggerer_s_work_per_task("mine.NodeTrigger") is False


def test_a_cosmos_operator_becomes_the_platform_s_and_runs_dbt_from_the_project_s_folder(tmp_path, monkeypatch):
    """Cosmos 1.15 hands run_dbt_runner its temporary copy as the working directory; after the
    class is replaced, dbt's working directory is the project's folder and its output goes into the copy."""
    from cosmos.config import ProfileConfig
    from cosmos.operators.local import DbtBuildLocalOperator, DbtSeedLocalOperator

    from elt_platform.transform.dbt_operators import PLATFORM_OPERATORS, DbtBuildInProjectFolder

    profile = ProfileConfig(profile_name="p", target_name="t", profiles_yml_filepath=tmp_path / "profiles.yml")
    with DAG("replaced", schedule=None):
        build = DbtBuildLocalOperator(task_id="m", project_dir=str(tmp_path), profile_config=profile, select="m")
        other = EmptyOperator(task_id="other")
    assert dependency_internals.replace_operator_classes([build, other], PLATFORM_OPERATORS) == 1
    assert type(build) is DbtBuildInProjectFolder and build.select == "m" and type(other) is EmptyOperator
    assert DbtSeedLocalOperator in PLATFORM_OPERATORS

    calls = {}
    monkeypatch.setattr(
        DbtBuildLocalOperator, "run_dbt_runner", lambda self, command, env, cwd, **kw: calls.update(env=env, cwd=cwd)
    )
    build.run_dbt_runner(["build"], {"A": "1"}, "/tmp/cosmos-copy")
    assert calls["cwd"] == str(tmp_path)
    assert calls["env"] == {
        "A": "1",
        "DBT_TARGET_PATH": "/tmp/cosmos-copy/target",
        "DBT_LOG_PATH": "/tmp/cosmos-copy/logs",
    }


def test_the_states_a_task_ends_in_are_airflow_s_own():
    from elt_platform import task_states

    assert {"success", "failed", "skipped", "upstream_failed", "removed"} == task_states.ENDED
    assert "up_for_retry" not in task_states.ENDED and "up_for_retry" in task_states.TRY_ENDED


def test_tasks_linked_without_airflow_s_check_serialize_as_airflow_links_them():
    def chain(link) -> dict:
        with DAG("linked", schedule=None) as dag:
            first, second, third = (EmptyOperator(task_id=t) for t in ("first", "second", "third"))
            link(first, second)
            link(second, third)
            link(first, third)
        return DagSerialization.to_dict(dag)

    def airflow_s(upstream, downstream):
        upstream >> downstream

    ours = chain(dependency_internals.link_tasks)
    assert ours == chain(airflow_s)
    tasks = {t["__var"]["task_id"]: t["__var"].get("downstream_task_ids") for t in ours["dag"]["tasks"]}
    assert tasks == {"first": ["second", "third"], "second": ["third"], "third": None}


def test_airflow_s_own_settings_are_read_as_its_components_read_them(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/prefix")
    assert dependency_internals.airflow_setting("api", "base_url") == "https://airflow.example.com/prefix"
    assert dependency_internals.airflow_setting("api", "no_such_key", fallback="/") == "/"


def test_the_newest_partial_parse_file_is_the_cache_s_or_the_project_s(tmp_path):
    import os

    project, cache = tmp_path / "project", tmp_path / "cache"
    assert dependency_internals.latest_partial_parse(project, cache) is None
    for folder, mtime in ((project, 1_000), (cache, 2_000)):
        (folder / "target").mkdir(parents=True)
        (folder / "target" / "partial_parse.msgpack").write_bytes(b"x")
        os.utime(folder / "target" / "partial_parse.msgpack", (mtime, mtime))
    assert dependency_internals.latest_partial_parse(project, cache) == cache / "target" / "partial_parse.msgpack"
    os.utime(project / "target" / "partial_parse.msgpack", (3_000, 3_000))
    assert dependency_internals.latest_partial_parse(project, cache) == project / "target" / "partial_parse.msgpack"
