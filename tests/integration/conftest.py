"""What every integration test may share: the alert and lineage receivers, real SMTP and HTTP servers on 127.0.0.1.

The tests on the shared Airflow are in shared_airflow/ (its conftest starts it); the other
modules start an Airflow, a cluster or an emulator of their own.
"""

from __future__ import annotations

import pytest

from tests.integration.receivers import OpenLineageReceiver, SlackWebhookReceiver, SmtpReceiver

PLANTED_WEBHOOK_TOKEN = "/services/T0PLANTED/B0PLANTED/planted-webhook-token-4e1d"


@pytest.fixture(scope="session")
def receivers():
    smtp = SmtpReceiver().start()
    slack = SlackWebhookReceiver(PLANTED_WEBHOOK_TOKEN).start()
    yield smtp, slack
    smtp.stop()
    slack.stop()


@pytest.fixture(scope="session")
def lineage_receiver():
    receiver = OpenLineageReceiver().start()
    yield receiver
    receiver.stop()
