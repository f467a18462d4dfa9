"""The Entra-issued form of a service connection's OIDC token: the DevOps service asks the identity platform
for it over HTTPS, as its first-party confidential client (first_party.DEVOPS_WEB, client_secret_post), with
client_credentials for Entra's token-exchange app and the connection named in `service_connection`
(identity/protocol/service_connections.py). The DevOps process never signs with the identity platform's keys:
the two origins stay separate, as in Azure.
"""

from __future__ import annotations

import logging

import httpx

from entryway.identity.directory.first_party import AZURE_AD_TOKEN_EXCHANGE, DEVOPS_WEB
from entryway.identity.protocol.service_connections import SERVICE_CONNECTION_PARAMETER

log = logging.getLogger("entryway.devops.oidc")

TOKEN_EXCHANGE_SCOPE = f"{AZURE_AD_TOKEN_EXCHANGE.app_id}/.default"
_TOKEN_TIMEOUT_SECONDS = 15.0


class EntraTokenUnavailable(Exception):
    """The identity platform did not issue the token. `refused`: it answered with an error (a configuration
    problem: the job should not retry); otherwise it could not be reached. `message` is for the job's log."""

    def __init__(self, message: str, *, refused: bool) -> None:
        super().__init__(message)
        self.message = message
        self.refused = refused


async def request_entra_token(
    http: httpx.AsyncClient,
    *,
    identity_origin: str,
    client_secret: str,
    tenant_id: str,
    organization_id: str,
    connection_id: str,
) -> str:
    """The v2 token the identity platform issues about the connection (aud: the token-exchange app)."""
    url = f"{identity_origin.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"
    try:
        response = await http.post(
            url,
            data={
                "grant_type": "client_credentials",
                "client_id": DEVOPS_WEB.app_id,
                "client_secret": client_secret,
                "scope": TOKEN_EXCHANGE_SCOPE,
                SERVICE_CONNECTION_PARAMETER: f"{organization_id}/{connection_id}",
            },
            timeout=_TOKEN_TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as exc:
        log.warning("entra-issued oidc token: the identity platform is unreachable: %r", exc)
        raise EntraTokenUnavailable("The identity platform could not be reached.", refused=False) from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 200 and isinstance(body, dict) and isinstance(body.get("access_token"), str):
        return str(body["access_token"])
    description = str(body.get("error_description", "")) if isinstance(body, dict) else ""
    first_line = description.splitlines()[0][:300] if description else f"HTTP {response.status_code}"
    log.warning("entra-issued oidc token refused by the identity platform: %s", first_line)
    raise EntraTokenUnavailable(
        f"The identity platform did not issue the token: {first_line}",
        refused=response.status_code < 500,
    )
