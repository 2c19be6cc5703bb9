"""Contract data types BigQuery accepts: the check the DuckDB-based emulator cannot make."""

from __future__ import annotations

from dataclasses import replace

import pytest

from elt_platform.bigquery_types import DBT_BIGQUERY_ALIASES, contract_type_problems, googlesql_error
from elt_platform.dag_factory import build_elt_dag
from elt_platform.dbt_manifest import load_manifest
from elt_platform.settings import Settings
from tests.conftest import REPO


def test_the_aliases_are_dbt_bigquerys_own():
    from dbt.adapters.bigquery.column import BigQueryColumn

    assert DBT_BIGQUERY_ALIASES == BigQueryColumn.TYPE_LABELS


@pytest.mark.parametrize(
    "data_type",
    ["string", "STRING(64)", "integer", "int64", "bigint", "numeric", "numeric(18, 3)", "bignumeric(40)", "float",
     "float64", "boolean", "bool", "timestamp", "date", "datetime", "json", "bytes", "text",
     "array<string>", "struct<id int64, tags array<string>>", "struct<int64, string>", "range<date>"],
)  # fmt: skip
def test_googlesql_types_pass(data_type):
    assert googlesql_error(data_type) is None


@pytest.mark.parametrize(
    ("data_type", "error"),
    [
        ("varchar", "no GoogleSQL type is named VARCHAR"),
        ("varchar(255)", "no GoogleSQL type is named VARCHAR"),
        ("double", "no GoogleSQL type is named DOUBLE"),
        ("array<double>", "no GoogleSQL type is named DOUBLE"),
        ("int64(3)", "INT64 takes no parameters"),
        ("numeric(10, 2, 1)", "expected )"),
        ("range<int64>", "RANGE holds DATE, DATETIME or TIMESTAMP"),
        ("array<string", "expected >"),
    ],
)
def test_names_bigquery_rejects_fail_with_the_reason(data_type, error):
    assert error in googlesql_error(data_type)


def test_without_alias_types_dbt_does_not_rename_float():
    assert googlesql_error("float", alias_types=False) == "no GoogleSQL type is named FLOAT"


def test_the_bundled_contracts_hold_on_bigquery(manifest_path):
    manifest = load_manifest(manifest_path)
    assert sum(len(m.contract_columns) for m in manifest.models.values()) >= 30
    assert contract_type_problems(manifest) == []


def test_a_contract_type_with_parameters_is_refused_since_dbt_checks_it_with_a_cast(manifest_path):
    manifest = load_manifest(manifest_path)
    orders = next(m for m in manifest.models.values() if m.name == "orders")
    typed = replace(orders, contract_columns=(("order_id", "string"), ("amount", "numeric(18, 2)")))
    (problem,) = contract_type_problems(replace(manifest, models={orders.unique_id: typed}))
    assert problem.field == "models.orders.columns.amount.data_type"
    assert "cast(null as numeric(18, 2))" in problem.message and problem.fix == "declare numeric without its parameters"


def test_the_dbt_target_is_the_environment(manifest_path):
    settings = replace(Settings.from_env(), environment="prod")
    dag = build_elt_dag(dag_id="prod", dbt_project_dir=REPO / "dbt_project", ingestion_dir=REPO / "ingestion",
                        settings=settings)  # fmt: skip
    assert dag.get_task("transform.dbt_build__support_desk").profile_config.target_name == "prod"
