"""Who a person is at sign-in: finding the account, checking its password under smart lockout, and its
second factor (TOTP, RFC 6238). Never commits: the caller's unit of work does.

The ROPC grant checks passwords through the same lockout:
`Ledger(..., password_checker=Accounts(session, clock, totp_key).check_password)`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session

from entryway.identity.protocol.model import User
from entryway.identity.protocol.sign_ins import PasswordCheck
from entryway.kit.clock import Clock, as_utc
from entryway.kit.passwords import hash_password, verify_password
from entryway.kit.secrets import constant_time_equals
from entryway.store.models import (
    ApplicationRow,
    ServicePrincipalRow,
    SignInFailureRow,
    TenantDomainRow,
    TenantRow,
    UserRow,
)

# Entra smart lockout defaults: 10 failures, then a 60-second lockout that grows with each further lockout.
LOCKOUT_THRESHOLD = 10
LOCKOUT_SECONDS = 60
LOCKOUT_MAX_SECONDS = 24 * 3600
# RFC 6238: 30-second steps, 6 digits; one step either side tolerates a drifting phone clock.
TOTP_STEP_SECONDS = 30
TOTP_VALID_WINDOW = 1
_NONCE_BYTES = 12
# The lockout row that counts wrong one-time codes of an account (sources are IP addresses: no clash).
_TOTP_SOURCE = "totp"
_SOURCE_MAX = 64

# Microsoft's first-party public clients (Azure CLI, Visual Studio): they never hold a secret.
FIRST_PARTY_PUBLIC_CLIENTS = frozenset(
    {"04b07795-8ddb-461a-bbee-02f9e1bf7b46", "872cd9fa-d31f-45e0-9eab-6e460a02d1f1"}
)
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

# Verified against when the account has no password, so that a missing account costs what a wrong password does.
_DUMMY_HASH = hash_password("entryway-no-such-password")


@dataclass(frozen=True)
class ClientApp:
    """An application as the authorize endpoint needs it: where it may be sent, whether it is public."""

    app_id: str
    display_name: str
    public_client: bool
    redirect_uris: tuple[str, ...]

    def accepts_redirect_uri(self, uri: str) -> bool:
        return any(redirect_uri_matches(registered, uri) for registered in self.redirect_uris)


def redirect_uri_matches(registered: str, requested: str) -> bool:
    """Exact match, except that a loopback redirect URI accepts any port (RFC 8252 section 7.3)."""
    if registered == requested:
        return True
    want, got = urlsplit(registered), urlsplit(requested)
    try:
        want.port, got.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        return False
    if want.scheme != "http" or got.scheme != "http" or got.username or got.password or got.fragment:
        return False
    if want.hostname not in _LOOPBACK_HOSTS or want.hostname != got.hostname:
        return False
    return (want.path or "/") == (got.path or "/") and want.query == got.query


class Accounts:
    def __init__(self, session: Session, clock: Clock, totp_key: bytes) -> None:
        if len(totp_key) != 32:
            raise ValueError("the TOTP key must be 32 bytes (AES-256-GCM)")
        self._session = session
        self._clock = clock
        self._aead = AESGCM(totp_key)

    # --- directory reads ----------------------------------------------------------------------------

    def find_user(self, upn: str, tenant_id: str | None = None) -> UserRow | None:
        """A user by UPN (case-insensitive), in `tenant_id` when given."""
        query = select(UserRow).where(UserRow.user_principal_name == upn.strip().lower())
        if tenant_id is not None:
            query = query.where(UserRow.tenant_id == tenant_id)
        return self._session.scalars(query).first()

    def find_user_by_id(self, object_id: str) -> UserRow | None:
        return self._session.get(UserRow, object_id)

    def find_tenant(self, tenant_id: str) -> TenantRow | None:
        return self._session.get(TenantRow, tenant_id)

    def find_home_tenant(self, upn: str) -> TenantRow | None:
        """The tenant that owns the UPN's domain: how `common` and `organizations` find a user's directory."""
        _, _, domain = upn.strip().lower().rpartition("@")
        if not domain:
            return None
        row = self._session.get(TenantDomainRow, domain)
        return None if row is None else self._session.get(TenantRow, row.tenant_id)

    def find_client_app(self, app_id: str) -> ClientApp | None:
        app = self._session.scalars(select(ApplicationRow).where(ApplicationRow.app_id == app_id)).first()
        if app is None:
            return None
        return ClientApp(
            app_id=app.app_id,
            display_name=app.display_name,
            public_client=bool(app.public_client) or app.app_id in FIRST_PARTY_PUBLIC_CLIENTS,
            redirect_uris=tuple(app.redirect_uris or ()),
        )

    def all_redirect_uris(self) -> list[str]:
        """Every redirect URI any application registered (where sign-out may send a browser)."""
        uris: list[str] = []
        for registered in self._session.scalars(select(ApplicationRow.redirect_uris)):
            uris.extend(registered or ())
        return uris

    def has_service_principal(self, tenant_id: str, app_id: str) -> bool:
        query = select(ServicePrincipalRow.account_enabled).where(
            ServicePrincipalRow.tenant_id == tenant_id, ServicePrincipalRow.app_id == app_id
        )
        return bool(self._session.scalars(query).first())

    # --- passwords under smart lockout ------------------------------------------------------------------

    def check_password(self, user: User, password: str, source: str) -> PasswordCheck:
        """`verify_password` for the protocol's view of a user: the ROPC grant's `PasswordChecker`."""
        return self.verify_password(self.find_user_by_id(user.object_id), password, source)

    def verify_password(self, user: UserRow | None, password: str, source: str) -> PasswordCheck:
        """Check a password, counting failures per (account, source) as Entra's smart lockout does.

        While locked, no password is even tried, so a locked account reveals nothing about its password.
        The lockout lasts 60 s and doubles with each further lockout; a successful sign-in resets it.
        """
        if user is None:
            verify_password(_DUMMY_HASH, password)
            return PasswordCheck.WRONG
        now = self._clock.now()
        key = (user.object_id, source[:_SOURCE_MAX])
        failure = self._session.get(SignInFailureRow, key)
        if failure is not None and failure.locked_until is not None and as_utc(failure.locked_until) > now:
            return PasswordCheck.LOCKED
        if not verify_password(user.password_hash or _DUMMY_HASH, password) or user.password_hash is None:
            self._record_failure(failure, key, now)
            return PasswordCheck.WRONG
        if failure is not None:
            self._session.delete(failure)
        if not user.account_enabled:
            return PasswordCheck.DISABLED
        return PasswordCheck.OK

    def _record_failure(self, failure: SignInFailureRow | None, key: tuple[str, str], now: datetime) -> None:
        if failure is None:
            failure = SignInFailureRow(user_id=key[0], source=key[1], failures=0, last_failure_at=now)
            self._session.add(failure)
        failure.failures += 1
        failure.last_failure_at = now
        if failure.failures % LOCKOUT_THRESHOLD == 0:
            lockouts = failure.failures // LOCKOUT_THRESHOLD
            seconds = min(LOCKOUT_SECONDS * 2 ** min(lockouts - 1, 20), LOCKOUT_MAX_SECONDS)
            failure.locked_until = now + timedelta(seconds=seconds)
        self._session.flush()

    # --- MFA --------------------------------------------------------------------------------------------

    @staticmethod
    def mfa_required(user: UserRow, tenant: TenantRow) -> bool:
        """Per user when set, else the tenant's security default."""
        if user.mfa_required is not None:
            return bool(user.mfa_required)
        return bool(tenant.mfa_required_default)

    @staticmethod
    def totp_enrolled(user: UserRow) -> bool:
        return user.totp_enrolled_at is not None and user.totp_secret_encrypted is not None

    def start_totp_enrollment(self, user: UserRow) -> str:
        """Give an unenrolled user a new shared secret (base32, shown once); enrollment ends with a code."""
        if self.totp_enrolled(user):
            raise ValueError("the user already has an authenticator")
        secret = pyotp.random_base32()
        nonce = os.urandom(_NONCE_BYTES)
        user.totp_secret_encrypted = nonce + self._aead.encrypt(
            nonce, secret.encode("ascii"), user.object_id.encode("ascii")
        )
        user.totp_last_step = None
        self._session.flush()
        return secret

    def pending_totp_secret(self, user: UserRow) -> str | None:
        """The secret of an enrollment not confirmed yet, to show it again."""
        if self.totp_enrolled(user):
            return None
        return self._totp_secret(user)

    def verify_totp(self, user: UserRow, code: str) -> PasswordCheck:
        """Accept a 6-digit code of the current step or one either side, each step at most once
        (RFC 6238 section 5.2). Confirms a pending enrollment.

        Wrong codes count against the account whatever their source (a million codes are quickly tried
        from many addresses) and lock the second factor as wrong passwords lock the password.
        """
        now = self._clock.now()
        key = (user.object_id, _TOTP_SOURCE)
        failure = self._session.get(SignInFailureRow, key)
        if failure is not None and failure.locked_until is not None and as_utc(failure.locked_until) > now:
            return PasswordCheck.LOCKED
        matched = self._matching_step(user, code)
        if matched is None:
            self._record_failure(failure, key, now)
            return PasswordCheck.WRONG
        if failure is not None:
            self._session.delete(failure)
        user.totp_last_step = matched
        if user.totp_enrolled_at is None:
            user.totp_enrolled_at = now
        self._session.flush()
        return PasswordCheck.OK

    def _matching_step(self, user: UserRow, code: str) -> int | None:
        secret = self._totp_secret(user)
        code = code.replace(" ", "").strip()
        if secret is None or len(code) != 6 or not code.isdigit():
            return None
        totp = pyotp.TOTP(secret, digits=6, interval=TOTP_STEP_SECONDS)
        current = int(self._clock.timestamp() // TOTP_STEP_SECONDS)
        last = user.totp_last_step if user.totp_last_step is not None else -1
        matched: int | None = None
        for step in range(current - TOTP_VALID_WINDOW, current + TOTP_VALID_WINDOW + 1):
            # Compare every candidate, so the time taken does not say which step matched.
            if constant_time_equals(totp.generate_otp(step), code) and step > last and matched is None:
                matched = step
        return matched

    def _totp_secret(self, user: UserRow) -> str | None:
        blob = user.totp_secret_encrypted
        if not blob or len(blob) <= _NONCE_BYTES:
            return None
        try:
            plain = self._aead.decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], user.object_id.encode("ascii")
            )
        except InvalidTag:
            return None
        return plain.decode("ascii")
