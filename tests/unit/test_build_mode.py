"""The default transform mode's wiring: one dbt build, node tasks that start in the triggerer."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from types import SimpleNamespace

import pytest
from cosmos.operators.local import DbtBuildLocalOperator

from elt_platform.build_mode import BuildProducer, DbtNodeTask, NodeResultTrigger
from elt_platform.dag_factory import build_elt_dag
from elt_platform.dbt_manifest import load_manifest
from elt_platform.settings import Settings
from tests.conftest import REPO

PRODUCER = "transform.dbt_build"
SUPPORT_SIDE = {"stg_support__tickets", "int_tickets_aggregated_to_users", "tickets", "customers"}


@pytest.fixture(scope="module")
def dag(manifest_path):
    return build_elt_dag(dag_id="build_mode", dbt_project_dir=REPO / "dbt_project", ingestion_dir=REPO / "ingestion")


def trigger_kwargs(dag, task_id: str) -> dict:
    args = dag.get_task(task_id).start_trigger_args
    assert args.trigger_cls == "elt_platform.build_mode.NodeResultTrigger"
    assert args.next_method == "execute_complete"
    return args.trigger_kwargs


def test_one_build_runs_after_every_sync_whatever_their_outcome_in_the_warehouse_pool(dag):
    producer = dag.get_task(PRODUCER)
    assert type(producer) is BuildProducer
    assert producer.upstream_task_ids == {"sync_shop_faker", "sync_support_desk"}
    assert producer.trigger_rule == "all_done"
    assert producer.pool == "warehouse"
    assert producer.retries == 0
    # node tasks wait on its results, not on its end; the marts' row counts wait for it to release the file
    assert producer.downstream_task_ids == {"transform.fail_run_if_a_node_failed", "dashboards.marts"}


def test_every_node_task_starts_in_the_triggerer_and_holds_no_warehouse_slot(dag):
    nodes = [t for t in dag.tasks if type(t) is DbtNodeTask]
    assert len(nodes) == 10 + 4 + 3  # models, source tables, tests reading two models
    for task in nodes:
        assert type(task) is DbtNodeTask, task.task_id
        assert task.start_from_trigger, task.task_id
        assert task.pool == "default_pool", task.task_id
        assert trigger_kwargs(dag, task.task_id)["producer_task_id"] == PRODUCER


def test_a_failed_node_fails_the_run_though_its_downstream_ends_skipped(dag):
    last = dag.get_task("transform.fail_run_if_a_node_failed")
    assert last.trigger_rule == "one_failed"
    assert last.upstream_task_ids == {t.task_id for t in dag.tasks if type(t) is DbtNodeTask} | {PRODUCER}
    assert last.downstream_task_ids == set()  # a leaf: Airflow sets the run's state from its leaves
    assert last.on_failure_callback in (None, []) and last.retries == 0  # the failed node has alerted already


def test_models_start_with_the_run_and_check_their_upstream_themselves_sources_wait_for_their_sync(dag):
    orders = dag.get_task("transform.orders")
    assert orders.trigger_rule == "always"
    assert trigger_kwargs(dag, "transform.orders")["upstream_task_ids"] == [
        "transform.int_purchases_joined_to_products"
    ]
    source = dag.get_task("transform.support.tickets")
    assert source.trigger_rule == "all_success"  # held back by the scheduler when the sync fails
    assert trigger_kwargs(dag, "transform.support.tickets")["upstream_task_ids"] == []


def test_a_model_task_watches_the_model_and_its_own_tests_and_a_two_model_test_has_its_own_task(dag):
    watched = trigger_kwargs(dag, "transform.orders")["node_ids"]
    assert watched[0] == "model.shop_analytics.orders"
    assert "test.shop_analytics.unique_orders_order_id.fed79b3a6e" in watched
    assert all(t.startswith("test.shop_analytics.") for t in watched[1:])
    assert not any(t.startswith("test.shop_analytics.relationships_") for t in watched)
    detached = "transform.relationships_orders_product_id__product_id__ref_products_"
    assert trigger_kwargs(dag, detached)["node_ids"] == [
        "test.shop_analytics.relationships_orders_product_id__product_id__ref_products_.9ec5cdfdac"
    ]
    source = trigger_kwargs(dag, "transform.support.tickets")["node_ids"]
    assert source == [  # its freshness check, then its tests
        "source.shop_analytics.support.tickets",
        "test.shop_analytics.source_unique_support_tickets_ticket_id.6aee730e69",
        "test.shop_analytics.source_not_null_support_tickets_ticket_id.65c806ac4b",
    ]


def test_per_model_retries_from_dbt_meta_reach_the_task(tmp_path):
    from tests.conftest import copy_project, dbt_parse
    from tests.integration.scenarios import make_transient

    dbt_dir, ingestion_dir = copy_project(tmp_path)
    make_transient(dbt_dir, tmp_path / "markers")
    dbt_parse(dbt_dir)
    dag = build_elt_dag(dag_id="meta", dbt_project_dir=dbt_dir, ingestion_dir=ingestion_dir)
    assert dag.get_task("transform.stg_support__tickets").retries == 2
    assert dag.get_task("transform.stg_faker__users").retries == Settings.from_env().retries.retries


def test_trigger_round_trips_through_serialisation():
    trigger = NodeResultTrigger(PRODUCER, ["model.p.a", "test.p.b"], ["transform.b"], 2.0)
    path, kwargs = trigger.serialize()
    assert path == "elt_platform.build_mode.NodeResultTrigger"
    assert NodeResultTrigger(**kwargs).serialize() == (path, kwargs)


class FakeTaskInstance(SimpleNamespace):
    def get_task_states(self, dag_id, task_ids, run_ids):
        assert run_ids == [self.run_id]
        return {self.run_id: {task: self.states[task] for task in task_ids}}


def left_out(dag, states: dict[str, str], sources_json: dict | None = None) -> set[str]:
    producer = dag.get_task(PRODUCER)
    producer._sources_json = sources_json
    pairs = producer.left_out({"ti": FakeTaskInstance(dag_id=dag.dag_id, run_id="r1", states=states)})
    assert {state for _, state in pairs} <= {"skipped"}
    return {uid.rsplit(".", 1)[-1] for uid, _ in pairs}


def test_the_build_leaves_out_exactly_what_reads_from_a_failed_sync(dag):
    assert left_out(dag, {"sync_shop_faker": "success", "sync_support_desk": "success"}) == set()
    assert left_out(dag, {"sync_shop_faker": "success", "sync_support_desk": "failed"}) == SUPPORT_SIDE
    faker_failed = left_out(dag, {"sync_shop_faker": "upstream_failed", "sync_support_desk": "success"})
    assert "tickets" not in faker_failed and "stg_support__tickets" not in faker_failed
    assert {"orders", "products", "customers", "stg_faker__users"} <= faker_failed


def test_a_source_whose_freshness_errors_holds_back_what_reads_it_and_a_warning_does_not(dag):
    ok = {"sync_shop_faker": "success", "sync_support_desk": "success"}
    error = {"results": [{"unique_id": "source.shop_analytics.support.tickets", "status": "error"}]}
    warn = {"results": [{"unique_id": "source.shop_analytics.support.tickets", "status": "warn"}]}
    assert left_out(dag, ok, error) == SUPPORT_SIDE
    assert left_out(dag, ok, warn) == set()


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


def test_an_unknown_transform_mode_names_the_setting_and_the_choices(manifest_path):
    settings = replace(Settings.from_env(), transform_mode="fast")
    with pytest.raises(ValueError, match=r"ELT_TRANSFORM_MODE='fast': use one of build, per-model"):
        build_elt_dag(
            dag_id="x", dbt_project_dir=REPO / "dbt_project", ingestion_dir=REPO / "ingestion", settings=settings
        )


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


def event(statuses: dict[str, str], events: dict | None = None) -> dict:
    return {
        "outcome": "results",
        "results": {n: {"status": s, **(events or {}).get(n, {})} for n, s in statuses.items()},
    }


def test_a_failed_node_raises_with_dbts_message_and_a_skipped_one_runs_alone(node_task):
    task, runner, _ = node_task
    model = "model.shop_analytics.orders"
    failed = event({model: "error"}, {model: {"event": "error", "msg": "Binder Error: no_such_column"}})
    with pytest.raises(Exception, match="no_such_column"):
        task.execute_complete({}, failed)
    assert runner.ran == []
    skipped = event({model: "failed"}, {model: {"event": "skipped", "msg": None}})
    task.execute_complete({}, skipped)
    assert runner.ran == ["transform.orders"]


def test_a_warning_reaches_the_warning_callback_and_passes(node_task):
    task, runner, warnings = node_task
    test = "test.shop_analytics.accepted_values_orders_order_status"
    task.execute_complete(
        {}, event({"model.shop_analytics.orders": "success", test: "warn"}, {test: {"event": "warn"}})
    )
    assert warnings == [[test]] and runner.ran == []


class WorkerTaskInstance(SimpleNamespace):
    """What a node task reads on a worker: the build's results (XCom) and task states."""

    def xcom_pull(self, task_ids, key):
        assert (task_ids, key) == (PRODUCER, "dbt_results")
        return self.results

    def get_task_states(self, dag_id, task_ids, run_ids):
        return {"r1": {t: self.states.get(t) for t in task_ids}}


