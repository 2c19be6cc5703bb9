"""What the platform tells OpenLineage: a sync's datasets, and the build's node events, parented."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState

from elt_platform import lineage_events
from elt_platform.dag_factory import build_elt_dag
from tests.conftest import REPO


@pytest.fixture(scope="module")
def dag(manifest_path):
    return build_elt_dag(dag_id="lineage", dbt_project_dir=REPO / "dbt_project", ingestion_dir=REPO / "ingestion")


def test_a_sync_reads_its_connector_s_streams_and_writes_its_dbt_source_s_tables(dag, monkeypatch):
    """Named as dbt's OpenLineage integration names the sources its staging models read: the
    warehouse file's own database, whatever the file was called when the manifest was parsed."""
    monkeypatch.setattr(lineage_events.Connection, "get", lambda conn_id: SimpleNamespace(host="/data/wh_prod.duckdb"))
    lineage = dag.get_task("sync_shop_faker").get_openlineage_facets_on_complete(None)
    assert {(d.namespace, d.name) for d in lineage.inputs} == {
        ("airbyte://source-faker", f"shop_faker.{s}") for s in ("users", "products", "purchases")
    }
    assert {(d.namespace, d.name) for d in lineage.outputs} == {
        ("duckdb:///data/wh_prod.duckdb", f"wh_prod.raw_faker.{t}") for t in ("users", "products", "purchases")
    }
    users = next(d for d in lineage.outputs if d.name.endswith(".users"))
    assert [f.name for f in users.facets["schema"].fields] == ["id"]  # the columns its YAML declares


def test_on_bigquery_a_raw_table_keeps_the_project_the_manifest_names(dag, monkeypatch):
    from elt_platform.settings import Warehouse

    task = dag.get_task("sync_support_desk")
    settings = SimpleNamespace(warehouse_type=Warehouse.BIGQUERY)
    (tickets,) = lineage_events.raw_table_datasets(settings, task.raw_tables)
    assert (tickets.namespace, tickets.name) == ("bigquery", "analytics.raw_support.tickets")
    assert "schema" in tickets.facets


def test_the_build_s_node_events_name_its_task_run_as_their_parent():
    dag_run = SimpleNamespace(logical_date=datetime(2026, 12, 6, tzinfo=UTC), run_after=None, clear_number=0)
    ti = SimpleNamespace(
        dag_id="shop_elt",
        task_id="transform.dbt_build__shop_faker",
        try_number=1,
        map_index=-1,
        get_template_context=lambda: {"dag_run": dag_run},
    )
    node = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-12-06T00:00:00Z",
        run=Run(runId="0193c0de-0000-7000-8000-000000000001"),
        job=Job(namespace="dbt", name="shop_analytics.orders"),
        producer="https://github.com/OpenLineage/OpenLineage/tree/1.54.0/integration/dbt",
    )
    (parented,) = lineage_events.parented([node], ti)
    parent = parented.run.facets["parent"]
    assert parent.job.name == "shop_elt.transform.dbt_build__shop_faker"
    from airflow.providers.openlineage.plugins.macros import lineage_run_id

    assert parent.run.runId == lineage_run_id(ti)  # the run id of the build task's own events
    assert parented.job == node.job and node.run.facets == {}  # the original is left as it was
