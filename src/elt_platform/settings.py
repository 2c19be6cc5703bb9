"""Every environment-dependent value, read in one place.

Values come from environment variables so that the same code runs on a laptop, in
CI and in the container image. Reading them is cheap and safe at DAG-parse time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

# The choices of each setting that has a few, in one place (the modules that act on them import these).
WAREHOUSES = ("duckdb", "bigquery")
BIGQUERY_AUTHS = ("adc", "service-account")
TRANSFORM_MODES = ("build", "per-model")
BACKENDS = ("local", "airbyte")


class SettingsError(ValueError):
    """A setting that cannot be used, named with its environment variable and the fix."""


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, default).strip().lower()
    if value not in choices:
        raise SettingsError(f"{name}={value!r} is not one of {', '.join(choices)}. Fix: use one of them, or unset it.")
    return value


def _number(env: Mapping[str, str], name: str, default: float, kind: type = float, minimum: float = 0) -> Any:
    """A number of seconds, threads, tries or models: at least ``minimum``."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return kind(default)
    fix = f"Fix: set it to e.g. {kind(default)} (the default), or unset it."
    try:
        value = TypeAdapter(kind).validate_strings(raw.strip())
    except ValidationError:
        raise SettingsError(f"{name}={raw!r} is not {'a whole number' if kind is int else 'a number'}. {fix}") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} is below {kind(minimum)}. {fix}")
    return value


@dataclass(frozen=True)
class Retries:
    """Retry policy of a task. Defaults here; per connection in its YAML; per model in dbt meta."""

    retries: int = 2
    retry_delay: timedelta = timedelta(seconds=60)
    # 60 s, 120 s, 240 s, … capped at max_retry_delay.
    retry_exponential_backoff: bool = True
    max_retry_delay: timedelta = timedelta(minutes=15)

    def as_task_args(self) -> dict[str, object]:
        return {
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "retry_exponential_backoff": self.retry_exponential_backoff,
            "max_retry_delay": self.max_retry_delay,
        }


