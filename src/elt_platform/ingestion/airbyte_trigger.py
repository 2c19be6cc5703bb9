"""Wait for an Airbyte job in the triggerer, through every state Airbyte defines.

The provider's ``AirbyteSyncTrigger`` (apache-airflow-providers-airbyte 6.2.0) reports
a ``queued`` job as failed, and one failed status request ends the wait. This trigger
waits through ``pending``, ``queued``, ``running`` and ``incomplete`` (an attempt failed
and Airbyte retries it), and rides out a few consecutive API errors (5xx, time-outs).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airbyte_api.models import JobStatusEnum
from airflow.providers.airbyte.hooks.airbyte import AirbyteHook
from airflow.providers.airbyte.triggers.airbyte import AirbyteSyncTrigger
from airflow.triggers.base import TriggerEvent

WAITING = {JobStatusEnum.PENDING, JobStatusEnum.QUEUED, JobStatusEnum.RUNNING, JobStatusEnum.INCOMPLETE}
MAX_CONSECUTIVE_API_ERRORS = 5


class AirbyteJobTrigger(AirbyteSyncTrigger):
    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    def _event(self, status: str, message: str) -> TriggerEvent:
        return TriggerEvent({"status": status, "message": message, "job_id": self.job_id})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = AirbyteHook(airbyte_conn_id=self.conn_id)
        errors = 0
        while True:
            # The job was just started (or just polled): give it an interval before asking.
            # This also leaves the scheduler time to record the deferral before the trigger fires.
            await asyncio.sleep(self.poll_interval)
            now = time.time()
            if self.execution_deadline is not None and self.execution_deadline <= now:
                yield self._event("timeout", f"Airbyte job {self.job_id} reached the task's execution timeout")
                return
            if self.end_time <= now:
                yield self._event("timeout", f"Airbyte job {self.job_id} did not finish in time")
                return
            try:
                status = await asyncio.to_thread(hook.get_job_status, self.job_id)
                errors = 0
            except Exception as exc:  # the API answered 5xx, timed out or refused the connection
                errors += 1
                self.log.warning(
                    "Status of Airbyte job %s unavailable (%s of %s): %s",
                    self.job_id,
                    errors,
                    MAX_CONSECUTIVE_API_ERRORS,
                    exc,
                )
                if errors >= MAX_CONSECUTIVE_API_ERRORS:
                    yield self._event("error", f"Airbyte API unavailable while waiting for job {self.job_id}: {exc}")
                    return
                continue
            self.log.info("Airbyte job %s is %s", self.job_id, getattr(status, "value", status))
            if status == JobStatusEnum.SUCCEEDED:
                yield self._event("success", f"Airbyte job {self.job_id} succeeded")
                return
            if status == JobStatusEnum.CANCELLED:
                yield self._event("cancelled", f"Airbyte job {self.job_id} was cancelled")
                return
            if status not in WAITING:
                yield self._event("error", f"Airbyte job {self.job_id} ended as {getattr(status, 'value', status)}")
                return
