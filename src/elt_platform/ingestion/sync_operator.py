"""The sync task: one ingestion connection, on the backend chosen when the task runs.

``ELT_INGESTION_BACKEND`` (read at run time, never at parse time, so the DAG's shape is
the same for both):

- ``local`` (default): the connector package runs under PyAirbyte into the connection's own
  DuckDB store, whose tables then replace the warehouse's raw tables in a short step under the
  warehouse's lock (:mod:`elt_platform.ingestion.local_sync`). Streams are incremental where the
  connector allows, unless the ingestion file or the run's ``full_refresh`` param says otherwise.
- ``airbyte``: the provider's ``AirbyteTriggerSyncOperator`` starts the job on Airbyte
  Cloud/OSS; the task then defers to :class:`~elt_platform.ingestion.airbyte_trigger.AirbyteJobTrigger`,
  freeing its worker slot while the job runs. The Airbyte connection id is read from the
  ingestion file's ``production.airbyte_connection_id`` when the task runs.

Either way the task returns what it synced, for XCom and alerts. A sync that times out
or is killed cancels its Airbyte job. A try that finds the connection's job still running
(its previous try's worker died before it could cancel it, or someone pressed "Sync now")
follows that job instead of starting another: Airbyte runs one sync per connection at a
time and answers a second request with 409 "A sync is already running".
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from airbyte_api.api import ListJobsRequest
from airbyte_api.models import JobStatusEnum, JobTypeEnum
from airflow.providers.airbyte.hooks.airbyte import AirbyteHook
from airflow.providers.airbyte.operators.airbyte import AirbyteTriggerSyncOperator
from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowException
from airflow.sdk.log import mask_secret

from elt_platform import lineage_events
from elt_platform.dbt_manifest.nodes import SourceTable
from elt_platform.ingestion.airbyte_trigger import AirbyteJobTrigger
from elt_platform.ingestion.connections import ConnectionSpec, load_connection_file, resolve_config
from elt_platform.ingestion.local_sync import sync_locally
from elt_platform.run_params import full_refresh_requested
from elt_platform.settings import Settings

# A job in one of these states still holds its connection (incomplete: an attempt failed, Airbyte retries).
ACTIVE = {JobStatusEnum.PENDING, JobStatusEnum.QUEUED, JobStatusEnum.RUNNING, JobStatusEnum.INCOMPLETE}


class SyncOperator(AirbyteTriggerSyncOperator):
    """Sync the connection described by ``connection_file``; returns rows (and bytes) synced."""

    template_fields = ()
    ui_color = "#615EFF"

    def __init__(
        self, *, connection_file: str, settings: Settings, raw_tables: list[SourceTable] | None = None, **kwargs: Any
    ):
        super().__init__(connection_id="", airbyte_conn_id=settings.airbyte_conn_id, deferrable=True, **kwargs)
        self.connection_file = connection_file
        self.raw_tables = raw_tables or []  # the dbt source tables it loads, for OpenLineage
        self.settings = settings  # the DAG's own, which may differ from the environment's (a second DAG)
        self.warehouse_conn_id = settings.warehouse_conn_id
        self.job_id: int | None = None

    def _spec(self) -> ConnectionSpec:
        loaded, problems = load_connection_file(Path(self.connection_file), data_root=self.settings.ingestion_data_root)
        if loaded is None:
            raise AirflowException("; ".join(str(p) for p in problems))
        return loaded.spec

    def execute(self, context: Any) -> dict[str, Any]:
        settings = self.settings
        spec = self._spec()
        self.log.info("Syncing %s (%s) on the %s backend", spec.name, spec.title, settings.ingestion_backend)
        full_refresh = full_refresh_requested(context)
        if settings.ingestion_backend == "local":
            return self._sync_locally(spec, settings, full_refresh)
        if full_refresh:
            self.log.warning("full_refresh applies to local syncs only: on Airbyte, refresh the connection there")
        return self._sync_on_airbyte(context, spec, settings)  # the only other choice Settings accepts

    def _sync_locally(self, spec: ConnectionSpec, settings: Settings, full_refresh: bool = False) -> dict[str, Any]:
        path = Path(self.connection_file)
        config = resolve_config(
            spec.source.config,
            path,
            lookup_connection=Connection.get,
            on_secret=mask_secret,
            data_root=settings.ingestion_data_root,
        )
        warehouse = Connection.get(self.warehouse_conn_id)
        if not warehouse.host:
            raise AirflowException(f"Airflow connection '{self.warehouse_conn_id}' has no host (the DuckDB file path)")
        Path(warehouse.host).parent.mkdir(parents=True, exist_ok=True)
        if full_refresh:
            self.log.info("The run asks for a full refresh: every stream is read in full")
        return sync_locally(spec, config, Path(warehouse.host), settings, self.log, full_refresh)

    def _sync_on_airbyte(self, context: Any, spec: ConnectionSpec, settings: Settings) -> dict[str, Any]:
        self.connection_id = str(spec.production.airbyte_connection_id)
        hook = self._hook()
        job = self._active_job(hook)
        if job is not None:
            self.log.warning(
                "Airbyte job %s of connection %s is already %s (left by an earlier try whose worker stopped, "
                "or started outside Airflow): following it instead of starting another",
                job.job_id,
                self.connection_id,
                job.status.value,
            )
        else:
            job = hook.submit_sync_connection(connection_id=self.connection_id)
            self.log.info("Airbyte job %s started for connection %s (%s)", job.job_id, self.connection_id, job.status)
        self.job_id = job.job_id
        context["ti"].xcom_push(key="airbyte_job_id", value=job.job_id)
        if job.status == JobStatusEnum.SUCCEEDED:
            return self._result(hook, job.job_id)
        if job.status in (JobStatusEnum.FAILED, JobStatusEnum.CANCELLED):
            raise AirflowException(f"Airbyte job {job.job_id} ended as {job.status.value} on submission")
        timeout = self.execution_timeout or settings.sync_timeout
        now = time.time()
        self.defer(
            trigger=AirbyteJobTrigger(
                job_id=job.job_id,
                conn_id=self.airbyte_conn_id,
                end_time=now + settings.sync_timeout.total_seconds(),
                poll_interval=settings.airbyte_poll_seconds,
                execution_deadline=now + timeout.total_seconds(),
            ),
            method_name="execute_complete",
            # Leave the trigger two polls to report the timeout, so the job gets cancelled.
            timeout=timeout + timedelta(seconds=2 * settings.airbyte_poll_seconds),
        )
        raise AssertionError("unreachable: defer() raises")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Read by the OpenLineage provider once the sync has succeeded (when lineage is on)."""
        spec = self._spec()
        outputs = lineage_events.raw_table_datasets(self.settings, self.raw_tables)
        return lineage_events.sync_lineage(spec.source.connector, spec.name, spec.streams, outputs)

    def execute_complete(self, context: Any, event: Any = None) -> dict[str, Any]:
        self.job_id = event.get("job_id")
        if event["status"] != "success":
            # The provider cancels the job on "timeout", then raises for every failure.
            try:
                super().execute_complete(context, event)
            except RuntimeError as exc:
                raise AirflowException(str(exc)) from None
        return self._result(
            AirbyteHook(airbyte_conn_id=self.airbyte_conn_id, api_version=self.api_version), self.job_id
        )

    def _active_job(self, hook: AirbyteHook) -> Any:
        """The connection's newest sync job if it is still running, else None."""
        response = hook.airbyte_api.jobs.list_jobs(
            request=ListJobsRequest(
                connection_id=self.connection_id, job_type=JobTypeEnum.SYNC, order_by="createdAt|DESC", limit=1
            )
        )
        jobs = response.jobs_response.data if response.jobs_response else []
        return jobs[0] if jobs and jobs[0].status in ACTIVE else None

    def _hook(self) -> AirbyteHook:
        return AirbyteHook(airbyte_conn_id=self.airbyte_conn_id, api_version=self.api_version)

    def _result(self, hook: AirbyteHook, job_id: int) -> dict[str, Any]:
        job = hook.get_job_details(job_id)
        self.log.info(
            "Airbyte job %s %s: %s rows, %s bytes synced", job_id, job.status.value, job.rows_synced, job.bytes_synced
        )
        return {
            "backend": "airbyte",
            "job_id": job_id,
            "status": job.status.value,
            "rows_synced": job.rows_synced,
            "bytes_synced": job.bytes_synced,
        }

    def on_kill(self) -> None:
        if self.job_id is not None:
            super().on_kill()  # cancels the Airbyte job
