"""The contract between ingestion files and dbt sources, checked against the real manifest."""

from __future__ import annotations

import pytest

from elt_platform.ingestion.contract import load_and_check
from tests.conftest import REPO, contract_problems


def test_shipped_project_satisfies_the_contract(manifest_path):
    connections, manifest = load_and_check(REPO / "ingestion", REPO / "dbt_project", manifest_path)
    assert {s.source_name for s in manifest.sources.values()} == {c.spec.dbt_source for c in connections}


def test_dbt_source_that_no_connection_loads(project):
    dbt_dir, ingestion_dir = project
    (ingestion_dir / "support_desk.yml").unlink()
    message = contract_problems(dbt_dir, ingestion_dir)
    assert (
        "dbt_project/models/staging/support/_support__sources.yml: sources.support: "
        "no ingestion connection loads dbt source 'support'"
    ) in message
    assert "add an ingestion/<connection>.yml with 'dbt_source: support'" in message


def test_connection_whose_dbt_source_does_not_exist(project):
    dbt_dir, ingestion_dir = project
    path = ingestion_dir / "support_desk.yml"
    path.write_text(path.read_text().replace("dbt_source: support", "dbt_source: helpdesk"))
    message = contract_problems(dbt_dir, ingestion_dir)
    assert "ingestion/support_desk.yml: dbt_source: dbt source 'helpdesk' does not exist" in message
    assert "known sources: faker, support" in message


def test_source_table_that_no_stream_syncs(project):
    dbt_dir, ingestion_dir = project
    path = ingestion_dir / "shop_faker.yml"
    path.write_text(path.read_text().replace("  - purchases\n", ""))
    message = contract_problems(dbt_dir, ingestion_dir)
    assert "sources.faker.tables.purchases: table 'purchases' is not synced by connection 'shop_faker'" in message


def test_raw_schema_mismatch(project):
    dbt_dir, ingestion_dir = project
    path = ingestion_dir / "shop_faker.yml"
    path.write_text(path.read_text().replace("raw_schema: raw_faker", "raw_schema: raw_shop"))
    message = contract_problems(dbt_dir, ingestion_dir)
    assert "sources.faker.schema: schema 'raw_faker' differs from destination.raw_schema 'raw_shop'" in message


def test_missing_manifest_says_how_to_build_it(project):
    dbt_dir, ingestion_dir = project
    with pytest.raises(FileNotFoundError) as caught:
        load_and_check(ingestion_dir, dbt_dir, dbt_dir / "target" / "nope.json")
    assert f"dbt manifest not found at {dbt_dir / 'target' / 'nope.json'} (the manifest_path given)" in str(
        caught.value
    )
    assert f"Fix: run `dbt parse` in {dbt_dir} with the same target path (`make manifest` for the bundled project)" in (
        str(caught.value)
    )


def test_without_ingestion_every_source_must_be_declared_external(project):
    dbt_dir, _ = project
    message = contract_problems(dbt_dir, None)
    assert "sources.faker: no ingestion connection loads dbt source 'faker'" in message
    assert "declare it on the source: meta: {elt: {external: true}}" in message


def test_a_folder_without_dbt_project_yml_is_not_a_dbt_project(tmp_path):
    message = contract_problems(tmp_path, None, tmp_path / "manifest.json")
    assert f"{tmp_path}: dbt_project_dir: not a dbt project: there is no dbt_project.yml in it" in message
