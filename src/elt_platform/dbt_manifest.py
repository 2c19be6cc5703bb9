"""The parts of a dbt ``manifest.json`` the orchestration needs: sources, models, tests and exposures.

Reading a large manifest is most of a DAG parse (about 6 MB at 1,000 models), so the
parts kept here are cached next to it (``manifest.elt.json``, a few hundred kB) and
re-read from the manifest only when its size or modification time changes.

Only the manifest schema dbt 1.8 to 1.11 write (v12) is read; any other is refused with
the fix. Each node's Airflow task id is decided here, once (``elt_platform.task_names``).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from elt_platform.task_names import disambiguated, node_task_id

BUILDABLE = ("model", "seed", "snapshot")
CACHE_VERSION = 4
SUPPORTED_SCHEMAS = ("v12",)  # dbt 1.8 to 1.11
SCHEMA_URL = "https://schemas.getdbt.com/dbt/manifest/"
# Files whose change makes a manifest stale; dbt writes target/ and logs/ itself.
PROJECT_FILE_SUFFIXES = (".sql", ".yml", ".yaml", ".csv", ".py", ".md")
GENERATED_DIRS = ("target", "logs")


class ManifestError(ValueError):
    """A manifest this platform cannot read; the message names the file and the fix."""


class StaleManifestWarning(UserWarning):
    """The dbt project changed after its manifest was built."""


@dataclass(frozen=True)
class SourceTable:
    unique_id: str
    source_name: str
    table: str
    schema: str
    file: str
    has_freshness: bool
    # Loaded by something other than this platform: meta: {elt: {external: true}} on the source.
    external: bool = False
    task_id: str = ""

    @property
    def name(self) -> str:
        return f"{self.source_name}.{self.table}"


@dataclass(frozen=True)
class Model:
    """A node dbt builds: a model, seed or snapshot."""

    unique_id: str
    name: str
    file: str
    depends_on: tuple[str, ...]
    owner: str | None = None
    resource_type: str = "model"
    # meta: {cosmos: {operator_kwargs: {...}}}: Airflow task arguments (e.g. retries) for this node.
    operator_kwargs: dict = field(default_factory=dict, compare=False)
    fqn: tuple[str, ...] = ()
    materialized: str = ""
    schema: str = ""  # where dbt builds it, as parsed (the relation is schema.alias)
    alias: str = ""
    task_id: str = ""
    display_name: str = ""  # the dbt name, e.g. "customers.v2" or "helpers.calendar"
    # An enforced contract's (column, data_type) pairs; empty without one.
    contract_columns: tuple[tuple[str, str], ...] = ()
    contract_alias_types: bool = True
    properties_file: str = ""  # the YAML that describes it, e.g. models/marts/_sales__models.yml

    @property
    def is_python(self) -> bool:
        """A Python model (``def model(dbt, session)``): dbt-duckdb runs it in dbt's process."""
        return self.resource_type == "model" and self.file.endswith(".py")

    @property
    def is_ephemeral(self) -> bool:
        """Inlined into its children by dbt: nothing is built, so there is no result to report."""
        return self.materialized == "ephemeral"

    @property
    def selector(self) -> str:
        return exact_selector(self.fqn, self.name)


@dataclass(frozen=True)
class Test:
    """A data test, or a unit test (``resource_type`` "unit_test", on the model it tests)."""

    unique_id: str
    name: str
    depends_on: tuple[str, ...]  # the models and sources it reads
    resource_type: str = "test"
    task_id: str = ""
    fqn: tuple[str, ...] = ()

    @property
    def selector(self) -> str:
        return exact_selector(self.fqn, self.name)


@dataclass(frozen=True)
class Exposure:
    """A dashboard (or other consumer) of the project's models, as declared in dbt."""

    unique_id: str
    name: str
    label: str
    url: str | None
    depends_on: tuple[str, ...]
    owner_name: str = ""
    owner_email: str = ""
    description: str = ""
    # meta: {fresh_by: "07:00", fresh_by_timezone: "Europe/Paris"}: when its owner expects it fresh.
    fresh_by: str = ""
    fresh_by_timezone: str = "UTC"
    file: str = ""  # the YAML that declares it


