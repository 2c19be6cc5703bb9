"""Who sees which dashboards, with Airflow's real FAB auth manager and roles per DAG.

The pages (``elt_platform.health.plugin``) show a dashboard only to a user who may read its
DAG's task instances (``is_authorized_dag`` with ``DagAccessEntity.TASK_INSTANCE``), since they
show task errors and link to task logs. The unit tests replace that check, and the other
integration tests run the simple auth manager, whose roles span every DAG; production runs
FAB's, whose permissions can be per DAG. So here the API server of the image's own environment
(``.venvs/image-airflow``, which holds apache-airflow-providers-fab) runs FAB's auth manager,
with two DAGs built by the factory (``shop_a``, ``shop_b``) whose dashboards ``airflow dags
reserialize`` registers (nothing runs: the dashboards are "unknown", which is enough to say who
sees them). Over HTTP, with the JWTs FAB's ``/auth/token`` issues:

- a reader whose role may read DAG ``shop_a`` and task instances (for
  ``DagAccessEntity.TASK_INSTANCE`` FAB 3.10 asks for ``DAG:<dag_id>`` or ``DAGs``, plus the
  ``DAG Runs`` and ``Task Instances`` resources) sees ``shop_a``'s dashboards, and gets 404 for
  ``shop_b``'s, in the list page, each dashboard's page and the JSON;
- a user who may read both DAGs but not their task instances sees none;
- an admin sees both DAGs' (the same URLs answer, so a 404 above is the filter's doing);
- without login the JSON answers 401, and a page sends to FAB's login page.
"""

from __future__ import annotations

import re

import httpx
import pytest

from devstack.airflow_stack import AirflowStack
from tests.conftest import copy_project, write_dag_file
from tests.integration.production import IMAGE_AIRFLOW_BIN

pytestmark = pytest.mark.integration

FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
DAG_A, DAG_B = "shop_a", "shop_b"
DASHBOARDS = {"customer_360", "sales_performance", "support_operations"}
ADMIN, ADMIN_PASSWORD = "admin", "admin-password-5b8e"
READER, DAGS_ONLY, PASSWORD = "reader_a", "dags_only", "user-password-41c7"
# What FAB 3.10 asks for TASK_INSTANCE besides the DAG itself (``DAG:<dag_id>``): these, for every DAG.
TASK_INSTANCE_RESOURCES = ("DAG Runs", "Task Instances")


class ApiServerOnly(AirflowStack):
    """Only the API server: the DAGs are parsed once by ``airflow dags reserialize``, and nothing runs."""

    def components(self) -> list[tuple[str, list[str]]]:
        return [(name, args) for name, args in super().components() if name == "api-server"]


