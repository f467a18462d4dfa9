"""Verification of Entra access tokens presented to the DevOps service.

Every option is spelled out (warehouse `oidc/services.py`): the algorithm is pinned, the audience and the
issuer are exact, time claims are checked against the process clock with a named leeway.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.exceptions import InvalidTokenError

from entryway.devops.auth.jwks import PINNED_ALGORITHM, IdentityKeySource, decode_options
from entryway.identity.directory.first_party import AZURE_DEVOPS
from entryway.kit.clock import Clock

# Microsoft.IdentityModel's default clock skew.
CLOCK_SKEW_LEEWAY_SECONDS = 300
# Entra keeps a trailing slash in `aud` when asked for `https://app.vssps.visualstudio.com//.default` (az
# appends `/.default` to whatever resource it is given); Microsoft.IdentityModel ignores that slash by default
# (TokenValidationParameters.IgnoreTrailingSlashWhenValidatingAudience).
ACCEPTED_AUDIENCES = (
    AZURE_DEVOPS.app_id,
    *AZURE_DEVOPS.identifier_uris,
    *(f"{uri}/" for uri in AZURE_DEVOPS.identifier_uris),
)
REQUIRED_CLAIMS = ("aud", "iss", "exp", "nbf", "iat", "tid", "oid")
VERIFIED_CACHE_SIZE = 10_000


class TokenRejected(Exception):
    """The token is not acceptable; the reason is for the log and the audit trail, not the caller."""


@dataclass(frozen=True)
class VerifiedToken:
    claims: dict[str, Any]

    @property
    def object_id(self) -> str:
        return str(self.claims["oid"])

    @property
    def tenant_id(self) -> str:
        return str(self.claims["tid"])

    @property
    def groups(self) -> frozenset[str]:
        """The `groups` claim's object ids; empty without one (none, or Entra's overage marker instead)."""
        return _string_set(self.claims.get("groups"))

    @property
    def roles(self) -> frozenset[str]:
        """The `wids` claim: the directory role template ids the user holds."""
        return _string_set(self.claims.get("wids"))

    @property
    def is_app_only(self) -> bool:
        return self.claims.get("idtyp") == "app" or ("scp" not in self.claims and "roles" not in self.claims)


def _string_set(value: Any) -> frozenset[str]:
    if not isinstance(value, list):
        return frozenset()
    return frozenset(v for v in value if isinstance(v, str))


def _time_checks(leeway: int) -> tuple[tuple[str, Callable[[float, float], bool]], ...]:
    """(claim, passes(claim value, now)) — read as a table."""
    return (
        ("exp", lambda exp, now: now < exp + leeway),
        ("nbf", lambda nbf, now: nbf - leeway <= now),
        ("iat", lambda iat, now: iat - leeway <= now),
    )


class EntraTokenVerifier:
    def __init__(self, authority: str, keys: IdentityKeySource, clock: Clock) -> None:
        self._authority = authority.rstrip("/")
        self._keys = keys
        self._clock = clock
        self._time_checks = _time_checks(CLOCK_SKEW_LEEWAY_SECONDS)
        # Claims of tokens already verified, by digest and tenant: repeat requests skip the RSA check.
        self._verified: OrderedDict[tuple[bytes, str], dict[str, Any]] = OrderedDict()

    def issuers(self, tenant_id: str) -> tuple[str, str]:
        """The v1 (`sts.windows.net` style) and v2 issuers of a tenant."""
        return f"{self._authority}/{tenant_id}/", f"{self._authority}/{tenant_id}/v2.0"

    async def verify(self, token: str, tenant_id: str) -> VerifiedToken:
        cache_key = (hashlib.sha256(token.encode()).digest(), tenant_id)
        claims = self._verified.get(cache_key)
        if claims is None:
            claims = await self._verify_signature_and_claims(token, tenant_id)
            self._verified[cache_key] = claims
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        self._check_times(claims)
        return VerifiedToken(claims)

    async def _verify_signature_and_claims(self, token: str, tenant_id: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except InvalidTokenError as exc:
            raise TokenRejected(f"unreadable header: {exc}") from exc
        if header.get("alg") != PINNED_ALGORITHM:
            raise TokenRejected(f"algorithm {header.get('alg')!r} is not {PINNED_ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("no kid in header")
        key = await self._keys.find_key(tenant_id, kid)
        if key is None:
            raise TokenRejected(f"kid {kid} is not published by the identity platform")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[PINNED_ALGORITHM],
                audience=list(ACCEPTED_AUDIENCES),
                issuer=list(self.issuers(tenant_id)),
                options=decode_options(REQUIRED_CLAIMS),
            )
        except InvalidTokenError as exc:
            raise TokenRejected(f"{type(exc).__name__}: {exc}") from exc
        if claims.get("tid") != tenant_id:
            raise TokenRejected(f"tid {claims.get('tid')} is not the organization's tenant")
        return claims

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self._clock.timestamp()
        for name, passes in self._time_checks:
            value = claims.get(name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TokenRejected(f"{name} is not a number")
            if not passes(float(value), now):
                raise TokenRejected(f"{name} check failed at {int(now)} ({name}={value})")
