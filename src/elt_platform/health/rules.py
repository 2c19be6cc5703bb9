"""The status rules of a dashboard's health, from one DAG run's outcome: pure functions, no I/O.

A dashboard (a dbt exposure) reads a set of *parts*: the syncs that load its sources, the
source tables, every model upstream of it, and the tests on those. For one run:

- **broken**: a test of ``error`` severity on an upstream node failed (or errored) on data
  the run built. The table holds the new data, and that data failed a check: the
  dashboard may show wrong numbers.
- **stale**: otherwise, something upstream did not refresh in this run, so the dashboard
  still shows the previous run's data: a sync that did not succeed, a model that failed
  (dbt's error is the reason), a source past its freshness ``error_after``, or a node the
  run never reached. Models held back by a failure are listed.
- **fresh**: every upstream sync, source check, model and test succeeded in the run.
- **unknown**: no run has reached it yet.

While a run is in progress the status stays the previous run's (``refreshing`` is set, and
``waiting_for`` names the loads not ended yet) until this run has shown a failure or
refreshed everything upstream: a dashboard whose own loads and models are done is fresh
while the run goes on loading what other dashboards read.

The same rules whatever the transform mode: they read Airflow task states, plus dbt's
per-node results where the mode records them (``build``), which tell a failed test on
built data (broken) from a model that failed to build (stale). Without them a failed
model task counts as stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow.sdk import DagRunState

from elt_platform.dbt_manifest.graph import children_of, walk
from elt_platform.task_states import ENDED, FAILED, HELD_BACK, SUCCEEDED
from elt_platform.transform.results import FAILED_STATUSES, PASSED_STATUSES


class Status(StrEnum):
    FRESH = "fresh"
    STALE = "stale"
    BROKEN = "broken"
    UNKNOWN = "unknown"


class PartState(StrEnum):
    """A part's state in the run, as the lineage picture colours it."""

    REFRESHED = "refreshed"
    FAILED = "failed"  # a root cause: the sync, model or check that did not succeed
    TEST_FAILED = "test_failed"  # built, but a check on its data failed
    HELD_BACK = "held_back"  # not refreshed because something upstream failed
    PENDING = "pending"  # not ended yet in this run
    NOT_RUN = "not_run"  # the run ended without reaching it


class Kind(StrEnum):
    CONNECTION = "connection"
    SOURCE = "source"
    MODEL = "model"
    TEST = "test"


_NOT_REFRESHED = "not refreshed in this run: held back, its log says by what"
# dbt statuses, per node, in a build's results: as the build publishes them.
DBT_PASSED = PASSED_STATUSES
DBT_TEST_FAILED = FAILED_STATUSES


@dataclass(frozen=True)
class Part:
    """Something a dashboard reads, directly or not, and the Airflow task that reports it."""

    key: str  # the dbt unique_id; for a connection, its sync task id
    kind: Kind
    name: str
    # The Airflow task whose state tells its outcome; "" for a test that runs in its model's task.
    task_id: str
    parents: tuple[str, ...] = ()  # keys of the parts it reads (a test: the nodes it checks)


@dataclass(frozen=True)
class Dashboard:
    name: str
    label: str
    url: str
    owner_name: str
    owner_email: str
    description: str
    fresh_by: str
    fresh_by_timezone: str
    marts: tuple[str, ...]  # the models it reads directly
    parts: Mapping[str, Part]  # every part upstream of it, by key

    @property
    def connections(self) -> list[Part]:
        return [p for p in self.parts.values() if p.kind is Kind.CONNECTION]


@dataclass(frozen=True)
class TaskOutcome:
    state: str | None  # the Airflow state; None before the scheduler has looked at it
    try_number: int = 0
    log_url: str = ""
    ended_at: datetime | None = None
    message: str = ""  # the error of its last try, where one was recorded


@dataclass(frozen=True)
class NodeResult:
    """dbt's own result for a node in the run's build."""

    status: str
    message: str = ""
    max_loaded_at: datetime | None = None  # a source: its newest loaded_at_field value
    seconds: float | None = None  # dbt's time building it; reused: its last build's


