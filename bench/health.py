"""``make bench-health``: the dashboard health pages against a large Airflow metadata database.

The product requirement: the list page (``/dashboards/``) and the JSON (``/dashboards/api/health``)
answer in under 300 ms for 1,000 models and 50 exposures with 30 days of run history, and
computing health adds no work at DAG parse. Timed tests would be flaky on shared machines, so
this measures it instead, all figures side by side in one run:

1. a generated dbt project (bench/generate.py) with exposures on models of its last layers,
   rendered by ``build_elt_dag`` and serialized, with its dashboard assets, into a fresh
   PostgreSQL database;
2. a history written through Airflow's own models: one run a day (a few with a failed model
   and a failed test), every task instance, the build's ``dbt_results``, each dashboard
   task's verdict and the fresh dashboards' asset events; then a second variant whose
   latest run is still going;
3. ``report()``, the list page and the JSON in this process (cold, then warm calls), and the
   same pages through a real ``airflow api-server`` with the health plugin, with its memory;
4. the DAG file's parse time with and without the exposures (the ``dashboards`` group), in
   fresh interpreters, and a profile of the parse showing which health code it runs.

Results go to docs/benchmarks-health.md and docs/benchmarks-health.json.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import os
import pstats
import random
import shlex
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import psycopg2
import yaml

from bench import generate as gen
from bench.run import ANALYSIS_END, ANALYSIS_START, existing_analysis, git_state, log, machine, versions
from devstack.airflow_stack import POSTGRES, admin_sql, free_port
from elt_platform.health import records
from elt_platform.transform.results import PRODUCER_TASK_ID, RESULTS_XCOM_KEY

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TARGET_MS = 300
DAG_ID = "bench_health"
LAST_LAYERS = 2  # exposures read models of the graph's two deepest layers
TEAMS = ("Customer Analytics", "Finance", "Growth", "Operations", "Sales Analytics")
# The DAG factory's task groups (importing it here would import Airflow before its settings are set).
TRANSFORM, DASHBOARDS = "transform", "dashboards"
RESULTS_TASK = f"{TRANSFORM}.{PRODUCER_TASK_ID}"
FAIL_RUN_TASK = f"{TRANSFORM}.fail_run_if_a_node_failed"
MODEL_ERROR = 'Runtime Error in model {name}: Binder Error: Referenced column "amount" not found in FROM clause!'
TEST_FAILURE = "Got 12 results, configured to fail if != 0"

DAG_FILE = string.Template('''"""Benchmark airflow DAG of bench/health.py: ${models} models, ${exposures} dashboards."""

from pathlib import Path

from elt_platform.dag_factory import build_elt_dag

dag = build_elt_dag(dag_id="${dag_id}", dbt_project_dir=Path("${project_dir}"), schedule="@daily")
''')


# --------------------------------------------------------------------------- statistics


def summary(samples_ms: list[float]) -> dict:
    """Median, p90 and max of a list of milliseconds (all kept in the JSON)."""
    ordered = sorted(samples_ms)
    p90 = statistics.quantiles(ordered, n=10, method="inclusive")[-1] if len(ordered) > 1 else ordered[0]
    return {
        "median_ms": statistics.median(ordered),
        "p90_ms": p90,
        "max_ms": ordered[-1],
        "calls": len(ordered),
        "samples_ms": samples_ms,
    }


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return (time.perf_counter() - start) * 1000, value


class GcPauses:
    """The time this process's garbage collector runs (``gc.callbacks``), in ms: cProfile charges it to
    whichever function happens to allocate when a collection starts."""

    def __init__(self):
        self.total_ms = 0.0
        self._start = 0.0

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total_ms += (time.perf_counter() - self._start) * 1000

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self._callback)


def rounds(functions: dict[str, Callable[[], object]], calls: int, seed: int) -> dict:
    """``calls`` rounds of every function, in a shuffled order each round (so that neither the noise of
    the machine nor the collector's rhythm falls on one of them), after one warm-up call of each.
    Per function: the summary of its times, and the collector's pauses within them."""
    rng = random.Random(seed)
    for fn in functions.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in functions}
    pauses: dict[str, list[float]] = {name: [] for name in functions}
    order = list(functions)
    with GcPauses() as collector:
        for _ in range(calls):
            rng.shuffle(order)
            for name in order:
                before = collector.total_ms
                samples[name].append(timed(functions[name])[0])
                pauses[name].append(collector.total_ms - before)
    return {
        name: {**summary(samples[name]), "gc_median_ms": statistics.median(pauses[name]), "gc_ms": pauses[name]}
        for name in functions
    }


# --------------------------------------------------------------------------- the dbt project


def dbt_parse(project: Path) -> None:
    env = {**os.environ, gen.DB_PATH_ENV: str(project / "parse.duckdb")}
    args = ["parse", "--quiet", "--no-partial-parse", "--project-dir", str(project), "--profiles-dir", str(project)]
    subprocess.run([str(gen.DBT), *args], check=True, env=env, cwd=project)


def model_depths(parents: dict[str, list[str]]) -> dict[str, int]:
    """Each model's depth in the graph (``parents``: model -> the models it reads): 0 for staging, 8 for
    the generator's last layer."""
    depths: dict[str, int] = {}

    def depth(uid: str) -> int:
        if uid not in depths:
            depths[uid] = 1 + max((depth(p) for p in parents[uid]), default=-1)
        return depths[uid]

    for uid in parents:
        depth(uid)
    return depths


def exposures_yaml(manifest: dict, count: int, rng: random.Random) -> dict:
    """``count`` dashboards, each reading 2 to 4 models of the last layers; every third promises a time."""
    depths = model_depths(
        {
            uid: [p for p in node["depends_on"]["nodes"] if p.startswith("model.")]
            for uid, node in manifest["nodes"].items()
            if node["resource_type"] == "model"
        }
    )
    deepest = max(depths.values())
    candidates = sorted(manifest["nodes"][uid]["name"] for uid, d in depths.items() if d > deepest - LAST_LAYERS)
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


