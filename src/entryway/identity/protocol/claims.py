"""Access-token claim shapes, v1 and v2, as Entra issues them.

https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference. Azure DevOps receives v1
tokens even from the v2 endpoint, because its resource application accepts v1.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from entryway.kit.ids import new_opaque_id

# Entra back-dates iat/nbf by five minutes to tolerate clock skew at resources.
ISSUED_AT_BACKDATE_SECONDS = 300
# appidacr / azpacr: how the client authenticated.
CLIENT_AUTH_PUBLIC = "0"
CLIENT_AUTH_SECRET = "1"  # noqa: S105 - an appidacr value, not a secret
CLIENT_AUTH_CERTIFICATE = "2"
# Past this many groups Entra leaves `groups` out of a JWT (the "groups overage").
MAX_GROUPS_IN_TOKEN = 200


def v1_issuer(origin: str, tenant_id: str) -> str:
    """Mirrors `https://sts.windows.net/{tid}/`."""
    return f"{origin}/{tenant_id}/"


def v2_issuer(origin: str, tenant_id: str) -> str:
    """Mirrors `https://login.microsoftonline.com/{tid}/v2.0`."""
    return f"{origin}/{tenant_id}/v2.0"


@dataclass(frozen=True)
class AppOnlySubject:
    """The token is about the client application itself (client credentials and friends)."""

    service_principal_id: str
    roles: tuple[str, ...]
    # `sub`, when it is not the service principal's object id (a pipeline service connection's token names
    # the connection: protocol/service_connections.py).
    subject: str | None = None


def _registered_claims(
    *, origin: str, tenant_id: str, audience: str, version: int, now: int, lifetime: int
) -> dict[str, Any]:
    """aud, iss, iat, nbf, exp: the same in every access token, in Entra's order."""
    issued_at = now - ISSUED_AT_BACKDATE_SECONDS
    return {
        "aud": audience,
        "iss": v1_issuer(origin, tenant_id) if version == 1 else v2_issuer(origin, tenant_id),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": now + lifetime,
    }


