"""What a dbt project's own ``dbt_project.yml`` tells the platform: its profile, and where dbt writes its manifest.

dbt writes ``manifest.json`` into the target path, which is, first to last: the
``--target-path`` flag or ``DBT_TARGET_PATH``, the project's ``target-path``, ``target``;
a relative one is relative to the project's folder. The DAG reads the manifest from
the same place, unless it is given one explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2.sandbox import SandboxedEnvironment

from elt_platform.errors import ConfigurationError
from elt_platform.safe_yaml import read_yaml

MANIFEST = "manifest.json"


def project_config(project_dir: Path) -> dict[str, Any]:
    """The project's ``dbt_project.yml`` as YAML (dbt renders its Jinja later); empty if there is none."""
    path = Path(project_dir) / "dbt_project.yml"
    if not path.is_file():
        return {}
    config, problems = read_yaml(path)
    if problems:
        raise ConfigurationError(problems)
    return config if isinstance(config, dict) else {}


def profile_name(project_dir: Path) -> str:
    config = project_config(project_dir)
    return config.get("profile") or config["name"]


def _render(value: str) -> str:
    """dbt renders ``env_var(...)`` in ``dbt_project.yml``; so does this (nothing else is in scope)."""
    if "{" not in value:
        return value

    def env_var(name: str, default: str | None = None) -> str:
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise ValueError(f"env_var('{name}') is not set and has no default")
        return default

    return SandboxedEnvironment().from_string(value).render(env_var=env_var)


@dataclass(frozen=True)
class ManifestLocation:
    path: Path
    why: str  # how the path was decided, for the error when there is no file there

    def require(self, project_dir: Path) -> Path:
        """The manifest's path; ``FileNotFoundError`` saying where it looked, why, and the fix."""
        if self.path.is_file():
            return self.path
        raise FileNotFoundError(
            f"dbt manifest not found at {self.path} ({self.why}). Fix: run `dbt parse` in {project_dir} with the "
            "same target path (`make manifest` for the bundled project), or pass manifest_path= to build_elt_dag "
            "where dbt wrote it; DAG parsing never runs dbt itself."
        )


def manifest_location(project_dir: Path, explicit: str | Path | None = None) -> ManifestLocation:
    """Where dbt writes this project's manifest, or ``explicit`` if given."""
    project_dir = Path(project_dir)
    if explicit is not None:
        return ManifestLocation(Path(explicit).resolve(), "the manifest_path given")
    if os.environ.get("DBT_TARGET_PATH"):
        target, why = os.environ["DBT_TARGET_PATH"], f"DBT_TARGET_PATH={os.environ['DBT_TARGET_PATH']}"
    elif configured := project_config(project_dir).get("target-path"):
        try:
            target = _render(str(configured))
        except Exception as error:  # an unset env_var, a Jinja error: say where
            raise FileNotFoundError(
                f"{project_dir / 'dbt_project.yml'}: target-path {configured!r} cannot be read ({error}). "
                "Fix: set what it needs, or pass manifest_path= to build_elt_dag."
            ) from None
        why = f"target-path: {configured} in {project_dir / 'dbt_project.yml'}"
    else:
        target, why = "target", "dbt's default target path"
    return ManifestLocation((project_dir / target / MANIFEST).resolve(), why)
