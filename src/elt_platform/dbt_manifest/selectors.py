"""dbt selectors that select exactly one node, whatever characters its name and folders hold."""

from __future__ import annotations

import re

_GLOB_CHARACTERS = re.compile(r"([*?\[])")


def escape_glob(part: str) -> str:
    """``part`` with dbt's wildcard characters matched as themselves (``[`` -> ``[[]``)."""
    return _GLOB_CHARACTERS.sub(r"[\1]", part)


def exact_selector(fqn: tuple[str, ...], name: str) -> str:
    """dbt's selector of exactly the node with this ``fqn``.

    dbt's ``fqn:`` method matches prefixes (``fqn:proj.payments`` selects the model
    ``payments`` and every model in a folder ``payments/``) and reads ``* ? [`` as wildcards
    (``customer_spend_[usd]`` selects nothing). Once a part holds a wildcard, dbt matches the
    rest of the fqn as a whole (fnmatch). So wildcard characters are escaped (``[[]``) and
    the leaf's first character becomes a one-character class (``[p]ayments``): the selector
    matches this fqn and no other.
    """
    if not fqn:
        return name
    *folders, leaf = fqn

    first = "[]!]" if leaf[0] == "!" else f"[{leaf[0]}]"
    return "fqn:" + ".".join([*map(escape_glob, folders), first + escape_glob(leaf[1:])])
