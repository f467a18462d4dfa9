"""Access-token claim shapes, v1 and v2, as Entra issues them.

https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference. Azure DevOps receives v1
tokens even from the v2 endpoint, because its resource application accepts v1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from entryway.kit.ids import new_opaque_id

# Entra back-dates iat/nbf by five minutes to tolerate clock skew at resources.
ISSUED_AT_BACKDATE_SECONDS = 300
# appidacr / azpacr: how the client authenticated.
CLIENT_AUTH_PUBLIC = "0"
CLIENT_AUTH_SECRET = "1"  # noqa: S105 - an appidacr value, not a secret
CLIENT_AUTH_CERTIFICATE = "2"


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


def app_only_access_token(
    *,
    origin: str,
    tenant_id: str,
    audience: str,
    version: int,
    client_app_id: str,
    client_auth_method: str,
    subject: AppOnlySubject,
    now: int,
    lifetime: int,
) -> dict[str, Any]:
    issued_at = now - ISSUED_AT_BACKDATE_SECONDS
    claims: dict[str, Any] = {
        "aud": audience,
        "iss": v1_issuer(origin, tenant_id) if version == 1 else v2_issuer(origin, tenant_id),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": now + lifetime,
        "aio": new_opaque_id(24),
    }
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
        sub=subject.service_principal_id,
        tid=tenant_id,
        uti=new_opaque_id(16),
        ver="1.0" if version == 1 else "2.0",
    )
    return claims
