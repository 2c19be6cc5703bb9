"""The renderer: the ``transform`` task group, wired like the dbt graph, from the compact manifest.

- ``transform.dbt_build__<connection>…``: the producers, one per set of loads
  (``elt_platform.transform.builds``), each after its own syncs and the builds it reads from,
  whatever their outcome, in the warehouse pool (DuckDB: one writer per file);
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
from elt_platform.dbt_manifest.selectors import escape_glob
from elt_platform.dependency_internals import cache_dir_of, link_tasks
from elt_platform.run_params import FULL_REFRESH_TEMPLATE
from elt_platform.transform.builds import Build, build_of, reads
from elt_platform.transform.node_task import NODE_TASK_POOL, DbtNodeTask, FailRunIfANodeFailed, NodeKind, NodeRunner
from elt_platform.transform.producer import BuildProducer

FAIL_RUN_TASK_ID = "fail_run_if_a_node_failed"


def render(
    manifest: Manifest,
    *,
    source_syncs: dict[str, BaseOperator],
    run_builds: list[Build],
    runner: NodeRunner,
    warehouse_pool: str,
    poll_seconds: float,
    group_id: str,
    build_state: str = "",
) -> tuple[TaskGroup, dict[str, str]]:
    """The transform task group, in the DAG being built; returns it and each node task's dbt node.
    ``build_state`` (``ELT_BUILD_STATE``): where the builds keep what lets the next run reuse nodes."""
    with TaskGroup(group_id=group_id) as group:
        # Where Cosmos keeps dbt's partial parse between runs, as its converter does: without
        # it, every build would parse the whole project again.
        if cosmos_settings.enable_cache:
            runner = replace(runner, cache_dir=cache_dir_of(group.dag, group))
        loaded_by = {uid: sync.task_id for uid, sync in source_syncs.items()}
        reported_by = {uid: group.child_id(task_id) for uid, task_id in build_of(run_builds).items()}
        node_tasks, inlined = _node_tasks(manifest, runner, poll_seconds, reported_by)
        producers = {
            build.task_id: _producer(build, manifest, runner, warehouse_pool, loaded_by, node_tasks, reported_by)
            for build in run_builds
        }
        if build_state:
            for producer in producers.values():
                producer.reuse = _reuse(manifest, build_state, producer, node_tasks)
        outcome = FailRunIfANodeFailed(
            task_id=FAIL_RUN_TASK_ID,
            doc_md="Fails the DAG run when a dbt node's task failed (its downstream ends upstream_failed).",
        )
    _wire(manifest, source_syncs, run_builds, producers, node_tasks | inlined)
    for task in (*producers.values(), *node_tasks.values(), *inlined.values()):
        link_tasks(task, outcome)
    return group, {task.task_id: uid for uid, task in node_tasks.items()}


def _producer(
    build: Build,
    manifest: Manifest,
    runner: NodeRunner,
    warehouse_pool: str,
    loaded_by: dict[str, str],
    node_tasks: dict[str, DbtNodeTask],
    reported_by: dict[str, str],
) -> BuildProducer:
    mine = {uid: node_tasks[uid] for uid in build.nodes if uid in node_tasks}
    read = {p for uid in mine for p in reads(manifest, uid)} - set(mine)
    # What this build's nodes read that another build builds: what did not pass there is held back here.
    read_elsewhere = {
        uid: (reported_by[uid], task.task_id, task.watch)
        for uid in sorted(read)
        if (task := node_tasks.get(uid)) is not None
    }
    return BuildProducer(
        task_id=build.task_id,
        task_display_name=build.display_name,
        project_dir=str(runner.project_dir),
        profile_config=runner.profile_config,
        cache_dir=runner.cache_dir,
        source_syncs=loaded_by,
        parents={uid: m.depends_on for uid, m in manifest.models.items()},
        checks={t.unique_id: t.depends_on for t in graph.tests_with_own_task(manifest)},
        node_tasks={uid: (task.task_id, task.select, task.watch) for uid, task in mine.items()},
        read_elsewhere=read_elsewhere,
        duckdb_conn_id=runner.duckdb_conn_id,
        # Only this build's nodes, and of their tests only those reading selected nodes alone: a test
        # reading several nodes is selected by name, in the build of the last of them.
        select=" ".join(sorted(task.select for task in mine.values())),
        indirect_selection="cautious",
        full_refresh=FULL_REFRESH_TEMPLATE,
        # The per-node results come from dbt's events: no aggregation of tests per model.
        tests_per_model={},
        _check_source_freshness=any(
            manifest.sources[uid].has_freshness for uid in build.nodes if uid in manifest.sources
        ),
        install_deps=False,
        emit_datasets=False,
        pool=warehouse_pool,
        trigger_rule=TriggerRule.ALL_DONE,  # whatever the syncs' outcome; it leaves out what they hold back
        doc_md="Runs the `dbt build` of the nodes that read "
        + (", ".join(f"`{load}`" for load in build.loads) if build.loads else "no sync")
        + "; each dbt node's task reports its node's result. Retried once, building only what is not done, "
        "if its process dies.",
        **runner.execution_args,
    )


def _reuse(manifest: Manifest, state: str, producer: BuildProducer, node_tasks: dict) -> dict:
    """What a build needs to tell which of its nodes it may reuse (``BuildProducer.reusable``)."""
    return {
        "state": state,
        # Another build's node this one reads: dbt's selector of it, to build what reads it when rebuilt.
        "selectors": {uid: node_tasks[uid].select for uid in producer.read_elsewhere},
        # This build's nodes with dbt's freshness.build_after: [its seconds, dbt's selector of it].
        "build_after": {
            uid: [model.build_after_seconds, select]
            for uid, (_, select, _) in producer.node_tasks.items()
            if (model := manifest.models.get(uid)) and model.build_after_seconds
        },
        # Sources without a freshness check: whether they have new data cannot be told.
        "unmeasured": sorted(
            f"{escape_glob(s.source_name)}.{escape_glob(s.table)}"
            for s in manifest.sources.values()
            if not s.has_freshness
        ),
    }


def _node_tasks(
    manifest: Manifest, runner: NodeRunner, poll_seconds: float, reported_by: dict[str, str]
) -> tuple[dict[str, DbtNodeTask], dict[str, EmptyOperator]]:
    """A task per source, non-ephemeral model and test reading several nodes; an empty one per ephemeral model."""
    attached = graph.own_tests(manifest)
    common = {"runner": runner, "poll_seconds": poll_seconds}
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
            producer_task_id=reported_by[uid],
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
            producer_task_id=reported_by[uid],
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
            producer_task_id=reported_by[test.unique_id],
            **common,
        )
    return tasks, inlined


def _wire(
    manifest: Manifest,
    source_syncs: dict[str, BaseOperator],
    run_builds: list[Build],
    producers: dict[str, BuildProducer],
    by_node: dict[str, BaseOperator],
) -> None:
    """Each build after its own syncs and the builds it reads from; syncs before their sources'
    tasks; every node after the nodes it reads."""
    syncs = {s.task_id: s for s in source_syncs.values()}
    for build in run_builds:
        for load in build.loads:
            syncs[load] >> producers[build.task_id]
        for earlier in build.after:
            producers[earlier] >> producers[build.task_id]
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
