"""Ingestion files: valid ones load, and each kind of mistake names the file, the field and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from elt_platform.errors import ConfigurationError
from elt_platform.ingestion.connections import ConnectionSpec, load_connections, resolve_config
from tests.conftest import REPO

VALID = (REPO / "ingestion" / "shop_faker.yml").read_text()


@pytest.fixture
def ingestion(tmp_path: Path) -> Path:
    directory = tmp_path / "ingestion"
    directory.mkdir()
    (directory / "shop_faker.yml").write_text(VALID)
    return directory


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(ConfigurationError) as caught:
        load_connections(directory)
    return [str(p) for p in caught.value.problems]


def test_shipped_connections_load():
    loaded = load_connections(REPO / "ingestion")
    assert {c.spec.name: c.spec.dbt_source for c in loaded} == {"shop_faker": "faker", "support_desk": "support"}
    faker = next(c.spec for c in loaded if c.spec.name == "shop_faker")
    assert faker.task_id == "sync_shop_faker"
    assert faker.tables == {"users": "users", "products": "products", "purchases": "purchases"}


def test_invalid_yaml_names_file_and_position(ingestion):
    (ingestion / "shop_faker.yml").write_text("name: shop_faker\nstreams: [users\n")
    [problem] = problems_of(ingestion)
    assert problem.startswith("ingestion/shop_faker.yml: line 3, column 1: invalid YAML")
    assert "Fix:" in problem


def test_missing_and_unknown_fields(ingestion):
    text = VALID.replace("dbt_source: faker\n", "").replace("streams:", "stream_list:")
    (ingestion / "shop_faker.yml").write_text(text)
    problems = problems_of(ingestion)
    assert "ingestion/shop_faker.yml: dbt_source: required field is missing" in "\n".join(problems)
    assert "ingestion/shop_faker.yml: streams: required field is missing" in "\n".join(problems)
    assert any(p.startswith("ingestion/shop_faker.yml: stream_list: unknown field. Fix: remove it") for p in problems)


def test_wrong_value_names_nested_field(ingestion):
    (ingestion / "shop_faker.yml").write_text(VALID.replace("airbyte-source-faker==7.2.1", "airbyte-source-faker"))
    [problem] = problems_of(ingestion)
    assert problem.startswith("ingestion/shop_faker.yml: source.package: String should match pattern")


@pytest.mark.parametrize(
    ("config_line", "field"),
    [
        ("    api_key: sk_live_123", "source.config.api_key"),
        ("    credentials:\n      client_secret: hunter2", "source.config.credentials.client_secret"),
        ("    password: hunter2", "source.config.password"),
    ],
)
def test_inline_secret_is_refused(ingestion, config_line, field):
    (ingestion / "shop_faker.yml").write_text(VALID.replace("    seed: 42", f"    seed: 42\n{config_line}"))
    problems = problems_of(ingestion)
    assert any(p.startswith(f"ingestion/shop_faker.yml: {field}: secret written inline") for p in problems), problems
    assert all("hunter2" not in p and "sk_live" not in p for p in problems)


def test_secret_references_are_accepted_and_resolved_at_run_time(ingestion, tmp_path):
    text = VALID.replace(
        "    seed: 42",
        "    seed: 42\n    api_key: {from_env: SHOP_API_KEY}\n"
        "    password: {from_airflow_connection: shop_db, field: password}",
    )
    (ingestion / "shop_faker.yml").write_text(text)
    [conn] = load_connections(ingestion)

    class Conn:
        password = "from-airflow"

    secrets: list[str] = []
    resolved = resolve_config(
        conn.spec.source.config,
        conn.path,
        lookup_connection=lambda conn_id: Conn,
        environ={"SHOP_API_KEY": "k-1"},
        on_secret=secrets.append,
    )
    assert resolved["api_key"] == "k-1"
    assert resolved["password"] == "from-airflow"
    assert sorted(secrets) == ["from-airflow", "k-1"]  # both go to Airflow's log masker
    with pytest.raises(ConfigurationError, match=r"shop_faker.yml: source.config: environment variable SHOP_API_KEY"):
        resolve_config(conn.spec.source.config, conn.path, lookup_connection=lambda c: Conn, environ={})


def test_local_path_is_resolved_against_the_yaml_folder():
    [support] = [c for c in load_connections(REPO / "ingestion") if c.spec.name == "support_desk"]
    resolved = resolve_config(support.spec.source.config, support.path)
    assert resolved["url"] == str(REPO / "ingestion" / "data" / "support_tickets.csv")
    assert Path(resolved["url"]).is_file()


def test_duplicate_names_name_both_files(ingestion):
    shutil.copy(ingestion / "shop_faker.yml", ingestion / "shop_faker_copy.yml")
    problems = problems_of(ingestion)
    assert (
        "ingestion/shop_faker.yml: name: name 'shop_faker' is also used by ingestion/shop_faker_copy.yml"
        in "\n".join(problems)
    )
    assert any(p.startswith("ingestion/shop_faker_copy.yml: dbt_source:") for p in problems)


def test_every_file_is_checked_before_raising(ingestion):
    (ingestion / "broken.yml").write_text("name: [\n")
    (ingestion / "other.yml").write_text(VALID.replace("name: shop_faker", "name: Shop Faker"))
    problems = problems_of(ingestion)
    assert {p.split(":")[0] for p in problems} == {"ingestion/broken.yml", "ingestion/other.yml"}


def test_committed_json_schema_matches_the_model():
    committed = json.loads((REPO / "ingestion" / "connection.schema.json").read_text())
    assert committed == ConnectionSpec.model_json_schema(), (
        "regenerate it: .venv/bin/elt schema > ingestion/connection.schema.json"
    )


def test_a_key_overriding_one_merged_in_is_no_duplicate(ingestion):
    """YAML's merge key (<<) lets a mapping override what it merges: that is not a key written twice."""
    text = VALID.replace(
        "    seed: 42\n",
        "    seed: 42\n    defaults: &defaults {retries: 1, timeout: 5}\n    http: {<<: *defaults, retries: 3}\n",
    )
    (ingestion / "shop_faker.yml").write_text(text)
    [conn] = load_connections(ingestion)
    assert conn.spec.source.config["http"] == {"retries": 3, "timeout": 5}


