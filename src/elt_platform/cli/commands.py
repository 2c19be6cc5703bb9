"""``elt``: validate the configuration and summarise a pipeline run.

- ``elt check``: every ingestion file, the contract with the dbt sources (``--no-ingestion``
  for a project whose sources are all loaded outside this platform), and that every
  enforced contract's data types are types BigQuery accepts.
- ``elt check-airbyte``: the production Airbyte connections exist and sync what dbt reads.
- ``elt schema``: print the JSON Schema of an ingestion file.
- ``elt summary``: task states, rows per raw table and per mart, and the dashboards' health, after a run.
- ``elt run``: run a DAG once (``airflow dags test``), showing each task as it ends; ``--full-refresh``
  resyncs every stream in full.
- ``elt health``: every dashboard's health (``--json`` for programs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from elt_platform.errors import ConfigurationError, ManifestError
from elt_platform.ingestion.connections import ConnectionSpec
from elt_platform.settings import Settings, SettingsError


def _check(args: argparse.Namespace) -> int:
    from elt_platform.bigquery_types import contract_type_problems, python_model_problems
    from elt_platform.ingestion.connections import runtime_problems
    from elt_platform.ingestion.contract import load_and_check

    ingestion_dir = None if args.no_ingestion else args.ingestion_dir
    try:
        settings = Settings.from_env()
        data_root = settings.ingestion_data_root
        connections, manifest = load_and_check(ingestion_dir, args.dbt_project_dir, args.manifest, data_root)
        problems = contract_type_problems(manifest)
        if settings.warehouse_type == "bigquery":
            problems += python_model_problems(manifest)
        problems += [p for conn in connections for p in runtime_problems(conn, os.environ, data_root)]
        if problems:
            raise ConfigurationError(problems)
    except (ConfigurationError, FileNotFoundError, ManifestError, SettingsError) as exc:
        print(exc, file=sys.stderr)
        return 1
    for conn in connections:
        tables = ", ".join(f"{conn.spec.destination.raw_schema}.{t}" for t in conn.spec.tables.values())
        print(f"ok  {conn.path.name}: {conn.spec.title} -> dbt source '{conn.spec.dbt_source}' ({tables})")
    external = sum(s.external for s in manifest.sources.values())
    print(
        f"ok  {len(manifest.models)} dbt models, seeds and snapshots; {len(manifest.sources)} source tables, "
        f"{len(manifest.sources) - external} loaded by a connection, {external} declared external"
    )
    columns = sum(len(m.contract_columns) for m in manifest.models.values())
    print(f"ok  {columns} contract columns, every data_type one BigQuery accepts")
    return 0


def _check_airbyte(args: argparse.Namespace) -> int:
    from airflow.providers.airbyte.hooks.airbyte import AirbyteHook

    from elt_platform.ingestion.airbyte_contract import check_airbyte
    from elt_platform.ingestion.contract import load_and_check

    try:
        connections, manifest = load_and_check(args.ingestion_dir, args.dbt_project_dir, args.manifest)
        hook = AirbyteHook(airbyte_conn_id=args.airbyte_conn_id or Settings.from_env().airbyte_conn_id)
        problems = check_airbyte(connections, manifest, hook)
    except (ConfigurationError, FileNotFoundError, ManifestError) as exc:
        print(exc, file=sys.stderr)
        return 1
    if problems:
        print(ConfigurationError(problems), file=sys.stderr)
        return 1
    for conn in connections:
        print(f"ok  {conn.path.name}: Airbyte connection {conn.spec.production.airbyte_connection_id} syncs it all")
    return 0


def _schema(_: argparse.Namespace) -> int:
    print(json.dumps(ConnectionSpec.model_json_schema(), indent=2))
    return 0


def _summary(args: argparse.Namespace) -> int:
    from elt_platform.cli.summary import print_summary

    return print_summary(args.dag_id, args.run_id, args.warehouse, args.ingestion_dir)


def run_command(dag_id: str, full_refresh: bool = False) -> list[str]:
    """``airflow dags test``; with ``full_refresh``, the run's ``full_refresh`` param set (every stream resynced)."""
    conf = ["--conf", json.dumps({"full_refresh": True})] if full_refresh else []
    return ["airflow", "dags", "test", *conf, dag_id]


def _run(args: argparse.Namespace) -> int:
    from elt_platform.cli.sole_run import AnotherWriter, sole_run
    from elt_platform.cli.summary import follow

    try:
        with sole_run(args.dag_id):
            return follow(args.dag_id, run_command(args.dag_id, args.full_refresh), args.log)
    except AnotherWriter as exc:
        print(exc, file=sys.stderr)
        return 1


def _health(args: argparse.Namespace) -> int:
    # What loading Airflow and Cosmos logs goes to stderr (their loggers take stdout as they load):
    # with --json, stdout is the document alone.
    with contextlib.redirect_stdout(sys.stderr):
        from elt_platform import run_history
        from elt_platform.health.pages import plain_text
        from elt_platform.health.report import health_json, report

        with run_history.reading() as history:
            items = report(history, dag_id=args.dag_id)
    if args.json:
        print(health_json(items, indent=2))
    else:
        print(plain_text(items) or "No dashboards: declare dbt exposures and let Airflow parse the DAG.")
    return 0


def main(argv: list[str] | None = None) -> int:
    repo = Path.cwd()
    parser = argparse.ArgumentParser(prog="elt", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="validate ingestion files and their dbt sources")
    check.add_argument("--ingestion-dir", type=Path, default=repo / "ingestion")
    check.add_argument("--dbt-project-dir", type=Path, default=repo / "dbt_project")
    check.add_argument("--manifest", type=Path, default=None)
    check.add_argument("--no-ingestion", action="store_true", help="the project has nothing to sync")
    check.set_defaults(func=_check)

    airbyte = sub.add_parser("check-airbyte", help="compare ingestion files with the Airbyte API's connections")
    airbyte.add_argument("--ingestion-dir", type=Path, default=repo / "ingestion")
    airbyte.add_argument("--dbt-project-dir", type=Path, default=repo / "dbt_project")
    airbyte.add_argument("--manifest", type=Path, default=None)
    airbyte.add_argument("--airbyte-conn-id", default=None, help="Airflow connection (default: ELT_AIRBYTE_CONN_ID)")
    airbyte.set_defaults(func=_check_airbyte)

    sub.add_parser("schema", help="print the ingestion file JSON Schema").set_defaults(func=_schema)

    summary = sub.add_parser("summary", help="summarise the latest run of a DAG")
    summary.add_argument("--dag-id", default="shop_elt")
    summary.add_argument("--run-id", default=None, help="defaults to the latest run")
    summary.add_argument("--warehouse", type=Path, required=True)
    summary.add_argument("--ingestion-dir", type=Path, default=repo / "ingestion")
    summary.set_defaults(func=_summary)

    run = sub.add_parser("run", help="run a DAG once, showing each task as it ends")
    run.add_argument("--dag-id", default="shop_elt")
    run.add_argument("--log", type=Path, required=True, help="where Airflow's own output goes")
    run.add_argument(
        "--full-refresh", action="store_true", help="resync every stream in full (the run's full_refresh param)"
    )
    run.set_defaults(func=_run)

    health = sub.add_parser("health", help="every dashboard's health: fresh, stale, broken or unknown, and why")
    health.add_argument("--dag-id", default=None, help="only this DAG's dashboards")
    health.add_argument("--json", action="store_true", help="JSON, as the API server's /dashboards/api/health")
    health.set_defaults(func=_health)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigurationError, SettingsError, ManifestError) as exc:  # already says the fix: no traceback
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
