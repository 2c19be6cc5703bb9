"""hadolint on the Dockerfile (no Docker engine runs here)."""

from __future__ import annotations

import subprocess

from tests.conftest import BIN, REPO


def test_dockerfile_passes_hadolint():
    result = subprocess.run([str(BIN / "hadolint"), str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
