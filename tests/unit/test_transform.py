"""The default transform's rendering and policy: one dbt build, node tasks that start in the triggerer."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import fields, replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from cosmos.operators.local import DbtBuildLocalOperator

from elt_platform.dag_factory import build_elt_dag
from elt_platform.dbt_manifest import load_manifest
from elt_platform.settings import Settings
from elt_platform.transform.node_task import DbtNodeTask, NodeResultTrigger
from elt_platform.transform.policy import BUILD_ENDED, EFFECTS, Effect, Outcome, decide
from elt_platform.transform.producer import BuildProducer
from elt_platform.transform.results import NodeRecord
from tests.conftest import REPO

# One build per set of loads (elt_platform.transform.builds): the Faker side, the help desk side, and both.
PRODUCER = FAKER_BUILD = "transform.dbt_build__shop_faker"
SUPPORT_BUILD = "transform.dbt_build__support_desk"
BOTH_BUILD = "transform.dbt_build__shop_faker__support_desk"
BUILDS = (FAKER_BUILD, SUPPORT_BUILD, BOTH_BUILD)
SUPPORT_SIDE = {"stg_support__tickets", "int_tickets_aggregated_to_customers", "tickets", "customers"}


@pytest.fixture(scope="module")
def dag(manifest_path):
    return build_elt_dag(dag_id="build_mode", dbt_project_dir=REPO / "dbt_project", ingestion_dir=REPO / "ingestion")


SNAPSHOT = Path(__file__).parent / "snapshots" / "shop_elt_transform.json"


def rule(task) -> str:
    return getattr(task.trigger_rule, "value", task.trigger_rule)


def rendered_graph(dag) -> dict[str, dict]:
    """Everything that decides how the transform group runs, per task: its class, trigger rule,
    pool, retries, upstream tasks and, for a node task, what it watches and how it runs alone."""
    graph = {}
    for task in dag.tasks:
        entry = {
            "class": type(task).__name__,
            "trigger_rule": rule(task),
            "pool": task.pool,
            "retries": task.retries,
            "upstream": sorted(task.upstream_task_ids),
        }
        if isinstance(task, DbtNodeTask):
            args = task.start_trigger_args
            entry |= {
                "start_from_trigger": task.start_from_trigger,
                "trigger": args.trigger_cls,
                "trigger_kwargs": args.trigger_kwargs,
                "next_method": args.next_method,
                "kind": task.kind,
                "select": task.select,
            }
        graph[task.task_id] = entry
    return graph


def test_the_rendered_graph_matches_its_snapshot(dag):
    """The whole graph of the bundled project. After an intended change, review the diff and
    rewrite the snapshot with ``ELT_UPDATE_SNAPSHOTS=1 pytest tests/unit/test_transform.py``."""
    graph = rendered_graph(dag)
    if os.environ.get("ELT_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(graph, indent=1, sort_keys=True) + "\n")
    assert graph == json.loads(SNAPSHOT.read_text())


def test_one_behaviour_at_every_size_held_back_nodes_end_upstream_failed(dag):
    """No size switch: every node task is gated by the scheduler (``all_success``), so a node
    behind a failure ends ``upstream_failed`` whatever the project's size."""
    rules = {rule(t) for t in dag.tasks if isinstance(t, DbtNodeTask | EmptyOperator)}
    assert rules == {"all_success"}
    assert not any(f.name.startswith("start_with_run") for f in fields(Settings))


def test_the_build_is_retried_once_at_once_and_its_retry_alerts_nobody(dag):
    producer = dag.get_task(PRODUCER)
    assert type(producer) is BuildProducer
    assert (producer.retries, producer.retry_delay.total_seconds()) == (1, 1.0)
    alerts = dag.default_args["on_failure_callback"].__self__
    callbacks = producer.on_retry_callback
    assert alerts.on_retry not in (callbacks if isinstance(callbacks, list) else [callbacks])
    assert dag.default_args["on_retry_callback"] == alerts.on_retry  # the node tasks keep the DAG's


