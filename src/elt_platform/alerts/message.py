"""What an alert says, as Slack text and as an email, with secrets redacted."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from elt_platform.transform.dbt_errors import ANSI

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
