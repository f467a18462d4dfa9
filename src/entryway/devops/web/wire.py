"""Value shapes Azure DevOps' REST answers share."""

from __future__ import annotations

from datetime import UTC, datetime

from entryway.kit.clock import as_utc


def wire_time(value: datetime) -> str:
    """A time as Azure DevOps writes it: UTC, milliseconds, `Z` (`2026-11-28T00:47:26.123Z`). A naive value
    (as SQLite returns it) is UTC."""
    return as_utc(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
