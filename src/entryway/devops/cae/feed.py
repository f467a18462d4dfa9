"""The critical-event feed: what each DevOps process knows of the identity platform's `cae_events` outbox.

Every process sharing the database reads the outbox on its own. At start it loads the user events of the last
`TOKEN_WINDOW` (no Entra token lives longer; Entra's CAE tokens live up to 28 h), each user's latest account
state event of any age (PATs outlive tokens), and each tenant's latest policy snapshot; after that it polls
`seq > watermark` at most once per `POLL_SECONDS` on the injectable clock, from the request path (an idle
process does no work). On PostgreSQL a sequence value is taken before its transaction commits, so a row with a
lower seq can become visible after a higher one: every seq skipped over is remembered as a gap and asked for
again for `GAP_SECONDS` (a rolled-back transaction leaves a gap that never fills). Applying an event twice
changes nothing: times are merged with max, and a policy snapshot replaces an older one only.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from entryway.identity.directory.cae_outbox import USER_REVOKING_KINDS, CaeEventKind
from entryway.identity.policy.model import PolicyInvalid, PolicySet
from entryway.kit.clock import Clock, as_utc
from entryway.store.models import ContinuousAccessEventRow

log = logging.getLogger("entryway.devops.cae")

T = TypeVar("T")

POLL_SECONDS = 1.0
TOKEN_WINDOW = timedelta(hours=28)  # Entra's longest CAE token lifetime
GAP_SECONDS = 60.0
MAX_GAPS = 1000
BATCH = 5000

_ACCOUNT_KINDS = (CaeEventKind.USER_DISABLED, CaeEventKind.USER_ENABLED, CaeEventKind.USER_DELETED)


class SessionRunner(Protocol):
    def __call__(self, fn: Callable[[Session], T], /) -> Awaitable[T]: ...


@dataclass(frozen=True)
class Event:
    seq: int
    tenant_id: str
    kind: str
    subject_id: str | None
    at: float  # epoch seconds
    payload: dict[str, Any]


@dataclass
class _UserState:
    revoked_at: int = -1  # floor(epoch) of the latest revoking event; -1: none
    revoked_by: str = ""
    blocked: tuple[float, int] = (-math.inf, -1)  # (time, seq) of the latest userDisabled / userDeleted
    blocked_by: str = ""
    enabled: tuple[float, int] = (-math.inf, -1)  # (time, seq) of the latest userEnabled


@dataclass(frozen=True)
class Revocation:
    at: int  # floor of the event time, epoch seconds: tokens with iat before it are refused
    kind: str


class CaeFeed:
    def __init__(self, read: SessionRunner, clock: Clock, *, poll_seconds: float = POLL_SECONDS) -> None:
        self._read = read
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._users: dict[tuple[str, str], _UserState] = {}
        self._policies: dict[str, tuple[int, PolicySet]] = {}  # tenant -> (seq, snapshot)
        self._watermark: int | None = None  # None: not loaded yet
        self._gaps: dict[int, float] = {}  # seq -> when first missed
        self._last_poll = -math.inf
        self._lock = asyncio.Lock()

    # --- what the checks ask -----------------------------------------------------------------------

    def revocation(self, tenant_id: str, object_id: str) -> Revocation | None:
        """The latest event that makes the user's earlier tokens unacceptable, if any."""
        state = self._users.get((tenant_id, object_id))
        if state is None or state.revoked_at < 0:
            return None
        return Revocation(state.revoked_at, state.revoked_by)

    def account_blocked(self, tenant_id: str, object_id: str) -> str | None:
        """userDisabled / userDeleted when the user's latest account event is one of those, else None."""
        state = self._users.get((tenant_id, object_id))
        if state is None or state.blocked <= state.enabled:
            return None
        return state.blocked_by

    def policies(self, tenant_id: str) -> PolicySet | None:
        """The tenant's latest Conditional Access snapshot; None: no policy was ever published."""
        found = self._policies.get(tenant_id)
        return None if found is None else found[1]

    # --- reading the outbox ------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Load at first use, then poll when the last poll is `poll_seconds` old. Requests arriving during a
        poll wait for it, so none sees state older than the poll interval."""
        if not self._due(self._clock.timestamp()):
            return
        async with self._lock:
            now = self._clock.timestamp()
            if not self._due(now):
                return
            try:
                if self._watermark is None:
                    await self._load()
                else:
                    await self._poll()
            except Exception:  # a database hiccup: keep what we know, try again at the next interval
                log.exception("reading the critical-event outbox failed")
            self._last_poll = now

    def _due(self, now: float) -> bool:
        """A poll is due `poll_seconds` after the last one, or at once when the clock went back (NTP, a test
        giving its clock back): a clock behind the last poll must never stop the feed."""
        elapsed = now - self._last_poll
        return elapsed < 0 or elapsed >= self._poll_seconds

    async def _load(self) -> None:
        since = self._clock.now() - TOKEN_WINDOW

        def read(session: Session) -> tuple[int, list[Event]]:
            top = session.scalar(select(func.max(ContinuousAccessEventRow.seq))) or 0
            c = ContinuousAccessEventRow
            recent = select(c).where(
                c.seq <= top, c.occurred_at >= since, c.kind != CaeEventKind.POLICIES_CHANGED
            )
            latest_account = (
                select(func.max(c.seq))
                .where(c.kind.in_(_ACCOUNT_KINDS))
                .group_by(c.tenant_id, c.subject_id, c.kind)
            )
            latest_policies = (
                select(func.max(c.seq)).where(c.kind == CaeEventKind.POLICIES_CHANGED).group_by(c.tenant_id)
            )
            rows = list(session.scalars(recent))
            rows += session.scalars(
                select(c).where(c.seq <= top, or_(c.seq.in_(latest_account), c.seq.in_(latest_policies)))
            )
            return top, [_event(r) for r in rows]

        top, found = await self._read(read)
        for event in sorted(found, key=lambda e: e.seq):
            self._apply(event)
        self._watermark = top
        log.info("critical-event feed loaded: %d events up to seq %d", len(found), top)

    async def _poll(self) -> None:
        watermark = self._watermark or 0
        now = self._clock.timestamp()
        self._gaps = {seq: at for seq, at in self._gaps.items() if now - at < GAP_SECONDS}
        gaps = list(self._gaps)

        def read(session: Session) -> list[Event]:
            c = ContinuousAccessEventRow
            where = c.seq > watermark if not gaps else or_(c.seq > watermark, c.seq.in_(gaps))
            return [_event(r) for r in session.scalars(select(c).where(where).order_by(c.seq).limit(BATCH))]

        found = await self._read(read)
        for event in found:
            self._gaps.pop(event.seq, None)
            self._apply(event)
        newer = [e.seq for e in found if e.seq > watermark]
        if newer:
            seen = set(newer)
            top = max(newer)
            for seq in range(watermark + 1, top):
                if seq not in seen:
                    self._gaps[seq] = now
            if len(self._gaps) > MAX_GAPS:
                for seq in sorted(self._gaps)[: len(self._gaps) - MAX_GAPS]:
                    del self._gaps[seq]
            self._watermark = top

    def _apply(self, event: Event) -> None:
        if event.kind == CaeEventKind.POLICIES_CHANGED:
            current = self._policies.get(event.tenant_id)
            if current is not None and current[0] >= event.seq:
                return
            try:
                snapshot = PolicySet.from_graph(event.payload)
            except (PolicyInvalid, ValueError, TypeError):
                log.exception("policy snapshot %d of tenant %s is unreadable: kept the previous one", event.seq,
                              event.tenant_id)  # fmt: skip
                return
            self._policies[event.tenant_id] = (event.seq, snapshot)
            return
        if event.subject_id is None:
            return
        state = self._users.setdefault((event.tenant_id, event.subject_id), _UserState())
        if event.kind in USER_REVOKING_KINDS:
            second = math.floor(event.at)
            if second > state.revoked_at:
                state.revoked_at, state.revoked_by = second, event.kind
        stamp = (event.at, event.seq)
        if event.kind in (CaeEventKind.USER_DISABLED, CaeEventKind.USER_DELETED) and stamp > state.blocked:
            state.blocked, state.blocked_by = stamp, event.kind
        elif event.kind == CaeEventKind.USER_ENABLED and stamp > state.enabled:
            state.enabled = stamp


def _event(row: ContinuousAccessEventRow) -> Event:
    return Event(
        row.seq,
        row.tenant_id,
        row.kind,
        row.subject_id,
        as_utc(row.occurred_at).timestamp(),
        dict(row.payload or {}),
    )
