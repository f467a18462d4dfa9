"""Writing the audit log: `record_change` for a domain's changes (inside its unit of work), and
`AuditRecorder`, the router's listener for authentication decisions.

Authentication decisions are recorded off the request path: the listener only puts a row on a bounded
queue, and one background task per process writes what has accumulated in one unit of work. Refusals are
always recorded. Accepted decisions are recorded once per (actor, organization, credential kind, minute):
connectionData alone is answered thousands of times a second, and a row per accepted request would make the
log a request log (Azure DevOps' own audit log does not list accepted requests at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request

from entryway.devops.auth.credentials import parse_authorization
from entryway.devops.auth.principal import Principal
from entryway.devops.orgs.service import Organization
from entryway.devops.web.routing import AuthDecision
from entryway.kit.clock import Clock
from entryway.kit.ids import new_guid
from entryway.kit.web import client_address
from entryway.store.models import AuditEventRow

log = logging.getLogger("entryway.devops.audit")

ACCEPTED = "Authentication.Accepted"
REFUSED = "Authentication.Refused"
SUCCESS = "success"
FAILURE = "failure"

# Accepted decisions of one actor, in one organization, with one kind of credential, are recorded once per
# window.
ACCEPTED_WINDOW_SECONDS = 60
# Rows waiting to be written. Past this the newest are dropped (and counted in the log): an audit writer that
# cannot keep up must not take the process's memory with it.
QUEUE_LIMIT = 10_000
# Rows written in one unit of work at most.
BATCH_LIMIT = 500

Writer = Callable[[Callable[[Session], None]], Awaitable[None]]


@dataclass(frozen=True)
class Actor:
    """Who makes a change and how it reached us, as the audit log records it (never a credential)."""

    actor_id: str | None
    actor_name: str  # a display name, as the auditlog's actorDisplayName shows it
    credential_kind: str = ""
    client_address: str = ""
    method: str = ""
    path: str = ""

    @classmethod
    def local(cls, what: str) -> Actor:
        """The CLI or the config file on the server's host."""
        return cls(None, what, credential_kind="local")

    @classmethod
    def of(cls, request: Request, principal: Principal) -> Actor:
        """The member behind an authenticated request."""
        member = principal.member
        return cls(
            member.object_id,
            member.display_name,
            credential_kind=principal.credential.label,
            client_address=client_address(request),
            method=request.method,
            path=request.url.path[:1024],
        )


def record_change(
    session: Session,
    *,
    clock: Clock,
    organization_id: str | None,
    organization_name: str,
    action: str,
    actor_id: str | None,
    actor_name: str,
    credential_kind: str,
    client_address: str,
    details: dict[str, Any],
    method: str = "",
    path: str = "",
    status: int | None = None,
) -> AuditEventRow:
    """Add a successful change (`Project.Create`, `Git.Push`, ...) to the caller's unit of work. Never commits:
    the change and its audit row are written together or not at all. `details` must not hold secrets."""
    row = AuditEventRow(
        id=new_guid(),
        timestamp=clock.now(),
        organization_id=organization_id,
        organization_name=organization_name,
        action=action,
        outcome=SUCCESS,
        actor_id=actor_id,
        actor_name=actor_name,
        credential_kind=credential_kind,
        client_address=client_address,
        method=method,
        path=path,
        status=status,
        details=details,
    )
    session.add(row)
    return row


def record_change_by(
    session: Session,
    *,
    clock: Clock,
    organization: Organization,
    actor: Actor,
    action: str,
    details: dict[str, Any],
    status: int | None = None,
) -> AuditEventRow:
    """`record_change` for an `Actor`: what the services and routes that change things call."""
    return record_change(
        session,
        clock=clock,
        organization_id=organization.id,
        organization_name=organization.name,
        action=action,
        actor_id=actor.actor_id,
        actor_name=actor.actor_name,
        credential_kind=actor.credential_kind,
        client_address=actor.client_address,
        details=details,
        method=actor.method,
        path=actor.path,
        status=status,
    )


