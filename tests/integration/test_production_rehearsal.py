"""A production rehearsal on one machine: the shipped DAG on the image's environments, CeleryExecutor
with two workers, two schedulers and two triggerers, login enforced, remote task logs, syncs on the
Airbyte API (the loopback stand-in) and the warehouse on the BigQuery emulator (tests/integration/production.py).

One run, with what production does to it:
- the Celery worker running a sync is SIGKILLed while the sync waits for Airbyte's answer
  (a replacement worker starts, as Kubernetes would restart the pod);
- while the retried sync waits in a triggerer for its Airbyte job (and every model task waits
  there too), one scheduler and that triggerer are SIGKILLed;
- a sync's first Airbyte job fails: its retry alert carries a log link, fetched through the
  API server after the worker that ran that try has been shut down.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

import boto3
import httpx
import pytest

from devstack.airflow_stack import free_port
from tests.conftest import REPO
from tests.integration import bigquery_emulator
from tests.integration.airbyte_api import AirbyteApi
from tests.integration.production import SCHEDULERS, TRIGGERERS, WORKERS, ProductionCluster
from tests.integration.receivers import SlackWebhookReceiver
from tests.integration.test_airbyte_backend import FAKER, STREAMS, SUPPORT

pytestmark = pytest.mark.integration

DAG_ID = "shop_elt"
BUCKET = "elt-task-logs"
WEBHOOK = "/services/T0REHEARSAL/B0REHEARSAL/rehearsal-webhook"
S3_KEYS = {
    "aws_access_key_id": "rehearsal-key",
    "aws_secret_access_key": "rehearsal-secret",
    "region_name": "us-east-1",
}
REPLACEMENT_WORKER = "worker-c"
# The first Airbyte job of the support desk fails; the retry starts a new one, which succeeds.
SUPPORT_FIRST_JOB = ["pending", "running", "failed"]
# The faker's one job runs long enough (a poll every 2 s) for a triggerer to die while following it.
FAKER_JOB = ["pending", "queued", *["running"] * 12, "succeeded"]


@dataclass
class Rehearsal:
    cluster: ProductionCluster
    airbyte: AirbyteApi
    slack: SlackWebhookReceiver
    bigquery: object
    s3: object
    tickets: int
    run_id: str = ""
    state: str = ""
    tis: dict[str, dict] = field(default_factory=dict)
    killed_worker: str = ""
    killed_triggerer: str = ""
    triggers_at_kill: int = 0
    triggers_taken_over: int = 0
    google_tokens: int = 0
    scheduler_heartbeats: dict = field(default_factory=dict)
    run_end: object = None

    def tries(self, task_id: str) -> list[dict]:
        response = self.cluster.client.get(f"/dags/{DAG_ID}/dagRuns/{self.run_id}/taskInstances/{task_id}/tries")
        response.raise_for_status()
        return response.json()["task_instances"]


def _triggers_by_triggerer(cluster: ProductionCluster) -> dict[str, int]:
    rows = cluster.query(
        "select j.hostname, count(*) from trigger t join job j on j.id = t.triggerer_id group by j.hostname"
    )
    return dict(rows)


def _task(cluster: ProductionCluster, run_id: str, task_id: str) -> dict:
    return cluster.client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}").json()


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    from moto.server import ThreadedMotoServer

    root = tmp_path_factory.mktemp("rehearsal")
    emulator, bigquery_url, bigquery = bigquery_emulator.start(root)
    tickets = bigquery_emulator.seed(bigquery)
    google = bigquery_emulator.MetadataServer()
    s3_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    moto.start()
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}", **S3_KEYS)
    s3.create_bucket(Bucket=BUCKET)
    airbyte = AirbyteApi(connections=STREAMS).start()
    slack = SlackWebhookReceiver(WEBHOOK).start()

    env = {
        "AIRFLOW_CONN_AIRBYTE": json.dumps(
            {
                "conn_type": "airbyte",
                "host": airbyte.url,
                "login": airbyte.client_id,
                "password": airbyte.client_secret,
                "extra": {"timeout": 120},  # seconds an API answer may take (the SDK's default is 5)
            }
        ),
        "AIRFLOW_CONN_WAREHOUSE": json.dumps(
            {"conn_type": "google_cloud_platform", "extra": {"project": bigquery_emulator.PROJECT}}
        ),
        "AIRFLOW_CONN_TASK_LOGS": json.dumps(
            {
                "conn_type": "aws",
                "login": S3_KEYS["aws_access_key_id"],
                "password": S3_KEYS["aws_secret_access_key"],
                "extra": {"endpoint_url": f"http://127.0.0.1:{s3_port}", "region_name": S3_KEYS["region_name"]},
            }
        ),
        "AIRFLOW_CONN_SLACK_ALERTS": json.dumps({"conn_type": "slackwebhook", "password": slack.url}),
        "ELT_ALERT_ON_RETRY": "true",
        "ELT_BIGQUERY_API_ENDPOINT": bigquery_url,
        **google.environment(),
        "ELT_AIRBYTE_POLL_SECONDS": "2",
        "ELT_TASK_RETRIES": "1",
        "ELT_RETRY_DELAY_SECONDS": "1",
    }
    cluster = ProductionCluster(root / "airflow", REPO / "dags", env, f"s3://{BUCKET}/airflow").start()
    observed = Rehearsal(cluster, airbyte, slack, bigquery, s3, tickets)
    try:
        cluster.log_in()
        _run_with_faults(observed)
        observed.google_tokens = google.tokens_issued
        yield observed
    finally:
        _keep_task_logs(s3, root / "task-logs")
        cluster.stop()
        airbyte.stop()
        slack.stop()
        google.stop()
        moto.stop()
        emulator.terminate()
        emulator.wait(timeout=30)


def _keep_task_logs(s3, folder) -> None:
    """The bucket's task logs, copied beside the components' logs for whoever debugs a failed rehearsal."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            path = folder / item["Key"]
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(BUCKET, item["Key"], str(path))


