"""``make bench-loads``: how soon a dashboard is fresh after its own load lands, while another load is slow.

The shipped project and its two real connections under a real Airflow (devstack/airflow_stack.py), the
shop's (source-faker) made slow with a larger ``count``. Per repeat: the connections' stores removed, a
run (every stream read in full), then a second run (incremental). Reported: each sync's time and the
ratio between them, the time from the help desk's sync ending to its dashboard's fresh verdict against
its build's time (the bound: that build plus 10 s), and the records and seconds of each sync's reads.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

from bench.common import REPO, context, context_lines, log, median, report_arguments, write_report
from devstack.airflow_stack import AirflowStack
from elt_platform.ingestion.sync_store import store_path

DAG_ID = "loads"
POOL = CONN_ID = "bench_loads_warehouse"
FAST, SLOW = "sync_support_desk", "sync_shop_faker"
FAST_BUILD, FAST_DASHBOARD = "transform.dbt_build__support_desk", "dashboards.support_operations"
BOUND_S = 10.0
DAG_FILE = '''"""Benchmark airflow DAG: the shipped project, with the bench's warehouse connection and pool."""

from dataclasses import replace

from elt_platform.dag_factory import build_elt_dag
from elt_platform.settings import Settings

dag = build_elt_dag(
    dag_id="{dag_id}",
    dbt_project_dir="{project}",
    ingestion_dir="{ingestion}",
    settings=replace(Settings.from_env(), warehouse_conn_id="{conn_id}", warehouse_pool="{pool}"),
)
'''


def seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def prepare(workdir: Path, slow_count: int) -> Path:
    """A copy of the project, its shop connection generating ``slow_count`` records per stream; returns the DAGs."""
    shutil.copytree(REPO / "dbt_project", workdir / "dbt_project", dirs_exist_ok=True)
    shutil.copytree(REPO / "ingestion", workdir / "ingestion", dirs_exist_ok=True)
    faker = workdir / "ingestion" / "shop_faker.yml"
    spec = yaml.safe_load(faker.read_text())
    spec["source"]["config"]["count"] = slow_count
    faker.write_text(yaml.safe_dump(spec, sort_keys=False))
    dags = workdir / "dags"
    dags.mkdir(exist_ok=True)
    project, ingestion = workdir / "dbt_project", workdir / "ingestion"
    (dags / f"{DAG_ID}.py").write_text(
        DAG_FILE.format(dag_id=DAG_ID, project=project, ingestion=ingestion, conn_id=CONN_ID, pool=POOL)
    )
    return dags


def sync_result(stack: AirflowStack, run_id: str, task_id: str) -> dict:
    response = stack.client.get(
        f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
        params={"deserialize": True},
    )
    return response.json().get("value") or {} if response.status_code == 200 else {}


def measure(stack: AirflowStack, repeat: int, kind: str) -> dict:
    run_id = stack.trigger(DAG_ID)
    state = stack.wait_for_run(DAG_ID, run_id, timeout=3600)
    tis = stack.task_instances(DAG_ID, run_id)
    took = {task: seconds(ti["start_date"], ti["end_date"]) for task, ti in tis.items()}
    fast_end, slow_end = tis[FAST]["end_date"], tis[SLOW]["end_date"]
    lag = seconds(fast_end, tis[FAST_DASHBOARD]["end_date"])
    syncs = {task: sync_result(stack, run_id, task) for task in (FAST, SLOW)}
    run_start = min(ti["start_date"] for ti in tis.values() if ti["start_date"])
    result = {
        # Each task's start and end, in seconds from the run's first task's start.
        "timeline": {
            task: [seconds(run_start, ti["start_date"]), seconds(run_start, ti["end_date"])]
            for task, ti in sorted(tis.items(), key=lambda item: item[1]["start_date"] or "~")
        },
        "repeat": repeat,
        "kind": kind,
        "run_id": run_id,
        "state": state,
        "states": {task: ti["state"] for task, ti in tis.items()},
        "fast_sync_s": took[FAST],
        "slow_sync_s": took[SLOW],
        "fast_build_s": took[FAST_BUILD],
        "fast_dashboard": tis[FAST_DASHBOARD]["state"],
        "lag_s": lag,
        "slow_sync_still_running_s": seconds(tis[FAST_DASHBOARD]["end_date"], slow_end),
        # What one build per run, after every sync, could not have beaten: the slow sync's end, then a build.
        "single_build_lag_floor_s": seconds(fast_end, slow_end) + took[FAST_BUILD] if slow_end else None,
        "reads": {task: value.get("reads") for task, value in syncs.items()},
        "read_seconds": {task: value.get("read_seconds") for task, value in syncs.items()},
        "hand_over_lock_seconds": {task: value.get("hand_over_lock_seconds") for task, value in syncs.items()},
    }
    result["bound_met"] = lag is not None and took[FAST_BUILD] is not None and lag <= took[FAST_BUILD] + BOUND_S
    return result


def f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def records(reads) -> str:
    if not reads:
        return "-"
    if isinstance(reads, dict):
        return ", ".join(f"{stream} {r.get('records', r) if isinstance(r, dict) else r}" for stream, r in reads.items())
    return str(reads)


def render(report: dict) -> list[str]:
    runs = report["runs"]
    full = [r for r in runs if r["kind"] == "full"]
    lines = ["# Benchmark: a dashboard fresh as soon as its own load lands", "", *context_lines(report["meta"]), ""]
    lines += [
        "The shipped project, the shop's connection (source-faker) made slow with"
        f" `count: {report['meta']['slow_count']}`;"
        f" the help desk's (source-file, 400 rows) as shipped. {len(full)} repeats, each a first run (stores removed:"
        " every stream in full) then a second (incremental). Median of the first runs:",
        "",
        "| | median | per repeat |",
        "|---|---|---|",
    ]

    def row(label: str, key: str) -> str:
        values = [r[key] for r in full]
        return f"| {label} | {f(median([v for v in values if v is not None]))} | {', '.join(f(v) for v in values)} |"

    lines += [
        row("fast sync (help desk), s", "fast_sync_s"),
        row("slow sync (shop), s", "slow_sync_s"),
        "| slow / fast | "
        + f(median([r["slow_sync_s"] / r["fast_sync_s"] for r in full if r["fast_sync_s"]]))
        + "x | |",
        row("help desk's build (`dbt_build__support_desk`), s", "fast_build_s"),
        row("fast sync end -> its dashboard fresh, s", "lag_s"),
        row("... the slow sync went on after that for, s", "slow_sync_still_running_s"),
        row("one build per run, after every sync: at least, s", "single_build_lag_floor_s"),
        "",
        f"Bound (fresh within its build + {BOUND_S:.0f} s): "
        + ", ".join("met" if r["bound_met"] else "NOT met" for r in full)
        + f". Run states: {', '.join(sorted({r['state'] for r in runs}))}; the help desk's dashboard: "
        + ", ".join(r["fast_dashboard"] for r in full)
        + ".",
        "",
        "The last row is not a second system measured: it is the earliest a run that builds once every sync"
        " has ended could have refreshed this dashboard, from the same run's timings (the slow sync's end plus"
        " the same build).",
        "",
        "## Incremental syncs: the second run against the first",
        "",
        "| repeat | run | sync | records read | read, s | warehouse lock held, s |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        for task in (SLOW, FAST):
            lines.append(
                f"| {r['repeat']} | {r['kind']} | {task} | {records(r['reads'].get(task))} "
                f"| {f(r['read_seconds'].get(task))} | {f(r['hand_over_lock_seconds'].get(task), 2)} |"
            )
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loads", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="first and second runs, each (default 3)")
    parser.add_argument("--slow-count", type=int, default=400000, help="the shop's records per stream (default 400000)")
    report_arguments(parser, "loads.md")
    args = parser.parse_args(argv)
    output = args.output.resolve()
    if args.render_only:
        write_report(output, None, render)
        return 0
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="elt-bench-loads-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"signal {signum}"))
    warehouse = workdir / "warehouse" / "analytics.duckdb"
    warehouse.parent.mkdir(exist_ok=True)
    env = {
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps({"conn_type": "duckdb", "host": str(warehouse)}),
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
    }
    started = time.monotonic()
    meta = context("bench.loads", "bench-loads") | {"repeats": args.repeats, "slow_count": args.slow_count}
    report: dict = {"meta": meta, "runs": []}
    stack = AirflowStack(workdir / "airflow", prepare(workdir, args.slow_count), env, pools=(POOL,))
    try:
        stack.start()
        for repeat in range(1, args.repeats + 1):
            for connection in ("shop_faker", "support_desk"):  # the next run reads every stream in full
                store_path(warehouse, connection).unlink(missing_ok=True)
            for kind in ("full", "incremental"):
                log(f"repeat {repeat}, {kind} run")
                report["runs"].append(result := measure(stack, repeat, kind))
                log(f"  {result['state']}: lag {f(result['lag_s'])} s, build {f(result['fast_build_s'])} s")
                meta["elapsed_min"] = (time.monotonic() - started) / 60
                write_report(output, report, render)
    finally:
        stack.stop()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
