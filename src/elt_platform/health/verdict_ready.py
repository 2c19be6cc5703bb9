"""Whether a dashboard's verdict for this run can be told yet, by one rule for its task (on a
worker) and its trigger (in the triggerer): its builds have ended, and dbt passed every part it
reads (fresh, before the node tasks report) or every part's task has ended (so that a model's
retry is counted before the dashboard is called stale or broken)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from elt_platform.dbt_manifest import load_manifest
from elt_platform.health import lineage, records
from elt_platform.health.rules import Dashboard, RunOutcome, Status, TaskOutcome, assess
from elt_platform.task_states import ENDED
from elt_platform.transform.results import RESULTS_XCOM_KEY


def dashboard_of(manifest_path: str, exposure: str, syncs: dict[str, str], transform_group: str) -> Dashboard:
    """The dashboard's lineage: its parts and the task of each."""
    return lineage.dashboard(load_manifest(Path(manifest_path)), exposure, syncs, transform_group)


def run_so_far(ti: Any, parts: list[Dashboard], results_from: list[str], state: str = "running") -> RunOutcome:
    """This run as far as ``parts`` go: their tasks' states, and the results of the builds
    ``results_from``. Through the task's runtime instance, which the triggerer has too (hence one
    XCom per build, ``map_indexes=-1``: the triggerer serves single reads only)."""
    task_ids = sorted({p.task_id for d in parts for p in d.parts.values() if p.task_id})
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=task_ids, run_ids=[ti.run_id]).get(ti.run_id, {})
    raw: dict[str, Any] = {}
    for build in results_from:
        raw |= ti.xcom_pull(task_ids=build, key=RESULTS_XCOM_KEY, map_indexes=-1) or {}
    return RunOutcome(
        run_id=ti.run_id,
        state=state,
        started_at=None,
        ended_at=None,
        tasks={task_id: TaskOutcome(state) for task_id, state in states.items()},
        results=records.node_results(raw),
    )


def not_ended(dashboard: Dashboard, run: RunOutcome) -> list[str]:
    """The tasks of the dashboard's parts that have not ended in ``run``."""
    tasks = {p.task_id for p in dashboard.parts.values() if p.task_id}
    return sorted(t for t in tasks if run.tasks.get(t, TaskOutcome(None)).state not in ENDED)


def must_end_first(dashboard: Dashboard, run: RunOutcome) -> list[str]:
    """The part tasks that must end before the verdict: none when dbt passed everything the
    dashboard reads (their tasks will report the same), else every one that has not ended."""
    waiting = not_ended(dashboard, run)
    if waiting:
        assessment = assess(dashboard, run)  # FRESH never depends on the previous verdict
        if assessment.status is Status.FRESH and not assessment.refreshing:
            return []
    return waiting
