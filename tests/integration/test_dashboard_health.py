"""Dashboard health through what business users see: the pages in headless Chromium, behind a real login.

An Airflow of its own, with the simple auth manager's real login (no "everyone is admin"),
runs a copy of the bundled project three times:

1. green: the three dashboards are fresh, and each emits its asset event;
2. the help desk's CSV taken away (its sync fails) and a check on ``products`` made to fail:
   ``support_operations`` and ``customer_360`` are stale, naming the sync; ``sales_performance``
   is broken, naming the check; no asset event for any of them;
3. both put back: every dashboard is fresh again.

``support_operations`` promises to be fresh by a time that passed before the first run: its
owner gets one email, however many runs and checks follow. Screenshots land in the test's
output directory (printed).
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import yaml

from devstack.airflow_stack import AirflowStack
from tests.conftest import BIN, copy_project, dbt_parse, write_dag_file
from tests.integration.receivers import alert_connections

pytestmark = pytest.mark.integration

DAG_ID = "shop_health"
READER, READER_PASSWORD = "reader", "reader-password-3e1f"
ADMIN, ADMIN_PASSWORD = "admin", "admin-password-9c2d"
BADGE_SECRET = "badge-secret-for-the-dashboard-health-tests"  # at least 32 bytes
# Debian's packages by default; elsewhere (GitHub's runners) the browser and driver at hand.
CHROMIUM = Path(os.environ.get("ELT_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("ELT_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
DASHBOARDS = {"customer_360", "sales_performance", "support_operations"}
PRODUCTS_CHECK = "products_pass_the_audit"


def prepare_project(root: Path, dags: Path) -> dict[str, Path]:
    dbt_dir, ingestion_dir = copy_project(root / "project")
    tickets = ingestion_dir / "data" / "support_tickets.csv"  # the copy's own: a local_path stays in its folder
    flag = root / "break-products"
    tests_dir = dbt_dir / "tests"
    tests_dir.mkdir(exist_ok=True)
    (tests_dir / f"{PRODUCTS_CHECK}.sql").write_text(
        "-- Fails while the test's flag file exists: a check on built data that finds problems.\n"
        f"select product_id from {{{{ ref('products') }}}} where exists (select 1 from glob('{flag}'))\n"
    )
    exposures = dbt_dir / "models" / "exposures.yml"
    spec = yaml.safe_load(exposures.read_text())
    promised = (datetime.now(UTC) - timedelta(minutes=2)).strftime("%H:%M")
    support = next(e for e in spec["exposures"] if e["name"] == "support_operations")
    support["config"] = {"meta": {"fresh_by": promised, "fresh_by_timezone": "UTC"}}
    exposures.write_text(yaml.safe_dump(spec, sort_keys=False))
    dbt_parse(dbt_dir)
    write_dag_file(
        dags, DAG_ID, dbt_dir, ingestion_dir, warehouse_conn_id="warehouse_health", warehouse_pool="'warehouse_health'"
    )
    return {"tickets": tickets, "flag": flag, "warehouse": root / "health.duckdb"}


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("Chromium missing: run the suite with `make test`, which installs it (make test-services)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def health(tmp_path_factory, receivers):
    smtp, slack = receivers
    root = tmp_path_factory.mktemp("health")
    dags = root / "dags"
    files = prepare_project(root, dags)
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({READER: READER_PASSWORD, ADMIN: ADMIN_PASSWORD}))
    env = {
        "AIRFLOW_CONN_WAREHOUSE_HEALTH": json.dumps({"conn_type": "duckdb", "host": str(files["warehouse"])}),
        **alert_connections(smtp, slack),
        "ELT_ALERT_EMAIL_TO": "oncall@example.com",
        "ELT_TASK_RETRIES": "0",
        "ELT_BADGE_SECRET": BADGE_SECRET,
        # A real login: a reader (Airflow's Viewer role) and an admin who triggers the runs.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{READER}:viewer,{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
    }
    stack = AirflowStack(root / "airflow", dags, env, pools=("warehouse_health",)).start()
    token = httpx.post(f"{stack.base_url}/auth/token", json={"username": ADMIN, "password": ADMIN_PASSWORD})
    token.raise_for_status()
    stack.client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    stack.files = files
    stack.screenshots = root / "screenshots"
    stack.screenshots.mkdir()
    print(f"\nDashboard health screenshots: {stack.screenshots}")
    yield stack
    stack.stop()


def run_once(stack: AirflowStack) -> str:
    run_id = stack.trigger(DAG_ID)
    stack.wait_for_run(DAG_ID, run_id, timeout=900)
    return run_id


def api_health(stack: AirflowStack) -> dict[str, dict]:
    answer = stack.client.get(f"{stack.base_url}/dashboards/api/health")
    answer.raise_for_status()
    return {d["name"]: d for d in answer.json()["dashboards"] if d["dag_id"] == DAG_ID}


def cli_health(stack: AirflowStack) -> dict[str, dict]:
    """``elt health --json`` against the same metadata database, as an engineer at a terminal."""
    done = subprocess.run(
        [str(BIN / "elt"), "health", "--json", "--dag-id", DAG_ID],
        env=stack.env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {d["name"]: d for d in json.loads(done.stdout)["dashboards"]}


def asset_events(stack: AirflowStack, name: str) -> list[dict]:
    assets = stack.client.get("/assets", params={"name_pattern": name}).json()["assets"]
    asset = next(a for a in assets if a["name"] == name)
    events = stack.client.get("/assets/events", params={"asset_id": asset["id"], "limit": 100})
    return events.json()["asset_events"]


def log_in(browser, stack: AirflowStack, screenshots: Path) -> None:
    """Open the page without a session: Airflow's login page comes first, then the page."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{stack.base_url}/dashboards/")
    wait = WebDriverWait(browser, 60)
    wait.until(until.presence_of_element_located((By.CSS_SELECTOR, "input[type=password]")))
    assert "/auth/login" in browser.current_url
    browser.save_screenshot(str(screenshots / "0-login.png"))
    browser.find_element(By.CSS_SELECTOR, "input:not([type=password]):not([type=hidden])").send_keys(READER)
    browser.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(READER_PASSWORD + Keys.ENTER)
    try:  # back where the reader was going
        WebDriverWait(browser, 30).until(lambda b: b.current_url.rstrip("/").endswith("/dashboards"))
    except TimeoutException:
        browser.get(f"{stack.base_url}/dashboards/")
    assert "Dashboard health" in browser.title, browser.current_url