def _run_with_faults(r: Rehearsal) -> None:
    cluster, airbyte = r.cluster, r.airbyte
    airbyte.slow_submit[FAKER] = 30  # Airbyte takes its time to answer: the sync is on its worker meanwhile
    airbyte.queue(FAKER, FAKER_JOB)
    airbyte.queue(SUPPORT, SUPPORT_FIRST_JOB)
    r.run_id = cluster.trigger(DAG_ID)

    # 1. The worker running the faker sync dies while Airbyte has started the job but not yet answered.
    def faker_on_a_worker():
        ti = _task(cluster, r.run_id, "sync_shop_faker")
        return ti["hostname"] if ti["state"] == "running" and airbyte.jobs_of(FAKER) else None

    r.killed_worker = cluster.wait_until(faker_on_a_worker, 300, "the faker sync running on a worker", interval=1)
    cluster.kill(r.killed_worker)
    cluster.launch(REPLACEMENT_WORKER, ["celery", "worker", "--celery-hostname", f"{REPLACEMENT_WORKER}@rehearsal"])

    # 2. While the retried sync follows its Airbyte job from the triggerer (and every model task
    #    waits there too), one scheduler and the triggerer holding the sync's wait die.
    def sync_deferred_again():
        ti = _task(cluster, r.run_id, "sync_shop_faker")
        holder = cluster.query(
            "select j.hostname from task_instance ti join trigger t on t.id = ti.trigger_id "
            "join job j on j.id = t.triggerer_id where ti.task_id = 'sync_shop_faker'"
        )
        return holder[0][0] if ti["state"] == "deferred" and ti["try_number"] == 2 and holder else None

    r.killed_triggerer = cluster.wait_until(sync_deferred_again, 300, "the sync's wait in a triggerer", interval=1)
    r.triggers_at_kill = _triggers_by_triggerer(cluster)[r.killed_triggerer]
    cluster.kill(SCHEDULERS[0])
    cluster.kill(r.killed_triggerer)
    survivor = next(t for t in TRIGGERERS if t != r.killed_triggerer)

    def taken_over():
        held = _triggers_by_triggerer(cluster)
        return held.get(survivor) if held and set(held) == {survivor} else None

    r.triggers_taken_over = cluster.wait_until(taken_over, 120, f"{survivor} holding every trigger", interval=1)

    r.state = cluster.wait_for_run(DAG_ID, r.run_id, timeout=900)
    r.tis = cluster.task_instances(DAG_ID, r.run_id)
    heartbeats = "select hostname, latest_heartbeat from job where job_type = 'SchedulerJob'"
    r.scheduler_heartbeats = dict(cluster.query(heartbeats))
    [(r.run_end,)] = cluster.query(f"select end_date from dag_run where run_id = '{r.run_id}'")


def test_login_is_enforced(rehearsal):
    anonymous = httpx.Client(base_url=rehearsal.cluster.base_url)
    assert anonymous.get("/api/v2/dags").status_code == 401
    assert rehearsal.cluster.client.get("/dags").status_code == 200  # the user logged in through the form


