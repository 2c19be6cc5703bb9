"""Whether a manifest still describes its project: a file dbt reads, changed after the manifest was built."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

# Files whose change makes a manifest stale; dbt writes target/ and logs/ itself.
PROJECT_FILE_SUFFIXES = (".sql", ".yml", ".yaml", ".csv", ".py", ".md")
GENERATED_DIRS = ("target", "logs")


class StaleManifestWarning(UserWarning):
    """The dbt project changed after its manifest was built."""


def newest_project_file(project_dir: Path, target_dir: Path | None = None) -> tuple[float, Path | None]:
    """The most recently changed file dbt reads in ``project_dir``, not what dbt writes: ``target_dir``
    (where the manifest is, whatever the project's ``target-path``), ``target/`` and ``logs/``."""
    newest: tuple[float, Path | None] = (0.0, None)
    skipped = str(target_dir) if target_dir else None
    stack = [str(project_dir)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    generated = entry.name in GENERATED_DIRS or entry.path == skipped
                    if not entry.name.startswith(".") and not generated:
                        stack.append(entry.path)
                elif entry.name.endswith(PROJECT_FILE_SUFFIXES) and (mtime := entry.stat().st_mtime) > newest[0]:
                    newest = (mtime, Path(entry.path))
    return newest


def warn_if_stale(path: Path, project_dir: Path) -> None:
    """Warn (a DAG import warning in Airflow's UI) when a project file is newer than the manifest."""
    mtime, newest = newest_project_file(project_dir, path.parent)
    if newest is not None and mtime > path.stat().st_mtime:
        warnings.warn(
            f"{path} is older than {newest.relative_to(project_dir)} in {project_dir}: the DAG shows the project "
            "as it was when the manifest was built. Fix: rebuild it with `make manifest` (`dbt parse` in the "
            "project).",
            StaleManifestWarning,
            stacklevel=3,  # the caller of load_manifest
        )
