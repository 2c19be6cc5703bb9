"""``make bench``: the transform phase under a real Airflow against plain ``dbt build``.

For each project size (a generated dbt project, see bench/generate.py) and each
configuration, in one run, on one warehouse file reset before every measured run:

- ``dbt``: plain ``dbt build`` of the project, the baseline every ratio is against;
- ``cosmos_local``, ``cosmos_watcher``: Cosmos as it comes, in LOCAL and WATCHER mode;
- ``cosmos_watcher_poke_1s``: Cosmos WATCHER with its sensors polling every second;
- ``project_default``: the project's own ``build_elt_dag`` in its default mode;
- ``project_default_crash``: the same, with the build's dbt killed mid-build, timed against it.

It measures the DAG file's parse time (fresh interpreters), the transform's wall time
under the scheduler (LocalExecutor, API server, DAG processor, triggerer, PostgreSQL
metadata: devstack/airflow_stack.py), the overhead per model, the tail after the
dbt build task, peak memory and the state of every task. Results go to
docs/benchmarks.md and docs/benchmarks.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import httpx
import psutil

from bench import generate as gen
from devstack import BIN
from devstack.airflow_stack import AirflowStack
from devstack.crash import PRODUCER, holder_of, published_results

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
POOL = "bench_warehouse"
CONN_ID = "bench_warehouse"
TERMINAL = {"success", "failed"}
# States in which a task of a run marked failed may still be using the machine.
TI_ACTIVE = {"queued", "running", "deferred", "restarting"}
LOCK_ERRORS = re.compile(r"Could not set lock on file|Conflicting lock is held|database is locked")
BUILD_TASKS = {"dbt_producer_watcher", "dbt_build"}
TIMELINE_FIELDS = ("task_id", "state", "try_number", "pool", "queued_when", "start_date", "end_date", "duration")
ANALYSIS_START, ANALYSIS_END = "<!-- analysis -->", "<!-- /analysis -->"


@dataclass(frozen=True)
class Config:
    name: str
    title: str
    description: str
    template: str | None = None
    # Placeholders of the template that vary between configurations sharing it.
    template_args: dict[str, str] = field(default_factory=dict)
    # Kill the build's dbt (SIGKILL) once this share of the models has its result published.
    kill_build_at: float | None = None


CONFIGS = {
    c.name: c
    for c in (
        Config(
            "dbt",
            "plain `dbt build`",
            "`dbt build` of the whole project in one process, outside Airflow: the baseline.",
        ),
        Config(
            "cosmos_local",
            "Cosmos LOCAL",
            "Cosmos as it comes: `DbtDag`, ExecutionMode.LOCAL, LoadMode.DBT_MANIFEST, default invocation "
            "(dbtRunner) and test behaviour (AFTER_EACH: `<model>.run` then `<model>.test`), one dbt "
            "invocation per task; every task in the one-slot pool.",
            "cosmos_local.py",
        ),
        Config(
            "cosmos_watcher",
            "Cosmos WATCHER",
            "Cosmos as it comes: `DbtDag`, ExecutionMode.WATCHER, LoadMode.DBT_MANIFEST: one producer task "
            "runs `dbt build`, one deferrable sensor per node reports its result. The pool holds the producer, "
            "the one writer; the sensors only read its results and wait in the triggerer (Cosmos runs dbt in a "
            "sensor only on a retry, and Airflow's default is no retries).",
            "cosmos_watcher.py",
            {"operator_args": "None"},
        ),
        Config(
            "cosmos_watcher_poke_1s",
            "Cosmos WATCHER, sensors poke every 1 s",
            "As Cosmos WATCHER, with `poke_interval` 1 in `operator_args`: the sensors look for their node's "
            "result every second instead of Cosmos's default 10 s, so that polling does not decide the "
            "comparison. The same DAG file otherwise.",
            "cosmos_watcher.py",
            {"operator_args": "{'poke_interval': 1}"},
        ),
        Config(
            "cosmos_watcher_all_pooled",
            "Cosmos WATCHER, all tasks pooled",
            "Optional, not in the default run: as Cosmos WATCHER with the pool set for the whole DAG "
            "(`default_args`), so the sensors start only after the producer, one at a time.",
            "cosmos_watcher_all_pooled.py",
        ),
        Config(
            "project_default",
            "project default",
            "`elt_platform.dag_factory.build_elt_dag` with the project's default settings "
            "(`Settings.from_env()`), the benchmark's warehouse connection and pool.",
            "project_default.py",
            {"overrides": "{}"},
        ),
        Config(
            "project_default_per_model",
            "project default, per-model mode",
            'As project default, with `transform_mode` "per-model": Cosmos LOCAL, one dbt process per node. '
            "Optional, not in the default run.",
            "project_default.py",
            {"overrides": "{'transform_mode': 'per-model'}"},
        ),
        Config(
            "project_default_crash",
            "project default, its dbt killed mid-build",
            "As project default, with the process holding the warehouse file (the build's dbt) killed with "
            "SIGKILL, as the kernel does on out of memory, once a third of the models have their result "
            "published: the build task's one retry builds what is not done. Successful when the run ends "
            "success with every model's task succeeded and the build task's retry the only one; judged "
            "against the project default's median at the same size (x normal run).",
            "project_default.py",
            {"overrides": "{}"},
            kill_build_at=1 / 3,
        ),
    )
}
AIRFLOW_CONFIGS = [name for name, c in CONFIGS.items() if c.template]
DEFAULT_CONFIGS = [
    "dbt",
    "cosmos_local",
    "cosmos_watcher",
    "cosmos_watcher_poke_1s",
    "project_default",
    "project_default_crash",
]
DEFAULT_SIZES = "20,200,1000,2000"
# --shape: seeds and data tests per model (generate.py's seeds and tests).
SHAPES = {
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
REPORTED_SETTINGS = (
    ("core", "executor"),
    ("core", "parallelism"),
    ("core", "max_active_tasks_per_dag"),
    ("core", "default_task_retries"),
    ("dag_processor", "refresh_interval"),
    ("dag_processor", "min_file_process_interval"),
    ("dag_processor", "parsing_pre_import_modules"),
    ("scheduler", "use_job_schedule"),
    ("scheduler", "scheduler_heartbeat_sec"),
    ("triggerer", "capacity"),
    ("logging", "logging_level"),
)


def command_line() -> str:
    command = shlex.join(["python", "-m", "bench.run", *sys.argv[1:]])
    return f"make bench (runs {command})" if os.environ.get("MAKELEVEL") else command


def git_state() -> str:
    """The commit measured, and whether the project's code differs from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src", "bench"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit}, with uncommitted changes in src/ or bench/" if dirty else commit


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", flush=True)


