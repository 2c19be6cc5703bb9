"""The build's per-node results, as published for the node tasks and the dashboards' health.

One XCom, ``dbt_results`` of the ``dbt_build`` task, maps each dbt unique_id to a record:
dbt's own node status (``success``, ``pass``, ``warn``, ``error``, ``fail``, ``skipped``,
``runtime error``), dbt's message when it did not pass, and why dbt did not run it, when it
did not: ``skipped_after_failure`` (dbt skipped it because a node it reads failed) or
``left_out`` (the build left it out: it reads from a sync that did not succeed). A node the
build reused (nothing changed since its last build) has the status ``reused``, which passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

PRODUCER_TASK_ID = "dbt_build"
RESULTS_XCOM_KEY = "dbt_results"

# A node the build reused: nothing it reads, and not its code, changed since its last build (build_state).
REUSED = "reused"
PASSED_STATUSES = frozenset({"success", "pass", "warn", REUSED})
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
    # dbt's time building it (its execution_time); a reused node: its last build's.
    seconds: float | None = None

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


def reuse_saving(results: Mapping[str, Any], nodes: Iterable[str] | None = None) -> tuple[int, float]:
    """Of ``nodes`` (every one, without): how many models, seeds and snapshots were reused, and the
    dbt time building them and their tests took last time: what reusing them saved. ``results``:
    each node's ``NodeRecord``, or anything with its ``status`` and ``seconds``."""
    wanted = None if nodes is None else set(nodes)
    reused = {uid: r for uid, r in results.items() if r.status == REUSED and (wanted is None or uid in wanted)}
    models = sum(1 for uid in reused if not uid.startswith("test."))
    return models, round(sum(r.seconds or 0.0 for r in reused.values()), 1)


def records_of(raw: dict[str, Any] | None) -> dict[str, NodeRecord]:
    """The XCom's value, read back (entries without a status are ignored)."""
    return {
        node: NodeRecord.from_json(value)
        for node, value in (raw or {}).items()
        if isinstance(value, dict) and value.get("status")
    }
