"""``load_manifest``: the manifest's compact copy when it is current, else the manifest itself, read once."""

from __future__ import annotations

from pathlib import Path

from elt_platform.dbt_manifest.cache import cache_path, read_cache, write_cache
from elt_platform.dbt_manifest.nodes import Manifest
from elt_platform.dbt_manifest.parse import read_manifest
from elt_platform.dbt_manifest.staleness import warn_if_stale


def load_manifest(path: Path, project_dir: Path | None = None) -> Manifest:
    """Read a manifest written by ``dbt parse``; raise ``FileNotFoundError`` or ``ManifestError`` with the fix.

    With ``project_dir``, warn when the project changed after the manifest was built.
    """
    path = Path(path)
    if not path.is_file():
        where = f" in {project_dir}" if project_dir else ""
        raise FileNotFoundError(
            f"dbt manifest not found at {path}. Fix: build it with `dbt parse`{where} "
            "(`make manifest` for the bundled project); DAG parsing never runs dbt itself."
        )
    cache = cache_path(path)
    manifest = read_cache(path, cache)
    if manifest is None:
        manifest = read_manifest(path)
        write_cache(manifest, cache)
    if project_dir is not None:
        warn_if_stale(path, Path(project_dir))
    return manifest
