"""Break one model, or one sync, in a copy of the project and check where the failure lands."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import copy_project, dbt_parse, write_dag_file

pytestmark = pytest.mark.integration

FAKER_ONLY = {"stg_faker__users", "stg_faker__products", "stg_faker__purchases"}
SUPPORT_ONLY = {"stg_support__tickets", "int_tickets_aggregated_to_users", "tickets"}


def test_broken_model_fails_only_its_own_task(run_dag, tmp_path):
    dbt_dir, ingestion_dir = copy_project(tmp_path)
    broken = dbt_dir / "models" / "intermediate" / "sales" / "int_purchases_joined_to_products.sql"
    broken.write_text("select purchase_id, no_such_column from {{ ref('stg_faker__purchases') }}\n")
    dbt_parse(dbt_dir)
    write_dag_file(tmp_path / "dags", "broken_model", dbt_dir, ingestion_dir)

    result = run_dag("broken_model", tmp_path / "dags", tmp_path / "warehouse.duckdb")

    assert result.with_state("failed") == {"transform.int_purchases_joined_to_products.run"}
    downstream = {"orders", "products", "customers"}
    held_back = {"transform.int_purchases_joined_to_products.test"}
    held_back |= {f"transform.{m}.{step}" for m in downstream for step in ("run", "test")}
    assert held_back <= result.with_state("upstream_failed")
    independent = {f"transform.{m}.{step}" for m in FAKER_ONLY | SUPPORT_ONLY for step in ("run", "test")}
    assert independent <= result.with_state("success")
    assert "no_such_column" in result.log.read_text()


def test_failed_sync_holds_back_only_the_models_that_read_from_it(run_dag, tmp_path):
    dbt_dir, ingestion_dir = copy_project(tmp_path)
    spec_file = ingestion_dir / "support_desk.yml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["source"]["config"]["url"] = {"local_path": "data/missing_export.csv"}
    spec_file.write_text(yaml.safe_dump(spec))
    write_dag_file(tmp_path / "dags", "failed_sync", dbt_dir, ingestion_dir)

    result = run_dag("failed_sync", tmp_path / "dags", tmp_path / "warehouse.duckdb")

    assert result.with_state("failed") == {"sync_support_desk"}
    held_back = {f"transform.{m}.{step}" for m in SUPPORT_ONLY | {"customers"} for step in ("run", "test")}
    held_back |= {"transform.support_tickets.source"}
    assert held_back <= result.with_state("upstream_failed")
    faker_side = {"orders", "products", "int_purchases_joined_to_products"} | FAKER_ONLY
    assert {f"transform.{m}.{step}" for m in faker_side for step in ("run", "test")} <= result.with_state("success")
    assert "sync_shop_faker" in result.with_state("success")
