"""dbt run in-process (dbtRunner) keeps the DuckDB file open after it ends; the adapter closes it, so
another process (the next task) can open the file at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from elt_platform.dependency_internals import close_the_duckdb_file_dbt_keeps_open

OPEN_IT = "import duckdb, sys; duckdb.connect(sys.argv[1]).execute('select count(*) from main.one').fetchall()"


def _another_process_opens(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", OPEN_IT, str(path)], capture_output=True, text=True, timeout=60)


def test_the_file_dbt_kept_open_is_closed_for_the_next_process(tmp_path):
    from dbt.cli.main import dbtRunner

    warehouse = tmp_path / "warehouse.duckdb"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "one.sql").write_text("select 1 as id")
    (tmp_path / "dbt_project.yml").write_text("name: tiny\nversion: '1.0'\nprofile: tiny\nconfig-version: 2\n")
    (tmp_path / "profiles.yml").write_text(
        textwrap.dedent(f"""\
            tiny:
              target: dev
              outputs:
                dev: {{type: duckdb, path: "{warehouse}", threads: 1}}
        """)
    )
    args = ["run", "--project-dir", str(tmp_path), "--profiles-dir", str(tmp_path), "--quiet"]
    assert dbtRunner().invoke(args).success

    held = _another_process_opens(warehouse)
    assert held.returncode != 0 and "lock" in held.stderr.lower()  # dbt-duckdb still holds it

    close_the_duckdb_file_dbt_keeps_open()
    assert _another_process_opens(warehouse).returncode == 0
    close_the_duckdb_file_dbt_keeps_open()  # nothing open any more: a no-op
