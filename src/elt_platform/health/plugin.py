"""The dashboard health pages as an Airflow plugin: a FastAPI app the API server mounts at ``/dashboards``.

Airflow does not authenticate a plugin's app, so every route here does, with Airflow's own
login (its JWT, from the UI's session cookie or an ``Authorization: Bearer`` header), and
shows only the DAGs the user may read. A browser without a session is sent to Airflow's
login page; a program gets 401.

The one exception is the badge, meant for an iframe beside the dashboard in a BI tool: it
needs the dashboard's own read-only token instead (``ELT_BADGE_SECRET`` signs them; unset,
badges are off), shows only the status and "data as of", and opens nothing else.

Every answer, errors included, carries the same security headers (``_protect``): only a badge
may be framed by any site and cached, briefly.

- ``/dashboards/``: every dashboard; ``/dashboards/<dag>/<dashboard>``: one, with its lineage;
- ``/dashboards/api/health``: the same as JSON;
- ``/dashboards/<dag>/<dashboard>/badge.svg?token=...`` and ``badge.html?token=...``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Annotated, ClassVar
from urllib.parse import urlparse

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from elt_platform import dependency_internals, run_history
from elt_platform.health import pages
from elt_platform.health.records import URL_PREFIX
from elt_platform.health.report import DashboardHealth, health_json, report
from elt_platform.settings import Settings

BADGE_SECRET_ENV = "ELT_BADGE_SECRET"
# Part of what a badge token signs and its prefix: a new scheme gets a new version, and refuses old tokens.
BADGE_TOKEN_VERSION = "v1"

app = FastAPI(title="Dashboard health", docs_url=None, redoc_url=None, openapi_url=None)


User = Annotated[object, Depends(dependency_internals.request_user())]


@app.exception_handler(HTTPException)
async def _login_or_error(request: Request, exc: HTTPException) -> Response:
    """A browser without a valid session goes to Airflow's login page, and comes back after."""
    not_logged_in = exc.status_code == 401 or exc.detail == "Invalid JWT token"
    if not_logged_in and "text/html" in request.headers.get("accept", ""):
        login = dependency_internals.auth_manager().get_url_login(next_url=str(request.url))
        return RedirectResponse(login, status_code=302)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def _protect(response: Response, badge: bool) -> Response:
    """The one home of the security headers. A badge is embedded in other sites' pages: any site
    may frame it and caches may keep it briefly; every other answer is the reader's alone."""
    ancestors = "*" if badge else "'self'"
    response.headers["Content-Security-Policy"] = f"{pages.CONTENT_SECURITY_POLICY}; frame-ancestors {ancestors}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "public, max-age=30" if badge and response.status_code == 200 else "no-store"
    return response


@app.middleware("http")
async def _security_headers(request: Request, call_next) -> Response:
    response = await call_next(request)
    # The route that answered (set by routing, so a dashboard named like a badge is no badge).
    return _protect(response, request.scope.get("endpoint") in {badge_svg, badge_html})


@app.exception_handler(Exception)
async def _server_error(request: Request, exc: Exception) -> Response:
    """A crash is answered outside the middleware, so its 500 gets the headers here (the server still logs it)."""
    return _protect(PlainTextResponse("Internal Server Error", status_code=500), badge=False)


def _readable(user, items: list[DashboardHealth]) -> list[DashboardHealth]:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    manager = dependency_internals.auth_manager()
    allowed = {
        dag_id
        for dag_id in {h.dag_id for h in items}
        # The pages show task errors and link to task logs: reading the DAG's task instances is needed.
        if manager.is_authorized_dag(
            method="GET", access_entity=DagAccessEntity.TASK_INSTANCE, details=DagDetails(id=dag_id), user=user
        )
    }
    return [h for h in items if h.dag_id in allowed]


def _report(dag_id: str | None = None, lineage: bool = False) -> list[DashboardHealth]:
    with run_history.reading() as history:
        return report(history, dag_id=dag_id, lineage=lineage)


def _one(dag_id: str, name: str, lineage: bool = False) -> DashboardHealth:
    found = [h for h in _report(dag_id, lineage) if h.name == name]
    if not found:
        raise HTTPException(404, f"No dashboard {name!r} in DAG {dag_id!r}")
    return found[0]


def _link(path: str) -> str:
    """A path of the Airflow UI, under the API server's base URL (which may hold a prefix)."""
    prefix = urlparse(dependency_internals.airflow_setting("api", "base_url", fallback="/")).path.rstrip("/")
    return f"{prefix}{path}" if path.startswith("/") else path


def badge_token(dag_id: str, name: str, secret: str | None = None) -> str | None:
    """The dashboard's read-only badge token (``v1.<hex>``), or None when badges are off.

    Newlines separate the signed parts: neither an Airflow DAG id nor a dbt name can hold one.
    """
    secret = secret if secret is not None else Settings.from_env().badge_secret
    if not secret:
        return None
    message = "\n".join((f"elt-badge-{BADGE_TOKEN_VERSION}", dag_id, name)).encode()
    return f"{BADGE_TOKEN_VERSION}.{hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()}"


@app.get("/", response_class=HTMLResponse)
def dashboards_page(user: User) -> HTMLResponse:
    return HTMLResponse(pages.list_page(_readable(user, _report()), datetime.now(UTC)))


@app.get("/api/health")
def health_document(user: User) -> Response:
    return Response(health_json(_readable(user, _report())), media_type="application/json")


@app.get("/{dag_id}/{name}", response_class=HTMLResponse)
def dashboard_page(dag_id: str, name: str, user: User) -> HTMLResponse:
    health = _readable(user, [_one(dag_id, name, lineage=True)])
    if not health:  # as if it did not exist: a DAG one may not read is not disclosed
        raise HTTPException(404, f"No dashboard {name!r} in DAG {dag_id!r}")
    token = badge_token(dag_id, name)
    badge = f"{_link(URL_PREFIX)}/{dag_id}/{name}/badge.html?token={token}" if token else None
    return HTMLResponse(pages.detail_page(health[0], _link, badge))


def _badge_health(dag_id: str, name: str, token: str) -> DashboardHealth:
    expected = badge_token(dag_id, name)
    if expected is None:
        raise HTTPException(404, f"Badges are off: set {BADGE_SECRET_ENV} on the API server to turn them on")
    if not token.startswith(f"{BADGE_TOKEN_VERSION}."):  # the scheme is public: no secret is compared here
        raise HTTPException(403, "A badge token of an earlier scheme: copy the badge again from the dashboard's page")
    if not hmac.compare_digest(expected.encode(), token.encode()):  # bytes: any text a caller sends
        raise HTTPException(403, "Wrong badge token")
    return _one(dag_id, name)


@app.get("/{dag_id}/{name}/badge.svg")
def badge_svg(dag_id: str, name: str, token: str = "") -> Response:
    health = _badge_health(dag_id, name, token)
    return Response(pages.badge_svg(health), media_type="image/svg+xml")


@app.get("/{dag_id}/{name}/badge.html", response_class=HTMLResponse)
def badge_html(dag_id: str, name: str, token: str = "") -> HTMLResponse:
    return HTMLResponse(pages.badge_page(_badge_health(dag_id, name, token)))


class DashboardHealthPlugin(AirflowPlugin):
    name = "dashboard_health"
    fastapi_apps: ClassVar = [{"app": app, "url_prefix": URL_PREFIX, "name": "Dashboard health"}]
    external_views: ClassVar = [
        {"name": "Dashboard health", "href": "dashboards/", "destination": "nav", "url_route": "dashboard-health"}
    ]
