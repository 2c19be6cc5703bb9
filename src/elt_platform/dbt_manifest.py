"""The parts of a dbt ``manifest.json`` the orchestration needs: sources, models and exposures."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


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
    unique_id: str
    name: str
    file: str
    depends_on: tuple[str, ...]
    owner: str | None = None


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
    tests: dict[str, tuple[str, ...]] = field(default_factory=dict)  # test -> the nodes it reads

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


def load_manifest(path: Path) -> Manifest:
    """Read a manifest written by ``dbt parse``; raise FileNotFoundError with the fix if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"dbt manifest not found at {path}. Fix: run `make manifest` (dbt parse) to build it; "
            "DAG parsing never runs dbt itself."
        )
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
        )
        for uid, n in raw["nodes"].items()
        if n["resource_type"] == "model"
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
    tests = {uid: tuple(n["depends_on"]["nodes"]) for uid, n in raw["nodes"].items() if n["resource_type"] == "test"}
    return Manifest(path=path, sources=sources, models=models, exposures=exposures, tests=tests)
