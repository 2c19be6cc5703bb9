"""Freshness promises: a dashboard with ``meta: {fresh_by: "07:00", fresh_by_timezone: ...}``
that no run made fresh in the 24 hours up to that time alerts its owner, once per deadline.

Checked where it can be known: by the dashboard's task at the end of every run (the alert
then names the cause), and by the ``<dag>__fresh_by`` DAG every 10 minutes (a run that
never ends, or never starts, misses a promise too; ``promises_dag``). An Airflow Variable per
dashboard holds the last deadline alerted, so the two never alert twice for one deadline.
A ``fresh_by`` that is not a time, or a ``fresh_by_timezone`` that is not a zone, keeps the
DAG from importing, the exposure named (``check_fresh_by``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, BaseOperator, Variable

from elt_platform.alerts.channels import send
from elt_platform.alerts.message import Alert
from elt_platform.dbt_manifest import Exposure, Manifest, load_manifest
from elt_platform.dependency_internals import airflow_setting
from elt_platform.errors import ConfigurationError, Problem
from elt_platform.health.records import URL_PREFIX
from elt_platform.health.rules import Assessment, Dashboard, parse_fresh_by, promise_deadline, promise_kept
from elt_platform.settings import Settings
from elt_platform.task_names import TRANSFORM_GROUP_ID

CHECK_SCHEDULE = "*/10 * * * *"


def _variable(dag_id: str, dashboard: str) -> str:
    return f"elt_fresh_by__{dag_id}__{dashboard}"


def page_url(dag_id: str, dashboard: str) -> str:
    base_url = airflow_setting("api", "base_url", fallback="") or ""
    return f"{base_url.rstrip('/')}{URL_PREFIX}/{dag_id}/{dashboard}"


def check_promise(
    dashboard: Dashboard,
    dag_id: str,
    events: Any,
    context: Any,
    settings: Settings,
    assessment: Assessment | None = None,
    now: datetime | None = None,
) -> bool:
    """Alert the owner if the latest deadline passed without a fresh run and nobody was told yet.

    ``events``: the dashboard Asset's events (Airflow's inlet events accessor), one per fresh run.
    """
    if not dashboard.fresh_by:
        return False
    deadline = promise_deadline(dashboard.fresh_by, dashboard.fresh_by_timezone, now or datetime.now(UTC))
    if deadline is None:
        return False
    window = events.after((deadline - timedelta(days=1)).isoformat()).before(deadline.isoformat())
    if promise_kept(deadline, [event.timestamp for event in window]):
        return False
    key = _variable(dag_id, dashboard.name)
    if Variable.get(key, default=None) == deadline.isoformat():
        return False
    if assessment is not None and assessment.causes:
        why = "; ".join(f"{c.kind} {c.name}: {c.message}" for c in assessment.causes)
    elif assessment is not None:
        why = f"{assessment.status} now, but only since this run, which ended after the deadline"
    else:
        why = "no run made it fresh in the 24 hours before; the health page says why"
    facts = [
        ("Dashboard", f"{dashboard.label} ({dashboard.url or dashboard.name})"),
        ("Owner", f"{dashboard.owner_name} <{dashboard.owner_email}>"),
        ("Promised", f"fresh by {dashboard.fresh_by} {dashboard.fresh_by_timezone}"),
        ("Deadline", deadline.isoformat()),
        ("Why", why),
    ]
    alert = Alert(
        "promise",
        f"Dashboard {dashboard.label} was not fresh by {dashboard.fresh_by}",
        facts,
        "",
        page_url(dag_id, dashboard.name),
    )
    send(alert, context, settings, to=[dashboard.owner_email] if dashboard.owner_email else None)
    Variable.set(key, deadline.isoformat())  # after the alert went: a failed one is tried again
    return True


class CheckPromises(BaseOperator):
    """Every promised dashboard's deadline against its Asset's events (one per fresh run)."""

    def __init__(
        self,
        *,
        watched_dag_id: str,
        manifest_path: str,
        syncs: dict[str, str],
        transform_group: str,
        settings: Settings,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.watched_dag_id = watched_dag_id
        self.manifest_path = manifest_path
        self.syncs = syncs
        self.transform_group = transform_group
        self.settings = settings  # the watched DAG's own: its alert channels

    def execute(self, context: Any) -> list[str]:
        from pathlib import Path

        from elt_platform.health.lineage import dashboards

        every = dashboards(load_manifest(Path(self.manifest_path)), self.syncs, self.transform_group)
        alerted = []
        for inlet in self.inlets:
            if not isinstance(inlet, Asset):
                continue
            dashboard = every.get(inlet.name.removeprefix(f"{self.watched_dag_id}."))
            if dashboard is None:
                continue
            if check_promise(dashboard, self.watched_dag_id, context["inlet_events"][inlet], context, self.settings):
                alerted.append(dashboard.name)
        self.log.info("Promises missed and alerted now: %s", ", ".join(alerted) or "none")
        return alerted


def check_fresh_by(manifest: Manifest) -> list[Exposure]:
    """The exposures that promise to be fresh by a time; ``ConfigurationError`` naming each one whose
    ``fresh_by`` or ``fresh_by_timezone`` cannot be read."""
    promised = [e for e in manifest.exposures.values() if e.fresh_by]
    problems = []
    for exposure in promised:
        try:
            parse_fresh_by(exposure.fresh_by, exposure.fresh_by_timezone)
        except ValueError as exc:
            where = f"exposure {exposure.name}, meta.{str(exc).split('=')[0]}"
            fix = 'e.g. meta: {fresh_by: "07:00", fresh_by_timezone: "Europe/Paris"}'
            problems.append(Problem(exposure.file or str(manifest.path), where, str(exc), fix))
    if problems:
        raise ConfigurationError(problems)
    return promised


def promises_dag(
    dag_id: str,
    manifest: Manifest,
    syncs: dict[str, str],
    titles: dict[str, str],
    start_date: datetime,
    settings: Settings,
    transform_group: str = TRANSFORM_GROUP_ID,
) -> DAG | None:
    """``<dag_id>__fresh_by``: checks every 10 minutes the dashboards that promise to be fresh by a time."""
    from elt_platform.health.publish import dashboard_asset  # which reads check_promise from here

    promised = check_fresh_by(manifest)
    if not promised:
        return None
    with DAG(
        dag_id=f"{dag_id}__fresh_by",
        schedule=CHECK_SCHEDULE,
        start_date=start_date,
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=False,  # a promise is watched from the start, with nobody to unpause it
        tags=["elt", "dashboards"],
        doc_md=f"Alerts each dashboard's owner once when {dag_id} has not made it fresh by its `fresh_by`.",
    ) as dag:
        CheckPromises(
            task_id="check_promises",
            watched_dag_id=dag_id,
            manifest_path=str(manifest.path),
            syncs=syncs,
            transform_group=transform_group,
            settings=settings,
            inlets=[dashboard_asset(dag_id, e, manifest, syncs, transform_group, titles) for e in promised],
            retries=0,
        )
    return dag
