"""The browser's sign-in session on the identity origin, CSRF tokens, and the signed flow state that
carries an authorization request across the sign-in pages. Never commits: the caller's unit of work does.

The session cookie `ESTSAUTH` (Entra's name) holds a minted secret; the database keeps only its keyed
digest. A pre-session cookie `esctx` (also Entra's name) holds a random value that CSRF tokens are bound
to, so the very first form is protected before anyone has signed in.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from entryway.kit import browser
from entryway.kit.clock import Clock, as_utc
from entryway.kit.secrets import SecretDigester, SecretKind
from entryway.store.models import BrowserSessionRow, SessionAccountRow

SESSION_COOKIE = "ESTSAUTH"
CONTEXT_COOKIE = "esctx"
# A browser session ends after this long without use, as Entra's persistent session does not outlive a day
# of idleness unless "Stay signed in" was chosen (we never offer it).
SESSION_IDLE = timedelta(hours=24)
# 40 base62 characters carry ~238 bits.
BROWSER_SESSION = SecretKind(prefix="ewbs_", entropy_chars=40)
_CONTEXT_BYTES = 32
_CSRF_PURPOSE = "entryway/csrf/v1:"
_FLOW_PURPOSE = "entryway/flow/v1:"


class BrowserSessions:
    def __init__(self, session: Session, clock: Clock, digester: SecretDigester) -> None:
        self._session = session
        self._clock = clock
        self._digester = digester

    def find(self, cookie: str | None) -> BrowserSessionRow | None:
        """The live session a cookie names; a forged, ended or idle one is no session."""
        if not cookie or not BROWSER_SESSION.is_well_formed(cookie):
            return None
        row = self._session.get(BrowserSessionRow, self._digester.digest(cookie))
        if row is None or row.ended_at is not None:
            return None
        if as_utc(row.last_seen_at) + SESSION_IDLE < self._clock.now():
            return None
        return row

    def start(self) -> tuple[str, BrowserSessionRow]:
        """A new session: the cookie value (the only copy) and its row."""
        value = BROWSER_SESSION.mint()
        now = self._clock.now()
        row = BrowserSessionRow(digest=self._digester.digest(value), created_at=now, last_seen_at=now)
        self._session.add(row)
        self._session.flush()
        return value, row

    def touch(self, row: BrowserSessionRow) -> None:
        row.last_seen_at = self._clock.now()

    def accounts(self, row: BrowserSessionRow) -> list[SessionAccountRow]:
        query = (
            select(SessionAccountRow)
            .where(SessionAccountRow.session_digest == row.digest)
            .order_by(SessionAccountRow.auth_time.desc())
        )
        return list(self._session.scalars(query))

    def add_account(
        self, row: BrowserSessionRow, *, user_id: str, tenant_id: str, auth_time: datetime, amr: Sequence[str]
    ) -> None:
        account = self._session.get(SessionAccountRow, (row.digest, user_id))
        if account is None:
            account = SessionAccountRow(session_digest=row.digest, user_id=user_id)
            self._session.add(account)
        account.tenant_id = tenant_id
        account.auth_time = auth_time
        account.amr = list(amr)
        row.last_seen_at = self._clock.now()
        self._session.flush()

    def end(self, row: BrowserSessionRow) -> None:
        row.ended_at = self._clock.now()
        self._session.flush()


def new_context_value() -> str:
    return secrets.token_urlsafe(_CONTEXT_BYTES)


def csrf_token(digester: SecretDigester, context: str) -> str:
    """The CSRF token of a browser: an HMAC of its `esctx` cookie, which another origin can neither read
    nor set."""
    return browser.csrf_token(digester, _CSRF_PURPOSE, context)


def csrf_valid(digester: SecretDigester, context: str | None, token: str | None) -> bool:
    return browser.csrf_valid(digester, _CSRF_PURPOSE, context, token)


class FlowState(browser.SealedState):
    """The signed state a sign-in carries from page to page in a hidden field, bound to the browser's
    `esctx` cookie (kit.browser.SealedState under the sign-in pages' own purpose)."""

    def __init__(self, digester: SecretDigester, clock: Clock, lifetime: timedelta) -> None:
        super().__init__(digester, clock, lifetime, _FLOW_PURPOSE)
