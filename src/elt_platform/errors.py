"""The error types the whole project raises for bad input: each problem names the file (or
variable), the field and the fix, and every problem found is reported at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration, phrased for the person who fixes it."""

    file: str
    field: str
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message}. Fix: {self.fix}"


class ConfigurationError(ValueError):
    """Raised with every :class:`Problem` found, one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} configuration problem(s):\n{lines}")


class ManifestError(ValueError):
    """A dbt manifest this platform cannot read; the message names the file and the fix."""
