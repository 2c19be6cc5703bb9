"""The ``dashboards`` task group: each dashboard's health at the end of a run, as Airflow Assets.

- ``dashboards.<exposure>``: as soon as the marts it reads have ended (trigger rule
  ``all_done``), whatever else the run is still loading or building, applies the status
  rules to this run and records the verdict. A fresh dashboard ends ``success`` and so emits
  its Asset's event (extra: data as of, rows per mart, run); a stale or broken one ends
  ``skipped``, its log saying why, and emits nothing.
- ``dashboards.marts``: once every mart of every dashboard has ended, counts their rows and
  emits an event for each mart whose whole upstream this run refreshed (through an
  ``AssetAlias``, so that only those get one). A BI extract refresh or a reverse-ETL DAG can be scheduled on either.
- A dashboard that declares ``meta: {fresh_by: "07:00"}`` and is not fresh by then alerts
  its owner, once per deadline (``promises``).

Parsing adds only these tasks and their edges: the rules run when the task does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, AssetAlias, BaseOperator, TaskGroup, TriggerRule
from airflow.sdk.exceptions import AirflowRescheduleException, AirflowSkipException
from airflow.triggers.base import StartTriggerArgs

from elt_platform.dbt_manifest import Exposure, Manifest, load_manifest
from elt_platform.dbt_manifest.graph import marts_of, tests_with_own_task, upstream
from elt_platform.dependency_internals import link_tasks
from elt_platform.health import lineage, records
from elt_platform.health.lineage import tables
from elt_platform.health.promises import check_promise
from elt_platform.health.rules import Assessment, Dashboard, RunOutcome, Status, assess
from elt_platform.health.verdict_ready import must_end_first, not_ended, run_so_far
from elt_platform.health.verdict_trigger import VERDICT_READY_TRIGGER, VerdictReadyTrigger
from elt_platform.settings import AIRFLOW_DEFAULT_POOL, Settings
from elt_platform.task_names import disambiguated, task_id_part
from elt_platform.task_states import ENDED
from elt_platform.transform.builds import Build
from elt_platform.warehouse import count_rows

GROUP_ID = "dashboards"
MARTS_TASK = "marts"
# How often a dashboard's task looks again, without a triggerer (``airflow dags test``).
RECHECK_SECONDS = 2
# Between reads of the task states it waits for, in the triggerer.
DASHBOARD_POLL_SECONDS = 1.0
# Deferred again from a worker (only if the run changed under it, a task cleared), it resumes no sooner:
# the scheduler must first have read that worker's exit (Airflow 3.3 fails a task queued again before).
RESUME_AFTER_SECONDS = 5.0


def dashboard_asset(
    dag_id: str, exposure: Exposure, manifest: Manifest, syncs: dict[str, str], group: str, titles: dict[str, str]
) -> Asset:
    """The dashboard as an Asset. Its extra tells the health pages where its lineage comes from:
    the manifest, the sync task loading each dbt source, the transform group, the syncs' titles."""
    extra = {
        "elt": {
            "exposure": exposure.name,
            "manifest": str(manifest.path),
            "syncs": syncs,
            "group": group,
            "titles": titles,
        }
    }
    return Asset(
        name=f"{dag_id}.{exposure.name}",
        uri=f"dbt-exposure://{dag_id}/{exposure.name}",
        group=records.ASSET_GROUP,
        extra=extra,
    )


def table_asset(dag_id: str, name: str) -> Asset:
    return Asset(name=f"{dag_id}.{name}", uri=f"dbt-model://{dag_id}/{name}", group="table")


class _HealthTask(BaseOperator):
    """Applies the status rules to this run, from the Task SDK (no metadata database access)."""

    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        manifest_path: str,
        syncs: dict[str, str],
        transform_group: str,
        results_from: list[str],
        settings: Settings,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.manifest_path = manifest_path
        self.syncs = syncs
        self.transform_group = transform_group
        self.results_from = results_from  # the build tasks whose dbt results tell what dbt passed
        self.settings = settings  # the DAG's own (its warehouse connection, alert channels), as its callbacks

    def _manifest(self) -> Manifest:
        return load_manifest(Path(self.manifest_path))


