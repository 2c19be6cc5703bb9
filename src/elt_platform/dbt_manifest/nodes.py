"""The parts of a dbt manifest the orchestration keeps: source tables, buildable nodes, tests and
exposures, and the ``Manifest`` that holds them. Plain frozen dataclasses: the rules that read
them (the graph's walks, which tests get a task, task ids) live in ``dbt_manifest.graph``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from elt_platform.dbt_manifest import graph
from elt_platform.dbt_manifest.selectors import exact_selector


class ResourceType(StrEnum):
    """dbt's ``resource_type`` of a node (a str: compares equal to dbt's own spelling)."""

    MODEL = "model"
    SEED = "seed"
    SNAPSHOT = "snapshot"
    TEST = "test"
    UNIT_TEST = "unit_test"
    SOURCE = "source"
    EXPOSURE = "exposure"
    ANALYSIS = "analysis"
    OPERATION = "operation"  # a hook (on-run-start, on-run-end)


# What `dbt build` builds, one Airflow task each.
BUILDABLE = frozenset({ResourceType.MODEL, ResourceType.SEED, ResourceType.SNAPSHOT})


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
    database: str = ""
    columns: tuple[tuple[str, str], ...] = ()  # (name, data type or "") as declared in its YAML

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
    resource_type: ResourceType = ResourceType.MODEL
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
    # dbt's freshness.build_after, in seconds: built again once this long has passed since its last build.
    build_after_seconds: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "resource_type", ResourceType(self.resource_type))

    @property
    def is_python(self) -> bool:
        """A Python model (``def model(dbt, session)``): dbt-duckdb runs it in dbt's process."""
        return self.resource_type is ResourceType.MODEL and self.file.endswith(".py")

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
    resource_type: ResourceType = ResourceType.TEST
    task_id: str = ""
    fqn: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "resource_type", ResourceType(self.resource_type))

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

    # The graph's rules, as methods for convenience: each lives in ``dbt_manifest.graph``.

    def marts_of(self, exposure: Exposure) -> tuple[str, ...]:
        """The tables a dashboard reads (``graph.marts_of``)."""
        return graph.marts_of(self, exposure)

    def nodes_read_by(self, test: Test) -> list[str]:
        """The models, seeds, snapshots and sources a test reads (``graph.nodes_read_by``)."""
        return graph.nodes_read_by(self, test)

    def tests_reading_several_nodes(self) -> list[Test]:
        """The tests with a task of their own (``graph.tests_with_own_task``)."""
        return graph.tests_with_own_task(self)

    def downstream_of(self, unique_ids: set[str]) -> set[str]:
        """Every model that reads, directly or not, from any of ``unique_ids`` (``graph.downstream``)."""
        return graph.downstream(self, unique_ids)
