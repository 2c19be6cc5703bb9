"""Alert texts: dbt's error quoted cleanly, HTML escaped, retries counted, secrets redacted."""

from __future__ import annotations

from elt_platform.alerts.message import EXCERPT_LINES, Alert, error_excerpt


def test_error_excerpt_strips_colour_codes_and_blank_lines():
    raw = "\x1b[31mDatabase Error in model orders\x1b[0m\n\n  Binder Error: column x not found\n"
    assert error_excerpt(RuntimeError(raw)) == "Database Error in model orders\n  Binder Error: column x not found"


def test_error_excerpt_is_bounded():
    excerpt = error_excerpt("\n".join(f"line {i}" for i in range(100)))
    assert excerpt.splitlines() == [f"line {i}" for i in range(EXCERPT_LINES)]
    assert error_excerpt(None) == ""


def test_email_html_escapes_what_dbt_printed():
    alert = Alert("failure", "dbt model orders failed", [("Model", "<orders>")], "select '<b>'", "http://x/y?a=1&b=2")
    body = alert.email_html()
    assert "&lt;orders&gt;" in body and "select &#x27;&lt;b&gt;&#x27;" in body
    assert "href='http://x/y?a=1&amp;b=2'" in body
    assert alert.email_subject() == "[FAILURE] dbt model orders failed"


def test_slack_text_lists_facts_quotes_error_and_links_log():
    alert = Alert("warning", "dbt warning in t", [("Run", "r1")], "3 rows", "http://a/b")
    assert alert.slack_text().splitlines() == [
        ":warning: *dbt warning in t*",
        "*Run:* r1",
        "```3 rows```",
        "<http://a/b|Open the log of this try>",
    ]


def test_registered_secrets_are_redacted_from_every_part():
    from airflow.sdk.log import mask_secret

    mask_secret("hunter2-planted")
    alert = Alert("failure", "sync x failed with hunter2-planted", [("Error", "pw=hunter2-planted")], "hunter2-planted")
    redacted = alert.redacted()
    assert "hunter2-planted" not in redacted.slack_text() + redacted.email_html()
    assert "***" in redacted.slack_text()
