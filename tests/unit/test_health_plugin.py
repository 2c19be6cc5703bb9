"""The dashboard health app's answers over HTTP: every one carries the security headers, errors too."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from fastapi.testclient import TestClient

from elt_platform import dependency_internals
from elt_platform.health import plugin
from elt_platform.health.plugin import app, badge_token
from tests.unit.test_health_publishing import health

# ELT_BADGE_SECRET must be at least 32 bytes.
SECRET = "a-badge-secret-for-unit-tests-32+bytes"


@pytest.fixture
def client(monkeypatch):
    """The app as a logged-in reader who may read every DAG sees it, over one stale dashboard."""
    get_user = dependency_internals.request_user()

    monkeypatch.setenv("ELT_BADGE_SECRET", SECRET)
    monkeypatch.setattr(plugin, "_report", lambda dag_id=None, lineage=False: [health()])
    monkeypatch.setattr(plugin, "_readable", lambda user, items: items)
    monkeypatch.setitem(app.dependency_overrides, get_user, lambda: "reader")
    return TestClient(app, raise_server_exceptions=False)


def assert_protected(answer, framed_by: str = "'self'", cache: str = "no-store") -> str:
    policy = answer.headers["content-security-policy"]
    assert policy.startswith("default-src 'none';") and policy.endswith(f"; frame-ancestors {framed_by}")
    assert "script-src" not in policy and "unsafe-inline" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == cache
    return policy


def assert_styles_allowed(page: str, policy: str) -> None:
    """The policy names each style sheet the page holds, by its hash: a browser applies them."""
    sheets = re.findall(r"<style>(.*?)</style>", page, re.DOTALL)
    sources = {f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in sheets}
    assert sources and sources <= set(re.split(r"[\s;]+", policy))


def test_a_page_allows_only_its_own_style_sheet_and_no_script(client):
    for path in ("/", "/shop_elt/sales"):
        page = client.get(path)
        assert page.status_code == 200, path
        policy = assert_protected(page)
        assert_styles_allowed(page.text, policy)
        assert "<script" not in page.text and "style=" not in page.text  # what the policy would block
        assert 'class="status stale"' in page.text  # the status's colour, without a style attribute


def test_the_json_and_errors_carry_the_headers(client, monkeypatch):
    get_user = dependency_internals.request_user()

    json = client.get("/api/health")
    assert json.status_code == 200 and json.json()["dashboards"][0]["name"] == "sales"
    assert_protected(json)
    for path in (
        "/shop_elt/no_such_dashboard",  # the app's own 404
        "/shop_elt/sales/no/such/route",  # routing's
        "/shop_elt/badge.svg",  # a dashboard's page (no dashboard of that name), not a badge
    ):
        missing = client.get(path)
        assert missing.status_code == 404, path
        assert_protected(missing)
    monkeypatch.delitem(app.dependency_overrides, get_user)
    anonymous = client.get("/api/health")
    assert anonymous.status_code == 401
    assert_protected(anonymous)


def test_a_crash_answers_500_with_the_headers(client, monkeypatch):
    def crash(dag_id=None, lineage=False):
        raise RuntimeError("the metadata database is gone")

    monkeypatch.setattr(plugin, "_report", crash)
    answer = client.get("/api/health")
    assert answer.status_code == 500 and "database" not in answer.text
    assert_protected(answer)


def test_a_badge_may_be_framed_anywhere_and_cached_briefly_its_refusals_not_cached(client):
    token = badge_token("shop_elt", "sales", SECRET)
    svg = client.get("/shop_elt/sales/badge.svg", params={"token": token})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert_protected(svg, framed_by="*", cache="public, max-age=30")
    page = client.get("/shop_elt/sales/badge.html", params={"token": token})
    policy = assert_protected(page, framed_by="*", cache="public, max-age=30")
    assert_styles_allowed(page.text, policy)
    wrong = client.get("/shop_elt/sales/badge.svg", params={"token": "v1." + "0" * 64})
    assert wrong.status_code == 403 and assert_protected(wrong, framed_by="*")


def test_a_browser_without_a_session_goes_to_airflow_s_login_and_a_program_gets_401(monkeypatch):
    """Through the API server's own user dependency and auth manager (the adapter's), not stand-ins."""
    from airflow.api_fastapi.app import create_auth_manager, purge_cached_app

    monkeypatch.setattr(plugin, "_report", lambda dag_id=None, lineage=False: [health()])
    create_auth_manager()  # what the API server does at start-up
    try:
        client = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
        page = client.get("/shop_elt/sales", headers={"accept": "text/html"})
        assert page.status_code == 302
        assert dependency_internals.auth_manager().get_url_login() in page.headers["location"]
        assert "next=" in page.headers["location"] and "shop_elt" in page.headers["location"]
        assert client.get("/api/health", headers={"accept": "application/json"}).status_code == 401
    finally:
        purge_cached_app()
