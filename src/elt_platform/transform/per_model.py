"""The per-model transform (``ELT_TRANSFORM_MODE=per-model``): Cosmos LOCAL, one ``dbt build
--select <node>`` per task.

The same task ids, edges and rule for tests as the default mode (``elt_platform.dbt_manifest.graph``):

- ``transform.<model>``: the model (seed, snapshot) and its own tests, selected exactly
  (``Model.selector``: Cosmos's ``fqn:<fqn>`` also selects a folder of the same name);
- ``transform.<source>.<table>``: the source's freshness and tests, after its sync;
- ``transform.<test>``: a test reading several nodes, after each of them;
- ``transform.<ephemeral model>``: an empty task.

dbt runs from the project's folder, as by hand, with no retry where none can help
(``transform.dbt_operators``), and holds the DuckDB file's lock while it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, LoadMode, SourceRenderingBehavior, TestBehavior, TestIndirectSelection

from elt_platform.dbt_manifest import Manifest, ResourceType
from elt_platform.dbt_manifest.graph import nodes_read_by, tests_with_own_task
from elt_platform.dependency_internals import replace_operator_classes
from elt_platform.transform.dbt_operators import PLATFORM_OPERATORS, DbtBuildInProjectFolder, DbtTestInProjectFolder
from elt_platform.warehouse import hold_for_the_task, release_after_the_task

# Not tasks (Cosmos would log "Unavailable conversion function" for each, at every parse);
# dbt build runs the hooks whatever the selection.
NOT_TASKS = (ResourceType.ANALYSIS, ResourceType.EXPOSURE, ResourceType.OPERATION)


def render_per_model(
    manifest: Manifest,
    *,
    project_dir: Path,
    profile_config: ProfileConfig,
    execution_args: dict[str, Any],
    duckdb_conn_id: str | None,
    on_warning: Callable[..., Any],
    source_syncs: dict[str, BaseOperator],
    group_id: str,
) -> tuple[DbtTaskGroup, dict[str, str]]:
    """The transform task group, in the DAG being built; returns it and each task's dbt node.

    ``duckdb_conn_id``: the DuckDB file every dbt invocation holds the lock of (None on BigQuery).
    """
    task_ids = {n.unique_id: n.task_id for n in (*manifest.sources.values(), *manifest.models.values())}
    display_names = {m.unique_id: m.display_name for m in manifest.models.values()}
    # Every dbt invocation holds the DuckDB file's lock, whatever started the run (the pool is the scheduler's).
    locking = (
        {"pre_execute": hold_for_the_task(duckdb_conn_id), "post_execute": release_after_the_task}
        if duckdb_conn_id is not None
        else {}
    )
    transform = DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=project_dir,
            manifest_path=manifest.path,
            install_dbt_deps=False,
        ),
        profile_config=profile_config,
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL,
            # A node's build runs only the tests that read it alone (as in the default mode).
            test_indirect_selection=TestIndirectSelection.CAUTIOUS,
            **execution_args,
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            # One `dbt build --select <node>` per node: the node and its own tests, as in the default mode.
            test_behavior=TestBehavior.BUILD,
            source_rendering_behavior=SourceRenderingBehavior.ALL,
            # Tests with a task of their own get it below (Cosmos would name them "<test>_test").
            should_detach_multiple_parents_tests=False,
            ephemeral_models_as_empty_operator=True,
            exclude=[f"resource_type:{kind}" for kind in NOT_TASKS],
            # The same task ids as the default mode, whatever characters the dbt names hold.
            normalize_task_id=lambda node: task_ids.get(node.unique_id) or node.name,
            normalize_task_display_name=lambda node: display_names.get(node.unique_id) or node.resource_name,
            emit_datasets=False,
        ),
        on_warning_callback=on_warning,
        operator_args=locking,
    )
    task_nodes: dict[str, str] = {}
    for test in tests_with_own_task(manifest):
        parents = [transform.tasks_map[p] for p in nodes_read_by(manifest, test) if p in transform.tasks_map]
        with transform:
            test_task = DbtTestInProjectFolder(
                task_id=test.task_id,
                task_display_name=test.name,
                select=test.selector,
                project_dir=str(project_dir),
                profile_config=profile_config,
                install_deps=False,
                emit_datasets=False,
                on_warning_callback=on_warning,
                doc_md=f"dbt test `{test.name}`, on {', '.join(test.depends_on)}. dbt node `{test.unique_id}`.",
                **execution_args,
                **locking,
            )
        parents >> test_task
        task_nodes[test_task.task_id] = test.unique_id
    replace_operator_classes(transform.iter_tasks(), PLATFORM_OPERATORS)
    for unique_id, task_or_group in transform.tasks_map.items():
        if unique_id in manifest.models and isinstance(task_or_group, DbtBuildInProjectFolder):
            task_or_group.select = manifest.models[unique_id].selector
        if unique_id in source_syncs:
            source_syncs[unique_id] >> task_or_group
        tasks = getattr(task_or_group, "children", {unique_id: task_or_group}).values()
        task_nodes.update({task.task_id: unique_id for task in tasks})
    return transform, task_nodes
