"""Every environment-dependent value, read in one place.

Values come from environment variables so that the same code runs on a laptop, in
CI and in the container image. Reading them is cheap and safe at DAG-parse time.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError


# The choices of each setting that has a few, in one place (the modules that act on them import these).
class Warehouse(StrEnum):
    DUCKDB = "duckdb"  # the embedded default: one file
    BIGQUERY = "bigquery"  # production


class BigQueryAuth(StrEnum):
    ADC = "adc"  # application default credentials, e.g. workload identity
    SERVICE_ACCOUNT = "service-account"  # a key JSON in the Airflow connection


class TransformMode(StrEnum):
    BUILD = "build"  # one dbt build per run, each node's task reports its result (transform/)
    PER_MODEL = "per-model"  # Cosmos LOCAL: one dbt invocation per task (transform/per_model.py)


class IngestionBackend(StrEnum):
    LOCAL = "local"  # PyAirbyte, the embedded default
    AIRBYTE = "airbyte"  # the Airbyte API (Cloud or OSS)


WAREHOUSES = tuple(Warehouse)
BIGQUERY_AUTHS = tuple(BigQueryAuth)
TRANSFORM_MODES = tuple(TransformMode)
BACKENDS = tuple(IngestionBackend)


class SettingsError(ValueError):
    """A setting that cannot be used, named with its environment variable and the fix."""


# Airflow's own pool: tasks that hold no warehouse connection run in it (node tasks waiting in the
# triggerer, the dashboards' tasks), whatever pool a DAG's defaults name.
AIRFLOW_DEFAULT_POOL = "default_pool"
FLAGS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")  # an Airflow connection or pool id
ENVIRONMENT = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # target.name and part of a BigQuery dataset name
EMAIL = re.compile(r"^[^@\s,;<>\"']+@[^@\s,;<>\"']+$")
BADGE_SECRET_MIN_BYTES = 32  # HMAC-SHA256: a shorter secret can be guessed offline from one token


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "")
    if not raw.strip():
        return default
    if raw.strip().lower() not in FLAGS:
        raise SettingsError(f"{name}={raw!r} is neither true nor false. Fix: set it to true or false, or unset it.")
    return FLAGS[raw.strip().lower()]


def _number(env: Mapping[str, str], name: str, default: float, kind: type = float) -> Any:
    """A number of seconds, threads or tries; its range is checked by ``Settings`` itself."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return kind(default)
    try:
        value = TypeAdapter(kind).validate_strings(raw.strip())
    except ValidationError:
        value = None
    if value is None or not math.isfinite(value):
        what = "a whole number" if kind is int else "a finite number"
        raise SettingsError(
            f"{name}={raw!r} is not {what}. Fix: set it to e.g. {kind(default)} (the default), or unset it."
        )
    return value


