"""Reading dbt manifests: the schema this platform reads, staleness, and the shapes real projects have."""

from __future__ import annotations

import json
import os
import warnings

import pytest

from elt_platform.dbt_manifest import ManifestError, StaleManifestWarning, exact_selector, load_manifest
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
