"""What the identity platform's routers share: configuration, and the edge between HTTP and the protocol."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from entryway.identity.directory.reads import SqlDirectory
from entryway.identity.protocol.errors import OAuthError, error_body
from entryway.identity.signin.ledger import Ledger, PasswordChecker
from entryway.identity.signin.log import SignInLog
from entryway.keys.keyring import Keyring
from entryway.kit.clock import Clock
from entryway.kit.ids import new_guid, parse_guid
from entryway.kit.secrets import SecretDigester
from entryway.kit.web import JsonResponse
from entryway.store.db import Database

log = logging.getLogger("entryway.identity")

T = TypeVar("T")

NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


@dataclass(frozen=True)
class IdentityContext:
    origin: str
    db: Database
    keyring: Keyring
    digester: SecretDigester
    clock: Clock
    # AES-GCM key for users' TOTP secrets, derived from the master key.
    totp_key: bytes = b""
    # Entryway's own CA (PEM): trusted, with the system's roots, when fetching external issuers' keys.
    ca_bundle: str | None = None
    # The process's sign-in log writer (one per runtime, closed with it); None where nothing is logged.
    sign_in_log: SignInLog | None = None


class Edge:
    """Runs protocol code against the database and writes its errors in Entra's shape."""

    def __init__(
        self, ctx: IdentityContext, password_checker: Callable[[Session], PasswordChecker] | None = None
    ) -> None:
        self.ctx = ctx
        self.password_checker = password_checker
        # SQLite answers reads from a local file in microseconds, less than a hop to the thread pool and back
        # costs; a network database keeps the thread pool, so a slow query never stalls the event loop.
        self._reads_inline = ctx.db.engine.dialect.name == "sqlite"

    @staticmethod
    def correlation_id(request: Request) -> str:
        """Entra echoes the client's request id as the correlation id (MSAL: client-request-id)."""
        for name in ("client-request-id", "x-ms-client-request-id"):
            value = parse_guid(request.headers.get(name, ""))
            if value:
                return value
        return new_guid()

    def oauth_error(self, request: Request, error: OAuthError, correlation_id: str | None = None) -> Response:
        trace_id = new_guid()
        correlation_id = correlation_id or self.correlation_id(request)
        log.info(
            "AADSTS%s %s %s trace_id=%s reason=%s",
            error.kind.code,
            request.method,
            request.url.path,
            trace_id,
            error.detail or "-",
        )
        body = error_body(
            error,
            trace_id=trace_id,
            correlation_id=correlation_id,
            at=self.ctx.clock.now(),
            error_uri_base=self.ctx.origin,
        )
        headers = {**NO_STORE, "x-ms-request-id": trace_id, "client-request-id": correlation_id}
        return JsonResponse(body, status_code=error.kind.status, headers=headers)

    async def on_directory(self, fn: Callable[[SqlDirectory], T]) -> T:
        """Directory reads, inline on SQLite."""

        def run() -> T:
            with self.ctx.db.read() as session:
                return fn(SqlDirectory(session.connection()))

        return run() if self._reads_inline else await run_in_threadpool(run)

    def run_in_unit_of_work(self, fn: Callable[[SqlDirectory, Ledger], T]) -> T:
        """Writes made before an `OAuthError` are deliberate (a revoked family, a poll's timestamp) and are
        committed with it; any other error rolls everything back."""
        error: OAuthError | None = None
        with self.ctx.db.unit_of_work() as session:
            checker = None if self.password_checker is None else self.password_checker(session)
            ledger = Ledger(session, self.ctx.clock, self.ctx.digester, checker)
            try:
                return fn(SqlDirectory(session.connection()), ledger)
            except OAuthError as exc:
                error = exc
        raise error

    async def in_unit_of_work(self, fn: Callable[[SqlDirectory, Ledger], T]) -> T:
        """User grants write (codes consumed, tokens rotated), off the event loop: a busy database must not
        stall it."""
        return await run_in_threadpool(self.run_in_unit_of_work, fn)
