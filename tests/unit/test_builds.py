"""Which build builds each node: one per set of loads (elt_platform.transform.builds)."""

from __future__ import annotations

from dataclasses import replace

from elt_platform.dbt_manifest import load_manifest
from elt_platform.transform.builds import MAX_TASK_ID, build_of, builds, source_syncs

SYNCS = {"faker": "sync_shop_faker", "support": "sync_support_desk"}


def names(uids) -> set[str]:
    return {uid.split(".")[2] for uid in uids}


def test_the_bundled_project_has_one_build_per_set_of_loads_each_after_what_it_reads(manifest_path):
    manifest = load_manifest(manifest_path)
    found = builds(manifest, source_syncs(manifest, SYNCS))
    assert [(b.task_id, b.loads, b.after) for b in found] == [
        ("dbt_build__shop_faker", ("sync_shop_faker",), ()),
        ("dbt_build__support_desk", ("sync_support_desk",), ()),
        (
            "dbt_build__shop_faker__support_desk",
            ("sync_shop_faker", "sync_support_desk"),
            ("dbt_build__shop_faker", "dbt_build__support_desk"),
        ),
    ]
    both = found[2]
    assert names(both.nodes) == {"customers", "relationships_tickets_customer_id__customer_id__ref_customers_"}
    assert both.display_name == "dbt build after shop_faker, support_desk"
    support = names(found[1].nodes)
    assert support == {"tickets", "stg_support__tickets", "int_tickets_aggregated_to_customers", "support"}
    # every node with a task is in exactly one build; no ephemeral model, no test of one node
    every = build_of(found)
    assert sum(len(b.nodes) for b in found) == len(every)
    assert not any(uid.startswith("unit_test.") for uid in every)


def test_a_project_with_one_set_of_loads_keeps_a_single_dbt_build(manifest_path):
    manifest = load_manifest(manifest_path)
    (only,) = builds(manifest, {})  # every source loaded outside the platform
    assert (only.task_id, only.loads, only.after, only.display_name) == ("dbt_build", (), (), "dbt build")
    (one,) = builds(manifest, source_syncs(manifest, dict.fromkeys(SYNCS, "sync_everything")))
    assert (one.task_id, one.loads) == ("dbt_build", ("sync_everything",))


def test_a_set_of_many_loads_gets_a_short_stable_task_id(manifest_path):
    manifest = load_manifest(manifest_path)
    many = {uid: f"sync_{'connection_with_a_long_name_' * 3}{i}" for i, uid in enumerate(manifest.sources)}
    ids = [b.task_id for b in builds(manifest, many)]
    assert all(len(task_id) <= MAX_TASK_ID for task_id in ids)
    assert ids == [b.task_id for b in builds(manifest, many)]  # the same on every parse
    assert len(set(ids)) == len(ids)
    assert any("_connections_" in task_id for task_id in ids)


def test_a_chain_thousands_of_models_deep_gets_its_builds_without_recursion(manifest_path):
    """Each model's loads come from its parents': walked without recursion, whatever the depth."""
    manifest = load_manifest(manifest_path)
    users = "source.shop_analytics.faker.users"
    template = manifest.models["model.shop_analytics.stg_faker__users"]
    chain, parent = {}, users
    for i in range(5000):
        uid = f"model.shop_analytics.link_{i}"
        chain[uid] = replace(template, unique_id=uid, depends_on=(parent,), task_id=f"link_{i}")
        parent = uid
    # children before parents, as a manifest may list them
    deep = replace(manifest, models=dict(reversed(chain.items())), tests={}, exposures={})
    found = builds(deep, source_syncs(deep, SYNCS))
    assert [(b.task_id, len(b.nodes)) for b in found] == [
        ("dbt_build__shop_faker", 3 + 5000),  # the shop's three source tables and every link
        ("dbt_build__support_desk", 1),
    ]
