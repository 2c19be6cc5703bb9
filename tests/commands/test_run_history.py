"""The read model, and the commands built on it, over a run that Airflow itself made.

In an Airflow home of its own (SQLite), ``elt run`` runs a small DAG (``airflow dags test``): a
sync-like task returning its rows and emitting an asset event, a task pushing a tuple, a task
failing on both its tries and one held back by it. Then ``elt summary`` prints it, and
``run_history`` reads the same database: what Airflow wrote, as Airflow wrote it.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk import DagRunState, TaskInstanceState

from devstack import BIN
from elt_platform.run_history import RETURN_VALUE_KEY, RunHistory, XComSelector
from elt_platform.task_states import TRY_ENDED

DAG_ID = "history_probe"
DAG_FILE = '''"""A small DAG whose run the read model's tests read back."""

from datetime import timedelta

from airflow.sdk import Asset, dag, task


@dag(schedule=None)
def history_probe():
    @task(outlets=[Asset("history_probe.synced")])
    def sync_rows():
        return {"rows_synced": 1234}

    @task
    def push_pair(ti=None):
        ti.xcom_push(key="pair", value=("a", 1))

    @task(retries=1, retry_delay=timedelta(seconds=0))
    def flaky():
        raise RuntimeError("planned failure")

    @task
    def after_flaky():
        return "never"

    sync_rows() >> push_pair()
    flaky() >> after_flaky()


