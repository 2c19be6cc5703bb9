"""Reading dbt manifests: the schema this platform reads, staleness, the shapes real projects have, and the
graph's rules (walks through ephemeral models, which tests get a task of their own)."""

from __future__ import annotations

import json
import os
import warnings

import pytest

from elt_platform.dbt_manifest import (
    Exposure,
    Manifest,
    ManifestError,
    Model,
    ResourceType,
    SourceTable,
    StaleManifestWarning,
    exact_selector,
    graph,
    load_manifest,
    node_meta,
)
from elt_platform.dbt_manifest import Test as DbtTest  # not collected by pytest
from tests.conftest import REPO


@pytest.fixture
def manifest_copy(tmp_path, manifest_path):
    raw = json.loads(manifest_path.read_text())
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(raw))
    return path, raw


def test_a_manifest_of_another_schema_version_is_refused_with_the_fix(manifest_copy):
    path, raw = manifest_copy
    raw["metadata"]["dbt_schema_version"] = "https://schemas.getdbt.com/dbt/manifest/v11.json"
    raw["metadata"]["dbt_version"] = "1.7.4"
    path.write_text(json.dumps(raw))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    message = str(caught.value)
    assert f"{path}: a dbt manifest of schema v11 (dbt 1.7.4)" in message
    assert "this platform reads manifest schema v12 (dbt 1.8 to 1.11)" in message
    assert "Fix: rebuild it with the dbt of this platform's environment: `dbt parse`" in message


def test_a_seed_without_depends_on_nodes_reads_as_a_root(manifest_copy):
    path, raw = manifest_copy
    raw["nodes"]["seed.shop_analytics.countries"] = {
        "name": "countries",
        "resource_type": "seed",
        "package_name": "shop_analytics",
        "original_file_path": "seeds/countries.csv",
        "fqn": ["shop_analytics", "countries"],
        "config": {"materialized": "seed"},
        "depends_on": {"macros": []},  # what dbt writes for a seed: no "nodes"
    }
    path.write_text(json.dumps(raw))
    seed = load_manifest(path).models["seed.shop_analytics.countries"]
    assert (seed.depends_on, seed.task_id, seed.selector) == ((), "countries", "fqn:shop_analytics.[c]ountries")


def test_a_project_file_newer_than_the_manifest_warns_and_names_make_manifest(tmp_path, manifest_path):
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: p\n")
    model = project / "models" / "orders.sql"
    model.write_text("select 1 as id\n")
    manifest = project / "target" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text(manifest_path.read_text())
    os.utime(model, (1, 1))
    os.utime(project / "dbt_project.yml", (1, 1))
    with warnings.catch_warnings(record=True) as fresh:
        warnings.simplefilter("always")
        load_manifest(manifest, project)
    assert fresh == []

    os.utime(model, (manifest.stat().st_mtime + 60,) * 2)
    with pytest.warns(StaleManifestWarning) as stale:
        load_manifest(manifest, project)
    message = str(stale[0].message)
    assert f"{manifest} is older than models/orders.sql in {project}" in message
    assert "Fix: rebuild it with `make manifest`" in message


