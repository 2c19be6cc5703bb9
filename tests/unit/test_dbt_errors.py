"""Which dbt failures fail at once, and which retry: dbt's and the warehouses' real messages."""

from __future__ import annotations

import pytest

from elt_platform.transform.dbt_errors import is_deterministic


@pytest.mark.parametrize(
    "message",
    [
        "Compilation Error in model orders (models/marts/orders.sql)\n  'stg_nothing' is undefined",
        "Parsing Error\n  Invalid models config given in models/_models.yml",
        "Compilation Error in model customers\n  This model has an enforced contract that failed.",
        'Runtime Error in model x\n  Parser Error: syntax error at or near "form"',
        'Runtime Error in model x\n  Binder Error: Referenced column "no_such_column" not found in FROM clause!',
        "Runtime Error in model x\n  Catalog Error: Table with name nothing does not exist!",
        "Database Error in model x\n  Syntax error: Expected end of input but got keyword FORM at [3:1]",
        "Database Error in model x\n  Unrecognized name: no_such_column at [1:8]",
        "Database Error in model x\n  No matching signature for operator + for argument types: STRING, INT64",
    ],
)
def test_errors_in_the_code_are_deterministic(message):
    assert is_deterministic(message, "error")


@pytest.mark.parametrize(
    "message",
    [
        "Runtime Error in model x\n  IO Error: Could not set lock on file: Conflicting lock is held",
        "Database Error in model x\n  Connection reset by peer",
        "Database Error in model x\n  500 Internal error encountered.",
        "Runtime Error in model x\n  Invalid Input Error: transient glitch: warehouse briefly unavailable",
        "",
    ],
)
def test_errors_of_the_moment_are_retried(message):
    assert not is_deterministic(message, "error")


def test_a_data_test_that_found_rows_is_deterministic_whatever_its_message():
    assert is_deterministic("Got 3 results, configured to fail if != 0", "fail")


def test_the_failure_summary_is_dbt_s_closing_report_without_colours():
    from elt_platform.transform.dbt_errors import dbt_failure_summary

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
