"""Reading YAML that people write: UTF-8 only, duplicate keys refused, size, depth and alias
expansion bounded, every failure a :class:`Problem` naming the file, the position and the fix.

PyYAML alone lets the last of two equal keys win silently, turns a non-UTF-8 byte or a deeply
nested document into a traceback, and expands a small file of repeated aliases into millions of
values ("billion laughs"), which any code walking the result then pays for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from elt_platform.errors import Problem

MAX_BYTES = 1_000_000
MAX_DEPTH = 64
# Values the document stands for once every alias is expanded: far beyond any connection file.
MAX_EXPANDED_NODES = 100_000


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping."""

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:  # its own keys: one may override a key merged in with <<
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"key {key!r} written twice (first on line {seen[key]})", key_node.start_mark
                        )
                    seen[key] = key_node.start_mark.line + 1
                except TypeError:  # an unhashable key: SafeLoader's own error follows
                    continue
        return super().construct_mapping(node, deep=deep)


def _measure(root: Node) -> tuple[int, int]:
    """(values once aliases are expanded, nesting depth), in time linear in the file's own nodes."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        if isinstance(node, ScalarNode) or children_done or not children:
            sizes[id(node)] = 1 + sum(sizes.get(id(c), 0) for c in children)
            depths[id(node)] = 1 + max((depths.get(id(c), 0) for c in children), default=0)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)], depths[id(root)]


def read_yaml(path: Path, display: str | None = None) -> tuple[Any, list[Problem]]:
    """The document in ``path``, or the problems that keep it from being read (then ``None``)."""
    file = display or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, [
            Problem(file, "", f"cannot be read ({exc.strerror or exc})", "check that it exists and its permissions")
        ]
    if len(data) > MAX_BYTES:
        return None, [
            Problem(
                file, "", f"is {len(data):,} bytes, more than {MAX_BYTES:,}", "split it or remove what it does not need"
            )
        ]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, [
            Problem(file, f"line {line}", f"byte 0x{data[exc.start]:02x} is not UTF-8", "save the file as UTF-8")
        ]
    try:
        node = yaml.compose(text, Loader=_StrictLoader)
    except RecursionError:
        return None, [Problem(file, "", "nested too deeply to read", f"keep it under {MAX_DEPTH} levels")]
    except yaml.YAMLError as exc:
        return None, [_syntax_problem(file, exc)]
    if node is None:
        return None, []
    expanded, depth = _measure(node)
    if depth > MAX_DEPTH:
        return None, [Problem(file, "", f"nested {depth} levels deep", f"keep it under {MAX_DEPTH} levels")]
    if expanded > MAX_EXPANDED_NODES:
        return None, [
            Problem(
                file,
                "",
                f"its aliases (*name) expand to {expanded:,} values, more than {MAX_EXPANDED_NODES:,}",
                "write the values out instead of repeating aliases of aliases",
            )
        ]
    loader = _StrictLoader("")
    try:
        return loader.construct_document(node), []
    except yaml.YAMLError as exc:
        return None, [_syntax_problem(file, exc)]
    finally:
        loader.dispose()


def _syntax_problem(file: str, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    reason = getattr(exc, "problem", None) or str(exc)
    return Problem(file, where, f"invalid YAML ({reason})", "fix the YAML at that position")
