"""The dashboards task group, the fresh_by check DAG, and what the pages and badges show."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from elt_platform.connections import ConfigurationError
from elt_platform.dag_factory import build_elt_dag
from elt_platform.health.pages import badge_svg, list_page, plain_text
from elt_platform.health.plugin import badge_token
from elt_platform.health.promises import CHECK_SCHEDULE
from elt_platform.health.publish import PublishDashboardHealth, PublishMarts
from elt_platform.health.report import CauseView, DashboardHealth
from tests.conftest import REPO, copy_project, dbt_parse, write_dag_file

DASHBOARDS = ("customer_360", "sales_performance", "support_operations")


@pytest.fixture(scope="module")
def dag(manifest_path):
    return build_elt_dag(dag_id="health", dbt_project_dir=REPO / "dbt_project", ingestion_dir=REPO / "ingestion")


def test_each_dashboard_publishes_after_the_marts_task_which_waits_for_every_writer(dag):
    marts = dag.get_task("dashboards.marts")
    assert type(marts) is PublishMarts
    assert marts.pool == "warehouse" and marts.trigger_rule == "all_done"  # counts rows once writers are done
    relationships = "transform.relationships_orders_product_id__product_id__ref_products_"
    assert {"transform.dbt_build", relationships, "transform.orders", "transform.customers"} <= marts.upstream_task_ids
    for name in DASHBOARDS:
        task = dag.get_task(f"dashboards.{name}")
        assert type(task) is PublishDashboardHealth
        assert task.upstream_task_ids == {"dashboards.marts"}
        assert (task.trigger_rule, task.pool, task.retries) == ("all_done", "default_pool", 0)


def test_each_dashboard_is_an_asset_that_says_where_its_lineage_comes_from(dag):
    task = dag.get_task("dashboards.support_operations")
    (asset,) = task.outlets
    assert (asset.name, asset.uri, asset.group) == (
        "health.support_operations",
        "dbt-exposure://health/support_operations",
        "dashboard",
    )
    elt = asset.extra["elt"]
    assert elt["exposure"] == "support_operations" and elt["group"] == "transform"
    assert elt["syncs"] == {"faker": "sync_shop_faker", "support": "sync_support_desk"}
    assert elt["titles"]["sync_support_desk"] == "Help desk tickets (CSV export)"
    assert elt["manifest"] == str(REPO / "dbt_project" / "target" / "manifest.json")
    # what it reads: its own events (its promise) and the table it shows
    assert [a.name for a in task.inlets] == ["health.support_operations", "health.tickets"]


def test_a_project_without_exposures_gets_no_dashboards_group(tmp_path):
    dbt_dir, ingestion_dir = copy_project(tmp_path)
    (dbt_dir / "models" / "exposures.yml").unlink()
    dbt_parse(dbt_dir)
    bare = build_elt_dag(dag_id="bare", dbt_project_dir=dbt_dir, ingestion_dir=ingestion_dir)
    assert not [t for t in bare.task_ids if t.startswith("dashboards.")]


def promise(tmp_path, fresh_by: str):
    dbt_dir, ingestion_dir = copy_project(tmp_path)
    exposures = dbt_dir / "models" / "exposures.yml"
    spec = yaml.safe_load(exposures.read_text())
    spec["exposures"][2]["config"] = {"meta": {"fresh_by": fresh_by, "fresh_by_timezone": "Europe/Paris"}}
    exposures.write_text(yaml.safe_dump(spec, sort_keys=False))
    dbt_parse(dbt_dir)
    return dbt_dir, ingestion_dir


def test_a_promise_adds_a_check_dag_every_10_minutes_that_airflow_finds(tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    dbt_dir, ingestion_dir = promise(tmp_path, "07:00")
    dags = write_dag_file(tmp_path / "dags", "promised", dbt_dir, ingestion_dir).parent
    bag = DagBag(dag_folder=str(dags))
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == ["promised", "promised__fresh_by"]
    check = bag.dags["promised__fresh_by"]
    task = check.get_task("check_promises")
    assert [a.name for a in task.inlets] == ["promised.support_operations"]  # the only promised dashboard
    assert check.schedule == CHECK_SCHEDULE == "*/10 * * * *"


def test_a_promise_that_is_not_a_time_is_refused_naming_the_file_and_the_field(tmp_path):
    dbt_dir, ingestion_dir = promise(tmp_path, "7am")
    with pytest.raises(ConfigurationError) as error:
        build_elt_dag(dag_id="bad_promise", dbt_project_dir=dbt_dir, ingestion_dir=ingestion_dir)
    message = str(error.value)
    assert "models/exposures.yml" in message
    assert "exposure support_operations, meta.fresh_by" in message
    assert "'7am' is not a time of day as HH:MM" in message and 'fresh_by: "07:00"' in message


def health(label="Sales <b>performance</b>", status="stale", causes=()) -> DashboardHealth:
    return DashboardHealth(
        dag_id="shop_elt", name="sales", label=label, url="", description="", owner="Sales", owner_email="",
        status=status, refreshing=False, run_id="r1", data_as_of=datetime(2026, 11, 27, 6, 2, tzinfo=UTC),
        sources_as_of={}, since=None, causes=list(causes), held_back=[], next_run=None, expected_fresh=None,
        needs_fix=False, connections=[], promise=None, lineage=[],
    )  # fmt: skip


def test_the_badge_shows_name_status_and_age_escaped_and_nothing_else():
    cause = CauseView(kind="model", name="orders", task_id="transform.orders", message="secret row 42", log_url="",
                      needs_fix=True)  # fmt: skip
    svg = badge_svg(health(causes=[cause]))
    assert "Sales &lt;b&gt;performance&lt;/b&gt;" in svg and "<b>" not in svg
    assert "stale · 27 Nov 2026, 06:02 UTC" in svg
    assert "secret row 42" not in svg and "orders" not in svg  # no cause, no data, no table


def test_badge_tokens_are_per_dashboard_and_off_without_a_secret():
    assert badge_token("shop_elt", "sales", "") is None
    one = badge_token("shop_elt", "sales", "s3cret")
    assert one != badge_token("shop_elt", "support", "s3cret") != badge_token("shop_elt", "sales", "other")
    assert len(one) == 32


def test_the_list_page_and_the_terminal_say_why_in_words():
    message = "[Errno 2] No such file or directory\nTraceback"
    cause = CauseView(kind="connection", name="Help desk tickets", task_id="sync_support_desk",
                      message=message, log_url="/dags/x", needs_fix=False)  # fmt: skip
    page = list_page([health(causes=[cause])], datetime(2026, 11, 27, tzinfo=UTC))
    assert "The data load Help desk tickets did not succeed." in page
    assert "Sales &lt;b&gt;performance&lt;/b&gt;" in page
    text = plain_text([health(label="Sales", causes=[cause])])
    assert "STALE" in text and "The data load Help desk tickets did not succeed: [Errno 2] No such file" in text
    assert "Traceback" not in text  # the first line of the message only


def test_a_badge_token_in_any_text_is_refused_not_a_server_error(monkeypatch):
    from fastapi import HTTPException

    from elt_platform.health.plugin import _badge_health

    monkeypatch.setenv("ELT_BADGE_SECRET", "s3cret")
    with pytest.raises(HTTPException) as refused:
        _badge_health("shop_elt", "sales", "é-not-ascii")
    assert refused.value.status_code == 403
    monkeypatch.delenv("ELT_BADGE_SECRET")
    with pytest.raises(HTTPException) as off:
        _badge_health("shop_elt", "sales", badge_token("shop_elt", "sales", "s3cret"))
    assert off.value.status_code == 404 and "ELT_BADGE_SECRET" in off.value.detail


def test_only_a_web_address_becomes_the_dashboard_s_link():
    from elt_platform.health.pages import detail_page

    page = detail_page(health().model_copy(update={"url": "javascript:alert(1)"}), lambda p: p, None)
    assert 'href="javascript:' not in page and "javascript:alert(1)" in page
    page = detail_page(health().model_copy(update={"url": "https://bi.example.com/d"}), lambda p: p, None)
    assert '<a href="https://bi.example.com/d">' in page