history_probe()
'''


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory) -> dict:
    """A migrated metadata database, and the output of ``elt run`` of the DAG on it."""
    root = tmp_path_factory.mktemp("run-history")
    (root / "dags").mkdir()
    (root / "dags" / f"{DAG_ID}.py").write_text(DAG_FILE)
    database = root / "airflow.db"
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",  # `elt run` starts `airflow dags test`
        "AIRFLOW_HOME": str(root),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{database}",
    }
    migrated = run([str(BIN / "airflow"), "db", "migrate"], env)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    started = datetime.now(UTC)
    done = run([str(BIN / "elt"), "run", "--dag-id", DAG_ID, "--log", str(root / "run.log")], env)
    # `airflow dags test`'s own exit code: the run failed, as planned.
    assert done.returncode == 1, (done.stdout, done.stderr[-2000:], (root / "run.log").read_text()[-2000:])
    return {"env": env, "database": database, "run": done.stdout, "started": started, "root": root}


@pytest.fixture
def history(airflow):
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    engine = create_engine(f"sqlite:///{airflow['database']}")
    with Session(engine) as session:
        yield RunHistory(session)
    engine.dispose()


def test_elt_run_shows_each_task_as_its_try_ends(airflow):
    lines = [line.split() for line in airflow["run"].splitlines() if line.startswith("  ")]
    shown = {(words[0], words[1]) for words in lines}
    assert {("ok", "sync_rows"), ("ok", "push_pair"), ("FAIL", "flaky"), ("held", "after_flaky")} <= shown
    sync = next(line for line in airflow["run"].splitlines() if "sync_rows" in line)
    assert "1,234 rows" in sync  # its return value, read back
    failed = next(line for line in airflow["run"].splitlines() if "FAIL" in line)
    assert "try 2" in failed


def test_the_run_as_airflow_recorded_it(airflow, history):
    [run] = history.runs(DAG_ID)
    assert run.state is DagRunState.FAILED and run.run_type == "manual"
    assert run.start_date >= airflow["started"] - timedelta(seconds=5) and run.end_date >= run.start_date
    assert history.latest_run(DAG_ID, after=airflow["started"] - timedelta(seconds=5)) == run
    assert history.run(DAG_ID, run.run_id) == run

    tasks = {t.task_id: t for t in history.task_instances(DAG_ID, run.run_id)}
    assert {name: (t.state, t.try_number) for name, t in tasks.items()} == {
        "sync_rows": (TaskInstanceState.SUCCESS, 1),
        "push_pair": (TaskInstanceState.SUCCESS, 1),
        "flaky": (TaskInstanceState.FAILED, 2),
        "after_flaky": (TaskInstanceState.UPSTREAM_FAILED, 0),
    }
    assert tasks["sync_rows"].duration > 0 and tasks["sync_rows"].end_date > tasks["sync_rows"].start_date
    assert tasks["flaky"].log_url.endswith("/tasks/flaky?try_number=2")
    assert {t.task_id for t in history.task_instances(DAG_ID, run.run_id, states=TRY_ENDED)} == set(tasks)


def test_xcoms_come_back_as_the_tasks_pushed_them(airflow, history):
    run = history.latest_run(DAG_ID)
    found = history.xcoms(DAG_ID, run.run_id, XComSelector(RETURN_VALUE_KEY), XComSelector("pair", "push_pair"))
    assert found == {("sync_rows", RETURN_VALUE_KEY): {"rows_synced": 1234}, ("push_pair", "pair"): ("a", 1)}
    [recorded] = history.xcom_history(DAG_ID, ["push_pair"], "pair", airflow["started"] - timedelta(hours=1))
    assert (recorded.run_id, recorded.value, recorded.run_ended_at) == (run.run_id, ("a", 1), run.end_date)


def test_the_asset_the_sync_declares_and_its_event(airflow, history):
    [asset] = history.outlet_assets("asset")  # Airflow's default group
    assert (asset.name, asset.dag_id, asset.task_id) == ("history_probe.synced", DAG_ID, "sync_rows")
    [when] = history.asset_event_times([asset.asset_id], airflow["started"] - timedelta(minutes=1))[asset.asset_id]
    run = history.latest_run(DAG_ID)
    assert run.start_date <= when <= run.end_date
    facts = history.dag(DAG_ID)
    assert facts.is_paused and facts.next_run is None  # as `airflow dags test` leaves it: no schedule
    assert history.live_scheduler() is None  # `elt run` ran without one


def test_elt_summary_prints_the_run_and_counts_the_warehouse_s_rows(airflow, tmp_path):
    import duckdb

    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:  # a raw table of the bundled project, and a mart
        con.execute("create schema raw_faker; create table raw_faker.users as select range as id from range(3)")
        con.execute("create table raw_faker._airbyte_raw_users as select 1 as id")  # Airbyte's own: not listed
        con.execute("create schema analytics; create table analytics.orders as select range as id from range(2)")
    done = run([str(BIN / "elt"), "summary", "--dag-id", DAG_ID, "--warehouse", str(warehouse)], airflow["env"])
    assert done.returncode == 1, done.stderr[-2000:]  # the run failed
    out = done.stdout
    assert f"DAG {DAG_ID}, run manual__" in out and ": FAILED" in out
    assert "1 failed, 2 success, 1 upstream_failed" in out
    assert [line.split() for line in out.split("\nTasks\n")[1].split("\n\n")[0].splitlines()] == [
        ["after_flaky", "upstream_failed"],
        ["flaky", "failed"],
        ["push_pair", "success"],
        ["sync_rows", "success"],
    ]
    raw = out.split("Raw tables (rows)\n")[1].split("\n\n")[0]
    marts = out.split("Marts (rows)\n")[1].split("\n\n")[0]
    assert raw.split() == ["raw_faker.users", "3"] and marts.split() == ["analytics.orders", "2"]
    assert "Dashboards" in out


def test_an_untested_airflow_is_refused_where_the_database_is_read():
    """The gate, in a process of its own: the module's import fails, naming it and the fix."""
    probe = "import airflow; airflow.__version__ = '3.4.0'; import elt_platform.run_history"
    done = run([str(BIN / "python"), "-c", probe], {**os.environ})
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("elt_platform.run_history.UntestedAirflow: elt_platform.run_history reads"), last
    assert "not 3.4.0" in last and "Fix:" in last


def test_elt_health_json_is_the_document_alone(airflow):
    """What Airflow and Cosmos log as they load goes to stderr: a program reads stdout as JSON."""
    done = run([str(BIN / "elt"), "health", "--json"], airflow["env"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {"dashboards": []}  # the probe DAG publishes no dashboard
