"""Small HTTP helpers shared by both services (Starlette)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

MAX_REQUEST_BODY = 1024 * 1024


class JsonResponse(Response):
    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int = MAX_REQUEST_BODY) -> bytes:
    """Read a request body, refusing to buffer more than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Where an application keeps the proxies it trusts (`trust_proxies`), read by `client_address`.
_TRUSTED_PROXIES_STATE = "trusted_proxies"


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDR ranges (a bare address is a /32 or /128); raises ValueError naming the first bad one."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"'{cidr}' is not an IP address or a CIDR range") from None
    return tuple(networks)


def trust_proxies(app: Starlette, cidrs: Iterable[str]) -> Starlette:
    """Let `client_address` take X-Forwarded-For from peers inside these ranges (a reverse proxy's)."""
    setattr(app.state, _TRUSTED_PROXIES_STATE, parse_networks(cidrs))
    return app


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    return address


def _is_trusted(address: IPAddress, trusted: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def forwarded_client(peer: str, forwarded_for: list[str], trusted: tuple[IPNetwork, ...]) -> str:
    """The client's address behind trusted proxies: the peer itself unless it is a trusted proxy; then the
    right-most X-Forwarded-For entry that is not a trusted proxy (each proxy appends the address it saw, so the
    entries left of the first untrusted one are the client's own say and could be forged). A header that is not
    a list of IP addresses is ignored: the peer is the answer."""
    peer_address = _address(peer)
    if peer_address is None or not trusted or not _is_trusted(peer_address, trusted):
        return peer
    entries = [entry for header in forwarded_for for entry in header.split(",")]
    addresses = [_address(entry) for entry in entries]
    if not addresses or any(a is None for a in addresses):
        return peer
    hops = [a for a in addresses if a is not None]
    for address in reversed(hops):
        if not _is_trusted(address, trusted):
            return str(address)
    return str(hops[0])  # every hop is a trusted proxy: the first one is the farthest the chain knows


def client_address(request: Request, trusted: tuple[IPNetwork, ...] | None = None) -> str:
    """The address the request came from: the connection's peer, or, when the peer is a trusted proxy (the
    `trusted` ranges, else those the application was given with `trust_proxies`), the forwarded one."""
    peer = request.client.host if request.client else ""
    if trusted is None:
        app = request.scope.get("app")
        trusted = getattr(getattr(app, "state", None), _TRUSTED_PROXIES_STATE, ())
    if not trusted:
        return peer
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"), trusted)