@dataclass(frozen=True)
class Manifest:
    path: Path
    sources: dict[str, SourceTable] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)
    exposures: dict[str, Exposure] = field(default_factory=dict)
    tests: dict[str, Test] = field(default_factory=dict)

    def source_tables(self, source_name: str) -> list[SourceTable]:
        return [s for s in self.sources.values() if s.source_name == source_name]

    @property
    def source_names(self) -> set[str]:
        return {s.source_name for s in self.sources.values()}

    def exposures_reading(self, unique_ids: set[str]) -> list[Exposure]:
        return [e for e in self.exposures.values() if unique_ids & set(e.depends_on)]

    def marts_of(self, exposure: Exposure) -> tuple[str, ...]:
        """The tables a dashboard reads: the models it depends on, each ephemeral one (inlined by
        dbt into what reads it, never a table) replaced by the models it reads."""
        found: list[str] = []
        seen: set[str] = set()
        stack = list(reversed(exposure.depends_on))
        while stack:
            uid = stack.pop()
            if uid in seen or uid not in self.models:
                continue
            seen.add(uid)
            if self.models[uid].is_ephemeral:
                stack.extend(reversed(self.models[uid].depends_on))
            else:
                found.append(uid)
        return tuple(found)

    def nodes_read_by(self, test: Test) -> list[str]:
        """The models, seeds, snapshots and sources a test reads."""
        return [p for p in dict.fromkeys(test.depends_on) if p in self.models or p in self.sources]

    def tests_reading_several_nodes(self) -> list[Test]:
        """Tests that read two nodes or more (e.g. relationships): a task of their own, once all exist."""
        return [t for t in self.tests.values() if len(self.nodes_read_by(t)) > 1]

    def downstream_of(self, unique_ids: set[str]) -> set[str]:
        """Every model that reads, directly or not, from any of ``unique_ids``."""
        found: set[str] = set()
        frontier = set(unique_ids)
        while frontier:
            frontier = {
                m.unique_id for m in self.models.values() if m.unique_id not in found and frontier & set(m.depends_on)
            }
            found |= frontier
        return found


_GLOB_CHARACTERS = re.compile(r"([*?\[])")


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

    def escape(part: str) -> str:
        return _GLOB_CHARACTERS.sub(r"[\1]", part)

    first = "[]!]" if leaf[0] == "!" else f"[{leaf[0]}]"
    return "fqn:" + ".".join([*map(escape, folders), first + escape(leaf[1:])])


def _has_freshness(node: dict) -> bool:
    freshness = node.get("freshness") or {}
    return bool(node.get("loaded_at_field") or node.get("loaded_at_query")) and any(
        (freshness.get(level) or {}).get("count") for level in ("warn_after", "error_after")
    )


def _metas(node: dict) -> list[dict]:
    """Every meta dbt may have put a key in: the node's config, its own, and (sources) the source's."""
    return [(node.get("config") or {}).get("meta") or {}, node.get("meta") or {}, node.get("source_meta") or {}]


def _is_external(node: dict) -> bool:
    return any(bool((meta.get("elt") or {}).get("external")) for meta in _metas(node))


def _operator_kwargs(node: dict) -> dict:
    meta = (node.get("config") or {}).get("meta") or node.get("meta") or {}
    return dict((meta.get("cosmos") or {}).get("operator_kwargs") or {})


def _meta(node: dict) -> dict:
    """Every meta key of the node, the config's first (dbt 1.10+ keeps meta there)."""
    return {key: value for meta in reversed(_metas(node)) for key, value in meta.items()}


def _parents(node: dict) -> tuple[str, ...]:
    # A seed's depends_on has no "nodes" key.
    return tuple((node.get("depends_on") or {}).get("nodes") or ())


def _contract(node: dict) -> dict:
    contract = (node.get("config") or {}).get("contract") or {}
    if not contract.get("enforced"):
        return {}
    columns = tuple((c["name"], c.get("data_type") or "") for c in (node.get("columns") or {}).values())
    return {"contract_columns": columns, "contract_alias_types": bool(contract.get("alias_types", True))}


def _display_name(node: dict, root_package: str) -> str:
    name = node["name"] if node.get("version") is None else f"{node['name']}.v{node['version']}"
    return name if node.get("package_name", root_package) == root_package else f"{node['package_name']}.{name}"


def _task_id(node: dict, root_package: str) -> str:
    name = node["name"] if node.get("version") is None else f"{node['name']}_v{node['version']}"
    package = node.get("package_name", root_package)
    return node_task_id(name) if package == root_package else node_task_id(package, name)


def _source_task_id(node: dict, root_package: str) -> str:
    parts = (node["source_name"], node["name"])
    return node_task_id(*parts) if node["package_name"] == root_package else node_task_id(node["package_name"], *parts)


