"""What the platform records, turned into the rules' inputs: a run's task outcomes and dbt's node results.

Shared by the API server's pages and ``elt health`` (the metadata database, through the read
model ``elt_platform.run_history``) and by the tasks that publish each dashboard's health
(Airflow's Task SDK).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from elt_platform.health.rules import Assessment, NodeResult, Status
from elt_platform.transform.results import records_of

# Each dashboard task's own verdict, kept for history ("fresh since ...") and what reached it.
VERDICT_KEY = "health"
# The Assets of dashboards, and where the API server serves their pages.
ASSET_GROUP = "dashboard"
URL_PREFIX = "/dashboards"


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def node_results(raw: Mapping[str, Any] | None) -> dict[str, NodeResult]:
    """The producer's ``dbt_results`` XCom as ``NodeResult`` per dbt unique_id."""
    return {
        unique_id: NodeResult(record.status, record.message or "", parse_time(record.max_loaded_at), record.seconds)
        for unique_id, record in records_of(raw).items()
    }


def verdict(assessment: Assessment) -> dict[str, Any]:
    """A dashboard task's verdict, as its XCom keeps it (``VERDICT_KEY``)."""
    return {
        "status": str(assessment.status),
        "causes": [f"{c.kind} {c.name}: {c.message}" for c in assessment.causes],
        "held_back": list(assessment.held_back),
        "data_as_of": assessment.data_as_of.isoformat() if assessment.data_as_of else None,
        "sources_as_of": {name: at.isoformat() for name, at in assessment.sources_as_of.items()},
    }


def previous_assessment(recorded: Any, run_id: str | None = None) -> Assessment | None:
    """A recorded verdict as the assessment a later run builds on (what had reached the dashboard)."""
    if not isinstance(recorded, Mapping) or recorded.get("status") not in set(Status):
        return None
    as_of = {name: t for name, value in (recorded.get("sources_as_of") or {}).items() if (t := parse_time(value))}
    return Assessment(Status(recorded["status"]), run_id, sources_as_of=as_of)
