"""``elt run`` alone on its metadata database: ``airflow dags test`` knows neither pools nor
``max_active_runs``, so beside a scheduler or another ``elt run`` of the same DAG, two processes
would write the DuckDB file at once and one would fail on DuckDB's own lock."""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from elt_platform.private_dirs import private_dir


class AnotherWriter(RuntimeError):
    """Something else runs the DAG against the same metadata database."""


@contextmanager
def sole_run(dag_id: str) -> Iterator[None]:
    """Hold this DAG's run lock for the metadata database in use; refuse beside a live scheduler."""
    from elt_platform.run_history import database_url, live_scheduler

    database = database_url()
    key = hashlib.sha256(f"{database}\n{dag_id}".encode()).hexdigest()[:16]
    with (private_dir("locks") / f"elt-run-{key}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AnotherWriter(
                f"Another `elt run` of DAG {dag_id} is running on this metadata database. "
                "Fix: wait for it to end (its summary follows), or stop it."
            ) from None
        host = live_scheduler()
        if host:
            raise AnotherWriter(
                f"A scheduler on {host} serves this metadata database, and `elt run` ignores its pools "
                f"(both would write the warehouse at once). Fix: trigger the DAG there instead "
                f"(`airflow dags trigger {dag_id}`, or the UI), or stop `make ui` first."
            )
        yield
