"""A stand-in for the Airbyte public API on 127.0.0.1, playing scripted job histories.

It speaks the subset the provider and the contract check use, with Airbyte's JSON shapes:
``POST /v1/applications/token`` (client credentials), ``POST /v1/jobs``,
``GET /v1/jobs/{id}``, ``GET /v1/jobs?connectionId=&orderBy=&limit=``, ``DELETE /v1/jobs/{id}``,
``GET /v1/health`` and ``GET /v1/connections/{id}``. Like Airbyte, it runs one sync per
connection at a time: ``POST /v1/jobs`` while one is active answers 409.

Each ``POST /v1/jobs`` takes the next script queued for its connection id. A script is
the list of statuses the job reports, one per ``GET``; the last one repeats. A step may
also be ``"http-500"`` (the API fails once) or ``("slow", seconds)`` (the answer is late).
``slow_submit[connection_id] = seconds`` delays the answer to ``POST /v1/jobs`` after the job exists.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from devstack.airflow_stack import free_port

HAPPY = ["pending", "queued", "running", "succeeded"]
ACTIVE = {"pending", "queued", "running", "incomplete"}


@dataclass
class Job:
    job_id: int
    connection_id: str
    script: list
    polls: int = 0
    status: str = "pending"
    cancelled: bool = False

    def as_json(self) -> dict:
        body = {
            "jobId": self.job_id,
            "status": self.status,
            "jobType": "sync",
            "connectionId": self.connection_id,
            "startTime": "2026-11-26T00:00:00Z",
            "lastUpdatedAt": "2026-11-26T00:00:10Z",
        }
        if self.status == "succeeded":
            body |= {"rowsSynced": 1500, "bytesSynced": 245_760, "duration": "PT10S"}
        return body


@dataclass
class AirbyteApi:
    client_id: str = "elt-client"
    client_secret: str = "elt-secret"
    connections: dict[str, list[str]] = field(default_factory=dict)  # connection id -> enabled streams
    scripts: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))
    jobs: dict[int, Job] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    slow_submit: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.port = free_port()
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> AirbyteApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    def queue(self, connection_id: str, script: list) -> None:
        self.scripts[connection_id].append(list(script))

    def jobs_of(self, connection_id: str) -> list[Job]:
        return [j for j in self.jobs.values() if j.connection_id == connection_id]

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, body: dict | str) -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if token in api._tokens:
                    return True
                self._send(401, {"type": "error", "title": "unauthorized", "status": 401})
                return False

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def do_GET(self):
                api.requests.append(("GET", self.path))
                if self.path == "/v1/health":
                    return self._send(200, "")
                if not self._authorised():
                    return None
                if self.path.startswith("/v1/jobs/"):
                    return self._poll(int(self.path.rsplit("/", 1)[1]))
                if self.path.startswith("/v1/jobs?"):
                    # Like Airbyte: oldest first unless orderBy says otherwise, 20 at most by default.
                    query = {k: v[0] for k, v in parse_qs(self.path.split("?", 1)[1]).items()}
                    field, _, direction = query.get("orderBy", "createdAt|ASC").partition("|")
                    if field not in {"createdAt", "updatedAt"} or direction not in {"ASC", "DESC"}:
                        return self._send(400, {"type": "error", "title": "bad-request", "status": 400})
                    jobs = [j for j in api.jobs_of(query["connectionId"]) if query.get("jobType", "sync") == "sync"]
                    jobs.sort(key=lambda j: j.job_id, reverse=direction == "DESC")
                    return self._send(200, {"data": [j.as_json() for j in jobs[: int(query.get("limit", 20))]]})
                if self.path.startswith("/v1/connections/"):
                    connection_id = self.path.rsplit("/", 1)[1]
                    if connection_id not in api.connections:
                        return self._send(404, {"type": "error", "title": "not-found", "status": 404})
                    streams = [
                        {"name": s, "syncMode": "full_refresh_overwrite"} for s in api.connections[connection_id]
                    ]
                    return self._send(200, _connection(connection_id, streams))
                return self._send(404, {"type": "error", "title": "not-found", "status": 404})

            def _poll(self, job_id: int):
                with api._lock:
                    job = api.jobs.get(job_id)
                    if job is None:
                        return self._send(404, {"type": "error", "title": "not-found", "status": 404})
                    step = job.script[min(job.polls, len(job.script) - 1)]
                    job.polls += 1
                if step == "http-500":
                    return self._send(500, {"type": "error", "title": "internal-server-error", "status": 500})
                if isinstance(step, tuple) and step[0] == "slow":
                    time.sleep(step[1])
                    step = job.status
                if not job.cancelled:
                    job.status = step
                return self._send(200, job.as_json())

            def do_POST(self):
                body = self._body()
                api.requests.append(("POST", self.path))
                if self.path.endswith("/applications/token"):
                    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                    if (form.get("client_id"), form.get("client_secret")) != (api.client_id, api.client_secret):
                        return self._send(401, {"type": "error", "title": "invalid_client", "status": 401})
                    token = uuid.uuid4().hex
                    api._tokens.add(token)
                    return self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 180})
                if self.path != "/v1/jobs" or not self._authorised():
                    return None if self.path == "/v1/jobs" else self._send(404, {"status": 404})
                request = json.loads(body)
                connection_id = request["connectionId"]
                with api._lock:
                    running = [j for j in api.jobs_of(connection_id) if j.status in ACTIVE and not j.cancelled]
                    if not running:
                        script = api.scripts[connection_id].popleft() if api.scripts[connection_id] else HAPPY
                        job = Job(job_id=len(api.jobs) + 1, connection_id=connection_id, script=script)
                        api.jobs[job.job_id] = job
                if running:
                    return self._send(
                        409,
                        {
                            "message": f"A sync is already running for: {connection_id}",
                            "exceptionClassName": "io.airbyte.commons.server.errors.ValueConflictKnownException",
                        },
                    )
                time.sleep(api.slow_submit.get(connection_id, 0))
                return self._send(200, job.as_json())

            def do_DELETE(self):
                api.requests.append(("DELETE", self.path))
                if not self._authorised():
                    return None
                job = api.jobs.get(int(self.path.rsplit("/", 1)[1]))
                if job is None:
                    return self._send(404, {"status": 404})
                job.cancelled = True
                job.status = "cancelled"
                return self._send(200, job.as_json())

            def log_message(self, *args):
                pass

        return Handler


def _connection(connection_id: str, streams: list[dict]) -> dict:
    return {
        "connectionId": connection_id,
        "name": f"connection {connection_id}",
        "sourceId": str(uuid.uuid5(uuid.NAMESPACE_URL, connection_id + "/source")),
        "destinationId": str(uuid.uuid5(uuid.NAMESPACE_URL, connection_id + "/destination")),
        "workspaceId": "00000000-0000-0000-0000-000000000001",
        "status": "active",
        "schedule": {"scheduleType": "manual"},
        "configurations": {"streams": streams},
        "createdAt": 1764115200,
        "tags": [],
    }
