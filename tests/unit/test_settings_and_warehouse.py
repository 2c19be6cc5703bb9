"""Settings come from the environment in one place; each warehouse gets its Cosmos profile mapping."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from elt_platform.settings import Settings
from elt_platform.warehouse import profile_mapping


def test_defaults_and_overrides():
    assert Settings.from_env({}) == Settings()
    settings = Settings.from_env(
        {
            "ELT_TASK_RETRIES": "5",
            "ELT_RETRY_DELAY_SECONDS": "10",
            "ELT_INGESTION_BACKEND": " Airbyte ",
            "ELT_ALERT_EMAIL_TO": "a@x.io, b@x.io",
            "ELT_ALERT_ON_RETRY": "yes",
            "ELT_ENVIRONMENT": "prod",
        }
    )
    assert settings.retries.retries == 5
    assert settings.retries.retry_delay == timedelta(seconds=10)
    assert settings.ingestion_backend == "airbyte"
    assert settings.alert_email_to == ("a@x.io", "b@x.io")
    assert settings.alert_on_retry is True
    assert settings.dataset == "analytics_prod"


def test_duckdb_profile_reads_the_file_path_from_the_connection(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_WH", json.dumps({"conn_type": "duckdb", "host": str(tmp_path / "w.duckdb")}))
    mapping = profile_mapping(Settings(warehouse_conn_id="wh"))
    assert mapping.profile == {"type": "duckdb", "path": str(tmp_path / "w.duckdb"), "threads": 4}
    assert profile_mapping(Settings(warehouse_conn_id="wh", dbt_threads=8)).profile["threads"] == 8


def test_bigquery_service_account_profile_keeps_the_key_out_of_the_profile_file(monkeypatch):
    key = {"type": "service_account", "project_id": "p", "private_key_id": "k1", "private_key": "planted-key-material"}
    conn = {"conn_type": "google_cloud_platform", "extra": {"project": "p", "keyfile_dict": json.dumps(key)}}
    monkeypatch.setenv("AIRFLOW_CONN_BQ", json.dumps(conn))
    mapping = profile_mapping(
        Settings(
            warehouse_conn_id="bq", warehouse_type="bigquery", bigquery_auth="service-account", environment="staging"
        )
    )
    profile = mapping.profile
    assert profile["method"] == "service-account-json" and profile["dataset"] == "analytics_staging"
    assert "planted-key-material" not in json.dumps(profile)  # passed through an environment variable instead
    assert "planted-key-material" in json.dumps(mapping.env_vars)


def test_settings_cannot_be_built_invalid_on_any_path():
    from elt_platform.settings import SettingsError

    with pytest.raises(SettingsError, match="ELT_WAREHOUSE_TYPE='snowflake' is not one of duckdb, bigquery"):
        Settings(warehouse_type="snowflake")
    with pytest.raises(SettingsError, match="ELT_DBT_THREADS=0 is below 1"):
        replace(Settings(), dbt_threads=0)


def test_a_kind_given_as_text_becomes_its_enum_on_every_path():
    from elt_platform.settings import IngestionBackend, Settings, TransformMode, Warehouse

    assert replace(Settings(), warehouse_type="bigquery").warehouse_type is Warehouse.BIGQUERY
    assert Settings(transform_mode="per-model").transform_mode is TransformMode.PER_MODEL
    env = Settings.from_env({"ELT_INGESTION_BACKEND": "Airbyte"})
    assert env.ingestion_backend is IngestionBackend.AIRBYTE and f"{env.ingestion_backend}" == "airbyte"


def test_a_sync_runs_on_the_settings_of_its_dag_not_on_the_environment_s(monkeypatch, tmp_path):
    """A second DAG built with ``dataclasses.replace(settings, ...)`` syncs as it says: here the data
    root its connection file's ``local_path`` points into, which the environment does not name."""
    import yaml
    from airflow.sdk.exceptions import AirflowException

    from elt_platform.ingestion.sync_operator import SyncOperator
    from elt_platform.settings import Settings
    from tests.conftest import REPO

    monkeypatch.setenv("ELT_INGESTION_BACKEND", "fivetran")  # the environment's: Settings.from_env would refuse it
    monkeypatch.delenv("ELT_INGESTION_DATA_ROOT", raising=False)
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "tickets.csv").write_text("id\n1\n")
    spec = yaml.safe_load((REPO / "ingestion" / "support_desk.yml").read_text())
    spec["source"]["config"]["url"]["local_path"] = "../exports/tickets.csv"
    (tmp_path / "ingestion").mkdir()
    (tmp_path / "ingestion" / "support_desk.yml").write_text(yaml.safe_dump(spec))

    def sync(settings):
        return SyncOperator(
            task_id="sync_support_desk",
            connection_file=str(tmp_path / "ingestion" / "support_desk.yml"),
            settings=settings,
        )

    assert sync(replace(Settings(), ingestion_data_root=tmp_path / "exports"))._spec().name == "support_desk"
    with pytest.raises(AirflowException, match="leaves the ingestion folder"):
        sync(Settings())._spec()


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        (
            "ELT_MODEL_POLL_SECONDS",
            "abc",
            "ELT_MODEL_POLL_SECONDS='abc' is not a finite number. Fix: set it to e.g. 0.5",
        ),
        ("ELT_TASK_RETRIES", "1.5", "ELT_TASK_RETRIES='1.5' is not a whole number. Fix: set it to e.g. 2"),
        ("ELT_DBT_THREADS", "0", "ELT_DBT_THREADS=0 is below 1. Fix: set it to e.g. 4"),
        ("ELT_SYNC_TIMEOUT_SECONDS", "-5", "ELT_SYNC_TIMEOUT_SECONDS=-5.0 is below 1. Fix:"),
        ("ELT_TRANSFORM_MODE", "fast", "ELT_TRANSFORM_MODE='fast' is not one of build, per-model. Fix: use one of"),
        ("ELT_BIGQUERY_AUTH", "key", "ELT_BIGQUERY_AUTH='key' is not one of adc, service-account. Fix:"),
    ],
)
def test_a_bad_setting_names_its_variable_and_the_fix(name, value, error):
    from elt_platform.settings import SettingsError

    with pytest.raises(SettingsError) as raised:
        Settings.from_env({name: value})
    assert str(raised.value).startswith(error)


def test_numbers_are_read_with_spaces_and_blanks_mean_the_default():
    settings = Settings.from_env({"ELT_RETRY_DELAY_SECONDS": " 2 ", "ELT_DBT_THREADS": ""})
    assert settings.retries.retry_delay.total_seconds() == 2
    assert settings.dbt_threads == Settings().dbt_threads
