"""dbt-duckdb's Python models hand DuckDB a DataFrame (``con.register`` then ``create table as``):
pandas 3's text columns and polars frames must cross with text, numbers, dates and nulls.

duckdb 1.4.3 with pandas 3.1.1 fails the first test ("Data type 'str' not recognized"), and
without pyarrow polars cannot cross at all: the pins in requirements-models.in and
requirements.in are what makes these pass.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import polars as pl


def materialize(frame) -> duckdb.DuckDBPyConnection:
    """What dbt-duckdb's materialization does with a Python model's DataFrame."""
    con = duckdb.connect()
    con.register("model_frame", frame)
    con.execute("create table model as select * from model_frame")
    return con


def test_a_pandas_frame_with_text_numbers_dates_and_nulls_becomes_a_table():
    frame = pd.DataFrame(
        {
            "name": ["Émile", None],
            "amount": [1.5, float("nan")],
            "seen_at": pd.to_datetime(["2026-01-01 08:00", None]),
            "signed_up_on": [dt.date(2026, 1, 1), None],
        }
    )
    assert str(frame["name"].dtype) == "str"  # pandas 3's own text type
    con = materialize(frame)
    assert con.execute("select * from model order by name nulls last").fetchall() == [
        ("Émile", 1.5, dt.datetime(2026, 1, 1, 8, 0), dt.date(2026, 1, 1)),
        (None, None, None, None),
    ]
    assert [r[1] for r in con.execute("describe model").fetchall()] == ["VARCHAR", "DOUBLE", "TIMESTAMP", "DATE"]


def test_a_polars_frame_becomes_a_table_and_a_relation_comes_back_as_either_frame():
    frame = pl.DataFrame({"name": ["a", None], "day": [dt.date(2026, 1, 1), None], "n": [1, None]})
    con = materialize(frame)
    assert con.execute("select * from model order by name nulls last").fetchall() == [
        ("a", dt.date(2026, 1, 1), 1),
        (None, None, None),
    ]
    assert con.sql("select * from model order by name nulls last").pl().equals(frame)  # dbt.ref(...).pl()
    as_pandas = con.sql("select * from model").df()  # dbt.ref(...).df()
    assert sorted(materialize(as_pandas).execute("select name from model").fetchall(), key=repr) == [("a",), (None,)]
