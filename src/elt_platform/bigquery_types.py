"""What BigQuery would refuse in a dbt project, checked before a deploy: contract data types and Python models.

The BigQuery emulators run on DuckDB and accept DuckDB's type names (``varchar``,
``double``), so a contract that builds green in the suite can still fail on the real
service ("Type not found: VARCHAR"). This check reads every enforced contract in the
manifest and parses each ``data_type`` as GoogleSQL does, after the aliases dbt-bigquery
applies itself (``alias_types``: ``float`` becomes ``FLOAT64``).
"""

from __future__ import annotations

import re

from elt_platform.dbt_manifest import Manifest
from elt_platform.errors import Problem

# dbt-bigquery's BigQueryColumn.TYPE_LABELS, applied when a contract has alias_types on (dbt's default);
# tests/unit/test_bigquery_types.py fails if dbt-bigquery changes them.
DBT_BIGQUERY_ALIASES = {"TEXT": "STRING", "FLOAT": "FLOAT64", "INTEGER": "INT64"}
SCALARS = {
    "STRING", "BYTES", "INT64", "INT", "SMALLINT", "INTEGER", "BIGINT", "TINYINT", "BYTEINT",
    "NUMERIC", "DECIMAL", "BIGNUMERIC", "BIGDECIMAL", "FLOAT64", "BOOL", "BOOLEAN",
    "TIMESTAMP", "DATE", "DATETIME", "TIME", "INTERVAL", "JSON", "GEOGRAPHY",
}  # fmt: skip
PARAMETERS = {"STRING": 1, "BYTES": 1, "NUMERIC": 2, "DECIMAL": 2, "BIGNUMERIC": 2, "BIGDECIMAL": 2}
RANGE_OF = {"DATE", "DATETIME", "TIMESTAMP"}
# Names DuckDB (and the emulators) accept that BigQuery does not, and what holds on both.
BOTH = "string, integer, bigint, numeric, float, boolean, date, timestamp or json (DuckDB and BigQuery accept these)"
SUGGESTIONS = {
    "VARCHAR": "string", "CHAR": "string", "BPCHAR": "string", "NVARCHAR": "string", "CHARACTER": "string",
    "DOUBLE": "float (FLOAT64 on BigQuery) or numeric", "REAL": "float", "FLOAT4": "float", "FLOAT8": "float",
    "INT4": "integer", "INT8": "bigint", "HUGEINT": "numeric", "UBIGINT": "numeric", "UINTEGER": "bigint",
    "TIMESTAMPTZ": "timestamp", "BLOB": "bytes (BigQuery only)", "BYTEA": "bytes (BigQuery only)",
    "UUID": "string", "LIST": "array<...>",
}  # fmt: skip
_TOKEN = re.compile(r"\s*(?:(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<number>\d+)|(?P<mark>[<>(),]))")


class _Invalid(ValueError):
    pass


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _Invalid(f"unexpected {text[position:]!r}")
        tokens.append(match.group(match.lastgroup))
        position = match.end()
    return tokens


class _Parser:
    """GoogleSQL's type grammar: scalars (some with parameters), ARRAY<T>, STRUCT<[name] T, ...>, RANGE<T>."""

    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.at = 0

    def peek(self, ahead: int = 0) -> str:
        index = self.at + ahead
        return self.tokens[index] if index < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if not token or (expected is not None and token != expected):
            raise _Invalid(f"expected {expected or 'a type'} at {token or 'the end'!r}")
        self.at += 1
        return token

    def type(self) -> None:
        name = self.take().upper()
        if name == "ARRAY":
            self.take("<")
            self.type()
            self.take(">")
        elif name == "STRUCT":
            self.take("<")
            while True:
                if self.peek(1) not in {",", ">", "(", "<"}:
                    self.take()  # the field's name
                self.type()
                if self.take() == ">":
                    break
        elif name == "RANGE":
            self.take("<")
            if self.take().upper() not in RANGE_OF:
                raise _Invalid("RANGE holds DATE, DATETIME or TIMESTAMP")
            self.take(">")
        elif name in SCALARS:
            if self.peek() == "(":
                if name not in PARAMETERS:
                    raise _Invalid(f"{name} takes no parameters")
                self.take("(")
                for index in range(PARAMETERS[name]):
                    if not self.take().isdigit():
                        raise _Invalid(f"{name}'s parameters are numbers")
                    if self.peek() != "," or index + 1 == PARAMETERS[name]:
                        break
                    self.take(",")
                self.take(")")
        else:
            raise _Invalid(f"no GoogleSQL type is named {name}")


def googlesql_error(data_type: str, alias_types: bool = True) -> str | None:
    """Why BigQuery would reject ``data_type`` in a contract's DDL, or None if it accepts it."""
    text = DBT_BIGQUERY_ALIASES.get(data_type.strip().upper(), data_type) if alias_types else data_type
    try:
        parser = _Parser(_tokens(text))
        parser.type()
        if parser.peek():
            raise _Invalid(f"unexpected {parser.peek()!r}")
    except _Invalid as error:
        return str(error)
    return None


def contract_type_problems(manifest: Manifest) -> list[Problem]:
    """Every enforced contract column whose data_type BigQuery would reject, with the model, column and fix."""
    problems = []
    for model in manifest.models.values():
        for column, data_type in model.contract_columns:
            if not data_type:
                continue  # dbt itself refuses an enforced contract without data types
            error = googlesql_error(data_type, model.contract_alias_types)
            base = re.split(r"[\s(<]", data_type.strip(), maxsplit=1)[0].upper()
            if error is None and "(" in data_type:
                problems.append(
                    Problem(
                        model.properties_file or model.file,
                        f"models.{model.name}.columns.{column}.data_type",
                        f"'{data_type}' has parameters; dbt checks a contract with cast(null as {data_type}), and "
                        "BigQuery allows no parameterized type in a CAST (the emulator and DuckDB do)",
                        f"declare {base.lower()} without its parameters",
                    )
                )
            if error is None:
                continue
            problems.append(
                Problem(
                    model.properties_file or model.file,
                    f"models.{model.name}.columns.{column}.data_type",
                    f"'{data_type}' is not a type BigQuery accepts ({error}); DuckDB and the BigQuery emulator "
                    "accept it, so only the real service would fail the contract",
                    f"use {SUGGESTIONS[base]}" if base in SUGGESTIONS else f"use {BOTH}",
                )
            )
    return problems


def python_model_problems(manifest: Manifest) -> list[Problem]:
    """Python models, which dbt-bigquery submits to Dataproc: the platform sets up none, so each
    would fail only at run time."""
    return [
        Problem(
            model.file,
            f"models.{model.name}",
            "a Python model; on BigQuery dbt runs Python models on Dataproc (a cluster or serverless batches, "
            "with a bucket), which this platform does not set up, so it would fail at run time",
            "write it in SQL for BigQuery, or keep this project on DuckDB (ELT_WAREHOUSE_TYPE=duckdb)",
        )
        for model in manifest.models.values()
        if model.is_python
    ]
