"""Every bad input a stranger may hand the platform, and the error it gets: the file or variable, the
field, what is wrong and the fix, never a traceback. Ingestion files, settings, dbt manifests and
exposures' ``meta``, each through the function the DAG import and ``elt check`` call."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from elt_platform.dbt_manifest import load_manifest
from elt_platform.errors import ConfigurationError, ManifestError
from elt_platform.ingestion.connections import load_connections, runtime_problems
from elt_platform.settings import Settings, SettingsError
from tests.conftest import REPO

FAKER = (REPO / "ingestion" / "shop_faker.yml").read_text()
SUPPORT = (REPO / "ingestion" / "support_desk.yml").read_text()
MANIFEST = json.loads((REPO / "dbt_project" / "target" / "manifest.json").read_text())


def _config(extra: str) -> str:
    """The Faker file with ``extra`` (YAML lines) added to its connector config."""
    return FAKER.replace("    seed: 42\n", "    seed: 42\n" + extra)


def _stream(item: str) -> str:
    """The Faker file with its second stream (products) written as ``item``."""
    return FAKER.replace("  - products\n", f"  - {item}\n")


def ingestion_error(files: dict[str, str | bytes], setup: Callable[[Path], None] | None = None):
    def run(tmp_path: Path) -> str:
        directory = tmp_path / "ingestion"
        directory.mkdir()
        for name, text in files.items():
            (directory / name).write_bytes(text if isinstance(text, bytes) else text.encode())
        if setup:
            setup(directory)
        with pytest.raises(ConfigurationError) as raised:
            load_connections(directory)
        return str(raised.value)

    return run


def runtime_error(text: str, environ: dict[str, str]):
    def run(tmp_path: Path) -> str:
        directory = tmp_path / "ingestion"
        directory.mkdir()
        (directory / "support_desk.yml").write_text(text)
        [connection] = load_connections(directory)
        return str(ConfigurationError(runtime_problems(connection, environ, None)))

    return run


def settings_error(environ: dict[str, str]):
    def run(tmp_path: Path) -> str:
        with pytest.raises(SettingsError) as raised:
            Settings.from_env(environ)
        return str(raised.value)

    return run


def manifest_error(content: bytes | object):
    def run(tmp_path: Path) -> str:
        path = tmp_path / "manifest.json"
        path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
        with pytest.raises(ManifestError) as raised:
            load_manifest(path)
        return str(raised.value)

    return run


def exposure_error(**meta: str):
    def run(tmp_path: Path) -> str:
        from elt_platform.dag_factory import promises_dag

        manifest = load_manifest(REPO / "dbt_project" / "target" / "manifest.json")
        [(uid, exposure), *_] = manifest.exposures.items()
        broken = dataclasses.replace(manifest, exposures={uid: dataclasses.replace(exposure, **meta)})
        with pytest.raises(ConfigurationError) as raised:
            promises_dag("shop_elt", broken, {}, {}, datetime(2026, 1, 1), Settings())
        return str(raised.value)

    return run


def _link_outside(directory: Path) -> None:
    (directory / "data").mkdir()
    (directory / "data" / "tickets.csv").symlink_to("/etc/passwd")


def _without_nodes():
    return {k: v for k, v in MANIFEST.items() if k != "nodes"}


def _node_without_name():
    uid, node = next((u, n) for u, n in MANIFEST["nodes"].items() if n["resource_type"] == "model")
    return {**MANIFEST, "nodes": {uid: {k: v for k, v in node.items() if k != "name"}}}


PEM_HEADER = "-----BEGIN RSA " + "PRIVATE KEY-----"  # assembled: no key-shaped line in the repository
SUPPORT_URL = "    url:\n      local_path: data/support_tickets.csv\n"

# id -> (what produces the error, fragments the message must hold: where, which field, what, "Fix:" and the fix)
CASES: dict[str, tuple[Callable[[Path], str], list[str]]] = {
    # --- ingestion files: paths ---
    "local_path climbs out": (
        ingestion_error({"support_desk.yml": SUPPORT.replace("data/support_tickets.csv", "../../../../etc/passwd")}),
        ["support_desk.yml", "source.config.url", "leaves the ingestion folder", "Fix: put the file in"],
    ),
    "local_path absolute": (
        ingestion_error({"support_desk.yml": SUPPORT.replace("data/support_tickets.csv", "/etc/shadow")}),
        ["support_desk.yml", "source.config.url", "'/etc/shadow' leaves", "ELT_INGESTION_DATA_ROOT"],
    ),
    "local_path through a symlink": (
        ingestion_error({"support_desk.yml": SUPPORT.replace("support_tickets.csv", "tickets.csv")}, _link_outside),
        ["support_desk.yml", "source.config.url", "leaves the ingestion folder", "Fix:"],
    ),
    "local_path empty": (
        ingestion_error({"support_desk.yml": SUPPORT.replace("data/support_tickets.csv", "''")}),
        ["support_desk.yml", "source.config.url", "malformed reference", "Fix: reference it"],
    ),
    "local_path not a file (elt check)": (
        runtime_error(SUPPORT.replace("support_tickets.csv", "missing.csv"), {}),
        ["support_desk.yml", "source.config.url", "'data/missing.csv' is not a file", "Fix: put the file there"],
    ),
    "from_env not set (elt check)": (
        runtime_error(SUPPORT.replace(SUPPORT_URL, "    url: {from_env: SUPPORT_URL}\n"), {}),
        ["support_desk.yml", "source.config.url", "SUPPORT_URL is not set", "Fix: export SUPPORT_URL"],
    ),
    # --- ingestion files: the YAML itself ---
    "duplicate key": (
        ingestion_error({"shop_faker.yml": FAKER + "name: shop_other\n"}),
        ["shop_faker.yml", f"line {FAKER.count(chr(10)) + 1}", "key 'name' written twice (first on line 2)", "Fix:"],
    ),
    "duplicate key on one line": (
        ingestion_error({"shop_faker.yml": FAKER.replace("seed: 42", "seed: 42\n    retry: {count: 1, count: 2}")}),
        ["shop_faker.yml", "line 11", "key 'count' written twice (first on line 11)", "Fix:"],
    ),
    "not UTF-8": (
        ingestion_error({"shop_faker.yml": FAKER.encode().replace(b"Faker demo", b"Faker d\xe9mo")}),
        ["shop_faker.yml", "line 3", "byte 0xe9 is not UTF-8", "Fix: save the file as UTF-8"],
    ),
    "nested too deeply": (
        ingestion_error({"shop_faker.yml": _config("    deep: " + "[" * 2000 + "]" * 2000 + "\n")}),
        ["shop_faker.yml", "nested", "Fix: keep it under 64 levels"],
    ),
    "nested past the bound": (
        ingestion_error({"shop_faker.yml": _config("    deep: " + "[" * 100 + "]" * 100 + "\n")}),
        ["shop_faker.yml", "nested 10", "levels deep", "Fix: keep it under 64 levels"],
    ),
    "alias bomb": (
        ingestion_error(
            {
                "shop_faker.yml": "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdef", "bcdefg", strict=True))
            }
        ),
        ["shop_faker.yml", "aliases (*name) expand to", "more than 100,000", "Fix: write the values out"],
    ),
    "file too large": (
        ingestion_error({"shop_faker.yml": FAKER + "#" * 1_000_001 + "\n"}),
        ["shop_faker.yml", "more than 1,000,000", "Fix: split it"],
    ),
    "invalid YAML": (
        ingestion_error({"shop_faker.yml": "name: shop_faker\nstreams: [users\n"}),
        ["shop_faker.yml", "line 3, column 1", "invalid YAML", "Fix: fix the YAML"],
    ),
    "a list, not a mapping": (
        ingestion_error({"shop_faker.yml": "- name: shop_faker\n"}),
        ["shop_faker.yml", "expected a mapping of fields", "Fix: start the file with 'name: <connection>'"],
    ),
    "empty file": (
        ingestion_error({"shop_faker.yml": ""}),
        ["shop_faker.yml", "expected a mapping of fields", "Fix:"],
    ),
    # --- ingestion files: secrets ---
    "secret under a secret word": (
        ingestion_error({"shop_faker.yml": _config("    api_key: abcdef123456\n")}),
        ["shop_faker.yml", "source.config.api_key", "secret written inline", "Fix: reference it instead"],
    ),
    "authorization header": (
        ingestion_error({"shop_faker.yml": _config("    authorization: 'Bearer abcdef0123456789'\n")}),
        ["shop_faker.yml", "source.config.authorization", "secret written inline", "{from_env: ENV_VAR_NAME}"],
    ),
    "bearer token under a plain key": (
        ingestion_error({"shop_faker.yml": _config("    header_value: 'Bearer abcdef0123456789'\n")}),
        ["shop_faker.yml", "source.config.header_value", "looks like an authorization header", "Fix:"],
    ),
    "DSN with a password": (
        ingestion_error({"shop_faker.yml": _config("    url: postgresql://app:hunter22@db.internal/shop\n")}),
        ["shop_faker.yml", "source.config.url", "looks like a URL or DSN with a password", "Fix:"],
    ),
    "private key": (
        ingestion_error({"shop_faker.yml": _config(f"    pem: '{PEM_HEADER}\\nMIIE'\n")}),
        ["shop_faker.yml", "source.config.pem", "looks like a private key", "Fix:"],
    ),
    "JSON Web Token": (
        ingestion_error({"shop_faker.yml": _config("    jwt_value: eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.sig\n")}),
        ["shop_faker.yml", "source.config.jwt_value", "looks like a JSON Web Token", "Fix:"],
    ),
    "cloud access key in a list": (
        ingestion_error({"shop_faker.yml": _config("    keys: [AKIAABCDEFGHIJKLMNOP]\n")}),
        ["shop_faker.yml", "source.config.keys.0", "looks like a cloud or SaaS access key", "Fix:"],
    ),
    "malformed reference": (
        ingestion_error({"shop_faker.yml": _config("    api_key: {from_env: 1BAD}\n")}),
        ["shop_faker.yml", "source.config.api_key", "malformed reference", "Fix: reference it instead"],
    ),
    # --- ingestion files: fields ---
    "missing field": (
        ingestion_error({"shop_faker.yml": FAKER.replace("dbt_source: faker\n", "")}),
        ["shop_faker.yml", "dbt_source", "required field is missing", "Fix: add 'dbt_source'"],
    ),
    "unknown field": (
        ingestion_error({"shop_faker.yml": FAKER + "schedule: daily\n"}),
        ["shop_faker.yml", "schedule", "unknown field", "Fix: remove it or fix its spelling"],
    ),
    "stream twice": (
        ingestion_error({"shop_faker.yml": FAKER.replace("  - products\n", "  - users\n")}),
        ["shop_faker.yml", "streams", "stream listed twice", "Fix:"],
    ),
    "sync mode misspelt": (
        ingestion_error({"shop_faker.yml": _stream("{name: products, sync_mode: full}")}),
        ["shop_faker.yml", "streams.1.sync_mode", "'incremental' or 'full_refresh'", "Fix: set 'streams.1.sync_mode'"],
    ),
    "stream neither a name nor a mapping": (
        ingestion_error({"shop_faker.yml": _stream("7")}),
        ["shop_faker.yml", "streams.1", "neither a stream name nor a mapping", "sync_mode: full_refresh", "Fix:"],
    ),
    "stream mapping with an unknown key": (
        ingestion_error({"shop_faker.yml": _stream("{name: products, mode: full_refresh}")}),
        ["shop_faker.yml", "streams.1.mode", "unknown field", "Fix: remove it or fix its spelling"],
    ),
    "stream twice, once as a mapping": (
        ingestion_error({"shop_faker.yml": _stream("{name: users, sync_mode: full_refresh}")}),
        ["shop_faker.yml", "streams", "stream listed twice: ['users']", "Fix:"],
    ),
    "connector name": (
        ingestion_error({"shop_faker.yml": FAKER.replace("connector: source-faker", "connector: faker")}),
        ["shop_faker.yml", "source.connector", "pattern", "Fix: set 'source.connector'"],
    ),
    "unpinned package": (
        ingestion_error({"shop_faker.yml": FAKER.replace("==7.2.1", ">=7")}),
        ["shop_faker.yml", "source.package", "pattern", "Fix: set 'source.package'"],
    ),
    "connection id not a UUID": (
        ingestion_error({"shop_faker.yml": FAKER.replace("4b7e1f52-3c0a-4f7e-9a51-6f2d8c1e0a11", "conn-1")}),
        ["shop_faker.yml", "production.airbyte_connection_id", "UUID", "Fix:"],
    ),
    "too many retries": (
        ingestion_error({"shop_faker.yml": FAKER + "retries:\n  retries: 50\n"}),
        ["shop_faker.yml", "retries.retries", "less than or equal to 10", "Fix:"],
    ),
    "one name, two files": (
        ingestion_error({"shop_faker.yml": FAKER, "copy.yml": FAKER.replace("dbt_source: faker", "dbt_source: f2")}),
        ["copy.yml", "name", "name 'shop_faker' is also used by", "Fix: give each connection its own name"],
    ),
    "no connection files": (
        ingestion_error({"README.md": "nothing here"}),
        ["ingestion", "no connection files found", "Fix: add one <name>.yml per connection"],
    ),
    # --- settings ---
    "poll seconds nan": (
        settings_error({"ELT_MODEL_POLL_SECONDS": "nan"}),
        ["ELT_MODEL_POLL_SECONDS='nan'", "not a finite number", "Fix: set it to e.g. 0.5"],
    ),
    "flag typo": (
        settings_error({"ELT_ALERT_ON_RETRY": "ture"}),
        ["ELT_ALERT_ON_RETRY='ture'", "neither true nor false", "Fix: set it to true or false"],
    ),
    "timeout inf": (
        settings_error({"ELT_SYNC_TIMEOUT_SECONDS": "inf"}),
        ["ELT_SYNC_TIMEOUT_SECONDS='inf'", "not a finite number", "Fix: set it to e.g. 21600.0"],
    ),
    "timeout overflows": (
        settings_error({"ELT_SYNC_TIMEOUT_SECONDS": "1e300"}),
        ["ELT_SYNC_TIMEOUT_SECONDS='1e300'", "too large", "Fix:"],
    ),
    "timeout above a month": (
        settings_error({"ELT_SYNC_TIMEOUT_SECONDS": "99999999"}),
        ["ELT_SYNC_TIMEOUT_SECONDS=99999999.0", "above 2592000", "Fix:"],
    ),
    "short badge secret": (
        settings_error({"ELT_BADGE_SECRET": "hunter2"}),
        ["ELT_BADGE_SECRET", "7 bytes", "at least 32", "Fix: set it to e.g. the output of `openssl rand -hex 32`"],
    ),
    "environment name": (
        settings_error({"ELT_ENVIRONMENT": "Prod-1"}),
        ["ELT_ENVIRONMENT='prod-1'", "not a valid environment name", "Fix: lower-case letters"],
    ),
    "email address": (
        settings_error({"ELT_ALERT_EMAIL_TO": "oncall@example.com, data team"}),
        ["ELT_ALERT_EMAIL_TO", "'data team' is not an email address", "Fix:"],
    ),
    "connection id with a space": (
        settings_error({"ELT_WAREHOUSE_CONN_ID": "my warehouse"}),
        ["ELT_WAREHOUSE_CONN_ID='my warehouse'", "not a valid id", "Fix:"],
    ),
    "retries above ten": (
        settings_error({"ELT_TASK_RETRIES": "99"}),
        ["ELT_TASK_RETRIES=99", "above 10", "Fix: set it to e.g. 2"],
    ),
    "threads negative": (
        settings_error({"ELT_DBT_THREADS": "-1"}),
        ["ELT_DBT_THREADS=-1", "below 1", "Fix: set it to e.g. 4"],
    ),
    "endpoint not http": (
        settings_error({"ELT_BIGQUERY_API_ENDPOINT": "ftp://bq"}),
        ["ELT_BIGQUERY_API_ENDPOINT='ftp://bq'", "not an http(s) URL", "Fix:"],
    ),
    "relative data root": (
        settings_error({"ELT_INGESTION_DATA_ROOT": "data"}),
        ["ELT_INGESTION_DATA_ROOT='data'", "not an absolute path", "Fix:"],
    ),
    "unknown warehouse": (
        settings_error({"ELT_WAREHOUSE_TYPE": "snowflake"}),
        ["ELT_WAREHOUSE_TYPE='snowflake'", "not one of duckdb, bigquery", "Fix: use one of them"],
    ),
    # --- dbt manifests ---
    "manifest is a list": (
        manifest_error([1, 2]),
        ["manifest.json", "a JSON list, not a dbt manifest", "Fix: point the DAG at target/manifest.json"],
    ),
    "manifest without nodes": (
        manifest_error(_without_nodes()),
        ["manifest.json", "has no 'nodes' object", "Fix: rebuild it with `dbt parse`"],
    ),
    "manifest node without a name": (
        manifest_error(_node_without_name()),
        ["manifest.json", "not shaped like a dbt manifest", "'name'", "Fix: rebuild it"],
    ),
    "manifest not UTF-8": (
        manifest_error(b'{"metadata": "\xff"}'),
        ["manifest.json", "not valid JSON", "Fix: rebuild it with `dbt parse`"],
    ),
    "manifest of another dbt": (
        manifest_error({**MANIFEST, "metadata": {"dbt_schema_version": "v5", "dbt_version": "1.0.0"}}),
        ["manifest.json", "schema v5 (dbt 1.0.0)", "Fix: rebuild it with the dbt of this platform's environment"],
    ),
    # --- exposures' meta ---
    "fresh_by not a time": (
        exposure_error(fresh_by="7am"),
        ["exposures.yml", "meta.fresh_by", 'Fix: e.g. meta: {fresh_by: "07:00"'],
    ),
    "fresh_by_timezone unknown": (
        exposure_error(fresh_by="07:00", fresh_by_timezone="Mars/Olympus"),
        ["exposures.yml", "meta.fresh_by_timezone", "Fix:"],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_each_bad_input_names_where_what_and_the_fix(case, tmp_path):
    produce, fragments = CASES[case]
    message = produce(tmp_path)
    missing = [f for f in fragments if f not in message]
    assert not missing, f"{case}: {missing} not in:\n{message}"
    assert "Traceback" not in message


def test_a_problem_elsewhere_breaks_nothing_else(tmp_path):
    """One bad file fails the load with its own problems only: the good file beside it is not blamed."""
    produce = ingestion_error({"shop_faker.yml": FAKER + "name: again\n", "support_desk.yml": SUPPORT})
    message = produce(tmp_path)
    assert "shop_faker.yml" in message and "support_desk.yml" not in message
