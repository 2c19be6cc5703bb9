"""Which ``dbt build`` builds each node: one build per set of loads, so a model waits only for its own.

A node's *loads* are the syncs it reads from, directly or not (a source: the sync that loads
it; a model or a test reading several nodes: the union of what it reads). Nodes with the same
loads share one build, ``transform.dbt_build__<connection>__<connection>``, which starts as soon
as those syncs have ended and the builds of the nodes it reads have ended. A dashboard reading only
a fast connection is therefore built while a slow connection of the same run is still syncing.

Nodes that read no sync (seeds, sources loaded outside this platform) get a build that waits
for nothing. A project with a single set of loads has a single build, ``transform.dbt_build``.

What a build costs: one dbt invocation (its start and partial parse, about 2 to 4 s on DuckDB),
so a project has as many as it has distinct sets of loads among its nodes. On DuckDB, one writer
per file, the builds take turns; on BigQuery, builds whose loads have ended run side by side, as
many as the ``warehouse`` pool has slots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from elt_platform.dbt_manifest import Manifest
from elt_platform.dbt_manifest.graph import nodes_read_by, tests_with_own_task, through_ephemeral
from elt_platform.transform.results import PRODUCER_TASK_ID

SYNC_TASK_PREFIX = "sync_"
MAX_TASK_ID = 200  # Airflow allows 250 characters, with the group's prefix


@dataclass(frozen=True)
class Build:
    """One ``dbt build`` of a run: the syncs it waits for and the nodes it reports on."""

    task_id: str
    loads: tuple[str, ...]  # the sync task ids it waits for, sorted
    nodes: tuple[str, ...]  # the unique_ids it builds: sources, models, seeds, snapshots, tests with their own task
    after: tuple[str, ...]  # the task ids of the builds whose nodes these nodes read

    @property
    def display_name(self) -> str:
        if not self.loads:
            return "dbt build"
        return "dbt build after " + ", ".join(load.removeprefix(SYNC_TASK_PREFIX) for load in self.loads)


def source_syncs(manifest: Manifest, syncs: Mapping[str, str]) -> dict[str, str]:
    """Each dbt source table's sync task, from the syncs by dbt source name (``dbt_source`` of a connection)."""
    return {uid: syncs[s.source_name] for uid, s in manifest.sources.items() if s.source_name in syncs}


def builds(manifest: Manifest, loaded_by: Mapping[str, str]) -> list[Build]:
    """The run's builds, in an order where each comes after those it waits for. Computed once per
    parse, by the DAG factory, for the transform and the dashboards.

    ``loaded_by``: the sync task of each dbt source table it loads (``source_syncs``)."""
    tests = [t.unique_id for t in tests_with_own_task(manifest)]
    loads = _loads(manifest, loaded_by, tests)
    members = [*manifest.sources, *(uid for uid, m in manifest.models.items() if not m.is_ephemeral), *tests]
    by_loads: dict[frozenset[str], list[str]] = {}
    for uid in members:
        by_loads.setdefault(loads[uid], []).append(uid)
    single = len(by_loads) == 1
    task_ids = {loads: PRODUCER_TASK_ID if single else _task_id(loads) for loads in by_loads}
    built_by = {uid: task_ids[loads] for loads, uids in by_loads.items() for uid in uids}
    found = []
    for node_loads, uids in sorted(by_loads.items(), key=lambda item: (len(item[0]), sorted(item[0]))):
        after = {built_by[p] for uid in uids for p in reads(manifest, uid)} - {task_ids[node_loads]}
        found.append(Build(task_ids[node_loads], tuple(sorted(node_loads)), tuple(uids), tuple(sorted(after))))
    return found


def reads(manifest: Manifest, uid: str) -> tuple[str, ...]:
    """The sources, models, seeds and snapshots a model (or a test with a task of its own) reads
    directly, once dbt has inlined its ephemeral parents: each is in a build."""
    model, test = manifest.models.get(uid), manifest.tests.get(uid)
    parents = model.depends_on if model else nodes_read_by(manifest, test) if test else ()
    return through_ephemeral(manifest, parents, lambda p: p in manifest.sources or (p in manifest.models and p != uid))


def _loads(manifest: Manifest, loaded_by: Mapping[str, str], tests: list[str]) -> dict[str, frozenset[str]]:
    """Each node's loads, parents before children, without recursion: a chain may be thousands deep."""
    found = {uid: frozenset({loaded_by[uid]} if uid in loaded_by else ()) for uid in manifest.sources}

    def parents(uid: str) -> list[str]:
        model = manifest.models.get(uid)
        read = model.depends_on if model else nodes_read_by(manifest, manifest.tests[uid])
        return [p for p in read if p in manifest.sources or p in manifest.models]

    stack = [*manifest.models, *tests]
    while stack:
        uid = stack[-1]
        if uid in found:
            stack.pop()
        elif missing := [p for p in parents(uid) if p not in found]:
            stack.extend(missing)
        else:
            found[uid] = frozenset().union(*(found[p] for p in parents(uid)))
            stack.pop()
    return found


def build_of(found: list[Build]) -> dict[str, str]:
    """Each node's build task id (within the transform group)."""
    return {uid: build.task_id for build in found for uid in build.nodes}


def _task_id(loads: frozenset[str]) -> str:
    if not loads:
        return PRODUCER_TASK_ID
    task_id = "__".join([PRODUCER_TASK_ID, *sorted(load.removeprefix(SYNC_TASK_PREFIX) for load in loads)])
    if len(task_id) <= MAX_TASK_ID:
        return task_id
    digest = hashlib.sha256("\n".join(sorted(loads)).encode()).hexdigest()[:12]
    return f"{PRODUCER_TASK_ID}__{len(loads)}_connections_{digest}"
