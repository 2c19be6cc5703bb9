"""Each dashboard's lineage, from the dbt manifest: dashboard <- marts <- models <- sources <- connections."""

from __future__ import annotations

from elt_platform.dbt_manifest import Exposure, Manifest
from elt_platform.dbt_manifest.graph import has_own_task, marts_of, nodes_read_by, tests_of, through_ephemeral, upstream
from elt_platform.health.rules import Dashboard, Kind, Part


def dashboards(manifest: Manifest, syncs: dict[str, str], group_id: str) -> dict[str, Dashboard]:
    """Every exposure as a ``Dashboard``, by name. ``syncs`` maps a dbt source name to the task loading it."""
    tests = tests_of(manifest)
    return {e.name: _dashboard(e, manifest, syncs, group_id, tests) for e in manifest.exposures.values()}


def dashboard(manifest: Manifest, name: str, syncs: dict[str, str], group_id: str) -> Dashboard:
    """One exposure as a ``Dashboard`` (its task needs only its own lineage)."""
    exposure = next(e for e in manifest.exposures.values() if e.name == name)
    return _dashboard(exposure, manifest, syncs, group_id, tests_of(manifest))


def tables(manifest: Manifest, marts: list[str], syncs: dict[str, str], group_id: str) -> dict[str, Dashboard]:
    """Each mart (a model a dashboard reads) with its own lineage, by name, to apply the same rules to."""
    tests = tests_of(manifest)
    found = {}
    for uid in marts:
        model = manifest.models[uid]
        name = model.display_name  # unique, unlike a versioned model's name
        as_exposure = Exposure(unique_id=uid, name=name, label=name, url=None, depends_on=(uid,))
        found[name] = _dashboard(as_exposure, manifest, syncs, group_id, tests)
    return found


def _dashboard(exposure: Exposure, manifest: Manifest, syncs: dict[str, str], group_id: str, tests) -> Dashboard:
    # A source's own tests run in its task: a failure there holds back what reads it (stale), so
    # only the tests of models count as checks on data the run built (broken).
    nodes = upstream(manifest, exposure.depends_on)
    parts: dict[str, Part] = {}
    for uid in nodes:
        if uid in manifest.sources:
            source = manifest.sources[uid]
            sync = syncs.get(source.source_name)
            if sync:
                parts[sync] = Part(sync, Kind.CONNECTION, sync, sync)
            parts[uid] = Part(uid, Kind.SOURCE, source.name, f"{group_id}.{source.task_id}", (sync,) if sync else ())
            continue
        model = manifest.models[uid]
        if model.is_ephemeral:  # inlined into its children: no task, no result of its own
            continue
        parents = through_ephemeral(manifest, model.depends_on, nodes.__contains__)
        parts[uid] = Part(uid, Kind.MODEL, model.display_name, f"{group_id}.{model.task_id}", parents)
        for test in tests.get(uid, ()):
            own_task = f"{group_id}.{test.task_id}" if has_own_task(manifest, test) else ""  # else its node's task
            checked = tuple(n for n in nodes_read_by(manifest, test) if n in nodes)
            parts[test.unique_id] = Part(test.unique_id, Kind.TEST, test.name, own_task, checked)
    return Dashboard(
        name=exposure.name,
        label=exposure.label,
        url=exposure.url or "",
        owner_name=exposure.owner_name,
        owner_email=exposure.owner_email,
        description=exposure.description,
        fresh_by=exposure.fresh_by,
        fresh_by_timezone=exposure.fresh_by_timezone,
        marts=marts_of(manifest, exposure),
        parts=parts,
    )
