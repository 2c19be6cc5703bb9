"""``make bench``: the transform phase under a real Airflow, against plain ``dbt build`` of the same project.

Per size of generated dbt project (bench/generate.py) and configuration (``CONFIGS``): the DAG file's parse
time, then the transform's wall time on the shared local Airflow (devstack/airflow_stack.py), the dbt build
task's own, peak memory, CPU seconds per Airflow process and every task's state. bench/README.md has more.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

from bench import generate as gen
from bench.common import (
    REPO,
    Sampler,
    context,
    context_lines,
    log,
    median,
    mem,
    parse_times,
    report_arguments,
    write_report,
)
from devstack import BIN
from devstack.airflow_stack import TERMINAL, AirflowStack
from devstack.crash import PRODUCER, holder_of, published_results
from elt_platform.settings import Settings
from elt_platform.task_states import UNDER_WAY

POOL = CONN_ID = "bench_warehouse"
WAREHOUSE = "warehouse.duckdb"  # in the working directory: the one DuckDB file every configuration builds
# States in which a task of a run marked failed may still be using the machine.
LOCK_ERRORS = re.compile(r"Could not set lock on file|Conflicting lock is held|database is locked")
# The task that runs the one dbt build: Cosmos WATCHER's producer, the project's build task.
BUILD_TASKS = {"dbt_producer_watcher", "dbt_build"}
# Where a run's CPU goes: the scheduler's own, its executor's task processes (dbt included), and each
# other Airflow process with its children.
CPU_PARTS = ("tasks", "scheduler", "triggerer", "api-server", "dag-processor")


# Each configuration: its title in the report, its DAG file (a template in bench/dags/) and what varies between
# those sharing one. bench/README.md says what each runs. ``project_default_crash`` kills the build's dbt mid-build.
WATCHER, DEFAULT, POKE_1S = "cosmos_watcher.py", "project_default.py", "{'poke_interval': 1}"
CONFIGS = {
    "dbt": ("plain `dbt build`", None, {}),
    "cosmos_watcher": ("Cosmos WATCHER", WATCHER, {"operator_args": "None"}),
    "cosmos_watcher_poke_1s": ("Cosmos WATCHER, sensors poke every 1 s", WATCHER, {"operator_args": POKE_1S}),
    "project_default": ("project default", DEFAULT, {"overrides": "{}"}),
    "project_default_per_model": (
        "project default, per-model mode",
        DEFAULT,
        {"overrides": "{'transform_mode': 'per-model'}"},
    ),
    "project_default_crash": ("project default, its dbt killed mid-build", DEFAULT, {"overrides": "{}"}),
}
CRASH = "project_default_crash"
KILL_AT = 1 / 3  # the share of the models published when the crash configuration's dbt is killed
DEFAULT_CONFIGS = "dbt,cosmos_watcher,cosmos_watcher_poke_1s,project_default,project_default_crash"
SHAPES = {  # --shape: seeds and data tests per model (generate.py's seeds and tests)
    "default": "no seeds, one `not_null` test per model",
    "scale": "per 7 models, 1 seed (half of them read by a model) and 10 data tests in all (a `not_null` on each "
    "model and seed, the rest `unique` and a quarter `relationships`): 100 seeds and 1,000 tests at 700 models",
}
# Airflow's defaults for a standalone LocalExecutor setup, where devstack.airflow_stack (tuned for the tests) differs.
AIRFLOW_OVERRIDES = {
    "AIRFLOW__CORE__PARALLELISM": "32",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "DO_NOT_TRACK": "1",
}


def utc(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


# --------------------------------------------------------------------------- measuring


def reset_warehouse(workdir: Path) -> Path:
    """The warehouse file every configuration builds, reset to the raw tables alone before every measured run."""
    (workdir / f"{WAREHOUSE}.wal").unlink(missing_ok=True)
    return shutil.copyfile(workdir / "raw-only.duckdb", workdir / WAREHOUSE)


def run_dbt(project: Path, size: int, index: int, workdir: Path) -> dict:
    """Plain ``dbt build``, partial-parsing from the generated project's parse as a developer's would."""
    target = workdir / "dbt-target" / str(size)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(project / "target" / "partial_parse.msgpack", target / "partial_parse.msgpack")
    (target / "run_results.json").unlink(missing_ok=True)
    reset_warehouse(workdir)
    cmd = [str(BIN / "dbt"), "build", "--project-dir", str(project), "--profiles-dir", str(project)]
    cmd += ["--target-path", str(target), "--log-path", str(workdir / "dbt-logs"), "--threads", str(gen.THREADS)]
    output = workdir / f"dbt-build-{size}-{index}.log"
    started = time.monotonic()
    with output.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=project, env=os.environ, stdout=out, stderr=subprocess.STDOUT)
        with Sampler([proc.pid]) as sampler:
            returncode = proc.wait()
    wall = time.monotonic() - started
    statuses: Counter[str] = Counter()
    with contextlib.suppress(OSError):
        statuses.update(r["status"] for r in json.loads((target / "run_results.json").read_text())["results"])
    nodes = json.loads((project / "target" / "manifest.json").read_text())["nodes"].values()
    expected = sum(1 for n in nodes if n["resource_type"] in ("model", "seed", "test"))
    ok = returncode == 0 and set(statuses) <= {"success", "pass"} and statuses.total() == expected
    text = output.read_text()
    record = {"config": "dbt", "size": size, "run": index, "ok": ok, "capped": False, "returncode": returncode}
    record |= {"transform_wall_s": wall, "node_statuses": statuses, "retries": 0}
    record |= {
        "partial_parse": "Unable to do partial parsing" not in text,
        "lock_errors": len(LOCK_ERRORS.findall(text)),
    }
    return record | {"peak_rss_bytes": sampler.peak_rss, "peak_pss_bytes": sampler.peak_pss}


def cpu_by_part(stack: AirflowStack) -> dict[str, float]:
    """CPU seconds (user + system) so far of each Airflow process with every descendant, live or exited (an
    exited process's time is in its reaping parent's ``children_*``); the scheduler's own apart from its tasks'."""
    found: dict[str, float] = {}
    for proc in stack.procs:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(proc.pid)
            total = 0.0
            for p in (root, *root.children(recursive=True)):
                with contextlib.suppress(psutil.Error):
                    total += sum(p.cpu_times()[:4])
            name = proc.args[1]
            if name == "scheduler":
                found["scheduler"] = sum(root.cpu_times()[:2])
                found["tasks"] = total - found["scheduler"]
            else:
                found[name] = total
    return found


def kill_build(stack: AirflowStack, dag_id: str, run_id: str, ctx: dict, stop: threading.Event, killed: list) -> None:
    """Kills the build's dbt, the process holding the warehouse file, with SIGKILL (as the kernel does on out of
    memory) once ``KILL_AT`` of the models have their result published; ``killed`` gets how many had."""
    while not stop.wait(0.3):
        with contextlib.suppress(httpx.HTTPError, psutil.Error):
            records = published_results(stack.client, dag_id, run_id) or {}
            published = sum(1 for uid in records if uid.startswith("model."))
            if published >= round(len(ctx["models"]) * KILL_AT) and (dbt := holder_of(ctx["workdir"] / WAREHOUSE)):
                dbt.send_signal(signal.SIGKILL)
                return killed.append(published)


def run_dag(stack: AirflowStack, config: str, dag_id: str, size: int, index: int, ctx: dict) -> dict:
    """One triggered run, timed from its first task's start to its last task's end; stopped at ``cap_s``."""
    reset_warehouse(ctx["workdir"])
    time.sleep(5)  # the previous run's processes are gone and the scheduler is idle
    sampler = Sampler([proc.pid for proc in stack.procs])
    idle_rss, _ = sampler.sample()
    sampler.peak_rss = 0
    capped_at, stop, killed = None, threading.Event(), []
    cpu_before = cpu_by_part(stack)
    with sampler:
        started = time.monotonic()
        run_id = stack.trigger(dag_id)
        if config == CRASH:
            threading.Thread(target=kill_build, args=(stack, dag_id, run_id, ctx, stop, killed)).start()
        while True:
            time.sleep(1)
            with contextlib.suppress(httpx.HTTPError):
                if stack.client.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"] in TERMINAL:
                    break
            if time.monotonic() - started > ctx["cap_s"]:
                capped_at = datetime.now(UTC)
                log(f"  cap of {ctx['cap_s'] / 60:.1f} min reached: marking {run_id} failed")
                stack.fail_run(dag_id, run_id)
                break
    stop.set()
    cpu_after = cpu_by_part(stack)
    if capped_at:  # let the scheduler stop what still runs, so that the next run starts on a quiet machine

        def stopped() -> bool:
            return not any(ti["state"] in UNDER_WAY for ti in stack.all_task_instances(dag_id, run_id))

        with contextlib.suppress(TimeoutError):
            stack.wait_until(stopped, 180, "the capped run's tasks to stop", interval=3)
    dag_run = stack.client.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()
    tis = stack.all_task_instances(dag_id, run_id)
    timeline = ctx["workdir"] / "timelines" / f"{dag_id}-run{index}.json"
    timeline.parent.mkdir(parents=True, exist_ok=True)
    timeline.write_text(json.dumps(tis, indent=1))
    states = Counter(str(ti["state"]) for ti in tis)
    timed = [ti for ti in tis if ti.get("start_date") and ti.get("end_date")]
    first_start = min((utc(ti["start_date"]) for ti in tis if ti.get("start_date")), default=None)
    last_end = capped_at or max((utc(ti["end_date"]) for ti in timed), default=None)
    done = [ti for ti in timed if ti["state"] == "success" and (not capped_at or utc(ti["end_date"]) <= capped_at)]
    build = next((ti for ti in timed if ti["task_id"].split(".")[-1] in BUILD_TASKS), None)
    # A node task is one whose id names a model: the model's own task, or its tests'.
    node_ends = [utc(ti["end_date"]) for ti in timed if set(ctx["models"]).intersection(ti["task_id"].split("."))]
    # The crash configuration's build task is retried once, on purpose.
    expected_retry = {PRODUCER} if killed else set()
    retries = sum(max(0, (ti.get("try_number") or 0) - 1) for ti in tis if ti["task_id"] not in expected_retry)
    logs = (stack.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}").rglob("*.log")
    lock_errors = sum(1 for log_file in logs if LOCK_ERRORS.search(log_file.read_text(errors="replace")))
    succeeded = {part for ti in tis if ti["state"] == "success" for part in ti["task_id"].split(".")}
    models_not_succeeded = [m for m in ctx["models"] if m not in succeeded]
    # Skipped is allowed (a task whose trigger rule did not fire); a retried task is not.
    ok = (
        not capped_at
        and dag_run["state"] == "success"
        and set(states) <= {"success", "skipped"}
        and not (models_not_succeeded or retries or lock_errors)
        and (config != CRASH or bool(killed))
    )
    return {
        "config": config,
        "size": size,
        "run": index,
        "run_id": run_id,
        "ok": ok,
        "capped": bool(capped_at),
        "dag_run_state": dag_run["state"],
        "transform_wall_s": (last_end - first_start).total_seconds() if first_start and last_end else None,
        "tasks": len(tis),
        "task_states": dict(states),
        "tasks_succeeded_in_time": len(done),
        "longest_task": build["task_id"] if build else None,
        "longest_task_s": (utc(build["end_date"]) - utc(build["start_date"])).total_seconds() if build else None,
        # Last node task end - the build task's end: how long the per-node tasks lag the one dbt build.
        "tail_s": (max(node_ends) - utc(build["end_date"])).total_seconds() if build and node_ends else None,
        "retries": retries,
        "killed_build_with_models_published": killed[0] if killed else None,
        "lock_errors": lock_errors,
        "failed_tasks": sorted(ti["task_id"] for ti in tis if ti["state"] not in ("success", "skipped"))[:5],
        "skipped_tasks": sorted(ti["task_id"] for ti in tis if ti["state"] == "skipped")[:5],
        "cpu_s": {part: cpu_after[part] - cpu_before[part] for part in CPU_PARTS if part in cpu_after},
        "idle_rss_bytes": idle_rss,
        "peak_rss_bytes": sampler.peak_rss,
        "peak_pss_bytes": sampler.peak_pss,
    }


# --------------------------------------------------------------------------- the report


def summarise(report: dict, config: str, size: int) -> dict:
    """One configuration at one size: medians of its successful runs, ratios to plain ``dbt build``."""
    runs = [r for r in report["runs"] if r["config"] == config and r["size"] == size]
    ok = [r for r in runs if r["ok"]]
    walls = [r["transform_wall_s"] for r in ok]
    dbt_s = report["dbt_median_s"].get(str(size))
    build = [r["longest_task_s"] for r in ok if (r.get("longest_task") or "").split(".")[-1] in BUILD_TASKS]
    cpus = [r["cpu_s"] for r in ok if r.get("cpu_s")]  # runs recorded before CPU was measured have none
    sm = {
        "config": config,
        "runs": runs,
        "ok": ok,
        "skipped": report["skipped"].get(f"{config}/{size}"),
        "parse": report["parse"].get(f"{config}/{size}") or {},
        "wall": median(walls),
        "build": median(build),
        "tail": median(r.get("tail_s") for r in ok),
        "cpu": {part: median(c.get(part) for c in cpus) for part in CPU_PARTS} if cpus else None,
        "rss": median(r["peak_rss_bytes"] for r in ok),
        "pss": median(r["peak_pss_bytes"] for r in ok),
        "idle": median(r.get("idle_rss_bytes") for r in ok),
    }
    for key, value in (("ratio", sm["wall"]), ("build_ratio", sm["build"])):
        sm[key] = value / dbt_s if dbt_s and value is not None else None
    normal = summarise(report, "project_default", size)["wall"] if config == CRASH else None
    if normal and sm["wall"]:
        sm["vs_normal"], sm["normal"] = sm["wall"] / normal, normal
    return sm


def s(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f} s"


def x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def runs_cell(sm: dict) -> str:
    """How many runs succeeded, what went wrong in the others, and every task's state in all of them."""
    states: Counter[str] = Counter()
    text = f"{len(sm['ok'])} of {len(sm['runs'])}" + (f"; {sm['skipped']}" if sm["skipped"] else "")
    for run in sm["runs"]:
        states.update(run.get("task_states") or run.get("node_statuses") or {})
        if run["capped"]:
            text += f"; run {run['run']} stopped at the cap, {run.get('tasks_succeeded_in_time')} tasks done"
        elif not run["ok"]:
            reasons = "; ".join(
                "`" + r.replace("`", "'").replace("|", "/") + "`" for r in run.get("failure_reasons", [])
            )
            reasons = reasons or ", ".join(f"`{t}`" for t in run.get("failed_tasks", []))
            text += f"; run {run['run']}: {run.get('dag_run_state', 'failed')}" + (f": {reasons}" if reasons else "")
    skipped = sorted({t for r in sm["ok"] for t in r.get("skipped_tasks", [])})
    by_rule = f" (by its trigger rule: {', '.join(f'`{t}`' for t in skipped)})" if skipped else ""
    return text + " | " + ", ".join(f"{n} {state}" for state, n in states.most_common()) + by_rule