def test_trigger_round_trips_through_serialisation():
    trigger = NodeResultTrigger(PRODUCER, ["model.p.a", "test.p.b"], 2.0)
    path, kwargs = trigger.serialize()
    assert path == "elt_platform.transform.node_task.NodeResultTrigger"
    assert NodeResultTrigger(**kwargs).serialize() == (path, kwargs)


class FakeTaskInstance(SimpleNamespace):
    """The build's view of its run: the syncs' states and the earlier builds' published results."""

    def get_task_states(self, dag_id, task_ids, run_ids):
        assert run_ids == [self.run_id]
        return {self.run_id: {task: self.states.get(task) for task in task_ids}}

    def xcom_pull(self, task_ids, key):
        assert key == "dbt_results" and task_ids in BUILDS
        return self.results.get(task_ids)


def passed_by_earlier_builds(dag, **failed: str) -> dict[str, dict]:
    """Every earlier build's results, all passed but the nodes named in ``failed`` (name -> status)."""
    results: dict[str, dict] = {}
    for build in BUILDS:
        for earlier, _task, watched in dag.get_task(build).read_elsewhere.values():
            for node in watched:
                status = failed.get(node.split(".")[2], "success")
                results.setdefault(earlier, {})[node] = {"status": status}
    return results


def left_out(dag, build: str, states: dict[str, str], results=None, sources_json: dict | None = None) -> set[str]:
    """What ``build`` leaves out, asked as Cosmos asks it after the freshness check: through the
    callback of the copy of the operator that Airflow runs."""
    running = dag.get_task(build).prepare_for_execution()
    ti = FakeTaskInstance(dag_id=dag.dag_id, run_id="r1", states=states, results=results or {})
    pairs = running._freshness_callback({"ti": ti, "task": running}, dag, None, None, sources_json)
    assert {state for _, state in pairs} <= {"skipped"}
    return {uid.rsplit(".", 1)[-1] for uid, _ in pairs}


def left_out_of_the_run(dag, states, results=None, sources_json=None) -> set[str]:
    return set().union(*(left_out(dag, build, states, results, sources_json) for build in BUILDS))


OK = {"sync_shop_faker": "success", "sync_support_desk": "success"}


def test_the_builds_leave_out_exactly_what_reads_from_a_failed_sync(dag):
    passed = passed_by_earlier_builds(dag)
    assert left_out_of_the_run(dag, OK, passed) == set()
    support_failed = {"sync_shop_faker": "success", "sync_support_desk": "failed"}
    assert left_out(dag, SUPPORT_BUILD, support_failed) == SUPPORT_SIDE - {"customers"}
    assert left_out(dag, BOTH_BUILD, support_failed, passed) == {"customers"}
    faker_failed = left_out_of_the_run(dag, {"sync_shop_faker": "upstream_failed", "sync_support_desk": "success"})
    assert "tickets" not in faker_failed and "stg_support__tickets" not in faker_failed
    assert {"orders", "products", "customers", "stg_faker__users"} <= faker_failed


def test_a_build_leaves_out_what_reads_a_node_an_earlier_build_did_not_pass(dag):
    """As one dbt build skips what reads a failure: customers reads stg_faker__users, built earlier."""
    users_failed = passed_by_earlier_builds(dag, stg_faker__users="error")
    assert left_out(dag, BOTH_BUILD, OK, users_failed) == {"customers"}
    test_failed = passed_by_earlier_builds(dag, **{"unique_stg_faker__users_customer_id": "fail"})
    assert left_out(dag, BOTH_BUILD, OK, test_failed) == {"customers"}  # a model passes with its own tests
    never_reported = {FAKER_BUILD: {}, SUPPORT_BUILD: passed_by_earlier_builds(dag)[SUPPORT_BUILD]}
    assert left_out(dag, BOTH_BUILD, OK, never_reported) == {"customers"}
    # failed in its build, then its own task ran it alone and succeeded: built, nothing held back
    run_alone = OK | {"transform.stg_faker__users": "success"}
    assert left_out(dag, BOTH_BUILD, run_alone, users_failed) == set()
    running = dag.get_task(BOTH_BUILD).prepare_for_execution()
    ti = FakeTaskInstance(dag_id=dag.dag_id, run_id="r1", states=OK, results=users_failed)
    held = {uid.split(".")[2] for uid in running.held_back({"ti": ti})}
    assert held == {"customers", "relationships_tickets_customer_id__customer_id__ref_customers_"}


