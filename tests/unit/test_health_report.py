"""Dashboards read from a real (SQLite) Airflow metadata database: one registration that cannot be read
shows that dashboard as unknown, saying why, and every other one as usual, on the pages and in the JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from elt_platform import dependency_internals
from elt_platform.dbt_manifest import load_manifest
from elt_platform.health import plugin
from elt_platform.health.publish import dashboard_asset
from elt_platform.health.report import REGISTRATION, DashboardHealth, report

DAG_ID = "shop_elt"
SYNCS = {"faker": "sync_shop_faker", "support": "sync_support_desk"}
TITLES = {"sync_shop_faker": "Shop (Faker)", "sync_support_desk": "Help desk tickets"}
NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
BROKEN = "customer_360"  # first by name: the others follow it on the page and in the DAG's queries
OTHERS = ("sales_performance", "support_operations")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """An empty Airflow metadata database with the current schema."""
    from airflow.models import import_all_models
    from airflow.models.base import Base
    from sqlalchemy import create_engine

    import_all_models()
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('airflow') / 'airflow.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine):
    """A session whose rows are gone after the test."""
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        yield session
        session.rollback()


def register(session, name: str, extra) -> None:
    """A dashboard as the DAG processor records it: an active asset that a task of the DAG outputs."""
    from airflow.models.asset import AssetActive, AssetModel, TaskOutletAssetReference

    asset = AssetModel(name=f"{DAG_ID}.{name}", uri=f"dbt-exposure://{DAG_ID}/{name}", group="dashboard", extra=extra)
    session.add(asset)
    session.flush()
    session.add(AssetActive.for_asset(asset))
    session.add(TaskOutletAssetReference(asset_id=asset.id, dag_id=DAG_ID, task_id=f"dashboards.{name}"))
    session.flush()


def factory_extra(manifest: Path, name: str) -> dict:
    """The extra the DAG factory writes for the exposure ``name`` of ``manifest``."""
    read = load_manifest(manifest)
    exposure = next(e for e in read.exposures.values() if e.name == name)
    return dashboard_asset(DAG_ID, exposure, read, SYNCS, "transform", TITLES).extra


def failed_sync_run(session) -> None:
    """One ended run in which the shop's sync failed (and nothing else ran)."""
    from airflow.models import DagRun, TaskInstance
    from sqlalchemy import insert

    started = NOW - timedelta(minutes=10)
    session.execute(
        insert(DagRun.__table__).values(
            dag_id=DAG_ID, run_id="r1", run_type="manual", state="failed",
            start_date=started, end_date=NOW - timedelta(minutes=5), run_after=started,
        )
    )  # fmt: skip
    session.execute(
        insert(TaskInstance.__table__).values(
            dag_id=DAG_ID, run_id="r1", task_id="sync_shop_faker", map_index=-1, state="failed", try_number=1,
            pool="default_pool", end_date=NOW - timedelta(minutes=6),
        )
    )  # fmt: skip


def manifest_problem(tmp_path: Path, manifest_path: Path, case: str) -> tuple[Path, str]:
    """A manifest path the broken registration names, and a phrase its reason must hold."""
    path = tmp_path / "target" / "manifest.json"
    path.parent.mkdir()
    if case == "missing":
        return path, "cannot be read"
    if case == "a folder":
        path.mkdir()
        return path, "cannot be read"
    if case == "not JSON":
        path.write_text('{"metadata": {')
        return path, "not valid JSON"
    if case == "wrong shape":  # a manifest of a dbt this platform reads, its nodes and sources gone
        metadata = json.loads(manifest_path.read_text())["metadata"]
        path.write_text(json.dumps({"metadata": metadata, "nodes": []}))
        return path, "dbt manifest"
    raise AssertionError(case)


def assert_only_the_broken_one_is_unknown(session, words: tuple[str, ...]) -> None:
    by_name = {h.name: h for h in report(session, now=NOW)}
    assert set(by_name) == {BROKEN, *OTHERS}
    broken = by_name[BROKEN]
    assert (broken.status, broken.needs_fix, broken.data_as_of) == ("unknown", True, None)
    [cause] = broken.causes
    assert (cause.kind, cause.name, cause.task_id) == (REGISTRATION, f"{DAG_ID}.{BROKEN}", f"dashboards.{BROKEN}")
    for word in (*words, "Fix:"):
        assert word in cause.message, cause.message
    for name in OTHERS:  # read from the manifest, and assessed on the run
        other = by_name[name]
        assert other.label != name and other.connections and other.status == "stale", other
    sales = by_name["sales_performance"]
    assert ("connection", "Shop (Faker)") in [(c.kind, c.name) for c in sales.causes]  # the failed sync


@pytest.mark.parametrize("case", ["missing", "a folder", "not JSON", "wrong shape"])
def test_a_manifest_that_cannot_be_read_makes_only_its_dashboard_unknown(session, manifest_path, tmp_path, case):
    broken_manifest, phrase = manifest_problem(tmp_path, manifest_path, case)
    extra = factory_extra(manifest_path, BROKEN)
    extra["elt"]["manifest"] = str(broken_manifest)
    register(session, BROKEN, extra)
    for name in OTHERS:
        register(session, name, factory_extra(manifest_path, name))
    failed_sync_run(session)
    assert_only_the_broken_one_is_unknown(session, (str(broken_manifest), phrase))


