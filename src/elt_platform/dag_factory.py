"""Build the ELT DAG from the ingestion files (if any) and the dbt manifest.

Shape: one ``sync_<connection>`` task per ingestion file, then one task per dbt node in
the ``transform`` group. Each dbt source's task (freshness and tests) is wired after the
sync that loads it, so a model runs only when every sync it reads from succeeded, and
models that do not read from a failed sync still run. A project with nothing to ingest
(no sources, or sources loaded outside this platform) gets the same graph without syncs.

Two transform modes (``ELT_TRANSFORM_MODE``), with the same task id per dbt node
(``elt_platform.task_names``):

- ``build`` (default): one ``dbt build`` per set of loads does the work, each as soon as its
  own syncs have ended (``elt_platform.transform.builds``); ``transform.<model>`` reports its
  model's result (model and tests) from the triggerer. See ``elt_platform.transform``.
- ``per-model``: Cosmos LOCAL, one ``dbt build --select <node>`` per task
  (``elt_platform.transform.per_model``).

Then the ``dashboards`` group (``elt_platform.health.publish``) and, when a dashboard promises
to be fresh by a time, the ``<dag_id>__fresh_by`` DAG (``elt_platform.health.promises``).
This module only assembles them. Parsing runs no dbt and touches no network: the manifest is
built beforehand by ``make manifest`` (``dbt parse``), or at image build.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseOperator, TaskGroup
from cosmos import ProfileConfig
from cosmos.constants import InvocationMode

from elt_platform.alerts.callbacks import PipelineAlerts
from elt_platform.bigquery_types import python_model_problems
from elt_platform.dbt_manifest import Manifest
from elt_platform.dbt_project_files import profile_name
from elt_platform.errors import ConfigurationError
from elt_platform.health import publish as health
from elt_platform.health.promises import promises_dag
from elt_platform.ingestion.connections import ConnectionSpec
from elt_platform.ingestion.contract import load_and_check
from elt_platform.ingestion.sync_operator import SyncOperator
from elt_platform.run_params import dag_params
from elt_platform.settings import AIRFLOW_DEFAULT_POOL, Retries, Settings, TransformMode, Warehouse
from elt_platform.task_names import TRANSFORM_GROUP_ID
from elt_platform.transform.builds import Build, build_of, builds
from elt_platform.transform.node_task import NodeRunner
from elt_platform.transform.per_model import render_per_model
from elt_platform.transform.render import render
from elt_platform.warehouse import profile_mapping

__all__ = ["TRANSFORM_GROUP_ID", "build_elt_dag", "promises_dag", "sync_retries", "transform_group"]


def sync_retries(spec: ConnectionSpec, defaults: Retries) -> dict[str, object]:
    """The default retry policy with the connection's own overrides applied."""
    overrides = spec.retries
    policy = replace(
        defaults,
        retries=defaults.retries if overrides.retries is None else overrides.retries,
        retry_delay=(
            defaults.retry_delay
            if overrides.retry_delay_seconds is None
            else timedelta(seconds=overrides.retry_delay_seconds)
        ),
        max_retry_delay=(
            defaults.max_retry_delay
            if overrides.max_retry_delay_seconds is None
            else timedelta(seconds=overrides.max_retry_delay_seconds)
        ),
    )
    return policy.as_task_args()


def _execution_args(settings: Settings) -> dict[str, Any]:
    """dbt in its own virtualenv (the image) runs as a subprocess; else in-process (dbtRunner)."""
    if settings.dbt_executable:
        return {"invocation_mode": InvocationMode.SUBPROCESS, "dbt_executable_path": str(settings.dbt_executable)}
    return {"invocation_mode": InvocationMode.DBT_RUNNER}


def transform_group(
    *,
    dbt_project_dir: Path,
    manifest: Manifest,
    settings: Settings,
    alerts: PipelineAlerts,
    source_syncs: dict[str, BaseOperator],
    run_builds: list[Build],
) -> TaskGroup:
    """Every dbt node as its own task, in the DAG being built; ``source_syncs`` gate the sources;
    ``run_builds``: the builds of the default mode (``elt_platform.transform.builds``)."""
    profile_config = ProfileConfig(
        profile_name=profile_name(dbt_project_dir),
        target_name=settings.environment,  # target.name in dbt: dev, prod, ...
        profile_mapping=profile_mapping(settings),
    )
    duckdb_conn_id = settings.warehouse_conn_id if settings.warehouse_type == Warehouse.DUCKDB else None
    if settings.transform_mode == TransformMode.BUILD:
        runner = NodeRunner(
            project_dir=dbt_project_dir,
            profile_config=profile_config,
            execution_args=_execution_args(settings),
            duckdb_conn_id=duckdb_conn_id,
            on_warning=alerts.on_warning,
        )
        group, task_nodes = render(
            manifest,
            source_syncs=source_syncs,
            run_builds=run_builds,
            runner=runner,
            warehouse_pool=settings.warehouse_pool,
            poll_seconds=settings.model_poll_seconds,
            group_id=TRANSFORM_GROUP_ID,
            build_state=settings.build_state,
        )
    else:
        group, task_nodes = render_per_model(
            manifest,
            project_dir=dbt_project_dir,
            profile_config=profile_config,
            execution_args=_execution_args(settings),
            duckdb_conn_id=duckdb_conn_id,
            on_warning=alerts.on_warning,
            source_syncs=source_syncs,
            group_id=TRANSFORM_GROUP_ID,
        )
    alerts.task_nodes.update(task_nodes)
    return group


