"""The conformance corpus (tests/corpus/): small dbt projects of every shape real projects have.

Each project is copied and parsed (``dbt parse``) once per test session; the unit tests
compare each rendered graph with its committed snapshot, the integration tests run each
one under the real scheduler in both transform modes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import duckdb

from elt_platform.dbt_manifest import Manifest, load_manifest
from elt_platform.dbt_project_files import manifest_location
from tests.conftest import BIN, REPO

CORPUS = REPO / "tests" / "corpus"
PROJECTS = ("shapes", "seeds_only", "packages_and_names", "files_and_python", "incremental_twice")
# A project that reads files beside it lives in a subfolder of its corpus folder (the files are in ../data).
SUBFOLDER = {"files_and_python": "project"}
MODES = {"build": "build", "per_model": "per-model"}  # DAG id suffix -> ELT_TRANSFORM_MODE
SNAPSHOTS = CORPUS / "_graphs"
# Sources loaded by something other than this platform: the test plays that loader, before the
# first build and, where there is a second file, between the first build and a second one.
EXTERNAL_LOAD = "load_external_sources.sql"
EXTERNAL_LOAD_AGAIN = "load_more_sources.sql"
UPDATE_SNAPSHOTS = os.environ.get("ELT_UPDATE_SNAPSHOTS") == "1"
# Written by on-run-start/end hooks, which run once per dbt invocation: one by hand, one per task per model.
PER_INVOCATION_TABLES = ("main.run_audit",)
LEFT_BEHIND = shutil.ignore_patterns("target", "logs", "build_artifacts", "*.duckdb", "*.duckdb.wal")


def copy_project(name: str, dest: Path) -> Path:
    """A copy of corpus project ``name`` (with the files beside it) at ``dest``; returns its dbt project folder."""
    shutil.copytree(CORPUS / name, dest, ignore=LEFT_BEHIND)
    return dest / SUBFOLDER.get(name, "")


def manifest_of(project_dir: Path) -> Manifest:
    """The project's manifest, where dbt wrote it (its own target-path)."""
    return load_manifest(manifest_location(project_dir).path)


def builds_twice(project_dir: Path) -> bool:
    return (project_dir / EXTERNAL_LOAD_AGAIN).is_file()


def prepare(dest: Path) -> dict[str, Path]:
    """Copy every corpus project under ``dest`` and build its manifest; dbt parses run side by side."""
    copies = {name: copy_project(name, dest / name) for name in PROJECTS}
    parses = {
        name: subprocess.Popen(
            [str(BIN / "dbt"), "parse", "--quiet", "--profiles-dir", ".", "--no-partial-parse"],
            cwd=path,
            env={**os.environ, "ELT_DUCKDB_PATH": str(path / "parse.duckdb")},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, path in copies.items()
    }
    for name, proc in parses.items():
        output, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"dbt parse of corpus project {name} failed:\n{output}")
    return copies


def load_external_sources(project_dir: Path, warehouse: Path, script: str = EXTERNAL_LOAD) -> None:
    """Write the tables the project declares as loaded outside this platform, as their loader would."""
    path = project_dir / script
    if path.is_file():
        with duckdb.connect(str(warehouse)) as con:
            con.execute(path.read_text())


def build_by_hand(project_dir: Path, warehouse: Path) -> str:
    """Plain ``dbt build`` in the project's own folder, as its authors run it (twice, with the
    loader's second batch in between, for a project that has one); returns dbt's output."""
    env = {**os.environ, "ELT_DUCKDB_PATH": str(warehouse), "DO_NOT_TRACK": "1"}
    outputs = []
    for script in (EXTERNAL_LOAD, EXTERNAL_LOAD_AGAIN)[: 2 if builds_twice(project_dir) else 1]:
        load_external_sources(project_dir, warehouse, script)
        done = subprocess.run(
            [str(BIN / "dbt"), "build", "--profiles-dir", "."],
            cwd=project_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        outputs.append(done.stdout + done.stderr)
        if done.returncode not in (0, 1):  # 1: a node failed, which the comparison shows
            raise RuntimeError(f"dbt build by hand in {project_dir} could not run:\n{outputs[-1]}")
    return "\n".join(outputs)


def connect(warehouse: Path, project_dir: Path) -> duckdb.DuckDBPyConnection:
    """The warehouse, read only, with paths relative to the project's folder resolved from there (as dbt did)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    con.execute("set file_search_path = ?", [str(project_dir)])
    return con


def table_rows(warehouse: Path, project_dir: Path) -> dict[str, int]:
    """Every table and view in a warehouse file, with its row count."""
    with connect(warehouse, project_dir) as con:
        names = con.execute(
            "select table_schema, table_name from information_schema.tables where table_catalog = current_database()"
        ).fetchall()
        return {
            f"{schema}.{name}": con.execute(f'select count(*) from "{schema}"."{name}"').fetchone()[0]
            for schema, name in names
        }


def table_contents(warehouse: Path, leave_out: tuple[str, ...] = PER_INVOCATION_TABLES) -> dict[str, list]:
    """Every table and view dbt built (not the raw tables of a sync), with its rows."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        names = con.execute(
            "select table_schema, table_name from information_schema.tables where table_schema not like 'raw%'"
        ).fetchall()
        names = [(s, n) for s, n in names if f"{s}.{n}" not in leave_out]
        return {f"{s}.{n}": con.execute(f'select * from "{s}"."{n}" order by all').fetchall() for s, n in names}


