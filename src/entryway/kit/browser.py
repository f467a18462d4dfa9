"""What the server-rendered pages of both origins share: CSRF tokens and sealed state bound to one browser,
and the response headers every page carries (CSP with a per-response script nonce, no framing, no caching).

Each origin picks its own purpose strings, so a token minted by one page family is never accepted by another.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import timedelta
from typing import Any

import orjson
from starlette.responses import Response

from entryway.kit.clock import Clock
from entryway.kit.secrets import SecretDigester, constant_time_equals


def new_script_nonce() -> str:
    return secrets.token_urlsafe(16)


def csrf_token(digester: SecretDigester, purpose: str, binding: str) -> str:
    """The CSRF token of a browser: an HMAC of a value only that browser holds (a cookie another origin can
    neither read nor set)."""
    return digester.digest(purpose + binding)


def csrf_valid(digester: SecretDigester, purpose: str, binding: str | None, token: str | None) -> bool:
    if not binding or not token:
        return False
    return constant_time_equals(csrf_token(digester, purpose, binding), token)


class SealedState:
    """State the server hands the browser and must get back unchanged: signed (HMAC under the digest key,
    with its own purpose prefix), bound to one browser value, and with an expiry. A reader believes nothing
    it did not verify."""

    def __init__(self, digester: SecretDigester, clock: Clock, lifetime: timedelta, purpose: str) -> None:
        self._digester = digester
        self._clock = clock
        self._lifetime = lifetime
        self._purpose = purpose

    def seal(self, data: dict[str, Any], binding: str) -> str:
        payload = dict(data)
        payload["_exp"] = int(self._clock.timestamp() + self._lifetime.total_seconds())
        payload["_ctx"] = self._digester.digest(self._purpose + "ctx:" + binding)
        body = base64.urlsafe_b64encode(orjson.dumps(payload)).decode("ascii").rstrip("=")
        return body + "." + self._digester.digest(self._purpose + body)

    def open(self, token: str | None, binding: str | None) -> dict[str, Any] | None:
        """The state, or None when the token is forged, expired, or was issued to another browser."""
        if not token or not binding or "." not in token:
            return None
        body, _, mac = token.rpartition(".")
        if not constant_time_equals(self._digester.digest(self._purpose + body), mac):
            return None
        try:
            payload = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (binascii.Error, ValueError):
            return None
        if not isinstance(payload, dict):
            return None
        bound = constant_time_equals(
            str(payload.pop("_ctx", "")), self._digester.digest(self._purpose + "ctx:" + binding)
        )
        expires = payload.pop("_exp", 0)
        fresh = isinstance(expires, int) and expires >= self._clock.timestamp()
        return payload if bound and fresh else None


def page_security_headers(response: Response, script_nonce: str) -> Response:
    """The headers of every server-rendered page: scripts only with this response's nonce, styles and
    images from the origin, never framed, never cached, no referrer."""
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'nonce-{script_nonce}'; style-src 'self'; "
        "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store, no-cache"
    response.headers["Pragma"] = "no-cache"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
