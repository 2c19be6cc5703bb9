"""Airflow task ids for dbt nodes: a clear, stable mapping from any name dbt accepts.

Airflow task ids hold only ASCII letters, digits, ``_``, ``-`` and ``.``, at most 250
characters with the group prefix (``transform.``). dbt names can hold more (``é``, ``$``,
``@``, spaces in older projects) and be longer. The mapping, per node:

- model, seed, snapshot: its name; a versioned model ``<name>_v<version>`` (dbt's own
  relation name, and Cosmos's); a node of another package ``<package>.<name>``;
- source table: ``<source>.<table>``; test: its name;
- a character Airflow rejects becomes ``_`` and the name gets ``__<hash>``, and a name
  longer than ``MAX_NAME`` is cut and gets the same suffix. The hash is of the dbt name
  alone, so a task id never changes because another node was added or renamed.

The dbt name stays the task's display name, and its docs quote the dbt ``unique_id``.
"""

from __future__ import annotations

import hashlib
import re

# The task group of every dbt node's task: a node's task is ``transform.<its task id>``.
TRANSFORM_GROUP_ID = "transform"
# 250 (Airflow's limit) minus the group prefix and room for a suffix Cosmos may add.
MAX_NAME = 200
HASH_LENGTH = 8
_REJECTED = re.compile(r"[^A-Za-z0-9_\-]+")


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:HASH_LENGTH]


def task_id_part(name: str) -> str:
    """``name`` as one part of an Airflow task id (no dots): itself when Airflow accepts it."""
    cleaned = _REJECTED.sub("_", name)
    if cleaned == name and len(name) <= MAX_NAME:
        return name
    suffix = f"__{_digest(name)}"
    return cleaned[: MAX_NAME - len(suffix)] + suffix


def disambiguated(task_id: str, unique_id: str) -> str:
    """``task_id`` made unique by the hash of the dbt node's ``unique_id``, for the rare clash of two nodes."""
    return f"{task_id}__{_digest(unique_id)}"


def node_task_id(*parts: str) -> str:
    """The task id of a node named by ``parts`` (e.g. package, name), joined with dots."""
    return ".".join(task_id_part(part) for part in parts)
