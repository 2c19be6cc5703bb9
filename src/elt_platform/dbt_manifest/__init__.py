"""The parts of a dbt ``manifest.json`` the orchestration needs: sources, models, tests and exposures.

One module per concern:

- ``nodes``: the parts kept (``SourceTable``, ``Model``, ``Test``, ``Exposure``, ``Manifest``);
- ``parse``: reading ``manifest.json`` (the schema check, dbt's ``meta`` as dbt resolves it);
- ``graph``: the graph's rules: walks, which tests get a task of their own, each node's task id;
- ``selectors``: a dbt selector of exactly one node;
- ``cache``: the compact copy kept next to the manifest (``manifest.elt.json``);
- ``staleness``: whether the project changed after the manifest was built;
- ``load``: ``load_manifest``, which puts them together.
"""

from __future__ import annotations

from elt_platform.dbt_manifest.load import load_manifest
from elt_platform.dbt_manifest.nodes import BUILDABLE, Exposure, Manifest, Model, ResourceType, SourceTable, Test
from elt_platform.dbt_manifest.parse import SCHEMA_URL, SUPPORTED_SCHEMAS, check_schema, node_meta, read_manifest
from elt_platform.dbt_manifest.selectors import exact_selector
from elt_platform.dbt_manifest.staleness import StaleManifestWarning, newest_project_file, warn_if_stale
from elt_platform.errors import ManifestError

__all__ = [
    "BUILDABLE",
    "SCHEMA_URL",
    "SUPPORTED_SCHEMAS",
    "Exposure",
    "Manifest",
    "ManifestError",
    "Model",
    "ResourceType",
    "SourceTable",
    "StaleManifestWarning",
    "Test",
    "check_schema",
    "exact_selector",
    "load_manifest",
    "newest_project_file",
    "node_meta",
    "read_manifest",
    "warn_if_stale",
]
