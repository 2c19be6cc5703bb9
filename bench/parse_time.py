"""Time one parse of a DAG file in this (fresh) interpreter; writes the result as JSON.

Usage: ``python bench/parse_time.py DAG_FILE RESULT_JSON [--warm]``.

``--warm`` first imports every module the file imports at top level, so only the
file's own work is timed (building the DAG from the manifest). Without it the
figure includes those imports, as a cold DAG-processor child pays them.
"""

from __future__ import annotations

import ast
import importlib
import json
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
    path, result = Path(sys.argv[1]), Path(sys.argv[2])
    warm = "--warm" in sys.argv[3:]
    if warm:
        # Airflow first: importing cosmos.constants before it is a circular import.
        for module in ("airflow", "airflow.sdk", *top_level_imports(path)):
            importlib.import_module(module)
    start = time.perf_counter()
    namespace = runpy.run_path(str(path))
    seconds = time.perf_counter() - start

    from airflow.sdk import DAG

    dags = [value for value in namespace.values() if isinstance(value, DAG)]
    result.write_text(json.dumps({"seconds": seconds, "dags": len(dags), "tasks": sum(len(d.tasks) for d in dags)}))


if __name__ == "__main__":
    main()
