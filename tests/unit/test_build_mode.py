"""The default transform mode's wiring: one dbt build, node tasks that start in the triggerer."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
from cosmos.operators.local import DbtRunLocalOperator

from elt_platform.build_mode import BuildProducer, ModelResult, NodeResultTrigger, NodeTestsResult, SourceResult
from elt_platform.dag_factory import build_elt_dag
from elt_platform.settings import Settings
from tests.conftest import REPO

PRODUCER = "transform.dbt_producer_watcher"
SUPPORT_SIDE = {"stg_support__tickets", "int_tickets_aggregated_to_users", "tickets", "customers"}


@pytest.fixture(scope="module")
def dag(manifest_path):
    return build_elt_dag(dag_id="build_mode", dbt_project_dir=REPO / "dbt_project", ingestion_dir=REPO / "ingestion")


def trigger_kwargs(dag, task_id: str) -> dict:
    args = dag.get_task(task_id).start_trigger_args
    assert args.trigger_cls == "elt_platform.build_mode.NodeResultTrigger"
    assert args.next_method == "execute_complete"
    return args.trigger_kwargs


def test_one_producer_runs_after_every_sync_whatever_their_outcome_in_the_warehouse_pool(dag):
    producer = dag.get_task(PRODUCER)
    assert type(producer) is BuildProducer
    assert producer.upstream_task_ids == {"sync_shop_faker", "sync_support_desk"}
    assert producer.trigger_rule == "all_done"
    assert producer.pool == "warehouse"
    assert producer.retries == 0


def test_every_node_task_starts_in_the_triggerer_and_holds_no_warehouse_slot(dag):
    node_tasks = [t for t in dag.tasks if t.task_id.startswith("transform.") and t.task_id != PRODUCER]
    kinds = {type(t) for t in node_tasks if t.task_id != f"{PRODUCER}_done"}
    assert kinds == {ModelResult, NodeTestsResult, SourceResult}
    for task in node_tasks:
        if task.task_id == f"{PRODUCER}_done":
            continue
        assert task.start_from_trigger, task.task_id
        assert task.pool == "default_pool", task.task_id
        assert trigger_kwargs(dag, task.task_id)["producer_task_id"] == PRODUCER


def test_a_models_tests_task_watches_its_own_tests_and_a_two_model_test_has_its_own_task(dag):
    watched = trigger_kwargs(dag, "transform.orders.test")["node_ids"]
    assert "test.shop_analytics.unique_orders_order_id.fed79b3a6e" in watched
    assert all(t.startswith("test.shop_analytics.") for t in watched)
    assert not any(t.startswith("test.shop_analytics.relationships_") for t in watched)
    detached = "transform.relationships_orders_product_id__product_id__ref_products__test"
    assert trigger_kwargs(dag, detached)["node_ids"] == [
        "test.shop_analytics.relationships_orders_product_id__product_id__ref_products_.9ec5cdfdac"
    ]
    assert trigger_kwargs(dag, "transform.orders.run") == {
        "producer_task_id": PRODUCER,
        "node_ids": ["model.shop_analytics.orders"],
        "kind": "model",
        "poll_seconds": 1.0,
    }


def test_trigger_round_trips_through_serialisation():
    trigger = NodeResultTrigger(PRODUCER, ["model.p.a"], "model", 2.0)
    path, kwargs = trigger.serialize()
    assert path == "elt_platform.build_mode.NodeResultTrigger"
    assert NodeResultTrigger(**kwargs).serialize() == (path, kwargs)


class FakeTaskInstance(SimpleNamespace):
    def get_task_states(self, dag_id, task_ids, run_ids):
        assert run_ids == [self.run_id]
        return {self.run_id: {task: self.states[task] for task in task_ids}}


def excluded(dag, states: dict[str, str], sources_json: dict | None = None) -> set[str]:
    producer = dag.get_task(PRODUCER)
    nodes = dag.task_group_dict["transform"].dbt_graph.nodes
    ti = FakeTaskInstance(dag_id=dag.dag_id, run_id="r1", states=states)
    pairs = producer.excluded_nodes({"ti": ti}, dag, None, nodes, sources_json)
    assert {state for _, state in pairs} <= {"skipped"}
    return {uid.rsplit(".", 1)[-1] for uid, _ in pairs}


def test_the_build_leaves_out_exactly_what_reads_from_a_failed_sync(dag):
    assert excluded(dag, {"sync_shop_faker": "success", "sync_support_desk": "success"}) == set()
    assert excluded(dag, {"sync_shop_faker": "success", "sync_support_desk": "failed"}) == SUPPORT_SIDE
    faker_failed = excluded(dag, {"sync_shop_faker": "upstream_failed", "sync_support_desk": "success"})
    assert "tickets" not in faker_failed and "stg_support__tickets" not in faker_failed
    assert {"orders", "products", "customers", "stg_faker__users"} <= faker_failed


def test_a_source_whose_freshness_errors_holds_back_what_reads_it_and_a_warning_does_not(dag):
    ok = {"sync_shop_faker": "success", "sync_support_desk": "success"}
    error = {"results": [{"unique_id": "source.shop_analytics.support.tickets", "status": "error"}]}
    warn = {"results": [{"unique_id": "source.shop_analytics.support.tickets", "status": "warn"}]}
    assert excluded(dag, ok, error) == SUPPORT_SIDE
    assert excluded(dag, ok, warn) == set()


def test_per_model_mode_runs_one_dbt_invocation_per_task(manifest_path):
    settings = replace(Settings.from_env(), transform_mode="per-model")
    dag = build_elt_dag(
        dag_id="per_model", dbt_project_dir=REPO / "dbt_project", ingestion_dir=REPO / "ingestion", settings=settings
    )
    assert PRODUCER not in dag.task_ids
    assert isinstance(dag.get_task("transform.orders.run"), DbtRunLocalOperator)
    assert not dag.get_task("transform.orders.run").start_from_trigger


def test_an_unknown_transform_mode_names_the_setting_and_the_choices(manifest_path):
    settings = replace(Settings.from_env(), transform_mode="fast")
    with pytest.raises(ValueError, match=r"ELT_TRANSFORM_MODE='fast': use one of build, per-model"):
        build_elt_dag(
            dag_id="x", dbt_project_dir=REPO / "dbt_project", ingestion_dir=REPO / "ingestion", settings=settings
        )
