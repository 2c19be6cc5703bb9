"""Copies of the bundled project, changed and parsed again by dbt (a process), then checked by
the real DAG factory or by `elt check` run as a user runs it."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
import yaml

from elt_platform.dag_factory import build_elt_dag
from elt_platform.errors import ConfigurationError
from elt_platform.health.promises import CHECK_SCHEDULE
from elt_platform.ingestion.contract import load_and_check
from elt_platform.settings import Settings
from tests.conftest import contract_problems, copy_project, dbt_parse, elt_check, write_dag_file


def test_per_model_retries_from_dbt_meta_reach_the_task(tmp_path):
    from tests.integration.scenarios import make_transient

    dbt_dir, ingestion_dir = copy_project(tmp_path)
    make_transient(dbt_dir, tmp_path / "markers")
    dbt_parse(dbt_dir)
    dag = build_elt_dag(dag_id="meta", dbt_project_dir=dbt_dir, ingestion_dir=ingestion_dir)
    assert dag.get_task("transform.stg_support__tickets").retries == 2
    assert dag.get_task("transform.stg_faker__users").retries == Settings.from_env().retries.retries


def declare_external(dbt_dir, source_file: str) -> None:
    path = dbt_dir / "models" / "staging" / source_file
    spec = yaml.safe_load(path.read_text())
    spec["sources"][0]["meta"] = {"elt": {"external": True}}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def test_a_source_declared_external_needs_no_connection(project):
    dbt_dir, ingestion_dir = project
    (ingestion_dir / "support_desk.yml").unlink()
    declare_external(dbt_dir, "support/_support__sources.yml")
    connections, manifest = load_and_check(ingestion_dir, dbt_dir, dbt_parse(dbt_dir))
    assert [c.spec.dbt_source for c in connections] == ["faker"]
    assert {s.name for s in manifest.sources.values() if s.external} == {"support.tickets"}


def test_a_source_declared_external_that_a_connection_loads_is_a_contradiction(project):
    dbt_dir, ingestion_dir = project
    declare_external(dbt_dir, "support/_support__sources.yml")
    message = contract_problems(dbt_dir, ingestion_dir, dbt_parse(dbt_dir))
    assert "ingestion/support_desk.yml: dbt_source: dbt source 'support' is declared external" in message
    assert "remove 'external' from the source's meta, or remove this connection" in message


def test_check_command_reports_problems_and_exit_code(project):
    dbt_dir, ingestion_dir = project
    ok = elt_check(dbt_dir, ingestion_dir)
    assert ok.returncode == 0, ok.stderr
    assert "ok  shop_faker.yml" in ok.stdout

    (dbt_dir / "models" / "staging" / "faker" / "_faker__sources.yml").write_text(
        (dbt_dir / "models" / "staging" / "faker" / "_faker__sources.yml")
        .read_text()
        .replace("  - name: faker\n", "  - name: fakr\n")
    )
    (dbt_dir / "models" / "staging" / "faker").joinpath("stg_faker__users.sql").write_text(
        "select * from {{ source('fakr', 'users') }}"
    )
    for model in ("products", "purchases"):
        (dbt_dir / "models" / "staging" / "faker" / f"stg_faker__{model}.sql").write_text(
            f"select * from {{{{ source('fakr', '{model}') }}}}"
        )
    dbt_parse(dbt_dir)
    bad = elt_check(dbt_dir, ingestion_dir)
    assert bad.returncode == 1
    assert "ingestion/shop_faker.yml: dbt_source: dbt source 'faker' does not exist" in bad.stderr
    assert "sources.fakr: no ingestion connection loads dbt source 'fakr'" in bad.stderr


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


def test_elt_check_names_the_model_column_and_fix_of_a_planted_varchar(tmp_path):
    dbt_dir, ingestion_dir = copy_project(tmp_path)
    models = dbt_dir / "models" / "marts" / "sales" / "_sales__models.yml"
    models.write_text(models.read_text().replace("data_type: string", "data_type: varchar", 1))
    dbt_parse(dbt_dir)

    result = elt_check(dbt_dir, ingestion_dir)

    assert result.returncode == 1
    assert (
        "models/marts/sales/_sales__models.yml: models.orders.columns.product_name.data_type: "
        "'varchar' is not a type BigQuery accepts (no GoogleSQL type is named VARCHAR)"
    ) in result.stderr
    assert "Fix: use string" in result.stderr


def test_elt_check_on_bigquery_names_each_python_model_and_the_fix(tmp_path):
    dbt_dir, ingestion_dir = copy_project(tmp_path)
    (dbt_dir / "models" / "marts" / "sales" / "order_scores.py").write_text(
        "def model(dbt, session):\n    return dbt.ref('orders').df()\n"
    )
    dbt_parse(dbt_dir)

    assert elt_check(dbt_dir, ingestion_dir).returncode == 0  # DuckDB runs Python models itself
    result = elt_check(dbt_dir, ingestion_dir, ELT_WAREHOUSE_TYPE="bigquery")

    assert result.returncode == 1
    assert "models/marts/sales/order_scores.py: models.order_scores: a Python model; on BigQuery dbt runs" in (
        result.stderr
    )
    assert "Fix: write it in SQL for BigQuery, or keep this project on DuckDB" in result.stderr
    with pytest.raises(ConfigurationError, match="order_scores"):  # and the DAG does not import
        build_elt_dag(
            dag_id="py",
            dbt_project_dir=dbt_dir,
            ingestion_dir=ingestion_dir,
            settings=replace(Settings.from_env(), warehouse_type="bigquery"),
        )


def test_the_manifest_is_read_where_dbt_wrote_it_and_the_error_says_where_it_looked(tmp_path, monkeypatch):
    dbt_dir, ingestion_dir = copy_project(tmp_path)
    project_file = dbt_dir / "dbt_project.yml"
    project_file.write_text(project_file.read_text() + '\ntarget-path: "../dbt_output"\n')
    shutil.rmtree(dbt_dir / "target", ignore_errors=True)
    dbt_parse(dbt_dir)
    assert not (dbt_dir / "target" / "manifest.json").exists()

    dag = build_elt_dag(dag_id="tp", dbt_project_dir=dbt_dir, ingestion_dir=ingestion_dir)
    assert "transform.orders" in dag.task_ids

    elsewhere = tmp_path / "from_env"
    dbt_parse(dbt_dir, DBT_TARGET_PATH=str(elsewhere))  # the variable wins over target-path, as in dbt
    monkeypatch.setenv("DBT_TARGET_PATH", str(elsewhere))
    (tmp_path / "dbt_output" / "manifest.json").unlink()
    dag = build_elt_dag(dag_id="env", dbt_project_dir=dbt_dir, ingestion_dir=ingestion_dir)
    assert "transform.orders" in dag.task_ids

    monkeypatch.delenv("DBT_TARGET_PATH")
    with pytest.raises(FileNotFoundError) as missing:
        build_elt_dag(dag_id="gone", dbt_project_dir=dbt_dir, ingestion_dir=ingestion_dir)
    assert str(missing.value).startswith(
        f"dbt manifest not found at {tmp_path / 'dbt_output' / 'manifest.json'} "
        f"(target-path: ../dbt_output in {project_file})"
    )