def _extra(assessment: Assessment, dashboard: Dashboard, run: RunOutcome, rows: dict[str, int]) -> dict[str, Any]:
    """What a consumer of the asset may want: how recent the data is and how many rows. Never values."""
    as_of = assessment.data_as_of
    marts = [dashboard.parts[m].name for m in dashboard.marts if m in dashboard.parts]
    return {
        "data_as_of": as_of.isoformat() if as_of else None,
        "rows": {name: rows[name] for name in marts if name in rows},
        "run_id": run.run_id,
    }


class PublishMarts(_HealthTask):
    """Counts each mart's rows, and emits an asset event for each mart whose whole upstream
    this run refreshed (through an ``AssetAlias``: only those get one). Returns the counts."""

    def __init__(self, *, alias: str, marts: list[str], project_dir: str, **kwargs: Any):
        super().__init__(outlets=[AssetAlias(alias)], **kwargs)
        self.alias = alias
        self.marts = marts
        self.project_dir = project_dir  # a view reading files by relative path resolves them from there

    def execute(self, context: Any) -> dict[str, int]:
        manifest = self._manifest()
        every = tables(manifest, self.marts, self.syncs, self.transform_group)
        run = run_so_far(context["ti"], list(every.values()), self.results_from, state="ended")
        built = {manifest.models[uid].display_name: manifest.models[uid] for uid in self.marts}
        assessed = {name: assess(table, run) for name, table in every.items()}
        fresh = [name for name, a in sorted(assessed.items()) if a.status is Status.FRESH]
        counted = {n: (built[n].schema, built[n].alias) for n in fresh if n in built}
        rows = count_rows(self.settings, counted, Path(self.project_dir))
        for name in fresh:
            context["outlet_events"][AssetAlias(self.alias)].add(
                table_asset(self.dag_id, name), extra=_extra(assessed[name], every[name], run, rows)
            )
        for name, assessment in sorted(assessed.items()):
            said = f"{rows.get(name, 'uncounted')} rows, asset event" if name in fresh else "no asset event"
            self.log.info("%s: %s, %s.", name, assessment.status, said)
        return rows


