"""One real Airflow (API server, scheduler with LocalExecutor, DAG processor, triggerer) for
every test in this folder, which pytest runs in one lane, in order (tests/conftest.py).

Before it starts, the DAG folder receives the repository's own DAG, one DAG per failure
scenario (tests/integration/scenarios.py) and one per corpus project and transform mode,
each with its own DuckDB warehouse. All runs are triggered through the REST API and shared
by the assertions about them. Alerts go to real SMTP and HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devstack.airflow_stack import AirflowStack
from tests import conformance
from tests.conftest import REPO
from tests.integration import scenarios
from tests.integration.receivers import alert_connections

LINEAGE_NAMESPACE = "elt-tests"  # Airflow's [openlineage] namespace in the shared stack

DAG_IDS = ("shop_elt", "alerts_models", "alerts_sync")


def corpus_dag_ids() -> list[str]:
    return [f"corpus_{project}_{mode}" for project in conformance.PROJECTS for mode in conformance.MODES]


def corpus_project(dag_id: str) -> str | None:
    """The corpus project a corpus DAG runs (``corpus_<project>_<mode>``), else None."""
    for project in conformance.PROJECTS:
        if dag_id in (f"corpus_{project}_{mode}" for mode in conformance.MODES):
            return project
    return None


SECOND_RUN = "{}@2"  # the key of a DAG's second run in ``runs``: corpus projects that build twice


@dataclass
class DagRunResult:
    dag_id: str
    run_id: str
    state: str
    tis: dict[str, dict]
    warehouse: Path
    slack: list[str] = field(default_factory=list)
    email: list[tuple[str, str]] = field(default_factory=list)
    # Each dashboard's health as the API server's JSON said right after the runs, by name.
    health: dict[str, dict] = field(default_factory=dict)
    # Corpus projects: the project's folder, and the same project built by hand (plain `dbt build`
    # in its own folder, a copy of its own): that project's folder and warehouse, for comparison.
    project_dir: Path | None = None
    by_hand: tuple[Path, Path] | None = None

    @property
    def states(self) -> dict[str, str]:
        return {task_id: ti["state"] for task_id, ti in self.tis.items()}

    def with_state(self, state: str) -> set[str]:
        return {task_id for task_id, s in self.states.items() if s == state}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, receivers, lineage_receiver, corpus):
    if not Path(os.environ.get("ELT_INGESTION_PYTHON", "/missing")).exists():
        pytest.fail("ELT_INGESTION_PYTHON is not set to the PyAirbyte environment: run the suite with `make test`")
    smtp, slack = receivers
    root = tmp_path_factory.mktemp("integration")
    dags = root / "dags"
    dags.mkdir()
    (dags / "shop_elt.py").symlink_to(REPO / "dags" / "shop_elt.py")
    projects = scenarios.prepare(root, dags) | scenarios.reuse_corpus(root, dags)
    projects |= conformance.write_dags(root, dags, corpus)

    warehouses = {"shop_elt": root / "shop_elt.duckdb"} | {d: root / f"{d}.duckdb" for d in projects}
    for dag_id, project_dir in projects.items():
        conformance.load_external_sources(project_dir, warehouses[dag_id])
    env = {
        "AIRFLOW_CONN_WAREHOUSE": json.dumps({"conn_type": "duckdb", "host": str(warehouses["shop_elt"])}),
        **{
            f"AIRFLOW_CONN_WAREHOUSE_{dag_id.upper()}": json.dumps({"conn_type": "duckdb", "host": str(path)})
            for dag_id, path in warehouses.items()
            if dag_id != "shop_elt"
        },
        **alert_connections(smtp, slack),
        "ELT_ALERT_EMAIL_TO": "oncall@example.com",
        # One quick retry everywhere, so that retries and "alert on the final try only" are exercised.
        "ELT_TASK_RETRIES": "1",
        "ELT_RETRY_DELAY_SECONDS": "1",
        "ELT_MAX_RETRY_DELAY_SECONDS": "5",
        "SUPPORT_DESK_URL": f"/nonexistent/{scenarios.PLANTED_PATH_SECRET}/tickets.csv",
        # Lineage on, as a deployment turns it on: Airflow's own [openlineage] settings.
        "AIRFLOW__OPENLINEAGE__TRANSPORT": lineage_receiver.transport(),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": LINEAGE_NAMESPACE,
    }
    pools = ("warehouse", *(f"warehouse_{dag_id}" for dag_id in projects))
    airflow = AirflowStack(root / "airflow", dags, env, pools=pools).start()
    airflow.projects = projects
    airflow.warehouses = warehouses
    yield airflow
    airflow.stop()


def _result(stack, dag_id: str, run_id: str) -> DagRunResult:
    state = stack.wait_for_run(dag_id, run_id, timeout=2400)
    return DagRunResult(
        dag_id=dag_id,
        run_id=run_id,
        state=state,
        tis=stack.task_instances(dag_id, run_id),
        warehouse=stack.warehouses[dag_id],
    )


def _by_hand(root: Path, project: str) -> tuple[Path, Path]:
    """The corpus project built by hand, in a copy of its own; returns its warehouse file and folder."""
    project_dir = conformance.copy_project(project, root / project)
    warehouse = root / f"{project}.duckdb"
    output = conformance.build_by_hand(project_dir, warehouse)
    (root / f"{project}.log").write_text(output)
    return warehouse, project_dir


@pytest.fixture(scope="session")
def runs(stack, receivers, tmp_path_factory) -> dict[str, DagRunResult]:
    """Every DAG triggered at once (each has its own warehouse file and pool), each run to its end:
    the shipped one, the failure scenarios, and each corpus project in both transform modes.

    A corpus project that builds twice is triggered again once its first run ended and its
    loader's second batch is in (key ``SECOND_RUN``). Meanwhile each corpus project is built by
    hand too, in a copy of its own."""
    smtp, slack = receivers
    by_hand_root = tmp_path_factory.mktemp("by_hand")
    with ThreadPoolExecutor(max_workers=1) as pool:
        by_hand = {project: pool.submit(_by_hand, by_hand_root, project) for project in conformance.PROJECTS}
        run_ids = {dag_id: stack.trigger(dag_id) for dag_id in (*DAG_IDS, *corpus_dag_ids())}
        twice = [d for d in run_ids if d in stack.projects and conformance.builds_twice(stack.projects[d])]
        results = {}
        for dag_id in twice:  # small projects: they end first
            results[dag_id] = _result(stack, dag_id, run_ids[dag_id])
            if results[dag_id].state == "success":
                conformance.load_external_sources(
                    stack.projects[dag_id], stack.warehouses[dag_id], conformance.EXTERNAL_LOAD_AGAIN
                )
                run_ids[SECOND_RUN.format(dag_id)] = stack.trigger(dag_id)
        for key, run_id in run_ids.items():
            dag_id = key.partition("@")[0]
            if key not in results:
                results[key] = _result(stack, dag_id, run_id)
        for key, result in results.items():
            if project := corpus_project(key.partition("@")[0]):
                result.by_hand = by_hand[project].result()
                result.project_dir = stack.projects[result.dag_id]
    health = stack.client.get(f"{stack.base_url}/dashboards/api/health")
    health.raise_for_status()
    for dashboard in health.json()["dashboards"]:
        if dashboard["dag_id"] in results:
            results[dashboard["dag_id"]].health[dashboard["name"]] = dashboard
    for result in results.values():
        result.slack = [t for t in slack.texts() if f"*DAG:* {result.dag_id}\n" in t]
        result.email = [
            (m["Subject"], body)
            for m, body in zip(smtp.messages, smtp.bodies(), strict=True)
            if f"<td>{result.dag_id}</td>" in body
        ]
    # Kept beside the Airflow logs for whoever debugs a failing run.
    received = {"slack": slack.texts(), "email": [b for b in smtp.bodies()]}
    (stack.home.parent / "received-alerts.json").write_text(json.dumps(received, indent=2))
    return results
