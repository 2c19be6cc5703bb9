"""Every corpus project (tests/corpus/) runs green under the real scheduler, in both transform modes.

The runs are those of tests/integration/conftest.py: each corpus DAG is a thin DAG file
over its own copy of the project, its own DuckDB warehouse and its own pool, in the same
Airflow as the shipped DAG: projects side by side, with nothing to sync.
"""

from __future__ import annotations

import json

import duckdb
import pytest

from tests import conformance
from tests.integration.conftest import corpus_dag_ids

pytestmark = pytest.mark.integration

FAIL_RUN = "transform.fail_run_if_a_node_failed"


def manifest_nodes(stack, dag_id: str) -> dict[str, dict]:
    raw = json.loads((stack.projects[dag_id] / "target" / "manifest.json").read_text())
    return raw["nodes"]


@pytest.mark.parametrize("dag_id", corpus_dag_ids())
def test_the_run_is_green_with_a_green_task_per_model_seed_and_snapshot(runs, dag_id):
    run = runs[dag_id]
    assert run.state == "success", run.states
    assert not [t for t in run.tis if t.startswith("sync_")]
    not_green = {t: s for t, s in run.states.items() if s != "success" and t != FAIL_RUN}
    assert not_green == {}
    if dag_id.endswith("_build"):
        assert run.states[FAIL_RUN] == "skipped"  # nothing failed


@pytest.mark.parametrize("dag_id", corpus_dag_ids())
def test_every_model_seed_and_snapshot_is_in_the_warehouse(stack, runs, dag_id):
    """Green tasks that built nothing would be a lie: each non-ephemeral node's relation exists."""
    expected = {
        (n["schema"], n["alias"])
        for n in manifest_nodes(stack, dag_id).values()
        if n["resource_type"] in ("model", "seed", "snapshot") and n["config"]["materialized"] != "ephemeral"
    }
    with duckdb.connect(str(runs[dag_id].warehouse), read_only=True) as con:
        found = set(con.execute("select table_schema, table_name from information_schema.tables").fetchall())
    assert expected - found == set()


def test_the_warn_test_warned_without_failing_its_model(stack, runs):
    """shapes has a severity: warn test that fails: its model's task succeeds, dbt's warning in the log."""
    for mode in conformance.MODES:
        dag_id = f"corpus_shapes_{mode}"
        nodes = manifest_nodes(stack, dag_id)
        warn_tests = [n for n in nodes.values() if n["resource_type"] == "test" and n["config"]["severity"] == "warn"]
        assert warn_tests, "the shapes project must keep its warn test"
        assert runs[dag_id].state == "success"
