"""What the platform records, turned into the rules' inputs: a run's task outcomes and dbt's node results.

Shared by the API server's pages and ``elt health`` (the metadata database, through
Airflow's ORM) and by the tasks that publish each dashboard's health (Airflow's Task SDK).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from elt_platform.health.rules import NodeResult

# The build's per-node results: one XCom of the transform group's producer task (see build_mode).
RESULTS_TASK = "dbt_build"
RESULTS_KEY = "dbt_results"
# Each dashboard task's own verdict, kept for history ("fresh since ...").
VERDICT_KEY = "health"


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
    results = {}
    for unique_id, result in (raw or {}).items():
        if not isinstance(result, Mapping) or not result.get("status"):
            continue
        rows = result.get("rows")
        results[unique_id] = NodeResult(
            status=str(result.get("event") if result.get("event") == "skipped" else result["status"]),
            message=str(result.get("msg") or ""),
            max_loaded_at=parse_time(result.get("max_loaded_at")),
            rows=int(rows) if isinstance(rows, int) and rows >= 0 else None,
        )
    return results
