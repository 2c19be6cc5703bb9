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

from elt_platform.dbt_project_files import manifest_location
from tests import conformance
from tests.integration.shared_airflow.conftest import SECOND_RUN, corpus_dag_ids

pytestmark = pytest.mark.integration

FAIL_RUN = "transform.fail_run_if_a_node_failed"
TWICE = "incremental_twice"


def last_runs() -> list[str]:
    """The key of each corpus DAG's last run in ``runs``: its second for a project that builds twice."""
    return [SECOND_RUN.format(d) if TWICE in d else d for d in corpus_dag_ids()]


def manifest_nodes(stack, dag_id: str) -> dict[str, dict]:
    raw = json.loads(manifest_location(stack.projects[dag_id]).path.read_text())
    return raw["nodes"]


def rows(warehouse, project_dir, table: str, leave_out: tuple[str, ...] = ()) -> list[tuple]:
    """A table's rows, sorted, without the columns ``leave_out`` (which hold the time of the build)."""
    with conformance.connect(warehouse, project_dir) as con:
        columns = [c for (c,) in con.execute(f"select column_name from (describe {table})").fetchall()]
        kept = ", ".join(f'"{c}"' for c in columns if c not in leave_out)
        return sorted(con.execute(f"select {kept} from {table}").fetchall(), key=repr)


def first_try_log(stack, dag_id: str, run_id: str, task_id: str) -> str:
    """The log's lines as written (the JSON form of the API escapes characters such as €)."""
    body = stack.task_log(dag_id, run_id, task_id, 1).json()
    return "\n".join(str(e.get("event", "")) if isinstance(e, dict) else str(e) for e in body["content"])


@pytest.mark.parametrize("dag_id", corpus_dag_ids() + [SECOND_RUN.format(d) for d in corpus_dag_ids() if TWICE in d])
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
    dag_id = f"corpus_{project}_per_model"
    run = runs[dag_id]
    nodes = manifest_nodes(stack, dag_id)
    manifest = conformance.manifest_of(stack.projects[dag_id])
    for uid, model in manifest.models.items():
        if model.is_ephemeral:
            continue
        log = first_try_log(stack, dag_id, run.run_id, f"transform.{model.task_id}")
        started = re.findall(
            r"\d+ of \d+ START (?:(?:sql|python) \w+ model|seed file|snapshot) ([^ ]+) +(?:\.|\[RUN\])", log
        )
        assert started == [f"{nodes[uid]['schema']}.{nodes[uid]['alias']}"], (model.task_id, started)
    for test in manifest.tests_reading_several_nodes():
        log = first_try_log(stack, dag_id, run.run_id, f"transform.{test.task_id}")
        started = re.findall(r"\d+ of \d+ START test ([^ ]+) +(?:\.|\[RUN\])", log)
        assert started == [test.name], (test.task_id, started)


@pytest.mark.parametrize("key", last_runs())
def test_the_warehouse_holds_the_same_tables_and_row_counts_as_dbt_build_by_hand(runs, key):
    """The project built by plain `dbt build` in its own folder is the reference."""
    run = runs[key]
    by_hand = conformance.table_rows(*run.by_hand)
    through_airflow = conformance.table_rows(run.warehouse, run.project_dir)
    for table in conformance.PER_INVOCATION_TABLES:
        by_hand.pop(table, None), through_airflow.pop(table, None)
    assert by_hand, "nothing was built by hand"
    assert through_airflow == by_hand


@pytest.mark.parametrize("mode", conformance.MODES)
def test_files_read_by_relative_path_python_models_and_a_post_hook_give_the_same_rows_as_by_hand(stack, runs, mode):
    dag_id = f"corpus_files_and_python_{mode}"
    run = runs[dag_id]
    for table in ("main.customer_profiles", "main.order_totals", "main.customer_orders", "main.stg_files__payments"):
        assert rows(run.warehouse, run.project_dir, table) == rows(*run.by_hand, table), table
    profiles = dict((r[0], r[1:]) for r in rows(run.warehouse, run.project_dir, "main.customer_profiles"))
    assert profiles[3][0] == "Émile Zola" and profiles[2][1] is None  # text, and a null, through pandas
    # The post-hook wrote where it writes by hand: ../exports beside the project, not into a copy of it.
    export = stack.projects[dag_id].parent / "exports" / "customer_orders.csv"
    header, *lines = export.read_text().splitlines()
    assert header == "customer_id,full_name,email_domain,order_count,total_amount,amount_paid"
    assert len(lines) == 5
    # dbt wrote its target and log folders into Cosmos's private copy, not into the project or beside it.
    assert not (stack.projects[dag_id] / "logs").exists() and not (stack.projects[dag_id] / "target").exists()
    assert {p.name for p in (stack.projects[dag_id].parent / "build_artifacts").iterdir()} <= {
        "manifest.json",
        "manifest.elt.json",
        "partial_parse.msgpack",
        "semantic_manifest.json",
        "perf_info.json",
    }


@pytest.mark.parametrize("mode", conformance.MODES)
def test_incremental_models_and_snapshots_built_twice_hold_each_record_once_with_closed_validity(runs, mode):
    run = runs[SECOND_RUN.format(f"corpus_{TWICE}_{mode}")]
    here = (run.warehouse, run.project_dir)
    assert [r[0] for r in rows(*here, "main.account_events")] == [1, 2, 3, 4, 5, 6, 7]  # appended once
    current = {r[0]: r[1:3] for r in rows(*here, "main.accounts_current")}
    assert current == {1: ("Acme", "pro"), 2: ("Globex", "pro"), 3: ("Initech", "free"), 4: ("Umbrella", "free")}
    with duckdb.connect(str(run.warehouse), read_only=True) as con:
        for snapshot, changed in (("accounts_by_timestamp", {1}), ("accounts_by_check", {1, 2})):
            versions = con.execute(
                f"select id, count(*), count(dbt_valid_to), count(*) filter (dbt_valid_to is null) "
                f"from main.{snapshot} group by id order by id"
            ).fetchall()
            # A changed account: its old row closed, its new one open; the others: one open row each.
            assert versions == [(i, 2, 1, 1) if i in changed else (i, 1, 0, 1) for i in (1, 2, 3, 4)], snapshot
    time_of_build = ("dbt_scd_id", "dbt_updated_at", "dbt_valid_from", "dbt_valid_to")
    for table in ("account_events", "accounts_current", "accounts_by_timestamp", "accounts_by_check"):
        table = f"main.{table}"
        assert rows(*here, table, time_of_build) == rows(*run.by_hand, table, time_of_build), table


@pytest.mark.parametrize("mode", conformance.MODES)
def test_a_dashboard_reading_an_ephemeral_model_counts_only_tables(stack, runs, mode):
    """customer_payments reads paid_by_customer, which dbt inlines into it: what the dashboard reads
    are the tables paid_by_customer reads, and those are counted."""
    dag_id = f"corpus_files_and_python_{mode}"
    run = runs[dag_id]
    assert run.states["dashboards.marts"] == "success"
    log = first_try_log(stack, dag_id, run.run_id, "dashboards.marts")
    assert "Could not count" not in log and "paid_by_customer" not in log
    assert "customer_orders: fresh, 5 rows, asset event." in log
    assert "stg_files__payments: fresh, 6 rows, asset event." in log
    assert run.health["customer_payments"]["status"] == "fresh", run.health["customer_payments"]