def test_the_shipped_dag_runs_green_on_the_bigquery_warehouse(rehearsal):
    states = {task_id: ti["state"] for task_id, ti in rehearsal.tis.items()}
    assert rehearsal.state == "success", states
    assert states.pop("transform.fail_run_if_a_node_failed") == "skipped"  # runs only when a node failed
    assert set(states.values()) == {"success"}, states

    def count(table: str) -> int:
        return next(iter(rehearsal.bigquery.query(f"select count(*) from analytics_prod.{table}").result()))[0]

    assert count("customers") == bigquery_emulator.USERS
    assert count("tickets") == rehearsal.tickets
    assert rehearsal.google_tokens >= 1  # dbt authenticated as the pod's service account (workload identity)


def test_tasks_ran_on_several_celery_workers_and_passing_models_on_none(rehearsal):
    workers = {*WORKERS, REPLACEMENT_WORKER}
    hosts = {task_id: ti["hostname"] for task_id, ti in rehearsal.tis.items()}
    every_try = {
        t["hostname"] for task_id, ti in rehearsal.tis.items() if ti["try_number"] > 1 for t in rehearsal.tries(task_id)
    }
    assert len((set(hosts.values()) | every_try) & workers) >= 2, (hosts, every_try)
    # dbt ran once per set of loads, as a subprocess from the image's dbt environment, and reported
    # every node: the node tasks passed in the triggerer without a worker.
    nodes = {t: h for t, h in hosts.items() if t.startswith("transform.") and not t.startswith("transform.dbt_build")}
    assert {t: h for t, h in nodes.items() if h in workers} == {}


def test_a_killed_worker_s_sync_is_retried_elsewhere_and_follows_the_same_airbyte_job(rehearsal):
    first, second = rehearsal.tries("sync_shop_faker")
    assert first["hostname"] == rehearsal.killed_worker
    assert first["state"] in {"failed", "up_for_retry"}
    assert second["state"] == "success" and second["hostname"] != rehearsal.killed_worker
    [job] = rehearsal.airbyte.jobs_of(FAKER)  # started once, followed by the retry
    assert job.status == "succeeded"
    log = rehearsal.cluster.task_log(DAG_ID, rehearsal.run_id, "sync_shop_faker", 2).text
    assert f"Airbyte job {job.job_id} of connection {FAKER} is already" in log


def test_a_killed_scheduler_and_triggerer_leave_the_run_whole(rehearsal):
    killed, survivor = (rehearsal.scheduler_heartbeats[name] for name in SCHEDULERS)
    assert killed < rehearsal.run_end and killed < survivor  # the run ended under the other scheduler alone
    assert rehearsal.triggers_at_kill > 0
    assert rehearsal.triggers_taken_over >= rehearsal.triggers_at_kill  # the sync's wait and the model tasks'
    # No try ran twice: every task has one try, but the two syncs that failed on purpose.
    retried = {task_id for task_id, ti in rehearsal.tis.items() if ti["try_number"] > 1}
    assert retried == {"sync_shop_faker", "sync_support_desk"}, retried
    first, second = rehearsal.airbyte.jobs_of(SUPPORT)  # one Airbyte job per try
    assert (first.status, second.status) == ("failed", "succeeded")


def test_the_alert_s_log_link_outlives_the_worker_that_ran_the_try(rehearsal):
    cluster = rehearsal.cluster
    [alert] = [t for t in rehearsal.slack.texts() if "sync_support_desk" in t]
    link = re.search(r"<(http[^|>]+)\|Open the log of this try>", alert).group(1)
    url = urlparse(link)
    assert url.netloc == urlparse(cluster.base_url).netloc
    match = re.fullmatch(r"/dags/([^/]+)/runs/([^/]+)/tasks/([^/]+)", url.path)
    dag_id, run_id, task_id = match.groups()
    try_number = int(parse_qs(url.query)["try_number"][0])
    assert (dag_id, task_id, try_number) == (DAG_ID, "sync_support_desk", 1)

    worker = next(t for t in rehearsal.tries(task_id) if t["try_number"] == 1)["hostname"]
    if cluster.named[worker].poll() is None:
        cluster.shut_down(worker)
    assert cluster.named[worker].poll() is not None

    log = cluster.task_log(dag_id, run_id, task_id, try_number)
    assert log.status_code == 200
    first_job = rehearsal.airbyte.jobs_of(SUPPORT)[0]
    assert f"Airbyte job {first_job.job_id} ended as failed" in log.text
    keys = [o["Key"] for o in rehearsal.s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert any(f"task_id={task_id}" in k and "attempt=1" in k for k in keys), keys
    anonymous = httpx.Client(base_url=cluster.base_url)
    assert anonymous.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/1").status_code == 401