def size_section(report: dict, size: int) -> list[str]:
    nodes = report["meta"].get("nodes", {}).get(str(size)) or {"model": size, "test": size}
    counts = " + ".join(f"{count} {kind}s" for kind, count in nodes.items())
    lines = [
        f"### {size} models ({sum(nodes.values())} dbt nodes: {counts})",
        "",
        "| Configuration | Parse, warm / cold | Transform wall, median (min-max) | x dbt build | The dbt build task "
        "| Build task x dbt build | Tail after the build | Peak memory, RSS sum (PSS) "
        f"| CPU seconds: {' / '.join(CPU_PARTS)} | Runs succeeded | Task states, all runs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for config in report["meta"]["configs"]:
        sm, plain = summarise(report, config, size), config == "dbt"
        if not (sm["runs"] or sm["skipped"]):
            continue
        walls = [r["transform_wall_s"] for r in sm["ok"]]
        capped = [r["transform_wall_s"] or 0 for r in sm["runs"] if r["capped"]]
        wall = f"{s(sm['wall'])} ({min(walls):.1f}-{max(walls):.1f})" if walls else "no successful run"
        wall = f"> {capped[0]:.0f} s (stopped at the cap)" if capped and not walls else wall
        parse = f"{s(sm['parse'].get('warm_median_s'), 2)} / {s(sm['parse'].get('cold_median_s'), 2)}"
        build = s(sm["build"]) if sm["build"] or not sm["ok"] else "none: one per node"
        memory = f"{mem(sm['rss'])} ({mem(sm['pss'])})" if sm["ok"] else "-"
        memory += f"; idle {mem(sm['idle'])}" if sm["idle"] else ""
        cpu = " / ".join(f"{sm['cpu'][part] or 0:.0f}" for part in CPU_PARTS) if sm["cpu"] else "-"
        cells = [CONFIGS.get(config, (f"`{config}`",))[0], "n/a" if plain else parse, wall]
        cells += ["1.00x", "n/a", "n/a", "n/a"] if plain else [x(sm.get("ratio")), build, x(sm.get("build_ratio"))]
        cells += [] if plain else [s(sm["tail"])]
        cells += [memory, "n/a" if plain else cpu, runs_cell(sm)]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


TARGETS = (  # issue #12's, of the project default; the build's own (issue: at most 1.25x at 200 and 1,000 models)
    ("The DAG file parses in under 0.2 s (warm)", 1000, "parse", 0.2),
    ("The DAG file parses in under 0.5 s (warm), `--shape scale`", 700, "parse", 0.5),
    ("Transform ≤ 1.5x plain dbt build", 20, "ratio", 1.5),
    ("Transform ≤ 1.2x plain dbt build", 200, "ratio", 1.2),
    ("Transform ≤ 1.5x plain dbt build", 1000, "ratio", 1.5),
    ("The dbt build inside Airflow ≤ 1.25x the same build alone", 200, "build_ratio", 1.25),
    ("The dbt build inside Airflow ≤ 1.25x the same build alone", 1000, "build_ratio", 1.25),
    ("A run whose dbt was killed mid-build recovers in ≤ 1.5x a normal run", 20, "vs_normal", 1.5),
    ("A run whose dbt was killed mid-build recovers in ≤ 1.5x a normal run", 200, "vs_normal", 1.5),
)


def target_rows(report: dict) -> list[str]:
    rows = []
    for label, size, kind, limit in TARGETS:
        config = "project_default_crash" if kind == "vs_normal" else "project_default"
        if size not in report["meta"]["sizes"] or config not in report["meta"]["configs"]:
            continue
        sm = summarise(report, config, size)
        value = sm["parse"].get("warm_median_s") if kind == "parse" else sm.get(kind)
        if value is None:
            rows.append(f"| {label} | {size} | {'not measured' if not sm['runs'] else 'no successful run'} | - |")
            continue
        measured = f"{value:.2f} s" if kind == "parse" else f"{value:.2f}x"
        if kind == "vs_normal":
            measured += f" ({sm['wall']:.1f} s against {sm['normal']:.1f} s)"
        failed = len(sm["runs"]) - len(sm["ok"])
        verdict = "met" if value <= limit and not failed else "**not met**"
        verdict += f" ({failed} of {len(sm['runs'])} runs not successful)" if failed and kind != "parse" else ""
        rows.append(f"| {label} | {size} | {measured} | {verdict} |")
    return rows


def render(report: dict) -> list[str]:
    meta = report["meta"]
    lines = [
        "# Benchmark: the transform phase under Airflow",
        "",
        f"Written by `make bench` (`bench/run.py`; how it works: `bench/README.md`) on {meta['date']}: plain "
        "`dbt build` of generated dbt projects, and the same projects under a real Airflow. How it was run is "
        "below the results.",
        "",
        "## Results",
        "",
    ]
    for size in meta["sizes"]:
        if any(r["size"] == size for r in report["runs"]):
            lines += size_section(report, size)
    if rows := target_rows(report):
        lines += ["## Targets", "", "| Target | Size | Measured | |", "| --- | --- | --- | --- |", *rows, ""]
    if not report.get("complete"):
        done = {f"{r['config']}/{r['size']}" for r in report["runs"]} | set(report["skipped"])
        missing = ", ".join(f"`{c}` at {n}" for n in meta["sizes"] for c in meta["configs"] if f"{c}/{n}" not in done)
        lines += [f"**This run did not finish**: the figures above are what completed; not measured: {missing}.", ""]
    settings = ", ".join(f"`{k}` = {v}" for k, v in meta["airflow_settings"].items())
    mode = meta.get("project_default", {}).get("settings", {}).get("transform_mode", "?")
    shape = meta.get("shape", "default")
    lines += [
        "## How it was run",
        "",
        *context_lines(meta),
        f"- Airflow: `devstack/airflow_stack.py`, as in the integration tests, with {settings}. Pool `{POOL}`: 1 slot "
        "(DuckDB allows one writer per file). Only the DAG under test is in the DAG folder.",
        f"- The project default: `build_elt_dag`, `transform_mode` = {mode}. dbt: {gen.THREADS} threads everywhere, "
        f"on a DuckDB file reset to the raw tables before every run. Projects: `bench/generate.py`, seed "
        f"{meta['seed']}, {SHAPES[shape]}.",
        f"- Median of {meta['runs']} runs; a run not fully successful (the DAG run and every model's task `success`, "
        "no retry but the crash configuration's one, no DuckDB lock error) is left out. A run is stopped after "
        f"{meta['cap_minutes']:g} min or {meta['cap_ratio']:g}x plain `dbt build`, whichever is longer, and its "
        "configuration is not run again.",
        "- **Transform wall**: first task start to last task end. **The dbt build task**: the task running the one "
        "`dbt build` (its last try). **x dbt build**: either / plain `dbt build`. **Tail**: the last node task's end "
        "- the build task's end. **Peak memory**: of the Airflow process tree; *idle*, before the run. **Parse**: in "
        f"fresh interpreters, median of {meta['parse_runs']}; *warm*, the imports done first. **CPU seconds**: "
        "*tasks*, what the scheduler starts (dbt included); each other Airflow process with its children.",
        "",
    ]
    return lines


# --------------------------------------------------------------------------- main


def dag_file(config: str, size: int, project: Path, workdir: Path) -> Path:
    """The configuration's DAG file for one project, from its template in bench/dags/."""
    _, template, args = CONFIGS[config]
    path = workdir / "dag_files" / f"bench_{config}_{size}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {"dag_id": path.stem, "project_dir": project, "pool": POOL, "conn_id": CONN_ID}
    values |= {"profile_name": gen.PROFILE_NAME, "target_name": gen.TARGET_NAME}
    path.write_text(string.Template((REPO / "bench" / "dags" / template).read_text()).substitute(args, **values))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,200,1000,2000", help="models per project (default %(default)s)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per configuration and size (default 3)")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"from {', '.join(CONFIGS)} (default %(default)s)")
    parser.add_argument("--cap-minutes", type=float, default=8.0, help="a run is stopped after this long (default 8)")
    parser.add_argument("--cap-ratio", type=float, default=6.0, help="... or this times plain dbt build, if longer")
    parser.add_argument("--parse-runs", type=int, default=3, help="fresh interpreters per parse figure (default 3)")
    report_arguments(parser, "transform.md")
    parser.add_argument("--seed", type=int, default=0, help="of the generated projects (default 0)")
    parser.add_argument("--shape", choices=SHAPES, default="default", help=str(SHAPES))
    args = parser.parse_args(argv)
    output = args.output.resolve()
    if args.render_only:
        write_report(output, None, render)
        return 0
    configs = [c for c in CONFIGS if c in args.configs.split(",")]  # the baseline first
    if unknown := set(args.configs.split(",")) - set(CONFIGS):
        parser.error(f"unknown configs {sorted(unknown)}; choose from {list(CONFIGS)}")
    if "dbt" not in configs:
        parser.error("the dbt baseline is required: ratios are against it")
    sizes = sorted(int(size) for size in args.sizes.split(","))
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="elt-bench-"))).resolve()
    (workdir / "dags").mkdir(parents=True, exist_ok=True)
    log(f"working in {workdir}")
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"signal {signum}"))  # the stack stops, as on Ctrl-C

    warehouse = str(workdir / WAREHOUSE)
    os.environ[gen.DB_PATH_ENV] = warehouse
    env = {
        **AIRFLOW_OVERRIDES,
        gen.DB_PATH_ENV: warehouse,
        # Cosmos's cache of this bench alone: cold at a configuration's first run, warm after, as deployed.
        "AIRFLOW__COSMOS__CACHE_DIR": str(workdir / "cosmos-cache"),
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps({"conn_type": "duckdb", "host": warehouse}),
    }
    stack = AirflowStack(workdir / "airflow", workdir / "dags", env, pools=(POOL,))
    started = time.monotonic()
    meta = context("bench.run", "bench") | {"sizes": sizes, "configs": configs, "nodes": {}}
    meta |= {key: getattr(args, key) for key in ("runs", "parse_runs", "cap_minutes", "cap_ratio", "seed", "shape")}
    meta["airflow_settings"] = {k: stack.env[k] for k in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__PARALLELISM")}
    meta["project_default"] = {"settings": {"transform_mode": Settings.from_env().transform_mode}}
    meta["workdir"] = str(workdir) if args.workdir else f"{workdir} (temporary, removed at the end)"
    report: dict = {"meta": meta, "parse": {}, "runs": [], "skipped": {}, "dbt_median_s": {}, "complete": False}

    def write() -> None:
        meta["elapsed_min"] = (time.monotonic() - started) / 60
        write_report(output, report, render)

    capped: dict[str, int] = {}  # configuration -> the size it was stopped at
    try:
        log("creating the raw tables")
        gen.create_raw_tables(workdir / "raw-only.duckdb")
        projects, models = {}, {}
        for size in sizes:
            log(f"generating a {size}-model project")
            seeds, tests = (round(size / 7), round(size * 10 / 7)) if args.shape == "scale" else (0, 0)
            manifest = gen.generate(workdir / "projects" / f"models_{size}", size, args.seed, seeds, tests)
            projects[size] = manifest.parent.parent
            nodes = json.loads(manifest.read_text())["nodes"].values()
            models[size] = [node["name"] for node in nodes if node["resource_type"] == "model"]
            kinds = [node["resource_type"] for node in nodes]
            meta["nodes"][str(size)] = {kind: kinds.count(kind) for kind in ("model", "seed", "test") if kind in kinds}
            for config in configs[1:]:
                log(f"parse time of {config} at {size} models")
                path = dag_file(config, size, projects[size], workdir)
                report["parse"][f"{config}/{size}"] = parse_times({config: path}, args.parse_runs, stack.env)[config]

        log("starting Airflow")
        stack.start()
        for size in sizes:
            for index in range(1, args.runs + 1):
                log(f"dbt build, {size} models, run {index}")
                report["runs"].append(result := run_dbt(projects[size], size, index, workdir))
                log(f"  {result['transform_wall_s']:.1f} s, ok={result['ok']}")
            if plain := summarise(report, "dbt", size)["wall"]:
                report["dbt_median_s"][str(size)] = plain
            write()
            ctx = {"models": models[size], "workdir": workdir}
            ctx["cap_s"] = max(args.cap_minutes * 60, args.cap_ratio * report["dbt_median_s"].get(str(size), 0))
            for config in configs[1:]:
                if config in capped:
                    report["skipped"][f"{config}/{size}"] = f"not run: stopped at the cap at {capped[config]} models"
                    continue
                for old in (workdir / "dags").glob("*.py"):
                    old.unlink()
                path = shutil.copy(workdir / "dag_files" / f"bench_{config}_{size}.py", workdir / "dags")
                for index in range(1, args.runs + 1):
                    log(f"{config}, {size} models, run {index}")
                    try:
                        report["runs"].append(result := run_dag(stack, config, Path(path).stem, size, index, ctx))
                    except TimeoutError:  # the DAG did not load: the parse's errors say why
                        errors = report["parse"][f"{config}/{size}"]["errors"]
                        report["skipped"][f"{config}/{size}"] = f"the DAG did not load ({'; '.join(errors)})"
                        break
                    log(f"  wall {s(result['transform_wall_s'])}, tasks {result['task_states']}, ok={result['ok']}")
                    write()
                    if result["capped"]:  # the further runs, and larger sizes, would be no faster
                        capped[config] = size
                        break
        report["complete"] = True
    finally:
        write()
        log("stopping Airflow")
        stack.stop()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"wrote {output} and {output.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
