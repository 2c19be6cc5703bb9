"""Every dashboard's health, read from Airflow's metadata database: for the pages, the JSON and ``elt health``.

What the runs recorded comes from the read model (``elt_platform.run_history``), which alone
reads the metadata database; here it is turned into the rules' inputs and assessed.

Dashboards are found through their Airflow Assets (group ``dashboard``): the DAG factory
declares one per dbt exposure, as the outlet of the task that publishes its health, with
the manifest and sync tasks it was rendered from in the asset's ``extra``. So the API
server needs no setting to find them, and parses no DAG.

Per request: two runs' task instances and build results per DAG, and 30 days of the
dashboard tasks' verdicts, in a handful of queries. Lineage is cached per manifest.

A registration that cannot be read (its extra malformed, its manifest missing or not a
manifest) shows as that one dashboard's ``unknown``, the reason its cause; the others render.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from airflow.sdk import DagRunState
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from elt_platform.alerts.message import ERROR_XCOM_KEY
from elt_platform.health import records
from elt_platform.health.lineage import dashboards as lineage_dashboards
from elt_platform.health.records import node_results, parse_time
from elt_platform.health.rules import (
    Assessment,
    Dashboard,
    Kind,
    PartState,
    RunOutcome,
    Status,
    TaskOutcome,
    assess,
    promise_deadline,
    promise_kept,
    status_since,
)
from elt_platform.run_history import Run, RunHistory, XComSelector
from elt_platform.transform.results import RESULTS_XCOM_KEY, reuse_saving

HISTORY_DAYS = 30
TYPICAL_RUNS = 10


class Unregistered(StrEnum):
    """A cause's kind beside the rules' ``Kind``: the dashboard's own registration cannot be read."""

    REGISTRATION = "registration"


REGISTRATION = Unregistered.REGISTRATION


class CauseView(BaseModel):
    kind: Kind | Unregistered
    name: str
    task_id: str
    message: str
    log_url: str
    needs_fix: bool


class NodeView(BaseModel):
    key: str
    kind: Kind
    name: str
    state: PartState
    task_id: str
    log_url: str
    parents: list[str]
    is_mart: bool  # the dashboard reads it directly


class PromiseView(BaseModel):
    fresh_by: str
    timezone: str
    deadline: datetime | None
    missed: bool


class DashboardHealth(BaseModel):
    """One dashboard's health: what the page, the badge, the JSON and ``elt health`` show."""

    dag_id: str
    name: str
    label: str
    url: str
    description: str
    owner: str
    owner_email: str
    status: Status
    refreshing: bool
    # While refreshing: the data loads (connection titles) this run has not finished yet.
    waiting_for: list[str] = []
    # The latest run is still going (a fresh dashboard may already hold its data).
    run_in_progress: bool = False
    run_id: str | None
    data_as_of: datetime | None
    sources_as_of: dict[str, datetime]
    since: datetime | None
    causes: list[CauseView]
    held_back: list[str]
    next_run: datetime | None
    # When it should be fresh again: the next run's start plus a typical run's duration.
    expected_fresh: datetime | None
    needs_fix: bool
    connections: list[str]
    promise: PromiseView | None
    # Its tables the latest run reused (nothing changed since their last build: ELT_BUILD_STATE), and
    # the dbt time building them and their tests took last time: what reusing them saved.
    reused: int = 0
    reused_seconds: float = 0.0
    # Only a dashboard's own page draws it: the JSON leaves it out (``health_json``), so reading the JSON back gets [].
    lineage: list[NodeView] = []


@dataclass(frozen=True)
class Registration:
    dag_id: str
    task_id: str
    asset_id: int
    asset: str  # the Asset's name
    exposure: str
    manifest: str
    syncs: tuple[tuple[str, str], ...]
    group_id: str
    titles: dict[str, str]  # sync task id -> the connection's title, for people
    problem: str = ""  # why its extra cannot be read, naming the asset and the fix

    @property
    def name(self) -> str:
        """The dashboard's name as its asset has it (``<dag_id>.<exposure>``), whether its extra reads or not."""
        return self.asset.removeprefix(f"{self.dag_id}.")


class _Extra(BaseModel):
    """The ``elt`` part of a dashboard asset's extra, as ``publish.dashboard_asset`` writes it."""

    model_config = ConfigDict(strict=True)

    exposure: str = Field(min_length=1)
    manifest: str = Field(min_length=1)
    group: str = Field(min_length=1)
    syncs: dict[str, str] = {}
    titles: dict[str, str] = {}


