"""The dbt profile of each warehouse, built by a Cosmos profile mapping from an Airflow connection."""

from __future__ import annotations

from cosmos.profiles import (
    DuckDBUserPasswordProfileMapping,
    GoogleCloudOauthProfileMapping,
    GoogleCloudServiceAccountDictProfileMapping,
)
from cosmos.profiles.base import BaseProfileMapping

from elt_platform.settings import BIGQUERY_AUTHS, WAREHOUSES, Settings


def profile_mapping(settings: Settings) -> BaseProfileMapping:
    """DuckDB: the file path is the connection's host. BigQuery: project in the connection's
    extra; the dataset is per environment (``analytics_<environment>``)."""
    conn_id = settings.warehouse_conn_id
    if settings.warehouse_type == "duckdb":
        return DuckDBUserPasswordProfileMapping(conn_id=conn_id, profile_args={"threads": settings.dbt_threads})
    if settings.warehouse_type == "bigquery":
        args = {"dataset": settings.dataset, "threads": settings.dbt_threads}
        if settings.bigquery_api_endpoint:
            args["api_endpoint"] = settings.bigquery_api_endpoint
        if settings.bigquery_auth == "service-account":
            return GoogleCloudServiceAccountDictProfileMapping(conn_id=conn_id, profile_args=args)
        if settings.bigquery_auth == "adc":
            return GoogleCloudOauthProfileMapping(conn_id=conn_id, profile_args=args)
        raise ValueError(f"ELT_BIGQUERY_AUTH={settings.bigquery_auth!r}: use one of {BIGQUERY_AUTHS}")
    raise ValueError(f"ELT_WAREHOUSE_TYPE={settings.warehouse_type!r}: use one of {WAREHOUSES}")
