"""Which dbt failures a retry cannot fix.

A failure that comes from the code, the data or the setup fails the same way on the next
try: retrying only delays the alert by the retry delays (up to 15 minutes each). Such a
failure fails its task at once (``AirflowFailException``: Airflow skips the remaining
retries) and alerts. These are:

- dbt's own errors: Jinja and refs, YAML, a contract the model does not meet, a data test
  that found rows;
- the SQL: syntax, unknown columns, tables, schemas, functions or types, wrong argument types;
- the data: a value that does not convert, an overflow, a division by zero, a broken
  constraint, a malformed CSV;
- a file that is not there (DuckDB's "No files found that match the pattern", a source's
  ``external_location`` pointing nowhere) and a relation that is not there ("Catalog Error",
  BigQuery's "Not found: Table/Dataset");
- a permission the run does not have (a file it cannot read, BigQuery's "Access Denied"),
  and a project without billing;
- a Python model that imports what is not installed or names what is not defined.

Anything else retries as before: a lock held by another writer (DuckDB's "IO Error: Could not
set lock on file ... Conflicting lock is held": an "IO Error" alone says nothing), a lost or
refused connection, a timeout, DuckDB running out of memory, a BigQuery 5xx, ``backendError``,
``internalError``, ``rateLimitExceeded``, "Quota exceeded", any other exception a Python model
raises, and whatever is not recognised. dbt wraps the warehouse's text ("Runtime Error in
model ...", "Database Error in model ...", Cosmos's "dbt invocation completed with errors"):
the patterns look for the inner text wherever it is. tests/unit/dbt_messages/ holds the real
messages these patterns were written against, with where each came from.
"""

from __future__ import annotations

import re
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
from cosmos.exceptions import CosmosDbtRunError

# dbt's own errors, and the warehouses' errors about the SQL, the data or the setup rather than the moment.
DETERMINISTIC = re.compile(
    "|".join(
        [
            r"Compilation Error",  # dbt: Jinja, refs, unknown macros, contract checks at compile time
            r"Parsing Error",  # dbt: YAML and project files
            r"enforced contract",  # dbt: the model's columns do not match its contract
            r"configured to fail if",  # dbt: a data test found rows ("Got 3 results, configured to fail if != 0")
            r"Parser Error",  # DuckDB: SQL syntax
            r"Binder Error",  # DuckDB: unknown column, table or function
            r"Catalog Error",  # DuckDB: unknown relation, schema or type
            r"Conversion Error",  # DuckDB: a value that does not convert ("Could not convert string 'abc' to INT32")
            r"Out of Range Error",  # DuckDB: overflow, also in division
            r"Constraint Error",  # DuckDB: NOT NULL, PRIMARY KEY or UNIQUE broken
            r"CSV Error on Line",  # DuckDB: a malformed CSV (an "Invalid Input Error" alone may be anything)
            r"No files found that match the pattern",  # DuckDB: no file for read_csv or external_location
            r'Cannot open file "[^"]*": No such file or directory',  # DuckDB: a file, or its folder, that is not there
            r"database does not exist",  # DuckDB: attaching a database file that is not there
            r'Cannot open file "[^"]*": Permission denied',  # DuckDB: a file, or the warehouse, not readable
            r"\b(?:ModuleNotFoundError|ImportError|NameError): ",  # a Python model: not installed or not defined
            r"Syntax error",  # BigQuery: SQL syntax
            r"Unrecognized name",  # BigQuery: unknown column
            r"(?:Function|Type) not found: ",  # BigQuery: unknown function or type ("Function not found: TO_CHAR")
            r"No matching signature",  # BigQuery: a function called with the wrong types
            r"Bad \w+ value",  # BigQuery: a value that does not convert ("Bad int64 value: abc")
            r"[Dd]ivision by zero",  # BigQuery: a division by zero
            r"Not found: (?:Table|Dataset) ",  # BigQuery notFound: a relation that is not there (not "Not found: Job")
            r"Access Denied: ",  # BigQuery accessDenied: "User does not have permission", "Permission ... denied"
            r"Billing has not been enabled",  # BigQuery billingNotEnabled
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

    NOTE = "Not retried: the same code, data and setup fail the same way. Fix the cause, then clear this task."

    def __init__(self, message: str):
        super().__init__(f"{message}\n{self.NOTE}")


def dbt_failure_summary(lines: list[str], limit: int = 40) -> str:
    """dbt's closing report of what failed ("Completed with 1 error ..." and what follows), else its last lines."""
    plain = [ANSI.sub("", line).rstrip() for line in lines]
    starts = [i for i, line in enumerate(plain) if "Completed with " in line]
    summary = [line for line in (plain[starts[-1] :] if starts else plain[-20:]) if line.strip()]
    return "\n".join(summary[:limit])


class FailsAtOnceWhenNoRetryCanHelp:
    """Mixed into a Cosmos LOCAL operator: a failed dbt carries dbt's own report of what failed
    (Cosmos raises only "non-zero exit code 1" for a subprocess), and fails its task at once,
    without the remaining retries, when no retry can fix it."""

    def handle_exception_subprocess(self, result: Any) -> None:
        try:
            super().handle_exception_subprocess(result)  # type: ignore[misc]
        except AirflowSkipException:
            raise
        except AirflowException as error:
            message = f"{error}\n{dbt_failure_summary(result.full_output)}"
            raise (DeterministicDbtError(message) if is_deterministic(message) else AirflowException(message)) from None

    def handle_exception_dbt_runner(self, result: Any) -> None:
        try:
            super().handle_exception_dbt_runner(result)  # type: ignore[misc]
        except CosmosDbtRunError as error:  # dbt in-process: the message has each failed node's own
            if is_deterministic(str(error)):
                raise DeterministicDbtError(str(error)) from error
            raise
