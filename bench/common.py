"""What both benchmarks share: the run's context (machine, versions, commit), memory sampling,
DAG parse timing, and reports whose hand-written analysis survives a re-render."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
ANALYSIS_START, ANALYSIS_END = "<!-- analysis -->", "<!-- /analysis -->"


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", flush=True)


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def context(module: str, make_target: str) -> dict:
    """When, how and on what the benchmark ran: the head of every report."""
    command = shlex.join(["python", "-m", module, *sys.argv[1:]])
    models = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
    cpu_model = models[0].split(":", 1)[1].strip() if models else platform.processor() or "unknown"
    found = {"python": platform.python_version()}
    for dist in ("apache-airflow", "astronomer-cosmos", "dbt-core", "dbt-duckdb", "duckdb"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[dist] = metadata.version(dist)
    # The commit measured, and whether the project's code differs from it.
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "src", "bench"], capture_output=True, text=True)
    commit += ", with uncommitted changes in src/ or bench/" if dirty.stdout.strip() else ""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"make {make_target} (runs {command})" if os.environ.get("MAKELEVEL") else command,
        "commit": commit or "unknown (not a git checkout)",
        "machine": {
            "cores": os.cpu_count(),
            "memory_bytes": psutil.virtual_memory().total,
            "cpu_model": cpu_model,
            "os": platform.platform(),
        },
        "versions": found,
    }


def context_lines(meta: dict) -> list[str]:
    m = meta["machine"]
    return [
        f"- Date: {meta['date']}; the benchmark took {meta.get('elapsed_min', 0):.0f} min.",
        f"- Command: `{meta['command']}`, at commit {meta['commit']}.",
        f"- Machine: {m['cores']} cores, {m['memory_bytes'] / 2**30:.1f} GiB memory, {m['cpu_model']}; {m['os']}.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
    ]


def report_arguments(parser, report: str) -> None:
    """What every benchmark takes: where its report goes (``docs/benchmarks/<report>``), its working
    directory, and ``--render-only``."""
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks" / report)
    parser.add_argument("--workdir", type=Path, help="kept afterwards (default: a temporary directory, removed)")
    parser.add_argument("--render-only", action="store_true", help="rewrite the report from the .json beside it")


def write_report(path: Path, results: dict | None, render) -> None:
    """``path`` rendered from ``results`` (saved beside it as .json; None: read from there), keeping the
    hand-written analysis between the markers."""
    json_path = path.with_suffix(".json")
    if results is None:
        results = json.loads(json_path.read_text())
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    old = path.read_text() if path.exists() else ""
    start, end = old.find(ANALYSIS_START), old.find(ANALYSIS_END)
    analysis = old[start + len(ANALYSIS_START) : end].strip("\n") if 0 <= start < end else ""
    text = "\n".join(render(results))
    text += f"\n## Analysis\n\n{ANALYSIS_START}\n{analysis or '_Written by hand after a full run._'}\n{ANALYSIS_END}\n"
    path.write_text(text)


def mem(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 2**30:.2f} GiB" if value >= 2**30 else f"{value / 2**20:.0f} MiB"


class Sampler:
    """Peak summed memory of process trees, sampled in a background thread: RSS every ``interval``
    (forked processes share pages, so the sum counts them more than once) and PSS (shared pages split
    between their users, dearer to read) every ``pss_every`` samples."""

    def __init__(self, roots: list[int], interval: float = 0.25, pss_every: int = 8):
        self.roots, self.interval, self.pss_every = roots, interval, pss_every
        self.peak_rss = self.peak_pss = self.samples = 0  # peaks in bytes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self, pss: bool = False) -> tuple[int, int]:
        rss = pss_sum = 0
        procs: set[psutil.Process] = set()
        for pid in self.roots:
            with contextlib.suppress(psutil.Error):
                procs |= {psutil.Process(pid), *psutil.Process(pid).children(recursive=True)}
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                info = proc.memory_full_info() if pss else proc.memory_info()
                rss += info.rss
                pss_sum += info.pss if pss else 0
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss_sum)
        self.samples += 1
        return rss, pss_sum

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample(pss=self.pss_every > 0 and self.samples % self.pss_every == 0)
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def last_json(env: dict[str, str], *args: object) -> dict:
    """What a fresh interpreter running ``args`` in ``env`` printed last, as JSON; its last error if it failed."""
    done = subprocess.run([sys.executable, *map(str, args)], env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError((done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_times(dag_files: dict[str, Path], runs: int, env: dict[str, str], kinds=("cold", "warm")) -> dict:
    """Parse time of each DAG file in fresh interpreters (bench/parse_time.py), the files alternating:
    *warm*, the file's imports done first; *cold*, with them."""
    found = {name: {"cold_s": [], "warm_s": [], "tasks": None, "errors": []} for name in dag_files}
    for _ in range(runs):
        for (name, dag_file), kind in itertools.product(dag_files.items(), kinds):
            try:
                result = last_json(env, REPO / "bench" / "parse_time.py", dag_file, *["--warm"] * (kind == "warm"))
            except RuntimeError as error:
                found[name]["errors"].append(str(error))
                continue
            found[name][f"{kind}_s"].append(result["seconds"])
            found[name]["tasks"] = result["tasks"]
    for figures in found.values():
        figures["cold_median_s"], figures["warm_median_s"] = median(figures["cold_s"]), median(figures["warm_s"])
        figures["errors"] = figures["errors"][:3]
    return found
