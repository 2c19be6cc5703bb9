"""The same DAG, switched to the Airbyte backend by one setting, against the loopback Airbyte API.

An Airflow of its own (with a triggerer: the syncs defer) runs with ``ELT_INGESTION_BACKEND=airbyte``.
The stand-in API plays scripted job histories and moves no data, so the warehouse's raw
tables are first loaded by the local backend's runner, with the real connectors.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from devstack.airflow_stack import AirflowStack
from elt_platform.ingestion.connections import load_connection_file, resolve_config
from elt_platform.ingestion.local_sync import run_local_sync, sync_request
from elt_platform.settings import Settings
from tests.conftest import copy_project, write_dag_file
from tests.integration.airbyte_api import AirbyteApi

pytestmark = pytest.mark.integration

FAKER = "4b7e1f52-3c0a-4f7e-9a51-6f2d8c1e0a11"
SUPPORT = "9d3a6c7e-58b1-4e2f-8c44-1a7b5e9f3d20"
STREAMS = {FAKER: ["users", "products", "purchases"], SUPPORT: ["tickets"]}


def load_raw_tables(ingestion_dir: Path, warehouse: Path) -> None:
    """What the local backend's syncs load (its runner, real connectors), with no Airflow."""
    settings = Settings.from_env()
    for path in sorted(ingestion_dir.glob("*.yml")):
        loaded, problems = load_connection_file(path)
        assert loaded is not None, problems
        config = resolve_config(loaded.spec.source.config, path)
        run_local_sync(sync_request(loaded.spec, config, str(warehouse)), settings, logging.getLogger(path.stem))


@pytest.fixture(scope="module")
def airbyte(tmp_path_factory):
    api = AirbyteApi(connections=STREAMS).start()
    root = tmp_path_factory.mktemp("airbyte")
    dags = root / "dags"
    dbt_dir, ingestion_dir = copy_project(root / "project")
    # The stand-in moves no data: the models read what the local backend loaded.
    load_raw_tables(ingestion_dir, root / "warehouse.duckdb")
    write_dag_file(dags, "airbyte_elt", dbt_dir, ingestion_dir)
    write_dag_file(dags, "airbyte_bad_credentials", dbt_dir, ingestion_dir, airbyte_conn_id="'airbyte_bad'")
    write_dag_file(dags, "airbyte_timeout", dbt_dir, ingestion_dir, sync_timeout="timedelta(seconds=10)")

    def conn(secret: str) -> str:
        return json.dumps({"conn_type": "airbyte", "host": api.url, "login": api.client_id, "password": secret})

    env = {
        "ELT_INGESTION_BACKEND": "airbyte",
        # Scripted jobs move on at every poll: a few seconds apart, as real jobs take minutes.
        "ELT_AIRBYTE_POLL_SECONDS": "3",
        "ELT_TASK_RETRIES": "0",
        "AIRFLOW_CONN_AIRBYTE": conn(api.client_secret),
        "AIRFLOW_CONN_AIRBYTE_BAD": conn("not-the-secret"),
        "AIRFLOW_CONN_WAREHOUSE": json.dumps({"conn_type": "duckdb", "host": str(root / "warehouse.duckdb")}),
    }
    stack = AirflowStack(root / "airflow", dags, env).start()
    yield stack, api
    stack.stop()
    api.stop()


def _run(stack, dag_id: str) -> tuple[str, dict[str, dict]]:
    run_id = stack.trigger(dag_id)
    state = stack.wait_for_run(dag_id, run_id, timeout=900)
    return state, stack.task_instances(dag_id, run_id) | {"__run_id__": {"state": state, "run_id": run_id}}


def test_syncs_wait_through_queued_incomplete_errors_and_slow_answers(airbyte):
    stack, api = airbyte
    api.queue(FAKER, ["pending", "queued", "http-500", ("slow", 3), "queued", "running", "succeeded"])
    api.queue(SUPPORT, ["running", "incomplete", "running", "succeeded"])  # an attempt failed; Airbyte retried

    state, tis = _run(stack, "airbyte_elt")

    assert state == "success", {t: ti["state"] for t, ti in tis.items()}
    run_id = tis["__run_id__"]["run_id"]
    [faker_job] = api.jobs_of(FAKER)
    [support_job] = api.jobs_of(SUPPORT)
    assert faker_job.status == support_job.status == "succeeded"
    assert faker_job.polls >= 7 and support_job.polls >= 4  # every scripted state was observed
    result = stack.client.get(
        f"/dags/airbyte_elt/dagRuns/{run_id}/taskInstances/sync_shop_faker/xcomEntries/return_value",
        params={"deserialize": "true", "stringify": "false"},
    ).json()["value"]
    assert result == {
        "backend": "airbyte",
        "job_id": faker_job.job_id,
        "status": "succeeded",
        "rows_synced": 1500,
        "bytes_synced": 245760,
    }
    log = stack.task_log("airbyte_elt", run_id, "sync_shop_faker", 1).text
    assert "1500 rows, 245760 bytes synced" in log
    assert tis["sync_shop_faker"]["state"] == "success"
    transform = {t: ti["state"] for t, ti in tis.items() if t.startswith("transform.")}
    assert transform.pop("transform.fail_run_if_a_node_failed") == "skipped"  # runs only when a node failed
    assert set(transform.values()) == {"success"}, transform


