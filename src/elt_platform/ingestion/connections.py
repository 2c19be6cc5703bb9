"""Ingestion connections: one YAML file per connection under ``ingestion/``.

Each file is validated against :class:`ConnectionSpec` when it is loaded. Every
problem is reported with the file, the field and the fix, and all files are read
before anything is raised, so one run of ``elt check`` lists every mistake.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from elt_platform.errors import ConfigurationError, Problem
from elt_platform.safe_yaml import read_yaml

CONNECTION_FILE_GLOBS = ("*.yml", "*.yaml")

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)]

# Config keys whose value is a credential. Such a value must be a reference.
SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|credential|access[_-]?key|service[_-]?account"
    r"|authorization|cookie)",  # not "auth" alone: auth_type and auth_method name kinds, not secrets
    re.IGNORECASE,
)
# Values that are credentials whatever their key is called.
SECRET_VALUES = {
    "an authorization header (Bearer/Basic/Token …)": re.compile(r"^\s*(bearer|basic|token|digest)\s+\S{8,}", re.I),
    "a URL or DSN with a password": re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s:]*:[^/@\s]+@", re.I),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "a JSON Web Token": re.compile(r"^eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+$"),
    "a cloud or SaaS access key": re.compile(
        r"^(AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[\w-]{10,}|sk_(live|test)_\w{16,}|AIza[\w-]{35})$"
    ),
}
SECRET_REF_HELP = (
    "reference it instead: {from_env: ENV_VAR_NAME} or {from_airflow_connection: CONN_ID, field: password}"
)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FromEnv(_Spec):
    """A value read from an environment variable of the worker at run time."""

    from_env: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class FromAirflowConnection(_Spec):
    """A value read from a field of an Airflow connection at run time."""

    from_airflow_connection: str
    field: Literal["host", "login", "password", "schema", "port", "extra"] = "password"


class LocalPath(_Spec):
    """A file path relative to the connection's YAML file, made absolute at run time. It must stay
    inside the connection's folder (or ``ELT_INGESTION_DATA_ROOT``): a worker's own files must not
    land in raw tables that dashboards read."""

    local_path: Annotated[str, StringConstraints(min_length=1)]


class SourceSpec(_Spec):
    connector: Annotated[str, StringConstraints(pattern=r"^source-[a-z0-9-]+$")] = Field(
        description="Airbyte source connector name, e.g. source-faker."
    )
    package: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]+==[A-Za-z0-9_.\-]+$")] = Field(
        description="Pinned PyPI requirement of the connector for the local backend, e.g. airbyte-source-faker==7.2.1."
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Connector configuration. Secrets only by reference: {from_env: VAR} or "
            "{from_airflow_connection: CONN_ID, field: password}. {local_path: rel/path} is "
            "resolved against the YAML file's folder."
        ),
    )


class DestinationSpec(_Spec):
    raw_schema: Identifier = Field(description="Schema the raw tables land in (a dataset on BigQuery).")
    table_prefix: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]*$")] = Field(
        default="", description="Prefix of every raw table name; a table is named <prefix><stream>."
    )


class ProductionSpec(_Spec):
    airbyte_connection_id: UUID = Field(
        description="Id of the Airbyte Cloud/OSS connection that runs this sync in production."
    )


class RetrySpec(_Spec):
    """Overrides of the default retry policy (src/elt_platform/settings.py) for one connection's sync."""

    retries: Annotated[int, Field(ge=0, le=10)] | None = None
    retry_delay_seconds: Annotated[float, Field(gt=0)] | None = None
    max_retry_delay_seconds: Annotated[float, Field(gt=0)] | None = None


class SyncMode(StrEnum):
    """How a stream is read on the embedded backend (Airbyte's sync modes)."""

    # Only what is new or changed since the state kept in the connection's store, deduplicated
    # by primary key ("incremental, append + deduped"); a full refresh where the connector cannot.
    INCREMENTAL = "incremental"
    # Every record, every run: the state is ignored and replaced, and the table is replaced.
    FULL_REFRESH = "full_refresh"


