"""Alerts, retries and recovery, under a real scheduler, delivered to real SMTP and HTTP servers.

Two DAGs over copies of the project run on one Airflow (API server, scheduler, DAG processor):

- ``alerts_models``: one model with broken SQL (retried once, then alerted), one model
  whose first two tries hit a transient error (per-model retries: 2, so it recovers
  silently), and one ``warn``-severity test that fails.
- ``alerts_sync``: the help-desk sync fails; its connector config carries a planted secret.
"""

from __future__ import annotations

import json
import re
import shutil
from urllib.parse import parse_qs, unquote, urlparse

import httpx
import pytest
import yaml

from tests.conftest import REPO, copy_project, write_dag_file
from tests.integration.receivers import SlackWebhookReceiver, SmtpReceiver
from tests.integration.stack import AirflowStack

pytestmark = pytest.mark.integration

PLANTED_PATH_SECRET = "planted-s3cret-7f3a9c"
PLANTED_WEBHOOK_TOKEN = "/services/T0PLANTED/B0PLANTED/planted-webhook-token-4e1d"
BROKEN_MODEL = "int_purchases_joined_to_products"


def _break_model(dbt_dir):
    path = dbt_dir / "models" / "intermediate" / "sales" / f"{BROKEN_MODEL}.sql"
    path.write_text("select purchase_id, no_such_column from {{ ref('stg_faker__purchases') }}\n")


def _make_transient(dbt_dir, marker_dir):
    """stg_support__tickets fails on its first two tries, then succeeds; it allows itself 2 retries."""
    sql = dbt_dir / "models" / "staging" / "support" / "stg_support__tickets.sql"
    marker = f"{marker_dir}/attempt_*.csv"
    hooks = (
        "{{ config(pre_hook=[\n"
        f"    \"copy (select 1 as attempt) to '{marker_dir}/attempt_{{{{ invocation_id }}}}.csv'\",\n"
        f"    \"select case when (select count(*) from glob('{marker}')) < 3 "
        "then error('transient glitch: warehouse briefly unavailable') end\",\n"
        "]) }}\n"
    )
    sql.write_text(hooks + sql.read_text())
    models = dbt_dir / "models" / "staging" / "support" / "_support__models.yml"
    spec = yaml.safe_load(models.read_text())
    spec["models"][0]["config"] = {"meta": {"cosmos": {"operator_kwargs": {"retries": 2, "retry_delay": 1}}}}
    models.write_text(yaml.safe_dump(spec, sort_keys=False))


def _add_warn_test(dbt_dir):
    models = dbt_dir / "models" / "marts" / "support" / "_support_marts__models.yml"
    spec = yaml.safe_load(models.read_text())
    priority = next(c for c in spec["models"][0]["columns"] if c["name"] == "priority")
    priority["data_tests"] = [
        {"accepted_values": {"arguments": {"values": ["low", "normal", "high"]}, "config": {"severity": "warn"}}}
    ]
    models.write_text(yaml.safe_dump(spec, sort_keys=False))


@pytest.fixture(scope="module")
def receivers():
    smtp = SmtpReceiver().start()
    slack = SlackWebhookReceiver(PLANTED_WEBHOOK_TOKEN).start()
    yield smtp, slack
    smtp.stop()
    slack.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, receivers):
    from tests.conftest import dbt_parse

    smtp, slack = receivers
    root = tmp_path_factory.mktemp("alerts")
    dags = root / "dags"

    a_dbt, a_ingestion = copy_project(root / "a")
    _break_model(a_dbt)
    (root / "markers").mkdir()
    _make_transient(a_dbt, root / "markers")
    _add_warn_test(a_dbt)
    dbt_parse(a_dbt)
    write_dag_file(dags, "alerts_models", a_dbt, a_ingestion, warehouse_conn_id="warehouse_a")

    b_dbt, b_ingestion = copy_project(root / "b")
    support = b_ingestion / "support_desk.yml"
    spec = yaml.safe_load(support.read_text())
    spec["source"]["config"]["url"] = {"from_env": "SUPPORT_DESK_URL"}
    support.write_text(yaml.safe_dump(spec, sort_keys=False))
    write_dag_file(dags, "alerts_sync", b_dbt, b_ingestion, warehouse_conn_id="warehouse_b")

    env = {
        "AIRFLOW_CONN_WAREHOUSE_A": json.dumps({"conn_type": "duckdb", "host": str(root / "a.duckdb")}),
        "AIRFLOW_CONN_WAREHOUSE_B": json.dumps({"conn_type": "duckdb", "host": str(root / "b.duckdb")}),
        "AIRFLOW_CONN_SLACK_ALERTS": json.dumps({"conn_type": "slackwebhook", "password": slack.url}),
        "AIRFLOW_CONN_SMTP_ALERTS": json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp.port,
                "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10, "retry_limit": 1},
            }
        ),
        "ELT_ALERT_EMAIL_TO": "oncall@example.com",
        "ELT_TASK_RETRIES": "1",
        "ELT_RETRY_DELAY_SECONDS": "1",
        "ELT_MAX_RETRY_DELAY_SECONDS": "5",
        "SUPPORT_DESK_URL": f"/nonexistent/{PLANTED_PATH_SECRET}/tickets.csv",
    }
    airflow = AirflowStack(root / "airflow", dags, env).start()
    airflow.dbt_dir_a = a_dbt
    yield airflow
    airflow.stop()


