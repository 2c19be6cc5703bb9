"""The dbt project builds on BigQuery: `dbt build` against a BigQuery emulator on 127.0.0.1.

The profile is the production one (Cosmos's GoogleCloudOauthProfileMapping over an Airflow
connection, dataset per environment); only the endpoint and token point at the emulator.
Raw tables are created with SQL, shaped as Airbyte lands them on BigQuery.
"""

from __future__ import annotations

import csv
import json
import subprocess
import time
from dataclasses import replace

import pytest

from elt_platform.settings import Settings
from elt_platform.warehouse import profile_mapping
from tests.conftest import BIN, REPO, copy_project
from tests.integration.stack import free_port

pytestmark = pytest.mark.integration

EMULATOR = REPO / ".venvs" / "bigquery-emulator" / "bin" / "crucible"
PROJECT = "local-proj"
USERS = 20


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    if not EMULATOR.exists():
        pytest.fail(f"{EMULATOR} missing: run the suite with `make test`, which installs the emulator")
    port = free_port()
    log = (tmp_path_factory.mktemp("bigquery") / "emulator.log").open("w")
    proc = subprocess.Popen(
        [str(EMULATOR), "serve", "--dialect", "bigquery", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    client = _client(url)
    deadline = time.monotonic() + 60
    while True:
        try:
            list(client.list_datasets())
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    yield url, client
    proc.terminate()
    proc.wait(timeout=30)


def _client(url: str):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": url})


def _literal(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _create(client, table: str, rows: list[dict], types: dict[str, str]) -> None:
    airbyte = {"_airbyte_raw_id": "STRING", "_airbyte_extracted_at": "TIMESTAMP", "_airbyte_meta": "STRING"}
    columns = {**types, **airbyte}
    structs = []
    for i, row in enumerate(rows):
        row = {
            **row,
            "_airbyte_raw_id": f"raw-{i}",
            "_airbyte_extracted_at": "2026-11-26 00:00:00",
            "_airbyte_meta": "{}",
        }
        fields = ", ".join(f"cast({_literal(row[c])} as {t}) as {c}" for c, t in columns.items())
        structs.append(f"struct({fields})")
    client.query(f"create or replace table {table} as select * from unnest([{', '.join(structs)}])").result()


def _seed(client) -> None:
    for dataset in ("raw_faker", "raw_support"):
        client.create_dataset(dataset, exists_ok=True)
    ts = "2025-01-01 00:00:00"
    users = [
        {
            "id": i,
            "created_at": ts,
            "updated_at": ts,
            "name": f"user{i}",
            "title": "Dr.",
            "age": 30 + i,
            "email": f"user{i}@example.com",
            "telephone": "555",
            "gender": "Other",
            "language": "English",
            "academic_degree": "Master",
            "nationality": "Irish",
            "occupation": "Analyst",
            "height": "1.70",
            "blood_type": "A+",
            "weight": 70,
            "address": json.dumps({"city": "Cork", "state": "Munster", "country_code": "IE"}),
        }
        for i in range(1, USERS + 1)
    ]
    _create(
        client,
        "raw_faker.users",
        users,
        {
            "id": "INT64",
            "created_at": "TIMESTAMP",
            "updated_at": "TIMESTAMP",
            "name": "STRING",
            "title": "STRING",
            "age": "INT64",
            "email": "STRING",
            "telephone": "STRING",
            "gender": "STRING",
            "language": "STRING",
            "academic_degree": "STRING",
            "nationality": "STRING",
            "occupation": "STRING",
            "height": "STRING",
            "blood_type": "STRING",
            "weight": "INT64",
            "address": "STRING",
        },
    )
    products = [
        {
            "id": i,
            "make": "Mazda",
            "model": f"M{i}",
            "year": 2020,
            "price": 1000 * i,
            "created_at": ts,
            "updated_at": ts,
        }
        for i in range(1, 11)
    ]
    _create(
        client,
        "raw_faker.products",
        products,
        {
            "id": "INT64",
            "make": "STRING",
            "model": "STRING",
            "year": "INT64",
            "price": "FLOAT64",
            "created_at": "TIMESTAMP",
            "updated_at": "TIMESTAMP",
        },
    )
    purchases = [
        {
            "id": i,
            "user_id": 1 + i % USERS,
            "product_id": 1 + i % 10,
            "created_at": ts,
            "updated_at": ts,
            "added_to_cart_at": ts,
            "purchased_at": None if i % 5 == 0 else ts,
            "returned_at": ts if i % 7 == 0 else None,
        }
        for i in range(1, 31)
    ]
    _create(
        client,
        "raw_faker.purchases",
        purchases,
        {
            "id": "INT64",
            "user_id": "INT64",
            "product_id": "INT64",
            "created_at": "TIMESTAMP",
            "updated_at": "TIMESTAMP",
            "added_to_cart_at": "TIMESTAMP",
            "purchased_at": "TIMESTAMP",
            "returned_at": "TIMESTAMP",
        },
    )
    with (REPO / "ingestion" / "data" / "support_tickets.csv").open() as fh:
        tickets = [r for r in csv.DictReader(fh) if int(r["user_id"]) <= USERS]
    _create(client, "raw_support.tickets", tickets, dict.fromkeys(tickets[0], "STRING"))
    return len(tickets)


def test_dbt_build_runs_green_on_bigquery(emulator, tmp_path, monkeypatch):
    url, client = emulator
    tickets = _seed(client)
    monkeypatch.setenv(
        "AIRFLOW_CONN_BIGQUERY_CI", json.dumps({"conn_type": "google_cloud_platform", "extra": {"project": PROJECT}})
    )
    settings = replace(Settings(), warehouse_type="bigquery", warehouse_conn_id="bigquery_ci", environment="ci")
    mapping = profile_mapping(settings)
    assert mapping.profile == {
        "type": "bigquery",
        "method": "oauth",
        "project": PROJECT,
        "dataset": "analytics_ci",
        "threads": 4,
    }
    mapping.profile_args.update({"method": "oauth-secrets", "token": "emulator", "api_endpoint": url, "threads": 1})

    from cosmos.config import ProfileConfig

    dbt_dir, _ = copy_project(tmp_path)
    config = ProfileConfig(profile_name="shop_analytics", target_name="ci", profile_mapping=mapping)
    with config.ensure_profile() as (profiles_yml, env_vars):
        build = subprocess.run(
            [
                str(BIN / "dbt"),
                "build",
                "--profiles-dir",
                str(profiles_yml.parent),
                "--target",
                "ci",
                "--no-partial-parse",
            ],
            cwd=dbt_dir,
            env={**__import__("os").environ, **env_vars},
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert build.returncode == 0, build.stdout[-6000:]
    assert "Completed successfully" in build.stdout

    def count(table: str) -> int:
        return next(iter(client.query(f"select count(*) as n from analytics_ci.{table}").result()))[0]

    assert count("customers") == USERS
    assert count("products") == 10
    assert count("tickets") == tickets
    assert count("orders") == 24  # 30 purchases, 6 never paid for
