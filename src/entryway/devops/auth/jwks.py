"""The identity platform's keys, as a resource server learns them: discovery, then `jwks_uri`, over HTTPS.

Keys are cached per tenant; an unknown `kid` triggers a refetch, at most once per `REFETCH_INTERVAL`, so a
stream of forged tokens cannot turn into a stream of requests to the identity platform.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from jwt import PyJWK
from jwt.exceptions import PyJWKError
from jwt.types import Options

from entryway.kit.clock import Clock

log = logging.getLogger("entryway.devops.auth")

REFETCH_INTERVAL = timedelta(seconds=30)
DISCOVERY_LIFETIME = timedelta(hours=24)
PINNED_ALGORITHM = "RS256"


def decode_options(required: tuple[str, ...]) -> Options:
    """PyJWT options that check signature, audience, issuer and the `required` claims. Time claims are left to
    the caller, who checks them against the process clock (never time.time()) with a named leeway."""
    return {
        "require": list(required),
        "verify_signature": True,
        "verify_aud": True,
        "verify_iss": True,
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
    }


@dataclass
class _TenantKeys:
    issuer: str | None = None
    jwks_uri: str | None = None
    discovered_at: float = 0.0
    keys: dict[str, PyJWK] = field(default_factory=dict)
    fetched_at: float | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class IdentityKeySource:
    def __init__(self, authority: str, http: httpx.AsyncClient, clock: Clock) -> None:
        self._authority = authority.rstrip("/")
        self._http = http
        self._clock = clock
        self._tenants: dict[str, _TenantKeys] = {}

    async def find_key(self, tenant_id: str, kid: str) -> PyJWK | None:
        entry = self._tenants.setdefault(tenant_id, _TenantKeys())
        key = entry.keys.get(kid)
        if key is not None:
            return key
        # Wait for a fetch in progress rather than refuse the token: the first requests after a start or
        # a rotation all arrive while one of them fetches the keys.
        async with entry.lock:
            now = self._clock.timestamp()
            if kid not in entry.keys and (
                entry.fetched_at is None or now - entry.fetched_at >= REFETCH_INTERVAL.total_seconds()
            ):
                await self._refresh(tenant_id, entry)
        return entry.keys.get(kid)

    async def _refresh(self, tenant_id: str, entry: _TenantKeys) -> None:
        now = self._clock.timestamp()
        entry.fetched_at = now
        try:
            if entry.jwks_uri is None or now - entry.discovered_at > DISCOVERY_LIFETIME.total_seconds():
                document = await self._get_json(
                    f"{self._authority}/{tenant_id}/v2.0/.well-known/openid-configuration"
                )
                entry.jwks_uri = str(document["jwks_uri"])
                entry.issuer = str(document["issuer"])
                entry.discovered_at = now
            jwks = await self._get_json(entry.jwks_uri)
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            log.warning("could not fetch keys for tenant %s: %r", tenant_id, exc)
            return
        keys: dict[str, PyJWK] = {}
        for item in jwks.get("keys", []):
            if not isinstance(item, dict) or item.get("kty") != "RSA" or not item.get("kid"):
                continue
            try:
                keys[str(item["kid"])] = PyJWK(item, algorithm=PINNED_ALGORITHM)
            except PyJWKError as exc:
                log.warning("skipping unusable key %s: %r", item.get("kid"), exc)
        entry.keys = keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        response = await self._http.get(url, timeout=10.0)
        response.raise_for_status()
        data = response.json()
        if not isinstance(data, dict):
            raise ValueError(f"{url} did not return a JSON object")
        return data
