"""What happened in a run, read from Airflow's metadata database: the one module of the package that reads it.

The CLI (``elt summary``, ``elt run``, ``elt health``), the dashboard pages and their JSON ask
here: a DAG's runs, each run's task instances, the XComs the platform reads (errors, dbt's
results, the dashboards' verdicts, the syncs' return values), the dashboards' assets and their
events, a DAG's next run, and whether a scheduler is alive. Answers are typed, frozen records,
each read with a select of only the columns it needs.

Airflow 3 declares its metadata database and ORM non-public ("Public Interface for Airflow 3.0+":
the database structure is an internal detail, and Python classes not named there may change in
any release). Its REST API would need a running API server and a login that neither the CLI nor
the API server's own plugin has. So the ORM is used here, and nowhere else in ``src/``:
``airflow.models``, ``airflow.jobs`` and ``airflow.utils.session`` are imported inside the
functions below, late, since the API server and the CLI import this module.

Gated by Airflow's version: importing this module under an Airflow outside ``TESTED_AIRFLOW``
(first release, past the last) fails (``UntestedAirflow``), naming what to re-check. It fails
rather than warns: a renamed column would fail loudly anyway, but a changed meaning would not (a
state, how an XCom's value is stored, which run counts as the latest), and the pages would tell
business users a dashboard is fresh from a misreading. An upgrade passes
``tests/unit/test_run_history.py`` and ``tests/commands/test_run_history.py`` first, then widens
the range here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

import airflow
from airflow.sdk import DagRunState, TaskInstanceState

from elt_platform.dependency_internals import within_releases

# The key of what a task returns (Airflow's XCOM_RETURN_KEY), e.g. a sync's rows.
RETURN_VALUE_KEY = "return_value"
# The Airflow releases whose metadata database these reads were tested against: [first, past the last).
TESTED_AIRFLOW = ("3.3.0", "3.4.0")


class UntestedAirflow(ImportError):
    """This module's reads were not tested against the installed Airflow's metadata database."""


class DatabaseUnavailable(RuntimeError):
    """The metadata database did not answer, e.g. SQLite busy while a run writes: ask again later."""


def check_airflow_version(version: str) -> None:
    """Refuse an Airflow whose metadata database these reads were not tested against."""
    if not within_releases(version, TESTED_AIRFLOW):
        first, past_last = TESTED_AIRFLOW
        raise UntestedAirflow(
            f"elt_platform.run_history reads Airflow's metadata database (not a public API) and was tested with "
            f"Airflow {first} up to {past_last} (not included), not {version}. Fix: re-check its queries against "
            "the new release's models (DagRun, TaskInstance, XComModel, AssetModel, AssetActive, "
            "TaskOutletAssetReference, AssetEvent, DagModel, Job), run tests/unit/test_run_history.py and "
            "tests/commands/test_run_history.py, then widen TESTED_AIRFLOW."
        )


check_airflow_version(airflow.__version__)


@dataclass(frozen=True)
class Run:
    """One DAG run."""

    dag_id: str
    run_id: str
    state: DagRunState | None
    run_type: str
    logical_date: datetime | None
    run_after: datetime
    start_date: datetime | None
    end_date: datetime | None
    conf: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)  # read-only

    @property
    def duration(self) -> timedelta | None:
        return self.end_date - self.start_date if self.start_date and self.end_date else None


@dataclass(frozen=True)
class TaskInstanceRecord:
    """A task instance of a run, as of its latest try."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int  # -1: not mapped
    state: TaskInstanceState | None  # None: not scheduled yet
    try_number: int  # 0: never tried
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None  # seconds

    @property
    def log_url(self) -> str:
        """The try's page in Airflow's UI (its log), relative to the API server's root."""
        path = f"/dags/{self.dag_id}/runs/{quote(self.run_id)}/tasks/{self.task_id}"
        if self.map_index >= 0:
            path += f"/mapped/{self.map_index}"
        return f"{path}?try_number={self.try_number}" if self.try_number else path


@dataclass(frozen=True)
class XComSelector:
    """Which XComs of a run to read: those of ``key``, of every task or of ``task_id`` only."""

    key: str
    task_id: str | None = None


@dataclass(frozen=True)
class RecordedXCom:
    """One task's XCom in one ended run, with when that run ended."""

    run_id: str
    task_id: str
    value: Any
    run_ended_at: datetime


@dataclass(frozen=True)
class OutletAsset:
    """An active asset that a task of a DAG declares as its outlet (one per declaring task)."""

    asset_id: int
    name: str
    uri: str
    extra: Any  # as the DAG processor stored it: normally a dict, but not checked here
    dag_id: str
    task_id: str