def make_projects(workdir: Path, models: int, exposures: int, seed: int) -> tuple[Path, Path]:
    """The generated project with ``models/exposures.yml``, and a copy of it without, each parsed."""
    with_exposures = workdir / f"models_{models}"
    manifest = gen.generate(with_exposures, models, seed=seed)
    without = workdir / f"models_{models}_no_exposures"
    shutil.copytree(with_exposures, without, ignore=shutil.ignore_patterns("target", "logs"))
    spec = exposures_yaml(json.loads(manifest.read_text()), exposures, random.Random(seed))
    (with_exposures / "models" / "exposures.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    dbt_parse(with_exposures)
    dbt_parse(without)
    return with_exposures, without


def write_dag_file(dest: Path, dag_id: str, project: Path, models: int, exposures: int) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{dag_id}.py"
    text = DAG_FILE.substitute(dag_id=dag_id, project_dir=project, models=models, exposures=exposures)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- Airflow's metadata database


def airflow_env(home: Path, database: str, dags_folder: Path, port: int) -> dict[str, str]:
    base_url = f"http://127.0.0.1:{port}"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
            f"postgresql+psycopg2://{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}/{database}"
        ),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": f"bench-only-{uuid.uuid4().hex}",
        # Every request is an admin's (a token is made per request): no login to script.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    }


def airflow(*args: str) -> None:
    done = subprocess.run([str(BIN / "airflow"), *args], env=os.environ, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"airflow {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")


# --------------------------------------------------------------------------- history


