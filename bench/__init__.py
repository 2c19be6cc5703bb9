"""Benchmark of the transform phase: Cosmos modes and the project's own mode against plain ``dbt build``."""
