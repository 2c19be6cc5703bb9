"""The adapter imports each dependency where it uses it: a process that needs none of Cosmos pays nothing."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_adapter_loads_no_cosmos():
    code = "import sys, elt_platform.dependency_internals as a; print(sorted(m for m in sys.modules if 'cosmos' in m))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