@dataclass(frozen=True)
class RunOutcome:
    """What one DAG run recorded: task outcomes and dbt's results."""

    run_id: str
    state: str  # queued, running, success, failed
    started_at: datetime | None
    ended_at: datetime | None
    tasks: Mapping[str, TaskOutcome]
    results: Mapping[str, NodeResult] = field(default_factory=dict)

    @property
    def in_progress(self) -> bool:
        return self.state in {DagRunState.QUEUED, DagRunState.RUNNING}


@dataclass(frozen=True)
class Cause:
    """Why a dashboard is not fresh: the exact part, dbt's (or the task's) message, and its log."""

    kind: Kind
    key: str
    name: str
    task_id: str
    message: str
    log_url: str = ""
    # A retry of the same code on the same data fails again: someone must fix it.
    needs_fix: bool = False


@dataclass(frozen=True)
class Assessment:
    status: Status
    run_id: str | None
    causes: tuple[Cause, ...] = ()
    held_back: tuple[str, ...] = ()
    part_states: Mapping[str, PartState] = field(default_factory=dict)
    refreshing: bool = False
    # Per source table, the newest loaded_at value that reached the dashboard.
    sources_as_of: Mapping[str, datetime] = field(default_factory=dict)
    # While refreshing: the connections whose load has not ended yet in this run.
    waiting_for: tuple[str, ...] = ()

    @property
    def data_as_of(self) -> datetime | None:
        """Every source it reads holds data loaded up to at least this time: the oldest of their newest."""
        return min(self.sources_as_of.values(), default=None)


def _part_state(part: Part, run: RunOutcome) -> tuple[PartState, Cause | None]:
    outcome = run.tasks.get(part.task_id, TaskOutcome(None))
    own = run.results.get(part.key)
    state = outcome.state
    if state in SUCCEEDED:
        return PartState.REFRESHED, None
    if state not in ENDED and own is not None and own.status in DBT_PASSED:
        return PartState.REFRESHED, None  # dbt built it in this run; its task has not reported it yet
    if state not in ENDED:
        return (PartState.NOT_RUN, _not_run(part, outcome)) if not run.in_progress else (PartState.PENDING, None)
    if state in HELD_BACK:
        return PartState.HELD_BACK, None
    if state == "removed":
        return PartState.NOT_RUN, _not_run(part, outcome)
    # The task's own error after its last try (dbt's, or the sync's) first: dbt's event in the build
    # may say no more than "Finished running node".
    message = outcome.message or (own.message if own else "") or f"task {part.task_id} failed; its log has the error"
    if part.kind is Kind.CONNECTION:
        return PartState.FAILED, Cause(Kind.CONNECTION, part.key, part.name, part.task_id, message, outcome.log_url)
    if part.kind is Kind.SOURCE:
        if own and own.status in {"error", "runtime error"}:
            message = own.message or "past its freshness error_after"
        return PartState.FAILED, Cause(Kind.SOURCE, part.key, part.name, part.task_id, message, outcome.log_url)
    if part.kind is Kind.TEST or (own is not None and own.status in DBT_PASSED):
        return PartState.TEST_FAILED, None  # which test, and its message, come from the test parts
    return PartState.FAILED, Cause(
        part.kind, part.key, part.name, part.task_id, message, outcome.log_url, needs_fix=_is_deterministic(message)
    )


def _not_run(part: Part, outcome: TaskOutcome) -> Cause:
    return Cause(part.kind, part.key, part.name, part.task_id, "the run ended before it ran", outcome.log_url)


def _is_deterministic(message: str) -> bool:
    from elt_platform.transform.dbt_errors import is_deterministic

    return is_deterministic(message)