def _dag(dag_id: str, settings: Settings, alerts: PipelineAlerts, **kwargs: Any) -> DAG:
    default_args = {
        "owner": "data-platform",
        # DuckDB allows one writer per file: dbt's builds take turns in one pool slot. The syncs read
        # into stores of their own and hand their rows over under the file's lock, so they need none.
        "pool": settings.warehouse_pool,
        # Per model: meta: {cosmos: {operator_kwargs: {retries: N}}} in dbt.
        **settings.retries.as_task_args(),
        # Fires once, after the last try; held-back tasks are upstream_failed and fire nothing.
        "on_failure_callback": alerts.on_failure,
        "on_retry_callback": alerts.on_retry,
    }
    return DAG(
        dag_id=dag_id, catchup=False, max_active_runs=1, default_args=default_args, params=dag_params(), **kwargs
    )


def build_elt_dag(
    *,
    dag_id: str,
    dbt_project_dir: str | Path,
    ingestion_dir: str | Path | None = None,
    manifest_path: str | Path | None = None,
    schedule: Any = None,
    start_date: datetime = datetime(2026, 1, 1),
    doc_md: str | None = None,
    tags: list[str] | None = None,
    settings: Settings | None = None,
) -> DAG:
    """The whole pipeline as one DAG: syncs, then one task per dbt node.

    ``ingestion_dir`` None: nothing to sync; every dbt source must then be declared as loaded
    outside this platform (``meta: {elt: {external: true}}``).
    """
    settings = settings or Settings.from_env()
    dbt_project_dir = Path(dbt_project_dir).resolve()
    ingestion = None if ingestion_dir is None else Path(ingestion_dir).resolve()
    connections, manifest = load_and_check(ingestion, dbt_project_dir, manifest_path, settings.ingestion_data_root)
    manifest_path = manifest.path
    if settings.warehouse_type == Warehouse.BIGQUERY and (problems := python_model_problems(manifest)):
        raise ConfigurationError(problems)

    alerts = PipelineAlerts(
        manifest_path=manifest_path,
        connection_files={conn.spec.task_id: conn.path for conn in connections},
        settings=settings,
    )
    tags = tags or (["elt", "airbyte", "dbt"] if connections else ["elt", "dbt"])
    with _dag(dag_id, settings, alerts, schedule=schedule, start_date=start_date, doc_md=doc_md, tags=tags) as dag:
        syncs = {
            conn.spec.dbt_source: SyncOperator(
                task_id=conn.spec.task_id,
                task_display_name=f"sync {conn.spec.title}",
                connection_file=str(conn.path),
                settings=settings,
                raw_tables=[t for t in manifest.sources.values() if t.source_name == conn.spec.dbt_source],
                execution_timeout=settings.sync_timeout,
                pool=AIRFLOW_DEFAULT_POOL,
                doc_md=f"Sync **{conn.spec.title}** ({conn.path.name}) into `{conn.spec.destination.raw_schema}`.",
                **sync_retries(conn.spec, settings.retries),
            )
            for conn in connections
        }
        source_syncs = {uid: syncs[s.source_name] for uid, s in manifest.sources.items() if s.source_name in syncs}
        # Once per parse: which build builds each node, and the loads of each (the dashboards' too).
        run_builds = builds(manifest, {uid: sync.task_id for uid, sync in source_syncs.items()})
        transform_group(
            dbt_project_dir=dbt_project_dir,
            manifest=manifest,
            settings=settings,
            alerts=alerts,
            source_syncs=source_syncs,
            run_builds=run_builds,
        )
        sync_task_ids = {source: sync.task_id for source, sync in syncs.items()}
        titles = {conn.spec.task_id: conn.spec.title for conn in connections}
        health.render(
            dag_id=dag_id,
            manifest=manifest,
            syncs=sync_task_ids,
            titles=titles,
            transform_group=TRANSFORM_GROUP_ID,
            node_tasks={uid: dag.get_task(task_id) for task_id, uid in alerts.task_nodes.items()},
            run_builds=run_builds,
            built_by={
                uid: dag.get_task(f"{TRANSFORM_GROUP_ID}.{task_id}")
                for uid, task_id in build_of(run_builds).items()
                if settings.transform_mode == TransformMode.BUILD
            },
            settings=settings,
            project_dir=dbt_project_dir,
        )
    promises_dag(dag_id, manifest, sync_task_ids, titles, start_date, settings, TRANSFORM_GROUP_ID)
    return dag