@dataclass(frozen=True)
class _Decision:
    """What an authentication decision leaves in the log: plain values, no request and no credential."""

    timestamp: datetime
    organization_id: str | None
    organization_name: str
    accepted: bool
    actor_id: str | None
    actor_name: str
    credential_kind: str
    client_address: str
    method: str
    path: str
    status: int | None
    reason: str
    user_agent: str

    def row(self) -> AuditEventRow:
        return AuditEventRow(
            id=new_guid(),
            timestamp=self.timestamp,
            organization_id=self.organization_id,
            organization_name=self.organization_name,
            action=ACCEPTED if self.accepted else REFUSED,
            outcome=SUCCESS if self.accepted else FAILURE,
            actor_id=self.actor_id,
            actor_name=self.actor_name,
            credential_kind=self.credential_kind,
            client_address=self.client_address,
            method=self.method,
            path=self.path,
            status=self.status,
            details={"reason": self.reason, "userAgent": self.user_agent},
        )


class AuditRecorder:
    """The router's `AuthListener`. Call `close()` at shutdown to write what is still queued."""

    def __init__(self, write: Writer, clock: Clock) -> None:
        self._write = write
        self._clock = clock
        self._queue: asyncio.Queue[_Decision] | None = None
        self._task: asyncio.Task[None] | None = None
        self._seen: dict[tuple[str, str, str], int] = {}  # (actor, org, kind) -> window last recorded
        self._dropped = 0

    async def __call__(self, decision: AuthDecision) -> None:
        """Record one authentication decision; returns at once (the row is written in the background).

        An accepted decision is the hot path (every authenticated request): whether it is the first of its
        window is decided from the principal alone, before anything of the request is read."""
        principal = decision.principal
        if decision.accepted and isinstance(principal, Principal) and decision.organization is not None:
            window = int(self._clock.timestamp()) // ACCEPTED_WINDOW_SECONDS
            key = (principal.member.object_id, decision.organization.id, principal.credential.label)
            if not self._first_in_window(key, window):
                return
        entry = self._entry(decision)
        queue = self._started()
        try:
            queue.put_nowait(entry)
        except asyncio.QueueFull:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.warning("audit queue full: %d authentication decisions not recorded", self._dropped)

    def _entry(self, decision: AuthDecision) -> _Decision:
        request = decision.request
        principal = decision.principal
        actor_id: str | None = None
        actor_name = ""
        if isinstance(principal, Principal):
            actor_id, actor_name = principal.member.object_id, principal.member.display_name
            kind = principal.credential.label
        elif principal is not None:
            kind = principal.credential.label
            actor_id = principal.object_id
        else:
            # No organization to authenticate against: the shape of what was presented, never its value.
            kind = parse_authorization(request.headers.get("authorization")).label
        org = decision.organization
        return _Decision(
            timestamp=self._clock.now(),
            organization_id=org.id if org is not None else None,
            organization_name=org.name if org is not None else decision.organization_name[:64],
            accepted=decision.accepted,
            actor_id=actor_id,
            actor_name=actor_name,
            credential_kind=kind or "none",
            client_address=client_address(request),
            method=request.method,
            path=request.url.path[:1024],
            status=decision.status,
            reason=decision.reason[:512],
            user_agent=request.headers.get("user-agent", "")[:256],
        )

    def _first_in_window(self, key: tuple[str, str, str], window: int) -> bool:
        if self._seen.get(key) == window:
            return False
        if len(self._seen) > QUEUE_LIMIT:  # a bound on memory: forget earlier windows
            self._seen = {k: w for k, w in self._seen.items() if w == window}
        self._seen[key] = window
        return True

    def _started(self) -> asyncio.Queue[_Decision]:
        # Started on first use, on the loop that serves requests (the app's lifespan runs on the same loop).
        if self._queue is None or self._task is None or self._task.done():
            self._queue = self._queue or asyncio.Queue(QUEUE_LIMIT)
            self._task = asyncio.get_running_loop().create_task(self._drain(self._queue))
        return self._queue

    async def _drain(self, queue: asyncio.Queue[_Decision]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < BATCH_LIMIT and not queue.empty():
                batch.append(queue.get_nowait())
            await self._write_batch(batch)

    async def _write_batch(self, batch: list[_Decision]) -> None:
        def add(session: Session) -> None:
            session.add_all([entry.row() for entry in batch])

        try:
            await self._write(add)
        except Exception:  # the log says so; the next batch tries again
            log.exception("writing %d audit events failed", len(batch))

    async def close(self) -> None:
        """Stop the writer and write what is still queued."""
        task, queue = self._task, self._queue
        self._task = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if queue is not None and not queue.empty():
            rest: list[_Decision] = []
            while not queue.empty():
                rest.append(queue.get_nowait())
            await self._write_batch(rest)
