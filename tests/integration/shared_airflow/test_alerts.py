"""Alerts, retries and recovery, under a real scheduler, delivered to real SMTP and HTTP servers.

Two scenario DAGs (tests/integration/scenarios.py):

- ``alerts_models``: one model with broken SQL (failed at once, no retry can fix it, and alerted), one model
  whose first two tries hit a transient error (per-model retries: 2, so it recovers
  silently), and one ``warn``-severity test that fails.
- ``alerts_sync``: the help-desk sync fails; its connector config carries a planted secret.
"""

from __future__ import annotations

import re
import shutil
from urllib.parse import parse_qs, unquote, urlparse

import httpx
import pytest

from tests.conftest import REPO
from tests.integration.conftest import PLANTED_WEBHOOK_TOKEN
from tests.integration.scenarios import BROKEN_MODEL, PLANTED_PATH_SECRET

pytestmark = pytest.mark.integration

FAIL_RUN = "transform.fail_run_if_a_node_failed"  # fails the run after a node failed; no alert


def test_broken_model_alerts_exactly_once_on_each_channel(runs):
    models_run = runs["alerts_models"]
    tis = models_run.tis
    assert models_run.state == "failed"
    failed = {t for t, ti in tis.items() if ti["state"] == "failed"}
    assert failed == {f"transform.{BROKEN_MODEL}", FAIL_RUN}  # the model, and the task that fails the run
    # a binder error: no retry can fix it, so the task fails at once (it allows one retry)
    assert tis[f"transform.{BROKEN_MODEL}"]["try_number"] == 1

    failures = [t for t in models_run.slack if t.startswith(":red_circle:")]
    assert len(failures) == 1, models_run.slack
    [text] = failures
    assert f"dbt model {BROKEN_MODEL} failed" in text
    assert f"model.shop_analytics.{BROKEN_MODEL}" in text
    assert f"models/intermediate/sales/{BROKEN_MODEL}.sql" in text
    assert "*Owner:* analytics-engineering" in text  # from dbt meta
    assert "no_such_column" in text  # dbt's own error message
    assert "Try:* 1 of 2 (not retried: a retry cannot fix this error)" in text
    assert "Held back:* customers, orders, products" in text
    assert "Stale dashboards:* Customer 360, Sales performance" in text
    assert "Run:* " + models_run.run_id in text

    [(subject, body)] = models_run.email
    assert subject == f"[FAILURE] dbt model {BROKEN_MODEL} failed"
    assert "no_such_column" in body and "Customer 360" in body and "customers, orders, products" in body


def test_transient_failure_recovers_on_retry_and_alerts_nobody(runs):
    models_run = runs["alerts_models"]
    ti = models_run.tis["transform.stg_support__tickets"]
    assert ti["state"] == "success"
    assert ti["try_number"] == 3  # per-model override: 2 retries where the default allows 1
    assert not any("stg_support__tickets" in t for t in models_run.slack)
    assert not any("stg_support__tickets" in b for _, b in models_run.email)


def test_warn_test_sends_one_warning_and_fails_nothing(runs):
    models_run = runs["alerts_models"]
    assert models_run.tis["transform.tickets"]["state"] == "success"
    warnings = [t for t in models_run.slack if t.startswith(":warning:")]
    assert len(warnings) == 1, models_run.slack
    assert "transform.tickets" in warnings[0]
    assert "accepted_values_tickets_priority" in warnings[0]
    assert len(models_run.slack) == 2  # the failure and the warning, nothing else
    assert all("warning" not in subject.lower() for subject, _ in models_run.email)


def test_alert_link_opens_that_task_try_on_the_api_server(stack, runs):
    models_run = runs["alerts_models"]
    [text] = [t for t in models_run.slack if t.startswith(":red_circle:")]
    url = re.search(r"<(http[^|>]+)\|Open the log", text).group(1)
    parsed = urlparse(url)
    assert parsed.netloc == f"127.0.0.1:{stack.port}"
    match = re.fullmatch(r"/dags/([^/]+)/runs/([^/]+)/tasks/([^/]+)", parsed.path)
    assert match, parsed.path
    dag_id, run_id, task_id = (unquote(p) for p in match.groups())
    try_number = parse_qs(parsed.query)["try_number"][0]
    assert (dag_id, run_id, task_id, try_number) == (
        "alerts_models",
        models_run.run_id,
        f"transform.{BROKEN_MODEL}",
        "1",
    )

    assert httpx.get(url, timeout=30).status_code == 200  # the UI route itself
    log = stack.task_log(dag_id, run_id, task_id, try_number)
    assert log.status_code == 200
    assert "no_such_column" in log.text


