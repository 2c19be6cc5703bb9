"""``make bench-reuse``: a second run that reuses what nothing changed (``ELT_BUILD_STATE``), against full builds.

Two DAGs per project on one local Airflow (devstack/airflow_stack.py), each with its own copy of the project
and its own warehouse file: one keeps its builds' state (``build_state``), the other builds every node every
run. Their runs alternate, so the full build is measured in the same session. Projects: the bundled one with
its two real connections (on a second run the shop's Faker sync reads no new record, the help desk's CSV is
read again in full, so only its source is fresher), and a generated one (bench/generate.py) of two halves,
each reading a source of its own (``raw``, ``raw_b``) with a freshness check, whose raw tables get new rows
by SQL: in ``raw_b`` only (one of two sources new), or none (nothing changed). Reported: the models and tests
rebuilt and reused (from each build's published results), the build tasks' time against the full build's,
and what the decision costs (the ``dbt ls`` each reusing build runs first). bench/README.md has more.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import duckdb
import yaml

from bench import generate as gen
from bench.common import REPO, context, context_lines, log, median, report_arguments, write_report
from bench.loads import f, seconds
from bench.run import AIRFLOW_OVERRIDES, LOCK_ERRORS
from devstack.airflow_stack import AirflowStack
from devstack.crash import published_results
from elt_platform.dbt_manifest import load_manifest
from elt_platform.dbt_manifest.graph import descendants
from elt_platform.transform.results import PRODUCER_TASK_ID, REUSED

REUSE, FULL = "reuse", "full"  # the DAG keeping its builds' state, and the one building every node every run
FIRST, ONE_NEW, NOTHING = "first", "one_new", "nothing"
CASES = {
    FIRST: "first run (no state yet: every node built)",
    ONE_NEW: "second run, one of two sources with new rows",
    NOTHING: "second run, nothing changed",
}
FULL_RUNS_OF = {NOTHING: ONE_NEW}  # the case whose full builds a case is compared with, if another
BUILD_PREFIX = f"transform.{PRODUCER_TASK_ID}"  # transform.dbt_build, or transform.dbt_build__<connection>...
FAIL_RUN_TASK = "transform.fail_run_if_a_node_failed"  # skipped when no node failed
MODEL_KINDS, TEST_KINDS = ("model", "seed", "snapshot"), ("test", "unit_test")
BUNDLED_NEW = "support_desk"  # the connection with new data on the bundled project's second runs: its CSV
LOADED_AT = "_loaded_at"  # the generated project's loaded-at column, of its sources' freshness checks
PART_B = "raw_b"  # the generated project's second source: new rows land only there
# The generated project's second half: generate.py's names, renamed to read source raw_b.
RENAMED = (("stg_raw__", "stg_raw_b__"), ("int_customers_scored_", "int_accounts_scored_"), ("'raw',", "'raw_b',"))
DAG_FILE = '''"""Benchmark airflow DAG: build_elt_dag over a copy of a project, with the bench's warehouse and pool;
its builds' state kept in {state!r} ("": every run builds every node)."""

from dataclasses import replace

from elt_platform.dag_factory import build_elt_dag
from elt_platform.settings import Settings