def _failed_test(test: Part, dashboard: Dashboard, run: RunOutcome) -> Cause | None:
    """A test of error severity that failed on data the run built."""
    result = run.results.get(test.key)
    outcome = run.tasks.get(test.task_id, TaskOutcome(None))
    # The task that reports it (its own, or its model's) passed: on a later try, alone, if dbt's
    # build had found it failing. A task passes only if its tests do.
    reporters = (
        [test.task_id] if test.task_id else [dashboard.parts[p].task_id for p in test.parents if p in dashboard.parts]
    )
    if all(run.tasks.get(t, TaskOutcome(None)).state in SUCCEEDED for t in reporters):
        return None
    if result is not None:
        if result.status not in DBT_TEST_FAILED:
            return None
        built = all(
            run.results.get(p) is None or run.results[p].status in DBT_PASSED
            for p in test.parents
            if p in dashboard.parts and dashboard.parts[p].kind is not Kind.SOURCE
        )
        if not built:
            return None  # the model failed to build: it is the cause, not its test
    elif not (test.task_id and outcome.state in FAILED):
        return None  # no result from dbt and no task of its own: its model's task tells (see assess)
    message = (result.message if result else "") or "the test failed"
    return Cause(Kind.TEST, test.key, test.name, test.task_id, message, outcome.log_url, needs_fix=True)


def assess(dashboard: Dashboard, run: RunOutcome | None, previous: Assessment | None = None) -> Assessment:
    """The dashboard's status after ``run`` (the latest), given the assessment of the run before it."""
    if run is None:
        return Assessment(Status.UNKNOWN, None)
    states: dict[str, PartState] = {}
    stale: list[Cause] = []
    broken: list[Cause] = []
    for key, part in dashboard.parts.items():
        if part.kind is Kind.TEST:
            continue
        states[key], cause = _part_state(part, run)
        if cause is not None:
            stale.append(cause)
    for key, part in dashboard.parts.items():
        if part.kind is not Kind.TEST:
            continue
        cause = _failed_test(part, dashboard, run)
        states[key] = PartState.FAILED if cause else PartState.REFRESHED
        if cause is not None:
            broken.append(cause)
            for parent in part.parents:
                if states.get(parent) is PartState.REFRESHED:
                    states[parent] = PartState.TEST_FAILED
    # A check's failure breaks the dashboard only if the checked data reached it: every table
    # between the checked node and the dashboard was refreshed. Otherwise they still hold the
    # previous run's data, and the held-back tables below make it stale.
    children = _children(dashboard)
    broken = [c for c in broken if _reached(c.key, dashboard, states, children)]
    tested = {p for cause in broken for p in dashboard.parts[cause.key].parents}
    for key, state in states.items():
        if state is PartState.TEST_FAILED and key not in tested and _reached(key, dashboard, states, children):
            # its task failed on a test dbt did not name
            part = dashboard.parts[key]
            outcome = run.tasks.get(part.task_id, TaskOutcome(None))
            message = f"a test of {part.name} failed; its log names it"
            broken.append(Cause(Kind.TEST, key, f"tests of {part.name}", part.task_id, message, outcome.log_url, True))
    held_back = tuple(
        sorted(
            dashboard.parts[k].name
            for k, s in states.items()
            if s is PartState.HELD_BACK and dashboard.parts[k].kind is Kind.MODEL
        )
    )
    pending = any(s is PartState.PENDING for s in states.values())
    if not (broken or stale or pending):  # held back (or never reached) with no failure among the parts
        for key, state in states.items():
            if state in {PartState.HELD_BACK, PartState.NOT_RUN}:
                part = dashboard.parts[key]
                outcome = run.tasks.get(part.task_id, TaskOutcome(None))
                stale.append(Cause(part.kind, key, part.name, part.task_id, _NOT_REFRESHED, outcome.log_url))
    sources_as_of = _sources_as_of(dashboard, run, states, previous, children)
    if broken or stale:
        status = Status.BROKEN if broken else Status.STALE
        return Assessment(status, run.run_id, tuple(broken + stale), held_back, states, pending, sources_as_of)
    if pending:
        before = previous or Assessment(Status.UNKNOWN, None)
        loading = tuple(
            sorted(
                part.name
                for key, part in dashboard.parts.items()
                if part.kind is Kind.CONNECTION and states.get(key) is PartState.PENDING
            )
        )
        return Assessment(
            before.status, before.run_id, before.causes, before.held_back, states, True, sources_as_of, loading
        )
    return Assessment(Status.FRESH, run.run_id, (), (), states, False, sources_as_of)