def test_clearing_the_failed_model_reruns_it_and_what_follows_only(stack, runs, receivers):
    models_run = runs["alerts_models"]
    before = models_run.tis
    good = REPO / "dbt_project" / "models" / "intermediate" / "sales" / f"{BROKEN_MODEL}.sql"
    shutil.copy(good, stack.projects["alerts_models"] / "models" / "intermediate" / "sales" / f"{BROKEN_MODEL}.sql")
    alerts_before = len(receivers[1].payloads) + len(receivers[0].messages)

    cleared = stack.clear_with_downstream("alerts_models", models_run.run_id, f"transform.{BROKEN_MODEL}")
    state = stack.wait_for_run("alerts_models", models_run.run_id)
    after = stack.task_instances("alerts_models", models_run.run_id)

    relationships = "relationships_orders_product_id__product_id__ref_products_"
    downstream = {f"transform.{m}" for m in ("orders", "products", "customers", relationships)}
    assert {f"transform.{BROKEN_MODEL}"} | downstream <= set(cleared)
    assert state == "success"
    # customers' build had nothing to build (it reads the broken model's side): customers ran alone since
    both = "transform.dbt_build__shop_faker__support_desk"
    assert {t: ti["state"] for t, ti in after.items() if ti["state"] != "success"} == {
        FAIL_RUN: "skipped",
        both: "skipped",
    }
    for task_id, ti in before.items():
        if task_id not in cleared:  # left exactly as it was: not run again
            assert after[task_id]["try_number"] == ti["try_number"], task_id
            assert after[task_id]["end_date"] == ti["end_date"], task_id
    assert len(receivers[1].payloads) + len(receivers[0].messages) == alerts_before
    # The dashboards the broken model held back are fresh again (they were stale after the run).
    assert {d: h["status"] for d, h in models_run.health.items()}["sales_performance"] == "stale"
    health = stack.client.get(f"{stack.base_url}/dashboards/api/health").json()["dashboards"]
    assert {h["name"]: h["status"] for h in health if h["dag_id"] == "alerts_models"} == {
        "customer_360": "fresh",
        "sales_performance": "fresh",
        "support_operations": "fresh",
    }


def test_failed_sync_alert_names_connection_and_what_it_holds_back(runs):
    sync_run = runs["alerts_sync"]
    assert {t for t, ti in sync_run.tis.items() if ti["state"] == "failed"} == {"sync_support_desk", FAIL_RUN}
    [text] = [t for t in sync_run.slack if t.startswith(":red_circle:")]
    assert "Sync support_desk failed" in text
    assert "Connection:* Help desk tickets (CSV export) (support_desk.yml)" in text
    assert "Backend job:* none (local backend)" in text
    assert "dbt sources held back:* support.tickets" in text
    assert "Held back:* customers, int_tickets_aggregated_to_customers, stg_support__tickets, tickets" in text
    assert "Stale dashboards:* Customer 360, Support operations" in text
    assert "/dags/alerts_sync/runs/" in text
    [(subject, _)] = sync_run.email
    assert subject == "[FAILURE] Sync support_desk failed"


def test_planted_secrets_never_reach_alerts_or_logs(stack, runs, receivers):
    sync_run = runs["alerts_sync"]
    smtp, slack = receivers
    [text] = [t for t in sync_run.slack if t.startswith(":red_circle:")]
    assert "***" in text  # the connector's error quoted the path, masked
    everything = "\n".join(slack.texts() + smtp.bodies())
    # An address quoted from data is not previewed: Slack is asked not to unfurl any link.
    assert slack.payloads and all(p.get("unfurl_links") is False for p in slack.payloads)
    logs = "\n".join(p.read_text(errors="replace") for p in (stack.home / "logs").rglob("*") if p.is_file())
    assert "sync_support_desk" in logs and "***" in logs  # the failure was logged ...
    for secret in (PLANTED_PATH_SECRET, PLANTED_WEBHOOK_TOKEN.rsplit("/", 1)[-1]):
        assert secret not in everything
        assert secret not in logs  # ... with the secret masked
