"""Which dbt failures fail at once, and which retry: dbt's and the warehouses' real messages.

The messages live in tests/unit/dbt_messages/*.yml, each with where it came from (a dbt run
here, an emulator run, a user's report of real BigQuery, Google's documentation) and its verdict.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from elt_platform.transform.dbt_errors import dbt_failure_summary, is_deterministic

MESSAGES = Path(__file__).parent / "dbt_messages"


def _entries() -> list:
    params = []
    for path in sorted(MESSAGES.glob("*.yml")):
        for entry in yaml.safe_load(path.read_text()):
            params.append(pytest.param(entry, id=f"{path.stem}: {entry['case']}"))
    return params


ENTRIES = _entries()


@pytest.mark.parametrize("entry", ENTRIES)
def test_each_real_message_gets_its_verdict(entry):
    assert is_deterministic(entry["message"], entry.get("status", "error")) is entry["deterministic"], entry["source"]


def test_the_catalogue_has_both_verdicts_for_both_warehouses_and_says_where_each_came_from():
    for warehouse in ("duckdb", "bigquery"):
        entries = [p.values[0] for p in ENTRIES if p.id.startswith(f"{warehouse}: ")]
        assert {e["deterministic"] for e in entries} == {True, False}, warehouse
        assert all(e["source"].strip() and e["message"].strip() for e in entries), warehouse


@pytest.mark.parametrize(
    "inner",
    [
        'IO Error: No files found that match the pattern "../data/missing.csv"',
        "Catalog Error: Table with name no_such_table does not exist!",
        "Not found: Table proj:ds.t was not found in location US",
        "ModuleNotFoundError: No module named 'no_such_module_xyz'",
    ],
)
def test_dbt_s_and_cosmos_s_wrappers_classify_by_the_inner_message(inner):
    for wrapped in (
        f"Runtime Error in model x (models/x.sql)\n  {inner}",
        f"Database Error in model x (models/x.sql)\n  {inner}\n  compiled code at target/run/x.sql",
        f"Runtime Error\n  Database Error\n    {inner}",
        f"CosmosDbtRunError: dbt invocation completed with errors: x: Runtime Error in model x\n  {inner}",
    ):
        assert is_deterministic(wrapped, "error"), wrapped


@pytest.mark.parametrize(
    "message",
    [
        # An "IO Error" is not enough: DuckDB's lock conflict is one too.
        'IO Error: Could not set lock on file "/data/wh.duckdb": Conflicting lock is held in /usr/bin/python3 (PID 7)',
        # An "Invalid Input Error" is not enough: DuckDB's error() raises one, as the integration
        # tests' stand-in for a failure that passes on a retry does.
        "Invalid Input Error: transient glitch: warehouse briefly unavailable",
        # A path that merely names a missing or forbidden thing is not the error.
        'IO Error: Could not set lock on file "/data/permission_denied/no_such_file.duckdb": Conflicting lock is held',
        "",
    ],
)
def test_errors_of_the_moment_are_retried(message):
    assert not is_deterministic(message, "error")


def test_a_data_test_that_found_rows_is_deterministic_whatever_its_message():
    assert is_deterministic("", "fail")


def test_the_failure_summary_is_dbt_s_closing_report_without_colours():
    lines = [
        "\x1b[0m12:00:01  1 of 2 START sql view model main.orders ...... [RUN]",
        "\x1b[0m12:00:02  1 of 2 ERROR creating sql view model main.orders ...... [\x1b[31mERROR\x1b[0m in 0.1s]",
        "",
        "\x1b[0m12:00:02  \x1b[31mCompleted with 1 error, 0 partial successes, and 0 warnings:\x1b[0m",
        '\x1b[0m12:00:02    Binder Error: Referenced column "x" not found',
        "\x1b[0m12:00:02  Done. PASS=1 WARN=0 ERROR=1 SKIP=0 NO-OP=0 TOTAL=2",
    ]
    assert dbt_failure_summary(lines).splitlines() == [
        "12:00:02  Completed with 1 error, 0 partial successes, and 0 warnings:",
        '12:00:02    Binder Error: Referenced column "x" not found',
        "12:00:02  Done. PASS=1 WARN=0 ERROR=1 SKIP=0 NO-OP=0 TOTAL=2",
    ]
    assert dbt_failure_summary(["a", "b"]) == "a\nb"  # no report: the last lines