def test_failed_and_cancelled_jobs_fail_their_sync_and_hold_back_their_models(airbyte):
    stack, api = airbyte
    api.queue(FAKER, ["pending", "running", "failed"])
    api.queue(SUPPORT, ["pending", "running", "cancelled"])

    state, tis = _run(stack, "airbyte_elt")

    assert state == "failed"
    assert tis["sync_shop_faker"]["state"] == tis["sync_support_desk"]["state"] == "failed"
    builds = {t for t in tis if t.startswith("transform.dbt_build")}
    assert len(builds) == 3 and {tis[b]["state"] for b in builds} == {"skipped"}  # nothing left to build
    assert tis["transform.fail_run_if_a_node_failed"]["state"] == "failed"
    own = {*builds, "transform.fail_run_if_a_node_failed"}
    nodes = {t: ti["state"] for t, ti in tis.items() if t.startswith("transform.") and t not in own}
    sources = {t for t in nodes if t.count(".") == 2}  # transform.<source>.<table>
    assert {nodes[t] for t in sources} == {"upstream_failed"}, nodes
    assert {nodes[t] for t in set(nodes) - sources} == {"upstream_failed"}, nodes  # the models, held back
    run_id = tis["__run_id__"]["run_id"]
    assert "ended as failed" in stack.task_log("airbyte_elt", run_id, "sync_shop_faker", 1).text
    assert "was cancelled" in stack.task_log("airbyte_elt", run_id, "sync_support_desk", 1).text


def test_bad_credentials_fail_with_the_token_endpoint_401(airbyte):
    stack, api = airbyte
    jobs_before = len(api.jobs)

    state, tis = _run(stack, "airbyte_bad_credentials")

    assert state == "failed"
    assert tis["sync_shop_faker"]["state"] == "failed"
    assert len(api.jobs) == jobs_before  # nothing was started
    log = stack.task_log("airbyte_bad_credentials", tis["__run_id__"]["run_id"], "sync_shop_faker", 1).text
    assert "401" in log
    assert "not-the-secret" not in log


def test_a_sync_that_times_out_cancels_its_airbyte_job(airbyte):
    stack, api = airbyte
    api.queue(FAKER, ["running"])  # never finishes
    api.queue(SUPPORT, ["pending", "running", "failed"])  # keeps the models from running: only the timeout matters

    state, tis = _run(stack, "airbyte_timeout")

    assert state == "failed"
    assert tis["sync_shop_faker"]["state"] == "failed"
    stuck = api.jobs_of(FAKER)[-1]
    assert ("DELETE", f"/v1/jobs/{stuck.job_id}") in api.requests
    assert stuck.status == "cancelled"


def test_a_sync_follows_the_newest_job_of_its_connection_when_it_is_still_running(monkeypatch):
    """What a try does when its previous try's worker died after starting the job: Airbyte lists
    a connection's jobs oldest first unless asked, so the newest must be asked for."""
    from airflow.providers.airbyte.hooks.airbyte import AirbyteHook

    from elt_platform.ingestion.sync_operator import SyncOperator
    from elt_platform.settings import Settings
    from tests.conftest import REPO

    api = AirbyteApi(connections=STREAMS).start()
    try:
        conn = {"conn_type": "airbyte", "host": api.url, "login": api.client_id, "password": api.client_secret}
        monkeypatch.setenv("AIRFLOW_CONN_AIRBYTE_LISTING", json.dumps(conn))
        hook = AirbyteHook(airbyte_conn_id="airbyte_listing")
        task = SyncOperator(
            task_id="sync_shop_faker",
            connection_file=str(REPO / "ingestion" / "shop_faker.yml"),
            settings=Settings(ingestion_backend="airbyte", airbyte_conn_id="airbyte_listing"),
        )
        task.connection_id = FAKER
        api.queue(FAKER, ["failed"])
        api.queue(FAKER, ["running"])
        older = hook.submit_sync_connection(connection_id=FAKER).job_id
        assert hook.get_job_status(older) == "failed"  # the earlier try's job ended
        assert task._active_job(hook) is None  # nothing to follow: a new job is started

        newer = hook.submit_sync_connection(connection_id=FAKER).job_id
        assert hook.get_job_status(newer) == "running"
        assert task._active_job(hook).job_id == newer
        with pytest.raises(Exception, match="409"):  # what starting another would get from Airbyte
            hook.submit_sync_connection(connection_id=FAKER)
    finally:
        api.stop()
