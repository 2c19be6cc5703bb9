"""Where an alert goes: Airflow's Slack-webhook and SMTP notifiers, each on where its connection exists."""

from __future__ import annotations

from typing import Any

from elt_platform.alerts.message import Alert
from elt_platform.settings import Settings


def _connection_exists(conn_id: str) -> bool:
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        Connection.get(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def send(
    alert: Alert, context: Any, settings: Settings, *, email: bool = True, to: list[str] | None = None
) -> list[str]:
    """Deliver ``alert`` on every configured channel; returns the channels used. ``to``: instead of
    ``ELT_ALERT_EMAIL_TO`` (a dashboard's owner)."""
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    alert = alert.redacted()
    used = []
    # notify() is called directly: the texts quote dbt errors, which may contain Jinja.
    if _connection_exists(settings.slack_conn_id):
        SlackWebhookNotifier(
            slack_webhook_conn_id=settings.slack_conn_id,
            text=alert.slack_text(),
            # An address quoted from data shows as text, not as a preview of the page it names.
            unfurl_links=False,
            unfurl_media=False,
        ).notify(context)
        used.append("slack")
    recipients = list(to or settings.alert_email_to)
    if email and recipients and _connection_exists(settings.smtp_conn_id):
        SmtpNotifier(
            smtp_conn_id=settings.smtp_conn_id,
            to=recipients,
            from_email=settings.alert_email_from,
            subject=alert.email_subject(),
            html_content=alert.email_html(),
        ).notify(context)
        used.append("email")
    return used
