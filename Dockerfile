# Production image: the official Airflow image plus this project. No Docker engine runs
# where this project is developed, so the build is not exercised by the test suite.
FROM apache/airflow:3.3.2-python3.11

ENV AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__COSMOS__ENABLE_TELEMETRY=False \
    DO_NOT_TRACK=1 \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/elt/dags

WORKDIR /opt/elt
COPY --chown=airflow:root requirements.txt pyproject.toml ./
COPY --chown=airflow:root src ./src
RUN pip install --no-cache-dir -r requirements.txt \
    && pip install --no-cache-dir --no-deps .

COPY --chown=airflow:root dbt_project ./dbt_project
COPY --chown=airflow:root ingestion ./ingestion
COPY --chown=airflow:root dags ./dags

# The manifest is built here so that parsing the DAG never runs dbt.
RUN cd dbt_project && dbt parse --profiles-dir . --no-partial-parse

USER airflow