class PublishDashboardHealth(_HealthTask):
    """One dashboard's verdict for this run; its Asset's event when it is fresh.

    It waits in the triggerer (no worker) until its verdict can be told (``verdict_ready``): its
    marts' builds have ended, and dbt passed every part it reads (fresh at once, their tasks
    report the same a few scheduler turns later) or every part's task has ended. Its
    upstream tasks (the builds, its marts' and checks' tasks) only place it in the graph, so that
    clearing a model with its downstream runs it again: it starts at once (trigger rule
    ``always``) and waits for what it must."""

    def __init__(self, *, exposure: str, project_dir: str, waits_for: list[str], poll_seconds: float, **kwargs: Any):
        super().__init__(trigger_rule=TriggerRule.ALWAYS, **kwargs)
        self.exposure = exposure
        self.project_dir = project_dir  # a view reading files by relative path resolves them from there
        self.waits_for = sorted(waits_for)  # the builds of its marts (per-model mode: their tasks)
        self.poll_seconds = poll_seconds
        self.start_from_trigger = True
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=VERDICT_READY_TRIGGER,
            trigger_kwargs=self._trigger().serialize()[1],
            next_method="execute_complete",
            next_kwargs=None,
            timeout=None,
        )

    def execute(self, context: Any) -> None:
        """Reached only when the task did not start in the triggerer (``airflow dags test``)."""
        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=self.waits_for, run_ids=[ti.run_id])
        if any(states.get(ti.run_id, {}).get(t) not in ENDED for t in self.waits_for) or not self.decide(context):
            raise AirflowRescheduleException(datetime.now(UTC) + timedelta(seconds=RECHECK_SECONDS))

    def execute_complete(self, context: Any, event: Any = None) -> None:
        """On a worker, once the verdict can be told: publish it. Should a task have been cleared
        since (the run changed under it), wait in the triggerer again."""
        self.decide(context, waiting_for=self._wait_again)  # publishes, or defers

    def _trigger(self, not_before_seconds: float = 0.0) -> VerdictReadyTrigger:
        dashboard = {
            "manifest_path": self.manifest_path,
            "exposure": self.exposure,
            "syncs": self.syncs,
            "transform_group": self.transform_group,
        }
        return VerdictReadyTrigger(self.waits_for, dashboard, self.results_from, self.poll_seconds, not_before_seconds)

    def _wait_again(self, task_ids: list[str]) -> None:
        self.defer(trigger=self._trigger(not_before_seconds=RESUME_AFTER_SECONDS), method_name="execute_complete")

    def decide(self, context: Any, waiting_for: Callable[[list[str]], None] | None = None) -> bool:
        """Publish the verdict if it can be told now, and say so; else hand the parts that have not
        ended to ``waiting_for`` (or return False)."""
        manifest = self._manifest()
        dashboard = lineage.dashboard(manifest, self.exposure, self.syncs, self.transform_group)
        run = run_so_far(context["ti"], [dashboard], self.results_from)
        waiting = must_end_first(dashboard, run)
        if waiting:
            self.log.info("Not decided yet: waiting for %s to end.", ", ".join(waiting))
            if waiting_for is not None:
                waiting_for(waiting)
            return False
        if not not_ended(dashboard, run):
            run = replace(run, state="ended")
        self._publish(context, manifest, dashboard, run, assess(dashboard, run, self._previous(context)))
        return True

    def _publish(
        self, context: Any, manifest: Manifest, dashboard: Dashboard, run: RunOutcome, assessment: Assessment
    ) -> None:
        asset = next(o for o in self.outlets if isinstance(o, Asset))
        context["ti"].xcom_push(key=records.VERDICT_KEY, value=records.verdict(assessment))
        if assessment.status is Status.FRESH:
            marts = {manifest.models[uid].display_name: manifest.models[uid] for uid in dashboard.marts}
            rows = count_rows(self.settings, {n: (m.schema, m.alias) for n, m in marts.items()}, Path(self.project_dir))
            extra = _extra(assessment, dashboard, run, rows)
            context["outlet_events"][asset].extra = extra  # emitted when this task succeeds
            self.log.info("%s is fresh: data as of %s, rows %s.", dashboard.label, extra["data_as_of"], extra["rows"])
        self._check_promise(dashboard, context["inlet_events"][asset], context, assessment)
        if assessment.status is not Status.FRESH:
            why = "; ".join(f"{c.kind} {c.name}: {c.message}" for c in assessment.causes)
            raise AirflowSkipException(f"{dashboard.label} is {assessment.status}: {why}. No asset event.")

    def _previous(self, context: Any) -> Assessment | None:
        """What reached the dashboard before, as the last run's verdict recorded it."""
        ti = context["ti"]
        verdict = ti.xcom_pull(task_ids=ti.task_id, key=records.VERDICT_KEY, include_prior_dates=True)
        return records.previous_assessment(verdict)

    def _check_promise(self, dashboard: Dashboard, events: Any, context: Any, assessment: Assessment) -> None:
        """A failed alert must not cost the dashboard its asset event: logged, and tried again next time."""
        try:
            check_promise(dashboard, self.dag_id, events, context, self.settings, assessment)
        except Exception:
            self.log.exception("Could not check or alert the fresh_by promise of %s", dashboard.label)


