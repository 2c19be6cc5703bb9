"""The compact copy of a manifest: the parts kept (``nodes``), as JSON next to it (``manifest.elt.json``).

Reading a large manifest is most of a DAG parse (about 6 MB at 1,000 models); its compact copy
is a few hundred kB, re-read from the manifest only when the manifest's size or modification
time changes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from elt_platform.dbt_manifest.nodes import Exposure, Manifest, Model, SourceTable, Test

CACHE_VERSION = 6
_PARTS = {"sources": SourceTable, "models": Model, "exposures": Exposure, "tests": Test}


def cache_path(path: Path) -> Path:
    """Where the compact copy of the manifest at ``path`` is kept."""
    return path.with_name(f"{path.stem}.elt.json")


def _cache_key(path: Path) -> list:
    stat = path.stat()
    return [CACHE_VERSION, stat.st_size, stat.st_mtime_ns]


def write_cache(manifest: Manifest, cache: Path) -> None:
    parts = {name: {uid: asdict(item) for uid, item in getattr(manifest, name).items()} for name in _PARTS}
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"key": _cache_key(manifest.path), **parts}))
        tmp.replace(cache)  # atomic: a concurrent reader sees the old cache or the new one
    except OSError:  # a read-only project (e.g. an image) still parses, from the manifest
        tmp.unlink(missing_ok=True)


def read_cache(path: Path, cache: Path) -> Manifest | None:
    """The compact copy, if it was made from the manifest at ``path`` as it is now; else None."""
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    if data.get("key") != _cache_key(path):
        return None
    parts = {}
    for name, cls in _PARTS.items():
        parts[name] = {
            uid: cls(**{k: _tuples(v) if isinstance(v, list) else v for k, v in item.items()})
            for uid, item in data[name].items()
        }
    return Manifest(path=path, **parts)


def _tuples(value: list) -> tuple:
    """JSON's lists back into the tuples they were (contract columns are pairs)."""
    return tuple(_tuples(v) if isinstance(v, list) else v for v in value)
