# Production image: the official Airflow image, this project, and dbt in its own virtualenv.
# No Docker engine runs where this project is developed: the suite lints this file with
# hadolint, and CI (.github/workflows/ci.yml) builds it.
FROM apache/airflow:3.3.2-python3.11

ENV ELT_HOME=/opt/elt
# The project's folder belongs to the unprivileged user that builds and runs everything in it.
USER 0
RUN mkdir -p /opt/elt && chown airflow:0 /opt/elt
USER 50000
WORKDIR /opt/elt

# The same script builds these environments as virtualenvs for the production rehearsal
# (`make image-envs`, tests/integration/test_production_rehearsal.py), so what the suite
# runs is what this image holds.
ENV PIP_NO_CACHE_DIR=1
COPY --chown=airflow:0 deploy/install-environments.sh ./deploy/

# dbt's dependencies never meet Airflow's: Cosmos runs this executable as a subprocess.
COPY --chown=airflow:0 requirements-dbt.txt ./
RUN deploy/install-environments.sh dbt /opt/elt/dbt-venv

# Cosmos, the providers and the factory package, into Airflow's own environment (pinned).
COPY --chown=airflow:0 requirements-image.txt pyproject.toml ./
COPY --chown=airflow:0 src ./src
RUN deploy/install-environments.sh airflow python

COPY --chown=airflow:0 dbt_project ./dbt_project
COPY --chown=airflow:0 ingestion ./ingestion
COPY --chown=airflow:0 dags ./dags

# The manifest is built here, so that parsing the DAG never runs dbt; so is its compact
# copy (target/manifest.elt.json) that the DAG renders from.
WORKDIR /opt/elt/dbt_project
RUN /opt/elt/dbt-venv/bin/dbt parse --profiles-dir . --no-partial-parse \
    && python -c "from elt_platform.dbt_manifest import load_manifest; load_manifest('target/manifest.json')"
WORKDIR /opt/elt

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/elt/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__COSMOS__ENABLE_TELEMETRY=False \
    DO_NOT_TRACK=1 \
    ELT_DBT_EXECUTABLE=/opt/elt/dbt-venv/bin/dbt \
    ELT_INGESTION_BACKEND=airbyte \
    ELT_WAREHOUSE_TYPE=bigquery \
    ELT_ENVIRONMENT=prod \
    ELT_WAREHOUSE_POOL=default_pool

# The base image's unprivileged user (uid 50000).
USER 50000
