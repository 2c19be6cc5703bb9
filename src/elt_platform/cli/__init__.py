"""The ``elt`` command: ``commands`` (check, run, summary, health, schema) and ``summary`` (a run's report)."""

from elt_platform.cli.commands import main

__all__ = ["main"]