def test_a_file_under_the_configured_data_root_is_accepted_and_resolved(tmp_path):
    directory = tmp_path / "ingestion"
    directory.mkdir()
    shared = tmp_path / "shared-exports"
    shared.mkdir()
    (shared / "tickets.csv").write_text("id\n1\n")
    text = (REPO / "ingestion" / "support_desk.yml").read_text()
    (directory / "support_desk.yml").write_text(
        text.replace("data/support_tickets.csv", "../shared-exports/tickets.csv")
    )

    with pytest.raises(ConfigurationError, match="leaves the ingestion folder"):
        load_connections(directory)  # without the root: refused
    [conn] = load_connections(directory, data_root=shared)
    resolved = resolve_config(conn.spec.source.config, conn.path, data_root=shared)
    assert resolved["url"] == str(shared / "tickets.csv")


def test_keys_that_name_kinds_of_auth_are_not_secrets(ingestion):
    """auth_type, auth_method or a DSN without a password are configuration, not credentials."""
    text = VALID.replace(
        "    seed: 42\n",
        "    seed: 42\n    credentials: {auth_type: OAuth, auth_method: client_credentials}\n"
        "    dsn: postgresql://app@db.internal/shop\n    signature_version: v4\n",
    )
    (ingestion / "shop_faker.yml").write_text(text)
    [conn] = load_connections(ingestion)
    assert conn.spec.source.config["credentials"]["auth_type"] == "OAuth"