@pytest.mark.parametrize("target_path", ["target", "build"])  # dbt_project.yml's target-path
def test_files_dbt_writes_do_not_make_the_manifest_stale(tmp_path, manifest_path, target_path):
    project = tmp_path / "project"
    (project / target_path / "compiled" / "p" / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: p\n")
    os.utime(project / "dbt_project.yml", (1, 1))
    manifest = project / target_path / "manifest.json"
    manifest.write_text(manifest_path.read_text())
    os.utime(manifest, (1000, 1000))
    # what `dbt build` writes after the parse: compiled SQL, and a log folder
    (project / target_path / "compiled" / "p" / "models" / "orders.sql").write_text("select 1")
    (project / "logs").mkdir()
    (project / "logs" / "query.sql").write_text("select 1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_manifest(manifest, project)
    assert [w for w in caught if issubclass(w.category, StaleManifestWarning)] == []


def test_the_bundled_manifest_is_current(manifest_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleManifestWarning)
        load_manifest(manifest_path, REPO / "dbt_project")


NODES = [  # (fqn, versioned): neighbours that dbt's plain fqn selector confuses
    (("shop", "payments"), False),
    (("shop", "payments", "payments-by-method"), False),
    (("shop", "payments", "customer_spend_[usd]"), False),
    (("shop", "payments", "customer_spend_u"), False),
    (("shop", "marts", "customers", "customers", "v1"), True),
    (("shop", "marts", "customers", "customers", "v2"), True),
    (("helpers", "calendar"), False),
    (("shop", "calendar"), False),
]


@pytest.mark.parametrize(("fqn", "versioned"), NODES)
def test_the_selector_of_a_node_selects_it_and_no_other_in_dbts_own_matching(fqn, versioned):
    from dbt.graph.selector_methods import is_selected_node

    selector = exact_selector(fqn, fqn[-1]).removeprefix("fqn:")
    selected = [other for other, other_versioned in NODES if is_selected_node(list(other), selector, other_versioned)]
    assert selected == [fqn]


def _model(uid: str, *parents: str, ephemeral: bool = False) -> Model:
    return Model(uid, uid, f"models/{uid}.sql", parents, materialized="ephemeral" if ephemeral else "table")


@pytest.fixture
def graph_manifest(tmp_path) -> Manifest:
    """src -> a -> (ephemeral e) -> b -> c, d reads a and src; x reads nothing of them."""
    source = SourceTable("src", "raw", "t", "raw", "models/raw.yml", has_freshness=False)
    models = [_model("a", "src"), _model("e", "a", ephemeral=True), _model("b", "e"), _model("c", "b")]
    models += [_model("d", "a", "src"), _model("x")]
    tests = [
        DbtTest("t_a", "t_a", ("a",)),
        DbtTest("t_ab", "t_ab", ("a", "b")),
        DbtTest("t_aa", "t_aa", ("a", "a")),  # the same node twice is one node
        DbtTest("ut_b", "ut_b", ("b",), resource_type="unit_test"),
    ]
    exposure = Exposure("dash", "dash", "Dash", None, ("e", "d", "src"))
    return Manifest(
        path=tmp_path / "manifest.json",
        sources={"src": source},
        models={m.unique_id: m for m in models},
        exposures={"dash": exposure},
        tests={t.unique_id: t for t in tests},
    )


def test_the_walks_go_through_ephemeral_models_as_dbt_inlines_them(graph_manifest):
    m = graph_manifest
    assert graph.upstream(m, ("c",)) == {"c", "b", "e", "a", "src"}
    assert graph.downstream(m, {"a"}) == {"e", "b", "c", "d"}
    assert graph.downstream(m, {"a", "b"}) == {"e", "b", "c", "d"}  # a root read by another root is in it
    assert graph.descendants({"b": ("a",), "c": ("b",)}, {"a"}) == {"b", "c"}
    assert graph.marts_of(m, m.exposures["dash"]) == ("a", "d")  # the ephemeral model's parent; no source
    assert graph.through_ephemeral(m, ("e", "d", "src"), lambda uid: True) == ("a", "d", "src")
    assert m.marts_of(m.exposures["dash"]) == graph.marts_of(m, m.exposures["dash"])
    assert m.downstream_of({"a"}) == graph.downstream(m, {"a"})


def test_a_test_reading_several_nodes_gets_its_own_task_and_any_other_runs_in_its_nodes(graph_manifest):
    m = graph_manifest
    assert [t.unique_id for t in graph.tests_with_own_task(m)] == ["t_ab"]
    assert graph.own_tests(m) == {"a": ["t_a", "t_aa"], "b": ["ut_b"]}
    assert m.tests_reading_several_nodes() == graph.tests_with_own_task(m)
    assert {node: [t.unique_id for t in tests] for node, tests in graph.tests_of(m).items()} == {
        "a": ["t_a", "t_ab", "t_aa"],
        "b": ["t_ab", "ut_b"],
    }


def test_on_the_bundled_project_each_test_has_exactly_one_reporting_task(manifest_path):
    manifest = load_manifest(manifest_path)
    own = {t.unique_id for t in graph.tests_with_own_task(manifest)}
    attached = [uid for tests in graph.own_tests(manifest).values() for uid in tests]
    assert own and all(t.startswith("test.") and ".relationships_" in t for t in own)
    assert sorted([*own, *attached]) == sorted(manifest.tests)


def test_meta_is_read_as_dbt_resolves_it_config_first_then_the_node_then_the_source():
    node = {
        "config": {"meta": {"owner": "config", "cosmos": {"operator_kwargs": {"retries": 4}}}},
        "meta": {"owner": "node", "elt": {"external": True}},
        "source_meta": {"owner": "source", "fresh_by": "07:00"},
    }
    assert node_meta(node) == {
        "owner": "config",
        "cosmos": {"operator_kwargs": {"retries": 4}},
        "elt": {"external": True},
        "fresh_by": "07:00",
    }
    assert node_meta({"config": None, "meta": None}) == {}


def test_resource_types_are_an_enum_after_the_compact_copy_too(manifest_copy):
    path, _ = manifest_copy
    for manifest in (load_manifest(path), load_manifest(path)):  # from the manifest, then from its copy
        kinds = {type(m.resource_type) for m in manifest.models.values()}
        kinds |= {type(t.resource_type) for t in manifest.tests.values()}
        assert kinds == {ResourceType}
        assert {t.resource_type for t in manifest.tests.values()} == {ResourceType.TEST, ResourceType.UNIT_TEST}