def check_schema(raw: dict, path: Path) -> None:
    """Refuse a manifest from a dbt whose manifest schema this platform does not read."""
    metadata = raw.get("metadata") or {}
    schema = str(metadata.get("dbt_schema_version") or "")
    version = schema.removeprefix(SCHEMA_URL).removesuffix(".json")
    if version in SUPPORTED_SCHEMAS:
        return
    found = f"schema {version or 'unknown'} (dbt {metadata.get('dbt_version') or 'unknown'})"
    raise ManifestError(
        f"{path}: a dbt manifest of {found}, but this platform reads manifest schema "
        f"{', '.join(SUPPORTED_SCHEMAS)} (dbt 1.8 to 1.11). Fix: rebuild it with the dbt of this "
        "platform's environment: `dbt parse` in the project (`make manifest` for the bundled one)."
    )


def _from_manifest(path: Path) -> Manifest:
    try:
        raw = json.loads(path.read_bytes())
    except ValueError as error:  # UnicodeDecodeError included
        raise ManifestError(f"{path}: not valid JSON ({error}). Fix: rebuild it with `dbt parse`.") from error
    except RecursionError:
        raise ManifestError(
            f"{path}: nested too deeply to be a dbt manifest. Fix: rebuild it with `dbt parse`."
        ) from None
    if not isinstance(raw, dict):
        raise ManifestError(
            f"{path}: a JSON {type(raw).__name__}, not a dbt manifest (an object with nodes and sources). "
            "Fix: point the DAG at target/manifest.json as `dbt parse` writes it."
        )
    check_schema(raw, path)
    try:
        return _read_nodes(raw, path)
    except (KeyError, TypeError, AttributeError) as error:
        raise ManifestError(
            f"{path}: not shaped like a dbt manifest ({type(error).__name__}: {error}). "
            "Fix: rebuild it with `dbt parse`, unedited."
        ) from None


def _read_nodes(raw: dict, path: Path) -> Manifest:
    for section in ("nodes", "sources"):
        if not isinstance(raw.get(section), dict):
            raise ManifestError(
                f"{path}: has no '{section}' object, so it is not a whole dbt manifest. "
                "Fix: rebuild it with `dbt parse`, unedited."
            )
    root = (raw.get("metadata") or {}).get("project_name") or ""
    sources = {
        uid: SourceTable(
            unique_id=uid,
            source_name=n["source_name"],
            table=n["name"],
            schema=n["schema"],
            file=n["original_file_path"],
            has_freshness=_has_freshness(n),
            external=_is_external(n),
            task_id=_source_task_id(n, root),
        )
        for uid, n in raw["sources"].items()
    }
    models = {
        uid: Model(
            unique_id=uid,
            name=n["name"],
            file=n["original_file_path"],
            depends_on=_parents(n),
            owner=(n.get("meta") or {}).get("owner") or n.get("group"),
            resource_type=n["resource_type"],
            operator_kwargs=_operator_kwargs(n),
            fqn=tuple(n.get("fqn") or ()),
            materialized=(n.get("config") or {}).get("materialized") or "",
            schema=n.get("schema") or "",
            alias=n.get("alias") or n["name"],
            task_id=_task_id(n, root),
            display_name=_display_name(n, root),
            **_contract(n),
            properties_file=(n.get("patch_path") or "").partition("://")[2],
        )
        for uid, n in raw["nodes"].items()
        if n["resource_type"] in BUILDABLE
    }
    exposures = {
        uid: Exposure(
            unique_id=uid,
            name=n["name"],
            label=n.get("label") or n["name"],
            url=n.get("url"),
            depends_on=_parents(n),
            owner_name=(n.get("owner") or {}).get("name") or "",
            owner_email=(n.get("owner") or {}).get("email") or "",
            description=n.get("description") or "",
            fresh_by=str(_meta(n).get("fresh_by") or ""),
            fresh_by_timezone=str(_meta(n).get("fresh_by_timezone") or "UTC"),
            file=n.get("original_file_path") or "",
        )
        for uid, n in raw.get("exposures", {}).items()
    }
    tests = {
        uid: Test(
            unique_id=uid,
            name=n["name"],
            depends_on=_parents(n),
            task_id=_task_id(n, root),
            fqn=tuple(n.get("fqn") or ()),
        )
        for uid, n in raw["nodes"].items()
        if n["resource_type"] == "test"
    }
    # A unit test runs before its model in `dbt build`; a failing one keeps the model from being built.
    tests |= {
        uid: Test(unique_id=uid, name=n["name"], depends_on=_parents(n)[:1], resource_type="unit_test")
        for uid, n in (raw.get("unit_tests") or {}).items()
    }
    return _unique_task_ids(Manifest(path=path, sources=sources, models=models, exposures=exposures, tests=tests))


