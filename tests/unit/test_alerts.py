"""Alert texts: dbt's error quoted cleanly, HTML escaped, retries counted, secrets redacted."""

from __future__ import annotations

from elt_platform.alerts.message import BACKTICK_LOOKALIKE, EXCERPT_LINES, Alert, error_excerpt


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


HOSTILE = "Conversion Error: Could not convert string '``` <!channel> <https://evil|Airflow login> ```' to INT32"


def hostile_alert(log_url: str = "http://airflow/log?a=1&b=2") -> Alert:
    return Alert(
        "failure",
        "dbt model orders failed\r\nBcc: everyone@example.com <!here>",
        [("Model", "orders <!subteam^S1>"), ("Row `id`", "```\n<https://evil|click> & <script>alert(1)</script>")],
        error_excerpt(RuntimeError(f"{HOSTILE}\n```\n<!channel>\n")),
        log_url,
    )


def test_slack_text_cannot_be_made_to_mention_link_or_close_its_code_block():
    text = hostile_alert().slack_text()
    assert "<!" not in text and "<https://evil" not in text and "<script" not in text
    assert "&lt;!channel&gt;" in text and "&lt;https://evil|Airflow login&gt;" in text  # shown, as text
    assert text.count("```") == 2 and text.count("`") == 6  # exactly the fences we opened: no other backtick
    code = text.split("```")[1]
    assert f"{BACKTICK_LOOKALIKE * 3} &lt;!channel&gt;" in code  # the row's own backticks, as a look-alike
    # The only "<" is our link's, whose "&" is escaped as Slack asks and whose "|" is the one we put there.
    assert text.count("<") == 1 and text.splitlines()[-1] == "<http://airflow/log?a=1&amp;b=2|Open the log of this try>"
    assert text.splitlines()[0] == ":red_circle: *dbt model orders failed Bcc: everyone@example.com &lt;!here&gt;*"


def test_slack_link_keeps_our_address_whole_and_drops_anything_but_the_web():
    odd = Alert("failure", "x", log_url="https://airflow/log?q=a|b>c<d`e%20f&g").slack_text()
    assert odd.splitlines()[-1] == "<https://airflow/log?q=a%7Cb%3Ec%3Cd%60e%20f&amp;g|Open the log of this try>"
    assert "<" not in Alert("failure", "x", log_url="javascript:alert(1)").slack_text()


def test_email_cannot_inject_markup_a_script_link_or_a_header():
    alert = hostile_alert()
    body = alert.email_html()
    assert "<script" not in body and "&lt;script&gt;" in body
    assert "<https" not in body and "&lt;https://evil|Airflow login&gt;" in body
    assert "href='http://airflow/log?a=1&amp;b=2'" in body
    subject = alert.email_subject()
    assert "\r" not in subject and "\n" not in subject
    assert subject == "[FAILURE] dbt model orders failed Bcc: everyone@example.com <!here>"  # one header
    assert "\u2028" not in Alert("failure", "a\u2028b").email_subject()
    quoted = Alert("failure", "x", log_url="https://airflow/log?q='><script>").email_html()
    assert "href='https://airflow/log?q=&#x27;&gt;&lt;script&gt;'" in quoted
    for url in ("javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,<b>"):
        assert "href" not in Alert("failure", "x", log_url=url).email_html()
