"""A readable summary of one pipeline run: task states, raw and mart row counts, where to look next."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from elt_platform.connections import load_connections


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

    raw: dict[str, int] = {}
    marts: dict[str, int] = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' and table_name not like '\\_airbyte\\_%' escape '\\' "
            "order by 1, 2"
        ).fetchall()
        for schema, table in tables:
            count = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
            (raw if schema in raw_schemas else marts)[f"{schema}.{table}"] = count
    return raw, marts


def print_summary(dag_id: str, run_id: str | None, warehouse: Path, ingestion_dir: Path) -> int:
    run_id, run_state, states = task_states(dag_id, run_id)
    raw_schemas = {c.spec.destination.raw_schema for c in load_connections(ingestion_dir)}
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
    print("Airflow UI: make ui, then open http://localhost:8080 (login printed by the command)")
    ok = run_state == "success" and all(s in ("success", "skipped") for _, s in states) and all(marts.values())
    return 0 if ok and marts else 1