def without(extra: dict, key: str) -> dict:
    extra["elt"].pop(key)
    return extra


def retyped(extra: dict, **values) -> dict:
    extra["elt"].update(values)
    return extra


@pytest.mark.parametrize(
    ("break_extra", "words"),
    [
        (lambda e: without(e, "group"), ("group: Field required",)),
        (lambda e: without(e, "manifest"), ("manifest: Field required",)),
        (lambda e: retyped(e, syncs=["faker"], exposure=42), ("syncs:", "exposure:")),
        (lambda e: retyped(e, titles={"sync_shop_faker": None}), ("titles.sync_shop_faker:",)),
        (lambda e: {"elt": "customer_360"}, ("elt:",)),
        (lambda e: retyped(e, exposure="retired_dashboard"), ("has no exposure 'retired_dashboard'",)),
    ],
    ids=["no group", "no manifest", "wrong types", "a title not text", "not an object", "exposure gone"],
)
def test_an_extra_that_cannot_be_read_makes_only_its_dashboard_unknown(session, manifest_path, break_extra, words):
    register(session, BROKEN, break_extra(factory_extra(manifest_path, BROKEN)))
    for name in OTHERS:
        register(session, name, factory_extra(manifest_path, name))
    failed_sync_run(session)
    assert_only_the_broken_one_is_unknown(session, (f"{DAG_ID}.{BROKEN}", *words))


def test_a_dashboard_asset_not_made_by_the_factory_is_not_listed(session, manifest_path):
    register(session, "tableau_extract", {"owner": "bi-team"})  # the group's name is not ours alone
    register(session, "no_extra", None)
    register(session, BROKEN, factory_extra(manifest_path, BROKEN))
    assert [h.name for h in report(session, now=NOW)] == [BROKEN]


def test_the_pages_and_the_json_show_the_others_and_why_one_is_unknown(session, manifest_path, monkeypatch):
    get_user = dependency_internals.request_user()

    register(session, BROKEN, without(factory_extra(manifest_path, BROKEN), "group"))
    for name in OTHERS:
        register(session, name, factory_extra(manifest_path, name))
    monkeypatch.setattr(plugin, "_report", lambda dag_id=None, lineage=False: report(session, NOW, dag_id, lineage))
    monkeypatch.setattr(plugin, "_readable", lambda user, items: items)
    monkeypatch.setitem(plugin.app.dependency_overrides, get_user, lambda: "reader")
    client = TestClient(plugin.app)

    answer = client.get("/api/health")
    assert answer.status_code == 200
    statuses = {d["name"]: (d["status"], [c["kind"] for c in d["causes"]]) for d in answer.json()["dashboards"]}
    assert statuses == {BROKEN: ("unknown", ["registration"]), **{n: ("unknown", []) for n in OTHERS}}
    page = client.get("/")
    assert page.status_code == 200
    assert f'<tr data-dashboard="{BROKEN}" data-status="unknown">' in page.text
    assert f"Its registration, the asset {DAG_ID}.{BROKEN}, cannot be read" in page.text
    assert '<tr data-dashboard="sales_performance" data-status="unknown">' in page.text
    detail = client.get(f"/{DAG_ID}/{BROKEN}")
    assert detail.status_code == 200 and "group: Field required" in detail.text
    assert client.get(f"/{DAG_ID}/sales_performance").status_code == 200


def test_elt_health_json_is_the_api_s_answer(session, manifest_path, monkeypatch, capsys):
    """The CLI and the API server read through the read model and write the one JSON shape."""
    from contextlib import contextmanager

    from elt_platform import run_history
    from elt_platform.cli.commands import main

    register(session, BROKEN, without(factory_extra(manifest_path, BROKEN), "group"))
    for name in OTHERS:
        register(session, name, factory_extra(manifest_path, name))
    failed_sync_run(session)

    @contextmanager
    def reading():
        yield run_history.RunHistory(session)

    monkeypatch.setattr(run_history, "reading", reading)
    monkeypatch.setattr(plugin, "_readable", lambda user, items: items)
    monkeypatch.setitem(plugin.app.dependency_overrides, dependency_internals.request_user(), lambda: "reader")
    api = TestClient(plugin.app).get("/api/health")
    assert api.status_code == 200 and api.headers["content-type"] == "application/json"

    assert main(["health", "--json", "--dag-id", DAG_ID]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == api.json()
    assert printed.startswith('{\n  "dashboards": [')  # for people: indented
    by_name = {d["name"]: d for d in api.json()["dashboards"]}
    assert set(by_name) == {BROKEN, *OTHERS} and "lineage" not in by_name[BROKEN]
    assert by_name["sales_performance"]["status"] == "stale"  # the failed sync, read from the run
    # A reader (the bench, a dashboard tool) parses it back with the one model.
    assert DashboardHealth.model_validate(by_name["sales_performance"]).status == "stale"
