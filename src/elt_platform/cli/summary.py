"""A pipeline run for people at a terminal: its progress while it runs, then a summary (task states,
raw and mart row counts, the dashboards' health) and where to look next."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from elt_platform.ingestion.connections import load_connections
from elt_platform.settings import Settings
from elt_platform.task_states import TRY_ENDED


def task_states(dag_id: str, run_id: str | None) -> tuple[str, str, list[tuple[str, str]]]:
    """(run_id, run state, [(task_id, state)]) of ``run_id``, or of the latest run."""
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(DagRun).where(DagRun.dag_id == dag_id)
        query = query.where(DagRun.run_id == run_id) if run_id else query.order_by(DagRun.id.desc()).limit(1)
        run = session.scalars(query).first()
        if run is None:
            raise LookupError(f"no run of DAG {dag_id} found")
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
        ).all()
        return run.run_id, str(run.state), sorted((ti.task_id, str(ti.state)) for ti in tis)


def warehouse_counts(warehouse: Path, raw_schemas: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Rows per raw table and per mart (every other base table)."""
    import duckdb

    from elt_platform.warehouse import quoted_table

    raw: dict[str, int] = {}
    marts: dict[str, int] = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' and table_name not like '\\_airbyte\\_%' escape '\\' "
            "order by 1, 2"
        ).fetchall()
        for schema, table in tables:
            count = con.execute(f"select count(*) from {quoted_table(schema, table)}").fetchone()[0]
            (raw if schema in raw_schemas else marts)[f"{schema}.{table}"] = count
    return raw, marts


def print_summary(dag_id: str, run_id: str | None, warehouse: Path, ingestion_dir: Path) -> int:
    run_id, run_state, states = task_states(dag_id, run_id)
    data_root = Settings.from_env().ingestion_data_root
    raw_schemas = {c.spec.destination.raw_schema for c in load_connections(ingestion_dir, data_root=data_root)}
    raw, marts = warehouse_counts(warehouse, raw_schemas) if warehouse.exists() else ({}, {})
    totals = Counter(state for _, state in states)
    width = max((len(t) for t, _ in states), default=10)

    print(f"\nDAG {dag_id}, run {run_id}: {run_state.upper()}")
    print("  " + ", ".join(f"{n} {s}" for s, n in sorted(totals.items())))
    print("\nTasks")
    for task_id, state in states:
        print(f"  {task_id:<{width}}  {state}")
    for title, counts in (("Raw tables (rows)", raw), ("Marts (rows)", marts)):
        print(f"\n{title}")
        for table, rows in counts.items():
            print(f"  {table:<40} {rows:>8}")
        if not counts:
            print("  (none)")
    print(f"\nWarehouse: {warehouse}")
    query = f"import duckdb; duckdb.connect('{warehouse}', read_only=True).sql('show all tables').show()"
    print(f'  open it:  .venv/bin/python -c "{query}"')
    print("Airflow UI: make ui, then open http://127.0.0.1:8080 (login printed by the command)")
    print_health(dag_id)
    ok = run_state == "success" and all(s in ("success", "skipped") for _, s in states) and all(marts.values())
    return 0 if ok and marts else 1


ENDED = TRY_ENDED
MARKS = {"success": "ok  ", "failed": "FAIL", "skipped": "skip", "upstream_failed": "held", "up_for_retry": "retry"}


def _ended_since(dag_id: str, started: datetime) -> list[tuple[str, str, int, float | None, object]]:
    """(task_id, state, try, seconds, result) of each ended task of the run started after ``started``."""
    from airflow.models import DagRun, TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalars(
            select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_after >= started).order_by(DagRun.id.desc())
        ).first()
        if run is None:
            return []
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
        ).all()
        results = dict(
            session.execute(
                select(XComModel.task_id, XComModel.value).where(
                    XComModel.dag_id == dag_id, XComModel.run_id == run.run_id, XComModel.key == "return_value"
                )
            ).all()
        )
        ended = sorted((ti for ti in tis if ti.state and str(ti.state) in ENDED), key=lambda ti: ti.end_date or started)
        return [(ti.task_id, str(ti.state), ti.try_number or 1, ti.duration, results.get(ti.task_id)) for ti in ended]


def _line(task_id: str, state: str, try_number: int, seconds: float | None, result: object) -> str:
    details = [f"{seconds:.1f} s"] if seconds is not None else []
    if isinstance(result, dict) and isinstance(result.get("rows_synced"), int):
        details.append(f"{result['rows_synced']:,} rows")
    if try_number > 1 or state == "up_for_retry":
        details.append(f"try {try_number}")
    return f"  {MARKS.get(state, state):<5} {task_id}" + (f"  ({', '.join(details)})" if details else "")


def follow(dag_id: str, command: list[str], log: Path, interval: float = 1.0) -> int:
    """Run ``command`` (``airflow dags test``), its output into ``log``, and print each task of
    its run as it ends: each sync, the build, each model and each dashboard."""
    from sqlalchemy.exc import OperationalError

    started = datetime.now(UTC)
    print(f"Running DAG {dag_id}; Airflow's own log: {log}")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        shown: dict[str, tuple[str, int]] = {}
        while True:
            finished = proc.poll() is not None
            try:
                ended = _ended_since(dag_id, started)
            except OperationalError:  # SQLite busy while the run writes: ask again
                ended = []
            for task_id, state, try_number, seconds, result in ended:
                if shown.get(task_id) != (state, try_number):
                    shown[task_id] = (state, try_number)
                    print(_line(task_id, state, try_number, seconds, result), flush=True)
            if finished:
                break
            time.sleep(interval)
    print(f"Run ended after {(datetime.now(UTC) - started).total_seconds():.0f} s.")
    if proc.returncode and not shown:  # Airflow itself failed (e.g. the DAG did not parse): say why
        print(f"`{' '.join(command)}` failed before any task ended; the end of its log:")
        print("\n".join(log.read_text(errors="replace").splitlines()[-15:]))
    return proc.returncode


def print_health(dag_id: str) -> None:
    """Each dashboard's health, in words: the last part of the summary."""
    from airflow.utils.session import create_session

    from elt_platform.health.pages import plain_text
    from elt_platform.health.report import report

    with create_session() as session:
        items = report(session, dag_id=dag_id)
    print("\nDashboards")
    print(plain_text(items) or "  (none: the dbt project declares no exposures)")
