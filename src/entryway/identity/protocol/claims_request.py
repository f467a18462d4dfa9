"""The `claims` request parameter (OpenID Connect Core 1.0 section 5.5), as Entra reads it on the token, authorize
and device-code endpoints: client capabilities (`xms_cc`, CP1 = "can handle claims challenges", the continuous
access evaluation opt-in) and the claims challenge a resource sent back (`nbf`, `xms_rp_ipaddr`).

MSAL builds it as `{"access_token": {"xms_cc": {"values": ["CP1"]}}}` deep-merged with the challenge, e.g.
`{"access_token": {"nbf": {"essential": true, "value": "1700000000"}}}`
(https://learn.microsoft.com/entra/identity-platform/claims-challenge). Unknown claims are accepted and ignored,
as Entra does; a value that is not a JSON object of claim requests is refused with AADSTS50117.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from entryway.identity.protocol.errors import CLAIMS_MALFORMED, OAuthError

# The client capability that opts a client into continuous access evaluation.
CAE_CAPABILITY = "CP1"
MAX_CLAIMS_LENGTH = 4096  # the authorization code and device code rows keep at most this much
# OIDC Core 5.5: the members a claims request may name; Entra reads only the first two for its tokens.
_MEMBERS = ("access_token", "id_token", "userinfo")


@dataclass(frozen=True)
class ClaimsRequest:
    """What a `claims` parameter asks of the access token. An absent parameter is `ClaimsRequest()`."""

    capabilities: tuple[str, ...] = ()  # access_token.xms_cc.values, as sent
    # access_token.nbf.value: the resource accepts only a token from a sign-in at or after this time.
    not_before: int | None = None
    # access_token.xms_rp_ipaddr.value: the address the resource saw the client at.
    resource_ip: str | None = None
    document: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cae_capable(self) -> bool:
        """The client declared CP1 (case-insensitive, as Entra compares capabilities)."""
        return any(c.upper() == CAE_CAPABILITY for c in self.capabilities)


def _malformed(reason: str) -> OAuthError:
    return OAuthError(CLAIMS_MALFORMED, detail=f"claims parameter: {reason}")


def _claim_requests(document: Mapping[str, Any], member: str) -> Mapping[str, Any]:
    requests = document.get(member)
    if requests is None:
        return {}
    if not isinstance(requests, dict):
        raise _malformed(f"'{member}' is not an object")
    for name, request in requests.items():
        # OIDC Core 5.5: each claim is requested with null (default) or an object.
        if request is not None and not isinstance(request, dict):
            raise _malformed(f"'{member}.{name}' is neither null nor an object")
    return requests


def _capabilities(request: Mapping[str, Any] | None) -> tuple[str, ...]:
    if request is None:
        return ()
    values = request.get("values")
    if values is None:
        value = request.get("value")
        values = [] if value is None else [value]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _malformed("'access_token.xms_cc.values' is not a list of strings")
    return tuple(values)


def _timestamp(request: Mapping[str, Any] | None) -> int | None:
    """`nbf` arrives as a string of seconds (MSAL and the resources that challenge write it so) or a number."""
    if request is None or request.get("value") is None:
        return None
    value = request["value"]
    if isinstance(value, bool):
        raise _malformed("'access_token.nbf.value' is not a time")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _malformed("'access_token.nbf.value' is not a time") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise _malformed("'access_token.nbf.value' is not a time")
    return math.floor(value)


def _address(request: Mapping[str, Any] | None) -> str | None:
    if request is None or request.get("value") is None:
        return None
    value = request["value"]
    if not isinstance(value, str):
        raise _malformed("'access_token.xms_rp_ipaddr.value' is not an IP address")
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise _malformed("'access_token.xms_rp_ipaddr.value' is not an IP address") from None


def parse_claims_request(value: str | None) -> ClaimsRequest:
    """Parse a `claims` parameter; None or empty is no claims request. Raises `OAuthError` (AADSTS50117)."""
    if not value:
        return ClaimsRequest()
    if len(value) > MAX_CLAIMS_LENGTH:
        raise _malformed(f"{len(value)} characters")
    try:
        document = json.loads(value)
    except (ValueError, RecursionError):
        raise _malformed("not JSON") from None
    if not isinstance(document, dict):
        raise _malformed("not a JSON object")
    for member in _MEMBERS:
        _claim_requests(document, member)
    access = _claim_requests(document, "access_token")
    return ClaimsRequest(
        capabilities=_capabilities(access.get("xms_cc")),
        not_before=_timestamp(access.get("nbf")),
        resource_ip=_address(access.get("xms_rp_ipaddr")),
        document=document,
    )
