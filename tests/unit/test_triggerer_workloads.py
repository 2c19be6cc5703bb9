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
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from elt_platform import dependency_internals
from elt_platform.transform.node_task import NODE_RESULT_TRIGGER, DbtNodeTask

MODELS = 3_000
STARTED = 12  # node tasks started from the trigger, one batch each, as the supervisor builds them
# What the patch must keep to, per workload built: the bytes the runner receives, and the time.
BUDGET_BYTES = 20_000
BUDGET_SECONDS = 1.0


def _deferred_on_their_triggers(path, tasks: int, started: int, also=()):
    """A metadata database (SQLite, at ``path``) holding a DAG of ``tasks`` node tasks and the
    operators in ``also``, with the first ``started`` node tasks and every ``also`` deferred on a
    trigger of their own; returns the engine and the triggers' ids by task id."""
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
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    with DAG("many_models", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)) as dag:
        for i in range(tasks):
            DbtNodeTask(
                task_id=f"model_{i}", kind="model", unique_id=f"model.shop.model_{i}", select=f"model_{i}",
                watch=[f"model.shop.model_{i}"], runner=None, producer_task_id="build", poll_seconds=1.0,
            )  # fmt: skip
        for make in also:
            make()
    triggers = {}
    with Session(engine) as session:
        session.add(DagBundleModel(name="dags"))
        session.add(DagModel(dag_id=dag.dag_id, bundle_name="dags", relative_fileloc="many_models.py"))
        session.flush()
        SerializedDagModel.write_dag(LazyDeserializedDAG.from_dag(dag), bundle_name="dags", session=session)
        version = DagVersion.get_latest_version(dag.dag_id, session=session)
        run = DagRun(
            dag_id=dag.dag_id, run_id="manual_1", run_type=DagRunType.MANUAL, state=DagRunState.RUNNING,
            run_after=datetime(2026, 1, 2, tzinfo=UTC),
        )  # fmt: skip
        run.created_dag_version_id = version.id
        session.add(run)
        deferred = [f"model_{i}" for i in range(started)] + [
            t.task_id for t in dag.tasks if t.task_type != "DbtNodeTask"
        ]
        for task_id in deferred:
            trigger = Trigger(classpath=NODE_RESULT_TRIGGER, kwargs={})
            session.add(trigger)
            session.flush()
            ti = TaskInstance(
                task=dag.get_task(task_id), run_id=run.run_id, dag_version_id=version.id,
                state=TaskInstanceState.DEFERRED,
            )  # fmt: skip
            ti.trigger_id = trigger.id
            session.add(ti)
            triggers[task_id] = trigger.id
        session.commit()
    return engine, triggers


@pytest.fixture(scope="module")
def started_node_tasks(tmp_path_factory):
    """MODELS node tasks, STARTED of them deferred on their trigger: the engine and the triggers' ids."""
    engine, triggers = _deferred_on_their_triggers(tmp_path_factory.mktemp("triggerer") / "airflow.db", MODELS, STARTED)
    yield engine, list(triggers.values())
    engine.dispose()


@pytest.fixture
def supervisor(airflow_s_own_triggerer):
    """Airflow's own triggerer supervisor; its workloads' log files and ids are all it needs of a
    running triggerer here."""
    one = object.__new__(getattr(airflow_s_own_triggerer, dependency_internals.TRIGGERER_SUPERVISOR))
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
    assert not dependency_internals.triggerer_patch_fits("3.4.0rc1")  # a pre-release is its release's
    monkeypatch.setattr(airflow, "__version__", "3.4.0")
    assert not dependency_internals.lighten_the_triggerer_s_work_per_task(NODE_RESULT_TRIGGER)
    assert not hasattr(type(supervisor)._create_workload, "own_part_only")
    assert "Triggerer patch off: Airflow 3.4.0" in caplog.text


def test_node_tasks_that_succeed_in_the_triggerer_queue_no_callback_other_tasks_still_do(
    airflow_s_own_event_handling, tmp_path
):
    """Airflow 3.3 queues a success-callback request (a DAG file parse in the DAG processor) for
    every task that ends in the triggerer; with the patch, a node task (which has no success
    callback) queues none, and any other operator's task still does."""
    from airflow.models.db_callback_request import DbCallbackRequest
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
    from airflow.triggers.base import TaskSuccessEvent
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    other = lambda: TimeDeltaSensor(task_id="other", delta=timedelta(seconds=1), deferrable=True)  # noqa: E731
    engine, triggers = _deferred_on_their_triggers(tmp_path / "airflow.db", 2, 2, also=[other])

    def succeed(task_id: str) -> int:
        """The task's trigger fires its success: the callback requests queued since."""
        with Session(engine) as session:
            before = session.scalar(select(func.count()).select_from(DbCallbackRequest))
            Trigger.submit_event(triggers[task_id], TaskSuccessEvent(), session=session)
            session.commit()
            state = session.scalar(select(TaskInstance.state).where(TaskInstance.task_id == task_id))
            assert state == "success"
            return session.scalar(select(func.count()).select_from(DbCallbackRequest)) - before

    assert succeed("model_0") == 1  # Airflow alone
    assert dependency_internals.quiet_success_callbacks_of({DbtNodeTask.__name__}) is True
    assert succeed("model_1") == 0
    assert succeed("other") == 1


def test_a_node_task_refuses_a_success_callback():
    with pytest.raises(ValueError, match=r"model_0: a dbt node's task takes no on_success_callback\. Fix: "):
        DbtNodeTask(
            task_id="model_0", kind="model", unique_id="model.shop.model_0", select="model_0",
            watch=["model.shop.model_0"], runner=None, producer_task_id="build", poll_seconds=1.0,
            on_success_callback=print,
        )  # fmt: skip
