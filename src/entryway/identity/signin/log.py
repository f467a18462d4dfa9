"""The sign-in log, as Entra keeps it (Graph `signIn`): every interactive sign-in and every token issuance or
refusal, with the client address, the app, the result and each Conditional Access policy's result.

Writing is off the request path: `record` queues the entry and returns at once, a background thread writes
what is queued in batches, one transaction per batch. A log that cannot be written never fails the sign-in it
describes: `record` never raises, and a batch the database refuses is dropped with a warning in the process
log. `flush` writes what is queued now (tests, shutdown); `close` stops the writer after a last flush.

Retention: entries older than the retention (30 days by default, as Entra keeps sign-ins with a P1 or P2
licence: https://learn.microsoft.com/entra/identity/monitoring-health/reference-reports-data-retention) are
deleted by the same writer, at most once an hour on the process clock, a bounded number of rows per
transaction. Every process of a multi-node installation prunes; the deletes are idempotent.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, select

from entryway.kit.clock import Clock
from entryway.kit.ids import new_guid
from entryway.store.db import Database
from entryway.store.models import SignInLogRow

log = logging.getLogger("entryway.identity.signin.log")

# The writer wakes at least this often (seconds, wall time: how soon a sign-in shows in the log, not a
# protocol time) and writes at most this many entries per transaction.
WRITE_INTERVAL_SECONDS = 0.25
BATCH_SIZE = 500
# Beyond this many unwritten entries (a database that is down for a long time), new entries are dropped
# rather than let the queue grow without bound; each drop is counted and logged.
MAX_PENDING = 50_000
# How long entries are kept, how often (process clock) the writer prunes, and how many rows one delete takes.
DEFAULT_RETENTION = timedelta(days=30)
PRUNE_INTERVAL = timedelta(hours=1)
PRUNE_BATCH = 5_000

# The columns' lengths (SignInLogRow): longer values are cut, not refused (a user agent can be any length).
_LIMITS = {
    "user_principal_name": 256,
    "app_display_name": 256,
    "resource_display_name": 256,
    "ip_address": 64,
    "user_agent": 512,
    "client_app_used": 48,
    "device_platform": 32,
    "authentication_protocol": 48,
    "authentication_requirement": 48,
    "failure_reason": 1024,
    "conditional_access_status": 16,
    "principal_kind": 32,
}


@dataclass(frozen=True)
class SignInRecord:
    """One entry, in SignInLogRow's columns (minus id and created_at, which the log adds)."""

    tenant_id: str  # "" when no tenant could be resolved
    principal_kind: str  # user | servicePrincipal | managedIdentity
    is_interactive: bool
    app_id: str  # the client
    ip_address: str
    error_code: int = 0  # 0: success; else the AADSTS number
    user_id: str | None = None
    user_principal_name: str = ""
    service_principal_id: str | None = None
    app_display_name: str = ""
    resource_id: str = ""
    resource_display_name: str = ""
    user_agent: str = ""
    client_app_used: str = ""  # browser | mobileAppsAndDesktopClients | other
    device_platform: str = ""
    # authorizationCode, refreshToken, deviceCode, ropc, clientCredentials, federatedAssertion, onBehalfOf,
    # interactive (a sign-in page), managedIdentity
    authentication_protocol: str = ""
    authentication_requirement: str = ""  # singleFactorAuthentication | multiFactorAuthentication
    failure_reason: str = ""  # the AADSTS text: the public half of the error only
    conditional_access_status: str = "notApplied"  # success | failure | notApplied
    # Graph's appliedConditionalAccessPolicy: {id, displayName, result, enforcedGrantControls, …}
    applied_policies: tuple[dict[str, Any], ...] = field(default=())
    correlation_id: str = ""


@dataclass(frozen=True)
class _Pending:
    id: str
    created_at: datetime
    record: SignInRecord


_RECORD_FIELDS = tuple(f.name for f in fields(SignInRecord))
# A Core statement on the table: the ORM's bulk insert costs about twice as much per row, and the writer shares
# the process (and the GIL) with the token endpoint.
_INSERT = cast(Table, SignInLogRow.__table__).insert()


def _row_values(pending: _Pending) -> dict[str, Any]:
    record = pending.record
    # Not dataclasses.asdict: it deep-copies every value, and this runs once per token issued.
    values = {name: getattr(record, name) for name in _RECORD_FIELDS}
    values["applied_policies"] = [dict(p) for p in record.applied_policies]
    for name, limit in _LIMITS.items():
        value = values[name]
        if isinstance(value, str) and len(value) > limit:
            values[name] = value[:limit]
    values["id"] = pending.id
    values["created_at"] = pending.created_at
    return values