class Unreadable(Exception):
    """A dashboard's registration that cannot be read; the message names the asset or manifest and the fix."""


def registrations(history: RunHistory | Any) -> list[Registration]:
    """Every dashboard some DAG publishes, from the assets the DAG factory declared (an ``elt`` key in
    the extra; a ``dashboard`` asset without one is someone else's). ``history``: the read model, or
    a session of the metadata database the caller manages."""
    found = [
        _registration(a.asset_id, a.name, a.extra["elt"], a.dag_id, a.task_id)
        for a in RunHistory.of(history).outlet_assets(records.ASSET_GROUP)
        if isinstance(a.extra, dict) and "elt" in a.extra
    ]
    return sorted(found, key=lambda r: (r.dag_id, r.name))


def _registration(asset_id: int, asset: str, elt: Any, dag_id: str, task_id: str) -> Registration:
    try:
        extra = _Extra.model_validate(elt)
    except ValidationError as error:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'elt'}: {e['msg']}" for e in error.errors())
        problem = (
            f"The extra of asset {asset} (task {task_id}) is not a dashboard registration: {fields}. "
            f"Fix: let the DAG processor parse DAG {dag_id} again with this platform's DAG factory, "
            "which writes it; an asset of group 'dashboard' not made by it must not have an 'elt' key."
        )
        return Registration(dag_id, task_id, asset_id, asset, "", "", (), "", {}, problem)
    syncs = tuple(sorted(extra.syncs.items()))
    return Registration(
        dag_id, task_id, asset_id, asset, extra.exposure, extra.manifest, syncs, extra.group, extra.titles
    )


@lru_cache(maxsize=32)
def _lineage(
    manifest: str, mtime_ns: int, syncs: tuple[tuple[str, str], ...], group_id: str
) -> dict[str, Dashboard] | str:
    """Every exposure's lineage, or why the manifest cannot be read: a broken manifest is not read
    again on every request, only once it changed."""
    from elt_platform.dbt_manifest import load_manifest

    try:
        return lineage_dashboards(load_manifest(Path(manifest)), dict(syncs), group_id)
    except OSError as error:
        return _cannot_read(manifest, error)
    except ValueError as error:  # load_manifest's ManifestError, naming the file and the fix
        return str(error)
    except (LookupError, TypeError, AttributeError) as error:
        return (
            f"{manifest}: not shaped like a dbt manifest ({type(error).__name__}: {error}). "
            "Fix: rebuild it with `dbt parse`, unedited."
        )


def _cannot_read(manifest: str, error: OSError) -> str:
    return (
        f"The dbt manifest {manifest} cannot be read ({error.strerror or 'not a file'}). Fix: build it with "
        "`dbt parse` (`make manifest` for the bundled project) where the DAG processor read it, and deploy "
        "the dbt project to the API server at the same path, readable by its user."
    )


def lineage_of(registration: Registration) -> Dashboard:
    """The dashboard's lineage; ``Unreadable`` when its registration or manifest cannot be read."""
    if registration.problem:
        raise Unreadable(registration.problem)
    try:
        mtime = Path(registration.manifest).stat().st_mtime_ns
    except OSError as error:
        raise Unreadable(_cannot_read(registration.manifest, error)) from None
    every = _lineage(registration.manifest, mtime, registration.syncs, registration.group_id)
    if isinstance(every, str):
        raise Unreadable(every)
    if registration.exposure not in every:
        raise Unreadable(
            f"The dbt manifest {registration.manifest} has no exposure {registration.exposure!r}, which asset "
            f"{registration.asset} names. Fix: let the DAG processor parse DAG {registration.dag_id} "
            "again from this manifest (the exposure was renamed or removed since)."
        )
    return every[registration.exposure]


