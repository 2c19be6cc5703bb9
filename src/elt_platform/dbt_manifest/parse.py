"""Reading ``manifest.json`` as ``dbt parse`` writes it into the parts kept (``nodes``).

Only the manifest schema dbt 1.8 to 1.11 write (v12) is read; any other is refused with the
fix, as is anything not shaped like a manifest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from elt_platform.dbt_manifest import graph
from elt_platform.dbt_manifest.nodes import BUILDABLE, Exposure, Manifest, Model, ResourceType, SourceTable, Test
from elt_platform.errors import ManifestError

SUPPORTED_SCHEMAS = ("v12",)  # dbt 1.8 to 1.11
SCHEMA_URL = "https://schemas.getdbt.com/dbt/manifest/"


def check_schema(raw: dict, path: Path) -> None:
    """Refuse a manifest from a dbt whose manifest schema this platform does not read."""
    metadata = raw.get("metadata") or {}
    schema = str(metadata.get("dbt_schema_version") or "")
    version = schema.removeprefix(SCHEMA_URL).removesuffix(".json")
    if version in SUPPORTED_SCHEMAS:
        return
    found = f"schema {version or 'unknown'} (dbt {metadata.get('dbt_version') or 'unknown'})"
    raise ManifestError(
        f"{path}: a dbt manifest of {found}, but this platform reads manifest schema "
        f"{', '.join(SUPPORTED_SCHEMAS)} (dbt 1.8 to 1.11). Fix: rebuild it with the dbt of this "
        "platform's environment: `dbt parse` in the project (`make manifest` for the bundled one)."
    )


def node_meta(node: Mapping) -> dict:
    """A node's ``meta`` as dbt resolves it: the source's (for a source table), updated by the
    node's own, updated by its config's (where dbt 1.10+ keeps it)."""
    merged: dict = {}
    for meta in (node.get("source_meta"), node.get("meta"), (node.get("config") or {}).get("meta")):
        for key, value in (meta or {}).items():
            merged[key] = value
    return merged


def read_manifest(path: Path) -> Manifest:
    """The parts kept of the manifest at ``path``; ``ManifestError`` with the fix if it cannot be read."""
    try:
        raw = json.loads(path.read_bytes())
    except ValueError as error:  # UnicodeDecodeError included
        raise ManifestError(f"{path}: not valid JSON ({error}). Fix: rebuild it with `dbt parse`.") from error
    except RecursionError:
        raise ManifestError(
            f"{path}: nested too deeply to be a dbt manifest. Fix: rebuild it with `dbt parse`."
        ) from None
    if not isinstance(raw, dict):
        raise ManifestError(
            f"{path}: a JSON {type(raw).__name__}, not a dbt manifest (an object with nodes and sources). "
            "Fix: point the DAG at target/manifest.json as `dbt parse` writes it."
        )
    check_schema(raw, path)
    try:
        return _read_nodes(raw, path)
    except (KeyError, TypeError, AttributeError) as error:
        raise ManifestError(
            f"{path}: not shaped like a dbt manifest ({type(error).__name__}: {error}). "
            "Fix: rebuild it with `dbt parse`, unedited."
        ) from None


def _has_freshness(node: dict) -> bool:
    freshness = node.get("freshness") or {}
    return bool(node.get("loaded_at_field") or node.get("loaded_at_query")) and any(
        (freshness.get(level) or {}).get("count") for level in ("warn_after", "error_after")
    )


# dbt's freshness periods, in seconds.
PERIOD_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def _build_after(node: dict) -> float | None:
    """dbt's ``freshness.build_after`` of a model (in its config, dbt 1.10+), in seconds; None without one."""
    after = (((node.get("config") or {}).get("freshness") or {}).get("build_after")) or {}
    count, period = after.get("count"), after.get("period")
    return float(count) * PERIOD_SECONDS[period] if count and period in PERIOD_SECONDS else None


def _parents(node: dict) -> tuple[str, ...]:
    # A seed's depends_on has no "nodes" key.
    return tuple((node.get("depends_on") or {}).get("nodes") or ())