class SignInLog:
    """The process's one writer of the sign-in log (thread-safe; shared by every app of the runtime)."""

    def __init__(
        self, db: Database, clock: Clock, *, retention: timedelta | None = DEFAULT_RETENTION
    ) -> None:
        """`retention` None keeps every entry."""
        self._db = db
        self._clock = clock
        self._retention = retention
        self._last_prune: datetime | None = None
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._pending = 0
        self._dropped = 0
        self._count_lock = threading.Lock()
        # Held while a batch is taken from the queue and written, so `flush` returns only once everything
        # recorded before it is in the database (the writer may be in the middle of a batch).
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._closed = False

    def record(self, entry: SignInRecord) -> str | None:
        """Queue `entry`; returns the id it will be written under (None when it was dropped). Never raises."""
        try:
            if self._closed:
                log.warning("sign-in log closed; entry dropped (tenant %s)", entry.tenant_id)
                return None
            with self._count_lock:
                if self._pending >= MAX_PENDING:
                    self._dropped += 1
                    dropped = self._dropped
                else:
                    self._pending += 1
                    dropped = 0
            if dropped:
                if dropped == 1 or dropped % 1000 == 0:
                    log.warning("sign-in log: %d entries dropped, the database is not keeping up", dropped)
                return None
            pending = _Pending(new_guid(), self._clock.now(), entry)
            self._queue.put(pending)
            self._ensure_writer()
            if self._pending >= BATCH_SIZE:
                self._wake.set()
        except Exception:  # a log entry must never fail the sign-in it describes
            log.exception("sign-in log: could not queue an entry")
            return None
        return pending.id

    def flush(self) -> None:
        """Write everything queued so far, in this thread, then prune when a prune is due. Never raises."""
        try:
            with self._write_lock:
                while self._write_batch():
                    pass
                self._prune_if_due()
        except Exception:
            log.exception("sign-in log: flush failed")

    def prune(self) -> int:
        """Delete the entries older than the retention, now; how many were deleted. Never raises."""
        with self._write_lock:
            return self._prune()

    def close(self) -> None:
        """Stop the writer and write what is left. Entries recorded afterwards are dropped."""
        self._closed = True
        self._stopping.set()
        self._wake.set()
        with self._thread_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)
        self.flush()

    @property
    def dropped(self) -> int:
        return self._dropped

    # --- the writer -----------------------------------------------------------------------------------

    def _ensure_writer(self) -> None:
        if self._thread is not None:
            return
        with self._thread_lock:
            if self._thread is None and not self._stopping.is_set():
                self._thread = threading.Thread(target=self._run, name="entryway-sign-in-log", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(WRITE_INTERVAL_SECONDS)
            self._wake.clear()
            self.flush()

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        while len(batch) < BATCH_SIZE:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if batch:
            with self._count_lock:
                self._pending -= len(batch)
        return batch

    def _write_batch(self) -> bool:
        """Write one batch; False when the queue was empty. A batch the database refuses is dropped (a
        retry loop against a broken database would only grow the queue)."""
        batch = self._take()
        if not batch:
            return False
        try:
            self._write(batch)
        except Exception:
            log.exception("sign-in log: %d entries could not be written and were dropped", len(batch))
        return True

    def _prune_if_due(self) -> None:
        """A prune is due an interval after the last one, at the first flush, or when the clock went back."""
        if self._retention is None:
            return
        now = self._clock.now()
        last = self._last_prune
        if last is None or now < last or now - last >= PRUNE_INTERVAL:
            self._prune()

    def _prune(self) -> int:
        if self._retention is None:
            return 0
        now = self._clock.now()
        self._last_prune = now
        cutoff = now - self._retention
        row = SignInLogRow
        oldest = select(row.id).where(row.created_at < cutoff).limit(PRUNE_BATCH)
        deleted = 0
        try:
            while True:
                with self._db.engine.begin() as connection:
                    count = connection.execute(delete(row).where(row.id.in_(oldest))).rowcount or 0
                deleted += count
                if count < PRUNE_BATCH:
                    break
        except Exception:
            log.exception("sign-in log: pruning entries older than %s failed", cutoff.isoformat())
        if deleted:
            log.info("sign-in log: %d entries older than %s deleted", deleted, cutoff.isoformat())
        return deleted

    def _write(self, batch: Sequence[_Pending]) -> None:
        rows = [_row_values(p) for p in batch]
        with self._db.engine.begin() as connection:
            connection.execute(_INSERT, rows)


__all__ = ["SignInLog", "SignInRecord"]