def test_a_source_whose_freshness_errors_holds_back_what_reads_it_and_a_warning_does_not(dag):
    error = {"results": [{"unique_id": "source.shop_analytics.support.tickets", "status": "error"}]}
    warn = {"results": [{"unique_id": "source.shop_analytics.support.tickets", "status": "warn"}]}
    assert left_out(dag, SUPPORT_BUILD, OK, sources_json=error) == SUPPORT_SIDE - {"customers"}
    assert left_out(dag, SUPPORT_BUILD, OK, sources_json=warn) == set()
    left_out_by_support = passed_by_earlier_builds(dag, int_tickets_aggregated_to_customers="skipped")
    assert left_out(dag, BOTH_BUILD, OK, left_out_by_support) == {"customers"}


def test_the_compact_manifest_copy_is_rebuilt_when_the_manifest_changes(tmp_path, manifest_path):
    manifest = tmp_path / "manifest.json"
    shutil.copy(manifest_path, manifest)
    first = load_manifest(manifest)
    cache = tmp_path / "manifest.elt.json"
    assert cache.is_file() and cache.stat().st_size < manifest.stat().st_size / 5
    assert load_manifest(manifest) == first  # read back from the copy

    raw = json.loads(manifest.read_text())
    raw["nodes"]["model.shop_analytics.orders"]["name"] = "orders_renamed"
    manifest.write_text(json.dumps(raw))
    os.utime(manifest, ns=(1, 1))  # a different modification time, whatever the clock
    assert load_manifest(manifest).models["model.shop_analytics.orders"].name == "orders_renamed"


def test_per_model_mode_runs_one_dbt_invocation_per_task(manifest_path):
    settings = replace(Settings.from_env(), transform_mode="per-model")
    dag = build_elt_dag(
        dag_id="per_model", dbt_project_dir=REPO / "dbt_project", ingestion_dir=REPO / "ingestion", settings=settings
    )
    assert PRODUCER not in dag.task_ids
    orders = dag.get_task("transform.orders")
    assert isinstance(orders, DbtBuildLocalOperator)
    assert orders.select == "fqn:shop_analytics.marts.sales.[o]rders"  # exactly this model
    # the same task ids as the default mode, for models and sources
    assert dag.get_task("transform.support.tickets").upstream_task_ids == {"sync_support_desk"}


def test_an_unknown_transform_mode_names_the_setting_and_the_choices():
    with pytest.raises(ValueError, match=r"ELT_TRANSFORM_MODE='fast' is not one of build, per-model"):
        replace(Settings.from_env(), transform_mode="fast")


def test_alerts_know_the_dbt_node_of_every_node_task(dag):
    alerts = dag.default_args["on_failure_callback"].__self__
    assert alerts.task_nodes["transform.orders"] == "model.shop_analytics.orders"
    assert alerts.task_nodes["transform.support.tickets"] == "source.shop_analytics.support.tickets"
    assert alerts.task_nodes["transform.relationships_orders_product_id__product_id__ref_products_"].startswith(
        "test.shop_analytics.relationships_orders_product_id"
    )


class RecordingRunner(SimpleNamespace):
    """Stands in for NodeRunner (which runs dbt) to see which path a node task takes."""

    def run(self, task, context):
        self.ran.append(task.task_id)


