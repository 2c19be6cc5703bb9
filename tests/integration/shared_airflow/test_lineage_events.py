"""OpenLineage: with Airflow's ``[openlineage]`` transport pointed at a loopback receiver, the
shipped DAG's run sends events that each validate against the OpenLineage JSON schema, and that
describe the manifest's lineage: the connectors' streams into the raw tables, the raw tables into
the staging models, the staging models into the marts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from tests.conftest import REPO

SPEC = REPO / "tests" / "fixtures" / "openlineage_spec"
DAG_ID = "shop_elt"


@pytest.fixture(scope="module")
def events(runs, lineage_receiver) -> list[dict]:
    """The shipped DAG's events: its own, its tasks', and those of the dbt nodes its builds ran."""
    assert runs[DAG_ID].state == "success"

    def of_dag(event: dict) -> bool:
        parent = ((event.get("run") or {}).get("facets") or {}).get("parent") or {}
        names = [(event.get("job") or {}).get("name", ""), (parent.get("job") or {}).get("name", "")]
        return any(name == DAG_ID or name.startswith(f"{DAG_ID}.") for name in names)

    return [e for e in lineage_receiver.payloads if of_dag(e)]


def _validator() -> tuple[Draft202012Validator, dict[str, dict]]:
    core = json.loads((SPEC / "OpenLineage.json").read_text())
    facets = {p.name: json.loads(p.read_text()) for p in (SPEC / "facets").glob("*.json")}
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in [core, *facets.values()]
    )
    return Draft202012Validator(core, registry=registry, format_checker=FormatChecker()), facets


def _facets(event: dict) -> list[dict]:
    found = [*((event.get("run") or {}).get("facets") or {}).values()]
    found += ((event.get("job") or {}).get("facets") or {}).values()
    for dataset in [*(event.get("inputs") or []), *(event.get("outputs") or [])]:
        found += (dataset.get("facets") or {}).values()
    return [f for f in found if isinstance(f, dict)]


def test_every_event_validates_against_the_openlineage_schema_with_its_facets(events):
    validator, facet_schemas = _validator()
    assert len(events) > 20
    checked_facets = 0
    for event in events:
        errors = [e.message for e in validator.iter_errors(event)]
        assert not errors, f"{event['eventType']} {event['job']['name']}: {errors}"
        for facet in _facets(event):
            schema_file = facet["_schemaURL"].split("#")[0].rsplit("/", 1)[-1]
            if schema_file in facet_schemas:  # the spec's own facets; the provider's and dbt's have their own
                definition = facet["_schemaURL"].split("#", 1)[1] if "#" in facet["_schemaURL"] else ""
                schema = {"$ref": f"{facet_schemas[schema_file]['$id']}#{definition}"}
                errors = [e.message for e in validator.evolve(schema=schema).iter_errors(facet)]
                assert not errors, f"{schema_file} of {event['job']['name']}: {errors}"
                checked_facets += 1
    assert checked_facets > len(events)  # the parent, schema and dataSource facets, among others


def _manifest() -> dict:
    return json.loads((REPO / "dbt_project" / "target" / "manifest.json").read_text())


def _name(node: dict, database: str) -> str:
    table = node["name"] if node["resource_type"] == "source" else node["alias"]
    return f"{database}.{node['schema']}.{table}"


def test_the_events_describe_the_manifest_s_lineage_from_connector_to_marts(events, runs):
    manifest = _manifest()
    warehouse = Path(runs[DAG_ID].warehouse)
    namespace, database = f"duckdb://{warehouse}", warehouse.stem
    completed = [e for e in events if e["eventType"] == "COMPLETE"]

    # Each sync: the connector's streams in, the raw tables of its dbt source out, with their columns.
    syncs = {e["job"]["name"]: e for e in completed if e["job"]["name"].startswith(f"{DAG_ID}.sync_")}
    faker = syncs[f"{DAG_ID}.sync_shop_faker"]
    assert {(i["namespace"], i["name"]) for i in faker["inputs"]} == {
        ("airbyte://source-faker", f"shop_faker.{stream}") for stream in ("users", "products", "purchases")
    }
    sources = {uid: n for uid, n in manifest["sources"].items() if n["package_name"] == "shop_analytics"}
    loaded = {(o["namespace"], o["name"]) for e in syncs.values() for o in e["outputs"]}
    assert loaded == {(namespace, _name(n, database)) for n in sources.values()}
    users = next(o for o in faker["outputs"] if o["name"].endswith(".users"))
    declared = [c for c in manifest["sources"]["source.shop_analytics.faker.users"]["columns"]]
    assert [f["name"] for f in users["facets"]["schema"]["fields"]] == declared

    # Each model: one event from the build that ran it, its parents' tables in, its own table out.
    written = {}
    for event in completed:
        parent = event["run"]["facets"].get("parent", {}).get("job", {}).get("name", "")
        if parent.startswith(f"{DAG_ID}.transform.dbt_build"):
            for output in event["outputs"]:
                written[output["name"]] = {(i["namespace"], i["name"]) for i in event["inputs"]}
    models = {uid: n for uid, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    every = {**manifest["nodes"], **manifest["sources"]}
    for uid, model in models.items():
        name = _name(model, database)
        assert name in written, f"no lineage event wrote {name}"
        parents = {(namespace, _name(every[p], database)) for p in model["depends_on"]["nodes"] if p in every}
        assert written[name] == parents, uid
    # So the chain holds: a raw table the faker sync writes is read by a staging model, read by a mart.
    staging = {n for n, reads in written.items() if any(r in loaded for r in reads)}
    marts = {n for n, reads in written.items() if any((namespace, s) in reads for s in staging)}
    assert staging and marts