@dataclass(frozen=True)
class DagFacts:
    """What the scheduler has decided about a DAG."""

    dag_id: str
    is_paused: bool
    next_logical_date: datetime | None
    next_run_create_after: datetime | None

    @property
    def next_run(self) -> datetime | None:
        """When the next run is due, or None when none is (paused, or no schedule)."""
        return None if self.is_paused else self.next_run_create_after


class RunHistory:
    """Reads over one database session (``reading()`` opens Airflow's own)."""

    def __init__(self, session: Any) -> None:
        self.session = session

    @classmethod
    def of(cls, source: RunHistory | Any) -> RunHistory:
        """A history over ``source``: a history already, or a SQLAlchemy session the caller manages."""
        return source if isinstance(source, RunHistory) else cls(source)

    # Runs and their task instances

    def runs(
        self, dag_id: str, limit: int | None = None, run_id: str | None = None, after: datetime | None = None
    ) -> list[Run]:
        """The DAG's runs, newest first (by when they may run, then by creation): all, or the one
        ``run_id``, or those that may run from ``after`` on."""
        from airflow.models import DagRun
        from sqlalchemy import select

        query = select(
            DagRun.dag_id,
            DagRun.run_id,
            DagRun.state,
            DagRun.run_type,
            DagRun.logical_date,
            DagRun.run_after,
            DagRun.start_date,
            DagRun.end_date,
            DagRun.conf,
        ).where(DagRun.dag_id == dag_id)
        if run_id is not None:
            query = query.where(DagRun.run_id == run_id)
        if after is not None:
            query = query.where(DagRun.run_after >= after)
        query = query.order_by(DagRun.run_after.desc(), DagRun.id.desc())
        if limit is not None:
            query = query.limit(limit)
        return [
            Run(
                dag_id=row.dag_id,
                run_id=row.run_id,
                state=DagRunState(row.state) if row.state else None,
                run_type=str(row.run_type),
                logical_date=row.logical_date,
                run_after=row.run_after,
                start_date=row.start_date,
                end_date=row.end_date,
                conf=MappingProxyType(dict(row.conf or {})),
            )
            for row in self.session.execute(query)
        ]

    def latest_run(self, dag_id: str, after: datetime | None = None) -> Run | None:
        """The DAG's newest run (of those that may run from ``after`` on), or None."""
        found = self.runs(dag_id, limit=1, after=after)
        return found[0] if found else None

    def run(self, dag_id: str, run_id: str) -> Run | None:
        found = self.runs(dag_id, run_id=run_id)
        return found[0] if found else None

    def task_instances(
        self, dag_id: str, run_id: str, states: Collection[str] | None = None
    ) -> list[TaskInstanceRecord]:
        """The run's task instances (those in ``states`` only, if given), by task id and map index."""
        from airflow.models import TaskInstance as TI
        from sqlalchemy import select

        query = select(
            TI.task_id, TI.map_index, TI.state, TI.try_number, TI.start_date, TI.end_date, TI.duration
        ).where(TI.dag_id == dag_id, TI.run_id == run_id)
        if states is not None:
            query = query.where(TI.state.in_([getattr(s, "value", s) for s in states]))
        return [
            TaskInstanceRecord(
                dag_id=dag_id,
                run_id=run_id,
                task_id=row.task_id,
                map_index=row.map_index,
                state=TaskInstanceState(row.state) if row.state else None,
                try_number=row.try_number or 0,
                start_date=row.start_date,
                end_date=row.end_date,
                duration=row.duration,
            )
            for row in self.session.execute(query.order_by(TI.task_id, TI.map_index))
        ]

    # XComs

    def xcoms(self, dag_id: str, run_id: str, *wanted: XComSelector) -> dict[tuple[str, str], Any]:
        """The run's XComs that ``wanted`` selects, as (task id, key) -> value (deserialized)."""
        from airflow.models.xcom import XComModel
        from sqlalchemy import and_, or_, select

        if not wanted:
            return {}
        chosen = [
            and_(XComModel.key == w.key, XComModel.task_id == w.task_id)
            if w.task_id is not None
            else XComModel.key == w.key
            for w in wanted
        ]
        rows = self.session.execute(
            select(XComModel.task_id, XComModel.key, XComModel.value).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id, or_(*chosen)
            )
        )
        return {(task_id, key): _deserialized(value) for task_id, key, value in rows}

    def xcom_history(self, dag_id: str, task_ids: Iterable[str], key: str, ended_since: datetime) -> list[RecordedXCom]:
        """The XComs ``key`` of ``task_ids`` in the DAG's runs that ended since ``ended_since``, newest run first."""
        from airflow.models import DagRun
        from airflow.models.xcom import XComModel
        from sqlalchemy import select

        rows = self.session.execute(
            select(XComModel.task_id, XComModel.run_id, XComModel.value, DagRun.end_date)
            .join(DagRun, (DagRun.dag_id == XComModel.dag_id) & (DagRun.run_id == XComModel.run_id))
            .where(
                XComModel.dag_id == dag_id,
                XComModel.task_id.in_(list(task_ids)),
                XComModel.key == key,
                DagRun.end_date >= ended_since,
            )
            .order_by(DagRun.end_date.desc())
        )
        return [RecordedXCom(run_id, task_id, _deserialized(value), ended) for task_id, run_id, value, ended in rows]

    # Assets

    def outlet_assets(self, group: str) -> list[OutletAsset]:
        """The active assets of ``group`` and the tasks that declare them as outlets."""
        from airflow.models.asset import AssetActive, AssetModel, TaskOutletAssetReference
        from sqlalchemy import select

        rows = self.session.execute(
            select(
                AssetModel.id,
                AssetModel.name,
                AssetModel.uri,
                AssetModel.extra,
                TaskOutletAssetReference.dag_id,
                TaskOutletAssetReference.task_id,
            )
            .join(TaskOutletAssetReference, TaskOutletAssetReference.asset_id == AssetModel.id)
            .join(AssetActive, (AssetActive.name == AssetModel.name) & (AssetActive.uri == AssetModel.uri))
            .where(AssetModel.group == group)
        )
        return [OutletAsset(*row) for row in rows]

    def asset_event_times(self, asset_ids: Collection[int], since: datetime) -> dict[int, list[datetime]]:
        """When each asset had an event, from ``since`` on (asset id -> times)."""
        from airflow.models.asset import AssetEvent
        from sqlalchemy import select

        if not asset_ids:
            return {}
        rows = self.session.execute(
            select(AssetEvent.asset_id, AssetEvent.timestamp).where(
                AssetEvent.asset_id.in_(list(asset_ids)), AssetEvent.timestamp >= since
            )
        )
        events: dict[int, list[datetime]] = {}
        for asset_id, timestamp in rows:
            events.setdefault(asset_id, []).append(timestamp)
        return events

    # DAGs and the scheduler

    def dag(self, dag_id: str) -> DagFacts | None:
        from airflow.models import DagModel
        from sqlalchemy import select

        row = self.session.execute(
            select(DagModel.is_paused, DagModel.next_dagrun, DagModel.next_dagrun_create_after).where(
                DagModel.dag_id == dag_id
            )
        ).first()
        return None if row is None else DagFacts(dag_id, bool(row[0]), row[1], row[2])

    def live_scheduler(self) -> str | None:
        """The host of a scheduler heartbeating against this database, or None: the jobs table, as
        ``airflow jobs check`` reads it, in this process (the command costs seconds of start-up)."""
        from airflow.jobs.job import most_recent_job

        job = most_recent_job("SchedulerJob", session=self.session)
        return job.hostname if job is not None and job.is_alive() else None


