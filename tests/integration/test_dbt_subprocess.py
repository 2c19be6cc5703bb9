"""dbt as the image runs it: a subprocess from its own virtualenv (``ELT_DBT_EXECUTABLE``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowException

from elt_platform.dag_factory import build_elt_dag
from tests.conftest import REPO
from tests.integration.production import IMAGE_DBT

pytestmark = pytest.mark.integration


def test_dbt_as_a_subprocess_publishes_every_node_s_result_and_logs_at_info(tmp_path, caplog):
    """The image runs dbt from its own virtualenv (ELT_DBT_EXECUTABLE): its stdout is the only
    source of results, and dbt prints each node's NodeFinished only at debug level."""
    project = tmp_path / "seeds_only"
    shutil.copytree(REPO / "tests" / "corpus" / "seeds_only", project)
    dag = build_elt_dag(dag_id="subprocess", dbt_project_dir=REPO / "dbt_project", ingestion_dir=REPO / "ingestion")
    producer = dag.get_task("transform.dbt_build__shop_faker")
    published: dict[str, dict] = {}
    producer.publisher = SimpleNamespace(put=published.__setitem__)
    command = [str(IMAGE_DBT), "build", "--log-format", "json", "--profiles-dir", str(project), "--project-dir"]
    command.append(str(project))
    env = {**os.environ, "ELT_DUCKDB_PATH": str(tmp_path / "corpus.duckdb")}

    with caplog.at_level("DEBUG"):
        result = producer.run_subprocess(command, env, str(project))

    assert result.exit_code == 0
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    built = {uid for uid, node in manifest["nodes"].items() if node["resource_type"] in {"seed", "model", "test"}}
    assert built and set(published) == built
    assert {r.status for r in published.values()} == {"success", "pass"}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Completed successfully" in logged
    assert "Acquiring new duckdb connection" not in logged  # dbt's debug events stay out of the task log


def test_a_node_that_fails_alone_in_a_subprocess_carries_dbt_s_error_and_fails_at_once(tmp_path):
    """Cosmos raises "non-zero exit code 1" for a failed dbt subprocess; the node's task raises
    dbt's own summary, so its alert quotes dbt and a binder error is not retried."""
    from cosmos.config import ProfileConfig
    from cosmos.hooks.subprocess import FullOutputSubprocessResult

    from elt_platform.transform.dbt_errors import is_deterministic
    from elt_platform.transform.dbt_operators import DbtBuildInProjectFolder

    project = tmp_path / "seeds_only"
    shutil.copytree(REPO / "tests" / "corpus" / "seeds_only", project)
    (project / "models" / "staging" / "stg_orders.sql").write_text(
        "select id, no_such_column from {{ ref('raw_orders') }}\n"
    )
    dbt = subprocess.run(
        [str(IMAGE_DBT), "build", "--profiles-dir", str(project)],
        cwd=project,
        env={**os.environ, "ELT_DUCKDB_PATH": str(tmp_path / "corpus.duckdb")},
        capture_output=True,
        text=True,
    )
    assert dbt.returncode == 1
    operator = DbtBuildInProjectFolder(
        task_id="stg_orders",
        project_dir=str(project),
        profile_config=ProfileConfig(
            profile_name="corpus_seeds_only", target_name="local", profiles_yml_filepath=project / "profiles.yml"
        ),
    )
    output = dbt.stdout.splitlines()

    with pytest.raises(AirflowException) as raised:
        operator.handle_exception_subprocess(FullOutputSubprocessResult(1, output[-1], output))

    message = str(raised.value)
    assert "non-zero exit code 1" in message and 'Binder Error: Referenced column "no_such_column"' in message
    assert is_deterministic(message)


def test_in_the_image_dbt_runs_from_the_project_s_folder_and_writes_only_into_cosmos_s_copy(tmp_path):
    """A project reading files by paths relative to its folder, with Python models (pandas and
    polars) and its own target-path, built as the image builds a node: dbt from the image's
    virtualenv, as a subprocess, through Cosmos's temporary copy of the project."""
    from cosmos.config import ProfileConfig
    from cosmos.dbt.project import create_symlinks

    from elt_platform.transform.dbt_operators import DbtBuildInProjectFolder
    from tests import conformance

    project = conformance.copy_project("files_and_python", tmp_path / "files_and_python")
    before = sorted(project.rglob("*"))  # as in the image's read-only DAG folder, nothing may be written there
    copy = tmp_path / "cosmos_copy"
    copy.mkdir()
    create_symlinks(project, copy, ignore_dbt_packages=False)
    operator = DbtBuildInProjectFolder(
        task_id="all",
        project_dir=str(project),
        profile_config=ProfileConfig(
            profile_name="corpus_files_and_python",
            target_name="local",
            profiles_yml_filepath=project / "profiles.yml",
        ),
    )
    command = [str(IMAGE_DBT), "build", "--project-dir", str(copy), "--profiles-dir", str(project)]
    env = {**os.environ, "ELT_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb")}

    result = operator.run_subprocess(command, env, str(copy))

    assert result.exit_code == 0, "\n".join(result.full_output[-40:])
    assert (copy / "target" / "run_results.json").is_file() and (copy / "logs" / "dbt.log").is_file()
    assert sorted(project.rglob("*")) == before
    assert not (project.parent / "build_artifacts").exists()  # the project's own target-path: not written
    assert len((tmp_path / "files_and_python" / "exports" / "customer_orders.csv").read_text().splitlines()) == 6
