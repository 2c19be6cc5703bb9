"""The image, its pins and its deployment files: checked statically (no Docker engine runs here)."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.conftest import BIN, REPO

REQUIREMENT_FILES = sorted(REPO.glob("requirements*.txt"))


def test_dockerfile_passes_hadolint():
    result = subprocess.run([str(BIN / "hadolint"), str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_dockerfile_isolates_dbt_builds_the_manifest_and_drops_root():
    text = (REPO / "Dockerfile").read_text()
    assert text.count("FROM ") == 1 and "FROM apache/airflow:3.3.2-python3.11" in text
    assert "python -m venv /opt/elt/dbt-venv" in text
    assert "ELT_DBT_EXECUTABLE=/opt/elt/dbt-venv/bin/dbt" in text
    assert re.search(r"RUN /opt/elt/dbt-venv/bin/dbt parse", text)
    assert text.rstrip().splitlines()[-1] == "USER 50000"


def test_airflow_image_requirements_leave_dbt_to_its_own_venv():
    image = (REPO / "requirements-image.txt").read_text()
    dbt = (REPO / "requirements-dbt.txt").read_text()
    assert not re.search(r"^dbt-", image, re.MULTILINE)
    assert re.search(r"^dbt-core==1\.11\.", dbt, re.MULTILINE)
    assert re.search(r"^apache-airflow==3\.3\.2$", image, re.MULTILINE)


@pytest.mark.parametrize("path", REQUIREMENT_FILES, ids=lambda p: p.name)
def test_every_requirement_is_pinned(path):
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    requirements = [line for line in lines if line and not line.startswith("-")]
    assert requirements
    unpinned = [line for line in requirements if not re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+\-]+", line)]
    assert unpinned == []


def test_helm_values_use_this_image_and_a_triggerer():
    values = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
    assert values["executor"] in {"CeleryExecutor", "KubernetesExecutor"}
    assert values["triggerer"]["enabled"] is True
    env = {e["name"]: e["value"] for e in values["env"]}
    assert env["ELT_INGESTION_BACKEND"] == "airbyte" and env["ELT_WAREHOUSE_TYPE"] == "bigquery"


def test_ci_workflow_lints_tests_and_builds_the_image():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    steps = {job: " ".join(str(s) for s in spec["steps"]) for job, spec in workflow["jobs"].items()}
    assert "make lint" in steps["lint"] and "make test" in steps["test"]
    assert "docker/build-push-action" in steps["image"]
    # what the suite needs beside it (tests/integration/stack.py): PostgreSQL on 5432, trusting local connections
    postgres = workflow["jobs"]["test"]["services"]["postgres"]
    assert postgres["ports"] == ["5432:5432"]
    assert postgres["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
