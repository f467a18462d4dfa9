"""The ledger of what sign-ins hand out: authorization codes, device codes, refresh tokens and consent.

Every value handed to a client is minted (`kit.secrets`) and kept only as its keyed digest. One-time values
are consumed with a conditional UPDATE, so two concurrent redemptions cannot both succeed, and a replayed
code or refresh token revokes the family of refresh tokens it started (node-oidc-provider
`lib/helpers/grant_common.js`; OAuth 2.0 Security BCP, RFC 9700 section 4.14.2).

The ledger never commits: the caller's unit of work does. It raises `OAuthError` with Entra's codes; writes
made just before such an error (a revoked family, a poll's timestamp) are meant to be committed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, Update, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from entryway.identity.protocol.errors import (
    AUTHORIZATION_DECLINED,
    AUTHORIZATION_PENDING,
    BAD_VERIFICATION_CODE,
    CODE_ALREADY_REDEEMED,
    DEVICE_CODE_EXPIRED,
    GRANT_EXPIRED,
    INVALID_GRANT,
    MALFORMED_GRANT,
    MISSING_PARAMETER,
    PKCE_MISMATCH,
    REDIRECT_URI_CHANGED,
    REFRESH_TOKEN_INACTIVE,
    REFRESH_TOKEN_REVOKED,
    SIGN_IN_FREQUENCY,
    SLOW_DOWN,
    OAuthError,
)
from entryway.identity.protocol.errors import format_timestamp as _ts
from entryway.identity.protocol.model import Tenant, User
from entryway.identity.protocol.pkce import verifier_matches
from entryway.identity.protocol.sign_ins import PasswordCheck, SignIn
from entryway.kit.clock import Clock, as_utc
from entryway.kit.ids import new_guid
from entryway.kit.secrets import (
    AUTHORIZATION_CODE,
    DEVICE_CODE,
    REFRESH_TOKEN,
    SecretDigester,
    constant_time_equals,
)
from entryway.store.models import (
    AuthorizationCodeRow,
    DeviceCodeRow,
    PermissionGrantRow,
    RefreshTokenFamilyRow,
    RefreshTokenRow,
    UsedAssertionRow,
)

# Entra's authorization codes live about ten minutes; device codes fifteen, polled every five seconds.
CODE_LIFETIME = timedelta(minutes=10)
DEVICE_CODE_LIFETIME = timedelta(minutes=15)
DEVICE_POLL_INTERVAL = 5
# A poll sooner than half the interval after the previous one is answered `slow_down` (RFC 8628 3.5).
_SLOW_DOWN_FRACTION = 0.5
# User codes a person types: no vowels (no words), no 0/O/1/I confusion. 28**9 is about 10**13.
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ23456789"
USER_CODE_LENGTH = 9

PasswordChecker = Callable[[User, str, str], PasswordCheck]


@dataclass(frozen=True)
class NewDeviceAuthorization:
    device_code: str
    user_code: str
    expires_in: int
    interval: int


@dataclass(frozen=True)
class DeviceAuthorization:
    """A pending device sign-in, as the device page shows it."""

    user_code: str
    tenant_ref: str
    client_id: str
    scope: str
    claims: str | None
    expires_at: datetime


def normalize_user_code(user_code: str) -> str:
    """People type codes in any case, with spaces or dashes."""
    return "".join(c for c in user_code.upper() if c.isalnum())


def _rowcount(result: Any) -> int:
    return result.rowcount if isinstance(result, CursorResult) else 0


class Ledger:
    """Implements `identity.protocol.sign_ins.SignInPort` and `delegation.ConsentSource`."""

    def __init__(
        self,
        session: Session,
        clock: Clock,
        digester: SecretDigester,
        password_checker: PasswordChecker | None = None,
    ) -> None:
        self._session = session
        self._clock = clock
        self._digester = digester
        self._password_checker = password_checker

    def _execute(self, statement: Update) -> int:
        return _rowcount(self._session.execute(statement))

    # --- authorization codes ---------------------------------------------------------------------

    def issue_authorization_code(
        self,
        *,
        tenant_id: str,
        client_id: str,
        user_id: str,
        redirect_uri: str,
        scope: str,
        code_challenge: str | None,
        nonce: str | None,
        claims: str | None,
        auth_time: datetime,
        amr: Sequence[str],
    ) -> str:
        """A code for the client to redeem once, within ten minutes. Returned once, stored as a digest."""
        code = AUTHORIZATION_CODE.mint()
        now = self._clock.now()
        self._session.add(
            AuthorizationCodeRow(
                digest=self._digester.digest(code),
                tenant_id=tenant_id,
                client_id=client_id,
                user_id=user_id,
                redirect_uri=redirect_uri,
                scope=scope,
                code_challenge=code_challenge,
                nonce=nonce,
                claims=claims,
                auth_time=auth_time,
                amr=list(amr),
                created_at=now,
                expires_at=now + CODE_LIFETIME,
            )
        )
        self._session.flush()
        return code

    def _find_code(self, code: str) -> AuthorizationCodeRow:
        if not AUTHORIZATION_CODE.is_well_formed(code):
            raise OAuthError(MALFORMED_GRANT, detail="authorization code is not one of ours")
        row = self._session.get(AuthorizationCodeRow, self._digester.digest(code))
        if row is None:
            raise OAuthError(INVALID_GRANT, detail="unknown authorization code")
        return row

    def tenant_of_code(self, code: str) -> str:
        return self._find_code(code).tenant_id

    def redeem_authorization_code(
        self, code: str, *, client_id: str, redirect_uri: str | None, code_verifier: str | None
    ) -> SignIn:
        """RFC 6749 section 4.1.3 and RFC 7636 section 4.6. Every check runs before the code is consumed, so
        a failed redemption leaves it usable (except a replay, which also revokes what the code issued)."""
        row = self._find_code(code)
        now = self._clock.now()
        if row.consumed_at is not None:
            self._revoke_family(row.family_id, "authorization code replayed")
            raise OAuthError(CODE_ALREADY_REDEEMED, detail=f"code for user {row.user_id} replayed")
        if as_utc(row.expires_at) <= now:
            raise OAuthError(GRANT_EXPIRED, detail="authorization code expired")
        if row.client_id != client_id:
            raise OAuthError(INVALID_GRANT, detail="code issued to another client")
        if redirect_uri is None:
            raise OAuthError(MISSING_PARAMETER, name="redirect_uri")
        if redirect_uri != row.redirect_uri:
            raise OAuthError(REDIRECT_URI_CHANGED, detail=f"redeemed with {redirect_uri!r}")
        if row.code_challenge is not None and not verifier_matches(code_verifier, row.code_challenge):
            raise OAuthError(PKCE_MISMATCH, detail="code_verifier does not match")
        consumed = self._execute(
            update(AuthorizationCodeRow)
            .where(AuthorizationCodeRow.digest == row.digest, AuthorizationCodeRow.consumed_at.is_(None))
            .values(consumed_at=now)
        )
        if consumed != 1:  # a concurrent redemption won
            raise OAuthError(CODE_ALREADY_REDEEMED, detail="concurrent redemption")
        return SignIn(
            tenant_id=row.tenant_id,
            user_id=row.user_id,
            client_id=row.client_id,
            scope=row.scope,
            auth_time=as_utc(row.auth_time),
            amr=tuple(row.amr),
            nonce=row.nonce,
            code_digest=row.digest,
        )

    # --- device codes ----------------------------------------------------------------------------

    def start_device_authorization(
        self, *, tenant_ref: str, client_id: str, scope: str, claims: str | None
    ) -> NewDeviceAuthorization:
        """RFC 8628 section 3.2. The scope is remembered: the device's polls carry none."""
        now = self._clock.now()
        device_code = DEVICE_CODE.mint()
        user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
        self._session.add(
            DeviceCodeRow(
                digest=self._digester.digest(device_code),
                user_code_digest=self._digester.digest(user_code),
                tenant_ref=tenant_ref,
                client_id=client_id,
                scope=scope,
                claims=claims,
                created_at=now,
                expires_at=now + DEVICE_CODE_LIFETIME,
                interval=DEVICE_POLL_INTERVAL,
                status="pending",
                amr=[],
            )
        )
        self._session.flush()
        return NewDeviceAuthorization(
            device_code, user_code, int(DEVICE_CODE_LIFETIME.total_seconds()), DEVICE_POLL_INTERVAL
        )

    def _pending_by_user_code(self, user_code: str) -> DeviceCodeRow | None:
        digest = self._digester.digest(normalize_user_code(user_code))
        row = self._session.scalars(
            select(DeviceCodeRow).where(DeviceCodeRow.user_code_digest == digest)
        ).one_or_none()
        if row is None or row.status != "pending" or as_utc(row.expires_at) <= self._clock.now():
            return None
        return row

    def find_device_authorization(self, user_code: str) -> DeviceAuthorization | None:
        """A pending, unexpired device sign-in by the code the person typed."""
        row = self._pending_by_user_code(user_code)
        if row is None:
            return None
        return DeviceAuthorization(
            normalize_user_code(user_code),
            row.tenant_ref,
            row.client_id,
            row.scope,
            row.claims,
            as_utc(row.expires_at),
        )

    def approve_device_authorization(
        self, user_code: str, *, tenant_id: str, user_id: str, auth_time: datetime, amr: Sequence[str]
    ) -> bool:
        return self._settle_device_authorization(
            user_code,
            status="approved",
            tenant_id=tenant_id,
            user_id=user_id,
            auth_time=auth_time,
            amr=list(amr),
        )

    def decline_device_authorization(self, user_code: str) -> bool:
        return self._settle_device_authorization(user_code, status="declined")

    def _settle_device_authorization(self, user_code: str, **values: Any) -> bool:
        """Move a pending device sign-in to its outcome, once: a second answer finds nothing pending."""
        row = self._pending_by_user_code(user_code)
        if row is None:
            return False
        settled = self._execute(
            update(DeviceCodeRow)
            .where(DeviceCodeRow.digest == row.digest, DeviceCodeRow.status == "pending")
            .values(**values)
        )
        return settled == 1

    def _find_device_code(self, device_code: str, client_id: str | None) -> DeviceCodeRow:
        row = None
        if DEVICE_CODE.is_well_formed(device_code):
            row = self._session.get(DeviceCodeRow, self._digester.digest(device_code))
        if row is None or (client_id is not None and row.client_id != client_id.lower()):
            raise OAuthError(BAD_VERIFICATION_CODE, detail="unknown device code or another client's")
        return row

    def tenant_of_device_code(self, device_code: str, *, client_id: str | None) -> str:
        """Record the poll; the tenant of an approved code, or the RFC 8628 section 3.5 error."""
        row = self._find_device_code(device_code, client_id)
        now = self._clock.now()
        if row.status == "consumed":
            raise OAuthError(INVALID_GRANT, detail="device code already redeemed")
        if as_utc(row.expires_at) <= now:
            raise OAuthError(DEVICE_CODE_EXPIRED, detail="device code expired")
        if row.status == "declined":
            raise OAuthError(AUTHORIZATION_DECLINED, detail="the user declined")
        if row.status == "approved" and row.tenant_id is not None:
            return row.tenant_id
        previous = None if row.last_polled_at is None else as_utc(row.last_polled_at)
        row.last_polled_at = now
        self._session.flush()
        if previous is not None and (now - previous).total_seconds() < row.interval * _SLOW_DOWN_FRACTION:
            raise OAuthError(SLOW_DOWN, detail="polled too soon")
        raise OAuthError(AUTHORIZATION_PENDING, detail="not yet approved")

    def redeem_device_code(self, device_code: str, *, client_id: str) -> SignIn:
        row = self._find_device_code(device_code, client_id)
        consumed = self._execute(
            update(DeviceCodeRow)
            .where(DeviceCodeRow.digest == row.digest, DeviceCodeRow.status == "approved")
            .values(status="consumed")
        )
        if consumed != 1 or row.tenant_id is None or row.user_id is None or row.auth_time is None:
            raise OAuthError(INVALID_GRANT, detail="device code not approved or already redeemed")
        return SignIn(
            tenant_id=row.tenant_id,
            user_id=row.user_id,
            client_id=row.client_id,
            scope=row.scope,
            auth_time=as_utc(row.auth_time),
            amr=tuple(row.amr),
        )

    # --- refresh tokens --------------------------------------------------------------------------

    def issue_refresh_token(self, sign_in: SignIn, *, inactivity_seconds: int) -> str:
        now = self._clock.now()
        family_id = sign_in.family_id
        if family_id is None:
            family_id = new_guid()
            self._session.add(
                RefreshTokenFamilyRow(
                    id=family_id,
                    tenant_id=sign_in.tenant_id,
                    client_id=sign_in.client_id,
                    user_id=sign_in.user_id,
                    scope=sign_in.scope,
                    auth_time=sign_in.auth_time,
                    amr=list(sign_in.amr),
                    created_at=now,
                )
            )
            self._session.flush()
            if sign_in.code_digest is not None:
                # Remembered so that a replay of the code revokes what its first redemption issued.
                self._execute(
                    update(AuthorizationCodeRow)
                    .where(AuthorizationCodeRow.digest == sign_in.code_digest)
                    .values(family_id=family_id)
                )
        token = REFRESH_TOKEN.mint()
        self._session.add(
            RefreshTokenRow(
                digest=self._digester.digest(token),
                family_id=family_id,
                created_at=now,
                expires_at=now + timedelta(seconds=inactivity_seconds),
            )
        )
        self._session.flush()
        return token

    def _find_refresh_token(self, token: str) -> tuple[RefreshTokenRow, RefreshTokenFamilyRow]:
        if not REFRESH_TOKEN.is_well_formed(token):
            raise OAuthError(MALFORMED_GRANT, detail="refresh token is not one of ours")
        row = self._session.get(RefreshTokenRow, self._digester.digest(token))
        family = None if row is None else self._session.get(RefreshTokenFamilyRow, row.family_id)
        if row is None or family is None:
            raise OAuthError(INVALID_GRANT, detail="unknown refresh token")
        return row, family

    def tenant_of_refresh_token(self, token: str) -> str:
        return self._find_refresh_token(token)[1].tenant_id

    def redeem_refresh_token(self, token: str, *, client_id: str, tenant: Tenant) -> SignIn:
        row, family = self._find_refresh_token(token)
        now = self._clock.now()
        issued = _ts(as_utc(family.created_at))
        if family.revoked_at is not None:
            raise OAuthError(
                REFRESH_TOKEN_REVOKED, detail=f"family revoked: {family.revoked_reason}", issued=issued
            )
        if row.used_at is not None:
            self._revoke_family(family.id, "refresh token replayed")
            raise OAuthError(REFRESH_TOKEN_REVOKED, detail="rotated refresh token replayed", issued=issued)
        if family.client_id != client_id:
            raise OAuthError(INVALID_GRANT, detail="refresh token issued to another client")
        if as_utc(row.expires_at) <= now:
            inactive = now - as_utc(row.created_at)
            raise OAuthError(
                REFRESH_TOKEN_INACTIVE,
                detail="refresh token inactive",
                issued=_ts(as_utc(row.created_at)),
                inactive=f"{inactive.days}.{inactive.seconds // 3600:02}:{inactive.seconds // 60 % 60:02}:00",
            )
        frequency = tenant.sign_in_frequency_seconds
        if frequency is not None and (now - as_utc(family.auth_time)).total_seconds() > frequency:
            raise OAuthError(
                SIGN_IN_FREQUENCY,
                detail="sign-in frequency exceeded",
                issued=_ts(as_utc(family.auth_time)),
                lifetime=str(timedelta(seconds=frequency)),
            )
        used = self._execute(
            update(RefreshTokenRow)
            .where(RefreshTokenRow.digest == row.digest, RefreshTokenRow.used_at.is_(None))
            .values(used_at=now)
        )
        if used != 1:  # a concurrent redemption of the same token: treat as the replay it is
            self._revoke_family(family.id, "refresh token redeemed concurrently")
            raise OAuthError(REFRESH_TOKEN_REVOKED, detail="concurrent refresh", issued=issued)
        return SignIn(
            tenant_id=family.tenant_id,
            user_id=family.user_id,
            client_id=family.client_id,
            scope=family.scope,
            auth_time=as_utc(family.auth_time),
            amr=tuple(family.amr),
            family_id=family.id,
        )

    def _revoke_family(self, family_id: str | None, reason: str) -> None:
        if family_id is None:
            return
        self._execute(
            update(RefreshTokenFamilyRow)
            .where(RefreshTokenFamilyRow.id == family_id, RefreshTokenFamilyRow.revoked_at.is_(None))
            .values(revoked_at=self._clock.now(), revoked_reason=reason)
        )

    def revoke_refresh_tokens(self, *, user_id: str, reason: str = "revoked by administrator") -> int:
        """Sign the user out of every app: what "revoke sessions" (and a password reset) does in Entra."""
        return self._execute(
            update(RefreshTokenFamilyRow)
            .where(RefreshTokenFamilyRow.user_id == user_id, RefreshTokenFamilyRow.revoked_at.is_(None))
            .values(revoked_at=self._clock.now(), revoked_reason=reason)
        )

    # --- client assertions ------------------------------------------------------------------------

    def mark_assertion_used(
        self, *, client_id: str, issuer: str, jti: str, expires_at: datetime, assertion: str
    ) -> bool:
        """Record an assertion's `jti` until it expires. False when another assertion already used it.

        The identical assertion may be presented again until it expires: msal signs one and sends it for nine
        minutes (its `AutoRefresher`), so Entra evidently does not spend a `jti` on first use; what is refused
        is a second assertion carrying the same `jti`. The key is a digest of client, issuer and jti, so one
        client's jti never collides with another's. Expired records are dropped on the way."""
        now = self._clock.now()
        self._session.execute(delete(UsedAssertionRow).where(UsedAssertionRow.expires_at < now))
        digest = self._digester.digest(f"assertion|{client_id}|{issuer}|{jti}")
        fingerprint = self._digester.digest(f"assertion-body|{assertion}")
        seen = self._session.get(UsedAssertionRow, digest)
        if seen is not None:
            return seen.assertion_digest is not None and constant_time_equals(
                seen.assertion_digest, fingerprint
            )
        try:
            with self._session.begin_nested():  # a savepoint: losing the race leaves the transaction usable
                self._session.add(
                    UsedAssertionRow(digest=digest, assertion_digest=fingerprint, expires_at=expires_at)
                )
        except IntegrityError:  # a concurrent use of the same jti won
            return False
        return True

    # --- passwords (ROPC) ------------------------------------------------------------------------

    def check_password(self, user: User, password: str, source: str) -> PasswordCheck:
        if self._password_checker is None:
            raise RuntimeError("this ledger was built without a password checker")
        return self._password_checker(user, password, source)

    # --- consent (oauth2PermissionGrants) ----------------------------------------------------------

    def _grants(self, tenant_id: str, client_id: str, resource_app_id: str) -> list[PermissionGrantRow]:
        return list(
            self._session.scalars(
                select(PermissionGrantRow).where(
                    PermissionGrantRow.tenant_id == tenant_id,
                    PermissionGrantRow.client_app_id == client_id,
                    PermissionGrantRow.resource_app_id == resource_app_id,
                )
            )
        )

    def consented_scopes(
        self, *, tenant_id: str, client_id: str, user_id: str, resource_app_id: str
    ) -> frozenset[str]:
        """Scopes consented by the user, or by an administrator for every user (principal None)."""
        scopes: set[str] = set()
        for grant in self._grants(tenant_id, client_id, resource_app_id):
            if grant.principal_id is None or grant.principal_id == user_id:
                scopes.update(grant.scopes)
        return frozenset(scopes)

    def has_consent(
        self, *, tenant_id: str, client_id: str, user_id: str, resource_app_id: str, scopes: Sequence[str]
    ) -> bool:
        consented = self.consented_scopes(
            tenant_id=tenant_id, client_id=client_id, user_id=user_id, resource_app_id=resource_app_id
        )
        return set(scopes) <= consented

    def grant_consent(
        self, *, tenant_id: str, client_id: str, user_id: str, resource_app_id: str, scopes: Sequence[str]
    ) -> None:
        """The user's own consent, added to whatever they consented before."""
        for grant in self._grants(tenant_id, client_id, resource_app_id):
            if grant.principal_id == user_id:
                grant.scopes = sorted(set(grant.scopes) | set(scopes))
                self._session.flush()
                return
        self._session.add(
            PermissionGrantRow(
                id=new_guid(),
                tenant_id=tenant_id,
                client_app_id=client_id,
                principal_id=user_id,
                resource_app_id=resource_app_id,
                scopes=sorted(set(scopes)),
                created_at=self._clock.now(),
            )
        )
        self._session.flush()