def _seconds(env: Mapping[str, str], name: str, default: timedelta) -> timedelta:
    value = _number(env, name, default.total_seconds())
    try:
        return timedelta(seconds=value)
    except OverflowError:
        raise SettingsError(
            f"{name}={env.get(name)!r} is too large. "
            f"Fix: set it to e.g. {default.total_seconds()} (the default), or unset it."
        ) from None


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw) if raw else None


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
    warehouse_type: Warehouse = Warehouse.DUCKDB
    # ELT_WAREHOUSE_POOL: the Airflow pool every warehouse writer runs in. DuckDB allows one writer per file.
    warehouse_pool: str = "warehouse"
    # ELT_ENVIRONMENT: the dbt target's name (target.name) and the BigQuery dataset of the models.
    environment: str = "dev"
    # ELT_BIGQUERY_AUTH: one of BIGQUERY_AUTHS, "adc" (application default credentials,
    # e.g. workload identity) or "service-account" (key JSON in the Airflow connection).
    bigquery_auth: BigQueryAuth = BigQueryAuth.ADC
    # ELT_BIGQUERY_API_ENDPOINT: when not Google's public one (a Private Service Connect endpoint).
    bigquery_api_endpoint: str = ""

    # --- Transform (dbt) -------------------------------------------------------------------
    # ELT_TRANSFORM_MODE: one of TRANSFORM_MODES, "build" (the default: one ``dbt build`` per
    # DAG run, each node's task reports its result; elt_platform.transform) or "per-model"
    # (Cosmos LOCAL: one dbt invocation per task).
    transform_mode: TransformMode = TransformMode.BUILD
    # ELT_DBT_EXECUTABLE: a dbt executable in its own virtualenv; unset runs dbt in-process (dbtRunner).
    dbt_executable: Path | None = None
    # ELT_DBT_THREADS: nodes one dbt process builds at once.
    dbt_threads: int = 4
    # ELT_MODEL_POLL_SECONDS: between reads of the build's results while node tasks wait in the triggerer.
    model_poll_seconds: float = 0.5
    # ELT_TRIGGERER_PATCH: the triggerer hands each node task its own part of the DAG instead of the
    # whole DAG (Airflow 3.3.x only; docs/airflow-triggerer-patch.md). Off: Airflow's own behaviour.
    triggerer_patch: bool = True
    # ELT_BUILD_STATE: where each build keeps what the next run reads to reuse the nodes that nothing
    # changed (transform/build_state.py): an absolute folder every worker reads, or a URL Airflow's
    # ObjectStoragePath reads (gs://bucket/path, s3://...). Empty: every run builds every node.
    build_state: str = ""

    # --- Ingestion -------------------------------------------------------------------------
    # ELT_INGESTION_BACKEND: one of BACKENDS, "local" (PyAirbyte, the embedded default) or
    # "airbyte" (Airbyte Cloud/OSS API). Read when a sync task runs, never at parse time.
    ingestion_backend: IngestionBackend = IngestionBackend.LOCAL
    # ELT_INGESTION_PYTHON: Python of the PyAirbyte environment that runs local syncs.
    ingestion_python: Path | None = None
    # ELT_CONNECTORS_DIR: where PyAirbyte keeps one virtualenv per source connector.
    connectors_dir: Path | None = None
    # ELT_INGESTION_DATA_ROOT: a folder, besides each connection file's own, that a ``local_path`` may read from.
    ingestion_data_root: Path | None = None
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

    def __post_init__(self) -> None:
        """Every path that builds settings (``from_env``, the constructor, ``dataclasses.replace``) checks them."""
        problems = [
            *(_not_one_of(var, getattr(self, attr), choices) for attr, (var, choices) in _CHOICES.items()),
            *(_out_of_range(var, self, attr, low, high) for attr, (var, low, high) in _RANGES.items()),
            *(
                f"{var}={getattr(self, attr)!r} is not a valid id. Fix: use letters, digits, '_', '.' or '-'."
                for attr, var in _NAMES.items()
                if not NAME.match(getattr(self, attr))
            ),
        ]
        if not ENVIRONMENT.match(self.environment):
            problems.append(
                f"ELT_ENVIRONMENT={self.environment!r} is not a valid environment name. "
                "Fix: lower-case letters, digits and '_', starting with a letter (it names the BigQuery dataset)."
            )
        for var, address in [("ELT_ALERT_EMAIL_FROM", self.alert_email_from)] + [
            ("ELT_ALERT_EMAIL_TO", a) for a in self.alert_email_to
        ]:
            if not EMAIL.match(address):
                problems.append(
                    f"{var}: {address!r} is not an email address. Fix: write name@example.com, comma-separated."
                )
        if self.badge_secret and len(self.badge_secret.encode()) < BADGE_SECRET_MIN_BYTES:
            problems.append(
                f"ELT_BADGE_SECRET is {len(self.badge_secret.encode())} bytes; a badge secret needs at least "
                f"{BADGE_SECRET_MIN_BYTES}. Fix: set it to e.g. the output of `openssl rand -hex 32`, or unset it."
            )
        if self.bigquery_api_endpoint and not re.match(r"^https?://[^\s]+$", self.bigquery_api_endpoint):
            problems.append(
                f"ELT_BIGQUERY_API_ENDPOINT={self.bigquery_api_endpoint!r} is not an http(s) URL. Fix: e.g. https://bigquery-psc.example.com"
            )
        if self.build_state and not re.match(r"^(/|[a-z][a-z0-9+.-]*://)", self.build_state):
            problems.append(
                f"ELT_BUILD_STATE={self.build_state!r} is neither an absolute folder nor a URL. "
                "Fix: give the whole path (/var/lib/elt/build_state) or a URL (gs://bucket/build_state)."
            )
        if self.ingestion_data_root is not None and not self.ingestion_data_root.is_absolute():
            problems.append(
                f"ELT_INGESTION_DATA_ROOT={str(self.ingestion_data_root)!r} is not an absolute path. "
                "Fix: give the whole path."
            )
        if problems := [p for p in problems if p]:
            raise SettingsError("\n".join(problems))
        for attr, (_, choices) in _CHOICES.items():  # each kind as its Enum, however it was given
            object.__setattr__(self, attr, type(choices[0])(getattr(self, attr)))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        base = cls()
        defaults = Retries()

        def text(name: str, default: str) -> str:
            return env.get(name, default).strip()

        return cls(
            warehouse_conn_id=text("ELT_WAREHOUSE_CONN_ID", base.warehouse_conn_id),
            warehouse_type=text("ELT_WAREHOUSE_TYPE", base.warehouse_type).lower(),
            environment=text("ELT_ENVIRONMENT", base.environment).lower(),
            bigquery_auth=text("ELT_BIGQUERY_AUTH", base.bigquery_auth).lower(),
            bigquery_api_endpoint=text("ELT_BIGQUERY_API_ENDPOINT", base.bigquery_api_endpoint),
            dbt_executable=_path(env, "ELT_DBT_EXECUTABLE"),
            warehouse_pool=text("ELT_WAREHOUSE_POOL", base.warehouse_pool),
            transform_mode=text("ELT_TRANSFORM_MODE", base.transform_mode).lower(),
            model_poll_seconds=_number(env, "ELT_MODEL_POLL_SECONDS", base.model_poll_seconds),
            dbt_threads=_number(env, "ELT_DBT_THREADS", base.dbt_threads, int),
            triggerer_patch=_flag(env, "ELT_TRIGGERER_PATCH", base.triggerer_patch),
            build_state=text("ELT_BUILD_STATE", base.build_state),
            ingestion_python=_path(env, "ELT_INGESTION_PYTHON"),
            connectors_dir=_path(env, "ELT_CONNECTORS_DIR"),
            ingestion_data_root=_path(env, "ELT_INGESTION_DATA_ROOT"),
            retries=Retries(
                retries=_number(env, "ELT_TASK_RETRIES", defaults.retries, int),
                retry_delay=_seconds(env, "ELT_RETRY_DELAY_SECONDS", defaults.retry_delay),
                retry_exponential_backoff=defaults.retry_exponential_backoff,
                max_retry_delay=_seconds(env, "ELT_MAX_RETRY_DELAY_SECONDS", defaults.max_retry_delay),
            ),
            ingestion_backend=text("ELT_INGESTION_BACKEND", base.ingestion_backend).lower(),
            airbyte_conn_id=text("ELT_AIRBYTE_CONN_ID", base.airbyte_conn_id),
            airbyte_poll_seconds=_number(env, "ELT_AIRBYTE_POLL_SECONDS", base.airbyte_poll_seconds),
            sync_timeout=_seconds(env, "ELT_SYNC_TIMEOUT_SECONDS", base.sync_timeout),
            slack_conn_id=text("ELT_SLACK_CONN_ID", base.slack_conn_id),
            smtp_conn_id=text("ELT_SMTP_CONN_ID", base.smtp_conn_id),
            alert_email_to=tuple(a.strip() for a in env.get("ELT_ALERT_EMAIL_TO", "").split(",") if a.strip()),
            alert_email_from=text("ELT_ALERT_EMAIL_FROM", base.alert_email_from),
            alert_on_retry=_flag(env, "ELT_ALERT_ON_RETRY", base.alert_on_retry),
            badge_secret=env.get("ELT_BADGE_SECRET", ""),
        )


