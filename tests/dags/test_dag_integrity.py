"""The DAG folder imports cleanly, fast, and a bad ingestion file fails loudly without breaking other DAGs."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from tests.conftest import REPO, copy_project, write_dag_file

# Parsing runs in the scheduler's loop again and again. On this 2-core machine the
# DAG file parses in about 1 s (cosmos import plus manifest rendering).
PARSE_BUDGET_SECONDS = 3.0


@pytest.fixture(scope="module")
def dagbag(manifest_path) -> DagBag:
    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "shop_elt" in dagbag.dags


def test_parse_time_within_budget(dagbag):
    durations = {stat.file: stat.duration.total_seconds() for stat in dagbag.dagbag_stats}
    # The first parse pays for importing Airflow and Cosmos; time a second, warm one too.
    start = time.perf_counter()
    DagBag(dag_folder=str(REPO / "dags"))
    warm = time.perf_counter() - start
    assert max(durations.values()) < PARSE_BUDGET_SECONDS, durations
    assert warm < PARSE_BUDGET_SECONDS


def test_dag_documents_on_call_and_serialises_warehouse_writers(dagbag):
    dag = dagbag.dags["shop_elt"]
    assert "On call" in dag.doc_md
    writers = {"transform.dbt_build__shop_faker", "transform.dbt_build__support_desk"}
    writers |= {"transform.dbt_build__shop_faker__support_desk"}
    readers = {"dashboards.marts"}  # counts the marts' rows: no writer meanwhile
    assert {task.task_id for task in dag.tasks if task.pool == "warehouse"} == writers | readers
    # The syncs read into stores of their own and the node tasks write only when one runs alone: both
    # under the warehouse file's lock (elt_platform.warehouse.warehouse_lock), in no pool slot.
    assert {task.pool for task in dag.tasks if task.task_id not in writers | readers} == {"default_pool"}


def test_bad_ingestion_file_is_an_import_error_naming_file_and_field(tmp_path):
    dbt_dir, ingestion_dir = copy_project(tmp_path)
    (ingestion_dir / "support_desk.yml").write_text(
        (ingestion_dir / "support_desk.yml").read_text().replace("dbt_source: support", "dbt_sourze: support")
    )
    dags = tmp_path / "dags"
    write_dag_file(dags, "bad_config", dbt_dir, ingestion_dir)
    shutil.copy(REPO / "tests" / "fixtures" / "unrelated_dag.py", dags / "unrelated_dag.py")

    bag = DagBag(dag_folder=str(dags))

    assert list(bag.import_errors) == [str(dags / "bad_config.py")]
    message = bag.import_errors[str(dags / "bad_config.py")]
    assert "ingestion/support_desk.yml: dbt_sourze: unknown field" in message
    assert "ingestion/support_desk.yml: dbt_source: required field is missing" in message
    assert "unrelated" in bag.dags


def test_bad_dbt_projects_are_import_errors_with_the_fix_and_break_nothing_else(tmp_path, manifest_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(REPO / "tests" / "fixtures" / "unrelated_dag.py", dags / "unrelated_dag.py")
    # a folder that is not a dbt project
    not_dbt = tmp_path / "not_dbt"
    not_dbt.mkdir()
    write_dag_file(dags, "not_dbt", not_dbt, None)
    # a dbt project whose manifest was never built
    unparsed, _ = copy_project(tmp_path / "unparsed")
    shutil.rmtree(unparsed / "target")
    write_dag_file(dags, "unparsed", unparsed, None)
    # a manifest from an older dbt
    old, ingestion = copy_project(tmp_path / "old")
    manifest = json.loads(manifest_path.read_text())
    manifest["metadata"] |= {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v10.json"}
    (old / "target" / "manifest.json").write_text(json.dumps(manifest))
    write_dag_file(dags, "old_dbt", old, ingestion)

    bag = DagBag(dag_folder=str(dags))

    errors = {Path(file).stem: message for file, message in bag.import_errors.items()}
    assert set(errors) == {"not_dbt", "unparsed", "old_dbt"}
    assert f"{not_dbt}: dbt_project_dir: not a dbt project: there is no dbt_project.yml in it" in errors["not_dbt"]
    assert "(dbt's default target path). Fix: run `dbt parse` in" in errors["unparsed"]
    assert "a dbt manifest of schema v10" in errors["old_dbt"]
    assert "Fix: rebuild it with the dbt of this platform's environment" in errors["old_dbt"]
    assert "unrelated" in bag.dags


def test_a_stale_manifest_is_an_import_warning_and_the_dag_still_loads(tmp_path):
    dbt_dir, ingestion_dir = copy_project(tmp_path)
    manifest = dbt_dir / "target" / "manifest.json"
    model = dbt_dir / "models" / "marts" / "sales" / "orders.sql"
    os.utime(model, (manifest.stat().st_mtime + 60,) * 2)
    dags = tmp_path / "dags"
    path = write_dag_file(dags, "stale", dbt_dir, ingestion_dir)

    with pytest.warns(UserWarning, match="older than models/marts/sales/orders.sql"):  # re-emitted by the DagBag
        bag = DagBag(dag_folder=str(dags))

    assert bag.import_errors == {}
    assert "stale" in bag.dags
    (warning,) = bag.captured_warnings[str(path)]
    assert "older than models/marts/sales/orders.sql" in warning
    assert "Fix: rebuild it with `make manifest`" in warning


def test_a_bad_setting_is_an_import_error_naming_the_variable_and_the_fix(tmp_path, monkeypatch):
    dbt_dir, ingestion_dir = copy_project(tmp_path)
    dags = tmp_path / "dags"
    write_dag_file(dags, "shop_copy", dbt_dir, ingestion_dir)
    shutil.copy(REPO / "tests" / "fixtures" / "unrelated_dag.py", dags / "unrelated_dag.py")
    monkeypatch.setenv("ELT_MODEL_POLL_SECONDS", "abc")

    bag = DagBag(dag_folder=str(dags))

    assert list(bag.import_errors) == [str(dags / "shop_copy.py")]
    assert "ELT_MODEL_POLL_SECONDS='abc' is not a finite number. Fix:" in bag.import_errors[str(dags / "shop_copy.py")]
    assert "unrelated" in bag.dags
