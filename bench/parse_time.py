"""Time one parse of a DAG file in this fresh interpreter; prints the result as JSON, last line.

``python bench/parse_time.py DAG_FILE [--warm] [--calls PATH_PART]``. ``--warm``: the file's top-level imports
first, so only its own work is timed; without, they are timed too, as a cold DAG-processor child pays them.
``--calls elt_platform/health/``: the functions of files under that path the parse runs, and their calls (cProfile).
"""

from __future__ import annotations

import ast
import cProfile
import importlib
import json
import pstats
import runpy
import sys
import time
from pathlib import Path


def top_level_imports(path: Path) -> list[str]:
    modules = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.append(node.module)
    return modules


def main() -> None:
    path, options = Path(sys.argv[1]), sys.argv[2:]
    if "--warm" in options or "--calls" in options:
        # Airflow first: importing cosmos.constants before it is a circular import.
        for module in ("airflow", "airflow.sdk", *top_level_imports(path)):
            importlib.import_module(module)
    profiler = cProfile.Profile() if "--calls" in options else None
    start = time.perf_counter()
    namespace = profiler.runcall(runpy.run_path, str(path)) if profiler else runpy.run_path(str(path))
    result: dict = {"seconds": time.perf_counter() - start}
    if profiler:
        part = options[options.index("--calls") + 1]
        stats = pstats.Stats(profiler).stats.items()
        result["calls"] = {f"{f.split(part)[1]}:{fn}": n for (f, _, fn), (_, n, *_) in stats if part in f}

    from airflow.sdk import DAG

    dags = [value for value in namespace.values() if isinstance(value, DAG)]
    print(json.dumps({**result, "dags": len(dags), "tasks": sum(len(d.tasks) for d in dags)}))


if __name__ == "__main__":
    main()
