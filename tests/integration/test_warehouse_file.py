"""The DuckDB file between two tasks: a task that ran dbt in its own process lets go of the file
with the warehouse lock, so the next task (another process) can open it at once."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid

import pytest
from dbt.cli.main import dbtRunner

from elt_platform.warehouse import warehouse_lock
from tests.conftest import REPO

pytestmark = pytest.mark.integration

OPEN_FROM_ANOTHER_PROCESS = """
import sys, duckdb
with duckdb.connect(sys.argv[1]) as con:
    print(con.execute("select count(*) from information_schema.tables").fetchone()[0])
"""


def open_from_another_process(path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", OPEN_FROM_ANOTHER_PROCESS, str(path)], capture_output=True, text=True, timeout=60
    )


def test_a_task_that_ran_dbt_in_process_lets_go_of_the_file_with_the_lock(tmp_path, monkeypatch):
    project = tmp_path / "seeds_only"
    shutil.copytree(REPO / "tests" / "corpus" / "seeds_only", project)
    warehouse = tmp_path / "corpus.duckdb"
    monkeypatch.setenv("ELT_DUCKDB_PATH", str(warehouse))

    with warehouse_lock(f"test-{uuid.uuid4().hex}"):
        result = dbtRunner().invoke(["seed", "--project-dir", str(project), "--profiles-dir", str(project)])
        assert result.success
        # What a task's process looks like between "success recorded" and its exit, without the release.
        held = open_from_another_process(warehouse)
    after = open_from_another_process(warehouse)

    assert held.returncode != 0 and "Could not set lock" in held.stderr
    assert after.returncode == 0, after.stderr
    assert int(after.stdout) >= 1  # the seeds dbt loaded are there
