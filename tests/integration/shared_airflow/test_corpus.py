"""Every corpus project (tests/corpus/) runs green under the real scheduler, in both transform modes.

The runs are those of tests/integration/shared_airflow/conftest.py: each corpus DAG is a thin DAG file
over its own copy of the project, its own DuckDB warehouse and its own pool, in the same
Airflow as the shipped DAG: projects side by side, with nothing to sync.
"""

from __future__ import annotations

import json
import re

import duckdb
import pytest

from tests import conformance
from tests.integration.shared_airflow.conftest import corpus_dag_ids

pytestmark = pytest.mark.integration

FAIL_RUN = "transform.fail_run_if_a_node_failed"


def manifest_nodes(stack, dag_id: str) -> dict[str, dict]:
    raw = json.loads((stack.projects[dag_id] / "target" / "manifest.json").read_text())
    return raw["nodes"]


def first_try_log(stack, dag_id: str, run_id: str, task_id: str) -> str:
    """The log's lines as written (the JSON form of the API escapes characters such as €)."""
    body = stack.task_log(dag_id, run_id, task_id, 1).json()
    return "\n".join(str(e.get("event", "")) if isinstance(e, dict) else str(e) for e in body["content"])


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


@pytest.mark.parametrize("mode", conformance.MODES)
def test_a_failing_warn_test_warns_in_its_models_log_and_the_model_succeeds(stack, runs, mode):
    """shapes has a severity: warn accepted_values test on stg_app__events that fails on purpose."""
    dag_id = f"corpus_shapes_{mode}"
    run = runs[dag_id]
    assert run.states["transform.stg_app__events"] == "success"
    log = first_try_log(stack, dag_id, run.run_id, "transform.stg_app__events")
    assert "accepted_values_stg_app__events_event_type" in log
    assert "Got 1 result, configured to warn if != 0" in log


@pytest.mark.parametrize("project", conformance.PROJECTS)
def test_each_per_model_task_builds_exactly_its_own_node(stack, runs, project):
    """dbt's own fqn selector would also build a folder named like the model, or nothing for `[usd]`;
    a test reading two nodes runs once, in its own task."""
    from elt_platform.dbt_manifest import load_manifest

    dag_id = f"corpus_{project}_per_model"
    run = runs[dag_id]
    nodes = manifest_nodes(stack, dag_id)
    manifest = load_manifest(stack.projects[dag_id] / "target" / "manifest.json")
    for uid, model in manifest.models.items():
        if model.is_ephemeral:
            continue
        log = first_try_log(stack, dag_id, run.run_id, f"transform.{model.task_id}")
        started = re.findall(r"\d+ of \d+ START (?:sql \w+ model|seed file|snapshot) ([^ ]+) +(?:\.|\[RUN\])", log)
        assert started == [f"{nodes[uid]['schema']}.{nodes[uid]['alias']}"], (model.task_id, started)
    for test in manifest.tests_reading_several_nodes():
        log = first_try_log(stack, dag_id, run.run_id, f"transform.{test.task_id}")
        started = re.findall(r"\d+ of \d+ START test ([^ ]+) +(?:\.|\[RUN\])", log)
        assert started == [test.name], (test.task_id, started)