@pytest.fixture
def node_task(dag):
    task = dag.get_task("transform.orders")
    warnings = []
    runner = RecordingRunner(ran=[], on_warning=lambda context: warnings.append(context["test_names"]))
    original = task.runner
    task.runner = runner
    yield task, runner, warnings
    task.runner = original


MODEL, TEST = "model.shop_analytics.orders", "test.shop_analytics.not_null_orders_order_id"


def resumed(task, outcome: Outcome, records: dict[str, NodeRecord] | None = None, reason: str = "") -> None:
    """The task on a worker, resumed by its trigger with this outcome (through the event's JSON)."""
    from elt_platform.transform.policy import Decision

    event = json.loads(json.dumps(Decision(outcome, reason, records or {}).as_event()))
    task.execute_complete({}, event)


def test_a_failed_node_raises_with_dbts_message_and_one_to_run_alone_runs(node_task):
    task, runner, _ = node_task
    with pytest.raises(Exception, match="no_such_column"):
        resumed(task, Outcome.FAILED, {MODEL: NodeRecord("error", "Binder Error: no_such_column")})
    assert runner.ran == []
    resumed(task, Outcome.RUN_ALONE, reason="dbt build did not run it")
    assert runner.ran == ["transform.orders"]
    with pytest.raises(Exception, match="A retry of this task runs the node alone"):
        resumed(task, Outcome.NOT_REPORTED, reason="dbt build ended 'failed' without reporting on the node.")


def test_a_warning_reaches_the_warning_callback_and_passes(node_task):
    task, runner, warnings = node_task
    resumed(task, Outcome.WARNED, {TEST: NodeRecord("warn", "Got 2 results")})
    assert warnings == [[TEST]] and runner.ran == []


class WorkerTaskInstance(SimpleNamespace):
    """What a node task reads on a worker: the build's records (XCom) and the build's state."""

    def xcom_pull(self, task_ids, key):
        assert (task_ids, key) == (PRODUCER, "dbt_results")
        return self.records

    def get_task_states(self, dag_id, task_ids, run_ids):
        return {"r1": {t: self.states.get(t) for t in task_ids}}


def test_without_the_triggerer_a_node_uses_published_records_or_runs_alone(node_task):
    task, runner, _ = node_task
    passed = {n: {"status": "pass"} for n in task.watch[1:]} | {MODEL: {"status": "success"}}
    ti = {"dag_id": "d", "run_id": "r1", "try_number": 1}
    task.execute({"ti": WorkerTaskInstance(**ti, records=passed, states={})})
    assert runner.ran == []
    del passed[MODEL]  # not reported, and the build has ended well
    task.execute({"ti": WorkerTaskInstance(**ti, records=passed, states={PRODUCER: "success"})})
    assert runner.ran == ["transform.orders"]


def outcome(try_number=1, records=None, build_state=None) -> Outcome:
    return decide(try_number=try_number, watched=[MODEL, TEST], records=records or {}, build_state=build_state).outcome


PASSED = {MODEL: NodeRecord("success"), TEST: NodeRecord("pass")}


def test_every_outcome_has_one_effect_and_only_a_pass_ends_in_the_triggerer():
    assert set(EFFECTS) == set(Outcome)
    assert [o for o, e in EFFECTS.items() if e is Effect.SUCCEED_IN_TRIGGERER] == [Outcome.PASSED]
    assert [o for o, e in EFFECTS.items() if e is Effect.KEEP_WAITING] == [Outcome.WAITING]


def test_a_node_dbt_passed_passes_at_once_even_while_the_build_runs():
    assert outcome(records=PASSED, build_state="running") is Outcome.PASSED
    # its test not reported yet: keep waiting for the build
    assert outcome(records={MODEL: NodeRecord("success")}, build_state="running") is Outcome.WAITING
    warned = {MODEL: NodeRecord("success"), TEST: NodeRecord("warn", "Got 2 results")}
    assert outcome(records=warned, build_state="running") is Outcome.WARNED


