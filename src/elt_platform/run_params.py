"""The DAG's run parameters, one home: what a user can ask of one run from the Airflow UI or ``elt run``.

- ``full_refresh``: sync every stream in full (state ignored and replaced, tables replaced)
  and build every dbt model with dbt's ``--full-refresh`` (incremental models rebuilt whole).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Param

FULL_REFRESH = "full_refresh"
# A templated operator argument (Cosmos's ``full_refresh``): false in a DAG that declares no such param.
FULL_REFRESH_TEMPLATE = "{{ params.full_refresh | default(false) }}"


def dag_params() -> dict[str, Param]:
    return {
        FULL_REFRESH: Param(
            False,
            type="boolean",
            title="Full refresh",
            description="Sync every stream in full and rebuild incremental dbt models from scratch.",
        )
    }


def full_refresh_requested(context: Mapping[str, Any]) -> bool:
    """Whether this run asked for a full refresh: its param, else its conf (a DAG without the
    param, triggered with ``{"full_refresh": true}``); only ``True`` counts."""
    params = context.get("params") or {}
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    return params.get(FULL_REFRESH, conf.get(FULL_REFRESH)) is True
