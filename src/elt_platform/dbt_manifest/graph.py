"""The dbt graph's rules, one home each: walks, which tests get a task of their own, and task ids.

- **Walks**: ``walk`` (the one traversal), and from it ``upstream`` and ``downstream`` of
  nodes, ``descendants`` in a plain parents map (the build's left-out nodes), and
  ``through_ephemeral``: what a node reads once dbt has inlined its ephemeral parents
  (``marts_of`` a dashboard is that, from its ``depends_on``).
- **Which tests get a task of their own**: a test reading two nodes or more (e.g.
  ``relationships``) runs once every node it reads exists, in its own task
  (``has_own_task``); any other test runs with the one node it reads, in that node's task
  (``own_tests``). Both transform modes render this rule, and the health rules read it.
- **Task ids**: a node's Airflow task id from its dbt name, version and package
  (``task_id``, ``source_task_id``), made unique across the manifest (``unique_task_ids``);
  the character policy is ``elt_platform.task_names``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from elt_platform.task_names import disambiguated, node_task_id

if TYPE_CHECKING:
    from elt_platform.dbt_manifest.nodes import Exposure, Manifest, Test

# Walks


def walk(roots: Iterable[str], next_of: Callable[[str], Iterable[str]]) -> set[str]:
    """Every node reachable from ``roots`` through ``next_of``, the roots included."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(next_of(node))
    return seen


def children_of(parents: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """The reverse of a parents map: each node's children."""
    children: dict[str, list[str]] = {}
    for node, node_parents in parents.items():
        for parent in node_parents:
            children.setdefault(parent, []).append(node)
    return children


def descendants(parents: Mapping[str, Iterable[str]], roots: Iterable[str]) -> set[str]:
    """Every node of ``parents`` (node -> the nodes it reads) that reads, directly or not, one of
    ``roots``; a root is in it only if it reads another root."""
    children = children_of(parents)
    return walk((child for root in roots for child in children.get(root, ())), lambda n: children.get(n, ()))


def upstream(manifest: Manifest, roots: Iterable[str]) -> set[str]:
    """Every model, seed, snapshot and source the ``roots`` read, directly or not, the roots included."""

    def parents(uid: str) -> Iterable[str]:
        model = manifest.models.get(uid)
        return () if model is None else (p for p in model.depends_on if _is_node(manifest, p))

    return walk((r for r in roots if _is_node(manifest, r)), parents)


def downstream(manifest: Manifest, roots: Iterable[str]) -> set[str]:
    """Every model, seed and snapshot that reads, directly or not, one of ``roots``."""
    return descendants({uid: m.depends_on for uid, m in manifest.models.items()}, roots)


def through_ephemeral(manifest: Manifest, parents: Iterable[str], keep: Callable[[str], bool]) -> tuple[str, ...]:
    """The nodes ``parents`` stand for once dbt has inlined the ephemeral models (no table, no
    task): each ephemeral model replaced by what it reads, in order, kept where ``keep`` says."""
    found: dict[str, None] = {}
    seen: set[str] = set()
    stack = list(reversed(tuple(parents)))
    while stack:
        uid = stack.pop()
        if uid in seen:
            continue
        seen.add(uid)
        model = manifest.models.get(uid)
        if model is not None and model.is_ephemeral:
            stack.extend(reversed(model.depends_on))
        elif keep(uid):
            found[uid] = None
    return tuple(found)


def marts_of(manifest: Manifest, exposure: Exposure) -> tuple[str, ...]:
    """The tables a dashboard reads: the models it depends on, an ephemeral one replaced by the models it reads."""
    return through_ephemeral(manifest, exposure.depends_on, lambda uid: uid in manifest.models)


def _is_node(manifest: Manifest, uid: str) -> bool:
    return uid in manifest.models or uid in manifest.sources


# Which tests get a task of their own


def nodes_read_by(manifest: Manifest, test: Test) -> list[str]:
    """The models, seeds, snapshots and sources a test reads."""
    return [p for p in dict.fromkeys(test.depends_on) if _is_node(manifest, p)]


def has_own_task(manifest: Manifest, test: Test) -> bool:
    """A test reading several nodes (e.g. relationships) gets a task of its own, once all of them exist."""
    return len(nodes_read_by(manifest, test)) > 1


def tests_with_own_task(manifest: Manifest) -> list[Test]:
    """Every test that gets a task of its own."""
    return [t for t in manifest.tests.values() if has_own_task(manifest, t)]


def own_tests(manifest: Manifest) -> dict[str, list[str]]:
    """Each node's own tests (those reading it alone): they run in the node's task."""
    attached: dict[str, list[str]] = {}
    for test in manifest.tests.values():
        if len(read := nodes_read_by(manifest, test)) == 1:
            attached.setdefault(read[0], []).append(test.unique_id)
    return attached


def tests_of(manifest: Manifest) -> dict[str, list[Test]]:
    """Each node's tests: every test that reads it, alone or with others."""
    found: dict[str, list[Test]] = {}
    for test in manifest.tests.values():
        for node in nodes_read_by(manifest, test):
            found.setdefault(node, []).append(test)
    return found


# Task ids


def task_id(node: Mapping, root_package: str) -> str:
    """A model's, seed's, snapshot's or test's task id: its name; ``<name>_v<version>`` for a
    versioned model; ``<package>.<name>`` outside the root project."""
    name = node["name"] if node.get("version") is None else f"{node['name']}_v{node['version']}"
    package = node.get("package_name", root_package)
    return node_task_id(name) if package == root_package else node_task_id(package, name)


def source_task_id(node: Mapping, root_package: str) -> str:
    """A source table's task id: ``<source>.<table>``; ``<package>.<source>.<table>`` outside the root project."""
    parts = (node["source_name"], node["name"])
    return node_task_id(*parts) if node["package_name"] == root_package else node_task_id(node["package_name"], *parts)


def unique_task_ids(manifest: Manifest) -> Manifest:
    """Two nodes mapped to one task id (rare: e.g. a model named like a test) both get their unique_id's hash."""
    nodes = [*manifest.sources.values(), *manifest.models.values(), *manifest.tests.values()]
    counts = Counter(n.task_id for n in nodes if n.task_id)
    if all(count == 1 for count in counts.values()):
        return manifest

    def fix(node):
        if counts.get(node.task_id, 0) < 2:
            return node
        return replace(node, task_id=disambiguated(node.task_id, node.unique_id))

    return replace(
        manifest,
        sources={u: fix(n) for u, n in manifest.sources.items()},
        models={u: fix(n) for u, n in manifest.models.items()},
        tests={u: fix(n) for u, n in manifest.tests.items()},
    )
