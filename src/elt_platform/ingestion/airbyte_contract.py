"""Ask the Airbyte API whether each ingestion file's production connection exists and syncs what dbt reads."""

from __future__ import annotations

from typing import Any

from elt_platform.dbt_manifest import Manifest
from elt_platform.errors import Problem
from elt_platform.ingestion.connections import LoadedConnection


def check_airbyte(connections: list[LoadedConnection], manifest: Manifest, hook: Any) -> list[Problem]:
    """Every mismatch between the ingestion files, the dbt sources and the Airbyte connections."""
    from airbyte_api.api import GetConnectionRequest

    problems: list[Problem] = []
    for conn in connections:
        spec = conn.spec
        file = conn.path.name
        connection_id = str(spec.production.airbyte_connection_id)
        try:
            response = hook.airbyte_api.connections.get_connection(
                request=GetConnectionRequest(connection_id=connection_id)
            )
        except Exception as exc:  # the SDK raises on 4xx/5xx
            status = getattr(exc, "status_code", None)
            what = "does not exist" if status == 404 else f"could not be read ({exc})"
            problems.append(
                Problem(
                    file,
                    "production.airbyte_connection_id",
                    f"Airbyte connection {connection_id} {what}",
                    "set the id of the connection shown in the Airbyte UI (Connections → Settings)",
                )
            )
            continue
        configured = response.connection_response.configurations.streams or []
        enabled = {s.name for s in configured}
        needed = {t.table for t in manifest.source_tables(spec.dbt_source)}
        for table in sorted(needed - enabled):
            problems.append(
                Problem(
                    file,
                    "production.airbyte_connection_id",
                    f"dbt source {spec.dbt_source}.{table} reads stream '{table}', "
                    f"which Airbyte connection {connection_id} does not sync (enabled: {', '.join(sorted(enabled))})",
                    f"enable stream '{table}' in that Airbyte connection",
                )
            )
        for stream in sorted(set(spec.streams) - enabled - needed):
            problems.append(
                Problem(
                    file,
                    "streams",
                    f"stream '{stream}' is listed here but not enabled in Airbyte connection {connection_id}",
                    "enable it in Airbyte or remove it from 'streams'",
                )
            )
    return problems
