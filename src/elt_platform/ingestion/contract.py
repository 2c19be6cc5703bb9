"""The contract between ingestion connections and the dbt sources they feed.

Every dbt source is loaded by exactly one ingestion connection, or is declared as loaded
by something else (``meta: {elt: {external: true}}`` on the source), never neither: a
source nobody loads would let models run on data nobody refreshes.
"""

from __future__ import annotations

from pathlib import Path

from elt_platform.dbt_manifest import Manifest, load_manifest
from elt_platform.dbt_project_files import manifest_location
from elt_platform.errors import ConfigurationError, Problem
from elt_platform.ingestion.connections import LoadedConnection, load_connections


def check_contract(connections: list[LoadedConnection], manifest: Manifest, project_dir: Path) -> list[Problem]:
    """Every dbt source is loaded by exactly one connection, into the schema and tables it declares."""
    problems: list[Problem] = []
    root = project_dir.parent
    by_source = {c.spec.dbt_source: c for c in connections}
    dbt_sources = manifest.source_names

    def in_project(file: str) -> str:
        return str((project_dir / file).relative_to(root)) if (project_dir / file).is_relative_to(root) else file

    def conn_file(conn: LoadedConnection) -> str:
        return str(conn.path.relative_to(root)) if conn.path.is_relative_to(root) else str(conn.path)

    external = {s.source_name: s for s in manifest.sources.values() if s.external}
    for conn in connections:
        if conn.spec.dbt_source in external:
            problems.append(
                Problem(
                    conn_file(conn),
                    "dbt_source",
                    f"dbt source '{conn.spec.dbt_source}' is declared external "
                    f"(meta: {{elt: {{external: true}}}} in {in_project(external[conn.spec.dbt_source].file)}), "
                    "yet this connection loads it",
                    "remove 'external' from the source's meta, or remove this connection",
                )
            )
        elif conn.spec.dbt_source not in dbt_sources:
            problems.append(
                Problem(
                    conn_file(conn),
                    "dbt_source",
                    f"dbt source '{conn.spec.dbt_source}' does not exist in the dbt project "
                    f"(known sources: {', '.join(sorted(dbt_sources)) or 'none'})",
                    "correct the name, or declare the source in a sources .yml under dbt_project/models/staging/",
                )
            )

    for name in sorted(dbt_sources):
        tables = manifest.source_tables(name)
        file = in_project(tables[0].file)
        conn = by_source.get(name)
        if conn is None and all(t.external for t in tables):
            continue  # loaded by something else, as the project declares
        if conn is None:
            problems.append(
                Problem(
                    file,
                    f"sources.{name}",
                    f"no ingestion connection loads dbt source '{name}', so its models would run on data nobody syncs",
                    f"add an ingestion/<connection>.yml with 'dbt_source: {name}'; if something other than this "
                    "platform loads it, declare it on the source: meta: {elt: {external: true}}",
                )
            )
            continue
        synced = set(conn.spec.tables.values())
        for table in tables:
            if table.schema != conn.spec.destination.raw_schema:
                problems.append(
                    Problem(
                        file,
                        f"sources.{name}.schema",
                        f"schema '{table.schema}' differs from destination.raw_schema "
                        f"'{conn.spec.destination.raw_schema}' in {conn_file(conn)}",
                        "make the two schema names equal",
                    )
                )
            if table.table not in synced:
                problems.append(
                    Problem(
                        file,
                        f"sources.{name}.tables.{table.table}",
                        f"table '{table.table}' is not synced by connection '{conn.spec.name}' "
                        f"({conn_file(conn)} syncs: {', '.join(sorted(synced))})",
                        f"add the stream to 'streams' in {conn_file(conn)}, or remove the table from the source",
                    )
                )
    return problems


def load_and_check(
    ingestion_dir: Path | None,
    dbt_project_dir: Path,
    manifest_path: Path | None = None,
    data_root: Path | None = None,
) -> tuple[list[LoadedConnection], Manifest]:
    """Load both halves and check the contract between them; raise every problem at once.

    ``ingestion_dir`` None: the project has nothing to ingest (no sources, or only external ones).
    ``manifest_path`` None: where dbt writes it for this project (``dbt_project_files.manifest_location``).
    """
    if not (dbt_project_dir / "dbt_project.yml").is_file():
        raise ConfigurationError(
            [
                Problem(
                    str(dbt_project_dir),
                    "dbt_project_dir",
                    "not a dbt project: there is no dbt_project.yml in it",
                    "point dbt_project_dir at the folder that holds your project's dbt_project.yml",
                )
            ]
        )
    connections = [] if ingestion_dir is None else load_connections(ingestion_dir, data_root=data_root)
    manifest_path = manifest_location(dbt_project_dir, manifest_path).require(dbt_project_dir)
    manifest = load_manifest(manifest_path, dbt_project_dir)
    problems = check_contract(connections, manifest, dbt_project_dir)
    if problems:
        raise ConfigurationError(problems)
    return connections, manifest
