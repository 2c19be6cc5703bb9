"""The parts of a dbt ``manifest.json`` the orchestration needs: sources, models, tests and exposures.

Reading a large manifest is most of a DAG parse (about 6 MB at 1,000 models), so the
parts kept here are cached next to it (``manifest.elt.json``, a few hundred kB) and
re-read from the manifest only when its size or modification time changes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

BUILDABLE = ("model", "seed", "snapshot")
CACHE_VERSION = 1


@dataclass(frozen=True)
class SourceTable:
    unique_id: str
    source_name: str
    table: str
    schema: str
    file: str
    has_freshness: bool

    @property
    def name(self) -> str:
        return f"{self.source_name}.{self.table}"


@dataclass(frozen=True)
class Model:
    """A node dbt builds: a model, seed or snapshot."""

    unique_id: str
    name: str
    file: str
    depends_on: tuple[str, ...]
    owner: str | None = None
    resource_type: str = "model"
    # meta: {cosmos: {operator_kwargs: {...}}}: Airflow task arguments (e.g. retries) for this node.
    operator_kwargs: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Test:
    unique_id: str
    name: str
    depends_on: tuple[str, ...]  # the models and sources it reads


@dataclass(frozen=True)
class Exposure:
    unique_id: str
    name: str
    label: str
    url: str | None
    depends_on: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    path: Path
    sources: dict[str, SourceTable] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)
    exposures: dict[str, Exposure] = field(default_factory=dict)
    tests: dict[str, Test] = field(default_factory=dict)

    def source_tables(self, source_name: str) -> list[SourceTable]:
        return [s for s in self.sources.values() if s.source_name == source_name]

    @property
    def source_names(self) -> set[str]:
        return {s.source_name for s in self.sources.values()}

    def exposures_reading(self, unique_ids: set[str]) -> list[Exposure]:
        return [e for e in self.exposures.values() if unique_ids & set(e.depends_on)]

    def downstream_of(self, unique_ids: set[str]) -> set[str]:
        """Every model that reads, directly or not, from any of ``unique_ids``."""
        found: set[str] = set()
        frontier = set(unique_ids)
        while frontier:
            frontier = {
                m.unique_id for m in self.models.values() if m.unique_id not in found and frontier & set(m.depends_on)
            }
            found |= frontier
        return found


def _has_freshness(node: dict) -> bool:
    freshness = node.get("freshness") or {}
    return bool(node.get("loaded_at_field") or node.get("loaded_at_query")) and any(
        (freshness.get(level) or {}).get("count") for level in ("warn_after", "error_after")
    )


def _operator_kwargs(node: dict) -> dict:
    meta = (node.get("config") or {}).get("meta") or node.get("meta") or {}
    return dict((meta.get("cosmos") or {}).get("operator_kwargs") or {})


def _from_manifest(path: Path) -> Manifest:
    raw = json.loads(path.read_text())
    sources = {
        uid: SourceTable(
            unique_id=uid,
            source_name=n["source_name"],
            table=n["name"],
            schema=n["schema"],
            file=n["original_file_path"],
            has_freshness=_has_freshness(n),
        )
        for uid, n in raw["sources"].items()
    }
    models = {
        uid: Model(
            unique_id=uid,
            name=n["name"],
            file=n["original_file_path"],
            depends_on=tuple(n["depends_on"]["nodes"]),
            owner=(n.get("meta") or {}).get("owner") or n.get("group"),
            resource_type=n["resource_type"],
            operator_kwargs=_operator_kwargs(n),
        )
        for uid, n in raw["nodes"].items()
        if n["resource_type"] in BUILDABLE
    }
    exposures = {
        uid: Exposure(
            unique_id=uid,
            name=n["name"],
            label=n.get("label") or n["name"],
            url=n.get("url"),
            depends_on=tuple(n["depends_on"]["nodes"]),
        )
        for uid, n in raw.get("exposures", {}).items()
    }
    tests = {
        uid: Test(unique_id=uid, name=n["name"], depends_on=tuple(n["depends_on"]["nodes"]))
        for uid, n in raw["nodes"].items()
        if n["resource_type"] == "test"
    }
    return Manifest(path=path, sources=sources, models=models, exposures=exposures, tests=tests)


def _cache_key(path: Path) -> list:
    stat = path.stat()
    return [CACHE_VERSION, stat.st_size, stat.st_mtime_ns]


def _write_cache(manifest: Manifest, cache: Path) -> None:
    parts = {name: {uid: asdict(item) for uid, item in getattr(manifest, name).items()} for name in _PARTS}
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"key": _cache_key(manifest.path), **parts}))
        tmp.replace(cache)  # atomic: a concurrent reader sees the old cache or the new one
    except OSError:  # a read-only project (e.g. an image) still parses, from the manifest
        tmp.unlink(missing_ok=True)


def _read_cache(path: Path, cache: Path) -> Manifest | None:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    if data.get("key") != _cache_key(path):
        return None
    parts = {}
    for name, cls in _PARTS.items():
        parts[name] = {
            uid: cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in item.items()})
            for uid, item in data[name].items()
        }
    return Manifest(path=path, **parts)


_PARTS = {"sources": SourceTable, "models": Model, "exposures": Exposure, "tests": Test}


def load_manifest(path: Path) -> Manifest:
    """Read a manifest written by ``dbt parse``; raise FileNotFoundError with the fix if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"dbt manifest not found at {path}. Fix: run `make manifest` (dbt parse) to build it; "
            "DAG parsing never runs dbt itself."
        )
    cache = path.with_name(f"{path.stem}.elt.json")
    manifest = _read_cache(path, cache)
    if manifest is None:
        manifest = _from_manifest(path)
        _write_cache(manifest, cache)
    return manifest
