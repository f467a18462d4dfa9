"""External OIDC issuers' signing keys, for federated identity credentials: discovery
(`{issuer}/.well-known/openid-configuration`), then its `jwks_uri`, over HTTPS only, cached per issuer.

Only issuers that a federated credential of the requesting client names are ever contacted (the token route
checks before asking), so a request cannot make the server fetch an arbitrary URL. Keys are kept for
`KEYS_LIFETIME`; a token naming an unknown `kid` triggers a refetch at most once per `REFETCH_INTERVAL`, so a
stream of forged tokens cannot become a stream of requests to the issuer. Responses are bounded in size and
time; redirects are not followed.

Trust: the system's CA store, certifi's, Entryway's own CA (`ca_bundle`), and the PEM files listed in
`ENTRYWAY_TRUSTED_CA` (separated by the path separator), read when the first issuer is contacted and again
whenever the variable changes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import certifi
import httpx
import orjson
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from entryway.identity.protocol.client_assertion import IssuerKeys
from entryway.kit.clock import Clock

log = logging.getLogger("entryway.identity")

TRUSTED_CA_ENV = "ENTRYWAY_TRUSTED_CA"
REFETCH_INTERVAL = timedelta(seconds=30)
KEYS_LIFETIME = timedelta(hours=1)
DISCOVERY_LIFETIME = timedelta(hours=24)
FETCH_TIMEOUT_SECONDS = 5.0
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_ISSUERS = 1024
USABLE_KEY_TYPES = frozenset({"RSA", "EC"})


class IssuerUnavailable(Exception):
    """The issuer's discovery document or keys could not be fetched or read; the reason is for the log."""


@dataclass
class _Issuer:
    jwks_uri: str | None = None
    discovered_at: float = 0.0
    keys: dict[str, Any] = field(default_factory=dict)
    fetched_at: float | None = None
    problem: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def is_https_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(parts.hostname)


def trusted_ca_files(ca_bundle: str | None) -> tuple[str, ...]:
    extra = [p for p in os.environ.get(TRUSTED_CA_ENV, "").split(os.pathsep) if p.strip()]
    own = [ca_bundle] if ca_bundle and Path(ca_bundle).exists() else []
    return (*own, *extra)


def trust_context(files: tuple[str, ...]) -> ssl.SSLContext:
    """The system store and certifi's roots, plus `files`."""
    context = ssl.create_default_context(cafile=certifi.where())
    context.load_default_certs()
    for path in files:
        context.load_verify_locations(cafile=path)
    return context


class ExternalIssuers:
    """Per-process cache of external issuers' keys. Lives on one event loop (the server's)."""

    def __init__(self, clock: Clock, *, ca_bundle: str | None = None) -> None:
        self._clock = clock
        self._ca_bundle = ca_bundle
        self._issuers: dict[str, _Issuer] = {}
        self._clients: dict[tuple[str, ...], httpx.AsyncClient] = {}

    async def keys_for(self, issuer: str, kid: str | None) -> IssuerKeys:
        """The issuer's keys, fetched if none are cached, if they are stale, or if `kid` is unknown (at most
        once per `REFETCH_INTERVAL`)."""
        if not is_https_url(issuer):
            return IssuerKeys(issuer, {}, "issuer is not an https URL")
        entry = self._issuers.get(issuer)
        if entry is None:
            if len(self._issuers) >= MAX_ISSUERS:
                self._issuers.pop(next(iter(self._issuers)))
            entry = self._issuers[issuer] = _Issuer()
        if self._needs_fetch(entry, kid):
            # Wait for a fetch in progress rather than refuse: the first requests after a start or a
            # rotation all arrive while one of them fetches.
            async with entry.lock:
                if self._needs_fetch(entry, kid):
                    await self._refresh(issuer, entry)
        return IssuerKeys(issuer, dict(entry.keys), entry.problem)

    def _needs_fetch(self, entry: _Issuer, kid: str | None) -> bool:
        now = self._clock.timestamp()
        if entry.fetched_at is None:
            return True
        age = now - entry.fetched_at
        if age >= KEYS_LIFETIME.total_seconds():
            return True
        unknown = not entry.keys or (kid is not None and kid not in entry.keys)
        return unknown and age >= REFETCH_INTERVAL.total_seconds()

    async def _refresh(self, issuer: str, entry: _Issuer) -> None:
        now = self._clock.timestamp()
        entry.fetched_at = now
        try:
            if entry.jwks_uri is None or now - entry.discovered_at >= DISCOVERY_LIFETIME.total_seconds():
                document = await self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
                # OpenID Connect Discovery 1.0 section 4.3: the document names the issuer it describes.
                if document.get("issuer") != issuer:
                    raise IssuerUnavailable(f"discovery names issuer {document.get('issuer')!r}")
                jwks_uri = document.get("jwks_uri")
                if not isinstance(jwks_uri, str) or not is_https_url(jwks_uri):
                    raise IssuerUnavailable(f"jwks_uri {jwks_uri!r} is not an https URL")
                entry.jwks_uri, entry.discovered_at = jwks_uri, now
            jwks = await self._get_json(entry.jwks_uri)
        except (httpx.HTTPError, IssuerUnavailable, ssl.SSLError, OSError) as exc:
            # Keep the keys we had: an issuer briefly unreachable should not fail tokens it signed earlier.
            entry.problem = f"could not fetch keys of {issuer}: {exc!r}"
            log.warning("%s", entry.problem)
            return
        entry.keys, entry.problem = usable_keys(jwks), ""

    async def _get_json(self, url: str) -> dict[str, Any]:
        client = self._client()
        async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise IssuerUnavailable(f"{url} answered {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise IssuerUnavailable(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
        try:
            data = orjson.loads(bytes(body))
        except orjson.JSONDecodeError as exc:
            raise IssuerUnavailable(f"{url} did not send JSON") from exc
        if not isinstance(data, dict):
            raise IssuerUnavailable(f"{url} did not send a JSON object")
        return data

    def _client(self) -> httpx.AsyncClient:
        files = trusted_ca_files(self._ca_bundle)
        client = self._clients.get(files)
        if client is None:
            client = httpx.AsyncClient(
                verify=trust_context(files),
                follow_redirects=False,
                timeout=httpx.Timeout(FETCH_TIMEOUT_SECONDS),
                trust_env=False,  # no proxies from the environment, no .netrc
            )
            self._clients[files] = client
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def usable_keys(jwks: dict[str, Any]) -> dict[str, Any]:
    """kid -> public key, for the RSA and EC keys meant for signatures; symmetric keys are never used."""
    keys: dict[str, Any] = {}
    items = jwks.get("keys")
    for item in items if isinstance(items, list) else []:
        if (
            not isinstance(item, dict)
            or item.get("kty") not in USABLE_KEY_TYPES
            or item.get("use", "sig") != "sig"
        ):
            continue
        kid = item.get("kid")
        try:
            key = PyJWK(item).key
        except (PyJWKError, ValueError, TypeError) as exc:
            log.warning("skipping unusable external key %r: %r", kid, exc)
            continue
        keys[str(kid) if kid is not None else ""] = key
    return keys
