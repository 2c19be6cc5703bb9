"""A BigQuery emulator on 127.0.0.1 (crucible, in its own virtualenv), and raw tables in it
shaped as Airbyte lands them on BigQuery. Shared by the BigQuery test and the production rehearsal."""

from __future__ import annotations

import csv
import json
import subprocess
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from devstack.airflow_stack import free_port
from tests.conftest import REPO

EMULATOR = REPO / ".venvs" / "bigquery-emulator" / "bin" / "crucible"
PROJECT = "local-proj"
USERS = 20


def start(log_dir: Path) -> tuple[subprocess.Popen, str, object]:
    """The emulator's process, URL and a BigQuery client on it, once it answers."""
    if not EMULATOR.exists():
        raise RuntimeError(f"{EMULATOR} missing: run the suite with `make test`, which installs the emulator")
    port = free_port()
    log = (log_dir / "emulator.log").open("w")
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
            return proc, url, client
        except Exception:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(1)


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
    loaded_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    structs = []
    for i, row in enumerate(rows):
        row = {
            **row,
            "_airbyte_raw_id": f"raw-{i}",
            "_airbyte_extracted_at": loaded_at,  # as a sync just now: the sources are fresh
            "_airbyte_meta": "{}",
        }
        fields = ", ".join(f"cast({_literal(row[c])} as {t}) as {c}" for c, t in columns.items())
        structs.append(f"struct({fields})")
    client.query(f"create or replace table {table} as select * from unnest([{', '.join(structs)}])").result()


def seed(client) -> int:
    """The raw tables of both connections; returns the number of tickets."""
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


class MetadataServer:
    """The GKE metadata server on 127.0.0.1, as workload identity serves it to a pod: it hands
    out the service account's access tokens. With ``GCE_METADATA_HOST`` and ``GCE_METADATA_IP``
    pointing here, dbt's ``oauth`` method (application default credentials, the production
    setting ``ELT_BIGQUERY_AUTH=adc``) authenticates through the real protocol."""

    EMAIL = f"shop-elt@{PROJECT}.iam.gserviceaccount.com"

    def __init__(self) -> None:
        self.tokens_issued = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.headers.get("Metadata-Flavor") != "Google":
                    return self._send(403, "text/plain", "Missing Metadata-Flavor:Google header.")
                path = self.path.split("?", 1)[0]
                account = "/computeMetadata/v1/instance/service-accounts/default/"
                if path == "/":
                    return self._send(200, "application/text", "computeMetadata/")
                if path == "/computeMetadata/v1/project/project-id":
                    return self._send(200, "application/text", PROJECT)
                if path == account:
                    body = {
                        "aliases": ["default"],
                        "email": server.EMAIL,
                        "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                    }
                    return self._send(200, "application/json", json.dumps(body))
                if path == account + "email":
                    return self._send(200, "application/text", server.EMAIL)
                if path == account + "token":
                    server.tokens_issued += 1
                    body = {
                        "access_token": f"ya29.rehearsal-{server.tokens_issued}",
                        "expires_in": 3599,
                        "token_type": "Bearer",
                    }
                    return self._send(200, "application/json", json.dumps(body))
                return self._send(404, "text/plain", "Not Found")

            def _send(self, code: int, content_type: str, text: str) -> None:
                data = text.encode()
                self.send_response(code)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def environment(self) -> dict[str, str]:
        return {"GCE_METADATA_HOST": f"127.0.0.1:{self.port}", "GCE_METADATA_IP": f"127.0.0.1:{self.port}"}

    def stop(self) -> None:
        self._server.shutdown()