def run_outcome(history: RunHistory, run: Run, group_id: str) -> RunOutcome:
    """One run's task outcomes, their errors and its builds' results (one build per set of loads)."""
    values = history.xcoms(run.dag_id, run.run_id, XComSelector(ERROR_XCOM_KEY), XComSelector(RESULTS_XCOM_KEY))
    results: dict = {}
    for (task_id, key), value in sorted(values.items()):
        if key == RESULTS_XCOM_KEY and task_id.startswith(f"{group_id}.") and isinstance(value, dict):
            results |= value
    tasks = {
        ti.task_id: TaskOutcome(
            state=ti.state.value if ti.state else None,
            try_number=ti.try_number,
            log_url=ti.log_url,
            ended_at=ti.end_date,
            message=str(values.get((ti.task_id, ERROR_XCOM_KEY)) or ""),
        )
        for ti in history.task_instances(run.dag_id, run.run_id)
    }
    return RunOutcome(
        run_id=run.run_id,
        state=run.state.value if run.state else "",
        started_at=run.start_date,
        ended_at=run.end_date,
        tasks=tasks,
        results=node_results(results),
    )


def _verdicts(
    history: RunHistory, dag_id: str, task_ids: list[str], now: datetime
) -> dict[str, list[tuple[str, dict, datetime]]]:
    """Each dashboard task's verdicts of the last 30 days, newest first: (run, verdict, run end)."""
    verdicts: dict[str, list[tuple[str, dict, datetime]]] = {}
    for recorded in history.xcom_history(dag_id, task_ids, records.VERDICT_KEY, now - timedelta(days=HISTORY_DAYS)):
        verdict = recorded.value
        if isinstance(verdict, dict) and verdict.get("status") in set(Status):
            verdicts.setdefault(recorded.task_id, []).append((recorded.run_id, verdict, recorded.run_ended_at))
    return verdicts


def _typical_duration(runs: list[Run]) -> timedelta | None:
    done = [r.duration for r in runs if r.state == DagRunState.SUCCESS and r.duration is not None]
    durations = [d.total_seconds() for d in done][:TYPICAL_RUNS]
    return timedelta(seconds=statistics.median(durations)) if durations else None


def report(
    history: RunHistory | Any, now: datetime | None = None, dag_id: str | None = None, lineage: bool = False
) -> list[DashboardHealth]:
    """Every registered dashboard's health (of one DAG with ``dag_id``), as of ``now``; with
    ``lineage``, each part's state too (for a dashboard's own page). ``history``: the read model,
    or a session of the metadata database the caller manages."""
    history = RunHistory.of(history)
    now = now or datetime.now(UTC)
    regs = [r for r in registrations(history) if dag_id is None or r.dag_id == dag_id]
    found: list[DashboardHealth] = []
    events = history.asset_event_times([r.asset_id for r in regs], now - timedelta(days=2))
    for dag in sorted({r.dag_id for r in regs}):
        of_dag = [r for r in regs if r.dag_id == dag]
        facts = history.dag(dag)
        next_run = facts.next_run if facts else None
        readable = []
        for reg in of_dag:
            try:
                readable.append((reg, lineage_of(reg)))
            except Unreadable as error:
                found.append(_unreadable(reg, str(error), next_run))
        if not readable:
            continue
        # A run not started yet (queued behind max_active_runs) has nothing to say yet.
        history_runs = [r for r in history.runs(dag, limit=TYPICAL_RUNS * 3) if r.start_date is not None]
        latest = history_runs[:2]
        group_id = readable[0][0].group_id
        outcomes = [run_outcome(history, run, group_id) for run in latest]
        verdicts = _verdicts(history, dag, [r.task_id for r, _ in readable], now)
        typical = _typical_duration(history_runs)
        for reg, dashboard in readable:
            found.append(
                _health(
                    reg,
                    dashboard,
                    outcomes,
                    verdicts.get(reg.task_id, []),
                    next_run,
                    typical,
                    events.get(reg.asset_id, []),
                    now,
                    lineage,
                )
            )
    return sorted(found, key=lambda h: (h.dag_id, h.name))


def _unreadable(reg: Registration, problem: str, next_run: datetime | None) -> DashboardHealth:
    """A dashboard whose registration cannot be read: unknown, the reason its one cause."""
    cause = CauseView(
        kind=REGISTRATION, name=reg.asset, task_id=reg.task_id, message=problem, log_url="", needs_fix=True
    )
    return DashboardHealth(
        dag_id=reg.dag_id,
        name=reg.name,
        label=reg.name,
        url="",
        description="",
        owner="",
        owner_email="",
        status=Status.UNKNOWN,
        refreshing=False,
        run_id=None,
        data_as_of=None,
        sources_as_of={},
        since=None,
        causes=[cause],
        held_back=[],
        next_run=next_run,
        expected_fresh=None,
        needs_fix=True,
        connections=[],
        promise=None,
        lineage=[],
    )