class StreamSpec(_Spec):
    """One stream of a connection, and how it is read."""

    name: Identifier = Field(description="Stream name; it lands in <raw_schema>.<table_prefix><name>.")
    sync_mode: SyncMode = Field(
        default=SyncMode.INCREMENTAL,
        description=(
            "incremental (default): only new or changed records, deduplicated by primary key, where the "
            "connector supports it (else a full refresh). full_refresh: every record, every run."
        ),
    )


def _stream_from_name(item: Any) -> Any:
    """A bare stream name is the stream with the default sync mode."""
    if isinstance(item, str):
        return {"name": item}
    if not isinstance(item, dict):
        raise ValueError(f"{item!r} is neither a stream name nor a mapping {{name: <stream>, sync_mode: full_refresh}}")
    return item


def _streams_schema(schema: dict[str, Any]) -> None:
    """In the JSON Schema an item is a name or a mapping, as the files may write it."""
    name = TypeAdapter(Identifier).json_schema() | {"description": "A stream name."}
    schema["items"] = {"anyOf": [name, schema["items"]]}


class ConnectionSpec(_Spec):
    """One ingestion connection: an Airbyte source synced into raw tables that feed one dbt source."""

    name: Identifier = Field(description="Machine name; the sync task is called sync_<name>.")
    title: Annotated[str, StringConstraints(min_length=1)] = Field(description="Human-readable name.")
    description: str = ""
    source: SourceSpec
    # Read from the file's `streams`; `streams` is the names (what most code needs), `stream_specs` the items.
    stream_specs: Annotated[list[Annotated[StreamSpec, BeforeValidator(_stream_from_name)]], Field(min_length=1)] = (
        Field(
            alias="streams",
            description=(
                "Streams to sync; each lands in <raw_schema>.<table_prefix><stream>. An item is a stream "
                "name (incremental where the connector supports it) or {name: <stream>, sync_mode: full_refresh}."
            ),
            json_schema_extra=_streams_schema,
        )
    )
    destination: DestinationSpec
    dbt_source: Identifier = Field(description="Name of the dbt source these raw tables are declared as.")
    production: ProductionSpec
    retries: RetrySpec = Field(default_factory=RetrySpec, description="Retry policy overrides for the sync task.")

    @field_validator("stream_specs")
    @classmethod
    def _streams_unique(cls, streams: list[StreamSpec]) -> list[StreamSpec]:
        names = [s.name for s in streams]
        seen = [n for n in names if names.count(n) > 1]
        if seen:
            raise ValueError(f"stream listed twice: {sorted(set(seen))}")
        return streams

    @property
    def streams(self) -> list[str]:
        """The stream names, in the file's order."""
        return [s.name for s in self.stream_specs]

    @property
    def task_id(self) -> str:
        return f"sync_{self.name}"

    @property
    def tables(self) -> dict[str, str]:
        """Stream name to raw table name."""
        return {s: f"{self.destination.table_prefix}{s}" for s in self.streams}


@dataclass(frozen=True)
class LoadedConnection:
    spec: ConnectionSpec
    path: Path


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _problem_from_error(file: str, err: dict[str, Any]) -> Problem:
    field = _field_path(err["loc"])
    kind = err["type"]
    if kind == "missing":
        return Problem(
            file, field, "required field is missing", f"add '{field}' (see ingestion/connection.schema.json)"
        )
    if kind == "extra_forbidden":
        return Problem(
            file,
            field,
            "unknown field",
            "remove it or fix its spelling (see ingestion/connection.schema.json)",
        )
    return Problem(file, field, err["msg"], f"set '{field}' to a valid value (see ingestion/connection.schema.json)")


