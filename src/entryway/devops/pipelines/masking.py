"""Secret masking, as the agent does it: every registered value is replaced by `***` in each log line before
the line is stored or printed (learn: pipelines/process/variables#secret-variables). Values are registered
from secret variables, the job token, and `##vso[task.setsecret]` / `task.setvariable …;issecret=true`
logging commands. No I/O."""

from __future__ import annotations

MASK = "***"


class Masker:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._ordered: list[str] = []

    def add(self, value: str) -> None:
        """Mask `value` from now on; a multi-line value is masked line by line too (a log line never holds
        more than one of its lines). Surrounding whitespace is not part of what is masked."""
        for part in [value, *value.splitlines()]:
            candidate = part.strip()
            if candidate:
                self._values.add(candidate)
        # Longest first, so a secret containing another is masked whole.
        self._ordered = sorted(self._values, key=len, reverse=True)

    def mask(self, line: str) -> str:
        for value in self._ordered:
            if value in line:
                line = line.replace(value, MASK)
        return line