def follow_lineage(browser, stack: AirflowStack, screenshots: Path) -> dict:
    """On a dashboard's own page: its lineage's node states, then the link of the failed sync to its log."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{stack.base_url}/dashboards/{DAG_ID}/support_operations")
    nodes = browser.find_elements(By.CSS_SELECTOR, "g[data-node]")
    states = {n.get_attribute("data-node"): n.get_attribute("data-state") for n in nodes}
    causes = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "[data-cause]")]
    browser.save_screenshot(str(screenshots / "2b-lineage.png"))
    link = browser.find_element(By.CSS_SELECTOR, "a[href*='/tasks/sync_support_desk']")
    href = link.get_attribute("href")
    link.click()
    WebDriverWait(browser, 90).until(lambda b: "support_tickets.csv" in b.page_source)
    browser.save_screenshot(str(screenshots / "2c-sync-log.png"))
    return {"states": states, "causes": causes, "href": href, "log_page": browser.current_url}


def page_statuses(browser, stack: AirflowStack, shot: Path) -> dict[str, tuple[str, str]]:
    """(status, why) per dashboard row of the list page, as a reader sees it."""
    from selenium.webdriver.common.by import By

    browser.get(f"{stack.base_url}/dashboards/")
    browser.save_screenshot(str(shot))
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-dashboard]")
    return {r.get_attribute("data-dashboard"): (r.get_attribute("data-status"), r.text) for r in rows}


@pytest.fixture(scope="module")
def three_runs(health, browser):
    """Each run, then what the page, the JSON, the CLI and the assets say after it."""
    seen = {}
    log_in(browser, health, health.screenshots)
    for step in ("green", "failures", "recovered"):
        if step == "failures":
            health.files["tickets"].rename(health.files["tickets"].with_suffix(".away"))
            health.files["flag"].touch()
        if step == "recovered":
            health.files["tickets"].with_suffix(".away").rename(health.files["tickets"])
            health.files["flag"].unlink()
        if step == "failures":
            run_id = health.trigger(DAG_ID)
            # While it runs: the last run's status, marked refreshing, until this run shows a failure.
            live = health.wait_until(lambda: refreshing(api_health(health)), 120, "a refreshing dashboard", 0.5)
            health.wait_for_run(DAG_ID, run_id, timeout=900)
        else:
            run_id, live = run_once(health), None
        seen[step] = {
            "live": live,
            "run_id": run_id,
            "api": api_health(health),
            "cli": cli_health(health),
            "page": page_statuses(browser, health, health.screenshots / f"{len(seen) + 1}-{step}.png"),
            "events": {name: len(asset_events(health, f"{DAG_ID}.{name}")) for name in DASHBOARDS},
        }
        if step == "failures":
            seen[step]["lineage"] = follow_lineage(browser, health, health.screenshots)
    return seen


def refreshing(answer: dict[str, dict]) -> dict[str, str]:
    return {name: d["status"] for name, d in answer.items() if d["refreshing"]}


def statuses(answer: dict[str, dict]) -> dict[str, str]:
    return {name: d["status"] for name, d in answer.items()}


def test_a_green_run_shows_every_dashboard_fresh_everywhere(three_runs):
    green = three_runs["green"]
    fresh = dict.fromkeys(DASHBOARDS, "fresh")
    assert statuses(green["api"]) == fresh
    assert statuses(green["cli"]) == fresh
    assert {name: status for name, (status, _) in green["page"].items()} == fresh
    for name in DASHBOARDS:
        assert green["api"][name]["data_as_of"], name
        assert "Everything it reads was refreshed" in green["page"][name][1]
    assert green["events"] == dict.fromkeys(DASHBOARDS, 1)  # one asset event per fresh dashboard


def test_a_failed_sync_and_a_failed_check_each_name_their_cause(three_runs):
    failures = three_runs["failures"]
    assert failures["live"] and set(failures["live"].values()) == {"fresh"}  # the previous run's, mid-run
    expected = {"customer_360": "stale", "sales_performance": "broken", "support_operations": "stale"}
    assert statuses(failures["api"]) == expected
    assert statuses(failures["cli"]) == expected
    assert {name: status for name, (status, _) in failures["page"].items()} == expected
    for name in ("customer_360", "support_operations"):
        causes = failures["api"][name]["causes"]
        assert [(c["kind"], c["task_id"]) for c in causes] == [("connection", "sync_support_desk")], name
        assert "No such file or directory" in causes[0]["message"]  # the sync's own error
        assert "The data load Help desk tickets (CSV export) did not succeed" in failures["page"][name][1]
        assert not failures["api"][name]["needs_fix"]
        assert failures["api"][name]["expected_fresh"] is None  # the DAG's runs are triggered, not scheduled
    sales = failures["api"]["sales_performance"]
    assert [(c["kind"], c["name"]) for c in sales["causes"]] == [("test", PRODUCTS_CHECK)]
    assert "Got 100 results, configured to fail if != 0" in sales["causes"][0]["message"]
    assert sales["needs_fix"]
    assert "Needs a fix" in failures["page"]["sales_performance"][1]
    support = failures["api"]["support_operations"]
    assert support["held_back"] == ["stg_support__tickets", "tickets"]
    # data as of: the previous run's help desk data, still in the tables
    assert support["data_as_of"] == three_runs["green"]["api"]["support_operations"]["data_as_of"]
    assert failures["events"] == three_runs["green"]["events"]  # no asset event for any of them


def test_after_recovery_every_dashboard_is_fresh_again_with_an_event_each(three_runs):
    recovered = three_runs["recovered"]
    assert set(statuses(recovered["api"]).values()) == {"fresh"}
    assert {status for status, _ in recovered["page"].values()} == {"fresh"}
    assert recovered["events"] == dict.fromkeys(DASHBOARDS, 2)
    # fresh since this run's end; the promise of support_operations stays missed for today's deadline
    assert recovered["api"]["support_operations"]["promise"]["missed"]
    assert recovered["api"]["sales_performance"]["promise"] is None


def test_a_reader_follows_the_lineage_from_a_stale_dashboard_to_the_failed_sync_s_log(three_runs):
    failures = three_runs["failures"]
    lineage = failures["lineage"]
    assert lineage["states"]["Help desk tickets (CSV export)"] == "failed"
    assert lineage["states"]["support.tickets"] == "held_back"
    assert lineage["states"]["tickets"] == "held_back"
    assert lineage["states"]["support_operations"] == "stale"
    assert lineage["causes"] and "did not succeed" in lineage["causes"][0]
    run_id = failures["run_id"]
    assert f"/dags/{DAG_ID}/runs/" in lineage["href"] and "/tasks/sync_support_desk?try_number=1" in lineage["href"]
    assert quote(run_id) in lineage["href"]  # that run's try, not the latest's
    assert "/tasks/sync_support_desk" in lineage["log_page"]  # Airflow's own page of that try, its log shown


def test_airflow_s_home_page_shows_no_plugin_import_error(health, browser, three_runs):
    """Each plugin of the package registers once (an egg-info beside the editable install made it twice)."""
    from selenium.webdriver.support.ui import WebDriverWait

    errors = health.client.get("/plugins/importErrors").json()
    assert errors["total_entries"] == 0, errors["import_errors"]
    plugins = {p["name"] for p in health.client.get("/plugins").json()["plugins"]}
    assert {"dashboard_health", "transform_triggerer"} <= plugins
    browser.get(f"{health.base_url}/")
    # The nav holds the plugin's own link once the home page has rendered.
    WebDriverWait(browser, 60).until(lambda b: "Dashboard health" in b.page_source)
    browser.save_screenshot(str(health.screenshots / "4-airflow-home.png"))
    assert "Import Error" not in browser.page_source


def test_the_badge_needs_its_token_and_shows_only_status_and_age(health, browser, three_runs):
    svg_url = f"{health.base_url}/dashboards/{DAG_ID}/sales_performance/badge.svg"
    anonymous = httpx.Client(timeout=30)
    from elt_platform.health.plugin import badge_token

    token = badge_token(DAG_ID, "sales_performance", BADGE_SECRET)
    assert anonymous.get(svg_url, params={"token": "wrong"}).status_code == 403
    other = badge_token(DAG_ID, "customer_360", BADGE_SECRET)
    assert anonymous.get(svg_url, params={"token": other}).status_code == 403  # one token per dashboard
    badge = anonymous.get(svg_url, params={"token": token})
    assert badge.status_code == 200 and badge.headers["content-type"].startswith("image/svg+xml")
    assert "Sales performance" in badge.text and "fresh" in badge.text
    assert "frame-ancestors *" in badge.headers["content-security-policy"]
    browser.get(f"{health.base_url}/dashboards/{DAG_ID}/sales_performance/badge.html?token={token}")
    assert "fresh" in browser.page_source
    browser.save_screenshot(str(health.screenshots / "6-badge.png"))


def test_without_login_the_pages_send_to_login_and_the_json_answers_401(health, three_runs):
    anonymous = httpx.Client(base_url=health.base_url, timeout=30)
    page = anonymous.get("/dashboards/", headers={"Accept": "text/html"})
    assert page.status_code == 302 and "/auth/login" in page.headers["location"]
    assert anonymous.get(f"/dashboards/{DAG_ID}/sales_performance", headers={"Accept": "text/html"}).status_code == 302
    assert anonymous.get("/dashboards/api/health").status_code == 401
    forged = anonymous.get("/dashboards/api/health", headers={"Authorization": "Bearer not-a-jwt"})
    assert forged.status_code in (401, 403)


def test_a_missed_fresh_by_alerts_its_owner_once(health, receivers, three_runs):
    smtp, _ = receivers
    check = health.trigger(f"{DAG_ID}__fresh_by")
    assert health.wait_for_run(f"{DAG_ID}__fresh_by", check) == "success"
    to_owner = [m for m in smtp.messages if "support-analytics@example.com" in (m["To"] or "")]
    assert len(to_owner) == 1, [m["Subject"] for m in to_owner]
    assert "Support operations was not fresh by" in to_owner[0]["Subject"]
    body = to_owner[0].get_body(("html", "plain")).get_content()
    assert f"/dashboards/{DAG_ID}/support_operations" in body
    others = [m for m in smtp.messages if "-analytics@example.com" in (m["To"] or "") and m not in to_owner]
    assert others == []  # the dashboards without a promise alerted nobody
