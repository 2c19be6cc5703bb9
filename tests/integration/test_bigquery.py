"""The dbt project builds on BigQuery: `dbt build` against a BigQuery emulator on 127.0.0.1.

The profile is the production one (Cosmos's GoogleCloudOauthProfileMapping over an Airflow
connection, dataset per environment); only the endpoint and token point at the emulator.
Raw tables are created with SQL, shaped as Airbyte lands them on BigQuery.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace

import pytest

from elt_platform.settings import Settings
from elt_platform.warehouse import profile_mapping
from tests.conftest import BIN, copy_project
from tests.integration import bigquery_emulator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    proc, url, client = bigquery_emulator.start(tmp_path_factory.mktemp("bigquery"))
    yield url, client
    proc.terminate()
    proc.wait(timeout=30)


def test_dbt_build_runs_green_on_bigquery(emulator, tmp_path, monkeypatch):
    url, client = emulator
    tickets = bigquery_emulator.seed(client)
    extra = {"project": bigquery_emulator.PROJECT}
    monkeypatch.setenv("AIRFLOW_CONN_BIGQUERY_CI", json.dumps({"conn_type": "google_cloud_platform", "extra": extra}))
    settings = replace(Settings(), warehouse_type="bigquery", warehouse_conn_id="bigquery_ci", environment="ci")
    mapping = profile_mapping(settings)
    assert mapping.profile == {
        "type": "bigquery",
        "method": "oauth",
        "project": bigquery_emulator.PROJECT,
        "dataset": "analytics_ci",
        "threads": 4,
    }
    mapping.profile_args.update({"method": "oauth-secrets", "token": "emulator", "api_endpoint": url, "threads": 1})

    from cosmos.config import ProfileConfig

    dbt_dir, _ = copy_project(tmp_path)
    config = ProfileConfig(profile_name="shop_analytics", target_name="ci", profile_mapping=mapping)
    with config.ensure_profile() as (profiles_yml, env_vars):
        build = subprocess.run(
            [
                str(BIN / "dbt"),
                "build",
                "--profiles-dir",
                str(profiles_yml.parent),
                "--target",
                "ci",
                "--no-partial-parse",
            ],
            cwd=dbt_dir,
            env={**__import__("os").environ, **env_vars},
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert build.returncode == 0, build.stdout[-6000:]
    assert "Completed successfully" in build.stdout

    def count(table: str) -> int:
        return next(iter(client.query(f"select count(*) as n from analytics_ci.{table}").result()))[0]

    assert count("customers") == bigquery_emulator.USERS
    assert count("products") == 10
    assert count("tickets") == tickets
    assert count("orders") == 24  # 30 purchases, 6 never paid for
