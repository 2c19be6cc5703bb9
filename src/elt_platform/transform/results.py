"""The build's per-node results, as published for the node tasks and the dashboards' health.

One XCom, ``dbt_results`` of the ``dbt_build`` task, maps each dbt unique_id to a record:
dbt's own node status (``success``, ``pass``, ``warn``, ``error``, ``fail``, ``skipped``,
``runtime error``), dbt's message when it did not pass, and why dbt did not run it, when it
did not: ``skipped_after_failure`` (dbt skipped it because a node it reads failed) or
``left_out`` (the build left it out: it reads from a sync that did not succeed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PRODUCER_TASK_ID = "dbt_build"
RESULTS_XCOM_KEY = "dbt_results"

PASSED_STATUSES = frozenset({"success", "pass", "warn"})
# "partial success": a microbatch model some of whose batches failed.
FAILED_STATUSES = frozenset({"error", "fail", "runtime error", "partial success"})


@dataclass(frozen=True)
class NodeRecord:
    status: str
    message: str | None = None
    skipped_after_failure: bool = False
    left_out: bool = False
    # A source's freshness check: how recent its data is, for dashboards' "data as of".
    max_loaded_at: str | None = None

    @property
    def passed(self) -> bool:
        return self.status in PASSED_STATUSES

    @property
    def warned(self) -> bool:
        return self.status == "warn"

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES

    @property
    def why_not_run(self) -> str:
        if self.skipped_after_failure:
            return "skipped after an upstream failure"
        if self.left_out:
            return "left out of the build"
        return self.status

    def as_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value not in (None, False)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> NodeRecord:
        fields = cls.__dataclass_fields__
        return cls(**{key: value for key, value in raw.items() if key in fields})


def records_of(raw: dict[str, Any] | None) -> dict[str, NodeRecord]:
    """The XCom's value, read back (entries without a status are ignored)."""
    return {
        node: NodeRecord.from_json(value)
        for node, value in (raw or {}).items()
        if isinstance(value, dict) and value.get("status")
    }