def test_without_the_triggerer_a_node_uses_published_results_or_runs_alone(node_task):
    task, runner, _ = node_task
    passed = {n: {"status": "pass", "event": None, "msg": None} for n in task.watch[1:]}
    passed["model.shop_analytics.orders"] = {"status": "success", "event": None, "msg": None}
    ti = SimpleNamespace(dag_id="d", run_id="r1", try_number=1)
    task.execute({"ti": WorkerTaskInstance(**vars(ti), results=passed, states={})})
    assert runner.ran == []
    del passed["model.shop_analytics.orders"]  # not reported, and the build has ended well
    done = {PRODUCER: "success", "transform.int_purchases_joined_to_products": "success"}
    task.execute({"ti": WorkerTaskInstance(**vars(ti), results=passed, states=done)})
    assert runner.ran == ["transform.orders"]


MODEL = "model.p.m"
TEST = "test.p.not_null_m_id"


def decision(try_number=1, results=None, states=None, upstream=("transform.up",)):
    from elt_platform.build_mode import decide

    return decide(
        try_number=try_number,
        node_ids=[MODEL, TEST],
        upstream_task_ids=list(upstream),
        results=results or {},
        states=states or {},
        producer_task_id=PRODUCER,
    )


def result(status, event=None, msg=None):
    return {"status": status, "event": event or status, "msg": msg}


