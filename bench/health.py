"""``make bench-health``: the dashboard health pages against a large Airflow metadata database.

The target: the list page and the JSON answer in under 300 ms for 1,000 models and 50 exposures with 30 days
of run history, and computing health adds no work at DAG parse. The platform is used through its public
surfaces: the DAG factory, the API server's pages over HTTP, ``DashboardHealth`` to read the JSON, and the
status rules (``rules.assess``) for the verdicts of the history this writes through Airflow's models.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg2
import yaml

from bench import generate as gen
from bench.common import (
    REPO,
    Sampler,
    context,
    context_lines,
    last_json,
    log,
    mem,
    parse_times,
    report_arguments,
    write_report,
)
from devstack.airflow_stack import POSTGRES, AirflowStack

TARGET_MS = 300
TEAMS = ("Customer Analytics", "Finance", "Growth", "Operations", "Sales Analytics")
MODEL_ERROR = 'Runtime Error in model {name}: Binder Error: Referenced column "amount" not found in FROM clause!'
TEST_FAILURE = "Got 12 results, configured to fail if != 0"
DAG_FILE = '''"""An airflow DAG of bench/health.py (Airflow's safe mode parses files naming both)."""

from pathlib import Path

from elt_platform.dag_factory import build_elt_dag

dag = build_elt_dag(dag_id="{dag_id}", dbt_project_dir=Path("{project}"), schedule="@daily")
'''


class ApiServerOnly(AirflowStack):
    """The shared stack with its API server alone: the pages read the metadata database, nothing runs."""

    def components(self) -> list[tuple[str, list[str]]]:
        return [c for c in super().components() if c[0] == "api-server"]


def exposures_yaml(models: int, count: int, rng: random.Random) -> dict:
    """``count`` dashboards, each reading 2 to 4 models of the two deepest layers; every third promises a time."""
    # The models after staging are numbered in build order, layer by layer: the deepest two layers come last.
    numbered, last_two = models - len(gen.STAGING), sum(gen.layer_sizes(models)[-2:])
    candidates = [f"int_customers_scored_{n:04d}" for n in range(numbered - last_two + 1, numbered + 1)]
    exposures = []
    for number in range(1, count + 1):
        team = TEAMS[number % len(TEAMS)]
        exposure = {
            "name": f"customer_scores_{number:03d}",
            "label": f"Customer scores {number}",
            "type": "dashboard",
            "maturity": "high",
            "url": f"https://bi.example.com/dashboards/{number}",
            "description": f"Customer scores, view {number}.",
            "depends_on": [f"ref('{name}')" for name in rng.sample(candidates, k=rng.randint(2, 4))],
            "owner": {"name": team, "email": f"{team.lower().replace(' ', '-')}@example.com"},
        }
        if number % 3 == 0:
            exposure["config"] = {"meta": {"fresh_by": "07:00", "fresh_by_timezone": "Europe/Paris"}}
        exposures.append(exposure)
    return {"version": 2, "exposures": exposures}


# --------------------------------------------------------------------------- the history (its own process)


def seed_history(dag_id: str, manifest_path: Path, days: int, seed: int, running: bool) -> dict:
    """``days`` daily runs, the latest two hours ago, a tenth of them (the latest among them) with a failed
    model and a failed test; or (``running``) one run started ten minutes ago, half its models built."""
    from airflow.models import DagModel, DagRun, TaskInstance
    from airflow.models.asset import AssetEvent, AssetModel, TaskOutletAssetReference
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import Text, cast, func, insert, select, update

    from elt_platform.dbt_manifest import load_manifest
    from elt_platform.health import lineage, records, rules
    from elt_platform.transform.results import PRODUCER_TASK_ID, RESULTS_XCOM_KEY

    rng = random.Random(seed + running)
    manifest = load_manifest(manifest_path)
    dashboards = lineage.dashboards(manifest, {}, "transform")
    read = {key for d in dashboards.values() for key, part in d.parts.items() if part.kind is rules.Kind.MODEL}
    # Models the dashboards read, staging left out (a failure there would hold back nearly everything).
    breakable = sorted(uid for uid in read if set(manifest.models[uid].depends_on) & set(manifest.models))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    failing = {0, *rng.sample(range(1, days), k=min(days - 1, max(1, days // 10)))}
    plan = [(now - timedelta(hours=2, days=age), age in failing) for age in reversed(range(days))]
    plan = [(now - timedelta(minutes=10), False)] if running else plan
    # A run still going has built the first half: staging first, then the models in the order they are numbered.
    in_order = sorted(manifest.models, key=lambda uid: (".int_" in uid, uid))
    summary = []
    with create_session() as session:
        dag = SerializedDagModel.get_dag(dag_id, session=session)
        refs = select(TaskOutletAssetReference.task_id, TaskOutletAssetReference.asset_id, AssetModel.name).join(
            AssetModel, AssetModel.id == TaskOutletAssetReference.asset_id
        )
        assets = {name.removeprefix(f"{dag_id}."): (task, asset) for task, asset, name in session.execute(refs)}
        previous: dict[str, rules.Assessment | None] = {}
        for run_after, failing in plan:
            failed = test_failed = tested = None
            if failing:
                failed = rng.choice(breakable)
                tested = rng.choice([u for u in breakable if u != failed and u not in manifest.downstream_of({failed})])
                test_failed = next(t.unique_id for t in manifest.tests.values() if tested in t.depends_on)
            held_back = manifest.downstream_of({failed, tested}) if failing else set()
            built = in_order[: len(in_order) // 2] if running else in_order
            results = {
                uid: {"status": "pass", "max_loaded_at": (run_after - timedelta(minutes=20)).isoformat()}
                for uid in manifest.sources
            }
            states = {f"transform.{s.task_id}": "success" for s in manifest.sources.values()}
            for uid in built:
                status = "error" if uid == failed else "skipped" if uid in held_back else "success"
                results[uid] = {"status": status, "message": MODEL_ERROR.format(name=uid) if uid == failed else None}
                results[uid]["skipped_after_failure"] = status == "skipped"
                task_state = {"error": "failed", "skipped": "upstream_failed"}.get(status, "success")
                states[f"transform.{manifest.models[uid].task_id}"] = "failed" if uid == tested else task_state
            for test in manifest.tests.values():
                if results.get(test.depends_on[0], {}).get("status") == "success":
                    fails = test.unique_id == test_failed
                    results[test.unique_id] = (
                        {"status": "fail", "message": TEST_FAILURE} if fails else {"status": "pass"}
                    )
            state = "running" if running else "failed" if failing else "success"
            start = run_after + timedelta(seconds=30)
            end = None if running else start + timedelta(minutes=rng.uniform(6, 12))
            dag_run = dag.create_dagrun(
                run_id=f"scheduled__{run_after.isoformat()}",
                logical_date=run_after,
                data_interval=(run_after - timedelta(days=1), run_after),
                run_after=run_after,
                run_type=DagRunType.SCHEDULED,
                triggered_by=DagRunTriggeredByType.TIMETABLE,
                state=state,
                start_date=start,
                session=session,
            )
            dag_run.end_date, dag_run.queued_at = end, run_after
            states[f"transform.{PRODUCER_TASK_ID}"] = state if running else "success"
            states["transform.fail_run_if_a_node_failed"] = None if running else "failed" if failing else "skipped"
            states["dashboards.marts"] = None if running else "success"
            tasks = {task: rules.TaskOutcome(task_state) for task, task_state in states.items()}
            outcome = rules.RunOutcome(dag_run.run_id, state, start, end, tasks, records.node_results(results))
            verdicts = {}
            for name, dashboard in [] if running else dashboards.items():
                previous[name] = rules.assess(dashboard, outcome, previous.get(name))
                verdicts[assets[name][0]] = records.verdict(previous[name])
                states[assets[name][0]] = "success" if previous[name].status is rules.Status.FRESH else "skipped"
            rows = []
            for ti in dag_run.get_task_instances(session=session):  # each ran for the whole run, to keep it simple
                ti_state = states.get(ti.task_id)
                began, ended = (start, None if ti_state == "running" else end or now) if ti_state else (None, None)
                duration = (ended - began).total_seconds() if ended else None
                rows.append({"id": ti.id, "state": ti_state, "try_number": int(bool(ti_state)), "start_date": began})
                rows[-1] |= {"end_date": ended, "duration": duration, "queued_dttm": began}
            session.execute(update(TaskInstance), rows)
            # As the Task Execution API stores XComs: JSON values.
            common = {"dag_run_id": dag_run.id, "dag_id": dag_id, "run_id": dag_run.run_id, "map_index": -1}
            xcoms = [{**common, "task_id": f"transform.{PRODUCER_TASK_ID}", "key": RESULTS_XCOM_KEY, "value": results}]
            xcoms += [{**common, "task_id": t, "key": records.VERDICT_KEY, "value": v} for t, v in verdicts.items()]
            session.execute(insert(XComModel), xcoms)
            for task, verdict in verdicts.items():
                if verdict["status"] == "fresh":
                    asset_id = next(asset for t, asset in assets.values() if t == task)
                    extra = {"data_as_of": verdict["data_as_of"], "rows": {}, "run_id": dag_run.run_id}
                    session.add(
                        AssetEvent(
                            asset_id=asset_id,
                            extra=extra,
                            source_dag_id=dag_id,
                            source_task_id=task,
                            source_run_id=dag_run.run_id,
                            source_map_index=-1,
                            timestamp=end,
                        )
                    )
            session.commit()
            summary.append(
                {"run_id": dag_run.run_id, "state": state, "failed_model": failed, "failed_test": test_failed}
            )
        session.get(DagModel, dag_id).is_paused = False  # as deployed: the pages say when the next run is due
        tables = {"dag_runs": DagRun, "task_instances": TaskInstance, "xcoms": XComModel, "asset_events": AssetEvent}
        volumes = {name: session.scalar(select(func.count()).select_from(model)) for name, model in tables.items()}
        largest = select(func.max(func.length(cast(XComModel.value, Text)))).where(XComModel.key == RESULTS_XCOM_KEY)
        volumes["dbt_results_xcom_bytes"] = session.scalar(largest)
    return {"runs": summary, "volumes": volumes}


# --------------------------------------------------------------------------- measuring


def timings(samples_ms: list[float]) -> dict:
    ordered = sorted(samples_ms)
    p90 = statistics.quantiles(ordered, n=10, method="inclusive")[-1] if len(ordered) > 1 else ordered[0]
    return {"median_ms": statistics.median(ordered), "p90_ms": p90, "max_ms": ordered[-1], "calls": len(ordered)}


def measure_pages(stack: AirflowStack, dag_id: str, exposure: str, calls: int, cold: bool) -> dict:
    """``calls`` rounds of each page through the API server, in a shuffled order each round (so that neither
    the machine's noise nor the collector's rhythm falls on one page), after one warm-up request of each."""
    from elt_platform.health.report import DashboardHealth

    detail = f"/dashboards/{dag_id}/{exposure}"
    paths = {"list_page": "/dashboards/", "json": "/dashboards/api/health", "detail_page": detail}
    client = httpx.Client(base_url=stack.base_url, timeout=60)

    def get(name: str) -> tuple[float, httpx.Response]:
        started = time.perf_counter()
        response = client.get(paths[name], headers={"Accept": "*/*" if name == "json" else "text/html"})
        response.raise_for_status()
        return (time.perf_counter() - started) * 1000, response

    server = Sampler([stack.procs[0].pid], interval=0.05, pss_every=0)
    idle, _ = server.sample()
    server.peak_rss = 0
    result: dict = {"cold_ms": get("list_page")[0] if cold else None}
    samples: dict[str, list[float]] = {name: [] for name in paths}
    order, rng = list(paths), random.Random(calls)
    with server:
        for name in order:
            get(name)
        for _ in range(calls):
            rng.shuffle(order)
            for name in order:
                samples[name].append(get(name)[0])
    for name, path in paths.items():
        result[name] = {"path": path, **timings(samples[name])}
    answer = get("json")[1]
    items = [DashboardHealth.model_validate(h) for h in answer.json()["dashboards"]]
    statuses = {str(s): sum(h.status == s for h in items) for s in sorted({h.status for h in items})}
    result |= {"rss_idle_bytes": idle, "rss_peak_bytes": server.peak_rss, "json_bytes": len(answer.content)}
    result["list_page_bytes"] = len(get("list_page")[1].content)
    client.close()
    return {
        "http": result,
        "statuses": statuses,
        "refreshing": sum(h.refreshing for h in items),
        "dashboards": len(items),
    }


def bench_size(models: int, args: argparse.Namespace, root: Path) -> dict:
    dag_id = f"bench_health_{models}"
    log(f"{models} models: generating the project, with {args.exposures} exposures and without")
    bare = gen.generate(root / "projects" / f"models_{models}_no_exposures", models, seed=args.seed).parent.parent
    project = root / "projects" / f"models_{models}"
    shutil.copytree(bare, project, ignore=shutil.ignore_patterns("target", "logs"), dirs_exist_ok=True)
    spec = exposures_yaml(models, args.exposures, random.Random(args.seed))
    (project / "models" / "exposures.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    manifest_path = gen.dbt_parse(project)
    files = {"with_exposures": root / "dags" / f"{dag_id}.py", "without_exposures": root / f"{dag_id}_bare.py"}
    files["with_exposures"].parent.mkdir(parents=True, exist_ok=True)
    for path, source in zip(files.values(), (project, bare), strict=True):
        path.write_text(DAG_FILE.format(dag_id=path.stem, project=source))
    stack = ApiServerOnly(root / "airflow", root / "dags", {"AIRFLOW__CORE__LOAD_EXAMPLES": "False"}, pools=())
    exposure = spec["exposures"][0]["name"]
    result: dict = {"models": models, "exposures": args.exposures, "days": args.days, "detail_exposure": exposure}
    log(f"parse time with and without the exposures, {args.parse_runs} fresh interpreters each")
    result["parse"] = parse_times(files, args.parse_runs, stack.env, kinds=("warm",))
    parse_time = REPO / "bench" / "parse_time.py"
    profiled = last_json(stack.env, parse_time, files["with_exposures"], "--calls", "elt_platform/health/")
    result["parse_calls"] = profiled["calls"]
    try:
        log("starting the API server, airflow dags reserialize")
        stack.start()
        stack.airflow("dags", "reserialize")
        result["variants"] = {}
        for variant in ("ended", "running"):
            log(f"history: {'a run still going' if variant == 'running' else f'{args.days} days'}")
            started = time.monotonic()
            seed = ["--seed-history", dag_id, manifest_path, "--days", args.days, "--seed", args.seed]
            history = last_json(stack.env, "-m", "bench.health", *seed, *["--running"] * (variant == "running"))
            if variant == "ended":
                result |= {"history_s": time.monotonic() - started, **history}
            log(f"  the pages, {args.calls} rounds")
            measured = measure_pages(stack, dag_id, exposure, args.calls, cold=variant == "ended")
            result["variants"][variant] = measured
            if measured["dashboards"] != args.exposures:
                raise RuntimeError(f"the JSON lists {measured['dashboards']} dashboards, not {args.exposures}")
            log(f"  list page {measured['http']['list_page']['median_ms']:.0f} ms, statuses {measured['statuses']}")
    finally:
        stack.stop()
    return result


# --------------------------------------------------------------------------- the report


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


PAGES = (
    ("list_page", "List page `/dashboards/`", True),
    ("json", "JSON `/dashboards/api/health`", True),
    ("detail_page", "One dashboard's page, with its lineage", False),
)
VARIANTS = {
    "ended": "the latest run ended (it failed: one model, one test)",
    "running": "a run still going (half its models built, no dashboard task ended)",
}


def size_section(result: dict) -> list[str]:
    vol = result["volumes"]
    lines = [
        f"### {result['models']:,} models, {result['exposures']} dashboards, {result['days']} days",
        "",
        f"Metadata database: {vol['dag_runs']} DAG runs, {vol['task_instances']:,} task instances, {vol['xcoms']:,} "
        f"XComs (the largest, a `dbt_results`: {vol['dbt_results_xcom_bytes'] / 1024:.0f} kB of JSON), "
        f"{vol['asset_events']:,} asset events, written in {result['history_s']:.0f} s. Through the API server, "
        f"milliseconds, {result['variants']['ended']['http']['list_page']['calls']} rounds:",
        "",
        "| Variant | Page | median | p90 | max | < 300 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    notes = []
    for variant, title in VARIANTS.items():
        measured = result["variants"][variant]
        http = measured["http"]
        for key, label, target in PAGES:
            figures = http[key]
            verdict = ("met" if figures["median_ms"] < TARGET_MS else "**not met**") if target else "-"
            cells = [ms(figures[k]) for k in ("median_ms", "p90_ms", "max_ms")]
            lines.append(f"| {variant} | {label} | {' | '.join(cells)} | {verdict} |")
        statuses = ", ".join(f"{n} {s}" for s, n in measured["statuses"].items())
        notes.append(
            f"- *{variant}*, {title}: dashboards {statuses}, {measured['refreshing']} refreshing. "
            + (f"The API server's first list page: {ms(http['cold_ms'])} ms. " if http["cold_ms"] else "")
            + f"Its memory (RSS, with its children): {mem(http['rss_idle_bytes'])} before the requests, at most "
            f"{mem(http['rss_peak_bytes'])} during them. Answers: list page {http['list_page_bytes'] / 1024:.0f} kB, "
            f"JSON {http['json_bytes'] / 1024:.0f} kB."
        )
    lines += ["", *notes, ""]
    with_, without = result["parse"]["with_exposures"], result["parse"]["without_exposures"]
    called = ", ".join(f"`{f}` x{n}" for f, n in result["parse_calls"].items() if "rules.py" in f or "report.py" in f)
    lines += [
        f"DAG parse (`bench/parse_time.py --warm`, fresh interpreters, alternating, {len(with_['warm_s'])} each):",
        "",
        "| DAG file | tasks | median (ms) | every run (ms) |",
        "| --- | --- | --- | --- |",
    ]
    for label, figures in (("with the exposures", with_), ("`exposures.yml` removed", without)):
        every = ", ".join(ms(s * 1000) for s in figures["warm_s"])
        lines.append(f"| {label} | {figures['tasks']} | {ms(figures['warm_median_s'] * 1000)} | {every} |")
    delta = (with_["warm_median_s"] - without["warm_median_s"]) * 1000
    lines += [
        "",
        f"The `dashboards` group adds {ms(delta)} ms to the median parse. Of the status rules (`rules.py`) and the "
        f"report (`report.py`), a parse runs (cProfile): {called or 'nothing'}.",
        "",
    ]
    return lines


def render(report: dict) -> list[str]:
    meta = report["meta"]
    load = " to ".join(", ".join(f"{x:.1f}" for x in meta[k]) for k in ("load_start", "load_end"))
    lines = [
        "# Benchmark: the dashboard health pages",
        "",
        f"Written by `make bench-health` (`bench/health.py`) on {meta['date']}. The target: the list page and the "
        f"JSON answer in under {TARGET_MS} ms (median, through the API server) for 1,000 models and 50 exposures "
        "with 30 days of run history; computing health adds no work at DAG parse.",
        "",
        "## Results",
        "",
        "| Size | Variant | List page median (p90) | JSON median (p90) | Met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for result in report["sizes"]:
        for variant in VARIANTS:
            http = result["variants"][variant]["http"]
            pages, answer = http["list_page"], http["json"]
            met = "yes" if max(pages["median_ms"], answer["median_ms"]) < TARGET_MS else "**no**"
            lines.append(
                f"| {result['models']:,} models, {result['exposures']} dashboards, {result['days']} days | {variant} "
                f"| {ms(pages['median_ms'])} ms ({ms(pages['p90_ms'])}) | {ms(answer['median_ms'])} ms "
                f"({ms(answer['p90_ms'])}) | {met} |"
            )
    lines.append("")
    for result in report["sizes"]:
        lines += size_section(result)
    if not report.get("complete", True):
        lines += ["**This run did not finish**: the figures above are what completed.", ""]
    lines += [
        "## How it was run",
        "",
        *context_lines(meta),
        f"- PostgreSQL {meta['postgres']}. Load average (1, 5, 15 min) {load}, from the start of the run to its end: "
        "the machine is shared; compare the figures of one run, side by side.",
        "- A project from `bench/generate.py`, plus `models/exposures.yml`: dashboards each reading 2 to 4 models of "
        "the last two layers (every third with a `fresh_by` promise), rendered by `build_elt_dag` (`@daily`) and "
        "serialized with its assets (`airflow dags reserialize`) into a PostgreSQL database of its own.",
        "- History written through Airflow's models: one run a day, every task instance with its state and times, "
        "the build's `dbt_results` XCom, each dashboard task's verdict (the platform's `rules.assess`) and the fresh "
        "dashboards' asset events. A tenth of the runs, the latest among them, fail: one model (what reads it held "
        "back) and one test. A second variant adds a run still going.",
        "- The pages through `airflow api-server` (one worker, the default, `devstack/airflow_stack.py`), httpx on "
        "the same machine, in a shuffled order each round after a warm-up; a request's time is until its whole "
        "body is read. The JSON is read with `elt_platform.health.report.DashboardHealth`.",
        *([f"- {meta['note']}"] if meta.get("note") else []),
        "",
    ]
    return lines


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.health", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000", help="models per generated project (default %(default)s)")
    parser.add_argument("--exposures", type=int, default=50, help="dashboards (default %(default)s)")
    parser.add_argument("--days", type=int, default=30, help="of run history, one run a day (default %(default)s)")
    parser.add_argument("--calls", type=int, default=30, help="timed rounds per variant (default %(default)s)")
    parser.add_argument("--parse-runs", type=int, default=5, help="fresh interpreters per parse figure (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="of the project and the history (default 0)")
    report_arguments(parser, "health.md")
    parser.add_argument("--seed-history", nargs=2, metavar=("DAG_ID", "MANIFEST"), help=argparse.SUPPRESS)
    parser.add_argument("--running", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seed_history:  # in the process the stack's environment points at its database
        dag_id, manifest = args.seed_history
        print(json.dumps(seed_history(dag_id, Path(manifest), args.days, args.seed, args.running), default=str))
        return 0
    output = args.output.resolve()
    if args.render_only:
        write_report(output, None, render)
        return 0
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="elt-bench-health-"))).resolve()
    log(f"working in {workdir}")
    # DashboardHealth's module imports Airflow, which reads its configuration from here, not from ~/airflow.
    os.environ["AIRFLOW_HOME"] = str(workdir / "airflow-home")
    started = time.monotonic()
    with contextlib.closing(psycopg2.connect(**POSTGRES)) as conn, conn.cursor() as cursor:
        cursor.execute("show server_version")
        meta = context("bench.health", "bench-health") | {"postgres": cursor.fetchone()[0]}
    meta["load_start"] = os.getloadavg()
    report = {"meta": meta, "sizes": [], "complete": False}
    try:
        for models in sorted(int(x) for x in args.sizes.split(",")):
            report["sizes"].append(bench_size(models, args, workdir / f"size_{models}"))
        report["complete"] = True
    finally:
        meta |= {"elapsed_min": (time.monotonic() - started) / 60, "load_end": os.getloadavg()}
        if report["sizes"]:
            write_report(output, report, render)
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"wrote {output} and {output.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
