"""The wait in the triggerer (no worker held) of a dashboard's task: until its verdict can be told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async

from elt_platform.health.verdict_ready import dashboard_of, must_end_first, run_so_far
from elt_platform.task_states import ENDED


class VerdictReadyTrigger(BaseTrigger):
    """Fires once every task of ``task_ids`` (the builds of the dashboard's marts) has ended and the
    dashboard's verdict can be told (``verdict_ready.must_end_first``).

    The whole wait is here, so the task is deferred only by the scheduler (it starts from this
    trigger) and never deferred again from a worker: Airflow 3.3 fails a task deferred from a
    worker whose trigger fires before the scheduler has read that worker's exit. It reads the run
    through the task's runtime instance (the triggerer builds one for a task that starts from a
    trigger): Airflow's public ``get_task_states`` and ``xcom_pull``."""

    def __init__(
        self,
        task_ids: list[str],
        dashboard: dict[str, Any],
        results_from: list[str],
        poll_seconds: float = 1.0,
        not_before_seconds: float = 0.0,
    ):
        super().__init__()
        self.task_ids = sorted(task_ids)
        self.dashboard = dashboard  # dashboard_of's arguments
        self.results_from = sorted(results_from)
        self.poll_seconds = poll_seconds
        self.not_before_seconds = not_before_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {"task_ids": self.task_ids, "dashboard": self.dashboard, "results_from": self.results_from}
        return VERDICT_READY_TRIGGER, kwargs | {
            "poll_seconds": self.poll_seconds,
            "not_before_seconds": self.not_before_seconds,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ti = self.task_instance
        await asyncio.sleep(self.not_before_seconds)
        while not await self._ended(ti, self.task_ids):
            await asyncio.sleep(self.poll_seconds)
        dashboard = await sync_to_async(dashboard_of)(**self.dashboard)
        while must_end_first(dashboard, await sync_to_async(run_so_far)(ti, [dashboard], self.results_from)):
            await asyncio.sleep(self.poll_seconds)
        yield TriggerEvent({"ended": self.task_ids})

    @staticmethod
    async def _ended(ti: Any, task_ids: list[str]) -> bool:
        states = await sync_to_async(ti.get_task_states)(dag_id=ti.dag_id, task_ids=task_ids, run_ids=[ti.run_id])
        return all(states.get(ti.run_id, {}).get(task_id) in ENDED for task_id in task_ids)


VERDICT_READY_TRIGGER = f"{VerdictReadyTrigger.__module__}.{VerdictReadyTrigger.__qualname__}"