def test_a_node_dbt_passed_passes_at_once_whatever_its_upstream_tasks_are_doing():
    passed = {MODEL: result("success"), TEST: result("pass")}
    assert decision(results=passed, states={"transform.up": "deferred"}).action == "pass"
    # its tests not reported yet: keep waiting for the build
    assert decision(results={MODEL: result("success")}, states={PRODUCER: "running"}).action == "wait"


def test_a_failure_goes_to_the_worker_once_its_upstream_tasks_have_succeeded():
    failed = {MODEL: result("error", msg="Binder Error"), TEST: result("failed", event="skipped")}
    assert decision(results=failed, states={PRODUCER: "success", "transform.up": "deferred"}).action == "wait"
    ready = decision(results=failed, states={PRODUCER: "success", "transform.up": "success"})
    assert ready.action == "results" and ready.results[MODEL]["msg"] == "Binder Error"


def test_a_node_behind_a_failed_upstream_or_sync_is_held_back():
    skipped = {MODEL: result("failed", event="skipped"), TEST: result("failed", event="skipped")}
    for upstream_state in ("failed", "upstream_failed", "skipped"):
        held = decision(results=skipped, states={PRODUCER: "success", "transform.up": upstream_state})
        assert held.action == "held_back" and upstream_state in held.reason
    # while the upstream task retries, it waits; once it has recovered, it runs alone
    assert decision(results=skipped, states={PRODUCER: "success", "transform.up": "up_for_retry"}).action == "wait"
    recovered = decision(results=skipped, states={PRODUCER: "success", "transform.up": "success"})
    assert recovered.action == "results"  # the worker sees dbt's "skipped" and runs it alone


