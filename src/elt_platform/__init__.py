"""Airbyte ingestion and dbt transforms orchestrated by Airflow, one task per dbt model."""