# What Settings checks on construction: attribute -> (variable, choices), (variable, least, most) or variable.
_CHOICES = {
    "warehouse_type": ("ELT_WAREHOUSE_TYPE", WAREHOUSES),
    "bigquery_auth": ("ELT_BIGQUERY_AUTH", BIGQUERY_AUTHS),
    "transform_mode": ("ELT_TRANSFORM_MODE", TRANSFORM_MODES),
    "ingestion_backend": ("ELT_INGESTION_BACKEND", BACKENDS),
}
_DAY = 86_400
_RANGES = {
    "model_poll_seconds": ("ELT_MODEL_POLL_SECONDS", 0.01, 60),
    "dbt_threads": ("ELT_DBT_THREADS", 1, 64),
    "airbyte_poll_seconds": ("ELT_AIRBYTE_POLL_SECONDS", 0.1, 3600),
    "sync_timeout": ("ELT_SYNC_TIMEOUT_SECONDS", 1, 30 * _DAY),
    "retries.retries": ("ELT_TASK_RETRIES", 0, 10),
    "retries.retry_delay": ("ELT_RETRY_DELAY_SECONDS", 0, _DAY),
    "retries.max_retry_delay": ("ELT_MAX_RETRY_DELAY_SECONDS", 0, _DAY),
}
_NAMES = {
    "warehouse_conn_id": "ELT_WAREHOUSE_CONN_ID",
    "warehouse_pool": "ELT_WAREHOUSE_POOL",
    "airbyte_conn_id": "ELT_AIRBYTE_CONN_ID",
    "slack_conn_id": "ELT_SLACK_CONN_ID",
    "smtp_conn_id": "ELT_SMTP_CONN_ID",
}


def _not_one_of(var: str, value: str, choices: tuple[str, ...]) -> str:
    if value in choices:
        return ""
    return f"{var}={value!r} is not one of {', '.join(choices)}. Fix: use one of them, or unset it."


def _out_of_range(var: str, settings: Settings, attr: str, low: float, high: float) -> str:
    value: Any = settings
    for part in attr.split("."):
        value = getattr(value, part)
    number = value.total_seconds() if isinstance(value, timedelta) else value
    owner, _, leaf = attr.rpartition(".")
    default = (Retries if owner else Settings).__dataclass_fields__[leaf].default  # suggested in the fix
    default = default.total_seconds() if isinstance(default, timedelta) else default
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
        return f"{var}={number!r} is not a finite number. Fix: set it to e.g. {default} (the default), or unset it."
    if number < low:
        return f"{var}={number!r} is below {low}. Fix: set it to e.g. {default} (the default), or unset it."
    if number > high:
        return f"{var}={number!r} is above {high}. Fix: set it to e.g. {default} (the default), or unset it."
    return ""
