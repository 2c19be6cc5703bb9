"""The DAG folder imports cleanly, fast, and a bad ingestion file fails loudly without breaking other DAGs."""

from __future__ import annotations

import shutil
import time

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
    writers = {"sync_shop_faker", "sync_support_desk", "transform.dbt_build"}
    assert {task.task_id for task in dag.tasks if task.pool == "warehouse"} == writers
    # The node tasks write only when one runs alone, under the warehouse file lock (elt_platform.build_mode).
    assert {task.pool for task in dag.tasks if task.task_id not in writers} == {"default_pool"}


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
