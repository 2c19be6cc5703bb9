"""The image, its pins and its deployment files: checked statically (no Docker engine runs here)."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import REPO

REQUIREMENT_FILES = sorted(REPO.glob("requirements*.txt"))


def test_dockerfile_isolates_dbt_builds_the_manifest_and_drops_root():
    text = (REPO / "Dockerfile").read_text()
    assert text.count("FROM ") == 1 and "FROM apache/airflow:3.3.2-python3.11" in text
    assert "deploy/install-environments.sh dbt /opt/elt/dbt-venv" in text
    assert "ELT_DBT_EXECUTABLE=/opt/elt/dbt-venv/bin/dbt" in text
    assert re.search(r"RUN /opt/elt/dbt-venv/bin/dbt parse", text)
    assert text.rstrip().splitlines()[-1] == "USER 50000"


def test_airflow_image_requirements_leave_dbt_to_its_own_venv():
    image = (REPO / "requirements-image.txt").read_text()
    dbt = (REPO / "requirements-dbt.txt").read_text()
    assert not re.search(r"^dbt-", image, re.MULTILINE)
    assert re.search(r"^dbt-core==1\.11\.", dbt, re.MULTILINE)
    assert re.search(r"^apache-airflow==3\.3\.2$", image, re.MULTILINE)


def _pins(name: str) -> dict[str, str]:
    text = (REPO / name).read_text()
    return {p.lower(): v for p, v in re.findall(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", text, re.MULTILINE)}


@pytest.mark.parametrize("image_lock", ["requirements-image.txt", "requirements-dbt.txt"])
def test_the_image_s_locks_agree_with_the_tested_one(image_lock):
    tested, image = _pins("requirements.txt"), _pins(image_lock)
    shared = tested.keys() & image.keys()
    assert len(shared) > 50  # the comparison is about something
    assert {p: (image[p], tested[p]) for p in shared if image[p] != tested[p]} == {}


def test_the_image_s_locks_are_compiled_against_the_tested_one():
    for source in ("requirements-image.in", "requirements-dbt.in"):
        assert "-c requirements.txt" in (REPO / source).read_text().splitlines(), source
    # the image installs both with the Dockerfile's own script, which `make image-envs` runs too
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "deploy/install-environments.sh dbt /opt/elt/dbt-venv" in dockerfile
    assert "deploy/install-environments.sh airflow python" in dockerfile
    makefile = (REPO / "Makefile").read_text()
    assert "deploy/install-environments.sh airflow $(IMAGE_AIRFLOW_VENV)/bin/python" in makefile
    assert "deploy/install-environments.sh dbt $(IMAGE_DBT_VENV)" in makefile


@pytest.mark.parametrize("path", REQUIREMENT_FILES, ids=lambda p: p.name)
def test_every_requirement_is_pinned(path):
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    requirements = [line for line in lines if line and not line.startswith("-")]
    assert requirements
    unpinned = [line for line in requirements if not re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+\-]+", line)]
    assert unpinned == []


def test_what_python_models_import_is_pinned_alike_in_the_local_and_the_image_s_dbt_environment():
    """requirements-models.in is the one place a user adds a package their Python models need."""
    wanted = _pins("requirements-models.in")
    assert {"pandas", "polars", "pyarrow"} <= wanted.keys()
    for lock in ("requirements.txt", "requirements-dbt.txt"):
        assert {p: _pins(lock).get(p) for p in wanted} == wanted, f"{lock}: run `make lock`"
    for source in ("requirements.in", "requirements-dbt.in"):
        assert "-r requirements-models.in" in (REPO / source).read_text().splitlines(), source


def test_every_environment_that_opens_the_warehouse_file_writes_one_storage_format():
    """DuckDB 1.4.x all write the v1.0.0+ storage format: files pass both ways between them. A
    file 2.x creates cannot be opened by 1.4 (PyAirbyte pins duckdb 1.4.3)."""
    versions = {
        lock: _pins(lock)["duckdb"]
        for lock in ("requirements.txt", "requirements-dbt.txt", "requirements-image.txt", "requirements-ingestion.txt")
    }
    assert {lock: v.rsplit(".", 1)[0] for lock, v in versions.items()} == dict.fromkeys(versions, "1.4"), versions


def test_helm_values_match_the_rehearsal():
    values = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"FROM apache/airflow:{values['airflowVersion']}-python3.11" in dockerfile
    assert values["executor"] == "CeleryExecutor"
    assert values["scheduler"]["replicas"] == values["triggerer"]["replicas"] == values["workers"]["replicas"] == 2
    assert values["triggerer"]["enabled"] is True
    config = values["config"]
    assert config["core"]["auth_manager"].endswith("FabAuthManager")
    assert config["logging"]["remote_logging"] == "True"
    assert config["logging"]["remote_base_log_folder"].startswith("s3://")
    # secrets by reference only
    assert values["jwtSecretName"] and values["apiSecretKeySecretName"] and values["fernetKeySecretName"]
    assert values["data"]["metadataSecretName"] and values["createUserJob"]["enabled"] is False
    env = {e["name"]: e["value"] for e in values["env"]}
    assert env["ELT_INGESTION_BACKEND"] == "airbyte" and env["ELT_WAREHOUSE_TYPE"] == "bigquery"
    kubernetes = yaml.safe_load((REPO / "deploy" / "helm" / "values-kubernetes.yaml").read_text())
    assert kubernetes["executor"] == "KubernetesExecutor"


def test_helm_values_deploy_a_tag_ci_pushes():
    values = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    [build] = [s for s in workflow["jobs"]["image"]["steps"] if "build-push-action" in s.get("uses", "")]
    tags = build["with"]["tags"]
    assert f":{values['images']['airflow']['tag']}" in tags
    assert ":${{ github.sha }}" in tags


def test_ci_workflow_lints_tests_and_builds_the_image():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    steps = {job: " ".join(str(s) for s in spec["steps"]) for job, spec in workflow["jobs"].items()}
    assert "make lint" in steps["lint"] and "make test" in steps["test"]
    assert "docker/build-push-action" in steps["image"]
    # what the suite needs beside it (tests/integration/stack.py): PostgreSQL on 5432, trusting local connections
    services = workflow["jobs"]["test"]["services"]
    assert services["postgres"]["ports"] == ["5432:5432"]
    assert services["postgres"]["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    # the production rehearsal's Celery broker (tests/integration/production.py)
    assert services["redis"]["ports"] == ["6379:6379"]


def test_the_installed_package_and_its_plugins_are_found_once():
    """An editable install that leaves src/*.egg-info makes Python find the package twice, and Airflow's
    home page then shows "Plugin 'dashboard_health' already registered" for each of its plugins."""
    from importlib.metadata import distributions, entry_points

    assert [d.metadata["Name"] for d in distributions()].count("elt-platform") == 1
    names = [e.name for e in entry_points(group="airflow.plugins")]
    assert sorted(n for n in names if n in {"dashboard_health", "transform_triggerer"}) == [
        "dashboard_health",
        "transform_triggerer",
    ]
