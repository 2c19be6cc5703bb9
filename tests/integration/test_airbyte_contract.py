"""`elt check-airbyte` against the loopback Airbyte API: every mismatch is reported, with the fix."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import BIN, REPO
from tests.integration.airbyte_api import AirbyteApi

FAKER = "4b7e1f52-3c0a-4f7e-9a51-6f2d8c1e0a11"
SUPPORT = "9d3a6c7e-58b1-4e2f-8c44-1a7b5e9f3d20"


def check(api: AirbyteApi) -> subprocess.CompletedProcess:
    conn = {"conn_type": "airbyte", "host": api.url, "login": api.client_id, "password": api.client_secret}
    return subprocess.run(
        [str(BIN / "elt"), "check-airbyte"],
        cwd=REPO,
        env={**os.environ, "AIRFLOW_CONN_AIRBYTE": json.dumps(conn)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def api():
    server = AirbyteApi().start()
    yield server
    server.stop()


def test_matching_connections_pass(api):
    api.connections.update({FAKER: ["users", "products", "purchases"], SUPPORT: ["tickets"]})
    result = check(api)
    assert result.returncode == 0, result.stderr
    assert f"ok  shop_faker.yml: Airbyte connection {FAKER} syncs it all" in result.stdout
    assert ("GET", f"/v1/connections/{SUPPORT}") in api.requests


def test_missing_connection_and_missing_stream_are_both_reported(api):
    api.connections.update({FAKER: ["users", "products"]})  # purchases disabled; support connection absent
    result = check(api)
    assert result.returncode == 1
    assert (
        "shop_faker.yml: production.airbyte_connection_id: dbt source faker.purchases reads stream 'purchases', "
        f"which Airbyte connection {FAKER} does not sync (enabled: products, users). "
        "Fix: enable stream 'purchases' in that Airbyte connection"
    ) in result.stderr
    assert f"support_desk.yml: production.airbyte_connection_id: Airbyte connection {SUPPORT} does not exist" in (
        result.stderr
    )
