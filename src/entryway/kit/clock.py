"""The process clock: one instance is handed to every component, so tests can move time."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    def timestamp(self) -> float:
        """The current time in seconds since the epoch."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def timestamp(self) -> float:
        return time.time()


class ManualClock:
    """A clock that follows the wall clock plus an offset that tests move forward.

    It keeps running (a frozen clock would make every token issued in a test share one `iat`), and
    `advance` jumps it ahead, so an hour of token lifetime passes in one call.
    """

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self._offset = offset.total_seconds()
        self._lock = threading.Lock()

    def advance(self, delta: timedelta | float) -> None:
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        with self._lock:
            self._offset += seconds

    def timestamp(self) -> float:
        return time.time() + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)


def utc_from_timestamp(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything we store is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


__all__ = ["Clock", "ManualClock", "SystemClock", "as_utc", "timedelta", "utc_from_timestamp"]
