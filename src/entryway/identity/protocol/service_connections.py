"""The Entra-issued form of a pipeline service connection's OIDC token (Azure DevOps' default for new
connections since late 2025): a v2 app-only token for Entra's token-exchange app, issued to the Azure DevOps
service and naming the connection as its subject, which the connection's app registration or managed identity
then exchanges as a federated client assertion (docs/pipelines-wif.md, devops-wire-contract 6).

The DevOps service asks for it over HTTPS with client_credentials as its first-party confidential client
(first_party.DEVOPS_WEB), adding `SERVICE_CONNECTION_PARAMETER` = `{organizationId}/{serviceConnectionId}`;
no other client may name a connection. Pure: no I/O, no web, no database.
"""

from __future__ import annotations

import base64
import uuid

from entryway.kit.ids import parse_guid

# The token request parameter naming the connection the token is about.
SERVICE_CONNECTION_PARAMETER = "service_connection"
# How long the token is valid: Entra issues it for about 24 hours; a job asks for a new one each time it
# signs in, so Entryway keeps it short (it is exchanged at once).
SERVICE_CONNECTION_TOKEN_LIFETIME_SECONDS = 15 * 60


def _b64url_guid(guid: str) -> str:
    """A GUID as Entra writes it in `/eid1/` subjects: base64url of its 16 bytes in .NET order (bytes_le)."""
    return base64.urlsafe_b64encode(uuid.UUID(guid).bytes_le).rstrip(b"=").decode("ascii")


def entra_connection_subject(
    tenant_id: str, devops_app_id: str, organization_id: str, connection_id: str
) -> str:
    """`/eid1/c/pub/t/{b64url(tenant)}/a/{b64url(Azure DevOps app)}/sc/{organizationId}/{serviceConnectionId}`;
    the Azure DevOps app id 499b84ac-… is `rISbSSETf0KqFyZ8ppdXmA`."""
    return (
        f"/eid1/c/pub/t/{_b64url_guid(tenant_id)}/a/{_b64url_guid(devops_app_id)}"
        f"/sc/{organization_id.lower()}/{connection_id.lower()}"
    )


def parse_service_connection(value: str) -> tuple[str, str] | None:
    """(organization id, connection id) from `{organizationId}/{serviceConnectionId}`, both GUIDs; None
    otherwise."""
    organization, sep, connection = value.strip().partition("/")
    organization_id, connection_id = parse_guid(organization), parse_guid(connection)
    if not sep or organization_id is None or connection_id is None:
        return None
    return organization_id, connection_id