def built_in_full(project_dir: Path, warehouse: Path, scratch: Path) -> Path:
    """A copy of ``warehouse`` after a plain ``dbt build`` of every node, in the project's folder."""
    copy = scratch / warehouse.name
    shutil.copy(warehouse, copy)
    env = {**os.environ, "ELT_DUCKDB_PATH": str(copy), "DO_NOT_TRACK": "1"}
    args = [str(BIN / "dbt"), "build", "--profiles-dir", ".", "--target-path", str(scratch / "target")]
    done = subprocess.run(args, cwd=project_dir, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    return copy


def rendered_graph(dag: Any) -> dict[str, dict[str, Any]]:
    """What a reviewer would want to see change on purpose only: ids, edges, trigger rules, pools, selectors."""
    graph = {}
    for task in sorted(dag.tasks, key=lambda t: t.task_id):
        entry = {
            "operator": type(task).__name__,
            "display_name": task.task_display_name,
            "upstream": sorted(task.upstream_task_ids),
            "trigger_rule": str(task.trigger_rule),
            "pool": task.pool,
        }
        if getattr(task, "select", None):
            entry["select"] = task.select
        graph[task.task_id] = entry
    return graph


def snapshot_path(project: str, mode: str) -> Path:
    return SNAPSHOTS / f"{project}.{mode}.json"


def compare_with_snapshot(project: str, mode: str, graph: dict) -> None:
    path = snapshot_path(project, mode)
    if UPDATE_SNAPSHOTS:
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(graph, indent=2, sort_keys=True) + "\n")
    assert path.is_file(), f"no snapshot {path}: run the suite once with ELT_UPDATE_SNAPSHOTS=1 and review it"
    expected = json.loads(path.read_text())
    changed = sorted(t for t in expected.keys() | graph.keys() if expected.get(t) != graph.get(t))
    assert not changed, (
        f"the rendered graph of corpus project {project} ({mode}) differs from {path.relative_to(REPO)} in: "
        f"{', '.join(changed)}. If the change is intended, re-run with ELT_UPDATE_SNAPSHOTS=1 and commit the diff."
    )


def dag_settings(mode: str, dag_id: str) -> dict[str, str]:
    """Settings of a corpus DAG (Python expressions, for write_dag_file): its mode and its own pool."""
    return {"transform_mode": repr(MODES[mode]), "warehouse_pool": repr(f"warehouse_{dag_id}")}


def write_dags(root: Path, dags_dir: Path, parsed: dict[str, Path]) -> dict[str, Path]:
    """One thin DAG file per corpus project and mode, over its own copy, warehouse connection and pool.

    Returns each DAG's dbt project directory. The DAG files pass no ingestion directory:
    the corpus projects have nothing to sync.
    """
    from tests.conftest import write_dag_file

    projects = {}
    for project, parsed_dir in parsed.items():
        for mode in MODES:
            dag_id = f"corpus_{project}_{mode}"
            # The corpus folder as parsed, manifest included (wherever the project's target-path put it).
            corpus_folder = parsed_dir.parent if project in SUBFOLDER else parsed_dir
            shutil.copytree(corpus_folder, root / dag_id, ignore=shutil.ignore_patterns("*.duckdb", "logs"))
            projects[dag_id] = root / dag_id / SUBFOLDER.get(project, "")
            write_dag_file(
                dags_dir,
                dag_id,
                projects[dag_id],
                None,
                warehouse_conn_id=f"warehouse_{dag_id}",
                **dag_settings(mode, dag_id),
            )
    return projects