def render(
    *,
    dag_id: str,
    manifest: Manifest,
    syncs: dict[str, str],
    titles: dict[str, str],
    transform_group: str,
    node_tasks: dict[str, BaseOperator],
    run_builds: list[Build],
    built_by: dict[str, BaseOperator],
    settings: Settings,
    project_dir: Path,
) -> TaskGroup | None:
    """The ``dashboards`` group, in the DAG being built; ``node_tasks`` maps dbt unique_ids to their
    tasks, ``built_by`` to the build that builds them (none in the per-model mode); ``run_builds``
    tells each node's loads."""
    if not manifest.exposures:
        return None
    common = {
        "manifest_path": str(manifest.path),
        "syncs": syncs,
        "transform_group": transform_group,
        "results_from": [f"{transform_group}.{build.task_id}" for build in run_builds],
        "settings": settings,
        "retries": 0,
    }
    marts = sorted({uid for e in manifest.exposures.values() for uid in marts_of(manifest, e)})
    loads = {uid: set(build.loads) for build in run_builds for uid in build.nodes}
    with TaskGroup(GROUP_ID, tooltip="Each dashboard's health after the run; an Asset event when fresh") as group:
        publish_marts = PublishMarts(
            task_id=MARTS_TASK,
            task_display_name="marts (rows, asset events)",
            alias=f"{dag_id}.marts",
            marts=marts,
            project_dir=str(project_dir),
            trigger_rule=TriggerRule.ALL_DONE,
            pool=settings.warehouse_pool,  # counts rows: reads the warehouse once its writers are done
            doc_md="Counts each mart's rows; an asset event for each mart whose whole upstream the run refreshed.",
            **common,
        )
        for task in _tasks(_read_by(manifest, marts), node_tasks):
            task >> publish_marts
        for exposure in sorted(manifest.exposures.values(), key=lambda e: e.name):
            asset = dashboard_asset(dag_id, exposure, manifest, syncs, transform_group, titles)
            reads = [table_asset(dag_id, manifest.models[uid].display_name) for uid in marts_of(manifest, exposure)]
            # It waits for the builds of its own marts, whatever else the run is still loading or building;
            # it follows its marts' tasks too, so that clearing one with its downstream runs it again.
            read = _read_by(manifest, list(marts_of(manifest, exposure)), loads)
            waits_for = _tasks(read, built_by or node_tasks)
            task = PublishDashboardHealth(
                task_id=_dashboard_task(exposure),
                task_display_name=f"dashboard {exposure.label}",
                exposure=exposure.name,
                project_dir=str(project_dir),
                waits_for=[t.task_id for t in waits_for],
                poll_seconds=DASHBOARD_POLL_SECONDS,
                outlets=[asset],
                # Its own events tell when it was last fresh (its fresh_by promise); its marts', what it reads.
                inlets=[asset, *reads],
                pool=AIRFLOW_DEFAULT_POOL,  # counts its marts' rows under the file's lock, in no writer's slot
                doc_md=f"Health of the dashboard **{exposure.label}**: success (and an asset event) when fresh.",
                **common,
            )
            for upstream_task in {id(t): t for t in (*waits_for, *_tasks(read, node_tasks))}.values():
                link_tasks(upstream_task, task)
    return group


def _read_by(manifest: Manifest, marts: list[str], loads: Mapping[str, set[str]] | None = None) -> list[str]:
    """``marts``, and the tests reading several nodes upstream of them that need no other load than
    the marts do: once their tasks have ended, so has every part of what the marts hold (a mart's
    task ends once its upstream tasks have, or is held back, upstream_failed).

    A test that also reads what another connection loads (a relationships test from a ticket to the
    customers of the shop) is not among them: it runs once that load lands too, and the health pages
    count it when it has. Without ``loads`` (each node's), every such test is."""
    loads = loads or {}
    needed = set().union(*(loads.get(uid, set()) for uid in marts))
    read = upstream(manifest, marts)
    checks = [
        t.unique_id
        for t in tests_with_own_task(manifest)
        if read.intersection(t.depends_on) and loads.get(t.unique_id, set()) <= needed
    ]
    return [*marts, *checks]


def _tasks(uids: list[str], by_node: dict[str, BaseOperator]) -> list[BaseOperator]:
    """The tasks of ``uids`` in ``by_node``, each once."""
    return list({id(task): task for uid in uids if (task := by_node.get(uid)) is not None}.values())


def _dashboard_task(exposure: Exposure) -> str:
    task_id = task_id_part(exposure.name)
    return disambiguated(task_id, exposure.unique_id) if task_id == MARTS_TASK else task_id


__all__ = ["GROUP_ID", "dashboard_asset", "render", "table_asset"]