@pytest.fixture(scope="module")
def models_run(stack, receivers):
    run_id = stack.trigger("alerts_models")
    state = stack.wait_for_run("alerts_models", run_id)
    smtp, slack = receivers
    return {
        "run_id": run_id,
        "state": state,
        "tis": stack.task_instances("alerts_models", run_id),
        "slack": [t for t in slack.texts() if "alerts_models" in t],
        "email": [(m["Subject"], b) for m, b in zip(smtp.messages, smtp.bodies(), strict=True) if "alerts_models" in b],
    }


@pytest.fixture(scope="module")
def sync_run(stack, receivers, models_run):
    run_id = stack.trigger("alerts_sync")
    state = stack.wait_for_run("alerts_sync", run_id)
    smtp, slack = receivers
    return {
        "run_id": run_id,
        "state": state,
        "tis": stack.task_instances("alerts_sync", run_id),
        "slack": [t for t in slack.texts() if "alerts_sync" in t],
        "email": [(m["Subject"], b) for m, b in zip(smtp.messages, smtp.bodies(), strict=True) if "alerts_sync" in b],
    }


def test_broken_model_alerts_exactly_once_on_each_channel(models_run):
    tis = models_run["tis"]
    assert models_run["state"] == "failed"
    assert {t for t, ti in tis.items() if ti["state"] == "failed"} == {f"transform.{BROKEN_MODEL}.run"}
    assert tis[f"transform.{BROKEN_MODEL}.run"]["try_number"] == 2  # retried once, as configured

    failures = [t for t in models_run["slack"] if t.startswith(":red_circle:")]
    assert len(failures) == 1, models_run["slack"]
    [text] = failures
    assert f"dbt model {BROKEN_MODEL} failed" in text
    assert f"model.shop_analytics.{BROKEN_MODEL}" in text
    assert f"models/intermediate/sales/{BROKEN_MODEL}.sql" in text
    assert "no_such_column" in text  # dbt's own error message
    assert "Try:* 2 of 2 (0 retries left)" in text
    assert "Held back:* customers, orders, products" in text
    assert "Stale dashboards:* Customer 360, Sales performance" in text
    assert "Run:* " + models_run["run_id"] in text

    [(subject, body)] = models_run["email"]
    assert subject == f"[FAILURE] dbt model {BROKEN_MODEL} failed"
    assert "no_such_column" in body and "Customer 360" in body and "customers, orders, products" in body


def test_owner_of_a_mart_is_named(stack):
    # Owners come from dbt meta; the broken model is intermediate, so it has none: marts do.
    from elt_platform.dbt_manifest import load_manifest

    manifest = load_manifest(stack.dbt_dir_a / "target" / "manifest.json")
    assert manifest.models["model.shop_analytics.orders"].owner == "sales-analytics"


def test_transient_failure_recovers_on_retry_and_alerts_nobody(models_run):
    ti = models_run["tis"]["transform.stg_support__tickets.run"]
    assert ti["state"] == "success"
    assert ti["try_number"] == 3  # per-model override: 2 retries where the default allows 1
    assert not any("stg_support__tickets" in t for t in models_run["slack"])
    assert not any("stg_support__tickets" in b for _, b in models_run["email"])


