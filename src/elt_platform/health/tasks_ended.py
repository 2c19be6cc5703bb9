"""A wait in the triggerer until some tasks of the run have ended: a dashboard's task waits there
for the builds of its marts, and, after a failure, for every task it reads from (no worker held)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async

from elt_platform.task_states import ENDED


class TasksEndedTrigger(BaseTrigger):
    """Fires once every task of ``task_ids`` has ended in the run of the task it belongs to.

    Reads the states through the task's runtime instance (the triggerer builds one for a task that
    starts from a trigger): Airflow's public ``RuntimeTaskInstanceProtocol.get_task_states``."""

    def __init__(self, task_ids: list[str], poll_seconds: float = 1.0, not_before_seconds: float = 0.0):
        super().__init__()
        self.task_ids = sorted(task_ids)
        self.poll_seconds = poll_seconds
        # A task deferred from a worker must not resume before the scheduler has read its worker's
        # exit: Airflow 3.3 fails a task whose executor reports "success" once it is queued again.
        self.not_before_seconds = not_before_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {"task_ids": self.task_ids, "poll_seconds": self.poll_seconds}
        return TASKS_ENDED_TRIGGER, kwargs | {"not_before_seconds": self.not_before_seconds}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ti = self.task_instance
        await asyncio.sleep(self.not_before_seconds)
        while True:
            states = await sync_to_async(ti.get_task_states)(
                dag_id=ti.dag_id, task_ids=self.task_ids, run_ids=[ti.run_id]
            )
            of_run = states.get(ti.run_id, {})
            if all(of_run.get(task_id) in ENDED for task_id in self.task_ids):
                yield TriggerEvent({"ended": self.task_ids})
                return
            await asyncio.sleep(self.poll_seconds)


TASKS_ENDED_TRIGGER = f"{TasksEndedTrigger.__module__}.{TasksEndedTrigger.__qualname__}"
