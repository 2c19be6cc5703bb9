"""Failure, retry and warning alerts through Airflow's own Slack-webhook and SMTP notifiers.

A channel is on wherever its Airflow connection exists (``ELT_SLACK_CONN_ID``,
``ELT_SMTP_CONN_ID``) and silently off where it does not. Everything here runs in the
worker when a task fails, retries or warns; nothing runs at DAG-parse time.

- Final failure of a task: one message per channel (``on_failure_callback`` fires once,
  after the last try; tasks held back by it are ``upstream_failed`` and fire nothing).
- Retry: a short Slack message, only when ``ELT_ALERT_ON_RETRY`` is on.
- dbt warnings (``warn`` severity tests, freshness ``warn_after``): one Slack message.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elt_platform.dbt_manifest import Manifest, load_manifest
from elt_platform.settings import Settings
from elt_platform.transform.dbt_errors import ANSI, DeterministicDbtError

ERROR_XCOM_KEY = "error"
EXCERPT_LINES = 15
EXCERPT_CHARS = 1500


@dataclass(frozen=True)
class Alert:
    level: str  # "failure", "retry", "warning" or "promise" (a dashboard not fresh by its fresh_by)
    headline: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    excerpt: str = ""
    log_url: str = ""

    def slack_text(self) -> str:
        icons = {"failure": ":red_circle:", "retry": ":large_yellow_circle:", "warning": ":warning:"}
        icon = icons.get(self.level, ":hourglass:")  # "promise": a dashboard not fresh when promised
        lines = [f"{icon} *{self.headline}*"]
        lines += [f"*{name}:* {value}" for name, value in self.facts]
        if self.excerpt:
            lines.append(f"```{self.excerpt}```")
        if self.log_url:
            lines.append(f"<{self.log_url}|{self.link_text}>")
        return "\n".join(lines)

    @property
    def link_text(self) -> str:
        return "Open the dashboard's health page" if self.level == "promise" else "Open the log of this try"

    def email_subject(self) -> str:
        return f"[{self.level.upper()}] {self.headline}"

    def email_html(self) -> str:
        rows = "".join(
            f"<tr><th align='left'>{html.escape(n)}</th><td>{html.escape(v)}</td></tr>" for n, v in self.facts
        )
        parts = [f"<h3>{html.escape(self.headline)}</h3>", f"<table>{rows}</table>"]
        if self.excerpt:
            parts.append(f"<pre>{html.escape(self.excerpt)}</pre>")
        if self.log_url:
            parts.append(f"<p><a href='{html.escape(self.log_url)}'>{self.link_text}</a></p>")
        return "\n".join(parts)

    def redacted(self) -> Alert:
        """The same alert with every secret the worker knows of replaced by ***."""
        from elt_platform.dependency_internals import redact

        return Alert(
            level=self.level,
            headline=redact(self.headline),
            facts=[(n, redact(v)) for n, v in self.facts],
            excerpt=redact(self.excerpt),
            log_url=self.log_url,
        )


def error_excerpt(exception: BaseException | str | None) -> str:
    """The first lines of dbt's (or the connector's) own error message, without colour codes."""
    if exception is None:
        return ""
    text = ANSI.sub("", str(exception)).strip()
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    excerpt = "\n".join(lines[:EXCERPT_LINES])
    return excerpt[:EXCERPT_CHARS] + ("…" if len(excerpt) > EXCERPT_CHARS else "")


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
        SlackWebhookNotifier(slack_webhook_conn_id=settings.slack_conn_id, text=alert.slack_text()).notify(context)
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


@dataclass
class PipelineAlerts:
    """The DAG's callbacks. ``task_nodes`` maps each dbt task id to its dbt node, filled by the factory."""

    manifest_path: Path
    connection_files: dict[str, Path] = field(repr=False)  # sync task id -> ingestion file
    task_nodes: dict[str, str] = field(default_factory=dict, repr=False)
    settings: Settings = field(default_factory=Settings.from_env, repr=False)

    def on_failure(self, context: Any) -> None:
        alert = self.describe(context, "failure")
        # The error, for the dashboards' health pages ("why"), where dbt's own result says nothing (a sync).
        context["ti"].xcom_push(key=ERROR_XCOM_KEY, value=alert.redacted().excerpt)
        send(alert, context, self.settings)

    def on_retry(self, context: Any) -> None:
        if self.settings.alert_on_retry:
            send(self.describe(context, "retry"), context, self.settings, email=False)

    def on_warning(self, context: Any) -> None:
        ti = context["ti"]
        results = context.get("test_results") or []
        names = context.get("test_names") or []
        if not names:  # Cosmos calls this after every source freshness check, warnings or not.
            return
        facts = [("DAG", ti.dag_id), ("Run", ti.run_id), ("Task", ti.task_id)]
        facts += [(name, error_excerpt(result) or "warn") for name, result in zip(names, results, strict=False)]
        alert = Alert("warning", f"dbt warning in {ti.task_id} ({len(names)} issue(s))", facts, "", ti.log_url)
        send(alert, context, self.settings, email=False)

    def describe(self, context: Any, level: str) -> Alert:
        ti = context["ti"]
        task = context["task"]
        manifest = load_manifest(self.manifest_path)
        retries = task.retries or 0
        retries_left = max(retries - (ti.try_number - 1), 0) if level == "retry" else 0
        facts = [("DAG", ti.dag_id), ("Run", ti.run_id), ("Task", ti.task_id)]
        if ti.task_id in self.connection_files:
            headline, subject_facts, roots = self._sync(ti.task_id, context, manifest)
        else:
            headline, subject_facts, roots = self._dbt(ti.task_id, manifest)
        held_back = sorted(
            manifest.models[uid].display_name for uid in manifest.downstream_of(roots) if uid not in roots
        )
        stale = sorted(e.label for e in manifest.exposures_reading(roots | manifest.downstream_of(roots)))
        facts += subject_facts
        facts += [
            ("Try", f"{ti.try_number} of {retries + 1} ({self._retries_note(context, retries_left)})"),
            ("Held back", ", ".join(held_back) or "none"),
            ("Stale dashboards", ", ".join(stale) or "none"),
        ]
        verb = "is retrying" if level == "retry" else "failed"
        return Alert(level, f"{headline} {verb}", facts, error_excerpt(context.get("exception")), ti.log_url)

    @staticmethod
    def _retries_note(context: Any, retries_left: int) -> str:
        if isinstance(context.get("exception"), DeterministicDbtError):
            return "not retried: a retry cannot fix this error"
        return f"{retries_left} retries left"

    def _sync(self, task_id: str, context: Any, manifest: Manifest) -> tuple[str, list[tuple[str, str]], set[str]]:
        from elt_platform.ingestion.connections import load_connection_file

        path = self.connection_files[task_id]
        loaded, _ = load_connection_file(path)
        name = loaded.spec.name if loaded else task_id.removeprefix("sync_")
        title = loaded.spec.title if loaded else name
        dbt_source = loaded.spec.dbt_source if loaded else ""
        sources = {s.unique_id for s in manifest.source_tables(dbt_source)}
        job_id = context["ti"].xcom_pull(task_ids=task_id, key="airbyte_job_id")
        facts = [
            ("Connection", f"{title} ({path.name})"),
            ("Backend job", str(job_id) if job_id else "none (local backend)"),
            ("dbt sources held back", ", ".join(sorted(manifest.sources[u].name for u in sources)) or "none"),
        ]
        return f"Sync {name}", facts, sources

    def _dbt(self, task_id: str, manifest: Manifest) -> tuple[str, list[tuple[str, str]], set[str]]:
        unique_id = self.task_nodes.get(task_id, "")
        model = manifest.models.get(unique_id)
        if model is not None:
            facts = [
                ("Model", f"{model.display_name} ({model.unique_id})"),
                ("File", model.file),
                ("Owner", model.owner or "unassigned"),
            ]
            return f"dbt {model.resource_type} {model.display_name}", facts, {unique_id}
        if unique_id in manifest.sources:
            source = manifest.sources[unique_id]
            facts = [("Source", f"{source.name} ({unique_id})"), ("File", source.file)]
            return f"dbt source {source.name}", facts, {unique_id}
        test = manifest.tests.get(unique_id)
        parents = set(test.depends_on) if test else set()
        facts = [("dbt node", unique_id or task_id)]
        return f"dbt {unique_id.split('.')[-2] if unique_id else task_id}", facts, parents