def utc(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


# --------------------------------------------------------------------------- memory


class TreeSampler:
    """Peak summed memory of process trees, sampled in a background thread.

    RSS is summed every ``interval``; forked processes share pages, so the sum counts
    them more than once. PSS (shared pages split between their users) is dearer to
    read and is summed every ``pss_every`` samples.
    """

    def __init__(self, roots: list[int], interval: float = 0.25, pss_every: int = 8):
        self.roots = roots
        self.interval = interval
        self.pss_every = pss_every
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def processes(self) -> list[psutil.Process]:
        seen: dict[int, psutil.Process] = {}
        for pid in self.roots:
            try:
                root = psutil.Process(pid)
                for proc in (root, *root.children(recursive=True)):
                    seen.setdefault(proc.pid, proc)
            except psutil.Error:
                continue
        return list(seen.values())

    def sample(self, pss: bool = False) -> tuple[int, int]:
        rss = pss_total = 0
        procs = self.processes()
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                if pss:
                    info = proc.memory_full_info()
                    rss += info.rss
                    pss_total += info.pss
                else:
                    rss += proc.memory_info().rss
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss_total)
        self.peak_processes = max(self.peak_processes, len(procs))
        self.samples += 1
        return rss, pss_total

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample(pss=self.samples % self.pss_every == 0)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def as_dict(self) -> dict:
        return {
            "peak_rss_bytes": self.peak_rss,
            "peak_pss_bytes": self.peak_pss,
            "peak_processes": self.peak_processes,
            "samples": self.samples,
        }


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of a process alone, and of it with every descendant, live or
    exited (an exited process's time is in its reaping parent's ``children_*``)."""
    root = psutil.Process(pid)
    own = sum(root.cpu_times()[:2])
    total = 0.0
    for proc in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return own, total


# Where a run's CPU goes: the scheduler's own, its executor's task processes (dbt included), and each
# other Airflow process with its children.
CPU_PARTS = ("tasks", "scheduler", "triggerer", "api-server", "dag-processor")


def cpu_by_part(stack: BenchStack) -> dict[str, float]:
    found: dict[str, float] = {}
    for name, pid in stack.components().items():
        with contextlib.suppress(psutil.Error):
            own, total = cpu_seconds(pid)
            if name == "scheduler":
                found["scheduler"], found["tasks"] = own, total - own
            else:
                found[name] = total
    return found


# --------------------------------------------------------------------------- environment


def machine() -> dict:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {
        "cores": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "cpu_model": cpu_model,
        "os": platform.platform(),
    }


def versions() -> dict:
    found = {"python": platform.python_version()}
    for dist in ("apache-airflow", "astronomer-cosmos", "dbt-core", "dbt-duckdb", "duckdb"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


PROBE = """
import dataclasses, json, sys
from airflow.configuration import conf
out = {"airflow": {f"{s}.{k}": conf.get(s, k, fallback=None) for s, k in json.loads(sys.argv[1])}}
try:
    import elt_platform.dag_factory as factory
    from elt_platform.settings import Settings
    out["project_default"] = {
        "available": hasattr(factory, "build_elt_dag"),
        "settings": {k: str(v) for k, v in dataclasses.asdict(Settings.from_env()).items()},
    }