def _health(
    reg: Registration,
    dashboard: Dashboard,
    outcomes: list[RunOutcome],
    verdicts: list[tuple[str, dict, datetime]],
    next_run: datetime | None,
    typical: timedelta | None,
    fresh_times: list[datetime],
    now: datetime,
    with_lineage: bool,
) -> DashboardHealth:
    latest = outcomes[0] if outcomes else None
    # What the tables held before the latest run's attempt: the newest recorded verdict (a cleared
    # run running again has its own), else the run before, assessed now.
    previous = records.previous_assessment(verdicts[0][1], verdicts[0][0]) if verdicts else None
    if previous is None and len(outcomes) > 1:
        previous = assess(dashboard, outcomes[1])
    assessment: Assessment = assess(dashboard, latest, previous)
    # The streak of runs in this status, the latest as assessed now (its verdict may not be recorded yet).
    streak = [
        (Status(v["status"]), ended) for run_id, v, ended in verdicts if latest is None or run_id != latest.run_id
    ]
    if latest is not None and latest.ended_at and assessment.run_id == latest.run_id:
        streak.insert(0, (assessment.status, latest.ended_at))
    since = status_since(assessment.status, streak) if assessment.status is not Status.UNKNOWN else None
    needs_fix = any(c.needs_fix for c in assessment.causes)
    if latest is not None and assessment.refreshing and latest.started_at and typical:
        expected = latest.started_at + typical  # this run, if it goes as usual
    elif assessment.status is Status.FRESH or needs_fix or next_run is None:
        expected = None
    else:
        expected = next_run + (typical or timedelta())
    promise = None
    if dashboard.fresh_by:
        deadline = promise_deadline(dashboard.fresh_by, dashboard.fresh_by_timezone, now)
        promise = PromiseView(
            fresh_by=dashboard.fresh_by,
            timezone=dashboard.fresh_by_timezone,
            deadline=deadline,
            missed=deadline is not None and not promise_kept(deadline, fresh_times),
        )
    reused, reused_seconds = reuse_saving(latest.results if latest else {}, dashboard.parts)
    return DashboardHealth(
        dag_id=reg.dag_id,
        name=dashboard.name,
        label=dashboard.label,
        url=dashboard.url,
        description=dashboard.description,
        owner=dashboard.owner_name,
        owner_email=dashboard.owner_email,
        status=assessment.status,
        refreshing=assessment.refreshing,
        waiting_for=[reg.titles.get(name, name) for name in assessment.waiting_for],
        run_in_progress=latest is not None and latest.in_progress,
        run_id=assessment.run_id,
        data_as_of=assessment.data_as_of,
        sources_as_of=dict(assessment.sources_as_of),
        since=since,
        causes=[
            CauseView(
                kind=c.kind,
                name=reg.titles.get(c.name, c.name),
                task_id=c.task_id,
                message=c.message,
                log_url=c.log_url,
                needs_fix=c.needs_fix,
            )
            for c in assessment.causes
        ],
        held_back=list(assessment.held_back),
        next_run=next_run,
        expected_fresh=expected,
        needs_fix=needs_fix,
        connections=sorted(reg.titles.get(p.name, p.name) for p in dashboard.connections),
        promise=promise,
        reused=reused,
        reused_seconds=reused_seconds,
        lineage=[
            NodeView(
                key=part.key,
                kind=part.kind,
                name=reg.titles.get(part.name, part.name),
                state=assessment.part_states.get(key, PartState.PENDING),
                task_id=part.task_id,
                log_url=(latest.tasks.get(part.task_id, TaskOutcome(None)).log_url if latest else ""),
                parents=[p for p in part.parents if p in dashboard.parts],
                is_mart=key in dashboard.marts,
            )
            for key, part in dashboard.parts.items()
            if with_lineage and part.kind is not Kind.TEST
        ],
    )


def health_json(items: list[DashboardHealth], indent: int | None = None) -> str:
    """The health JSON, the one home of its shape: the API server's ``/dashboards/api/health`` and
    ``elt health --json`` (``indent``, for people)."""
    return json.dumps({"dashboards": [h.model_dump(mode="json", exclude={"lineage"}) for h in items]}, indent=indent)


__all__ = ["DashboardHealth", "health_json", "parse_time", "registrations", "report"]
