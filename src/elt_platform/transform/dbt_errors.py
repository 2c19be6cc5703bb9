"""Which dbt failures a retry cannot fix.

A compilation error, a SQL syntax or binder error, a contract mismatch or a data test that
found failing rows fails the same way on the same code and data: retrying only delays the
alert by the retry delays (up to 15 minutes each). Such a failure fails its task at once
(``AirflowFailException``: Airflow skips the remaining retries) and alerts. Anything else, a
lost connection, a lock held by another writer, a 5xx from the warehouse, retries as before.
"""

from __future__ import annotations

import re

from airflow.sdk.exceptions import AirflowFailException

# dbt's own errors, and the warehouses' errors about the SQL itself rather than the moment.
DETERMINISTIC = re.compile(
    "|".join(
        [
            r"Compilation Error",  # dbt: Jinja, refs, unknown macros, contract checks at compile time
            r"Parsing Error",  # dbt: YAML and project files
            r"enforced contract",  # dbt: the model's columns do not match its contract
            r"Parser Error",  # DuckDB: SQL syntax
            r"Binder Error",  # DuckDB: unknown column, table or function
            r"Catalog Error",  # DuckDB: unknown relation or type
            r"Syntax error",  # BigQuery: SQL syntax
            r"Unrecognized name",  # BigQuery: unknown column
            r"No matching signature",  # BigQuery: a function called with the wrong types
            r"configured to fail if",  # dbt: a data test found rows ("Got 3 results, configured to fail if != 0")
        ]
    )
)
# dbt's status of a data test that ran and found rows: the same data fails it again.
TEST_FAILED = "fail"
# Terminal colour codes in dbt's text output.
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def is_deterministic(message: str, status: str | None = None) -> bool:
    """True when retrying the node on the same code and data cannot change the outcome."""
    return status == TEST_FAILED or bool(DETERMINISTIC.search(message or ""))


class DeterministicDbtError(AirflowFailException):
    """A dbt failure no retry can fix: the task fails now, without its remaining retries."""

    NOTE = "Not retried: the same code and data fail the same way. Fix the cause, then clear this task."

    def __init__(self, message: str):
        super().__init__(f"{message}\n{self.NOTE}")


def dbt_failure_summary(lines: list[str], limit: int = 40) -> str:
    """dbt's closing report of what failed ("Completed with 1 error ..." and what follows), else its last lines."""
    plain = [ANSI.sub("", line).rstrip() for line in lines]
    starts = [i for i, line in enumerate(plain) if "Completed with " in line]
    summary = [line for line in (plain[starts[-1] :] if starts else plain[-20:]) if line.strip()]
    return "\n".join(summary[:limit])
