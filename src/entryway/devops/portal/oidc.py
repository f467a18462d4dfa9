"""The DevOps origin as a confidential OpenID Connect client of the identity platform (first_party.DEVOPS_WEB):
authorization code with PKCE (RFC 7636, S256), `state` bound to the browser, `nonce` checked in the ID token
(OpenID Connect Core 1.0 sections 3.1.2.1 and 3.1.3.7), client_secret_post at the token endpoint.

Only HTTP and JWT here: the pages decide what a signed-in person may do. The ID token is verified like any
token the DevOps service takes (devops/auth/verifier.py): algorithm pinned, keys from the identity platform's
JWKS, audience and issuer exact, time claims against the process clock with a named leeway.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
from jwt.exceptions import InvalidTokenError

from entryway.devops.auth.jwks import PINNED_ALGORITHM, IdentityKeySource, decode_options
from entryway.identity.directory.first_party import DEVOPS_WEB
from entryway.kit.browser import SealedState
from entryway.kit.clock import Clock
from entryway.kit.secrets import SecretDigester, constant_time_equals

# What the web pages need of the person: who they are. OpenID Connect scopes only, so no consent is due.
SIGN_IN_SCOPE = "openid profile"
REDIRECT_PATH = DEVOPS_WEB.devops_redirect_paths[0]  # /_signedin
SIGNED_OUT_PATH = DEVOPS_WEB.devops_redirect_paths[1]  # /_signedout
# How long a person has to get through the identity platform's pages.
SIGN_IN_LIFETIME = timedelta(minutes=15)
# Microsoft.IdentityModel's default clock skew, as for access tokens.
CLOCK_SKEW_LEEWAY_SECONDS = 300
REQUIRED_CLAIMS = ("aud", "iss", "exp", "iat", "tid", "oid", "nonce")
_PURPOSE = "entryway/devops-signin/v1:"
_TOKEN_TIMEOUT_SECONDS = 15.0


class SignInFailed(Exception):
    """The sign-in cannot be completed; the message is for the log, the person sees a generic page."""


@dataclass(frozen=True)
class PendingSignIn:
    """What the browser's sign-in cookie holds between the redirect out and the redirect back."""

    tenant_id: str
    reply_to: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class SignedInUser:
    object_id: str
    tenant_id: str
    name: str
    principal_name: str
    groups: tuple[str, ...]
    wids: tuple[str, ...]
    amr: tuple[str, ...]


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


