"""Web sessions of the DevOps origin (devops_web_sessions): the cookie holds a minted secret, the database
only its keyed digest. A session lasts `WEB_SESSION_LIFETIME` from sign-in; signing out deletes it. Never
commits: the caller's unit of work does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from entryway.devops.portal.oidc import SignedInUser
from entryway.kit.clock import Clock, as_utc
from entryway.kit.secrets import SecretDigester, SecretKind
from entryway.store.models import WebSessionRow

# `__Host-`: the browser takes the cookie only when Secure, for the whole origin, and with no Domain, so no
# other host can set it.
SESSION_COOKIE = "__Host-ew_session"
SIGN_IN_COOKIE = "__Host-ew_signin"
# A working day; then the identity platform is asked again (single sign-on there, or MFA when it is due).
WEB_SESSION_LIFETIME = timedelta(hours=8)
# 40 base62 characters carry ~238 bits.
WEB_SESSION = SecretKind(prefix="ewws_", entropy_chars=40)


@dataclass(frozen=True)
class WebSession:
    object_id: str
    tenant_id: str
    name: str
    principal_name: str
    groups: frozenset[str]
    wids: frozenset[str]


class WebSessions:
    def __init__(self, session: Session, clock: Clock, digester: SecretDigester) -> None:
        self._session = session
        self._clock = clock
        self._digester = digester

    def start(self, user: SignedInUser) -> str:
        """A new session for `user`; returns the cookie value, the only copy."""
        value = WEB_SESSION.mint()
        now = self._clock.now()
        self._session.add(
            WebSessionRow(
                digest=self._digester.digest(value),
                object_id=user.object_id,
                tenant_id=user.tenant_id,
                name=user.name[:256],
                principal_name=user.principal_name[:256],
                claims={"groups": list(user.groups), "wids": list(user.wids), "amr": list(user.amr)},
                created_at=now,
                expires_at=now + WEB_SESSION_LIFETIME,
            )
        )
        self._session.flush()
        return value

    def find(self, cookie: str | None) -> WebSession | None:
        """The live session a cookie names; a forged, ended or expired one is no session."""
        if not cookie or not WEB_SESSION.is_well_formed(cookie):
            return None
        row = self._session.get(WebSessionRow, self._digester.digest(cookie))
        if row is None or as_utc(row.expires_at) <= self._clock.now():
            return None
        claims = row.claims or {}
        return WebSession(
            object_id=row.object_id,
            tenant_id=row.tenant_id,
            name=row.name,
            principal_name=row.principal_name,
            groups=frozenset(str(g) for g in claims.get("groups", [])),
            wids=frozenset(str(w) for w in claims.get("wids", [])),
        )

    def end(self, cookie: str | None) -> None:
        """Sign-out: the session's row goes, so the cookie names nothing any more."""
        if cookie and WEB_SESSION.is_well_formed(cookie):
            self._session.execute(
                delete(WebSessionRow).where(WebSessionRow.digest == self._digester.digest(cookie))
            )

    def purge_expired(self) -> None:
        self._session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= self._clock.now()))
