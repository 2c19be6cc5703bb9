"""What the platform tells OpenLineage, through Airflow's OpenLineage provider: off until its
``[openlineage]`` settings name a transport (the provider's own rule), then

- each sync's run: the connector's streams in, the raw tables out (with their declared columns);
- each dbt node's run, emitted by the build that ran it (a node's task ends in the triggerer,
  where no listener runs), as dbt's own OpenLineage integration describes it, parented to the
  build's task: its parents' tables in, its own table out, the schema where the YAML declares it.

Datasets are named as the dbt integration names them (``database.schema.table`` in the
warehouse's namespace), so a sync's raw tables are the very datasets its staging models read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any
from unittest import mock

import attrs
from airflow.providers.openlineage.conf import is_disabled
from airflow.providers.openlineage.extractors import OperatorLineage  # Cosmos's operators import it too
from airflow.sdk import Connection
from openlineage.client.event_v2 import Dataset, RunEvent
from openlineage.client.facet_v2 import parent_run, schema_dataset

from elt_platform.dbt_manifest.nodes import SourceTable
from elt_platform.settings import Settings, Warehouse

if TYPE_CHECKING:
    from openlineage.common.provider.dbt.processor import DbtEvents


def enabled() -> bool:
    return not is_disabled()


def raw_table_datasets(settings: Settings, tables: Iterable[SourceTable]) -> list[Dataset]:
    """The raw tables a sync loads, as datasets with the columns their dbt source declares; in the
    warehouse's namespace, as the dbt integration derives it from the profile. On DuckDB the
    database is the warehouse file's (dbt-duckdb names it after the file), whatever the file was
    called when the manifest was parsed."""
    if settings.warehouse_type == Warehouse.BIGQUERY:
        namespace, database = "bigquery", None
    else:
        path = Connection.get(settings.warehouse_conn_id).host
        namespace, database = f"duckdb://{path}", PurePath(path).stem
    return [_dataset(namespace, database or table.database, table) for table in tables]


def _dataset(namespace: str, database: str, table: SourceTable) -> Dataset:
    fields = [schema_dataset.SchemaDatasetFacetFields(name=n, type=t or None) for n, t in table.columns]
    facets = {"schema": schema_dataset.SchemaDatasetFacet(fields=fields)} if fields else {}
    name = ".".join(part for part in (database, table.schema, table.table) if part)
    return Dataset(namespace=namespace, name=name, facets=facets)


def sync_lineage(connector: str, connection: str, streams: Iterable[str], outputs: list[Dataset]) -> OperatorLineage:
    """A sync's lineage: one input per stream of the connector, the raw tables it loads out."""
    inputs = [Dataset(namespace=f"airbyte://{connector}", name=f"{connection}.{stream}") for stream in streams]
    return OperatorLineage(inputs=inputs, outputs=outputs)


def dbt_node_events(
    env: Mapping[str, Any], project_dir: Path, profile_name: str, target: str, command_line: list[str] | None
) -> DbtEvents:
    """Each node's START and COMPLETE or FAIL event, as dbt's OpenLineage integration reads them
    from a build's artifacts (``project_dir``: Cosmos's copy of the project, whose ``target`` folder
    dbt wrote them to, whatever ``target-path`` the project names). The integration reads the
    profile's environment variables from the process's: set only while it reads."""
    # Imported when a build reads its events, as Cosmos does: not into every DAG parse.
    from cosmos import settings as cosmos_settings
    from cosmos.constants import OPENLINEAGE_PRODUCER
    from openlineage.common.provider.dbt.local import DbtLocalArtifactProcessor

    processor = DbtLocalArtifactProcessor(
        producer=OPENLINEAGE_PRODUCER,
        job_namespace=cosmos_settings.LINEAGE_NAMESPACE,
        project_dir=str(project_dir),
        profile_name=profile_name,
        target=target,
        target_path=str(Path(project_dir) / "target"),
        dbt_command_line=command_line,
    )
    processor.should_raise_on_unsupported_command = False
    with mock.patch.dict(os.environ, {key: str(value) for key, value in env.items()}):
        return processor.parse()


def parented(events: Iterable[RunEvent], task_instance: Any) -> list[RunEvent]:
    """dbt's node events, each with the build task's run as its parent."""
    from airflow.providers.openlineage.plugins.macros import lineage_job_name, lineage_job_namespace, lineage_run_id

    parent = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=lineage_run_id(task_instance)),
        job=parent_run.Job(namespace=lineage_job_namespace(), name=lineage_job_name(task_instance)),
    )
    return [attrs.evolve(e, run=attrs.evolve(e.run, facets={**(e.run.facets or {}), "parent": parent})) for e in events]


def emit(events: Iterable[RunEvent]) -> None:
    """Through the provider's client and transport, as Airflow's own events go."""
    from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter

    adapter = OpenLineageAdapter()
    for event in events:
        adapter.emit(event)