def database_url() -> str:
    """Where Airflow's configured metadata database is (its SQLAlchemy URL, credentials included)."""
    from elt_platform.dependency_internals import airflow_setting

    return airflow_setting("database", "sql_alchemy_conn") or ""


@contextmanager
def reading() -> Iterator[RunHistory]:
    """A history over a session of Airflow's configured metadata database, closed after; a database
    that does not answer raises ``DatabaseUnavailable``."""
    from airflow.utils.session import create_session
    from sqlalchemy.exc import OperationalError

    try:
        with create_session() as session:
            yield RunHistory(session)
    except OperationalError as error:
        raise DatabaseUnavailable(str(error)) from error


def live_scheduler() -> str | None:
    """The host of a scheduler heartbeating against Airflow's configured metadata database, or None."""
    with reading() as history:
        return history.live_scheduler()


@dataclass
class _Row:
    """``XComModel.deserialize_value`` reads ``.value`` of a row."""

    value: Any


def _deserialized(value: Any) -> Any:
    """An XCom's value as the task pushed it. A task pushes through the execution API in the Task SDK's
    encoding (``airflow.sdk.serde``: JSON, a tuple as a tagged object), which its own ``BaseXCom``
    decodes; a JSON text is of Airflow's own encoder (``XComModel.set``), decoded by ``XComModel``."""
    from airflow.models.xcom import XComModel
    from airflow.sdk.serde import deserialize

    if isinstance(value, str):
        return XComModel.deserialize_value(_Row(value))
    try:
        return deserialize(value)
    except (ImportError, TypeError, ValueError, AttributeError):  # a class this process may not load: as stored
        return value


__all__ = [
    "RETURN_VALUE_KEY",
    "TESTED_AIRFLOW",
    "DagFacts",
    "DatabaseUnavailable",
    "OutletAsset",
    "RecordedXCom",
    "Run",
    "RunHistory",
    "TaskInstanceRecord",
    "UntestedAirflow",
    "XComSelector",
    "check_airflow_version",
    "database_url",
    "live_scheduler",
    "reading",
]
