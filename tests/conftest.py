"""Shared fixtures. Airflow reads its settings at import, so they are set here, first."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from devstack import BIN

REPO = Path(__file__).resolve().parent.parent

_HOME = Path(tempfile.mkdtemp(prefix="elt-tests-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
        "AIRFLOW_CONN_WAREHOUSE": '{"conn_type": "duckdb", "host": "%s"}' % (_HOME / "warehouse.duckdb"),
    }
)


SHARED_AIRFLOW_TESTS = "tests/integration/shared_airflow/"
# The bundled project's models, in the order data flows.
BUNDLED_MODELS = (
    "stg_faker__users",
    "stg_faker__products",
    "stg_faker__purchases",
    "stg_support__tickets",
    "int_purchases_joined_to_products",
    "int_tickets_aggregated_to_customers",
    "orders",
    "products",
    "customers",
    "tickets",
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """The lanes of ``make test`` (pytest-xdist): every test on the shared Airflow in one lane, in
    order (its runs first, the crash-recovery runs on a quieter stack after), and each other
    module whole in either lane, so that an Airflow of its own starts once.

    pytest-xdist's ``loadgroup`` cannot be used: it renames test ids, which pytest 9 ignores.
    ``_split_scope`` is how xdist's own ``loadfile`` and ``loadgroup`` schedulers define a scope.
    """
    from xdist.scheduler import LoadScopeScheduling

    class Lanes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return SHARED_AIRFLOW_TESTS if path.startswith(SHARED_AIRFLOW_TESTS) else path

    return Lanes(config, log)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def manifest_path() -> Path:
    path = REPO / "dbt_project" / "target" / "manifest.json"
    if not path.exists():
        pytest.fail("dbt manifest missing: run the suite with `make test`, which builds it")
    return path


def copy_project(dest: Path) -> tuple[Path, Path]:
    """A private copy of the dbt project (with its manifest) and of the ingestion files."""
    dbt_dir = dest / "dbt_project"
    shutil.copytree(REPO / "dbt_project", dbt_dir, ignore=shutil.ignore_patterns("logs", "*.duckdb"))
    shutil.copytree(REPO / "ingestion", dest / "ingestion")
    return dbt_dir, dest / "ingestion"


@pytest.fixture
def project(tmp_path) -> tuple[Path, Path]:
    """A private copy of the dbt project and of the ingestion files (``copy_project``)."""
    return copy_project(tmp_path)


def contract_problems(dbt_dir: Path, ingestion_dir: Path | None, manifest: Path | None = None) -> str:
    """The contract check's error message for a project that breaks it."""
    from elt_platform.errors import ConfigurationError
    from elt_platform.ingestion.contract import load_and_check

    with pytest.raises(ConfigurationError) as caught:
        load_and_check(ingestion_dir, dbt_dir, manifest or dbt_dir / "target" / "manifest.json")
    return str(caught.value)


def dbt_parse(dbt_dir: Path, **env: str) -> Path:
    """Rebuild a copied project's manifest after it was changed (where dbt writes it by default)."""
    subprocess.run(
        [str(BIN / "dbt"), "parse", "--quiet", "--profiles-dir", ".", "--no-partial-parse"],
        cwd=dbt_dir,
        check=True,
        env={**os.environ, "ELT_DUCKDB_PATH": str(dbt_dir / "parse.duckdb"), **env},
    )
    return dbt_dir / "target" / "manifest.json"


def elt_check(dbt_dir: Path, ingestion_dir: Path, **env: str) -> subprocess.CompletedProcess:
    """`elt check` on a copied project, as a user runs it."""
    return subprocess.run(
        [str(BIN / "elt"), "check", "--ingestion-dir", str(ingestion_dir), "--dbt-project-dir", str(dbt_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


def write_dag_file(
    dags_dir: Path,
    dag_id: str,
    dbt_dir: Path,
    ingestion_dir: Path | None,
    warehouse_conn_id: str = "warehouse",
    **settings: str,
) -> Path:
    """A thin DAG file, like dags/shop_elt.py, over a copied project and its own warehouse connection.

    ``settings`` override Settings fields with Python expressions, e.g. ``sync_timeout="timedelta(seconds=8)"``.
    """
    dags_dir.mkdir(parents=True, exist_ok=True)
    path = dags_dir / f"{dag_id}.py"
    overrides = "".join(f", {name}={expression}" for name, expression in settings.items())
    path.write_text(
        f'"""Test airflow DAG built by the factory from a copied project."""\n'
        "from dataclasses import replace\n"
        "from datetime import timedelta  # noqa: F401\n\n"
        "from elt_platform.dag_factory import build_elt_dag\n"
        "from elt_platform.settings import Settings\n\n"
        f"dag = build_elt_dag(dag_id={dag_id!r}, dbt_project_dir={str(dbt_dir)!r}, "
        f"ingestion_dir={str(ingestion_dir) if ingestion_dir else None!r}, "
        f"settings=replace(Settings.from_env(), warehouse_conn_id={warehouse_conn_id!r}{overrides}))\n"
    )
    return path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every conformance corpus project (tests/corpus/), copied and parsed once per session."""
    from tests import conformance

    return conformance.prepare(tmp_path_factory.mktemp("corpus"))