@dataclass(frozen=True)
class Settings:
    """Every setting, grouped by concern; ``from_env`` reads each from its ``ELT_`` variable."""

    # --- Warehouse -------------------------------------------------------------------------
    # Airflow connection that locates the warehouse (ELT_WAREHOUSE_CONN_ID); Cosmos maps it to the dbt profile.
    warehouse_conn_id: str = "warehouse"
    # ELT_WAREHOUSE_TYPE: one of WAREHOUSES, "duckdb" (the embedded default) or "bigquery" (production).
    warehouse_type: str = "duckdb"
    # ELT_WAREHOUSE_POOL: the Airflow pool every warehouse writer runs in. DuckDB allows one writer per file.
    warehouse_pool: str = "warehouse"
    # ELT_ENVIRONMENT: the dbt target's name (target.name) and the BigQuery dataset of the models.
    environment: str = "dev"
    # ELT_BIGQUERY_AUTH: one of BIGQUERY_AUTHS, "adc" (application default credentials,
    # e.g. workload identity) or "service-account" (key JSON in the Airflow connection).
    bigquery_auth: str = "adc"
    # ELT_BIGQUERY_API_ENDPOINT: when not Google's public one (a Private Service Connect endpoint).
    bigquery_api_endpoint: str = ""

    # --- Transform (dbt) -------------------------------------------------------------------
    # ELT_TRANSFORM_MODE: one of TRANSFORM_MODES, "build" (the default: one ``dbt build`` per
    # DAG run, each node's task reports its result; elt_platform.transform) or "per-model"
    # (Cosmos LOCAL: one dbt invocation per task).
    transform_mode: str = "build"
    # ELT_DBT_EXECUTABLE: a dbt executable in its own virtualenv; unset runs dbt in-process (dbtRunner).
    dbt_executable: Path | None = None
    # ELT_DBT_THREADS: nodes one dbt process builds at once.
    dbt_threads: int = 4
    # ELT_MODEL_POLL_SECONDS: between reads of the build's results while node tasks wait in the triggerer.
    model_poll_seconds: float = 0.5

    # --- Ingestion -------------------------------------------------------------------------
    # ELT_INGESTION_BACKEND: one of BACKENDS, "local" (PyAirbyte, the embedded default) or
    # "airbyte" (Airbyte Cloud/OSS API). Read when a sync task runs, never at parse time.
    ingestion_backend: str = "local"
    # ELT_INGESTION_PYTHON: Python of the PyAirbyte environment that runs local syncs.
    ingestion_python: Path | None = None
    # ELT_CONNECTORS_DIR: where PyAirbyte keeps one virtualenv per source connector.
    connectors_dir: Path | None = None
    # ELT_AIRBYTE_CONN_ID: Airflow connection of the Airbyte API (host with /v1; login/password = client id/secret).
    airbyte_conn_id: str = "airbyte"
    # ELT_AIRBYTE_POLL_SECONDS: between job status polls while a sync is deferred to the triggerer.
    airbyte_poll_seconds: float = 30.0
    # ELT_SYNC_TIMEOUT_SECONDS: a sync still running after this long is cancelled on the Airbyte server and fails.
    sync_timeout: timedelta = timedelta(hours=6)

    # --- Retries (ELT_TASK_RETRIES, ELT_RETRY_DELAY_SECONDS, ELT_MAX_RETRY_DELAY_SECONDS) ----
    retries: Retries = Retries()

    # --- Alerts: each channel is on when its Airflow connection exists ---------------------
    slack_conn_id: str = "slack_alerts"  # ELT_SLACK_CONN_ID
    smtp_conn_id: str = "smtp_alerts"  # ELT_SMTP_CONN_ID
    alert_email_to: tuple[str, ...] = ()  # ELT_ALERT_EMAIL_TO, comma-separated
    alert_email_from: str = "airflow@localhost"  # ELT_ALERT_EMAIL_FROM
    # ELT_ALERT_ON_RETRY: a low-noise Slack message on each retry, besides the alert on the final failure.
    alert_on_retry: bool = False

    # --- Dashboards ------------------------------------------------------------------------
    # ELT_BADGE_SECRET: signs each dashboard's read-only badge token (the API server's); empty: badges are off.
    badge_secret: str = field(default="", repr=False)

    @property
    def dataset(self) -> str:
        """The BigQuery dataset of this environment's models, e.g. analytics_prod."""
        return f"analytics_{self.environment}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        base = cls()
        defaults = Retries()
        return cls(
            warehouse_conn_id=env.get("ELT_WAREHOUSE_CONN_ID", base.warehouse_conn_id),
            warehouse_type=_choice(env, "ELT_WAREHOUSE_TYPE", base.warehouse_type, WAREHOUSES),
            environment=env.get("ELT_ENVIRONMENT", base.environment).strip().lower(),
            bigquery_auth=_choice(env, "ELT_BIGQUERY_AUTH", base.bigquery_auth, BIGQUERY_AUTHS),
            bigquery_api_endpoint=env.get("ELT_BIGQUERY_API_ENDPOINT", base.bigquery_api_endpoint).strip(),
            dbt_executable=Path(env["ELT_DBT_EXECUTABLE"]) if env.get("ELT_DBT_EXECUTABLE") else None,
            warehouse_pool=env.get("ELT_WAREHOUSE_POOL", base.warehouse_pool),
            transform_mode=_choice(env, "ELT_TRANSFORM_MODE", base.transform_mode, TRANSFORM_MODES),
            model_poll_seconds=_number(env, "ELT_MODEL_POLL_SECONDS", base.model_poll_seconds, minimum=0.01),
            dbt_threads=_number(env, "ELT_DBT_THREADS", base.dbt_threads, int, minimum=1),
            ingestion_python=Path(env["ELT_INGESTION_PYTHON"]) if env.get("ELT_INGESTION_PYTHON") else None,
            connectors_dir=Path(env["ELT_CONNECTORS_DIR"]) if env.get("ELT_CONNECTORS_DIR") else None,
            retries=Retries(
                retries=_number(env, "ELT_TASK_RETRIES", defaults.retries, int),
                retry_delay=timedelta(
                    seconds=_number(env, "ELT_RETRY_DELAY_SECONDS", defaults.retry_delay.total_seconds())
                ),
                retry_exponential_backoff=defaults.retry_exponential_backoff,
                max_retry_delay=timedelta(
                    seconds=_number(env, "ELT_MAX_RETRY_DELAY_SECONDS", defaults.max_retry_delay.total_seconds())
                ),
            ),
            ingestion_backend=_choice(env, "ELT_INGESTION_BACKEND", base.ingestion_backend, BACKENDS),
            airbyte_conn_id=env.get("ELT_AIRBYTE_CONN_ID", base.airbyte_conn_id),
            airbyte_poll_seconds=_number(env, "ELT_AIRBYTE_POLL_SECONDS", base.airbyte_poll_seconds, minimum=0.1),
            sync_timeout=timedelta(
                seconds=_number(env, "ELT_SYNC_TIMEOUT_SECONDS", base.sync_timeout.total_seconds(), minimum=1)
            ),
            slack_conn_id=env.get("ELT_SLACK_CONN_ID", base.slack_conn_id),
            smtp_conn_id=env.get("ELT_SMTP_CONN_ID", base.smtp_conn_id),
            alert_email_to=tuple(a.strip() for a in env.get("ELT_ALERT_EMAIL_TO", "").split(",") if a.strip()),
            alert_email_from=env.get("ELT_ALERT_EMAIL_FROM", base.alert_email_from),
            alert_on_retry=_flag(env.get("ELT_ALERT_ON_RETRY", "false")),
            badge_secret=env.get("ELT_BADGE_SECRET", ""),
        )
