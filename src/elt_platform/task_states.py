"""Airflow's task states, grouped as the platform reads them: the one home of "has this task ended".

The groups come from Airflow's own ``TaskInstanceState`` (public in ``airflow.sdk``); which states
end a task for good is Airflow's ``TerminalTIState``, read through the adapter and checked there.
"""

from __future__ import annotations

from airflow.sdk import TaskInstanceState

from elt_platform.dependency_internals import terminal_task_states

# A task in one of these will not change again in this run (unless a person clears it).
ENDED: frozenset[str] = frozenset(terminal_task_states())
SUCCEEDED: frozenset[str] = frozenset({TaskInstanceState.SUCCESS})
FAILED: frozenset[str] = frozenset({TaskInstanceState.FAILED})
# Did not run because of something upstream: Airflow's word for it, and a branch's skip.
HELD_BACK: frozenset[str] = frozenset({TaskInstanceState.SKIPPED, TaskInstanceState.UPSTREAM_FAILED})
# A try is under way: it holds a slot somewhere (an executor's, a triggerer's) until it ends.
UNDER_WAY: frozenset[str] = frozenset(
    {TaskInstanceState.QUEUED, TaskInstanceState.RUNNING, TaskInstanceState.DEFERRED, TaskInstanceState.RESTARTING}
)
# A try has ended (the task may run again): what a run's progress lines report.
TRY_ENDED: frozenset[str] = ENDED | {TaskInstanceState.UP_FOR_RETRY}

assert SUCCEEDED | FAILED | HELD_BACK <= ENDED, "Airflow's terminal states changed: see dependency_internals"
