"""The connector's process gets only what it needs: an allowlisted environment, a private temporary
folder removed when the sync ends (or by the next sync, if the task was killed), and its own death
when the task's process dies. The warehouse lock is private and named after the database file."""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from elt_platform.ingestion.local_sync import run_local_sync
from elt_platform.ingestion.local_sync_runner import RESULT_PREFIX
from elt_platform.private_dirs import UnsafeFolderError, private_dir, remove_leftovers, task_dir
from elt_platform.settings import Settings
from elt_platform.warehouse import lock_file

WORKER_SECRETS = {
    "AIRFLOW_CONN_WAREHOUSE": '{"conn_type": "duckdb", "host": "/x"}',
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:db-password@127.0.0.1/airflow",
    "ELT_BADGE_SECRET": "b" * 40,
    "SUPPORT_DESK_TOKEN": "planted-token",
    "PYTHONPATH": "/somewhere/else",
}


def fake_ingestion_python(tmp_path: Path) -> Path:
    """Stands in for the ingestion environment's Python: reports what the runner process was given."""
    script = tmp_path / "python"
    script.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            f"""
            import json, os, sys
            request = json.load(sys.stdin)
            tmp = os.environ["TMPDIR"]
            report = {{"env": dict(os.environ), "tmp_mode": os.stat(tmp).st_mode & 0o777, "cwd": os.getcwd(),
                       "config": request["config"]}}
            print({RESULT_PREFIX!r} + json.dumps(report), flush=True)
            """
        )
    )
    script.chmod(0o755)
    return script


def test_the_connector_gets_an_allowlisted_environment_and_a_private_folder(tmp_path, monkeypatch):
    for name, value in {**WORKER_SECRETS, "LANG": "C.UTF-8", "HTTPS_PROXY": "http://proxy:3128"}.items():
        monkeypatch.setenv(name, value)
    settings = Settings(ingestion_python=fake_ingestion_python(tmp_path), connectors_dir=tmp_path / "connectors")
    request = {"connector": "source-file", "config": {"token": "resolved-on-the-worker"}}

    report = run_local_sync(request, settings, logging.getLogger("test"))

    env = report["env"]
    assert not set(WORKER_SECRETS) & set(env), "the worker's secrets reached the connector's process"
    assert not [name for name in env if name.startswith(("AIRFLOW", "ELT_BADGE"))]
    assert env["LANG"] == "C.UTF-8" and env["HTTPS_PROXY"] == "http://proxy:3128"  # what a connector may need
    assert env["AIRBYTE_INSTALL_DIR"] == str(tmp_path / "connectors")
    assert report["config"] == {"token": "resolved-on-the-worker"}  # secrets arrive on stdin, not in the environment
    temp = Path(env["TMPDIR"])
    assert env["AIRBYTE_TEMP_DIR"] == str(temp) == report["cwd"]
    assert report["tmp_mode"] == 0o700
    assert temp.parent == private_dir("syncs")
    assert not temp.exists(), "the sync's temporary folder outlived the sync"


def test_a_killed_task_s_folder_is_removed_by_the_next_sync(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = private_dir("syncs") / f"{dead.pid}-killed"
    leftover.mkdir()
    (leftover / "config.json").write_text('{"password": "x"}')
    alive = private_dir("syncs") / f"{os.getpid()}-running"
    alive.mkdir()

    mine = task_dir("syncs")  # what the next sync does first

    assert not leftover.exists()
    assert alive.is_dir() and mine.is_dir()  # this process is alive: its folders stay
    assert alive not in remove_leftovers(private_dir("syncs"))
    alive.rmdir()
    mine.rmdir()


def test_a_folder_others_can_enter_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    (tmp_path / f"elt-locks-{os.getuid()}").mkdir(mode=0o777)
    os.chmod(tmp_path / f"elt-locks-{os.getuid()}", 0o777)
    with pytest.raises(UnsafeFolderError, match=r"is not a private folder of this user .*Fix: remove it"):
        private_dir("locks")


def test_the_lock_is_named_after_the_database_file_s_real_path(tmp_path):
    database = tmp_path / "analytics.duckdb"
    link = tmp_path / "same-file.duckdb"
    link.symlink_to(database)
    other = tmp_path / "other" / "analytics.duckdb"

    assert lock_file(database) == lock_file(link)  # two names of one file: one lock
    assert lock_file(database) != lock_file(other)  # same name, other file: another lock
    assert lock_file(database).parent == private_dir("locks")
    assert stat.S_IMODE(private_dir("locks").stat().st_mode) == 0o700


def test_the_runner_dies_with_the_task_s_process(tmp_path):
    """The task's process is SIGKILLed (no finally runs): the runner it started ends too."""
    read_end, write_end = os.pipe()  # held open here: the runner's stdin never reaches EOF
    task = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import os, subprocess, sys
                env = {{**os.environ, "ELT_SYNC_PARENT_PID": str(os.getpid())}}
                runner = subprocess.Popen([sys.executable, "-m", "elt_platform.ingestion.local_sync_runner"],
                                          stdin={read_end}, env=env, pass_fds=({read_end},))
                print(runner.pid, flush=True)
                runner.wait()
                """
            ),
        ],
        stdout=subprocess.PIPE,
        pass_fds=(read_end,),
        text=True,
    )
    runner_pid = int(task.stdout.readline())
    time.sleep(1.0)  # the runner has set its death signal and waits on stdin
    assert _running(runner_pid)
    task.send_signal(signal.SIGKILL)
    task.wait()
    deadline = time.monotonic() + 10
    while _running(runner_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.close(write_end)
    os.close(read_end)
    assert not _running(runner_pid), "the runner outlived the task's process"


def _running(pid: int) -> bool:
    """Alive and not a zombie (the runner's parent is gone: init reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