class OidcClient:
    def __init__(
        self,
        *,
        identity_origin: str,
        devops_origin: str,
        client_secret: str,
        digester: SecretDigester,
        clock: Clock,
    ) -> None:
        self._identity = identity_origin.rstrip("/")
        self.redirect_uri = devops_origin.rstrip("/") + REDIRECT_PATH
        self.signed_out_uri = devops_origin.rstrip("/") + SIGNED_OUT_PATH
        self._secret = client_secret
        self._clock = clock
        self._sealed = SealedState(digester, clock, SIGN_IN_LIFETIME, _PURPOSE)
        self._keys: IdentityKeySource | None = None

    # --- the redirect out ---------------------------------------------------------------------------

    def begin(self, tenant_id: str, reply_to: str) -> tuple[str, str]:
        """The authorization request URL and the value of the browser's sign-in cookie.

        `state` is random; the cookie is sealed *to that state*, so the answer is taken only in the browser
        that started the sign-in (RFC 6749 section 10.12). The PKCE verifier and the nonce stay in the
        cookie, never in a URL."""
        state = secrets.token_urlsafe(32)
        pending = PendingSignIn(tenant_id, reply_to, secrets.token_urlsafe(32), secrets.token_urlsafe(48))
        cookie = self._sealed.seal(
            {
                "tenant_id": pending.tenant_id,
                "reply_to": pending.reply_to,
                "nonce": pending.nonce,
                "code_verifier": pending.code_verifier,
            },
            state,
        )
        query = urlencode(
            {
                "client_id": DEVOPS_WEB.app_id,
                "response_type": "code",
                "redirect_uri": self.redirect_uri,
                "response_mode": "query",
                "scope": SIGN_IN_SCOPE,
                "state": state,
                "nonce": pending.nonce,
                "code_challenge": _s256(pending.code_verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{self._identity}/{tenant_id}/oauth2/v2.0/authorize?{query}", cookie

    def pending(self, cookie: str | None, state: str | None) -> PendingSignIn | None:
        """The sign-in this browser started with `state`; None when the cookie is missing, forged, expired,
        or was sealed to another state (another tab, another browser, a replayed answer)."""
        data = self._sealed.open(cookie, state)
        if data is None:
            return None
        try:
            return PendingSignIn(
                str(data["tenant_id"]), str(data["reply_to"]), str(data["nonce"]), str(data["code_verifier"])
            )
        except KeyError:
            return None

    def logout_url(self, tenant_id: str) -> str:
        query = urlencode({"client_id": DEVOPS_WEB.app_id, "post_logout_redirect_uri": self.signed_out_uri})
        return f"{self._identity}/{tenant_id}/oauth2/v2.0/logout?{query}"

    # --- the redirect back --------------------------------------------------------------------------

    async def redeem(self, http: httpx.AsyncClient, pending: PendingSignIn, code: str) -> SignedInUser:
        """Redeem the code at the token endpoint (client_secret_post, code_verifier) and verify the ID token."""
        try:
            response = await http.post(
                f"{self._identity}/{pending.tenant_id}/oauth2/v2.0/token",
                data={
                    "grant_type": "authorization_code",
                    "client_id": DEVOPS_WEB.app_id,
                    "client_secret": self._secret,
                    "code": code,
                    "redirect_uri": self.redirect_uri,
                    "code_verifier": pending.code_verifier,
                    "scope": SIGN_IN_SCOPE,
                },
                timeout=_TOKEN_TIMEOUT_SECONDS,
            )
        except httpx.HTTPError as exc:
            raise SignInFailed(f"token endpoint unreachable: {exc!r}") from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise SignInFailed(f"token endpoint answered {response.status_code} without JSON") from exc
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error_description", "") if isinstance(body, dict) else ""
            raise SignInFailed(f"token endpoint answered {response.status_code}: {str(error)[:300]}")
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("no id_token in the token response")
        if self._keys is None:
            self._keys = IdentityKeySource(self._identity, http, self._clock)
        claims = await self.verify_id_token(self._keys, id_token, pending)
        return SignedInUser(
            object_id=str(claims["oid"]),
            tenant_id=str(claims["tid"]),
            name=str(claims.get("name") or claims.get("preferred_username") or ""),
            principal_name=str(claims.get("preferred_username") or ""),
            groups=_strings(claims.get("groups")),
            wids=_strings(claims.get("wids")),
            amr=_strings(claims.get("amr")),
        )

    async def verify_id_token(
        self, keys: IdentityKeySource, token: str, pending: PendingSignIn
    ) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except InvalidTokenError as exc:
            raise SignInFailed(f"unreadable id_token header: {exc}") from exc
        if header.get("alg") != PINNED_ALGORITHM:
            raise SignInFailed(f"id_token algorithm {header.get('alg')!r} is not {PINNED_ALGORITHM}")
        kid = header.get("kid")
        key = await keys.find_key(pending.tenant_id, kid) if isinstance(kid, str) and kid else None
        if key is None:
            raise SignInFailed(f"id_token kid {kid!r} is not published by the identity platform")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[PINNED_ALGORITHM],
                audience=DEVOPS_WEB.app_id,
                issuer=f"{self._identity}/{pending.tenant_id}/v2.0",
                options=decode_options(REQUIRED_CLAIMS),
            )
        except InvalidTokenError as exc:
            raise SignInFailed(f"id_token refused: {type(exc).__name__}: {exc}") from exc
        now = self._clock.timestamp()
        checks = (
            ("nonce", constant_time_equals(str(claims["nonce"]), pending.nonce)),
            ("tid", claims["tid"] == pending.tenant_id),
            ("exp", _number(claims["exp"]) + CLOCK_SKEW_LEEWAY_SECONDS > now),
            ("iat", _number(claims["iat"]) - CLOCK_SKEW_LEEWAY_SECONDS <= now),
        )
        failed = [name for name, passed in checks if not passed]
        if failed:
            raise SignInFailed(f"id_token checks failed: {', '.join(failed)}")
        return claims


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float("nan")


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()