def test_warn_test_sends_one_warning_and_fails_nothing(models_run):
    assert models_run["tis"]["transform.tickets.test"]["state"] == "success"
    warnings = [t for t in models_run["slack"] if t.startswith(":warning:")]
    assert len(warnings) == 1, models_run["slack"]
    assert "transform.tickets.test" in warnings[0]
    assert "accepted_values_tickets_priority" in warnings[0]
    assert len(models_run["slack"]) == 2  # the failure and the warning, nothing else
    assert all("warning" not in subject.lower() for subject, _ in models_run["email"])


def test_alert_link_opens_that_task_try_on_the_api_server(stack, models_run):
    [text] = [t for t in models_run["slack"] if t.startswith(":red_circle:")]
    url = re.search(r"<(http[^|>]+)\|Open the log", text).group(1)
    parsed = urlparse(url)
    assert parsed.netloc == f"127.0.0.1:{stack.port}"
    match = re.fullmatch(r"/dags/([^/]+)/runs/([^/]+)/tasks/([^/]+)", parsed.path)
    assert match, parsed.path
    dag_id, run_id, task_id = (unquote(p) for p in match.groups())
    try_number = parse_qs(parsed.query)["try_number"][0]
    assert (dag_id, run_id, task_id, try_number) == (
        "alerts_models",
        models_run["run_id"],
        f"transform.{BROKEN_MODEL}.run",
        "2",
    )

    assert httpx.get(url, timeout=30).status_code == 200  # the UI route itself
    log = stack.client.get(
        f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
        headers={"Accept": "application/json"},
    )
    assert log.status_code == 200
    assert "no_such_column" in log.text


def test_clearing_the_failed_model_reruns_it_and_what_follows_only(stack, models_run, receivers):
    before = models_run["tis"]
    good = REPO / "dbt_project" / "models" / "intermediate" / "sales" / f"{BROKEN_MODEL}.sql"
    shutil.copy(good, stack.dbt_dir_a / "models" / "intermediate" / "sales" / f"{BROKEN_MODEL}.sql")
    alerts_before = len(receivers[1].payloads) + len(receivers[0].messages)

    cleared = stack.clear_with_downstream("alerts_models", models_run["run_id"], f"transform.{BROKEN_MODEL}.run")
    state = stack.wait_for_run("alerts_models", models_run["run_id"])
    after = stack.task_instances("alerts_models", models_run["run_id"])

    downstream = {f"transform.{m}.{s}" for m in ("orders", "products", "customers") for s in ("run", "test")}
    assert {f"transform.{BROKEN_MODEL}.run", f"transform.{BROKEN_MODEL}.test"} | downstream <= set(cleared)
    assert state == "success"
    assert all(ti["state"] == "success" for ti in after.values())
    for task_id, ti in before.items():
        if task_id not in cleared:  # left exactly as it was: not run again
            assert after[task_id]["try_number"] == ti["try_number"], task_id
            assert after[task_id]["end_date"] == ti["end_date"], task_id
    assert len(receivers[1].payloads) + len(receivers[0].messages) == alerts_before


def test_failed_sync_alert_names_connection_and_what_it_holds_back(sync_run):
    assert {t for t, ti in sync_run["tis"].items() if ti["state"] == "failed"} == {"sync_support_desk"}
    [text] = [t for t in sync_run["slack"] if t.startswith(":red_circle:")]
    assert "Sync support_desk failed" in text
    assert "Connection:* Help desk tickets (CSV export) (support_desk.yml)" in text
    assert "Backend job:* none (local backend)" in text
    assert "dbt sources held back:* support.tickets" in text
    assert "Held back:* customers, int_tickets_aggregated_to_users, stg_support__tickets, tickets" in text
    assert "Stale dashboards:* Customer 360, Support operations" in text
    assert "/dags/alerts_sync/runs/" in text
    [(subject, _)] = sync_run["email"]
    assert subject == "[FAILURE] Sync support_desk failed"


def test_planted_secrets_never_reach_alerts_or_logs(stack, sync_run, receivers):
    smtp, slack = receivers
    [text] = [t for t in sync_run["slack"] if t.startswith(":red_circle:")]
    assert "***" in text  # the connector's error quoted the path, masked
    everything = "\n".join(slack.texts() + smtp.bodies())
    logs = "\n".join(p.read_text(errors="replace") for p in (stack.home / "logs").rglob("*") if p.is_file())
    assert "sync_support_desk" in logs and "***" in logs  # the failure was logged ...
    for secret in (PLANTED_PATH_SECRET, PLANTED_WEBHOOK_TOKEN.rsplit("/", 1)[-1]):
        assert secret not in everything
        assert secret not in logs  # ... with the secret masked