def _inline_secrets(file: str, value: Any, loc: str) -> list[Problem]:
    """Credentials written into the config instead of referenced."""
    problems: list[Problem] = []
    if isinstance(value, dict):
        if value.keys() & {"from_env", "from_airflow_connection", "local_path"}:
            for ref in (FromEnv, FromAirflowConnection, LocalPath):
                try:
                    ref.model_validate(value)
                    return []
                except ValidationError:
                    continue
            return [Problem(file, loc, f"malformed reference {value!r}", SECRET_REF_HELP)]
        for key, child in value.items():
            child_loc = f"{loc}.{key}"
            if SECRET_KEY.search(str(key)) and not isinstance(child, dict | bool) and child not in (None, ""):
                problems.append(Problem(file, child_loc, "secret written inline", SECRET_REF_HELP))
            else:
                problems.extend(_inline_secrets(file, child, child_loc))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            problems.extend(_inline_secrets(file, child, f"{loc}.{i}"))
    elif isinstance(value, str):
        for kind, pattern in SECRET_VALUES.items():
            if pattern.search(value):
                # The value itself is never quoted back: it is the secret.
                problems.append(Problem(file, loc, f"looks like {kind} written inline", SECRET_REF_HELP))
                break
    return problems


def _references(value: Any, loc: str) -> list[tuple[str, Any]]:
    """Every reference in a config, with where it is: ``(source.config.url, FromEnv(...))``."""
    if isinstance(value, dict):
        for ref in (FromEnv, FromAirflowConnection, LocalPath):
            if value.keys() & ref.model_fields.keys():
                try:
                    return [(loc, ref.model_validate(value))]
                except ValidationError:
                    return []  # reported by _inline_secrets
        return [found for key, child in value.items() for found in _references(child, f"{loc}.{key}")]
    if isinstance(value, list):
        return [found for i, child in enumerate(value) for found in _references(child, f"{loc}.{i}")]
    return []


def data_roots(connection_file: Path, extra_root: Path | None) -> list[Path]:
    """The folders a ``local_path`` may point into: the connection file's own, and the configured one."""
    return [connection_file.resolve().parent, *([extra_root.resolve()] if extra_root else [])]


def local_file(ref: LocalPath, connection_file: Path, extra_root: Path | None, loc: str = "source.config") -> Path:
    """The absolute path ``ref`` names, or :class:`ConfigurationError` if it leaves its roots."""
    roots = data_roots(connection_file, extra_root)
    path = (roots[0] / ref.local_path).resolve()  # symlinks followed: the file read is the one checked
    if not any(path.is_relative_to(root) for root in roots):
        allowed = " or ".join(str(r) for r in roots)
        raise ConfigurationError(
            [
                Problem(
                    connection_file.name,
                    loc,
                    f"local_path {ref.local_path!r} leaves the ingestion folder ({allowed})",
                    "put the file in the ingestion folder (e.g. data/), "
                    "or set ELT_INGESTION_DATA_ROOT to the folder that holds it",
                )
            ]
        )
    return path


def _path_problems(file: str, config: Any, connection_file: Path, extra_root: Path | None) -> list[Problem]:
    problems = []
    for loc, ref in _references(config, "source.config"):
        if isinstance(ref, LocalPath):
            try:
                local_file(ref, connection_file, extra_root, loc)
            except ConfigurationError as exc:
                problems.extend(replace(p, file=file) for p in exc.problems)
    return problems


def runtime_problems(
    connection: LoadedConnection, environ: Mapping[str, str], extra_root: Path | None
) -> list[Problem]:
    """What would fail only when the sync runs: a file that is not there, a variable that is not set.

    ``elt check`` reports these; the DAG still imports without them (a file can be put back before
    the next run, and production workers may hold variables this machine does not).
    """
    file = connection.path.name
    problems = []
    for loc, ref in _references(connection.spec.source.config, "source.config"):
        if isinstance(ref, FromEnv) and ref.from_env not in environ:
            problems.append(
                Problem(
                    file,
                    loc,
                    f"environment variable {ref.from_env} is not set",
                    f"export {ref.from_env} on the workers (and where elt check runs)",
                )
            )
        if isinstance(ref, LocalPath):
            path = local_file(ref, connection.path, extra_root, loc)
            if not path.is_file():
                problems.append(
                    Problem(
                        file,
                        loc,
                        f"local_path {ref.local_path!r} is not a file ({path})",
                        "put the file there, or correct the path",
                    )
                )
    return problems


