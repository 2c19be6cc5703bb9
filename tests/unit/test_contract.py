"""The contract between ingestion files and dbt sources, checked against the real manifest."""

from __future__ import annotations

import subprocess

import pytest

from elt_platform.connections import ConfigurationError
from elt_platform.contract import load_and_check
from tests.conftest import BIN, REPO, copy_project, dbt_parse


@pytest.fixture
def project(tmp_path):
    return copy_project(tmp_path)


def problems(dbt_dir, ingestion_dir, manifest=None) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_and_check(ingestion_dir, dbt_dir, manifest or dbt_dir / "target" / "manifest.json")
    return str(caught.value)


def test_shipped_project_satisfies_the_contract(manifest_path):
    connections, manifest = load_and_check(REPO / "ingestion", REPO / "dbt_project", manifest_path)
    assert {s.source_name for s in manifest.sources.values()} == {c.spec.dbt_source for c in connections}


def test_dbt_source_that_no_connection_loads(project):
    dbt_dir, ingestion_dir = project
    (ingestion_dir / "support_desk.yml").unlink()
    message = problems(dbt_dir, ingestion_dir)
    assert (
        "dbt_project/models/staging/support/_support__sources.yml: sources.support: "
        "no ingestion connection loads dbt source 'support'"
    ) in message
    assert "add an ingestion/<connection>.yml with 'dbt_source: support'" in message


def test_connection_whose_dbt_source_does_not_exist(project):
    dbt_dir, ingestion_dir = project
    path = ingestion_dir / "support_desk.yml"
    path.write_text(path.read_text().replace("dbt_source: support", "dbt_source: helpdesk"))
    message = problems(dbt_dir, ingestion_dir)
    assert "ingestion/support_desk.yml: dbt_source: dbt source 'helpdesk' does not exist" in message
    assert "known sources: faker, support" in message


def test_source_table_that_no_stream_syncs(project):
    dbt_dir, ingestion_dir = project
    path = ingestion_dir / "shop_faker.yml"
    path.write_text(path.read_text().replace("  - purchases\n", ""))
    message = problems(dbt_dir, ingestion_dir)
    assert "sources.faker.tables.purchases: table 'purchases' is not synced by connection 'shop_faker'" in message


def test_raw_schema_mismatch(project):
    dbt_dir, ingestion_dir = project
    path = ingestion_dir / "shop_faker.yml"
    path.write_text(path.read_text().replace("raw_schema: raw_faker", "raw_schema: raw_shop"))
    message = problems(dbt_dir, ingestion_dir)
    assert "sources.faker.schema: schema 'raw_faker' differs from destination.raw_schema 'raw_shop'" in message


def test_missing_manifest_says_how_to_build_it(project):
    dbt_dir, ingestion_dir = project
    with pytest.raises(FileNotFoundError, match="run `make manifest`"):
        load_and_check(ingestion_dir, dbt_dir, dbt_dir / "target" / "nope.json")


def test_check_command_reports_problems_and_exit_code(project):
    dbt_dir, ingestion_dir = project
    ok = subprocess.run(
        [str(BIN / "elt"), "check", "--ingestion-dir", str(ingestion_dir), "--dbt-project-dir", str(dbt_dir)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ok  shop_faker.yml" in ok.stdout

    (dbt_dir / "models" / "staging" / "faker" / "_faker__sources.yml").write_text(
        (dbt_dir / "models" / "staging" / "faker" / "_faker__sources.yml")
        .read_text()
        .replace("  - name: faker\n", "  - name: fakr\n")
    )
    (dbt_dir / "models" / "staging" / "faker").joinpath("stg_faker__users.sql").write_text(
        "select * from {{ source('fakr', 'users') }}"
    )
    for model in ("products", "purchases"):
        (dbt_dir / "models" / "staging" / "faker" / f"stg_faker__{model}.sql").write_text(
            f"select * from {{{{ source('fakr', '{model}') }}}}"
        )
    dbt_parse(dbt_dir)
    bad = subprocess.run(
        [str(BIN / "elt"), "check", "--ingestion-dir", str(ingestion_dir), "--dbt-project-dir", str(dbt_dir)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert "ingestion/shop_faker.yml: dbt_source: dbt source 'faker' does not exist" in bad.stderr
    assert "sources.fakr: no ingestion connection loads dbt source 'fakr'" in bad.stderr