def token(stack: AirflowStack, username: str, password: str) -> str:
    answer = httpx.post(f"{stack.base_url}/auth/token", json={"username": username, "password": password}, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()["access_token"]


def role(name: str, resources: list[str]) -> dict:
    """FAB's REST body of a role that may read each of ``resources``."""
    actions = [{"action": {"name": "can_read"}, "resource": {"name": resource}} for resource in resources]
    return {"name": name, "actions": actions}


def user(username: str, role_name: str) -> dict:
    return {
        "username": username,
        "password": PASSWORD,
        "email": f"{username}@example.com",
        "first_name": username,
        "last_name": "Test",
        "roles": [{"name": role_name}],
    }


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    if not (IMAGE_AIRFLOW_BIN / "airflow").exists():
        pytest.fail(f"{IMAGE_AIRFLOW_BIN / 'airflow'} missing: run the suite with `make test` (make image-envs)")
    root = tmp_path_factory.mktemp("fab")
    dags = root / "dags"
    dbt_dir, ingestion_dir = copy_project(root / "project")
    for dag_id in (DAG_A, DAG_B):
        write_dag_file(dags, dag_id, dbt_dir, ingestion_dir)
    env = {"AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER, "AIRFLOW__API__SECRET_KEY": "fab-test-session-secret"}
    stack = ApiServerOnly(root / "airflow", dags, env, pools=(), bin_dir=IMAGE_AIRFLOW_BIN)
    try:
        stack.start()
        # The DAGs, their dashboards' assets and (FAB being the auth manager) FAB's resources per DAG.
        stack.airflow("dags", "reserialize")
        stack.airflow(
            "users", "create", "--role", "Admin", "--username", ADMIN, "--password", ADMIN_PASSWORD,
            "--email", "admin@example.com", "--firstname", "Ada", "--lastname", "Min",
        )  # fmt: skip
        stack.tokens = {ADMIN: token(stack, ADMIN, ADMIN_PASSWORD)}
        fab = httpx.Client(
            base_url=f"{stack.base_url}/auth/fab/v1",
            headers={"Authorization": f"Bearer {stack.tokens[ADMIN]}"},
            timeout=30,
        )
        roles = {
            READER: role(f"{DAG_A}_reader", [f"DAG:{DAG_A}", *TASK_INSTANCE_RESOURCES]),
            DAGS_ONLY: role("dags_only", [f"DAG:{DAG_A}", f"DAG:{DAG_B}", "DAG Runs"]),
        }
        for username, body in roles.items():
            created = fab.post("/roles", json=body)
            assert created.status_code == 200, created.text
            created = fab.post("/users", json=user(username, body["name"]))
            assert created.status_code == 200, created.text
            stack.tokens[username] = token(stack, username, PASSWORD)
        fab.close()
        yield stack
    finally:
        stack.stop()


def client(stack: AirflowStack, username: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {stack.tokens[username]}"} if username else {}
    return httpx.Client(base_url=f"{stack.base_url}/dashboards", headers=headers, timeout=30)


def shown(stack: AirflowStack, username: str) -> dict[str, object]:
    """What a user is shown: the JSON's and the list page's dashboards, and each dashboard page's status."""
    with client(stack, username) as http:
        answer = http.get("/api/health")
        assert answer.status_code == 200, answer.text
        page = http.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 200, page.text
        return {
            "json": {(d["dag_id"], d["name"]) for d in answer.json()["dashboards"]},
            "list": set(re.findall(r'<tr data-dashboard="[^"]+"[^>]*>\s*<td><a href="([^"/]+)/([^"/]+)"', page.text)),
            "pages": {
                (dag_id, name): http.get(f"/{dag_id}/{name}", headers={"Accept": "text/html"}).status_code
                for dag_id in (DAG_A, DAG_B)
                for name in DASHBOARDS
            },
        }


def of(*dag_ids: str) -> set[tuple[str, str]]:
    return {(dag_id, name) for dag_id in dag_ids for name in DASHBOARDS}


def test_a_reader_of_one_dag_sees_its_dashboards_and_not_the_other_s(airflow):
    seen = shown(airflow, READER)
    assert seen["json"] == of(DAG_A)
    assert seen["list"] == of(DAG_A)
    assert seen["pages"] == dict.fromkeys(of(DAG_A), 200) | dict.fromkeys(of(DAG_B), 404)


def test_reading_the_dags_without_their_task_instances_shows_no_dashboard(airflow):
    seen = shown(airflow, DAGS_ONLY)
    assert seen["json"] == set()
    assert seen["list"] == set()
    assert seen["pages"] == dict.fromkeys(of(DAG_A, DAG_B), 404)


def test_an_admin_sees_both_dags_dashboards(airflow):
    seen = shown(airflow, ADMIN)
    assert seen["json"] == of(DAG_A, DAG_B)
    assert seen["list"] == of(DAG_A, DAG_B)
    assert seen["pages"] == dict.fromkeys(of(DAG_A, DAG_B), 200)


def test_without_login_the_json_answers_401_and_a_page_sends_to_fab_s_login(airflow):
    with client(airflow, None) as anonymous:
        assert anonymous.get("/api/health").status_code == 401
        assert anonymous.get(f"/{DAG_A}/customer_360").status_code == 401
        page = anonymous.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 302
        assert page.headers["location"].startswith(f"{airflow.base_url}/auth/login/?next=")
