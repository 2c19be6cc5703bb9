"""The triggerer patch, measured through Airflow's own code on a DAG of a few thousand node tasks.

Each node task starts in the triggerer (``start_from_trigger``). Airflow 3.3's supervisor builds
its workload in ``TriggerRunnerSupervisor._create_workload``, from the metadata database, and
sends it to the runner it forked. Here that real method runs against a real (SQLite) metadata
database holding a real serialized DAG of ``MODELS`` node tasks, one workload per batch as a run
brings them, first as Airflow ships it, then with the adapter's patch
(``dependency_internals.lighten_the_triggerer_s_work_per_task``). If an Airflow upgrade makes
the first test fail, Airflow no longer has the cost and the patch can go; if it makes the second
fail, the patch no longer does its job: either way the failure is here, not in a stalled run.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from elt_platform import dependency_internals
from elt_platform.transform.node_task import NODE_RESULT_TRIGGER, DbtNodeTask

MODELS = 3_000
STARTED = 12  # node tasks started from the trigger, one batch each, as the supervisor builds them
# What the patch must keep to, per workload built: the bytes the runner receives, and the time.
BUDGET_BYTES = 20_000
BUDGET_SECONDS = 1.0


@pytest.fixture(scope="module")
def started_node_tasks(tmp_path_factory):
    """A metadata database holding a DAG of MODELS node tasks, STARTED of them deferred on their
    trigger; yields the engine and the triggers' ids."""
    from airflow.models import import_all_models
    from airflow.models.base import Base
    from airflow.models.dag import DagModel
    from airflow.models.dag_version import DagVersion
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunType
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    import_all_models()
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('triggerer') / 'airflow.db'}")
    Base.metadata.create_all(engine)
    with DAG("many_models", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)) as dag:
        for i in range(MODELS):
            DbtNodeTask(
                task_id=f"model_{i}", kind="model", unique_id=f"model.shop.model_{i}", select=f"model_{i}",
                watch=[f"model.shop.model_{i}"], runner=None, producer_task_id="build", poll_seconds=1.0,
            )  # fmt: skip
    triggers = []
    with Session(engine) as session:
        session.add(DagBundleModel(name="dags"))
        session.add(DagModel(dag_id=dag.dag_id, bundle_name="dags"))
        session.flush()
        SerializedDagModel.write_dag(LazyDeserializedDAG.from_dag(dag), bundle_name="dags", session=session)
        version = DagVersion.get_latest_version(dag.dag_id, session=session)
        run = DagRun(
            dag_id=dag.dag_id, run_id="manual_1", run_type=DagRunType.MANUAL, state=DagRunState.RUNNING,
            run_after=datetime(2026, 1, 2, tzinfo=UTC),
        )  # fmt: skip
        run.created_dag_version_id = version.id
        session.add(run)
        for i in range(STARTED):
            trigger = Trigger(classpath=NODE_RESULT_TRIGGER, kwargs={})
            session.add(trigger)
            session.flush()
            ti = TaskInstance(
                task=dag.get_task(f"model_{i}"), run_id=run.run_id, dag_version_id=version.id,
                state=TaskInstanceState.DEFERRED,
            )  # fmt: skip
            ti.trigger_id = trigger.id
            session.add(ti)
            triggers.append(trigger.id)
        session.commit()
    yield engine, triggers
    engine.dispose()


@pytest.fixture
def supervisor(monkeypatch):
    """Airflow's triggerer supervisor with its own names, whatever an earlier test wrapped, put back
    after; its workloads' log files and ids are all it needs of a running triggerer here."""
    from airflow.jobs import triggerer_job_runner
    from airflow.models.dagbag import DBDagBag

    cls = getattr(triggerer_job_runner, dependency_internals.TRIGGERER_SUPERVISOR)
    create_workload = cls._create_workload
    while hasattr(create_workload, "__wrapped__"):
        create_workload = create_workload.__wrapped__
    monkeypatch.setattr(cls, "_create_workload", create_workload)
    monkeypatch.setattr(triggerer_job_runner, dependency_internals.TRIGGERER_DAG_BAG, DBDagBag)
    one = object.__new__(cls)
    one.logger_cache, one.job, one.id = {}, None, uuid4()
    return one


def _start(supervisor, engine, triggers) -> tuple[list, list[int], int, float]:
    """Build each trigger's workload in a batch of its own, as the supervisor does: the workloads, the
    bytes each sends to the runner, how many times the DAG was deserialized, and the seconds it all took."""
    from airflow.jobs import triggerer_job_runner
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.trigger import Trigger
    from sqlalchemy.orm import Session

    deserialize = SerializedDagModel.dag.fget
    reads = []

    def counted(model):
        reads.append(1)
        return deserialize(model)

    workloads, sizes = [], []
    started = time.perf_counter()
    with pytest.MonkeyPatch.context() as patch, Session(engine) as session:
        patch.setattr(SerializedDagModel, "dag", property(counted))
        for trigger_id in triggers:
            bag = getattr(triggerer_job_runner, dependency_internals.TRIGGERER_DAG_BAG)()  # one per batch
            workload = supervisor._create_workload(
                trigger=session.get(Trigger, trigger_id), dag_bag=bag, render_log_fname=lambda ti: "task.log",
                session=session,
            )  # fmt: skip
            assert workload.classpath == NODE_RESULT_TRIGGER and workload.dag_data
            workloads.append(workload)
            sizes.append(len(workload.model_dump_json()))
    return workloads, sizes, len(reads), time.perf_counter() - started


def test_airflow_alone_sends_every_node_task_the_whole_dag_and_reads_it_once_per_batch(supervisor, started_node_tasks):
    _, sizes, deserialized, seconds = _start(supervisor, *started_node_tasks)
    print(f"Airflow alone: {min(sizes):,} bytes per workload, {deserialized} reads, {seconds:.1f} s")
    assert min(sizes) > 50 * BUDGET_BYTES  # the whole DAG: grows with the project
    assert deserialized == STARTED  # and grows with the run


def test_with_the_patch_each_node_task_gets_its_own_part_and_the_dag_is_read_once(supervisor, started_node_tasks):
    from airflow.jobs import triggerer_job_runner

    assert dependency_internals.lighten_the_triggerer_s_work_per_task(NODE_RESULT_TRIGGER) is True
    workloads, sizes, deserialized, seconds = _start(supervisor, *started_node_tasks)
    print(f"With the patch: {max(sizes):,} bytes per workload, {deserialized} reads, {seconds:.1f} s")
    assert max(sizes) < BUDGET_BYTES
    assert deserialized == 1
    assert seconds < BUDGET_SECONDS * STARTED
    # The runner builds each task's runtime instance, for its trigger's context, from its part alone.
    for workload in workloads[:2]:
        runtime = triggerer_job_runner.TriggerRunner.create_runtime_ti(
            workload.ti, workload.dag_data, workload.dag_run_data
        )
        assert runtime.task.task_id == workload.ti.task_id and runtime.task.task_type == "DbtNodeTask"


def test_the_patch_stays_off_on_an_airflow_release_it_was_not_measured_on(supervisor, monkeypatch, caplog):
    import airflow

    assert dependency_internals.triggerer_patch_fits(airflow.__version__)  # the release the suite runs
    monkeypatch.setattr(airflow, "__version__", "3.4.0")
    assert not dependency_internals.lighten_the_triggerer_s_work_per_task(NODE_RESULT_TRIGGER)
    assert not hasattr(type(supervisor)._create_workload, "own_part_only")
    assert "Triggerer patch off: Airflow 3.4.0" in caplog.text
