"""What each build leaves for the next run, so that it can reuse the nodes nothing changed.

Per DAG and build, where every worker and the image read it (``ELT_BUILD_STATE``: a folder or
any URL Airflow's ``ObjectStoragePath`` reads):

- ``manifest.json``: the manifest the build ran (dbt's, written as it ran: the relations are
  those of the warehouse it ran on), without the nodes it did not pass (failed,
  held back, not run): dbt's ``state:modified`` reads those as new, so the next run rebuilds them
  and what reads them.
- ``sources.json``: its sources' freshness then, for dbt's ``source_status:fresher``.
- ``seconds.json``: each node's dbt time at its last build: what reusing it saves.
- ``built_at.json``: when each node was last built (not reused): what dbt's
  ``freshness.build_after`` is counted from.

Which nodes a build reuses is dbt's own answer: ``dbt ls`` of ``state:modified+
source_status:fresher+``, of what the run rebuilt upstream and of the nodes whose
``build_after`` is due, against this state (``reuse_selector``; the producer runs it). A build
with no readable state builds everything, and says why.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from airflow.sdk import ObjectStoragePath

MANIFEST = "manifest.json"
SOURCES = "sources.json"
SECONDS = "seconds.json"  # each node's dbt time at its last build: what reusing it saves
BUILT_AT = "built_at.json"  # when each node was last built (ISO 8601, UTC): build_after counts from it


def state_folder(root: str, dag_id: str, build_task_id: str) -> ObjectStoragePath:
    """Where one build of one DAG keeps its state; ``root`` is ``ELT_BUILD_STATE``."""
    base = ObjectStoragePath(f"file://{root}" if root.startswith("/") else root)
    return base / dag_id / build_task_id


def fetch(folder: ObjectStoragePath, into: Path) -> str | None:
    """Copy the previous state into ``into`` (dbt's ``--state``); None, or why it cannot be used."""
    try:
        if not (folder / MANIFEST).exists():
            return f"no previous state at {folder} (this build has not ended before)"
        for name in (MANIFEST, SOURCES, SECONDS, BUILT_AT):
            if name != MANIFEST and not (folder / name).exists():
                continue
            text = (folder / name).read_text()
            json.loads(text)
            (into / name).write_text(text)
    except (OSError, ValueError) as error:
        return f"the previous state at {folder} is unreadable ({type(error).__name__}: {error})"
    return None


def last_seconds(into: Path) -> dict[str, float]:
    """Each node's dbt time at its last build, as ``fetch`` copied it (none from an older state)."""
    path = into / SECONDS
    return json.loads(path.read_text()) if path.exists() else {}


def last_built_at(into: Path) -> dict[str, str]:
    """When each node was last built, as ``fetch`` copied it (none from an older state)."""
    path = into / BUILT_AT
    return json.loads(path.read_text()) if path.exists() else {}


def relations(into: Path) -> dict[str, tuple[str, str, str]]:
    """Each model, seed and snapshot the kept manifest holds, and where dbt built it: (database,
    schema, name). An ephemeral model has no relation."""
    nodes = json.loads((into / MANIFEST).read_text())["nodes"]
    return {
        uid: (node.get("database") or "", node["schema"], node.get("alias") or node["name"])
        for uid, node in nodes.items()
        if node.get("resource_type") in ("model", "seed", "snapshot")
        and (node.get("config") or {}).get("materialized") != "ephemeral"
    }


def due(build_after: Mapping[str, float], built_at: Mapping[str, str], now: datetime) -> dict[str, str]:
    """The nodes whose ``freshness.build_after`` (seconds) has passed since their last build, each
    with why. dbt's platform reads it as a throttle too (no build before it passes, even on new
    data); here new data and new code always build: a throttle would leave stale results."""
    reasons = {}
    for uid, seconds in build_after.items():
        try:
            age = now - datetime.fromisoformat(built_at[uid])
        except (KeyError, TypeError, ValueError):  # none recorded, or not an aware ISO 8601 time
            reasons[uid] = "its freshness.build_after counts from a build the state does not record"
            continue
        if age >= timedelta(seconds=seconds):
            reasons[uid] = f"its freshness.build_after ({timedelta(seconds=seconds)}) has passed: last built {age} ago"
    return reasons


def save(
    folder: ObjectStoragePath,
    manifest_json: str,
    not_passed: Iterable[str],
    sources: Any,
    seconds: Mapping[str, float],
    built_at: Mapping[str, str] | None = None,
) -> None:
    """Keep the manifest the build ran (as dbt wrote it, with the warehouse it ran on), without
    ``not_passed``, and its sources' freshness (if checked). The manifest first: a save cut short
    in between leaves the old freshness, so the next run reads the new data as newer again and
    rebuilds, rather than reusing what this build did not pass."""
    manifest = json.loads(manifest_json)
    for uid in not_passed:
        manifest["nodes"].pop(uid, None)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SECONDS).write_text(json.dumps(dict(seconds)))
    (folder / BUILT_AT).write_text(json.dumps(dict(built_at or {})))
    (folder / MANIFEST).write_text(json.dumps(manifest))
    if sources is not None:
        (folder / SOURCES).write_text(json.dumps(sources))
    else:
        (folder / SOURCES).unlink(missing_ok=True)


def reuse_selector(
    has_current_sources: bool,
    rebuilt_upstream: Iterable[str],
    unmeasured: Iterable[str],
    due_now: Iterable[str] = (),
) -> str:
    """dbt's selector of what must be built: what changed since the state, what reads a source with
    newer data, what reads a node the run rebuilt in another build (``rebuilt_upstream``: their
    selectors), what reads a source with no freshness check (``unmeasured``: whether it has new
    data cannot be told), and the nodes whose ``build_after`` is due, with what reads them
    (``due_now``: their selectors)."""
    terms = ["state:modified+"]
    if has_current_sources:
        terms.append("source_status:fresher+")
    terms += [f"{selector}+" for selector in sorted({*rebuilt_upstream, *due_now})]
    terms += [f"source:{name}+" for name in sorted(unmeasured)]
    return " ".join(terms)


def dbt_ls(args: list[str], executable: str | None, cwd: str, env: Mapping[str, str]) -> set[str]:
    """The unique_ids ``dbt ls`` selects (``args`` after ``ls``): in-process through dbt's programmatic
    API, or with ``executable`` (the image's dbt, in its own virtualenv) as a subprocess."""
    args = [*args, "--output", "json", "--output-keys", "unique_id", "--quiet"]
    if executable is None:
        from dbt.cli.main import dbtRunner

        # Its log off: in-process, dbt would print each selected node into the build's log.
        with mock.patch.dict(os.environ, env), _in_folder(cwd):
            result = dbtRunner().invoke(["ls", *args, "--log-level", "none"])
        if not result.success:
            raise RuntimeError(f"dbt ls failed: {result.exception or 'see the log above'}")
        lines = result.result or []
    else:
        done = subprocess.run(
            [executable, "ls", *args], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr)[-4000:]
            raise RuntimeError(f"dbt ls failed (exit code {done.returncode}): {output}")
        lines = done.stdout.splitlines()
    return {json.loads(line)["unique_id"] for line in lines if line.strip().startswith("{")}


@contextmanager
def _in_folder(folder: str) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)