def test_a_reused_node_passes_in_the_triggerer_and_its_log_says_why():
    reused = {MODEL: NodeRecord("reused", seconds=1.5), TEST: NodeRecord("reused")}
    decision = decide(try_number=1, watched=[MODEL, TEST], records=reused, build_state="running")
    assert decision.outcome is Outcome.PASSED
    assert decision.reason.startswith("Reused: nothing it reads, and not its code, changed since its last build")
    assert decide(try_number=1, watched=[MODEL, TEST], records=PASSED, build_state="running").reason == ""


def test_a_failure_goes_to_the_worker_at_once_with_dbts_message():
    failed = {MODEL: NodeRecord("error", "Binder Error"), TEST: NodeRecord("skipped", skipped_after_failure=True)}
    decision = decide(try_number=1, watched=[MODEL, TEST], records=failed, build_state="running")
    assert decision.outcome is Outcome.FAILED and decision.records == {MODEL: failed[MODEL]}


def test_a_node_dbt_did_not_run_runs_alone_once_the_build_has_ended():
    """The scheduler starts the task only once its upstream tasks succeeded, so a node dbt
    skipped after an upstream failure is started only once that upstream has recovered."""
    for record in (NodeRecord("skipped", skipped_after_failure=True), NodeRecord("skipped", left_out=True)):
        records = {MODEL: record, TEST: record}
        assert outcome(records=records, build_state="running") is Outcome.WAITING
        assert outcome(records=records, build_state="success") is Outcome.RUN_ALONE


def test_a_later_try_waits_for_the_build_to_end_then_runs_alone():
    for state in ("running", "up_for_retry", "queued", None):
        assert outcome(2, PASSED, state) is Outcome.WAITING, state
    assert outcome(2, PASSED, "success") is Outcome.RUN_ALONE


def test_while_a_crashed_build_is_retried_its_nodes_wait_and_a_build_that_failed_for_good_is_reported():
    assert "up_for_retry" not in BUILD_ENDED
    assert outcome(build_state="up_for_retry") is Outcome.WAITING
    assert outcome(build_state="failed") is Outcome.NOT_REPORTED
    assert outcome(build_state="success") is Outcome.RUN_ALONE  # it ended well without reporting on the node
    assert outcome(build_state="skipped") is Outcome.RUN_ALONE  # nothing to build: e.g. a source whose sync succeeded


def test_a_retried_build_selects_exactly_what_has_not_succeeded(dag):
    """After a crash, the retry builds by name every node whose task has not succeeded,
    including a test reading two models already built."""
    producer = dag.get_task(PRODUCER)
    done_tasks = {"transform.stg_faker__products", "transform.stg_faker__purchases", "transform.faker.users"}
    states = {task_id: "success" for task_id in done_tasks} | {"transform.orders": "deferred"}

    class RetryTaskInstance(SimpleNamespace):
        def get_task_states(self, dag_id, task_group_id, run_ids):
            assert task_group_id == "transform"
            return {self.run_id: states}

    done = producer.succeeded_before({"ti": RetryTaskInstance(dag_id=dag.dag_id, run_id="r1", try_number=2)})
    assert {producer.node_tasks[uid][0] for uid in done} == done_tasks
    # a model dbt passed before the crash, with its tests: done too; without one of its tests: not
    orders = producer.node_tasks["model.shop_analytics.orders"][2]
    passed = {node: NodeRecord("pass") for node in orders}
    assert "model.shop_analytics.orders" in producer.passed_before(passed)
    del passed[orders[-1]]
    assert "model.shop_analytics.orders" not in producer.passed_before(passed)
    pending = producer.pending_selectors(done)
    assert len(pending) == len(producer.node_tasks) - 3
    assert "fqn:shop_analytics.marts.sales.[o]rders" in pending
    assert "source:faker.users" not in pending and "source:faker.products" in pending
    test = next(uid for uid in producer.node_tasks if "relationships_stg_faker__purchases_product_id" in uid)
    assert producer.node_tasks[test][1] in pending  # both its models are built; selected by name, it runs


