"""Real receivers on 127.0.0.1: an SMTP server (aiosmtpd) and an HTTP server for the Slack webhook."""

from __future__ import annotations

import json
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from devstack.airflow_stack import free_port


class SmtpReceiver:
    """Accepts every message and keeps it, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def bodies(self) -> list[str]:
        return [m.get_body(("html", "plain")).get_content() for m in self.messages]


class _JsonPostReceiver:
    """An HTTP server on 127.0.0.1 that keeps the JSON body of each POST to ``path``."""

    answer = b"ok"

    def __init__(self, path: str) -> None:
        self.payloads: list[dict] = []
        self.path = path
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != receiver.path:
                    self.send_response(404)
                    self.end_headers()
                    self.wfile.write(b"no_service")
                    return
                receiver.payloads.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(receiver.answer)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()


class SlackWebhookReceiver(_JsonPostReceiver):
    """Answers like Slack's incoming-webhook endpoint (200, body "ok") and keeps each payload."""

    def texts(self) -> list[str]:
        return [p["text"] for p in self.payloads]


class OpenLineageReceiver(_JsonPostReceiver):
    """Answers like an OpenLineage backend's HTTP endpoint (Marquez: ``POST /api/v1/lineage``)."""

    ENDPOINT = "api/v1/lineage"

    def __init__(self) -> None:
        super().__init__(f"/{self.ENDPOINT}")

    def transport(self) -> str:
        """The ``[openlineage] transport`` setting that sends Airflow's events here."""
        return json.dumps({"type": "http", "url": f"http://127.0.0.1:{self.port}", "endpoint": self.ENDPOINT})


def alert_connections(smtp: SmtpReceiver, slack: SlackWebhookReceiver) -> dict[str, str]:
    """The Airflow connections of both alert channels, pointed at these receivers."""
    return {
        "AIRFLOW_CONN_SLACK_ALERTS": json.dumps({"conn_type": "slackwebhook", "password": slack.url}),
        "AIRFLOW_CONN_SMTP_ALERTS": json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp.port,
                "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10, "retry_limit": 1},
            }
        ),
    }