except Exception as exc:
    out["project_default"] = {"available": False, "error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""


def probe(env: dict[str, str]) -> dict:
    """Effective Airflow settings and whether the project's transform factory exists."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(REPORTED_SETTINGS)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- parse time


def render_dag_file(config: str, size: int, project: Path, dest_dir: Path) -> tuple[str, Path]:
    dag_id = f"bench_{config}_{size}"
    template = string.Template((BENCH / "dags" / CONFIGS[config].template).read_text())
    text = template.substitute(
        CONFIGS[config].template_args,
        dag_id=dag_id,
        project_dir=str(project),
        profile_name=gen.PROFILE_NAME,
        target_name=gen.TARGET_NAME,
        pool=POOL,
        conn_id=CONN_ID,
    )
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"{dag_id}.py"
    path.write_text(text)
    return dag_id, path


def measure_parse(dag_file: Path, env: dict[str, str], runs: int, scratch: Path) -> dict:
    """Median parse time of a DAG file, each in a fresh interpreter: cold (imports included) and warm."""
    figures: dict[str, list[float]] = {"cold": [], "warm": []}
    tasks = None
    errors = []
    for _ in range(runs):
        for kind in ("cold", "warm"):
            out = scratch / f"parse-{dag_file.stem}-{kind}.json"
            out.unlink(missing_ok=True)
            args = [sys.executable, str(BENCH / "parse_time.py"), str(dag_file), str(out)]
            done = subprocess.run(
                [*args, "--warm"] if kind == "warm" else args,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            if done.returncode != 0 or not out.exists():
                errors.append(
                    done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
                )
                continue
            result = json.loads(out.read_text())
            figures[kind].append(result["seconds"])
            tasks = result["tasks"]
    return {
        "cold_s": figures["cold"],
        "warm_s": figures["warm"],
        "cold_median_s": statistics.median(figures["cold"]) if figures["cold"] else None,
        "warm_median_s": statistics.median(figures["warm"]) if figures["warm"] else None,
        "tasks": tasks,
        "errors": errors[:3],
    }


# --------------------------------------------------------------------------- warehouse


class Warehouse:
    """One warehouse file for every configuration, reset from a copy holding only the raw tables."""

    def __init__(self, workdir: Path):
        self.path = workdir / "warehouse.duckdb"
        self.pristine = workdir / "raw-only.duckdb"

    def create(self) -> None:
        gen.create_raw_tables(self.pristine)

    def reset(self) -> None:
        for stale in (self.path, self.path.with_name(self.path.name + ".wal")):
            stale.unlink(missing_ok=True)
        shutil.copyfile(self.pristine, self.path)


# --------------------------------------------------------------------------- plain dbt build


def run_dbt(project: Path, size: int, index: int, warehouse: Warehouse, workdir: Path, cap_s: float | None) -> dict:
    target = workdir / "dbt-target" / str(size)
    logs = workdir / "dbt-logs" / str(size)
    target.mkdir(parents=True, exist_ok=True)
    # A repeat build partial-parses, as a developer's would: start from the generated project's parse.
    shutil.copyfile(project / "target" / "partial_parse.msgpack", target / "partial_parse.msgpack")
    (target / "run_results.json").unlink(missing_ok=True)
    warehouse.reset()
    cmd = [
        str(BIN / "dbt"),
        "build",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(target),
        "--log-path",
        str(logs),
        "--threads",
        str(gen.THREADS),
    ]
    stdout = workdir / f"dbt-build-{size}-{index}.log"
    env = {**os.environ, gen.DB_PATH_ENV: str(warehouse.path)}
    started = time.monotonic()
    with stdout.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT)
        with TreeSampler([proc.pid]) as sampler:
            try:
                rc = proc.wait(timeout=cap_s)
                capped = False
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
                capped = True
    wall = time.monotonic() - started
    statuses: dict[str, int] = {}
    results_file = target / "run_results.json"
    if results_file.exists():
        for result in json.loads(results_file.read_text())["results"]:
            statuses[result["status"]] = statuses.get(result["status"], 0) + 1
    text = stdout.read_text()
    nodes = json.loads((project / "target" / "manifest.json").read_text())["nodes"].values()
    expected = sum(1 for n in nodes if n["resource_type"] in ("model", "seed", "test"))
    ok = rc == 0 and not capped and set(statuses) <= {"success", "pass"} and sum(statuses.values()) == expected
    return {
        "config": "dbt",
        "size": size,
        "run": index,
        "ok": ok,
        "capped": capped,
        "returncode": rc,
        "transform_wall_s": wall,
        "node_statuses": statuses,
        "partial_parse": "Unable to do partial parsing" not in text,
        "lock_errors": len(LOCK_ERRORS.findall(text)),
        "retries": 0,
        "command": shlex.join(cmd),
        **sampler.as_dict(),
    }


# --------------------------------------------------------------------------- Airflow runs


class BenchStack:
    """The development stack (devstack/airflow_stack.py) with what the benchmark adds."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.dags = workdir / "dags"
        self.dags.mkdir(parents=True, exist_ok=True)
        self.stack = AirflowStack(workdir / "airflow", self.dags, env, pools=(POOL,))
        self.client: httpx.Client = self.stack.client
        self.env = self.stack.env

    def start(self) -> None:
        self.stack.start()

    def stop(self) -> None:
        self.stack.stop()

    def pids(self) -> list[int]:
        return [proc.pid for proc in self.stack.procs]

    def components(self) -> dict[str, int]:
        """Each running Airflow process's name (scheduler, triggerer, ...) and pid."""
        return {proc.args[1]: proc.pid for proc in self.stack.procs if proc.poll() is None}

    def install(self, dag_file: Path) -> Path:
        self.uninstall()
        installed = self.dags / dag_file.name
        shutil.copyfile(dag_file, installed)
        return installed

    def uninstall(self) -> None:
        for old in self.dags.glob("*.py"):
            old.unlink()

    def wait_parsed(self, dag_id: str, dag_file: Path, timeout: float) -> str | None:
        """None once the DAG is in the API; else why not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if self.client.get(f"/dags/{dag_id}").status_code == 200:
                    return None
                errors = self.client.get("/importErrors", params={"limit": 100}).json().get("import_errors", [])
                for error in errors:
                    if Path(error.get("filename", "")).name == dag_file.name:
                        return f"import error: {error.get('stack_trace', '').strip().splitlines()[-1:]}"
            time.sleep(2)
        return f"not parsed after {timeout:.0f} s"

    def parse_record(self, dag_id: str) -> tuple[str, float] | None:
        """The DAG processor's own (last_parsed_time, last_parse_duration) of the DAG's file."""
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            dag = self.client.get(f"/dags/{dag_id}").json()
            if dag["last_parse_duration"] is not None:
                return dag["last_parsed_time"], float(dag["last_parse_duration"])
        return None

    def trigger(self, dag_id: str) -> str:
        self.client.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        response = self.client.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None})
        response.raise_for_status()
        return response.json()["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        response = self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}")
        response.raise_for_status()
        return response.json()

    def fail_run(self, dag_id: str, run_id: str) -> None:
        """Mark the run failed (its tasks stop); the API server can answer 500 while the
        scheduler holds the run's rows, so try again a few times."""
        for attempt in range(10):
            response = self.client.patch(f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": "failed"})
            if response.status_code < 500:
                response.raise_for_status()
                return
            log(f"  marking the run failed: HTTP {response.status_code}, try {attempt + 1} of 10")
            time.sleep(3)
        response.raise_for_status()

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        found: list[dict] = []
        while True:
            response = self.client.get(
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                params={"limit": 100, "offset": len(found), "order_by": "id"},
            )
            response.raise_for_status()
            page = response.json()
            found.extend(page["task_instances"])
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def lock_errors(self, dag_id: str, run_id: str) -> int:
        root = self.stack.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        return sum(1 for f in root.rglob("*.log") if LOCK_ERRORS.search(f.read_text(errors="replace")))

    def failure_reasons(self, dag_id: str, run_id: str, tis: list[dict], limit: int = 3) -> list[str]:
        """The last error logged by each failed task (first few, distinct)."""
        reasons: list[str] = []
        root = self.stack.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        for ti in tis:
            if ti["state"] != "failed":
                continue
            log_file = root / f"task_id={ti['task_id']}" / f"attempt={ti.get('try_number') or 1}.log"
            last = None
            with contextlib.suppress(OSError):
                for line in log_file.read_text(errors="replace").splitlines():
                    with contextlib.suppress(ValueError):
                        entry = json.loads(line)
                        if entry.get("level") == "error":
                            last = str(entry.get("event", "")).strip().splitlines()
            reason = f"{ti['task_id']}: {last[-1][:200] if last else 'no error in its log'}"
            if not any(reason.split(": ", 1)[1] in r for r in reasons):
                reasons.append(reason)
            if len(reasons) >= limit:
                break
        return reasons

    def pause(self, dag_id: str) -> None:
        with contextlib.suppress(httpx.HTTPError):
            self.client.patch(f"/dags/{dag_id}", json={"is_paused": True})


def busy_seconds(intervals: list[tuple[datetime, datetime]]) -> float:
    """Time during which at least one task ran."""
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += (current_end - current_start).total_seconds()
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += (current_end - current_start).total_seconds()
    return total


def tail_seconds(build: dict | None, node_ends: list[datetime]) -> float | None:
    """Last node task end - the build task's end: how long the per-node tasks lag the one dbt build.

    As Cosmos's own benchmark reports it; None without a build task (one dbt invocation per task).
    """
    if not build or not node_ends:
        return None
    return (max(node_ends) - utc(build["end_date"])).total_seconds()


class BuildKiller(threading.Thread):
    """Kills the build's dbt once ``share`` of the models have their result published."""

    def __init__(self, client: httpx.Client, dag_id: str, run_id: str, warehouse: Path, models: int, share: float):
        super().__init__(name="build-killer", daemon=True)
        self.client, self.dag_id, self.run_id, self.warehouse = client, dag_id, run_id, warehouse
        self.threshold = max(1, round(models * share))
        self.stopping = threading.Event()
        self.killed_with: int | None = None  # models published when dbt was killed

    def run(self) -> None:
        while not self.stopping.wait(0.3):
            with contextlib.suppress(httpx.HTTPError):
                records = published_results(self.client, self.dag_id, self.run_id) or {}
                published = sum(1 for uid in records if uid.startswith("model."))
                if published >= self.threshold and (dbt := holder_of(self.warehouse)):
                    with contextlib.suppress(psutil.Error):
                        dbt.send_signal(signal.SIGKILL)
                        self.killed_with = published
                        return

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


def run_dag(
    stack: BenchStack,
    config: str,
    dag_id: str,
    size: int,
    index: int,
    warehouse: Warehouse,
    cap_s: float,
    timelines: Path,
    models: list[str],
) -> dict:
    warehouse.reset()
    time.sleep(5)  # the previous run's processes are gone and the scheduler is idle
    sampler = TreeSampler(stack.pids())
    idle_rss, idle_pss = sampler.sample(pss=True)
    sampler.peak_rss = sampler.peak_pss = 0
    capped_at = None
    killer = None
    cpu_before = cpu_by_part(stack)
    with sampler:
        started = time.monotonic()
        run_id = stack.trigger(dag_id)
        if (share := CONFIGS[config].kill_build_at) is not None:
            killer = BuildKiller(stack.client, dag_id, run_id, warehouse.path, len(models), share)
            killer.start()
        while True:
            time.sleep(1)
            with contextlib.suppress(httpx.HTTPError):
                if stack.dag_run(dag_id, run_id)["state"] in TERMINAL:
                    break
            if time.monotonic() - started > cap_s:
                capped_at = datetime.now(UTC)
                log(f"  cap of {cap_s / 60:.1f} min reached: marking {run_id} failed")
                stack.fail_run(dag_id, run_id)
                break
    if killer:
        killer.stop()
    cpu_after = cpu_by_part(stack)
    if capped_at:
        # Let the scheduler stop what still runs, so the next run starts on a quiet machine.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if not any(ti["state"] in TI_ACTIVE for ti in stack.task_instances(dag_id, run_id)):
                    break
            time.sleep(3)
        for proc in sampler.processes():
            with contextlib.suppress(psutil.Error):
                if "dbt" in " ".join(proc.cmdline()):
                    proc.wait(timeout=60)
    dag_run = stack.dag_run(dag_id, run_id)
    tis = stack.task_instances(dag_id, run_id)
    timeline = timelines / f"{dag_id}-run{index}.json"
    timeline.parent.mkdir(parents=True, exist_ok=True)
    timeline.write_text(json.dumps([{k: ti.get(k) for k in TIMELINE_FIELDS} for ti in tis], indent=1))
    states: dict[str, int] = {}
    for ti in tis:
        states[str(ti["state"])] = states.get(str(ti["state"]), 0) + 1
    starts = [utc(ti["start_date"]) for ti in tis if ti.get("start_date")]
    ended = [(utc(ti["start_date"]), utc(ti["end_date"])) for ti in tis if ti.get("start_date") and ti.get("end_date")]
    first_start = min(starts) if starts else None
    if capped_at:
        finished = [ti for ti in tis if ti["state"] == "success" and utc(ti["end_date"]) <= capped_at]
        last_end = capped_at
    else:
        finished = [ti for ti in tis if ti["state"] == "success"]
        last_end = max(end for _, end in ended) if ended else None
    wall = (last_end - first_start).total_seconds() if first_start and last_end else None
    durations = sorted((end - start).total_seconds() for start, end in ended)
    timed = [ti for ti in tis if ti.get("start_date") and ti.get("end_date")]
    # The task that runs the one dbt build (WATCHER's producer, the project's dbt_build), else the longest.
    build = next((ti for ti in timed if ti["task_id"].split(".")[-1] in BUILD_TASKS), None)
    longest = build or max(timed, key=lambda ti: utc(ti["end_date"]) - utc(ti["start_date"]), default=None)
    # A node task is one whose id names a model: the model's own task, or its tests'.
    model_names = set(models)
    node_ends = [utc(ti["end_date"]) for ti in timed if model_names.intersection(ti["task_id"].split("."))]
    # The crash configuration's build task is retried once, on purpose.
    expected = {PRODUCER} if killer and killer.killed_with is not None else set()
    retries = sum(max(0, int(ti.get("try_number") or 0) - 1) for ti in tis if ti["task_id"] not in expected)
    lock_errors = stack.lock_errors(dag_id, run_id)
    succeeded = {part for ti in tis if ti["state"] == "success" for part in ti["task_id"].split(".")}
    models_not_succeeded = [m for m in models if m not in succeeded]
    # Skipped is allowed (a task whose trigger rule did not fire); a retried task is not: such a run is
    # reported, and left out of the medians.
    ok = (
        not capped_at
        and dag_run["state"] == "success"
        and set(states) <= {"success", "skipped"}
        and not models_not_succeeded
        and not retries
        and not lock_errors
        and (killer is None or killer.killed_with is not None)
    )
    return {
        "config": config,
        "size": size,
        "run": index,
        "cap_s": cap_s,
        "dag_id": dag_id,
        "run_id": run_id,
        "ok": ok,
        "capped": bool(capped_at),
        "dag_run_state": dag_run["state"],
        "dag_run_queued_at": dag_run.get("queued_at"),
        "dag_run_start": dag_run.get("start_date"),
        "dag_run_end": dag_run.get("end_date"),
        "dag_run_wall_s": (
            (utc(dag_run["end_date"]) - utc(dag_run["start_date"])).total_seconds()
            if dag_run.get("start_date") and dag_run.get("end_date")
            else None
        ),
        "first_task_start": first_start.isoformat() if first_start else None,
        "last_task_end": last_end.isoformat() if last_end else None,
        "transform_wall_s": wall,
        "tasks": len(tis),
        "task_states": states,
        "tasks_succeeded_in_time": len(finished),
        "task_seconds_median": statistics.median(durations) if durations else None,
        "task_seconds_sum": sum(durations),
        "busy_s": busy_seconds(ended),
        "longest_task": longest["task_id"] if longest else None,
        "longest_task_s": (utc(longest["end_date"]) - utc(longest["start_date"])).total_seconds() if longest else None,
        "tail_s": tail_seconds(build, node_ends) if not capped_at else None,
        "retries": retries,
        "killed_build_with_models_published": killer.killed_with if killer else None,
        "lock_errors": lock_errors,
        "timeline": str(timeline),
        "failure_reasons": [] if ok else stack.failure_reasons(dag_id, run_id, tis),
        "models_not_succeeded": models_not_succeeded[:10],
        "skipped_tasks": sorted(ti["task_id"] for ti in tis if ti["state"] == "skipped")[:5],
        "failed_tasks": sorted(ti["task_id"] for ti in tis if ti["state"] not in ("success", None))[:10],
        "cpu_s": {part: cpu_after[part] - cpu_before[part] for part in CPU_PARTS if part in cpu_after},
        "idle_rss_bytes": idle_rss,
        "idle_pss_bytes": idle_pss,
        **sampler.as_dict(),
    }


# --------------------------------------------------------------------------- summary and report


def summarise(
    config: str,
    size: int,
    runs: list[dict],
    parse: dict | None,
    processor: dict[str, float] | None,
    skip: str | None,
    dbt_s: float | None,
):
    mine = [r for r in runs if r["config"] == config and r["size"] == size]
    ok = [r for r in mine if r["ok"]]
    walls = [r["transform_wall_s"] for r in ok]
    summary = {
        "config": config,
        "size": size,
        "runs": len(mine),
        "runs_ok": len(ok),
        "all_runs": mine,
        "skipped": skip,
        "parse": parse,
        "processor_parse_median_s": statistics.median(processor.values()) if processor else None,
        "processor_parses": len(processor or {}),
        "capped": [r for r in mine if r["capped"]],
        "failed": [r for r in mine if not r["ok"] and not r["capped"]],
        "retries": sum(r["retries"] for r in mine),
        "lock_errors": sum(r["lock_errors"] for r in mine),
        "wall_median_s": statistics.median(walls) if walls else None,
        "wall_min_s": min(walls) if walls else None,
        "wall_max_s": max(walls) if walls else None,
        "peak_rss_median_bytes": statistics.median([r["peak_rss_bytes"] for r in ok]) if ok else None,
        "peak_pss_median_bytes": statistics.median([r["peak_pss_bytes"] for r in ok]) if ok else None,
        "idle_rss_median_bytes": statistics.median([r["idle_rss_bytes"] for r in ok if "idle_rss_bytes" in r])
        if ok and config != "dbt"
        else None,
    }
    if ok and config != "dbt":
        summary["dag_run_wall_median_s"] = statistics.median(r["dag_run_wall_s"] for r in ok)
        summary["tasks"] = ok[0]["tasks"]
        summary["task_seconds_median"] = statistics.median(r["task_seconds_median"] for r in ok)
        summary["idle_gaps_median_s"] = statistics.median(r["transform_wall_s"] - r["busy_s"] for r in ok)
        summary["longest_task"] = ok[0]["longest_task"]
        summary["build_task"] = (ok[0]["longest_task"] or "").split(".")[-1] in BUILD_TASKS
        summary["longest_task_median_s"] = statistics.median(r["longest_task_s"] for r in ok)
        # Runs recorded before the tail was measured have none.
        tails = [r["tail_s"] for r in ok if r.get("tail_s") is not None]
        summary["tail_median_s"] = statistics.median(tails) if tails else None
        # Runs recorded before CPU was measured have none.
        cpus = [r["cpu_s"] for r in ok if r.get("cpu_s")]
        summary["cpu_median_s"] = (
            {part: statistics.median(c.get(part, 0.0) for c in cpus) for part in CPU_PARTS} if cpus else None
        )
    if dbt_s and summary["wall_median_s"] is not None:
        summary["ratio"] = summary["wall_median_s"] / dbt_s
        summary["overhead_per_model_s"] = (summary["wall_median_s"] - dbt_s) / size
    if CONFIGS[config].kill_build_at is not None:
        normal = [
            r["transform_wall_s"] for r in runs if r["config"] == "project_default" and r["size"] == size and r["ok"]
        ]
        if normal and walls:
            summary["normal_median_s"] = statistics.median(normal)
            summary["vs_normal"] = summary["wall_median_s"] / summary["normal_median_s"]
        summary["killed_with"] = [r.get("killed_build_with_models_published") for r in mine]
    return summary


def s(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f} s"


def mem(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 2**30:.2f} GiB" if value >= 2**30 else f"{value / 2**20:.0f} MiB"


def capped_text(run: dict, dbt_s: float | None) -> tuple[str, str, str, str]:
    """Wall, ratio, overhead and runs cells of a run stopped at the cap: lower bounds."""
    wall = run.get("transform_wall_s") or 0.0
    # Runs recorded before the bench counted the tasks done in time lack these two.
    done, total = run.get("tasks_succeeded_in_time"), run.get("tasks")
    progress = "cap"
    if done is not None and total is not None:
        rate = f"{wall / done:.1f} s per task" if done else "no task finished"
        projected = f", ≈ {wall / done * total / 60:.0f} min at that rate" if done else ""
        progress = f"cap; {done} of {total} tasks done, {rate}{projected}"
    cells = (
        f"> {wall:.0f} s ({progress})",
        f"> {wall / dbt_s:.1f}x" if dbt_s else "-",
        f"> {(wall - dbt_s) / run['size']:.2f} s" if dbt_s else "-",
        "stopped at the cap",
    )
    return cells


def states_text(states: dict[str, int]) -> str:
    return ", ".join(f"{count} {state}" for state, count in sorted(states.items(), key=lambda kv: -kv[1]))


def cap_evidence(run: dict, size: int) -> str:
    """Why a configuration stopped at the cap is not run at a larger size."""
    done, total, wall = run.get("tasks_succeeded_in_time"), run.get("tasks"), run.get("transform_wall_s") or 0.0
    cap = run["cap_s"] / 60
    text = f"at {run['size']} models it was stopped at the cap ({cap:.1f} min)"
    if done is None or total is None:
        return text
    text += f" with {done} of {total} tasks done"
    if done:
        tasks = round(total / run["size"] * size)
        per_task = wall / done
        text += f"; at {per_task:.1f} s per task, its {tasks} tasks here would take ≈ {per_task * tasks / 60:.0f} min"
    return text


TAIL_HEADER = "Tail: last node task end - build end"


def cpu_cell(cpu: dict[str, float] | None) -> str:
    return " / ".join(f"{cpu[part]:.0f}" for part in CPU_PARTS) if cpu else "-"


def tail_cell(sm: dict) -> str:
    """The median tail, or why there is none."""
    if sm["config"] == "dbt":
        return "n/a"
    if sm.get("tail_median_s") is not None:
        return s(sm["tail_median_s"])
    if sm.get("build_task") is False:
        return "none: no build task"
    return "-"


def size_table(size: int, summaries: list[dict], dbt_s: float | None, nodes: dict | None = None) -> list[str]:
    nodes = nodes or {"model": size, "test": size}  # as every project was before seeds and --shape
    counts = " + ".join(f"{count} {kind}s" for kind, count in nodes.items())
    lines = [
        f"### {size} models ({sum(nodes.values())} dbt nodes: {counts})",
        "",
        "| Configuration | Parse, warm / cold | Parse in the DAG processor | Transform wall, median (min-max) "
        f"| x dbt build | Overhead per model | {TAIL_HEADER} | Peak memory, RSS sum (PSS) | Runs succeeded "
        "| Task states, all runs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for sm in summaries:
        title = CONFIGS[sm["config"]].title
        parse = sm["parse"]
        parse_cell = (
            f"{s(parse['warm_median_s'], 2)} / {s(parse['cold_median_s'], 2)}"
            if parse and parse.get("warm_median_s") is not None
            else ("n/a" if sm["config"] == "dbt" else "-")
        )
        if sm["config"] == "dbt":
            parse_cell += " | n/a"
        else:
            processor = sm["processor_parse_median_s"]
            count = sm["processor_parses"]
            parse_cell += f" | {s(processor, 2)} ({count} parse{'s' if count > 1 else ''})" if processor else " | -"
        if sm["skipped"] and not sm["runs"]:
            lines.append(f"| {title} | {parse_cell} | skipped: {sm['skipped']} | - | - | - | - | 0 | - |")
            continue
        if sm["wall_median_s"] is not None:
            wall = f"{s(sm['wall_median_s'])} ({sm['wall_min_s']:.1f}-{sm['wall_max_s']:.1f})"
            ratio = "1.00x" if sm["config"] == "dbt" else f"{sm['ratio']:.2f}x" if "ratio" in sm else "-"
            overhead = "0" if sm["config"] == "dbt" else s(sm.get("overhead_per_model_s"), 2)
        elif sm["capped"]:
            wall, ratio, overhead, _ = capped_text(sm["capped"][0], dbt_s)
        else:
            walls = [f"{r['transform_wall_s']:.0f} s" for r in sm["failed"] if r.get("transform_wall_s")]
            wall = "no successful run" + (f" (failed after {', '.join(walls)})" if walls else "")
            ratio, overhead = "-", "-"
        memory = f"{mem(sm['peak_rss_median_bytes'])} ({mem(sm['peak_pss_median_bytes'])})"
        if sm["config"] != "dbt" and sm["idle_rss_median_bytes"]:
            memory += f"; idle {mem(sm['idle_rss_median_bytes'])}"
        if not sm["runs_ok"] and (sm["capped"] or sm["failed"]):
            run = (sm["capped"] or sm["failed"])[0]
            memory = f"{mem(run['peak_rss_bytes'])} ({mem(run['peak_pss_bytes'])}) in the unsuccessful run"
        runs_cell = f"{sm['runs_ok']} of {sm['runs']}"
        if sm["capped"]:
            runs_cell += " (stopped at the cap)"
        if sm["skipped"]:
            runs_cell += f"; {sm['skipped']}"
        clean = sm["runs"] and sm["runs_ok"] == sm["runs"]
        runs = sm["all_runs"]
        totals: dict[str, int] = {}
        for r in runs:
            for state, count in (r.get("task_states") or r.get("node_statuses") or {}).items():
                totals[state] = totals.get(state, 0) + count
        all_ok = ("" if clean else "**not all successful**: ") + (states_text(totals) or "no task recorded")
        skipped = sorted({t for r in runs for t in r.get("skipped_tasks", [])})
        if clean and skipped:
            all_ok += " (by its trigger rule: " + ", ".join(f"`{t}`" for t in skipped) + ")"
        problems = [f"run {run['run']} stopped at the cap" for run in sm["capped"]]
        for failed in sm["failed"]:
            retried = f" after {failed['retries']} retries" if failed.get("retries") else ""
            reasons = "; ".join(
                "`" + r.replace("`", "'").replace("|", "/") + "`" for r in failed.get("failure_reasons", [])
            )
            problems.append(
                f"run {failed['run']}: {failed.get('dag_run_state', 'exit code ' + str(failed.get('returncode')))}"
                f"{retried}, {states_text(failed.get('task_states') or failed.get('node_statuses') or {})}"
                + (f"; {reasons}" if reasons else "")
            )
        if sm["retries"]:
            problems.append(f"{sm['retries']} retries in all")
        if None in sm.get("killed_with", ()):
            problems.append("dbt was not killed in every run")
        if sm["lock_errors"]:
            problems.append(f"{sm['lock_errors']} task logs with DuckDB lock errors")
        if problems:
            all_ok += " (" + "; ".join(problems) + ")"
        lines.append(
            f"| {title} | {parse_cell} | {wall} | {ratio} | {overhead} | {tail_cell(sm)} | {memory} | {runs_cell} "
            f"| {all_ok} |"
        )
    lines.append("")
    timing = [sm for sm in summaries if sm.get("tasks")]
    if timing:
        lines += [
            "Where the time goes (median of the successful runs):",
            "",
            "| Configuration | Tasks | Task duration, median | The dbt build task "
            f"| {TAIL_HEADER} | No task running | DAG run wall | CPU seconds: {' / '.join(CPU_PARTS)} |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for sm in timing:
            build = (
                f"`{sm['longest_task']}` {s(sm['longest_task_median_s'])}"
                if sm["build_task"]
                else "none: one dbt invocation per task"
            )
            lines.append(
                f"| {CONFIGS[sm['config']].title} | {sm['tasks']} | {s(sm['task_seconds_median'], 2)} "
                f"| {build} | {tail_cell(sm)} | {s(sm['idle_gaps_median_s'])} | {s(sm['dag_run_wall_median_s'])} "
                f"| {cpu_cell(sm.get('cpu_median_s'))} |"
            )
        lines.append("")
    return lines


# Issue #12's targets.
TARGETS = (
    ("DAG file parses in under 0.2 s (warm)", 1000, "parse", 0.2),
    ("DAG file parses in under 0.5 s (warm), `--shape scale`", 700, "parse", 0.5),
    ("transform ≤ 1.5x plain dbt build", 20, "ratio", 1.5),
    ("transform ≤ 1.2x plain dbt build", 200, "ratio", 1.2),
    ("transform ≤ 1.5x plain dbt build", 1000, "ratio", 1.5),
    ("a run whose dbt was killed mid-build recovers in ≤ 1.5x a normal run", 20, "vs_normal", 1.5),
    ("a run whose dbt was killed mid-build recovers in ≤ 1.5x a normal run", 200, "vs_normal", 1.5),
)


def target_cell(sm: dict | None, kind: str, limit: float, dbt_s: float | None) -> tuple[str, str]:
    """(measured, verdict) of one configuration against one target."""
    if sm is None:
        return "not measured", "-"
    if kind == "parse":
        value = (sm["parse"] or {}).get("warm_median_s")
        if value is None:
            return "not measured", "-"
        cold = sm["parse"]["cold_median_s"]
        processor = sm.get("processor_parse_median_s")
        measured = f"{value:.2f} s (cold {cold:.2f} s" + (f"; DAG processor {processor:.2f} s)" if processor else ")")
        verdict = "pass" if value < limit else f"**fail**: {value / limit:.1f}x the budget"
        return measured, verdict
    if kind == "vs_normal":
        if CONFIGS[sm["config"]].kill_build_at is None:
            return "n/a", "-"
        if sm.get("vs_normal") is None:
            return "no successful pair of runs", "**fail**"
        value = sm["vs_normal"]
        measured = f"{value:.2f}x ({sm['wall_median_s']:.1f} s against {sm['normal_median_s']:.1f} s)"
        if sm["runs_ok"] < sm["runs"]:
            return measured, f"**fail**: {sm['runs'] - sm['runs_ok']} of {sm['runs']} runs not successful"
        return measured, "pass" if value <= limit else f"**fail**: {value / limit:.1f}x the budget"
    if sm.get("ratio") is not None:
        value = sm["ratio"]
        if sm["runs_ok"] < sm["runs"]:
            return f"{value:.2f}x", f"**fail**: {sm['runs'] - sm['runs_ok']} of {sm['runs']} runs not successful"
        verdict = "pass" if value <= limit else f"**fail**: {value - limit:.2f}x over ({value / limit:.1f}x the budget)"
        return f"{value:.2f}x", verdict
    if sm["capped"] and dbt_s:
        wall = sm["capped"][0]["transform_wall_s"] or 0.0
        return f"> {wall / dbt_s:.1f}x", f"**fail**: at least {wall / dbt_s / limit:.1f}x the budget (capped)"
    if sm["skipped"]:
        return "skipped", f"**fail**: {sm['skipped']}"
    return "no successful run", "**fail**"


def render(report: dict, analysis: str) -> str:
    meta = report["meta"]
    m, v, af = meta["machine"], meta["versions"], meta["airflow_settings"]
    summaries = report["summaries"]
    lines = [
        "# Benchmarks: the transform phase under Airflow",
        "",
        "Written by `make bench` (bench/run.py; how it works: bench/README.md). Everything here is "
        "regenerated on each run except the analysis section, which is kept.",
        "",
    ]
    if not report.get("complete"):
        lines += ["**This run did not finish: the figures below are partial.**", ""]
    lines += [
        f"- Date: {meta['date']}; bench took {meta.get('elapsed_min', 0):.0f} min.",
        f"- Command: `{meta['command']}`, at commit {meta['commit']}.",
        f"- Machine: {m['cores']} cores, {m['memory_bytes'] / 2**30:.1f} GiB memory, {m['cpu_model']}; {m['os']}.",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "- Airflow: API server, scheduler (LocalExecutor), DAG processor and triggerer on 127.0.0.1, "
        "metadata on PostgreSQL (devstack/airflow_stack.py). Settings in effect: "
        + ", ".join(f"`{k}` = {val}" for k, val in af.items())
        + f". Pool `{POOL}`: 1 slot (DuckDB allows one writer per file). Only the DAG under test is in the "
        "DAG folder. Cosmos's cache is the bench's own: cold at a configuration's first run, warm after.",
        f"- dbt: {gen.THREADS} threads (the project's default, `ELT_DBT_THREADS`; the same for every "
        "configuration: the generated profile and the project default's profile mapping), DuckDB "
        "warehouse file reset to the raw tables before every measured run.",
        f"- Projects (bench/generate.py, seed {meta['seed']}): 3 staging models over raw tables of "
        f"{gen.EVENTS:,} events, {gen.CUSTOMERS:,} customers and {gen.PRODUCTS:,} products, then "
        f"{gen.LAYERS} layers of intermediate models (chains, fan-in of 2-3 models, re-aggregations "
        "over the events); every model a table with one `not_null` test. No ingestion."
        + (f" Shape {meta['shape']}: {SHAPES[meta['shape']]}." if meta.get("shape", "default") != "default" else ""),
        f"- Runs: median of {meta['runs']} per configuration and size; a run that is not fully successful "
        f"is reported and left out of the medians. Cap on one run: {meta['cap_minutes']:g} min or "
        f"{meta['cap_ratio']:g}x the plain dbt build, whichever is longer; a "
        "configuration stopped at the cap is not run again at that size or larger ones (more tasks, each "
        "no cheaper).",
        f"- Project default: {meta['project_default_note']}",
        "",
        "## Configurations",
        "",
    ]
    for name in meta["configs"]:
        lines.append(f"- **{CONFIGS[name].title}** (`{name}`): {CONFIGS[name].description}")
    if others := [f"`{name}`" for name in CONFIGS if name not in meta["configs"]]:
        lines += ["", f"Not in this run: {', '.join(others)} (`--configs`; bench/README.md)."]
    lines += [
        "",
        "## What is measured",
        "",
        "- **Parse**: `runpy.run_path` of the DAG file in a fresh interpreter, before Airflow starts, median "
        f"of {meta['parse_runs']}. *Warm*: the file's top-level imports done first, so only building the DAG "
        "is timed; *cold*: those imports included (interpreter start-up excluded). The target is judged on "
        "the warm figure. *Parse in the DAG processor*: Airflow's own `last_parse_duration` of the file "
        "(REST API), median of the distinct parses seen before each run, some made while a run was going. "
        "Its parse runs in a process forked from one that holds Airflow and its plugins' imports (Cosmos's "
        "among them), and it includes the DAG's serialisation.",
        "- **Transform wall**: first task start to last task end of the DAG run (Airflow REST API). For "
        "plain dbt build: the process's wall time, interpreter start and partial parse included.",
        "- **x dbt build**: transform wall / plain dbt build's median wall at the same size: the headline. "
        "**Overhead per model**: (transform wall - dbt build wall) / models.",
        "- **Peak memory**: the peak, sampled every 0.25 s, of the summed RSS of the whole Airflow process "
        "tree (API server, scheduler and its executor workers and task processes, DAG processor, "
        "triggerer); for plain dbt, of the dbt process. RSS counts pages shared by forked processes once per "
        "process; PSS (sampled every 2 s) shares them out. *Idle*: the tree before the run was triggered.",
        "- **Tail**: the end of the last node task (a task of a model or of its test) minus the end of the "
        "task that runs the one `dbt build` (WATCHER's producer, the project's `dbt_build`), from the task "
        "instances, as Cosmos's own benchmark reports it: how long the per-node tasks take to catch up once "
        "dbt is done; median of the successful runs. *none* where there is no such task (one dbt invocation "
        "per task); `-` without a successful run, or for runs recorded before the tail was measured.",
        "- **Where the time goes**: from the task instances. *The dbt build task*: the task that runs the one "
        "`dbt build`, and its duration; *Tail*: as above; *No task running*: time within the transform "
        "when no task of the run was running (scheduling, task start-up). With `--workdir`, per-task "
        "timelines are kept in its `timelines/`.",
        "- **CPU seconds** (in *Where the time goes*): user + system CPU during the run, median of the "
        "successful runs: *tasks*, the task processes the scheduler's LocalExecutor starts (dbt included); "
        "*scheduler*, its own process; *triggerer*, *api-server* and *dag-processor*, each with its "
        "children. On 2 cores, what the Airflow processes use is taken from dbt's share.",
        "- **Runs succeeded**: the DAG run ended success, each model's task succeeded, no task failed or was "
        "retried, and no task log has a DuckDB lock error (a task skipped by its trigger rule is allowed; "
        "for the crash configuration, dbt was killed and the build task's one retry is the only one). "
        "**x normal run** (crash configuration): its median transform wall / the project default's, same size. "
        "**Task states**: of every task instance of every run.",
        "",
        "## Results",
        "",
    ]
    for size in meta["sizes"]:
        dbt_s = report["dbt_median_s"].get(str(size))
        rows = [sm for sm in summaries if sm["size"] == size]
        if rows:
            lines += size_table(size, rows, dbt_s, meta.get("nodes", {}).get(str(size)))
    lines += [
        "## Targets",
        "",
        "| Target | Size | " + " | ".join(CONFIGS[c].title for c in meta["configs"] if c != "dbt") + " |",
        "| --- | --- | " + " | ".join("---" for c in meta["configs"] if c != "dbt") + " |",
    ]
    for label, size, kind, limit in TARGETS:
        cells = []
        for config in meta["configs"]:
            if config == "dbt":
                continue
            sm = next((x for x in summaries if x["config"] == config and x["size"] == size), None)
            measured, verdict = target_cell(sm, kind, limit, report["dbt_median_s"].get(str(size)))
            cells.append(f"{measured}: {verdict}" if verdict != "-" else measured)
        lines.append(f"| {label} | {size} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "The targets are the project default's; the other configurations are measured against the same "
        "budgets for comparison.",
        "",
        "## Analysis",
        "",
        ANALYSIS_START,
        analysis.strip("\n") or "_Written by hand after a full run on a quiet machine._",
        ANALYSIS_END,
        "",
    ]
    return "\n".join(lines)


def existing_analysis(path: Path) -> str:
    if not path.exists():
        return ""
    text = path.read_text()
    start, end = text.find(ANALYSIS_START), text.find(ANALYSIS_END)
    if start == -1 or end == -1 or end < start:
        return ""
    return text[start + len(ANALYSIS_START) : end]


def write_report(report: dict, output: Path, json_output: Path) -> None:
    """docs/benchmarks.md (keeping its analysis section) and the raw results beside it."""
    summaries = []
    for size in report["meta"]["sizes"]:
        dbt_s = report["dbt_median_s"].get(str(size))
        for config in report["meta"]["configs"]:
            key = f"{config}/{size}"
            if any(r["config"] == config and r["size"] == size for r in report["runs"]) or key in report["skipped"]:
                summaries.append(
                    summarise(
                        config,
                        size,
                        report["runs"],
                        report["parse"].get(key),
                        report["processor_parse"].get(key),
                        report["skipped"].get(key),
                        dbt_s,
                    )
                )
    report["summaries"] = summaries
    output.parent.mkdir(parents=True, exist_ok=True)
    lean = [{k: v for k, v in sm.items() if k != "all_runs"} for sm in summaries]
    json_output.write_text(json.dumps({**report, "summaries": lean}, indent=2, default=str) + "\n")
    output.write_text(render(report, existing_analysis(output)))


# --------------------------------------------------------------------------- main


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="models per generated project (default %(default)s)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per configuration and size (default 3)")
    parser.add_argument(
        "--configs",
        default=",".join(DEFAULT_CONFIGS),
        help=f"comma-separated, from {', '.join(CONFIGS)} (default: %(default)s)",
    )
    parser.add_argument(
        "--cap-minutes", type=float, default=8.0, help="a run is stopped after this long (default %(default)s) ..."
    )
    parser.add_argument(
        "--cap-ratio",
        type=float,
        default=6.0,
        help="... or after this many times plain dbt build's time at that size, if longer (default %(default)s)",
    )
    parser.add_argument("--parse-runs", type=int, default=3, help="fresh interpreters per parse figure (default 3)")
    parser.add_argument(
        "--output", type=Path, default=REPO / "docs" / "benchmarks.md", help="report; raw results beside it as .json"
    )
    parser.add_argument("--seed", type=int, default=0, help="of the generated projects (default 0)")
    parser.add_argument(
        "--shape", choices=SHAPES, default="default", help="; ".join(f"{k}: {v}" for k, v in SHAPES.items())
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where projects, DAG files, Airflow logs and per-task timelines go, kept afterwards "
        "(default: a temporary directory, removed at the end)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: rewrite the report from the raw results beside it (the .json)",
    )
    args = parser.parse_args(argv)
    if args.render_only:
        output = args.output.resolve()
        results = output.with_suffix(".json")
        if not results.exists():
            parser.error(f"--render-only renders the raw results beside the report, and there is no {results}")
        write_report(json.loads(results.read_text()), output, results)
        log(f"rewrote {output}")
        return 0

    sizes = sorted(int(x) for x in args.sizes.split(","))
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configs {sorted(unknown)}; choose from {list(CONFIGS)}")
    configs = [c for c in CONFIGS if c in configs]  # baseline first
    if "dbt" not in configs:
        parser.error("the dbt baseline is required: ratios are against it")
    output = args.output.resolve()
    json_output = output.with_suffix(".json")
    cap_s = args.cap_minutes * 60
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="elt-bench-"))).resolve()
    keep_workdir = args.workdir is not None
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"working in {workdir}")

    # SIGTERM ends the bench like Ctrl-C does: the stack is stopped and its database dropped.
    signal.signal(signal.SIGTERM, _interrupt)

    warehouse = Warehouse(workdir)
    os.environ[gen.DB_PATH_ENV] = str(warehouse.path)
    env = {
        **AIRFLOW_OVERRIDES,
        gen.DB_PATH_ENV: str(warehouse.path),
        # Cosmos's cache of this bench alone: cold at a configuration's first run, warm after, as deployed.
        "AIRFLOW__COSMOS__CACHE_DIR": str(workdir / "cosmos-cache"),
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps({"conn_type": "duckdb", "host": str(warehouse.path)}),
    }
    stack = BenchStack(workdir, env)
    started = time.monotonic()
    probed = probe(stack.env)
    project_default = probed["project_default"]
    if project_default.get("available"):
        mode = project_default["settings"].get("transform_mode", "?")
        pd_note = f"`build_elt_dag`, settings `transform_mode` = {mode} (the rest in docs/benchmarks.json)."
    else:
        reason = project_default.get("error") or "elt_platform.dag_factory has no build_elt_dag"
        pd_note = f"not measured: {reason}."
        if "project_default" in configs:
            log(f"skipping project_default: {reason}")
    report: dict = {
        "meta": {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command_line(),
            "commit": git_state(),
            "machine": machine(),
            "versions": versions(),
            "airflow_settings": probed["airflow"],
            "airflow_env_overrides": AIRFLOW_OVERRIDES,
            "project_default": project_default,
            "project_default_note": pd_note,
            "sizes": sizes,
            "configs": configs,
            "runs": args.runs,
            "parse_runs": args.parse_runs,
            "cap_minutes": args.cap_minutes,
            "cap_ratio": args.cap_ratio,
            "seed": args.seed,
            "shape": args.shape,
            "nodes": {},
            "workdir": str(workdir),
        },
        "parse": {},
        "processor_parse": {},
        "runs": [],
        "skipped": {},
        "dbt_median_s": {},
        "summaries": [],
        "complete": False,
    }

    def write() -> None:
        report["meta"]["elapsed_min"] = (time.monotonic() - started) / 60
        write_report(report, output, json_output)

    airflow_configs = [c for c in configs if c in AIRFLOW_CONFIGS]
    if not project_default.get("available"):
        for config in {c for c in airflow_configs if c.startswith("project_default")}:
            airflow_configs.remove(config)
            for size in sizes:
                report["skipped"][f"{config}/{size}"] = pd_note.removesuffix(".")

    capped: dict[str, dict] = {}
    try:
        log("creating the raw tables")
        warehouse.create()
        projects: dict[int, Path] = {}
        models: dict[int, list[str]] = {}
        dag_files: dict[tuple[str, int], tuple[str, Path]] = {}
        for size in sizes:
            log(f"generating a {size}-model project")
            seeds, tests = (round(size / 7), round(size * 10 / 7)) if args.shape == "scale" else (0, 0)
            manifest = gen.generate(workdir / "projects" / f"models_{size}", size, args.seed, seeds, tests)
            projects[size] = manifest.parent.parent
            nodes = json.loads(manifest.read_text())["nodes"].values()
            models[size] = [node["name"] for node in nodes if node["resource_type"] == "model"]
            for kind in ("model", "seed", "test"):
                if count := sum(1 for n in nodes if n["resource_type"] == kind):
                    report["meta"]["nodes"].setdefault(str(size), {})[kind] = count
            for config in airflow_configs:
                dag_files[config, size] = render_dag_file(config, size, projects[size], workdir / "dag_files")
                log(f"parse time of {config} at {size} models")
                parse = measure_parse(dag_files[config, size][1], stack.env, args.parse_runs, workdir)
                report["parse"][f"{config}/{size}"] = parse
                if parse["errors"]:
                    log(f"  parse errors: {parse['errors']}")

        log("starting Airflow")
        stack.start()
        for size in sizes:
            for index in range(1, args.runs + 1):
                log(f"dbt build, {size} models, run {index}")
                # The baseline is never capped: every configuration's cap is a multiple of it.
                result = run_dbt(projects[size], size, index, warehouse, workdir, None)
                report["runs"].append(result)
                log(f"  {result['transform_wall_s']:.1f} s, ok={result['ok']}")
            walls = [
                r["transform_wall_s"] for r in report["runs"] if r["config"] == "dbt" and r["size"] == size and r["ok"]
            ]
            if walls:
                report["dbt_median_s"][str(size)] = statistics.median(walls)
            write()
            for config in airflow_configs:
                key = f"{config}/{size}"
                if config in capped:
                    report["skipped"][key] = cap_evidence(capped[config], size)
                    log(f"skipping {config} at {size} models: {report['skipped'][key]}")
                    continue
                dag_id, dag_file = dag_files[config, size]
                stack.install(dag_file)
                problem = stack.wait_parsed(dag_id, dag_file, timeout=600)
                if problem:
                    report["skipped"][key] = f"the DAG did not load ({problem})"
                    log(f"skipping {config} at {size} models: {problem}")
                    write()
                    continue
                processor = report["processor_parse"].setdefault(key, {})
                for index in range(1, args.runs + 1):
                    if record := stack.parse_record(dag_id):
                        processor[record[0]] = record[1]
                    log(f"{config}, {size} models, run {index}")
                    run_cap_s = max(cap_s, args.cap_ratio * report["dbt_median_s"].get(str(size), 0))
                    result = run_dag(
                        stack, config, dag_id, size, index, warehouse, run_cap_s, workdir / "timelines", models[size]
                    )
                    report["runs"].append(result)
                    log(
                        f"  wall {s(result['transform_wall_s'])}, state {result['dag_run_state']}, "
                        f"tasks {result['task_states']}, ok={result['ok']}"
                    )
                    write()
                    if result["capped"]:
                        # Larger sizes are skipped; further runs at this size too, unless the run nearly made it.
                        capped[config] = result
                        done, total = result["tasks_succeeded_in_time"], result["tasks"]
                        projected = result["transform_wall_s"] / done * total if done else float("inf")
                        if index < args.runs and projected > 1.25 * run_cap_s:
                            report["skipped"][key] = (
                                f"further runs skipped: at the rate measured, one would take ≈ {projected / 60:.0f} min"
                                if done
                                else "further runs skipped: no task finished within the cap"
                            )
                            break
                if record := stack.parse_record(dag_id):
                    processor[record[0]] = record[1]
                stack.pause(dag_id)
                stack.uninstall()
        report["complete"] = True
    finally:
        write()
        log("stopping Airflow")
        stack.stop()
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
            report["meta"]["workdir"] = f"{workdir} (temporary, removed at the end)"
            write()
    log(f"wrote {output.relative_to(REPO) if output.is_relative_to(REPO) else output} and {json_output.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
