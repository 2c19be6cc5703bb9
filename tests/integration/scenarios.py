"""Copies of the project, each broken in one known way, for the DAGs the integration tests run."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests import conformance
from tests.conftest import copy_project, dbt_parse, write_dag_file

BROKEN_MODEL = "int_purchases_joined_to_products"
PLANTED_PATH_SECRET = "planted-s3cret-7f3a9c"


def break_model(dbt_dir: Path) -> None:
    path = dbt_dir / "models" / "intermediate" / "sales" / f"{BROKEN_MODEL}.sql"
    path.write_text("select purchase_id, no_such_column from {{ ref('stg_faker__purchases') }}\n")


def make_transient(dbt_dir: Path, marker_dir: Path) -> None:
    """stg_support__tickets fails on its first two tries, then succeeds; it allows itself 2 retries."""
    marker_dir.mkdir(parents=True, exist_ok=True)
    sql = dbt_dir / "models" / "staging" / "support" / "stg_support__tickets.sql"
    hooks = (
        "{{ config(pre_hook=[\n"
        f"    \"copy (select 1 as attempt) to '{marker_dir}/attempt_{{{{ invocation_id }}}}.csv'\",\n"
        f"    \"select case when (select count(*) from glob('{marker_dir}/attempt_*.csv')) < 3 "
        "then error('transient glitch: warehouse briefly unavailable') end\",\n"
        "]) }}\n"
    )
    sql.write_text(hooks + sql.read_text())
    models = dbt_dir / "models" / "staging" / "support" / "_support__models.yml"
    spec = yaml.safe_load(models.read_text())
    spec["models"][0]["config"] = {"meta": {"cosmos": {"operator_kwargs": {"retries": 2, "retry_delay": 1}}}}
    models.write_text(yaml.safe_dump(spec, sort_keys=False))


def add_warn_test(dbt_dir: Path) -> None:
    """A warn-severity test on tickets.priority that fails: the CSV has 'urgent' tickets."""
    models = dbt_dir / "models" / "marts" / "support" / "_support_marts__models.yml"
    spec = yaml.safe_load(models.read_text())
    priority = next(c for c in spec["models"][0]["columns"] if c["name"] == "priority")
    priority["data_tests"] = [
        {"accepted_values": {"arguments": {"values": ["low", "normal", "high"]}, "config": {"severity": "warn"}}}
    ]
    models.write_text(yaml.safe_dump(spec, sort_keys=False))


def slow_down(dbt_dir: Path, model: str = "orders") -> None:
    """Give a mart a second or two of warehouse work first, so a test can crash the build mid-way."""
    sql = next((dbt_dir / "models").rglob(f"{model}.sql"))
    hook = '{{ config(pre_hook="select sum(i) from range(1500000000) t(i)") }}\n'
    sql.write_text(hook + sql.read_text())


def set_support_url(ingestion_dir: Path, url: dict) -> None:
    support = ingestion_dir / "support_desk.yml"
    spec = yaml.safe_load(support.read_text())
    spec["source"]["config"]["url"] = url
    support.write_text(yaml.safe_dump(spec, sort_keys=False))


def _scenario(root: Path, dags: Path, dag_id: str, change_project=None, change_ingestion=None, **settings: str) -> Path:
    """Copy the project, change it, rebuild its manifest if dbt files changed, write its DAG file."""
    dbt_dir, ingestion_dir = copy_project(root / dag_id)
    if change_project:
        change_project(dbt_dir)
        dbt_parse(dbt_dir)
    if change_ingestion:
        change_ingestion(ingestion_dir)
    # Its own DuckDB file, so its own one-slot pool: scenarios run beside each other.
    write_dag_file(
        dags,
        dag_id,
        dbt_dir,
        ingestion_dir,
        warehouse_conn_id=f"warehouse_{dag_id}",
        warehouse_pool=repr(f"warehouse_{dag_id}"),
        **settings,
    )
    return dbt_dir


def prepare(root: Path, dags: Path) -> dict[str, Path]:
    """Write one DAG file per scenario; return each scenario's dbt project directory."""

    def alerts_project(dbt_dir: Path) -> None:
        break_model(dbt_dir)
        make_transient(dbt_dir, root / "markers")
        add_warn_test(dbt_dir)

    return {
        "alerts_models": _scenario(root, dags, "alerts_models", change_project=alerts_project),
        "crash_recovery": _scenario(root, dags, "crash_recovery", change_project=slow_down),
        # Unchanged: its test makes the shop's load as slow as it needs (tests/.../test_per_source_timing.py).
        "one_slow_load": _scenario(root, dags, "one_slow_load"),
        # Unchanged, with its builds' state kept: its test runs it twice (test_reuse_unchanged.py).
        "reuse_unchanged": _scenario(root, dags, "reuse_unchanged", build_state=repr(str(root / "build_state"))),
        "alerts_sync": _scenario(
            root, dags, "alerts_sync", change_ingestion=lambda d: set_support_url(d, {"from_env": "SUPPORT_DESK_URL"})
        ),
    }


def reuse_corpus(root: Path, dags: Path) -> dict[str, Path]:
    """The corpus's ``shapes`` (seeds, snapshots, a macro, an external source), its builds' state
    kept, both of its source tables given a freshness check, so that whether each has new data can
    be told, its events' staging model incremental, and its daily revenue dbt's
    ``freshness.build_after`` of a day (test_reuse_corpus.py). Returns its DAG's id and project directory."""
    dag_id = "reuse_corpus"
    dbt_dir = conformance.copy_project("shapes", root / dag_id)
    sources = dbt_dir / "models" / "staging" / "app" / "_app__sources.yml"
    spec = yaml.safe_load(sources.read_text())
    orders = next(t for t in spec["sources"][0]["tables"] if t["name"] == "orders")
    orders["config"] = {"loaded_at_field": "updated_at", "freshness": {"warn_after": {"count": 1, "period": "day"}}}
    sources.write_text(yaml.safe_dump(spec, sort_keys=False))
    events = dbt_dir / "models" / "staging" / "app" / "stg_app__events.sql"
    source = "    select * from {{ source('app', 'events') }}\n"
    assert source in events.read_text()
    events.write_text(
        "{{ config(materialized='incremental', unique_key='event_id') }}\n"
        + events.read_text().replace(
            source,
            source + "    {% if is_incremental() %}\n"
            "    where loaded_at > (select max(loaded_at) from {{ this }})\n    {% endif %}\n",
        )
    )
    finance = dbt_dir / "models" / "marts" / "finance" / "_finance__models.yml"
    spec = yaml.safe_load(finance.read_text())
    spec["models"][0]["config"]["freshness"] = {"build_after": {"count": 1, "period": "day"}}
    finance.write_text(yaml.safe_dump(spec, sort_keys=False))
    dbt_parse(dbt_dir)
    write_dag_file(
        dags,
        dag_id,
        dbt_dir,
        None,
        warehouse_conn_id=f"warehouse_{dag_id}",
        build_state=repr(str(root / "build_state")),
        **conformance.dag_settings("build", dag_id),
    )
    return {dag_id: dbt_dir}
