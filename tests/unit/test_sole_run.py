"""``elt run`` refuses to run beside a live scheduler or another ``elt run`` of the same DAG on the
same metadata database (``airflow dags test`` ignores pools: both would write the warehouse)."""

from __future__ import annotations

import airflow.models.dag  # noqa: F401  at collection: croniter runs `file` on import, which unit tests refuse
import pytest

from elt_platform.cli.sole_run import AnotherWriter, sole_run


def test_a_second_run_of_the_same_dag_is_refused_and_another_dag_is_not(monkeypatch):
    monkeypatch.setattr("elt_platform.run_history.live_scheduler", lambda: None)
    with sole_run("shop_elt"):
        with (
            pytest.raises(AnotherWriter, match=r"Another `elt run` of DAG shop_elt is running .* Fix: wait"),
            sole_run("shop_elt"),
        ):
            pass
        with sole_run("other_dag"):
            pass
    with sole_run("shop_elt"):  # released once the first run ended
        pass


def test_a_live_scheduler_is_named_with_the_fix(monkeypatch):
    monkeypatch.setattr("elt_platform.run_history.live_scheduler", lambda: "scheduler-host-1")
    refused = r"A scheduler on scheduler-host-1 serves .* Fix: trigger the DAG there .*airflow dags trigger shop_elt"
    with pytest.raises(AnotherWriter, match=refused), sole_run("shop_elt"):
        pass