def _unique_task_ids(manifest: Manifest) -> Manifest:
    """Two nodes mapped to one task id (rare: e.g. a model named like a test) both get their unique_id's hash."""
    nodes = [*manifest.sources.values(), *manifest.models.values(), *manifest.tests.values()]
    counts = Counter(n.task_id for n in nodes if n.task_id)
    if all(count == 1 for count in counts.values()):
        return manifest

    def fix(node):
        if counts.get(node.task_id, 0) < 2:
            return node
        return type(node)(**{**asdict(node), "task_id": disambiguated(node.task_id, node.unique_id)})

    return Manifest(
        path=manifest.path,
        sources={u: fix(n) for u, n in manifest.sources.items()},
        models={u: fix(n) for u, n in manifest.models.items()},
        exposures=manifest.exposures,
        tests={u: fix(n) for u, n in manifest.tests.items()},
    )


def _cache_key(path: Path) -> list:
    stat = path.stat()
    return [CACHE_VERSION, stat.st_size, stat.st_mtime_ns]


def _write_cache(manifest: Manifest, cache: Path) -> None:
    parts = {name: {uid: asdict(item) for uid, item in getattr(manifest, name).items()} for name in _PARTS}
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"key": _cache_key(manifest.path), **parts}))
        tmp.replace(cache)  # atomic: a concurrent reader sees the old cache or the new one
    except OSError:  # a read-only project (e.g. an image) still parses, from the manifest
        tmp.unlink(missing_ok=True)


def _read_cache(path: Path, cache: Path) -> Manifest | None:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    if data.get("key") != _cache_key(path):
        return None
    parts = {}
    for name, cls in _PARTS.items():
        parts[name] = {
            uid: cls(**{k: _tuples(v) if isinstance(v, list) else v for k, v in item.items()})
            for uid, item in data[name].items()
        }
    return Manifest(path=path, **parts)


def _tuples(value: list) -> tuple:
    """JSON's lists back into the tuples they were (contract columns are pairs)."""
    return tuple(_tuples(v) if isinstance(v, list) else v for v in value)


_PARTS = {"sources": SourceTable, "models": Model, "exposures": Exposure, "tests": Test}


def newest_project_file(project_dir: Path, target_dir: Path | None = None) -> tuple[float, Path | None]:
    """The most recently changed file dbt reads in ``project_dir``, not what dbt writes: ``target_dir``
    (where the manifest is, whatever the project's ``target-path``), ``target/`` and ``logs/``."""
    newest: tuple[float, Path | None] = (0.0, None)
    skipped = str(target_dir) if target_dir else None
    stack = [str(project_dir)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    generated = entry.name in GENERATED_DIRS or entry.path == skipped
                    if not entry.name.startswith(".") and not generated:
                        stack.append(entry.path)
                elif entry.name.endswith(PROJECT_FILE_SUFFIXES) and (mtime := entry.stat().st_mtime) > newest[0]:
                    newest = (mtime, Path(entry.path))
    return newest


def warn_if_stale(path: Path, project_dir: Path) -> None:
    """Warn (a DAG import warning in Airflow's UI) when a project file is newer than the manifest."""
    mtime, newest = newest_project_file(project_dir, path.parent)
    if newest is not None and mtime > path.stat().st_mtime:
        warnings.warn(
            f"{path} is older than {newest.relative_to(project_dir)} in {project_dir}: the DAG shows the project "
            "as it was when the manifest was built. Fix: rebuild it with `make manifest` (`dbt parse` in the "
            "project).",
            StaleManifestWarning,
            stacklevel=3,
        )


def load_manifest(path: Path, project_dir: Path | None = None) -> Manifest:
    """Read a manifest written by ``dbt parse``; raise ``FileNotFoundError`` or ``ManifestError`` with the fix.

    With ``project_dir``, warn when the project changed after the manifest was built.
    """
    path = Path(path)
    if not path.is_file():
        where = f" in {project_dir}" if project_dir else ""
        raise FileNotFoundError(
            f"dbt manifest not found at {path}. Fix: build it with `dbt parse`{where} "
            "(`make manifest` for the bundled project); DAG parsing never runs dbt itself."
        )
    cache = path.with_name(f"{path.stem}.elt.json")
    manifest = _read_cache(path, cache)
    if manifest is None:
        manifest = _from_manifest(path)
        _write_cache(manifest, cache)
    if project_dir is not None:
        warn_if_stale(path, Path(project_dir))
    return manifest
