"""What an alert says, as Slack text and as an email, with secrets redacted.

Every part but the level and the link's words is data: dbt quotes source rows in its errors,
so each part is escaped for the markup it lands in. In Slack it can neither mention, nor link,
nor leave the code block; in an email it is text, and the subject one line.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from urllib.parse import quote

from elt_platform.transform.dbt_errors import ANSI

ERROR_XCOM_KEY = "error"
EXCERPT_LINES = 15
EXCERPT_CHARS = 1500
# A code block ends at the first ``` in it, and Slack has no escape for a backtick: data's backticks
# become a look-alike (MODIFIER LETTER GRAVE ACCENT), visible where a zero-width space would
# silently break a copied identifier.
BACKTICK_LOOKALIKE = "\u02cb"


def slack_escaped(text: str) -> str:
    """Text Slack shows as it is: no mention (``<!channel>``), link or code span can be made of it.

    ``*``, ``_`` and ``~`` are left alone: at worst they change emphasis, and Slack cannot escape them.
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("`", BACKTICK_LOOKALIKE)


def slack_url(url: str) -> str:
    """A link's address for ``<url|text>``: our own, but a ``|`` or ``>`` in it would end it early.

    Percent-encoded (``%`` kept: what is encoded stays so), then ``&`` escaped as Slack asks.
    """
    return quote(url, safe="%;/?:@&=+$,-_.!~*'()#[]").replace("&", "&amp;")


def one_line(text: str) -> str:
    """Every run of whitespace, line breaks included, as one space: a mail header or a bold headline."""
    return " ".join(text.split())


def safe_url(url: str) -> bool:
    """Only web links become links: a ``javascript:`` or ``data:`` address is shown as text, if at all."""
    return url.lower().startswith(("https://", "http://"))


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
        lines = [f"{icon} *{slack_escaped(one_line(self.headline))}*"]
        lines += [f"*{slack_escaped(one_line(name))}:* {slack_escaped(value)}" for name, value in self.facts]
        if self.excerpt:
            lines.append(f"```{slack_escaped(self.excerpt)}```")
        if safe_url(self.log_url):
            lines.append(f"<{slack_url(self.log_url)}|{self.link_text}>")
        return "\n".join(lines)

    @property
    def link_text(self) -> str:
        return "Open the dashboard's health page" if self.level == "promise" else "Open the log of this try"

    def email_subject(self) -> str:
        """One line: a line break in a mail header would start a header of the data's choosing."""
        return one_line(f"[{self.level.upper()}] {self.headline}")

    def email_html(self) -> str:
        rows = "".join(
            f"<tr><th align='left'>{html.escape(n)}</th><td>{html.escape(v)}</td></tr>" for n, v in self.facts
        )
        parts = [f"<h3>{html.escape(self.headline)}</h3>", f"<table>{rows}</table>"]
        if self.excerpt:
            parts.append(f"<pre>{html.escape(self.excerpt)}</pre>")
        if safe_url(self.log_url):
            parts.append(f"<p><a href='{html.escape(self.log_url, quote=True)}'>{self.link_text}</a></p>")
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
