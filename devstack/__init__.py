"""The local development stack, shared by the integration tests and the benchmark.

Outside ``tests/`` so that ``bench/`` needs no test code (nor the suite's conftest,
which sets up Airflow's environment at import).
"""

from __future__ import annotations

import sys
from pathlib import Path

# The executables (airflow, dbt) of the environment running this code.
BIN = Path(sys.executable).parent