def _children(dashboard: Dashboard) -> dict[str, list[str]]:
    return children_of({key: part.parents for key, part in dashboard.parts.items() if part.kind is not Kind.TEST})


def _reached(key: str, dashboard: Dashboard, states: Mapping[str, PartState], children) -> bool:
    """Whether what ``key`` holds reached the dashboard: every table downstream of it (a test: of what
    it checks) was refreshed in this run."""
    arrived = {PartState.REFRESHED, PartState.TEST_FAILED}
    start = dashboard.parts[key].parents if dashboard.parts[key].kind is Kind.TEST else (key,)
    return all(states.get(node) in arrived for node in walk(start, lambda n: children.get(n, ())) if node != key)


def _sources_as_of(
    dashboard: Dashboard,
    run: RunOutcome,
    states: Mapping[str, PartState],
    previous: Assessment | None,
    children: dict[str, list[str]],
) -> dict[str, datetime]:
    """Per source: its newest loaded_at in this run if that data reached the dashboard, else what reached
    it before. Without a freshness check (no ``loaded_at_field``), the end of the sync that loaded it."""
    as_of = dict(previous.sources_as_of) if previous else {}
    for key, part in dashboard.parts.items():
        if part.kind is not Kind.SOURCE or not _reached(key, dashboard, states, children):
            continue
        result = run.results.get(key)
        if result and result.max_loaded_at:
            as_of[part.name] = result.max_loaded_at
            continue
        syncs = [run.tasks.get(dashboard.parts[p].task_id) for p in part.parents if p in dashboard.parts]
        ends = [s.ended_at for s in syncs if s and s.ended_at]
        if ends:
            as_of[part.name] = max(ends)
    return as_of


def status_since(current: Status, history: Iterable[tuple[Status, datetime]]) -> datetime | None:
    """When the current status began: the earliest end of the latest unbroken streak of runs with it.

    ``history`` holds (status, run end), newest first.
    """
    since = None
    for status, ended_at in history:
        if status is not current:
            break
        since = ended_at
    return since


def parse_fresh_by(fresh_by: str, timezone: str) -> tuple[time, ZoneInfo]:
    """``"07:00"`` and ``"Europe/Paris"`` as a time and a zone; ``ValueError`` saying what is wrong."""
    try:
        at = time.fromisoformat(fresh_by.strip())
    except ValueError:
        raise ValueError(f'fresh_by={fresh_by!r} is not a time of day as HH:MM (e.g. "07:00")') from None
    try:
        zone = ZoneInfo(timezone.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'fresh_by_timezone={timezone!r} is not an IANA time zone (e.g. "Europe/Paris")') from None
    return at, zone


def promise_deadline(fresh_by: str, timezone: str, now: datetime) -> datetime | None:
    """The latest moment, at or before ``now``, the dashboard was promised fresh by; None if not parseable."""
    try:
        at, zone = parse_fresh_by(fresh_by, timezone)
    except ValueError:
        return None
    local = now.astimezone(zone)
    deadline = datetime.combine(local.date(), at, tzinfo=zone).astimezone(UTC)
    if deadline > now.astimezone(UTC):  # compared as instants: wall clocks repeat when DST ends
        deadline = datetime.combine(local.date() - timedelta(days=1), at, tzinfo=zone).astimezone(UTC)
    return deadline


def promise_kept(deadline: datetime, fresh_times: Iterable[datetime]) -> bool:
    """Kept when a run made the dashboard fresh in the 24 hours up to the deadline."""
    return any(deadline - timedelta(days=1) < t <= deadline for t in fresh_times)
