"""The renderer: the ``transform`` task group, wired like the dbt graph, from the compact manifest.

- ``transform.dbt_build``: the producer, after every sync whatever its outcome, in the
  warehouse pool (DuckDB: one writer per file);
- ``transform.<model>``: a model (seed, snapshot) and its own tests;
- ``transform.<source>.<table>``: a source's freshness check and tests, after its sync;
- ``transform.<test>``: a test reading several nodes, after each of them;
- ``transform.<ephemeral model>``: an empty task, so that what reads it waits for what it reads;
- ``transform.fail_run_if_a_node_failed``: the run's outcome.

Every node task has Airflow's default trigger rule, ``all_success``, at every project size:
the scheduler starts it once its upstream tasks have succeeded, and a node behind a failure
ends ``upstream_failed``, as Airflow users read it. Rendering runs no dbt: a 1,000-model DAG
parses in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import replace

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import BaseOperator, TaskGroup, TriggerRule
from cosmos import settings as cosmos_settings

from elt_platform.dbt_manifest import Manifest, graph
from elt_platform.dependency_internals import cache_dir_of, link_tasks
from elt_platform.transform.node_task import NODE_TASK_POOL, DbtNodeTask, FailRunIfANodeFailed, NodeKind, NodeRunner
from elt_platform.transform.producer import BuildProducer
from elt_platform.transform.results import PRODUCER_TASK_ID

FAIL_RUN_TASK_ID = "fail_run_if_a_node_failed"


def render(
    manifest: Manifest,
    *,
    source_syncs: dict[str, BaseOperator],
    runner: NodeRunner,
    warehouse_pool: str,
    poll_seconds: float,
    group_id: str,
) -> tuple[TaskGroup, dict[str, str]]:
    """The transform task group, in the DAG being built; returns it and each node task's dbt node."""
    with TaskGroup(group_id=group_id) as group:
        # Where Cosmos keeps dbt's partial parse between runs, as its converter does: without
        # it, every build would parse the whole project again.
        if cosmos_settings.enable_cache:
            runner = replace(runner, cache_dir=cache_dir_of(group.dag, group))
        node_tasks, inlined = _node_tasks(manifest, runner, poll_seconds, group.child_id(PRODUCER_TASK_ID))
        producer = _producer(manifest, runner, warehouse_pool, source_syncs, node_tasks)
        outcome = FailRunIfANodeFailed(
            task_id=FAIL_RUN_TASK_ID,
            doc_md="Fails the DAG run when a dbt node's task failed (its downstream ends upstream_failed).",
        )
    _wire(manifest, source_syncs, producer, node_tasks | inlined)
    for task in (producer, *node_tasks.values(), *inlined.values()):
        link_tasks(task, outcome)
    return group, {task.task_id: uid for uid, task in node_tasks.items()}


def _producer(
    manifest: Manifest,
    runner: NodeRunner,
    warehouse_pool: str,
    source_syncs: dict[str, BaseOperator],
    node_tasks: dict[str, DbtNodeTask],
) -> BuildProducer:
    return BuildProducer(
        task_id=PRODUCER_TASK_ID,
        task_display_name="dbt build",
        project_dir=str(runner.project_dir),
        profile_config=runner.profile_config,
        cache_dir=runner.cache_dir,
        source_syncs={uid: sync.task_id for uid, sync in source_syncs.items()},
        parents={uid: m.depends_on for uid, m in manifest.models.items()},
        node_tasks={uid: (task.task_id, task.select, task.watch) for uid, task in node_tasks.items()},
        duckdb_conn_id=runner.duckdb_conn_id,
        # The per-node results come from dbt's events: no aggregation of tests per model.
        tests_per_model={},
        _check_source_freshness=any(s.has_freshness for s in manifest.sources.values()),
        install_deps=False,
        emit_datasets=False,
        pool=warehouse_pool,
        trigger_rule=TriggerRule.ALL_DONE,  # whatever the syncs' outcome; it leaves out what they hold back
        doc_md="Runs this DAG run's one `dbt build`; each dbt node's task reports its node's result. "
        "Retried once, building only what is not done, if its process dies.",
        **runner.execution_args,
    )


def _node_tasks(
    manifest: Manifest, runner: NodeRunner, poll_seconds: float, producer_task_id: str
) -> tuple[dict[str, DbtNodeTask], dict[str, EmptyOperator]]:
    """A task per source, non-ephemeral model and test reading several nodes; an empty one per ephemeral model."""
    attached = graph.own_tests(manifest)
    common = {"runner": runner, "poll_seconds": poll_seconds, "producer_task_id": producer_task_id}
    tasks: dict[str, DbtNodeTask] = {}
    inlined: dict[str, EmptyOperator] = {}  # dbt inlines ephemeral models: nothing reports on them
    for uid, source in manifest.sources.items():
        loaded_by = "loaded outside this platform" if source.external else "after the sync that loads it"
        tasks[uid] = DbtNodeTask(
            task_id=source.task_id,
            task_display_name=source.name,
            kind=NodeKind.SOURCE,
            unique_id=uid,
            select=f"source:{source.name}",
            watch=([uid] if source.has_freshness else []) + attached.get(uid, []),
            has_freshness=source.has_freshness,
            doc_md=f"Freshness and tests of dbt source `{source.name}` ({source.file}), {loaded_by}. dbt node `{uid}`.",
            **common,
        )
    for uid, model in manifest.models.items():
        if model.is_ephemeral:
            inlined[uid] = EmptyOperator(
                task_id=model.task_id,
                task_display_name=model.display_name,
                pool=NODE_TASK_POOL,
                doc_md=f"Ephemeral dbt model `{model.display_name}` ({model.file}): dbt inlines it into the "
                f"models that read it, so nothing runs here. dbt node `{uid}`.",
            )
            continue
        tasks[uid] = DbtNodeTask(
            task_id=model.task_id,
            task_display_name=model.display_name,
            kind=NodeKind.MODEL,
            unique_id=uid,
            select=model.selector,
            watch=[uid, *attached.get(uid, [])],
            doc_md=f"dbt {model.resource_type} `{model.display_name}` ({model.file}) and its tests. dbt node `{uid}`.",
            **{**common, **model.operator_kwargs},
        )
    for test in graph.tests_with_own_task(manifest):
        tasks[test.unique_id] = DbtNodeTask(
            task_id=test.task_id,
            task_display_name=test.name,
            kind=NodeKind.TEST,
            unique_id=test.unique_id,
            select=test.selector,
            watch=[test.unique_id],
            doc_md=f"dbt test `{test.name}`, on {', '.join(test.depends_on)}.",
            **common,
        )
    return tasks, inlined


def _wire(
    manifest: Manifest,
    source_syncs: dict[str, BaseOperator],
    producer: BuildProducer,
    by_node: dict[str, BaseOperator],
) -> None:
    """Syncs before the build and before their sources' tasks; every node after the nodes it reads."""
    for sync in {s.task_id: s for s in source_syncs.values()}.values():
        sync >> producer
    for uid, sync in source_syncs.items():
        if uid in by_node:
            sync >> by_node[uid]
    parents_of = {uid: m.depends_on for uid, m in manifest.models.items()}
    parents_of.update({t.unique_id: t.depends_on for t in graph.tests_with_own_task(manifest)})
    for uid, parents in parents_of.items():
        if uid in by_node:
            for parent in parents:
                if parent in by_node:
                    link_tasks(by_node[parent], by_node[uid])
