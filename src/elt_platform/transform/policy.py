"""What a node's task does next: one pure function over the build's results, and one table.

Shared, unchanged, by the node task's trigger (in the triggerer) and by the node task on a
worker, so the two cannot disagree. No Airflow or dbt is imported here.

The scheduler starts a node's task only once every task upstream of it has succeeded
(trigger rule ``all_success``): held back behind a failure, a task ends ``upstream_failed``
without starting, at every project size. So the policy never looks at upstream tasks, only
at the build task's state and at dbt's results for the nodes the task watches (the node and
its own tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from airflow.sdk import TaskInstanceState

from elt_platform.task_states import ENDED
from elt_platform.transform.results import REUSED, NodeRecord

# What a reused node's task log says (the triggerer's line for the task).
REUSED_REASON = (
    "Reused: nothing it reads, and not its code, changed since its last build; its table is as that build "
    "left it (the build's log says how it decided)."
)

# States in which the build task will publish nothing more in this run.
BUILD_ENDED = ENDED


class Outcome(Enum):
    """Everything a node's task can find out about its node."""

    WAITING = "waiting"  # the build has not reported on every watched node, and has not ended
    PASSED = "passed"  # dbt passed the node and its tests in this run's build
    WARNED = "warned"  # passed, with a test that warned
    FAILED = "failed"  # dbt reported the node or one of its tests failing
    RUN_ALONE = "run_alone"  # a later try, or a node the build did not run: dbt builds it alone
    NOT_REPORTED = "not_reported"  # the build ended without a word on the node (it crashed for good)


class Effect(Enum):
    """Where an outcome is acted on."""

    KEEP_WAITING = "keep_waiting"
    SUCCEED_IN_TRIGGERER = "succeed_in_triggerer"  # no worker process at all
    RESUME_ON_WORKER = "resume_on_worker"  # ``DbtNodeTask.execute_complete`` handles the outcome


# The one table from outcome to effect, read by the trigger and by the task on a worker.
EFFECTS: Mapping[Outcome, Effect] = {
    Outcome.WAITING: Effect.KEEP_WAITING,
    Outcome.PASSED: Effect.SUCCEED_IN_TRIGGERER,
    Outcome.WARNED: Effect.RESUME_ON_WORKER,  # the warning callback runs on a worker
    Outcome.FAILED: Effect.RESUME_ON_WORKER,  # raise dbt's error: retries and alerts as any task
    Outcome.RUN_ALONE: Effect.RESUME_ON_WORKER,
    Outcome.NOT_REPORTED: Effect.RESUME_ON_WORKER,  # fail, saying a retry runs the node alone
}


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str = ""
    records: dict[str, NodeRecord] = field(default_factory=dict)

    @property
    def effect(self) -> Effect:
        return EFFECTS[self.outcome]

    def as_event(self) -> dict[str, Any]:
        """The trigger event that resumes the task on a worker (JSON-serialisable)."""
        return {
            "outcome": self.outcome.value,
            "reason": self.reason,
            "records": {node: record.as_json() for node, record in self.records.items()},
        }

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Decision:
        records = {node: NodeRecord.from_json(raw) for node, raw in (event.get("records") or {}).items()}
        return cls(Outcome(event["outcome"]), event.get("reason", ""), records)


def decide(
    *, try_number: int, watched: list[str], records: Mapping[str, NodeRecord], build_state: str | None
) -> Decision:
    """The node task's whole policy.

    - First try, and dbt passed every watched node: PASSED (WARNED if a test warned).
    - dbt reported a watched node failing: FAILED, with dbt's messages.
    - A later try (after a failure, or a *Clear*): wait for the build to end, then RUN_ALONE.
    - dbt did not run a watched node (skipped after an upstream failure since recovered, or
      left out of the build): RUN_ALONE once the build has ended.
    - The build ended without reporting on a watched node: RUN_ALONE if it succeeded or was
      skipped (nothing to build), else NOT_REPORTED (a build that crashed and whose retry
      failed too).
    """
    ended = build_state in BUILD_ENDED
    mine = {node: records[node] for node in watched if node in records}
    complete = len(mine) == len(watched)
    if try_number > 1:
        if not ended:
            return Decision(Outcome.WAITING, "Waiting for dbt build to end before running the node alone.")
        return Decision(Outcome.RUN_ALONE, f"Try {try_number}: dbt build has ended.")
    failed = {node: record for node, record in mine.items() if record.failed}
    if failed:
        return Decision(Outcome.FAILED, "dbt reported a failure.", failed)
    if complete and all(record.passed for record in mine.values()):
        warned = {node: record for node, record in mine.items() if record.warned}
        if warned:
            return Decision(Outcome.WARNED, "dbt passed it with a warning.", warned)
        if all(record.status == REUSED for record in mine.values()):
            return Decision(Outcome.PASSED, REUSED_REASON)
        return Decision(Outcome.PASSED)
    if not ended:
        return Decision(Outcome.WAITING, "Waiting for dbt build to report on the node.")
    not_run = {node: record for node, record in mine.items() if not record.passed}
    if not_run:
        why = "; ".join(f"{node}: {record.why_not_run}" for node, record in not_run.items())
        return Decision(Outcome.RUN_ALONE, f"dbt build did not run it ({why}); its upstream has succeeded.")
    if build_state in {TaskInstanceState.SUCCESS, TaskInstanceState.SKIPPED}:
        return Decision(Outcome.RUN_ALONE, f"dbt build ended '{build_state}' without reporting on the node.")
    return Decision(Outcome.NOT_REPORTED, f"dbt build ended '{build_state}' without reporting on the node.")