def load_connection_file(
    path: Path, display_root: Path | None = None, data_root: Path | None = None
) -> tuple[LoadedConnection | None, list[Problem]]:
    """Parse and validate one file; returns the connection or the problems found.

    ``data_root``: a folder besides the file's own that ``local_path`` may point into (``ELT_INGESTION_DATA_ROOT``).
    """
    file = str(path.relative_to(display_root)) if display_root and path.is_relative_to(display_root) else str(path)
    raw, problems = read_yaml(path, file)
    if problems:
        return None, problems
    if not isinstance(raw, dict):
        return None, [Problem(file, "", "expected a mapping of fields", "start the file with 'name: <connection>'")]
    config = raw.get("source", {}).get("config", {}) if isinstance(raw.get("source"), dict) else {}
    problems = _inline_secrets(file, config, "source.config") + _path_problems(file, config, path, data_root)
    try:
        spec = ConnectionSpec.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_problem_from_error(file, err) for err in exc.errors())
        return None, problems
    if problems:
        return None, problems
    return LoadedConnection(spec, path), []


def load_connections(
    directory: Path, display_root: Path | None = None, data_root: Path | None = None
) -> list[LoadedConnection]:
    """Load every connection file in ``directory``; raise one error listing all problems."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigurationError(
            [
                Problem(
                    str(directory),
                    "",
                    "is not a folder",
                    "point it at the folder holding one <name>.yml per connection",
                )
            ]
        )
    files = sorted({p for pattern in CONNECTION_FILE_GLOBS for p in directory.glob(pattern)})
    root = display_root or directory.parent
    if not files:
        raise ConfigurationError(
            [Problem(str(directory), "", "no connection files found", "add one <name>.yml per connection")]
        )
    loaded: list[LoadedConnection] = []
    problems: list[Problem] = []
    for path in files:
        conn, found = load_connection_file(path, root, data_root)
        problems.extend(found)
        if conn:
            loaded.append(conn)

    def rel(p: Path) -> str:
        return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)

    for attribute in ("name", "dbt_source"):
        owners: dict[str, list[Path]] = defaultdict(list)
        for conn in loaded:
            owners[getattr(conn.spec, attribute)].append(conn.path)
        for value, paths in owners.items():
            if len(paths) > 1:
                problems.extend(
                    Problem(
                        rel(p),
                        attribute,
                        f"{attribute} '{value}' is also used by {', '.join(rel(o) for o in paths if o != p)}",
                        f"give each connection its own {attribute}",
                    )
                    for p in paths
                )
    if problems:
        raise ConfigurationError(problems)
    return loaded


def resolve_config(
    value: Any,
    connection_file: Path,
    lookup_connection: Callable[[str], Any] | None = None,
    environ: Mapping[str, str] | None = None,
    on_secret: Callable[[Any], None] = lambda secret: None,
    data_root: Path | None = None,
) -> Any:
    """Replace references in a connector config with their values. Called at run time only.

    Every value read through a reference is a secret: ``on_secret`` gets it (the sync
    operator registers it with Airflow's log masker).
    """
    environ = os.environ if environ is None else environ

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "from_env" in node:
                ref = FromEnv.model_validate(node)
                if ref.from_env not in environ:
                    raise ConfigurationError(
                        [
                            Problem(
                                connection_file.name,
                                "source.config",
                                f"environment variable {ref.from_env} is not set on the worker",
                                f"export {ref.from_env} in the workers' environment",
                            )
                        ]
                    )
                on_secret(environ[ref.from_env])
                return environ[ref.from_env]
            if "from_airflow_connection" in node:
                ref = FromAirflowConnection.model_validate(node)
                secret = getattr(lookup_connection(ref.from_airflow_connection), ref.field)
                on_secret(secret)
                return secret
            if "local_path" in node:
                return str(local_file(LocalPath.model_validate(node), connection_file, data_root))
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(value)
