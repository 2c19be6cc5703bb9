"""A pipeline run for people at a terminal: its progress while it runs, then a summary (task states,
raw and mart row counts, the dashboards' health) and where to look next."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from airflow.sdk import DagRunState, TaskInstanceState

from elt_platform import run_history
from elt_platform.ingestion.connections import load_connections
from elt_platform.run_history import RETURN_VALUE_KEY, Run, TaskInstanceRecord, XComSelector
from elt_platform.settings import Settings
from elt_platform.task_states import SUCCEEDED, TRY_ENDED
from elt_platform.transform.results import RESULTS_XCOM_KEY, NodeRecord, records_of, reuse_saving

# A run that did all it should: each task succeeded or was skipped (a branch not taken).
DONE = SUCCEEDED | {TaskInstanceState.SKIPPED}


class Mark(StrEnum):
    """How a progress line marks a task's state."""

    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"
    HELD = "held"  # held back by a failure upstream
    RETRY = "retry"


MARKS: dict[str, Mark] = {
    TaskInstanceState.SUCCESS: Mark.OK,
    TaskInstanceState.FAILED: Mark.FAIL,
    TaskInstanceState.SKIPPED: Mark.SKIP,
    TaskInstanceState.UPSTREAM_FAILED: Mark.HELD,
    TaskInstanceState.UP_FOR_RETRY: Mark.RETRY,
}


def _state(state: TaskInstanceState | DagRunState | None) -> str:
    return state.value if state else "None"


def task_states(dag_id: str, run_id: str | None) -> tuple[Run, list[TaskInstanceRecord], dict[str, NodeRecord]]:
    """The run ``run_id``, or the latest run, its task instances and every build's dbt results."""
    with run_history.reading() as history:
        run = history.run(dag_id, run_id) if run_id else history.latest_run(dag_id)
        if run is None:
            raise LookupError(f"no run of DAG {dag_id} found")
        results: dict[str, NodeRecord] = {}
        for value in history.xcoms(dag_id, run.run_id, XComSelector(RESULTS_XCOM_KEY)).values():
            results |= records_of(value)
        return run, history.task_instances(dag_id, run.run_id), results


def warehouse_counts(warehouse: Path, raw_schemas: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Rows per raw table and per mart (every other base table), counted as the dashboards' assets are."""
    import duckdb

    from elt_platform.warehouse import count_rows

    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' and table_name not like '\\_airbyte\\_%' escape '\\' "
            "order by 1, 2"
        ).fetchall()
    named = {f"{schema}.{table}": (schema, table) for schema, table in tables}
    # Base tables only: no view resolves a file's path from the dbt project's folder.
    counts = count_rows(Settings.from_env(), named, warehouse.parent, database=warehouse)
    raw = {name: counts[name] for name, (schema, _) in named.items() if schema in raw_schemas and name in counts}
    marts = {name: counts[name] for name, (schema, _) in named.items() if schema not in raw_schemas and name in counts}
    return raw, marts


def print_summary(dag_id: str, run_id: str | None, warehouse: Path, ingestion_dir: Path) -> int:
    run, tasks, results = task_states(dag_id, run_id)
    data_root = Settings.from_env().ingestion_data_root
    raw_schemas = {c.spec.destination.raw_schema for c in load_connections(ingestion_dir, data_root=data_root)}
    raw, marts = warehouse_counts(warehouse, raw_schemas) if warehouse.exists() else ({}, {})
    totals = Counter(_state(t.state) for t in tasks)
    width = max((len(t.task_id) for t in tasks), default=10)

    print(f"\nDAG {dag_id}, run {run.run_id}: {_state(run.state).upper()}")
    print("  " + ", ".join(f"{n} {s}" for s, n in sorted(totals.items())))
    reused, seconds = reuse_saving(results)
    if reused:
        print(f"  reused {reused} dbt nodes nothing changed since their last build, saving about {seconds:g} s of dbt")
    print("\nTasks")
    for task in tasks:
        print(f"  {task.task_id:<{width}}  {_state(task.state)}")
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
    ok = run.state == DagRunState.SUCCESS and all(t.state in DONE for t in tasks) and all(marts.values())
    return 0 if ok and marts else 1


def _ended_since(dag_id: str, started: datetime) -> list[tuple[TaskInstanceRecord, object]]:
    """Each task of the run that may run from ``started`` on whose try has ended, in the order they
    ended, with what it returned."""
    with run_history.reading() as history:
        run = history.latest_run(dag_id, after=started)
        if run is None:
            return []
        tasks = history.task_instances(dag_id, run.run_id, states=TRY_ENDED)
        results = history.xcoms(dag_id, run.run_id, XComSelector(RETURN_VALUE_KEY))
    ended = sorted(tasks, key=lambda t: t.end_date or started)
    return [(t, results.get((t.task_id, RETURN_VALUE_KEY))) for t in ended]


def _line(task: TaskInstanceRecord, result: object) -> str:
    details = [f"{task.duration:.1f} s"] if task.duration is not None else []
    if isinstance(result, dict) and isinstance(result.get("rows_synced"), int):
        details.append(f"{result['rows_synced']:,} rows")
    try_number = task.try_number or 1
    if try_number > 1 or task.state == TaskInstanceState.UP_FOR_RETRY:
        details.append(f"try {try_number}")
    mark = MARKS.get(task.state) or _state(task.state)
    return f"  {mark:<5} {task.task_id}" + (f"  ({', '.join(details)})" if details else "")


def follow(dag_id: str, command: list[str], log: Path, interval: float = 1.0) -> int:
    """Run ``command`` (``airflow dags test``), its output into ``log``, and print each task of
    its run as it ends: each sync, the build, each model and each dashboard."""
    started = datetime.now(UTC)
    print(f"Running DAG {dag_id}; Airflow's own log: {log}")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        shown: dict[str, tuple[TaskInstanceState | None, int]] = {}
        while True:
            finished = proc.poll() is not None
            try:
                ended = _ended_since(dag_id, started)
            except run_history.DatabaseUnavailable:  # SQLite busy while the run writes: ask again
                ended = []
            for task, result in ended:
                if shown.get(task.task_id) != (task.state, task.try_number):
                    shown[task.task_id] = (task.state, task.try_number)
                    print(_line(task, result), flush=True)
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
    from elt_platform.health.pages import plain_text
    from elt_platform.health.report import report

    with run_history.reading() as history:
        items = report(history, dag_id=dag_id)
    print("\nDashboards")
    print(plain_text(items) or "  (none: the dbt project declares no exposures)")
