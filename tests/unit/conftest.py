"""Unit tests run no process: one that does belongs in tests/commands/ (or tests/integration/)."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture(autouse=True)
def no_processes(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(
            f"A unit test started a process ({args[0] if args else kwargs.get('args')}): "
            "move the test to tests/commands/."
        )

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