def access_token(
    *,
    origin: str,
    tenant_id: str,
    audience: str,
    version: int,
    client_app_id: str,
    client_auth_method: str,
    subject: AppOnlySubject | UserSubject,
    now: int,
    lifetime: int,
    capabilities: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The claims of an access token about an application (app-only) or a user (delegated). `capabilities`
    are the client's (`xms_cc`, e.g. CP1: it handles claims challenges, so resources may revoke the token early
    under continuous access evaluation)."""
    claims = _registered_claims(
        origin=origin, tenant_id=tenant_id, audience=audience, version=version, now=now, lifetime=lifetime
    )
    if isinstance(subject, UserSubject):
        _delegated_claims(claims, origin, tenant_id, version, client_app_id, client_auth_method, subject)
    else:
        _app_only_claims(claims, origin, tenant_id, version, client_app_id, client_auth_method, subject)
    if capabilities:
        claims["xms_cc"] = list(capabilities)
    return claims


def _app_only_claims(  # noqa: PLR0917 - one call site, the claim order reads best flat
    claims: dict[str, Any],
    origin: str,
    tenant_id: str,
    version: int,
    client_app_id: str,
    client_auth_method: str,
    subject: AppOnlySubject,
) -> None:
    claims["aio"] = new_opaque_id(24)
    if version == 1:
        claims.update(
            appid=client_app_id, appidacr=client_auth_method, idp=v1_issuer(origin, tenant_id), idtyp="app"
        )
    else:
        claims.update(azp=client_app_id, azpacr=client_auth_method, idtyp="app")
    claims.update(oid=subject.service_principal_id, rh=new_opaque_id(24))
    if subject.roles:
        claims["roles"] = list(subject.roles)
    claims.update(
        sub=subject.subject or subject.service_principal_id,
        tid=tenant_id,
        uti=new_opaque_id(16),
        ver="1.0" if version == 1 else "2.0",
    )


@dataclass(frozen=True)
class UserSubject:
    """The token is about a signed-in user, on behalf of whom the client acts (delegated)."""

    object_id: str
    user_principal_name: str
    display_name: str
    pairwise_sub: str  # `sub`: unique to the user and the client application
    scopes: tuple[str, ...]
    amr: tuple[str, ...]
    auth_time: int
    client_address: str = ""
    groups: tuple[str, ...] = ()  # transitive group object ids
    wids: tuple[str, ...] = ()  # directory role template ids


def _group_claims(subject: UserSubject) -> dict[str, Any]:
    """`groups`, left out when there are none; past MAX_GROUPS_IN_TOKEN, the overage marker `hasgroups` instead.

    Entra adds `groups` only when the app registration asks for it (groupMembershipClaims) and, on overage,
    points a JWT at Microsoft Graph with `_claim_names`/`_claim_sources` (`hasgroups` is its implicit-flow
    marker). We issue it to every client and mark overage with `hasgroups` alone (docs/pat-policies.md)."""
    if not subject.groups:
        return {}
    if len(subject.groups) > MAX_GROUPS_IN_TOKEN:
        return {"hasgroups": True}
    return {"groups": list(subject.groups)}


def _delegated_claims(  # noqa: PLR0917 - one call site, the claim order reads best flat
    claims: dict[str, Any],
    origin: str,
    tenant_id: str,
    version: int,
    client_app_id: str,
    client_auth_method: str,
    subject: UserSubject,
) -> None:
    """https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference (delegated)."""
    if version == 1:
        claims.update(acr="1", aio=new_opaque_id(24), amr=list(subject.amr), appid=client_app_id)
        claims.update(appidacr=client_auth_method)
        claims.update(_group_claims(subject))
        if subject.client_address:
            claims["ipaddr"] = subject.client_address
        claims.update(name=subject.display_name, oid=subject.object_id, rh=new_opaque_id(24))
        claims.update(scp=" ".join(subject.scopes), sub=subject.pairwise_sub, tid=tenant_id)
        claims.update(unique_name=subject.user_principal_name, upn=subject.user_principal_name)
        claims.update(uti=new_opaque_id(16), ver="1.0")
    else:
        claims.update(aio=new_opaque_id(24), azp=client_app_id, azpacr=client_auth_method)
        claims.update(_group_claims(subject))
        claims.update(name=subject.display_name, oid=subject.object_id)
        claims.update(preferred_username=subject.user_principal_name, rh=new_opaque_id(24))
        claims.update(scp=" ".join(subject.scopes), sub=subject.pairwise_sub, tid=tenant_id)
        claims.update(uti=new_opaque_id(16), ver="2.0")
    if subject.wids:
        claims["wids"] = list(subject.wids)


ID_TOKEN_LIFETIME_SECONDS = 3600


def id_token(
    *,
    origin: str,
    tenant_id: str,
    client_app_id: str,
    subject: UserSubject,
    nonce: str | None,
    now: int,
) -> dict[str, Any]:
    """v2 ID token (https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference). MSAL
    checks `nonce` against the authorization request's; `auth_time` is needed with `max_age`."""
    issued_at = now - ISSUED_AT_BACKDATE_SECONDS
    claims: dict[str, Any] = {
        "aud": client_app_id,
        "iss": v2_issuer(origin, tenant_id),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": now + ID_TOKEN_LIFETIME_SECONDS,
        "aio": new_opaque_id(24),
        "auth_time": subject.auth_time,
    }
    claims.update(_group_claims(subject))
    claims["name"] = subject.display_name
    if nonce is not None:
        claims["nonce"] = nonce
    claims.update(
        oid=subject.object_id,
        preferred_username=subject.user_principal_name,
        rh=new_opaque_id(24),
        sub=subject.pairwise_sub,
        tid=tenant_id,
        uti=new_opaque_id(16),
        ver="2.0",
    )
    if subject.wids:
        claims["wids"] = list(subject.wids)
    return claims


def client_info(object_id: str, tenant_id: str) -> str:
    """MSAL's account key: base64url of `{"uid": oid, "utid": tid}`, unpadded."""
    raw = json.dumps({"uid": object_id, "utid": tenant_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