def test_a_models_task_watches_its_unit_tests_so_a_failing_one_fails_it(dag):
    """dbt build runs a unit test before its model and skips the model when it fails."""
    watched = dag.get_task("transform.int_purchases_joined_to_products").watch
    assert watched[0] == "model.shop_analytics.int_purchases_joined_to_products"
    assert (
        "unit_test.shop_analytics.int_purchases_joined_to_products.returns_and_abandoned_carts_earn_no_revenue"
        in watched
    )


def test_a_deterministic_failure_fails_without_retries_and_a_transient_one_retries(node_task):
    from airflow.sdk.exceptions import AirflowFailException

    from elt_platform.transform.dbt_errors import DeterministicDbtError

    task, _, _ = node_task
    binder = 'Runtime Error in model orders\n  Binder Error: Referenced column "no_such_column" not found'
    with pytest.raises(DeterministicDbtError, match="Not retried"):
        resumed(task, Outcome.FAILED, {MODEL: NodeRecord("error", binder)})
    with pytest.raises(DeterministicDbtError):  # a data test that found rows fails again on the same data
        resumed(task, Outcome.FAILED, {TEST: NodeRecord("fail", "Got 3 results")})
    missing = 'Runtime Error in model orders\n  IO Error: No files found that match the pattern "../data/orders.csv"'
    with pytest.raises(DeterministicDbtError) as raised:  # a file that is not there is not there on a retry either
        resumed(task, Outcome.FAILED, {MODEL: NodeRecord("error", missing)})
    assert 'No files found that match the pattern "../data/orders.csv"' in str(raised.value)  # dbt's own message
    glitch = "Runtime Error in model orders\n  IO Error: Could not set lock on file: Conflicting lock is held"
    with pytest.raises(Exception) as raised:
        resumed(task, Outcome.FAILED, {MODEL: NodeRecord("error", glitch)})
    assert not isinstance(raised.value, AirflowFailException)  # Airflow retries it


@pytest.mark.parametrize(
    ("error", "deterministic"),
    [
        ("dbt invocation completed with errors: orders: Binder Error: Referenced column x not found", True),
        ("dbt invocation completed with errors: orders: IO Error: Could not set lock on file", False),
    ],
)
def test_a_node_run_alone_fails_at_once_only_on_an_error_no_retry_can_fix(dag, monkeypatch, error, deterministic):
    """In-process, Cosmos raises CosmosDbtRunError with dbt's messages (a subprocess: see
    tests/integration/test_dbt_subprocess.py); the node's operator raises no-retry for the first."""
    from cosmos.exceptions import CosmosDbtRunError
    from cosmos.operators.local import DbtBuildLocalOperator

    from elt_platform.transform.dbt_errors import DeterministicDbtError

    def dbt_failed(self, context):
        self.handle_exception_dbt_runner(SimpleNamespace(success=False, exception=None))

    monkeypatch.setattr(DbtBuildLocalOperator, "execute", dbt_failed)
    monkeypatch.setattr("cosmos.dbt.runner.extract_message_by_status", lambda result, statuses: (["orders"], [error]))
    task = dag.get_task("transform.orders")
    with pytest.raises(CosmosDbtRunError if not deterministic else DeterministicDbtError) as raised:
        task.runner.run(task, {})
    assert isinstance(raised.value, DeterministicDbtError) is deterministic
    assert error in str(raised.value)


@pytest.mark.parametrize(
    ("params", "flagged"), [({"full_refresh": True}, True), ({"full_refresh": False}, False), ({}, False)]
)
def test_the_run_s_full_refresh_param_reaches_every_build_as_dbt_s_flag(dag, params, flagged):
    for build in ("transform.dbt_build__shop_faker", "transform.dbt_build__shop_faker__support_desk"):
        task = dag.get_task(build).prepare_for_execution()
        task.render_template_fields({"params": params})
        assert ("--full-refresh" in task.add_cmd_flags()) is flagged, (build, params)