class History:
    """Writes DAG runs through Airflow's models: every task instance, the build's results, the verdicts."""

    def __init__(self, session, dag_id: str, manifest_path: Path, rng: random.Random):
        from airflow.models.asset import TaskOutletAssetReference
        from airflow.models.serialized_dag import SerializedDagModel
        from sqlalchemy import select

        from elt_platform.dbt_manifest import load_manifest
        from elt_platform.health.lineage import upstream

        self.session = session
        self.dag_id = dag_id
        self.rng = rng
        self.dag = SerializedDagModel.get_dag(dag_id, session=session)
        self.manifest = load_manifest(manifest_path)
        self.assets = dict(
            session.execute(
                select(TaskOutletAssetReference.task_id, TaskOutletAssetReference.asset_id).where(
                    TaskOutletAssetReference.dag_id == dag_id
                )
            ).all()
        )
        self.upstream = {e.name: upstream(self.manifest, e.depends_on) for e in self.manifest.exposures.values()}
        read = set().union(*self.upstream.values())
        # Models the dashboards read, staging left out (a failure there would hold back nearly everything).
        self.breakable = sorted(u for u in read if u in self.manifest.models and self.manifest.models[u].depends_on)
        self.depths = model_depths(
            {uid: [p for p in m.depends_on if p in self.manifest.models] for uid, m in self.manifest.models.items()}
        )

    def task_of(self, uid: str) -> str:
        node = self.manifest.models.get(uid) or self.manifest.sources[uid]
        return f"{TRANSFORM}.{node.task_id}"

    def dashboard_task(self, name: str) -> str:
        return f"{DASHBOARDS}.{name}"

    def add_run(self, run_after: datetime, minutes: float, failing: bool = False, running: bool = False) -> dict:
        """One scheduled run; ``failing``: a model fails (its descendants skipped) and a test fails."""
        from airflow.utils.state import DagRunState
        from airflow.utils.types import DagRunTriggeredByType, DagRunType

        start = run_after + timedelta(seconds=30)
        end = None if running else start + timedelta(minutes=minutes)
        failed, test_failed = self._failures() if failing else (None, None)
        tested_model = self.manifest.tests[test_failed].depends_on[0] if test_failed else None
        # dbt build skips what reads a failed model, and what reads a model whose test failed.
        skipped = self.manifest.downstream_of({failed, tested_model}) if failing else set()
        state = DagRunState.RUNNING if running else DagRunState.FAILED if failed else DagRunState.SUCCESS
        dag_run = self.dag.create_dagrun(
            run_id=f"scheduled__{run_after.isoformat()}",
            logical_date=run_after,
            data_interval=(run_after - timedelta(days=1), run_after),
            run_after=run_after,
            run_type=DagRunType.SCHEDULED,
            triggered_by=DagRunTriggeredByType.TIMETABLE,
            state=state,
            start_date=start,
            session=self.session,
        )
        dag_run.end_date = end
        dag_run.queued_at = run_after
        results = self._results(run_after, failed, test_failed, skipped, running)
        states = self._model_states(failed, tested_model, skipped, results, running)
        verdicts = {} if running else self._verdicts(run_after, failed, test_failed, skipped)
        self._task_states(dag_run, states, verdicts, start, end, failing, running)
        self._xcoms(dag_run, results, verdicts, failed, tested_model)
        if not running:
            self._asset_events(dag_run, verdicts, end)
        self.session.commit()
        return {
            "run_id": dag_run.run_id,
            "state": str(state),
            "failed_model": failed,
            "failed_test": test_failed,
            "held_back": len(skipped),
        }

    def _failures(self) -> tuple[str, str]:
        failed = self.rng.choice(self.breakable)
        downstream = self.manifest.downstream_of({failed})
        model = self.rng.choice([uid for uid in self.breakable if uid != failed and uid not in downstream])
        test = next(t.unique_id for t in self.manifest.tests.values() if model in t.depends_on)
        return failed, test

    def _results(self, run_after, failed, test_failed, skipped, running) -> dict[str, dict]:
        """The ``dbt_results`` XCom as the build publishes it: one entry per source, model and test."""
        loaded = (run_after - timedelta(minutes=20)).isoformat()
        results = {
            uid: {"status": "pass", "event": "pass", "msg": None, "rows": None, "max_loaded_at": loaded}
            for uid in self.manifest.sources
        }
        models = list(self.manifest.models)
        if running:  # the build is half-way: the shallower half of the graph is built
            models = sorted(models, key=self.depths.get)[: len(models) // 2]
        for uid in models:
            if uid == failed:
                results[uid] = {"status": "error", "message": MODEL_ERROR.format(name=uid)}
            elif uid in skipped:
                results[uid] = {"status": "skipped", "skipped_after_failure": True}
            else:
                results[uid] = {"status": "success"}
        for test in self.manifest.tests.values():
            parent = test.depends_on[0]
            if parent not in results or results[parent]["status"] != "success":
                continue
            failing = test.unique_id == test_failed
            status = "fail" if failing else "pass"
            results[test.unique_id] = {"status": status, "message": TEST_FAILURE if failing else None}
        return results

    def _model_states(self, failed, tested_model, skipped, results, running) -> dict[str, str | None]:
        """Each node task's Airflow state: a failed test fails its model's task."""
        states: dict[str, str | None] = {self.task_of(uid): "success" for uid in self.manifest.sources}
        for uid in self.manifest.models:
            if running:
                state = "success" if uid in results else None
            elif uid in (failed, tested_model):
                state = "failed"
            else:
                state = "upstream_failed" if uid in skipped else "success"
            states[self.task_of(uid)] = state
        return states

    def _verdicts(self, run_after, failed, test_failed, skipped) -> dict[str, dict]:
        """Each dashboard task's verdict, as ``PublishDashboardHealth`` records it."""
        tested_model = self.manifest.tests[test_failed].depends_on[0] if test_failed else None
        data_as_of = (run_after - timedelta(minutes=20)).isoformat()
        verdicts = {}
        for name, nodes in self.upstream.items():
            causes, held_back = [], []
            if tested_model in nodes:
                causes.append(f"test {self.manifest.tests[test_failed].name}: {TEST_FAILURE}")
            if failed in nodes:
                model = self.manifest.models[failed]
                causes.append(f"model {model.display_name}: {MODEL_ERROR.format(name=failed)}")
                held_back = sorted(self.manifest.models[u].display_name for u in skipped & nodes)
            status = "broken" if tested_model in nodes else "stale" if causes else "fresh"
            verdicts[self.dashboard_task(name)] = {
                "status": status,
                "causes": causes,
                "held_back": held_back,
                "data_as_of": data_as_of,
            }
        return verdicts

    def _task_states(self, dag_run, states, verdicts, start, end, failing, running) -> None:
        """Every task instance's state, try and times, in one bulk update by primary key."""
        from airflow.models import TaskInstance
        from sqlalchemy import update

        states = dict(states)
        states[RESULTS_TASK] = "running" if running else "success"
        states[FAIL_RUN_TASK] = None if running else "failed" if failing else "skipped"
        states[f"{DASHBOARDS}.marts"] = None if running else "success"
        for task_id, verdict in verdicts.items():
            states[task_id] = "success" if verdict["status"] == "fresh" else "skipped"
        span = ((end or datetime.now(UTC)) - start).total_seconds()
        rows = []
        for ti in dag_run.get_task_instances(session=self.session):
            state = states.get(ti.task_id)
            began = start + timedelta(seconds=self.rng.uniform(0, span * 0.8)) if state else None
            ended = began + timedelta(seconds=self.rng.uniform(1, span * 0.2)) if state and state != "running" else None
            rows.append(
                {
                    "id": ti.id,
                    "state": state,
                    "try_number": 1 if state else 0,
                    "start_date": began,
                    "end_date": ended,
                    "duration": (ended - began).total_seconds() if ended else None,
                    "queued_dttm": began,
                }
            )
        self.session.execute(update(TaskInstance), rows)

    def _xcoms(self, dag_run, results, verdicts, failed, tested_model) -> None:
        """As the Task Execution API stores them: JSON values, not serialized strings. A failed task's
        error excerpt too (``alerts.ERROR_XCOM_KEY``)."""
        from airflow.models.xcom import XComModel
        from sqlalchemy import insert

        from elt_platform.alerts.message import ERROR_XCOM_KEY

        common = {"dag_run_id": dag_run.id, "dag_id": self.dag_id, "run_id": dag_run.run_id, "map_index": -1}
        rows = [{**common, "task_id": RESULTS_TASK, "key": RESULTS_XCOM_KEY, "value": results}]
        rows += [{**common, "task_id": t, "key": records.VERDICT_KEY, "value": v} for t, v in verdicts.items()]
        if failed:
            error = MODEL_ERROR.format(name=failed)
            rows.append({**common, "task_id": self.task_of(failed), "key": ERROR_XCOM_KEY, "value": error})
            rows.append({**common, "task_id": self.task_of(tested_model), "key": ERROR_XCOM_KEY, "value": TEST_FAILURE})
        self.session.execute(insert(XComModel), rows)

    def _asset_events(self, dag_run, verdicts, end) -> None:
        from airflow.models.asset import AssetEvent

        for task_id, verdict in verdicts.items():
            if verdict["status"] == "fresh":
                self.session.add(
                    AssetEvent(
                        asset_id=self.assets[task_id],
                        extra={"data_as_of": verdict["data_as_of"], "rows": {}, "run_id": dag_run.run_id},
                        source_dag_id=self.dag_id,
                        source_task_id=task_id,
                        source_run_id=dag_run.run_id,
                        source_map_index=-1,
                        timestamp=end,
                    )
                )


def fill_history(dag_id: str, manifest_path: Path, days: int, seed: int, now: datetime) -> list[dict]:
    """One run a day for ``days`` days, the latest ended; a few runs (the latest among them) fail."""
    from airflow.models import DagModel
    from airflow.utils.session import create_session

    rng = random.Random(seed)
    failing = {0, *rng.sample(range(1, days), k=min(days - 1, max(1, days // 10)))}
    latest = (now - timedelta(hours=2)).replace(second=0, microsecond=0)
    runs = []
    with create_session() as session:
        history = History(session, dag_id, manifest_path, rng)
        for age in reversed(range(days)):
            minutes = rng.uniform(6, 12)
            runs.append(history.add_run(latest - timedelta(days=age), minutes, failing=age in failing))
        # Unpaused, as deployed: the pages say when the next run is due.
        session.get(DagModel, dag_id).is_paused = False
    return runs


def add_running_run(dag_id: str, manifest_path: Path, seed: int, now: datetime) -> dict:
    """The second variant: a run started ten minutes ago, its build half-way, the dashboards pending."""
    from airflow.utils.session import create_session

    with create_session() as session:
        history = History(session, dag_id, manifest_path, random.Random(seed + 1))
        return history.add_run((now - timedelta(minutes=10)).replace(microsecond=0), 0, running=True)


def volumes() -> dict:
    """What the database holds: the rows the pages' queries run against."""
    from airflow.models import DagRun, TaskInstance
    from airflow.models.asset import AssetEvent
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import Text, cast, func, select

    tables = {"dag_runs": DagRun, "task_instances": TaskInstance, "xcoms": XComModel, "asset_events": AssetEvent}
    with create_session() as session:
        found = {name: session.scalar(select(func.count()).select_from(model)) for name, model in tables.items()}
        found["dbt_results_xcom_bytes"] = session.scalar(
            select(func.max(func.length(cast(XComModel.value, Text)))).where(XComModel.key == RESULTS_XCOM_KEY)
        )
    return found


# --------------------------------------------------------------------------- in-process timing


def page_calls(dag_id: str, exposure: str) -> dict[str, Callable[[], object]]:
    """What each page does per request, each with a session of its own (as the plugin's routes)."""
    from airflow.utils.session import create_session

    from elt_platform.health import pages
    from elt_platform.health.report import report

    def health(**kwargs):
        with create_session() as session:
            return report(session, **kwargs)

    def list_page():
        return pages.list_page(health(), datetime.now(UTC))

    def json_answer():
        return json.dumps({"dashboards": [h.model_dump(mode="json", exclude={"lineage"}) for h in health()]})

    def detail_page():
        found = [h for h in health(dag_id=dag_id, lineage=True) if h.name == exposure]
        return pages.detail_page(found[0], lambda path: path, None)

    return {"report": health, "list_page": list_page, "json": json_answer, "detail_page": detail_page}


def measure_in_process(dag_id: str, exposure: str, calls: int, cold: bool) -> dict:
    """``calls`` rounds of each page's work, interleaved, after a warm-up; with ``cold``, first the
    process's first call of the list page's (no lineage cached, no database connection yet)."""
    functions = page_calls(dag_id, exposure)
    first = timed(functions["list_page"])[0] if cold else None
    items = functions["report"]()
    result = rounds(functions, calls, seed=calls)
    result["cold_ms"] = first
    result["dashboards"] = len(items)
    result["statuses"] = dict(sorted(Counter(str(h.status) for h in items).items()))
    result["refreshing"] = sum(h.refreshing for h in items)
    return result


def task_instance_load(dag_id: str, calls: int) -> dict:
    """What ``run_outcome`` pays per run: the latest run's task instances as ORM objects, against only the
    columns it reads (task id, state, try, end; the DAG and run ids for the log's link)."""
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        latest = select(DagRun.run_id).where(DagRun.dag_id == dag_id).order_by(DagRun.run_after.desc()).limit(1)
        run_id = session.scalar(latest)
    of_run = (TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
    ti = TaskInstance
    columns = (ti.dag_id, ti.run_id, ti.task_id, ti.state, ti.try_number, ti.end_date)

    def orm_objects():
        with create_session() as session:
            return session.scalars(select(TaskInstance).where(*of_run)).all()

    def only_columns():
        with create_session() as session:
            return session.execute(select(*columns).where(*of_run)).all()

    result = rounds({"orm_objects": orm_objects, "columns": only_columns}, calls, seed=calls)
    result["rows"] = len(only_columns())
    return result


def profile_pages(dag_id: str, exposure: str, top: int) -> dict:
    """cProfile of one warm call of each page's work, and of ``report()`` with its lineage cache cleared."""
    from elt_platform.health import report as report_module

    calls = page_calls(dag_id, exposure)
    profiles = {}
    for name, fn in calls.items():
        profiler = cProfile.Profile()
        profiler.runcall(fn)
        profiles[name] = top_functions(pstats.Stats(profiler), top)
    report_module._lineage.cache_clear()  # as after a new manifest, or in a fresh API server worker
    profiler = cProfile.Profile()
    profiler.runcall(calls["report"])
    profiles["report_lineage_rebuilt"] = top_functions(pstats.Stats(profiler), top)
    return profiles


def top_functions(stats: pstats.Stats, top: int) -> dict:
    """The project's functions, and what they call directly in other code, by cumulative time; any
    function by own time. In ms."""

    def name(file: str, line: int, function: str) -> str:
        return f"{short_path(file)}:{line}({function})"

    rows = [
        {
            "function": name(*key),
            "calls": calls,
            "own_ms": own * 1000,
            "cumulative_ms": cumulative * 1000,
            "from_project": any(name(*caller).startswith("elt_platform/") for caller in callers),
        }
        for key, (_, calls, own, cumulative, callers) in stats.stats.items()
    ]
    project = [r for r in rows if r["function"].startswith("elt_platform/") or r["from_project"]]
    return {
        "total_ms": max((r["cumulative_ms"] for r in rows), default=0),
        "project_by_cumulative": sorted(project, key=lambda r: -r["cumulative_ms"])[:top],
        "by_own": sorted(rows, key=lambda r: -r["own_ms"])[:top],
    }


def short_path(filename: str) -> str:
    for marker in ("site-packages/", "src/", "python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# --------------------------------------------------------------------------- the API server


class ApiServer:
    """``airflow api-server`` in a session of its own, so that stopping it ends its children too."""

    def __init__(self, home: Path, port: int):
        self.port = port
        self.log_path = home / "api-server.log"
        self.proc: subprocess.Popen | None = None
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)

    def start(self, timeout: float = 180) -> float:
        """Seconds until ``/api/v2/monitor/health`` answered."""
        started = time.monotonic()
        with self.log_path.open("w") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
                env=os.environ,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the API server exited ({self.proc.returncode}); see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if self.client.get("/api/v2/monitor/health").status_code == 200:
                    return time.monotonic() - started
            time.sleep(1)
        raise TimeoutError(f"the API server did not answer in {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        self.client.close()
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class RssSampler:
    """Peak summed RSS of a process and its children, sampled in a background thread."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def rss(self) -> int:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.pid)
            total = 0
            for proc in (root, *root.children(recursive=True)):
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
            return total
        return 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measure_http(server: ApiServer, dag_id: str, exposure: str, calls: int, expected: int, cold: bool) -> dict:
    """``calls`` rounds of requests of each page, interleaved, after a warm-up; with ``cold``, first the
    server's first request of the list page."""
    paths = {
        "list_page": "/dashboards/",
        "json": "/dashboards/api/health",
        "detail_page": f"/dashboards/{dag_id}/{exposure}",
    }

    def get(path: str) -> httpx.Response:
        response = server.client.get(path, headers={"Accept": "text/html" if path != paths["json"] else "*/*"})
        response.raise_for_status()
        return response

    requests = {name: (lambda p=path: get(p)) for name, path in paths.items()}
    idle = RssSampler(server.proc.pid).rss()
    with RssSampler(server.proc.pid) as sampler:
        first = timed(requests["list_page"])[0] if cold else None
        answered = len(get(paths["json"]).json()["dashboards"])
        if answered != expected:
            raise RuntimeError(f"/dashboards/api/health lists {answered} dashboards, not {expected}")
        measured = rounds(requests, calls, seed=calls)
    # The collector's pauses measured here are the client's: the server's are in the in-process figures.
    result = {name: {"path": paths[name], **measured[name]} for name in paths}
    for figures in result.values():
        del figures["gc_median_ms"], figures["gc_ms"]
    result["cold_ms"] = first
    result["rss_idle_bytes"] = idle
    result["rss_peak_bytes"] = sampler.peak
    result["list_page_bytes"] = len(get(paths["list_page"]).content)
    result["json_bytes"] = len(get(paths["json"]).content)
    return result


# --------------------------------------------------------------------------- parse time


def measure_parse(dag_files: dict[str, Path], runs: int, scratch: Path) -> dict:
    """``parse_time.py --warm`` in fresh interpreters, the variants alternating; median of ``runs``."""
    seconds: dict[str, list[float]] = {name: [] for name in dag_files}
    tasks: dict[str, int] = {}
    for _ in range(runs):
        for name, dag_file in dag_files.items():
            out = scratch / f"parse-{name}.json"
            out.unlink(missing_ok=True)
            cmd = [sys.executable, str(REPO / "bench" / "parse_time.py"), str(dag_file), str(out), "--warm"]
            subprocess.run(cmd, env=os.environ, check=True, capture_output=True)
            result = json.loads(out.read_text())
            seconds[name].append(result["seconds"])
            tasks[name] = result["tasks"]
    return {
        name: {"median_s": statistics.median(values), "runs_s": values, "tasks": tasks[name]}
        for name, values in seconds.items()
    }


# Profiles the parse proper, after the imports parse_time.py --warm does first.
PROFILE_PARSE = """
import cProfile, importlib, runpy, sys
from pathlib import Path
from bench.parse_time import top_level_imports
path = Path(sys.argv[1])
for module in ("airflow", "airflow.sdk", *top_level_imports(path)):
    importlib.import_module(module)
profiler = cProfile.Profile()
profiler.runcall(runpy.run_path, str(path))
profiler.dump_stats(sys.argv[2])
"""


def health_code_at_parse(dag_file: Path, scratch: Path) -> dict:
    """Which ``elt_platform.health`` functions one (warm) parse runs, and their cumulative time (cProfile)."""
    prof = scratch / "parse.prof"
    cmd = [sys.executable, "-c", PROFILE_PARSE, str(dag_file), str(prof)]
    subprocess.run(cmd, env=os.environ, cwd=REPO, check=True, capture_output=True)
    stats = pstats.Stats(str(prof), stream=io.StringIO())
    called = [
        {"function": f"{short_path(file)}:{line}({function})", "calls": calls, "cumulative_ms": cumulative * 1000}
        for (file, line, function), (_, calls, _, cumulative, _) in stats.stats.items()
        if "elt_platform/health/" in file
    ]
    total = max(cumulative for (_, _, _, cumulative, _) in stats.stats.values()) * 1000
    return {
        "profiled_parse_ms": total,
        "health_functions": sorted(called, key=lambda c: -c["cumulative_ms"]),
        "status_rules_or_report": [c for c in called if "/rules.py" in c["function"] or "/report.py" in c["function"]],
    }


# --------------------------------------------------------------------------- one size


def bench_size(models: int, args: argparse.Namespace, root: Path) -> dict:
    """Everything for one project size. Runs in a process of its own whose environment already
    points Airflow at a fresh database (Airflow reads its configuration once, at import)."""
    dags, other_dags = root / "dags", root / "other_dags"  # the variant without exposures stays out of the DAG folder
    log(f"{models} models: generating the project, then dbt parse with {args.exposures} exposures")
    project, no_exposures = make_projects(root / "projects", models, args.exposures, args.seed)
    manifest = project / "target" / "manifest.json"
    dag_id = f"{DAG_ID}_{models}"
    dag_file = write_dag_file(dags, dag_id, project, models, args.exposures)
    bare_file = write_dag_file(other_dags, f"{dag_id}_no_exposures", no_exposures, models, 0)
    exposure = yaml.safe_load((project / "models" / "exposures.yml").read_text())["exposures"][0]["name"]
    result: dict = {"models": models, "exposures": args.exposures, "days": args.days, "detail_exposure": exposure}

    log(f"parse time with and without the exposures, {args.parse_runs} fresh interpreters each")
    result["parse"] = measure_parse({"with_exposures": dag_file, "without_exposures": bare_file}, args.parse_runs, root)
    result["parse_profile"] = health_code_at_parse(dag_file, root)

    log("airflow db migrate, airflow dags reserialize")
    airflow("db", "migrate")
    airflow("dags", "reserialize")
    result["registered"] = check_registrations(dag_id, args.exposures)
    log(f"{args.days} days of history")
    now = datetime.now(UTC)
    started = time.monotonic()
    result["runs"] = fill_history(dag_id, manifest, args.days, args.seed, now)
    result["history_s"] = time.monotonic() - started
    result["volumes"] = volumes()
    log(f"  {result['volumes']}")
    server = ApiServer(Path(os.environ["AIRFLOW_HOME"]), int(os.environ["AIRFLOW__API__PORT"]))
    try:
        log("starting the API server")
        result["api_server_start_s"] = server.start()
        result["variants"] = {"ended": measure_variant(server, dag_id, exposure, args, cold=True)}
        log("adding a run still going: the second variant")
        result["running_run"] = add_running_run(dag_id, manifest, args.seed, now)
        result["variants"]["running"] = measure_variant(server, dag_id, exposure, args, cold=False)
    finally:
        server.stop()
    log("loading one run's task instances: ORM objects against columns")
    result["task_instance_load"] = task_instance_load(dag_id, args.calls)
    log("profiling the pages' work")
    result["profiles"] = profile_pages(dag_id, exposure, args.top)
    return result


def check_registrations(dag_id: str, expected: int) -> int:
    from airflow.utils.session import create_session

    from elt_platform.health.report import registrations

    with create_session() as session:
        found = [r for r in registrations(session) if r.dag_id == dag_id]
    if len(found) != expected:
        raise RuntimeError(f"registrations() found {len(found)} dashboards of {dag_id}, not {expected}")
    return len(found)


def measure_variant(server: ApiServer, dag_id: str, exposure: str, args: argparse.Namespace, cold: bool) -> dict:
    log(f"  in process: {args.calls} rounds")
    in_process = measure_in_process(dag_id, exposure, args.calls, cold)
    log(f"    report() median {in_process['report']['median_ms']:.0f} ms; statuses {in_process['statuses']}")
    log(f"  through the API server: {args.calls} rounds")
    http = measure_http(server, dag_id, exposure, args.calls, in_process["dashboards"], cold)
    log(f"    list page median {http['list_page']['median_ms']:.0f} ms, JSON {http['json']['median_ms']:.0f} ms")
    return {"in_process": in_process, "http": http}


def run_size(models: int, args: argparse.Namespace, workdir: Path) -> dict:
    """``bench_size`` in a fresh interpreter, against a database created and dropped here."""
    root = workdir / f"size_{models}"
    home = root / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    database = f"airflow_bench_health_{uuid.uuid4().hex[:10]}"
    env = {**os.environ, **airflow_env(home, database, root / "dags", free_port())}
    out = root / "result.json"
    options = {
        "--sizes": models,
        "--exposures": args.exposures,
        "--days": args.days,
        "--calls": args.calls,
        "--parse-runs": args.parse_runs,
        "--top": args.top,
        "--seed": args.seed,
        "--one-size": out,
    }
    cmd = [sys.executable, "-m", "bench.health", *(str(x) for pair in options.items() for x in pair)]
    admin_sql(f"create database {database}")
    try:
        subprocess.run(cmd, env=env, cwd=REPO, check=True)
    finally:
        admin_sql(f"drop database if exists {database} with (force)")
    return json.loads(out.read_text())


# --------------------------------------------------------------------------- the report


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def verdict(median_ms: float) -> str:
    return "met" if median_ms < TARGET_MS else "**not met**"


def timing_row(label: str, figures: dict, target: bool | None) -> str:
    """A table row: median, p90, max, the garbage collector's median share where measured, and the
    target's verdict unless ``target`` is None."""
    cells = [ms(figures["median_ms"]), ms(figures["p90_ms"]), ms(figures["max_ms"])]
    if "gc_median_ms" in figures:
        cells.append(ms(figures["gc_median_ms"]))
    if target is not None:
        cells.append(verdict(figures["median_ms"]) if target else "-")
    return f"| {label} | {' | '.join(cells)} |"


PAGES = (
    ("list_page", "List page `/dashboards/`", True),
    ("json", "JSON `/dashboards/api/health`", True),
    ("detail_page", "One dashboard's page, with its lineage", False),
)
IN_PROCESS = (
    ("report", "`report(session)`: the list's data", False),
    ("list_page", "`report()` + `pages.list_page()`", True),
    ("json", "`report()` + the JSON (`model_dump`, `json.dumps`)", True),
    ("detail_page", "`report(dag_id, lineage=True)` + `pages.detail_page()`", False),
)
VARIANTS = {
    "ended": "the latest run ended (it failed: one model, one test)",
    "running": "a run still going (half its models built, no dashboard task ended)",
}
PROFILES = {
    "report": "`report()`, warm",
    "report_lineage_rebuilt": "`report()`, its lineage cache cleared (a new manifest, or a fresh API server worker)",
    "list_page": "The list page's work, warm",
    "json": "The JSON's work, warm",
    "detail_page": "One dashboard's page, warm",
}
HTTP_HEAD = "| Through the API server (HTTP) | median | p90 | max | < 300 ms |\n| --- | --- | --- | --- | --- |"
LOCAL_HEAD = "| In process | median | p90 | max | of it GC (median) | < 300 ms |\n| --- | --- | --- | --- | --- | --- |"


def size_section(result: dict) -> list[str]:
    vol = result["volumes"]
    lines = [
        f"## {result['models']:,} models, {result['exposures']} dashboards, {result['days']} days",
        "",
        f"Metadata database: {vol['dag_runs']} DAG runs, {vol['task_instances']:,} task instances, "
        f"{vol['xcoms']:,} XComs (the largest, a `dbt_results`: {vol['dbt_results_xcom_bytes'] / 1024:.0f} kB of "
        f"JSON), {vol['asset_events']:,} asset events. Written in {result['history_s']:.0f} s. The API server "
        f"answered its health check {result['api_server_start_s']:.0f} s after it started.",
        "",
    ]
    for variant, title in VARIANTS.items():
        http, local = result["variants"][variant]["http"], result["variants"][variant]["in_process"]
        statuses = ", ".join(f"{n} {s}" for s, n in local["statuses"].items())
        lines += [
            f"### Variant: {title}",
            "",
            f"Dashboards: {statuses}; refreshing: {local['refreshing']}. Milliseconds, over "
            f"{http['list_page']['calls']} rounds of the calls interleaved, after one warm-up call of each.",
            "",
            HTTP_HEAD,
            *(timing_row(label, http[key], target) for key, label, target in PAGES),
            "",
            LOCAL_HEAD,
            *(timing_row(label, local[key], target) for key, label, target in IN_PROCESS),
            "",
        ]
        if http["cold_ms"] is not None:
            lines += [
                f"Cold: the API server's first request of the list page took {ms(http['cold_ms'])} ms; in process, "
                f"the first list page {ms(local['cold_ms'])} ms (the lineage of every dashboard read from the "
                "manifest, the database connections opened).",
                "",
            ]
        lines += [
            f"API server memory (RSS of the process and its children): {http['rss_idle_bytes'] / 2**20:.0f} MiB "
            f"before the requests, at most {http['rss_peak_bytes'] / 2**20:.0f} MiB during them. Answers: list page "
            f"{http['list_page_bytes'] / 1024:.0f} kB, JSON {http['json_bytes'] / 1024:.0f} kB.",
            "",
        ]
    return lines + load_section(result) + parse_section(result) + profile_section(result)


def load_section(result: dict) -> list[str]:
    load = result["task_instance_load"]
    objects, columns = load["orm_objects"], load["columns"]
    return [
        "### Loading one run's task instances",
        "",
        f"`run_outcome()` loads each of the two latest runs' {load['rows']:,} task instances as ORM objects; "
        "it reads six of their columns. Side by side, in process:",
        "",
        "| The latest run's task instances | median | p90 | max | of it GC (median) |",
        "| --- | --- | --- | --- | --- |",
        timing_row("`select(TaskInstance)`, as `run_outcome()`", objects, None),
        timing_row("`select(dag_id, run_id, task_id, state, try_number, end_date)`", columns, None),
        "",
    ]


def parse_section(result: dict) -> list[str]:
    parse, profile = result["parse"], result["parse_profile"]
    with_, without = parse["with_exposures"], parse["without_exposures"]
    rules = profile["status_rules_or_report"]
    lines = [
        "### DAG parse",
        "",
        f"`bench/parse_time.py --warm` in fresh interpreters, the two files alternating, {len(with_['runs_s'])} each. "
        "Tasks are the main DAG's; with the exposures the file also builds `<dag>__fresh_by` (one task) for the "
        "dashboards that promise a time.",
        "",
        "| DAG file | tasks | median (ms) | every run (ms) |",
        "| --- | --- | --- | --- |",
    ]
    for label, figures in (("with the exposures", with_), ("`exposures.yml` removed", without)):
        every = ", ".join(ms(s * 1000) for s in figures["runs_s"])
        lines.append(f"| {label} | {figures['tasks']} | {ms(figures['median_s'] * 1000)} | {every} |")
    delta_ms = (with_["median_s"] - without["median_s"]) * 1000
    called = ", ".join(f"`{f['function']}` x{f['calls']}" for f in rules)
    lines += [
        "",
        f"The `dashboards` group adds {ms(delta_ms)} ms to the median parse. The health code one parse runs "
        f"(cProfile, after the imports; the profiled parse took {ms(profile['profiled_parse_ms'])} ms):",
        "",
        "| function | calls | cumulative (ms, profiled) |",
        "| --- | --- | --- |",
        *(f"| `{f['function']}` | {f['calls']} | {ms(f['cumulative_ms'])} |" for f in profile["health_functions"][:8]),
        "",
        f"Of the status rules (`rules.py`) and the report (`report.py`), the parse runs: {called or 'nothing'}.",
        "",
    ]
    return lines


def profile_section(result: dict) -> list[str]:
    lines = [
        "### Where the time goes",
        "",
        "cProfile of one call each, in process, with the run still going. cProfile charges the garbage "
        "collector's pauses to whichever function allocates when a collection starts (hence large own times in "
        "places such as `weakref.__init__` or `json.loads`); the GC column of the tables above measures them.",
        "",
    ]
    for key, title in PROFILES.items():
        prof = result["profiles"][key]
        own = "; ".join(f"`{r['function']}` {ms(r['own_ms'])} ms ({r['calls']} calls)" for r in prof["by_own"][:6])
        lines += [
            f"{title}: {ms(prof['total_ms'])} ms under the profiler.",
            "",
            "| project function, or called by one | calls | cumulative (ms) | own (ms) |",
            "| --- | --- | --- | --- |",
            *(
                f"| `{r['function']}` | {r['calls']} | {ms(r['cumulative_ms'])} | {ms(r['own_ms'])} |"
                for r in prof["project_by_cumulative"]
            ),
            "",
            f"Most own time, any code: {own}.",
            "",
        ]
    return lines


def targets(results: list[dict]) -> list[str]:
    lines = [
        "## The target",
        "",
        f"The list page and the JSON answer in under {TARGET_MS} ms (median through the API server) for "
        "1,000 models and 50 exposures with 30 days of run history; computing health adds no work at DAG parse.",
        "",
        "| Size | Variant | List page median (p90) | JSON median (p90) | Met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for result in results:
        for variant in VARIANTS:
            http = result["variants"][variant]["http"]
            lists, answer = http["list_page"], http["json"]
            met = max(lists["median_ms"], answer["median_ms"]) < TARGET_MS
            lines.append(
                f"| {result['models']:,} models, {result['exposures']} dashboards, {result['days']} days | {variant} | "
                f"{ms(lists['median_ms'])} ms ({ms(lists['p90_ms'])}) | {ms(answer['median_ms'])} ms "
                f"({ms(answer['p90_ms'])}) | {'yes' if met else '**no**'} |"
            )
    return [*lines, ""]


def render(report: dict, analysis: str) -> str:
    meta = report["meta"]
    mach = meta["machine"]
    load = " to ".join(", ".join(f"{x:.1f}" for x in meta[k]) for k in ("load_start", "load_end"))
    lines = [
        "# Benchmark: dashboard health pages",
        "",
        f"Generated by `{meta['command']}` on {meta['date']} (commit {meta['commit']}), "
        f"in {meta['elapsed_min']:.0f} minutes. Rewritten on each run; see bench/README.md.",
        "",
        f"Machine: {mach['cores']} cores ({mach['cpu_model']}), {mach['memory_bytes'] / 2**30:.1f} GiB of memory, "
        f"{mach['os']}. Shared and noisy: load average (1, 5, 15 min) {load} from the start of the run to its "
        "end. Compare figures of one run, side by side.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + f", PostgreSQL {meta['postgres']}.",
        "",
        "## What was measured",
        "",
        "- A project from `bench/generate.py`, plus `models/exposures.yml`: dashboards each reading 2 to 4 models "
        "of the last two layers (every third with a `fresh_by` promise), rendered by `build_elt_dag` "
        "(`@daily`, build mode) and serialized with its assets (`airflow dags reserialize`) into a fresh PostgreSQL "
        "database.",
        "- History written through Airflow's models (`create_dagrun`, then bulk updates and inserts): one run a "
        "day, every task instance with its state and times, the build's `dbt_results` XCom (one entry per source, "
        "model and test), each dashboard task's `health` verdict, the fresh dashboards' asset events. A tenth of "
        "the runs, the latest among them, fail: one model (what reads it `skipped`) and one `not_null` test.",
        "- *In process*: the pages' work called directly, each call with its own session, as the plugin's routes. "
        "*Through the API server*: `airflow api-server` (one worker, the default), the plugin from the installed "
        "package, `SIMPLE_AUTH_MANAGER_ALL_ADMINS` (a JWT made per request), httpx on the same machine; the time of "
        "a request is until its whole body is read. A second variant adds a run still going.",
        "- DAG parse with and without the exposures, in fresh interpreters; a cProfile of a parse names the health "
        "code it runs.",
        "",
        *targets(report["sizes"]),
    ]
    for result in report["sizes"]:
        lines += size_section(result)
    lines += [
        "## Analysis",
        "",
        ANALYSIS_START,
        analysis.strip("\n") or "_Written by hand after a full run._",
        ANALYSIS_END,
    ]
    return "\n".join(lines).rstrip() + "\n"


def write_report(report: dict, output: Path) -> None:
    """The report (keeping its hand-written analysis) and the raw results beside it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    output.write_text(render(report, existing_analysis(output)))


def postgres_version() -> str:
    conn = psycopg2.connect(**POSTGRES)
    try:
        cursor = conn.cursor()
        cursor.execute("show server_version")
        return cursor.fetchone()[0]
    finally:
        conn.close()


# --------------------------------------------------------------------------- main


def command_line() -> str:
    command = shlex.join(["python", "-m", "bench.health", *sys.argv[1:]])
    return f"make bench-health (runs {command})" if os.environ.get("MAKELEVEL") else command


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.health", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000", help="models per generated project (default %(default)s)")
    parser.add_argument("--exposures", type=int, default=50, help="dashboards (default %(default)s)")
    parser.add_argument("--days", type=int, default=30, help="of run history, one run a day (default %(default)s)")
    parser.add_argument("--calls", type=int, default=30, help="timed rounds per variant (default %(default)s)")
    parser.add_argument("--parse-runs", type=int, default=5, help="fresh interpreters per parse figure (default 5)")
    parser.add_argument("--top", type=int, default=15, help="functions listed per profile (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="of the project and the history (default 0)")
    parser.add_argument(
        "--output", type=Path, default=REPO / "docs" / "benchmarks-health.md", help="report; raw results beside it"
    )
    parser.add_argument("--workdir", type=Path, help="kept afterwards (default: a temporary directory, removed)")
    parser.add_argument("--render-only", action="store_true", help="measure nothing: rewrite the report from its .json")
    parser.add_argument("--one-size", type=Path, help=argparse.SUPPRESS)  # internal: the per-size process
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one_size:
        result = bench_size(int(args.sizes), args, args.one_size.parent)
        args.one_size.write_text(json.dumps(result, indent=2, default=str))
        return 0
    output = args.output.resolve()
    if args.render_only:
        write_report(json.loads(output.with_suffix(".json").read_text()), output)
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="elt-bench-health-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"working in {workdir}")
    started = time.monotonic()
    report = {
        "meta": {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command_line(),
            "commit": git_state(),
            "machine": machine(),
            "versions": versions(),
            "postgres": postgres_version(),
            "load_start": os.getloadavg(),
            "target_ms": TARGET_MS,
            "seed": args.seed,
        },
        "sizes": [],
    }
    try:
        for models in sorted(int(x) for x in args.sizes.split(",")):
            report["sizes"].append(run_size(models, args, workdir))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    report["meta"]["elapsed_min"] = (time.monotonic() - started) / 60
    report["meta"]["load_end"] = os.getloadavg()
    write_report(report, output)
    log(f"wrote {output} and {output.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
