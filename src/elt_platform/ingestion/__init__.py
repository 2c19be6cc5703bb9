"""Ingestion: connection files, the two sync backends, the Airbyte trigger and the contracts.

- ``connections``: the ingestion files (YAML, pydantic), their loading and errors;
- ``contract``: connection files <-> dbt sources (``elt check``);
- ``sync_operator``: the sync task, local or Airbyte backend, chosen at run time;
- ``local_sync``, ``local_sync_runner``: the embedded backend (PyAirbyte, in its own environment);
- ``airbyte_trigger``, ``airbyte_contract``: the Airbyte API backend's wait and its contract.

Nothing here imports Airflow at package import: ``local_sync_runner`` runs in the PyAirbyte
environment, which has no Airflow.
"""