def _contract(node: dict) -> dict:
    contract = (node.get("config") or {}).get("contract") or {}
    if not contract.get("enforced"):
        return {}
    columns = tuple((c["name"], c.get("data_type") or "") for c in (node.get("columns") or {}).values())
    return {"contract_columns": columns, "contract_alias_types": bool(contract.get("alias_types", True))}


def _display_name(node: dict, root_package: str) -> str:
    name = node["name"] if node.get("version") is None else f"{node['name']}.v{node['version']}"
    return name if node.get("package_name", root_package) == root_package else f"{node['package_name']}.{name}"


def _source(uid: str, n: dict, root: str) -> SourceTable:
    return SourceTable(
        unique_id=uid,
        source_name=n["source_name"],
        table=n["name"],
        schema=n["schema"],
        file=n["original_file_path"],
        has_freshness=_has_freshness(n),
        external=bool((node_meta(n).get("elt") or {}).get("external")),
        task_id=graph.source_task_id(n, root),
        database=n.get("database") or "",
        columns=tuple((c["name"], c.get("data_type") or "") for c in (n.get("columns") or {}).values()),
    )


def _model(uid: str, n: dict, root: str) -> Model:
    meta = node_meta(n)
    return Model(
        unique_id=uid,
        name=n["name"],
        file=n["original_file_path"],
        depends_on=_parents(n),
        owner=meta.get("owner") or n.get("group"),
        resource_type=n["resource_type"],
        operator_kwargs=dict((meta.get("cosmos") or {}).get("operator_kwargs") or {}),
        fqn=tuple(n.get("fqn") or ()),
        materialized=(n.get("config") or {}).get("materialized") or "",
        schema=n.get("schema") or "",
        alias=n.get("alias") or n["name"],
        task_id=graph.task_id(n, root),
        display_name=_display_name(n, root),
        **_contract(n),
        properties_file=(n.get("patch_path") or "").partition("://")[2],
        build_after_seconds=_build_after(n),
    )


def _exposure(uid: str, n: dict) -> Exposure:
    meta = node_meta(n)
    return Exposure(
        unique_id=uid,
        name=n["name"],
        label=n.get("label") or n["name"],
        url=n.get("url"),
        depends_on=_parents(n),
        owner_name=(n.get("owner") or {}).get("name") or "",
        owner_email=(n.get("owner") or {}).get("email") or "",
        description=n.get("description") or "",
        fresh_by=str(meta.get("fresh_by") or ""),
        fresh_by_timezone=str(meta.get("fresh_by_timezone") or "UTC"),
        file=n.get("original_file_path") or "",
    )


def _read_nodes(raw: dict, path: Path) -> Manifest:
    for section in ("nodes", "sources"):
        if not isinstance(raw.get(section), dict):
            raise ManifestError(
                f"{path}: has no '{section}' object, so it is not a whole dbt manifest. "
                "Fix: rebuild it with `dbt parse`, unedited."
            )
    root = (raw.get("metadata") or {}).get("project_name") or ""
    sources = {uid: _source(uid, n, root) for uid, n in raw["sources"].items()}
    models = {uid: _model(uid, n, root) for uid, n in raw["nodes"].items() if n["resource_type"] in BUILDABLE}
    exposures = {uid: _exposure(uid, n) for uid, n in raw.get("exposures", {}).items()}
    tests = {
        uid: Test(
            unique_id=uid,
            name=n["name"],
            depends_on=_parents(n),
            task_id=graph.task_id(n, root),
            fqn=tuple(n.get("fqn") or ()),
        )
        for uid, n in raw["nodes"].items()
        if n["resource_type"] == ResourceType.TEST
    }
    # A unit test runs before its model in `dbt build`; a failing one keeps the model from being built.
    tests |= {
        uid: Test(unique_id=uid, name=n["name"], depends_on=_parents(n)[:1], resource_type=ResourceType.UNIT_TEST)
        for uid, n in (raw.get("unit_tests") or {}).items()
    }
    manifest = Manifest(path=path, sources=sources, models=models, exposures=exposures, tests=tests)
    return graph.unique_task_ids(manifest)
