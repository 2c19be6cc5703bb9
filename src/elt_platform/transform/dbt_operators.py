"""Cosmos's LOCAL operators as the platform runs them, in both transform modes: dbt runs with
the project's own folder as its working directory, as it does by hand, and a failure no retry
can fix fails its task at once (``dbt_errors.FailsAtOnceWhenNoRetryCanHelp``).

Cosmos runs dbt from a temporary copy of the project (symbolic links to its files) so that
dbt's ``target/`` and ``logs/`` never land in a folder that may be read-only, such as an
image's DAG folder. Every path a project resolves against its own folder by hand would then
resolve against the copy: dbt-duckdb's ``external_location: ../data/x.csv``, a
``read_csv('data/x.csv')`` in a model, a Python model opening a file, a hook writing one.

These operators keep Cosmos's copy for what dbt writes (``DBT_TARGET_PATH`` and
``DBT_LOG_PATH`` point into it, whatever the project's ``target-path`` and ``log-path`` say,
so Cosmos finds its artefacts where it looks and nothing is written into the project) and
run dbt with the project's folder as its working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cosmos.operators.local import (
    DbtBuildLocalOperator,
    DbtRunLocalOperator,
    DbtSeedLocalOperator,
    DbtSnapshotLocalOperator,
    DbtSourceLocalOperator,
    DbtTestLocalOperator,
)

from elt_platform.transform.dbt_errors import FailsAtOnceWhenNoRetryCanHelp


def dbt_output_env(env: dict[str, str], private_copy: str | Path) -> dict[str, str]:
    """``env`` with dbt's target and log folders inside Cosmos's private copy of the project."""
    copy = Path(private_copy)
    return {**env, "DBT_TARGET_PATH": str(copy / "target"), "DBT_LOG_PATH": str(copy / "logs")}


class InProjectFolder:
    """Mixed into a Cosmos LOCAL operator: dbt's working directory is the project's own folder.

    Cosmos hands ``run_subprocess`` and ``run_dbt_runner`` the private copy as ``cwd``; dbt
    still reads the project through the copy (``--project-dir``) and writes into it.
    """

    project_dir: str

    def run_subprocess(self, command: list[str], env: dict[str, str], cwd: str, **kwargs: Any) -> Any:
        return super().run_subprocess(command, dbt_output_env(env, cwd), self.project_dir, **kwargs)  # type: ignore[misc]

    def run_dbt_runner(self, command: list[str], env: dict[str, str], cwd: str, **kwargs: Any) -> Any:
        return super().run_dbt_runner(command, dbt_output_env(env, cwd), self.project_dir, **kwargs)  # type: ignore[misc]


class DbtBuildInProjectFolder(FailsAtOnceWhenNoRetryCanHelp, InProjectFolder, DbtBuildLocalOperator):
    """Cosmos's ``dbt build`` operator, run from the project's folder."""


class DbtTestInProjectFolder(FailsAtOnceWhenNoRetryCanHelp, InProjectFolder, DbtTestLocalOperator):
    """Cosmos's ``dbt test`` operator, run from the project's folder."""


class DbtSourceInProjectFolder(FailsAtOnceWhenNoRetryCanHelp, InProjectFolder, DbtSourceLocalOperator):
    """Cosmos's ``dbt source freshness`` operator, run from the project's folder."""


class DbtRunInProjectFolder(FailsAtOnceWhenNoRetryCanHelp, InProjectFolder, DbtRunLocalOperator):
    """Cosmos's ``dbt run`` operator, run from the project's folder."""


class DbtSeedInProjectFolder(FailsAtOnceWhenNoRetryCanHelp, InProjectFolder, DbtSeedLocalOperator):
    """Cosmos's ``dbt seed`` operator, run from the project's folder."""


class DbtSnapshotInProjectFolder(FailsAtOnceWhenNoRetryCanHelp, InProjectFolder, DbtSnapshotLocalOperator):
    """Cosmos's ``dbt snapshot`` operator, run from the project's folder."""


# The class each Cosmos LOCAL operator of a rendered task group becomes (dependency_internals.replace_operator_classes).
PLATFORM_OPERATORS = {
    DbtBuildLocalOperator: DbtBuildInProjectFolder,
    DbtTestLocalOperator: DbtTestInProjectFolder,
    DbtSourceLocalOperator: DbtSourceInProjectFolder,
    DbtRunLocalOperator: DbtRunInProjectFolder,
    DbtSeedLocalOperator: DbtSeedInProjectFolder,
    DbtSnapshotLocalOperator: DbtSnapshotInProjectFolder,
}
