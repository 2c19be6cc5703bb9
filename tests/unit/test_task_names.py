"""dbt names to Airflow task ids: unchanged when Airflow accepts them, else a clear, stable, unique id."""

from __future__ import annotations

import re

from elt_platform.task_names import MAX_NAME, disambiguated, node_task_id, task_id_part

AIRFLOW_TASK_ID = re.compile(r"^[\w.-]+$")  # airflow.utils.helpers.KEY_REGEX


def test_names_airflow_accepts_are_kept():
    assert task_id_part("stg_faker__users") == "stg_faker__users"
    assert task_id_part("daily-revenue") == "daily-revenue"
    assert node_task_id("helpers", "calendar") == "helpers.calendar"


def test_rejected_characters_become_underscores_with_the_names_hash():
    mapped = task_id_part("revenue $ (eur)")
    assert re.fullmatch(r"revenue_eur___[0-9a-f]{8}", mapped), mapped
    # stable: the same name always maps to the same id; close names do not clash
    assert task_id_part("revenue $ (eur)") == mapped
    assert task_id_part("revenue € (eur)") != mapped
    assert task_id_part("café") != task_id_part("caf_")


def test_long_names_are_cut_to_fit_airflow_with_the_names_hash():
    long = "orders_" + "x" * 300
    mapped = task_id_part(long)
    assert len(mapped) == MAX_NAME
    assert mapped != task_id_part(long + "y")
    assert len(f"transform.{mapped}") <= 250
    assert AIRFLOW_TASK_ID.match(f"transform.{mapped}")


def test_two_nodes_on_one_id_are_told_apart_by_their_unique_ids():
    a = disambiguated("orders", "model.shop.orders")
    b = disambiguated("orders", "test.shop.orders")
    assert a != b and a.startswith("orders__") and AIRFLOW_TASK_ID.match(a)
