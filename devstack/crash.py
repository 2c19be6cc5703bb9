"""Killing the build's dbt mid-build, as the kernel does on out-of-memory: shared by the crash
test (tests/integration/shared_airflow/test_crash_recovery.py), which checks what a run that
recovers does, and the benchmark (bench/run.py, ``project_default_crash``), which times it.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil

from elt_platform.transform.results import PRODUCER_TASK_ID, RESULTS_XCOM_KEY, NodeRecord, records_of

# The producer's task id in a DAG built by build_elt_dag whose nodes share one set of loads (the
# benchmark's projects); with several, each build is ``transform.dbt_build__<connection>…``.
PRODUCER = f"transform.{PRODUCER_TASK_ID}"


def holder_of(path: Path) -> psutil.Process | None:
    """The process with the warehouse file open: dbt, inside the build task's process."""
    for proc in psutil.process_iter():
        try:
            if any(Path(f.path) == path for f in proc.open_files()):
                return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def published_results(
    client: httpx.Client, dag_id: str, run_id: str, producer: str = PRODUCER
) -> dict[str, NodeRecord] | None:
    """The build's ``dbt_results`` as published so far, through the REST API; None before any."""
    response = client.get(
        f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{producer}/xcomEntries/{RESULTS_XCOM_KEY}",
        params={"deserialize": True},
    )
    if response.status_code != 200:
        return None
    return records_of(response.json()["value"])
