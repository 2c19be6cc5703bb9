"""Reuse on a project written as users write them: the corpus's ``shapes`` (seeds, two snapshots,
a macro, an external source), its builds' state kept (scenarios.reuse_corpus), under the real
scheduler. Each run asserts the exact set dbt builds again:

1. no state yet: every node;
2. nothing new, nothing changed, a day after the last build: what dbt's ``freshness.build_after``
   of a day says is due (the daily revenue, and its tests), and nothing else (a source's freshness
   and tests check each load: they run);
3. a seed's file changed, a macro changed, and new rows in one source table: exactly what reads
   each of them, the snapshot of the changed seed's model included, which records the change, and
   the incremental model reading the new rows, which takes them in; a plain ``dbt build`` of every
   node then changes no table (nothing was left stale);
4. the previous state unreadable: every node, and the build's log says why.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from devstack.crash import published_results
from elt_platform.dbt_manifest.graph import descendants
from tests import conformance
from tests.integration.shared_airflow.conftest import _result
from tests.integration.shared_airflow.test_corpus import first_try_log

pytestmark = pytest.mark.integration

DAG_ID = "reuse_corpus"
BUILD = "transform.dbt_build"
DAILY = "model.corpus_shapes.fct_daily_revenue"
SEED, MACRO, NEW_ROWS = (
    "seed.corpus_shapes.raw_products",
    "macro.corpus_shapes.cents_to_dollars",
    "source.corpus_shapes.app.events",
)
RAN = {"success", "pass", "warn"}  # dbt built or ran it in this run's build


def _run(stack) -> tuple[dict[str, str], str]:
    """Trigger a run; once it ended green, each node's status in the build's results, and the run's id."""
    run_id = stack.trigger(DAG_ID)
    result = _result(stack, DAG_ID, run_id)
    assert result.state == "success", result.states
    records = published_results(stack.client, DAG_ID, run_id, BUILD) or {}
    return {uid: record.status for uid, record in records.items()}, run_id


def test_exactly_what_a_changed_seed_macro_or_source_reaches_is_built_again(stack, tmp_path):
    project, warehouse = stack.projects[DAG_ID], stack.warehouses[DAG_ID]
    raw = json.loads((project / "target" / "manifest.json").read_text())["nodes"]
    parents = {uid: node["depends_on"].get("nodes", []) for uid, node in raw.items()}
    on_sources = {
        uid
        for uid, node in raw.items()
        if node["resource_type"] == "test" and parents[uid] and all(p.startswith("source.") for p in parents[uid])
    }

    statuses, _ = _run(stack)
    nodes = {uid for uid in statuses if uid.split(".")[0] in {"model", "seed", "snapshot", "test"}} - on_sources
    assert {SEED, "snapshot.corpus_shapes.products_snapshot"} <= nodes
    assert {statuses[uid] for uid in nodes} <= RAN  # no state yet: every node built

    # A day later (as the state records it): what dbt's build_after of a day says is due, and only that.
    built_at = project.parent / "build_state" / DAG_ID / BUILD / "built_at.json"
    last_builds = json.loads(built_at.read_text())
    assert DAILY in last_builds
    last_builds[DAILY] = (datetime.now(UTC) - timedelta(days=1, minutes=1)).isoformat()
    built_at.write_text(json.dumps(last_builds))
    statuses, run_id = _run(stack)
    assert {uid for uid in nodes if statuses.get(uid) != "reused"} == nodes & ({DAILY} | descendants(parents, {DAILY}))
    assert f"Building {DAILY} and what reads it: its freshness.build_after (1 day" in first_try_log(
        stack, DAG_ID, run_id, BUILD
    )
    assert {statuses[uid] for uid in on_sources} <= RAN
    # A reused model's task: success, its log saying why.
    assert statuses["model.corpus_shapes.stg_shop__products"] == "reused"
    log = first_try_log(stack, DAG_ID, run_id, "transform.stg_shop__products")
    assert "Reused: nothing it reads, and not its code, changed since its last build" in log

    seed = project / "seeds" / "raw_products.csv"
    seed.write_text(seed.read_text().replace("Filter papers,accessories,3.99", "Filter papers,accessories,4.49"))
    macro = project / "macros" / "cents_to_dollars.sql"
    macro.write_text(
        macro.read_text().replace("    cast((", "    {#- in the macro's body: dbt compares it -#}\n    cast((")
    )
    with duckdb.connect(str(warehouse)) as con:  # the external loader brings one new event
        con.execute(
            "insert into app.events select * replace (id + 100 as id, now()::timestamp as loaded_at) "
            "from app.events where id = 1"
        )
    statuses, _ = _run(stack)
    uses_macro = {uid for uid, node in raw.items() if MACRO in node["depends_on"].get("macros", [])}
    reached = {SEED} | uses_macro | descendants(parents, {SEED, NEW_ROWS} | uses_macro)
    built = {uid for uid in nodes if statuses.get(uid) != "reused"}
    assert built == nodes & reached
    assert {statuses[uid] for uid in built} <= RAN, {uid: statuses.get(uid) for uid in built}
    # Each change on its own reaches a node no other reaches.
    assert {SEED, "model.corpus_shapes.stg_app__orders", "model.corpus_shapes.stg_app__events"} <= built
    assert nodes - built, "nothing was reused"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        # The incremental model took the new event in.
        assert con.execute("select count(*) from main.stg_app__events where event_id = 101").fetchone() == (1,)
        versions = con.execute(
            "select price, dbt_valid_to is null from main_snapshots.products_snapshot where product_id = 2 order by all"
        ).fetchall()
    assert [(float(price), is_open) for price, is_open in versions] == [(3.99, False), (4.49, True)]
    by_hand = conformance.built_in_full(project, warehouse, tmp_path)
    assert conformance.table_contents(warehouse) == conformance.table_contents(by_hand)

    state = project.parent / "build_state" / DAG_ID / BUILD / "manifest.json"
    state.write_text('{"nodes": ')
    statuses, run_id = _run(stack)
    assert {statuses.get(uid) for uid in nodes} <= RAN
    assert "the previous state at" in first_try_log(stack, DAG_ID, run_id, BUILD)
    assert "is unreadable (JSONDecodeError" in first_try_log(stack, DAG_ID, run_id, BUILD)