dag = build_elt_dag(
    dag_id={dag_id!r},
    dbt_project_dir={project!r},
    ingestion_dir={ingestion!r},
    settings=replace(
        Settings.from_env(), warehouse_conn_id={conn_id!r}, warehouse_pool={pool!r}, build_state={state!r}
    ),
)
'''


# --------------------------------------------------------------------------- the projects


def new_rows(warehouse: Path, rows: int) -> None:
    """A load of ``rows`` new rows into every table of source ``raw_b``, loaded now (copies of its first rows
    under new keys): dbt's ``source_status:fresher`` sees that source, and only it, as newer."""
    with duckdb.connect(str(warehouse)) as con:
        for table, columns in gen.STAGING_COLUMNS.items():
            key = columns[0]
            con.execute(
                f"insert into {PART_B}.{table} by name select * replace ("
                f"{key} + (select max({key}) from {PART_B}.{table}) as {key}, current_timestamp as {LOADED_AT}) "
                f"from {PART_B}.{table} order by {key} limit {rows}"
            )
        con.execute("checkpoint")


def raw_tables(path: Path) -> None:
    """generate.py's raw tables, each with the time it was loaded, and the same tables again as source ``raw_b``."""
    gen.create_raw_tables(path)
    with duckdb.connect(str(path)) as con:
        con.execute(f"create schema {PART_B}")
        for table in gen.STAGING_COLUMNS:
            loaded = f"select *, current_timestamp as {LOADED_AT} from raw.{table}"
            con.execute(f"create or replace table raw.{table} as {loaded}")
            con.execute(f"create table {PART_B}.{table} as select * from raw.{table}")
        con.execute("checkpoint")


def with_freshness(sources_yml: Path, name: str) -> None:
    """The generated source, named ``name`` (its schema too), with a freshness check on its loaded-at column."""
    spec = yaml.safe_load(sources_yml.read_text())
    source = spec["sources"][0]
    source["name"] = source["schema"] = name
    # A month before a warning: the check tells newer data apart; it never holds a build back.
    source["config"] = {"loaded_at_field": LOADED_AT, "freshness": {"warn_after": {"count": 30, "period": "day"}}}
    sources_yml.write_text(yaml.safe_dump(spec, sort_keys=False))


def two_source_project(dest: Path, models: int, seed: int) -> Path:
    """generate.py's project in two halves, each over a source of its own: ``raw``, and ``raw_b`` (the second
    half generated with the next seed, its models renamed); both with a freshness check. Returns its manifest."""
    gen.generate(dest, models - models // 2, seed)
    part = dest.parent / f"{dest.name}-part-b"
    gen.generate(part, models // 2, seed + 1)
    for path in (part / "models").rglob("*.*"):
        text, name = path.read_text(), path.name
        for old, new in RENAMED:
            text, name = text.replace(old, new), name.replace(old, new)
        target = dest / "models" / PART_B / path.relative_to(part / "models").parent / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    shutil.rmtree(part)
    with_freshness(dest / "models" / "staging" / "_raw__sources.yml", "raw")
    with_freshness(dest / "models" / PART_B / "staging" / "_raw__sources.yml", PART_B)
    return gen.dbt_parse(dest)


def dag_file(dags: Path, dag_id: str, project: Path, ingestion: Path | None, state: str) -> None:
    conn_id = pool = f"bench_{dag_id}"
    values = {"dag_id": dag_id, "project": str(project), "state": state, "conn_id": conn_id, "pool": pool}
    (dags / f"{dag_id}.py").write_text(DAG_FILE.format(ingestion=str(ingestion) if ingestion else None, **values))


def prepare(name: str, workdir: Path, size: int | None, seed: int) -> dict:
    """One project's pair of DAGs (``REUSE`` and ``FULL``), each over a copy of the project and a warehouse
    file of its own; returns what measuring them needs."""
    root = workdir / name
    if size is None:  # the bundled project, as shipped
        source, manifest_path = REPO / "dbt_project", None
    else:
        log(f"generating a {size}-model project with two sources")
        manifest_path = two_source_project(root / "generated", size, seed)
        source = manifest_path.parent.parent
        raw_tables(root / "raw-only.duckdb")
    subject = {"project": name, "size": size, "dag_ids": {}, "warehouses": {}, "projects": {}}
    for mode in (REUSE, FULL):
        dag_id = f"{name}_{mode}"
        project = shutil.copytree(source, root / mode / "dbt_project", ignore=shutil.ignore_patterns("logs"))
        ingestion = shutil.copytree(REPO / "ingestion", root / mode / "ingestion") if size is None else None
        warehouse = root / mode / "warehouse" / "analytics.duckdb"
        warehouse.parent.mkdir(parents=True)
        if size is not None:
            shutil.copyfile(root / "raw-only.duckdb", warehouse)
        dag_file(workdir / "dags", dag_id, project, ingestion, str(workdir / "build_state") if mode == REUSE else "")
        subject["dag_ids"][mode], subject["warehouses"][mode], subject["projects"][mode] = dag_id, warehouse, project
    manifest = load_manifest(manifest_path or subject["projects"][REUSE] / "target" / "manifest.json")
    new_source = BUNDLED_NEW if size is None else PART_B
    if size is None:  # a connection's dbt source (ingestion/<connection>.yml: dbt_source)
        new_source = yaml.safe_load((REPO / "ingestion" / f"{BUNDLED_NEW}.yml").read_text())["dbt_source"]
    subject["new_sources"] = sorted(uid for uid, s in manifest.sources.items() if s.source_name == new_source)
    # Each node a build reports on, but the tests on sources alone (they check each load: always run).
    parents = {uid: m.depends_on for uid, m in manifest.models.items()}
    tests = {uid: t.depends_on for uid, t in manifest.tests.items()}
    on_sources = {uid for uid, reads in tests.items() if all(p.startswith("source.") for p in reads)}
    built = {uid for uid, m in manifest.models.items() if not m.is_ephemeral}
    subject["nodes"] = sorted(built | (set(tests) - on_sources))
    subject["source_tests"] = len(on_sources)
    subject["reads_new"] = sorted(descendants(parents | tests, subject["new_sources"]) & set(subject["nodes"]))
    return subject


# --------------------------------------------------------------------------- measuring


def kind_of(uid: str) -> str:
    kind = uid.split(".", 1)[0]
    return "models" if kind in MODEL_KINDS else "tests" if kind in TEST_KINDS else "sources"


def decision_seconds(log_file: Path) -> float | None:
    """How long a build's ``dbt ls`` against the state took, from its log: from the profile it runs with (a
    profile line followed by no dbt command) to the next line but those of the nodes ``dbt ls`` printed."""
    entries = []
    with contextlib.suppress(OSError):
        for line in log_file.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError, AttributeError):
                entry = json.loads(line)
                entries.append((entry["timestamp"], str(entry.get("event", ""))))
    for i, (at, event) in enumerate(entries):
        if not event.startswith("Profile caching"):
            continue
        after = [(t, e) for t, e in entries[i + 1 :] if not e.startswith(("Profile ", "Using real values", '{"'))]
        if after and not after[0][1].startswith("Trying to run"):
            return seconds(at, after[0][0])
    return None


def outcome(subject: dict, mode: str, case: str, statuses: dict[str, str]) -> dict:
    """Which nodes were rebuilt and reused, against what should have been: on a second run with state, exactly
    what reads the new source (``ONE_NEW``) or nothing (``NOTHING``); else every node."""
    nodes = set(subject["nodes"])
    reused = {uid for uid in nodes if statuses.get(uid) == REUSED}
    if mode == FULL or case == FIRST:
        should_reuse = set()
    else:
        should_reuse = nodes - set(subject["reads_new"]) if case == ONE_NEW else nodes
    missing = nodes - set(statuses)
    return {
        "as_expected": reused == should_reuse and not missing,
        "rebuilt_not_expected": sorted(should_reuse - reused)[:5],
        "reused_not_expected": sorted(reused - should_reuse)[:5],
        "missing": sorted(missing)[:5],
        "expected_rebuilt": len(nodes - should_reuse),
    }


def run_once(stack: AirflowStack, subject: dict, mode: str, case: str, repeat: int, ctx: dict) -> dict:
    """One triggered run of the project's ``mode`` DAG, to its end; its builds' times and published results."""
    dag_id = subject["dag_ids"][mode]
    time.sleep(5)  # the previous run's processes are gone and the scheduler is idle
    load = os.getloadavg()[0]
    run_id = stack.trigger(dag_id)
    try:
        state = stack.wait_for_run(dag_id, run_id, timeout=ctx["cap_s"])
    except TimeoutError:
        log(f"  still running after {ctx['cap_s'] / 60:.0f} min: marking {run_id} failed")
        stack.fail_run(dag_id, run_id)
        state = "capped"
    tis = stack.all_task_instances(dag_id, run_id)
    timeline = ctx["workdir"] / "timelines" / f"{dag_id}-{case}-{repeat}.json"
    timeline.parent.mkdir(parents=True, exist_ok=True)
    timeline.write_text(json.dumps(tis, indent=1))
    timed = [ti for ti in tis if ti.get("start_date") and ti.get("end_date")]
    builds = sorted((ti for ti in timed if ti["task_id"].startswith(BUILD_PREFIX)), key=lambda ti: ti["start_date"])
    transform = [ti for ti in timed if ti["task_id"].startswith("transform.")]
    statuses: dict[str, str] = {}
    reused_s = 0.0
    for build in builds:
        for uid, record in (published_results(stack.client, dag_id, run_id, build["task_id"]) or {}).items():
            statuses[uid] = record.status
            reused_s += (record.seconds or 0.0) if record.status == REUSED else 0.0
    counts = Counter(f"{kind_of(uid)}_{'reused' if s == REUSED else 'built'}" for uid, s in statuses.items())
    logs = stack.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    lock_errors = sum(1 for path in logs.rglob("*.log") if LOCK_ERRORS.search(path.read_text(errors="replace")))
    retries = sum(max(0, (ti.get("try_number") or 0) - 1) for ti in tis)
    states = Counter(str(ti["state"]) for ti in tis)
    unexpected = sorted(
        ti["task_id"]
        for ti in tis
        if ti["state"] != "success" and (ti["task_id"], ti["state"]) != (FAIL_RUN_TASK, "skipped")
    )
    first = builds[0]["start_date"] if builds else None
    result = {
        "project": subject["project"],
        "mode": mode,
        "case": case,
        "repeat": repeat,
        "run_id": run_id,
        "state": state,
        "load_1min": round(load, 2),
        "task_states": dict(states),
        "tasks_not_success": unexpected[:5],
        "retries": retries,
        "lock_errors": lock_errors,
        "builds_s": {ti["task_id"]: seconds(ti["start_date"], ti["end_date"]) for ti in builds},
        "builds_sum_s": sum(seconds(ti["start_date"], ti["end_date"]) for ti in builds) if builds else None,
        "builds_span_s": seconds(first, max(ti["end_date"] for ti in builds)) if builds else None,
        "transform_span_s": seconds(first, max(ti["end_date"] for ti in transform)) if builds else None,
        "run_wall_s": seconds(min(ti["start_date"] for ti in timed), max(ti["end_date"] for ti in timed))
        if timed
        else None,
        "syncs_s": {
            ti["task_id"]: seconds(ti["start_date"], ti["end_date"])
            for ti in timed
            if ti["task_id"].startswith("sync_")
        },
        "decision_s": {
            ti["task_id"]: decision_seconds(logs / f"task_id={ti['task_id']}" / f"attempt={ti['try_number']}.log")
            for ti in builds
        }
        if mode == REUSE
        else {},
        "counts": dict(counts),
        "reused_last_build_s": round(reused_s, 1),
        "check": outcome(subject, mode, case, statuses),
    }
    result["ok"] = state == "success" and not (unexpected or retries or lock_errors)
    return result


def measure(stack: AirflowStack, subject: dict, report: dict, args: argparse.Namespace, ctx: dict, write) -> None:
    """The project's first runs, then per repeat a second run of each DAG, the reusing one first on odd repeats,
    with one of two sources new; on the generated project, then another of the reusing DAG with nothing changed
    (the full DAG's would build every node again, as it just did: the same full build)."""
    plan = [(FIRST, 0, (REUSE, FULL))]
    for repeat in range(1, args.repeats + 1):
        plan.append((ONE_NEW, repeat, (REUSE, FULL) if repeat % 2 else (FULL, REUSE)))
        plan += [(NOTHING, repeat, (REUSE,))] if subject["size"] is not None else []
    for case, repeat, order in plan:
        if case == ONE_NEW and subject["size"] is not None:
            for warehouse in subject["warehouses"].values():
                new_rows(warehouse, args.new_rows)
        for mode in order:
            log(f"{subject['project']}, {CASES[case]}, {mode} DAG" + (f", repeat {repeat}" if repeat else ""))
            report["runs"].append(result := run_once(stack, subject, mode, case, repeat, ctx))
            counts, right = result["counts"], result["check"]["as_expected"]
            built = f"{counts.get('models_built', 0)} models built, {counts.get('models_reused', 0)} reused"
            log(f"  {result['state']}: builds {f(result['builds_sum_s'])} s; {built}; as expected: {right}")
            write()


# --------------------------------------------------------------------------- the report


def summarise(report: dict, project: str, case: str) -> dict:
    """One case of one project: medians of each DAG's successful runs, and the ratios. The full build of the
    nothing-changed case is the full DAG's of the one-new case (it builds every node either way)."""
    found = {}
    for mode in (REUSE, FULL):
        which = FULL_RUNS_OF.get(case, case) if mode == FULL else case
        mine = [r for r in report["runs"] if (r["project"], r["mode"], r["case"]) == (project, mode, which)]
        ok = [r for r in mine if r["ok"]]
        found[mode] = {"runs": mine, "ok": ok}
        for key in ("builds_sum_s", "builds_span_s", "transform_span_s", "run_wall_s", "reused_last_build_s"):
            found[mode][key] = median(r[key] for r in ok)
        for key in ("models_built", "models_reused", "tests_built", "tests_reused"):
            found[mode][key] = median(r["counts"].get(key, 0) for r in ok)
        found[mode]["decision_s"] = median(s for r in ok for s in r["decision_s"].values())
    for key in ("builds_sum_s", "builds_span_s", "transform_span_s", "run_wall_s"):
        reuse, full = found[REUSE][key], found[FULL][key]
        found[f"{key}_ratio"] = reuse / full if reuse is not None and full else None
    return found


def x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


TIMES = {  # each time reported, in the order of the table
    "builds_sum_s": "build tasks, summed",
    "builds_span_s": "first build's start to last build's end",
    "transform_span_s": "... to the transform's last task",
    "run_wall_s": "the run, first task to last (syncs included)",
}


def built_row(case: str, sm: dict, runs: list[dict]) -> str:
    reuse, full = sm[REUSE], sm[FULL]
    right = sum(1 for r in runs if r["check"]["as_expected"])
    cells = [
        CASES[case],
        f"{f(reuse['models_built'], 0)} / {f(reuse['models_reused'], 0)}",
        f"{f(reuse['tests_built'], 0)} / {f(reuse['tests_reused'], 0)}",
        f"{f(reuse['reused_last_build_s'])} s",
        f"{f(reuse['decision_s'])} s" if reuse["decision_s"] is not None else "-",
        f"{right} of {len(runs)}",
        f"{len(reuse['ok'])} of {len(reuse['runs'])} / "
        + ("those above" if case in FULL_RUNS_OF else f"{len(full['ok'])} of {len(full['runs'])}"),
    ]
    return "| " + " | ".join(cells) + " |"


def time_rows(case: str, sm: dict) -> list[str]:
    return [
        f"| {CASES[case] if i == 0 else ''} | {label} | {f(sm[REUSE][key])} s | {f(sm[FULL][key])} s "
        f"| {x(sm[f'{key}_ratio'])} |"
        for i, (key, label) in enumerate(TIMES.items())
    ]


def problems(runs: list[dict]) -> list[str]:
    """A line for each run that did not rebuild what it should, or was not fully successful."""
    lines = []
    for r in runs:
        which = f"{r['mode']} DAG, {CASES[r['case']]}, repeat {r['repeat']} (`{r['run_id']}`)"
        if not r["check"]["as_expected"]:
            c = r["check"]
            lines.append(
                f"- **Not as expected**: {which}: {c['expected_rebuilt']} nodes to rebuild; rebuilt though nothing "
                f"they read changed: {', '.join(c['rebuilt_not_expected']) or 'none'}; reused though they read new "
                f"data: {', '.join(c['reused_not_expected']) or 'none'}; "
                f"no result: {', '.join(c['missing']) or 'none'}."
            )
        if not r["ok"]:
            lines.append(
                f"- **Not successful** (left out of the medians): {which}: {r['state']}; tasks {r['task_states']}; "
                f"not success: {', '.join(r['tasks_not_success']) or 'none'}; retries {r['retries']}, DuckDB lock "
                f"errors {r['lock_errors']}."
            )
    return lines


def run_row(r: dict) -> str:
    counts = r["counts"]
    builds = ", ".join(f"`{t.removeprefix('transform.')}` {f(s)}" for t, s in r["builds_s"].items())
    cells = [CASES[r["case"]], str(r["repeat"] or "-"), r["mode"], r["state"] + ("" if r["ok"] else " (not ok)")]
    cells += [f"{counts.get('models_built', 0)} / {counts.get('models_reused', 0)}", builds]
    cells += [f(r[key]) for key in TIMES]
    cells += [", ".join(f(s) for s in r["decision_s"].values()) or "-", str(r["load_1min"])]
    return "| " + " | ".join(cells) + " |"


def project_section(report: dict, subject: dict) -> list[str]:
    name = subject["project"]
    cases = [FIRST, ONE_NEW] + ([NOTHING] if subject["size"] else [])
    runs = [r for r in report["runs"] if r["project"] == name]
    done = [case for case in cases if any(r["case"] == case for r in runs)]
    summaries = {case: summarise(report, name, case) for case in done}
    on_sources = subject.get("source_tests")
    lines = [f"### {subject['title']}", "", subject["description"], ""]
    lines += [f"Tests on sources alone: {on_sources}, counted as built in every run.", ""] if on_sources else []
    lines += [
        "What the reusing DAG built (medians; the full DAG built every node every run):",
        "",
        "| Run | Models built / reused | Tests built / reused | The reused nodes' dbt time at their last build "
        "| Deciding what to reuse (`dbt ls`), per build | Runs that rebuilt what they should "
        "| Runs succeeded, reusing / full |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(built_row(case, summaries[case], [r for r in runs if r["case"] == case]) for case in done),
        "",
        "The transform's time (medians):",
        "",
        "| Run | Time | Reusing DAG | Full build | Reusing / full |",
        "| --- | --- | --- | --- | --- |",
        *(row for case in done for row in time_rows(case, summaries[case])),
        "",
        *(problems(runs) or [f"Every run ({len(runs)}) was successful and rebuilt what it should."]),
        "",
        "Each run, in order:",
        "",
        "| Run | Repeat | DAG | State | Models built / reused | Each build task, s | "
        + " | ".join(label.capitalize() + ", s" for label in TIMES.values())
        + " | Deciding, s | Load (1 min) before |",
        "| --- " * (6 + len(TIMES) + 2) + "|",
        *(run_row(r) for r in runs),
    ]
    return [*lines, ""]


def render(report: dict) -> list[str]:
    meta = report["meta"]
    lines = [
        "# Benchmark: builds that reuse what nothing changed",
        "",
        f"Written by `make bench-reuse` (`bench/reuse.py`; how it works: `bench/README.md`) on {meta['date']}. "
        "Each project has two DAGs on one Airflow, run in turn: one keeping its builds' state (`ELT_BUILD_STATE`, "
        "it reuses what nothing changed), one building every node every run (no state: the full build). "
        f"Medians of {meta['repeats']} second runs of each case (the first runs: one each).",
        "",
        "## Results",
        "",
    ]
    for subject in report["subjects"]:
        lines += project_section(report, subject)
    if not report.get("complete"):
        lines += ["**This run did not finish**: the figures above are what completed.", ""]
    lines += [
        "## How it was run",
        "",
        *context_lines(meta),
        f"- Load average before and after: {meta['load_before']} / {meta.get('load_after', '-')} (1, 5, 15 min).",
        *(
            [f"- **`src/` changed while it ran**: at its end, commit {meta['commit_at_end']}."]
            if meta.get("src_at_end", meta.get("src")) != meta.get("src")
            else []
        ),
        "- Airflow: `devstack/airflow_stack.py`, as in `make bench`, Airflow's default parallelism; the four DAGs in "
        "one DAG folder, each with its own warehouse file and one-slot pool; the reusing DAGs' state "
        "(`build_state`) in a folder of the working directory. The two DAGs of a project run in turn, never at once: "
        "the reusing one first on odd repeats, the full one first on even ones. The first runs come first, the "
        "reusing DAG's first (on the stack's first task: cold).",
        "- **Build tasks, summed**: the durations of the run's `transform.dbt_build…` tasks added up (a task starts "
        "once it has its pool slot; on the bundled project the three builds start after different syncs): dbt's "
        "freshness check, the decision, the build and publishing the results. **First build's start to last "
        "build's end**, **... to the transform's last task** (the node tasks reading the results) and **the run**: "
        "wall times. **Deciding**: in each reusing build's log, from the line naming the profile its `dbt ls` "
        "against the state runs with to the next line but the nodes it printed (what it reuses, or the build's "
        "start): the `dbt ls`, and on DuckDB the check that the tables to reuse are in the file. The counts come "
        "from each build's published results (`dbt_results`): the tests built include those on sources alone, "
        "run on every load; sources' freshness checks are not counted. **Rebuilt what it should**: a full build, "
        "or a first run, built every model and test; a second run reused exactly the models and tests reading no "
        "new source (nothing changed: every one). A run not fully successful (every task `success` but "
        "`transform.fail_run_if_a_node_failed`, skipped; no retry; no DuckDB lock error in its logs) is reported "
        "and left out of the medians.",
        "",
    ]
    return lines


# --------------------------------------------------------------------------- main


def src_fingerprint() -> str:
    """A digest of the platform's code as it is now (``src/``): the task processes import it afresh."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "src").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reuse", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--projects", default="bundled,generated", help="bundled, generated or both (default %(default)s)"
    )
    parser.add_argument("--sizes", default="200", help="models of each generated project (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="second runs of each case (default 3)")
    parser.add_argument("--new-rows", type=int, default=1000, help="new rows per table of source raw_b (default 1000)")
    parser.add_argument("--cap-minutes", type=float, default=10.0, help="a run is stopped after this long (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="of the generated projects (default 0)")
    report_arguments(parser, "reuse.md")
    args = parser.parse_args(argv)
    output = args.output.resolve()
    if args.render_only:
        write_report(output, None, render)
        return 0
    projects = args.projects.split(",")
    if unknown := set(projects) - {"bundled", "generated"}:
        parser.error(f"unknown projects {sorted(unknown)}: choose bundled, generated or both")
    if "bundled" in projects and not Path(os.environ.get("ELT_INGESTION_PYTHON", "/missing")).exists():
        parser.error("ELT_INGESTION_PYTHON is not the PyAirbyte environment: run it with `make bench-reuse`")
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="elt-bench-reuse-"))).resolve()
    (workdir / "dags").mkdir(parents=True, exist_ok=True)
    log(f"working in {workdir}")
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"signal {signum}"))  # the stack stops, as on Ctrl-C
    started = time.monotonic()
    meta = context("bench.reuse", "bench-reuse") | {"repeats": args.repeats, "new_rows": args.new_rows}
    meta["src"] = src_fingerprint()  # the platform's code, which may change under a long run: compared at the end
    meta["load_before"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    report: dict = {"meta": meta, "subjects": [], "runs": [], "complete": False}

    def write() -> None:
        meta["elapsed_min"] = (time.monotonic() - started) / 60
        meta["load_after"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
        write_report(output, report, render)

    subjects = []
    if "bundled" in projects:
        subjects.append(prepare("bundled", workdir, None, args.seed))
        subjects[-1]["title"] = "The bundled project (`dbt_project/`, `ingestion/`), real syncs"
        subjects[-1]["description"] = (
            "Every run syncs both connections. On a second run the shop's Faker connection reads no new record "
            "(`always_updated: false`) while the help desk's CSV connector reads its 400 rows again (a newer "
            "`_airbyte_extracted_at`): one of two sources has new rows, every run. Nothing changed cannot happen "
            "through these syncs, so that case is measured on the generated project only."
        )
    for size in sorted(int(s) for s in args.sizes.split(",")) if "generated" in projects else []:
        subjects.append(prepare(f"generated_{size}", workdir, size, args.seed))
        subjects[-1]["title"] = f"A generated {size}-model project, two sources"
        subjects[-1]["description"] = (
            f"`bench/generate.py` twice (seeds {args.seed} and {args.seed + 1}), {size - size // 2} and "
            f"{size // 2} models, each half over a source of its own (`raw`, `{PART_B}`: events, customers, "
            f"products; a not_null test per model), each source with a freshness check on `{LOADED_AT}`; no "
            f"ingestion. Before each run of the one-new case, {args.new_rows} new rows per table of `{PART_B}`, "
            "loaded now, in both DAGs' warehouses; before a nothing-changed run, nothing. Only the reusing DAG runs "
            "then: its runs are compared with the full DAG's second runs of the one-new case, which build every "
            "node as a full build of unchanged data would."
        )
    for subject in subjects:
        report["subjects"].append({k: v for k, v in subject.items() if k not in ("warehouses", "projects")})
    env = {
        **AIRFLOW_OVERRIDES,
        gen.DB_PATH_ENV: str(workdir / "not-used.duckdb"),  # the generated profiles.yml's; the DAGs use connections
        "AIRFLOW__COSMOS__CACHE_DIR": str(workdir / "cosmos-cache"),
    }
    for subject in subjects:
        for mode, dag_id in subject["dag_ids"].items():
            host = str(subject["warehouses"][mode])
            env[f"AIRFLOW_CONN_BENCH_{dag_id.upper()}"] = json.dumps({"conn_type": "duckdb", "host": host})
    pools = tuple(f"bench_{dag_id}" for subject in subjects for dag_id in subject["dag_ids"].values())
    stack = AirflowStack(workdir / "airflow", workdir / "dags", env, pools=pools)
    ctx = {"workdir": workdir, "cap_s": args.cap_minutes * 60}
    try:
        log("starting Airflow")
        stack.start()
        for subject in subjects:
            measure(stack, subject, report, args, ctx, write)
        report["complete"] = True
    finally:
        meta["src_at_end"], meta["commit_at_end"] = src_fingerprint(), context("bench.reuse", "bench-reuse")["commit"]
        write()
        log("stopping Airflow")
        stack.stop()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"wrote {output} and {output.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