def test_a_later_try_waits_for_the_build_and_its_upstream_then_runs_alone():
    passed = {MODEL: result("success"), TEST: result("pass")}
    assert decision(2, passed, {PRODUCER: "running", "transform.up": "success"}).action == "wait"
    assert decision(2, passed, {PRODUCER: "success", "transform.up": "running"}).action == "wait"
    assert decision(2, passed, {PRODUCER: "success", "transform.up": "success"}).action == "run_alone"


def test_a_build_that_failed_before_reporting_fails_the_node_and_one_that_succeeded_runs_it_alone():
    assert decision(states={PRODUCER: "failed", "transform.up": "success"}).action == "not_reported"
    assert decision(states={PRODUCER: "success", "transform.up": "success"}).action == "run_alone"


def test_above_the_size_limit_the_scheduler_starts_model_tasks_after_their_parents(manifest_path):
    settings = replace(Settings.from_env(), start_with_run_max_models=5)  # the shop project has 10
    dag = build_elt_dag(
        dag_id="large", dbt_project_dir=REPO / "dbt_project", ingestion_dir=REPO / "ingestion", settings=settings
    )
    orders = dag.get_task("transform.orders")
    assert orders.trigger_rule == "all_success"
    assert orders.start_trigger_args.trigger_kwargs["upstream_task_ids"] == []  # the scheduler gates them


def test_a_models_task_watches_its_unit_tests_so_a_failing_one_fails_it(dag):
    """dbt build runs a unit test before its model and skips the model when it fails."""
    watched = trigger_kwargs(dag, "transform.int_purchases_joined_to_products")["node_ids"]
    assert watched[0] == "model.shop_analytics.int_purchases_joined_to_products"
    assert (
        "unit_test.shop_analytics.int_purchases_joined_to_products.returns_and_abandoned_carts_earn_no_revenue"
        in watched
    )


def test_a_deterministic_failure_fails_without_retries_and_a_transient_one_retries(node_task):
    from airflow.sdk.exceptions import AirflowFailException

    from elt_platform.dbt_errors import DeterministicDbtError

    task, _, _ = node_task
    model, test = "model.shop_analytics.orders", "test.shop_analytics.not_null_orders_order_id"
    binder = 'Runtime Error in model orders\n  Binder Error: Referenced column "no_such_column" not found'
    with pytest.raises(DeterministicDbtError, match="Not retried"):
        task.execute_complete({}, event({model: "error"}, {model: {"event": "error", "msg": binder}}))
    with pytest.raises(DeterministicDbtError):  # a data test that found rows fails again on the same data
        task.execute_complete({}, event({model: "success", test: "fail"}, {test: {"event": "fail", "msg": "Got 3"}}))
    glitch = "Runtime Error in model orders\n  IO Error: Could not set lock on file: Conflicting lock is held"
    with pytest.raises(Exception) as raised:
        task.execute_complete({}, event({model: "error"}, {model: {"event": "error", "msg": glitch}}))
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
    tests/integration/test_dbt_subprocess.py)."""
    from cosmos.exceptions import CosmosDbtRunError

    from elt_platform import build_mode
    from elt_platform.dbt_errors import DeterministicDbtError

    def fail(self, context):
        raise CosmosDbtRunError(error)

    monkeypatch.setattr(build_mode.DbtBuildAlone, "execute", fail)
    task = dag.get_task("transform.orders")
    with pytest.raises(CosmosDbtRunError if not deterministic else DeterministicDbtError) as raised:
        task.runner.run(task, {})
    assert isinstance(raised.value, DeterministicDbtError) is deterministic
