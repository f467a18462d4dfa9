"""RFC 6749 section 4.4, as Entra runs it: the token is about the client's own service principal, for one
resource named `{resource}/.default` (v2) or `resource=` (v1).
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow"""

from __future__ import annotations

from typing import ClassVar

from entryway.identity.directory.first_party import AZURE_AD_TOKEN_EXCHANGE, AZURE_DEVOPS, DEVOPS_WEB
from entryway.identity.protocol.claims import AppOnlySubject
from entryway.identity.protocol.delegation import audience_as_asked
from entryway.identity.protocol.errors import (
    CLIENT_CREDENTIAL_MISSING_CLIENT_CREDENTIALS,
    RESOURCE_NOT_FOUND,
    SCOPE_MULTIPLE_RESOURCES,
    SCOPE_NEEDS_DEFAULT,
    SERVICE_CONNECTION_CLIENT_REFUSED,
    SERVICE_CONNECTION_MALFORMED,
    Aadsts,
    OAuthError,
)
from entryway.identity.protocol.model import DirectoryPort
from entryway.identity.protocol.pipeline import GrantContext, GrantOutcome
from entryway.identity.protocol.requests import TokenRequest
from entryway.identity.protocol.scopes import resource_of, split_scope
from entryway.identity.protocol.service_connections import (
    SERVICE_CONNECTION_PARAMETER,
    SERVICE_CONNECTION_TOKEN_LIFETIME_SECONDS,
    entra_connection_subject,
    parse_service_connection,
)
from entryway.identity.protocol.sign_ins import SignInPort


class ClientCredentialsGrant:
    grant_type: ClassVar[str] = "client_credentials"
    missing_credential: ClassVar[Aadsts] = CLIENT_CREDENTIAL_MISSING_CLIENT_CREDENTIALS
    allows_public_clients: ClassVar[bool] = False
    issues_user_tokens: ClassVar[bool] = False

    def tenant_hint(
        self, request: TokenRequest, sign_ins: SignInPort | None, directory: DirectoryPort
    ) -> None:
        """An app-only token names its tenant in the URL; `common` has no directory to look in."""
        return

    def authorize(self, ctx: GrantContext) -> GrantOutcome:
        request = ctx.request
        if request.endpoint_version == 1:
            identifier = request.require("resource")
            scope = identifier
        else:
            scope = request.require("scope")
            identifier = self._resource_from_scope(scope)

        resource = ctx.directory.find_resource(ctx.tenant.id, identifier)
        if resource is None:
            raise OAuthError(RESOURCE_NOT_FOUND, resource=identifier, directory=ctx.tenant.display_name)
        audience = audience_as_asked(identifier, resource)
        if request.get(SERVICE_CONNECTION_PARAMETER) is not None:
            return self._service_connection_token(ctx, resource.app_id, scope)
        roles = ctx.directory.find_app_roles_granted(
            ctx.tenant.id, ctx.client.client.service_principal_id, resource.app_id
        )
        return GrantOutcome(
            audience=audience,
            access_token_version=resource.access_token_version,
            scope=scope,
            subject=AppOnlySubject(ctx.client.client.service_principal_id, roles),
            resource=resource,
        )

    @staticmethod
    def _service_connection_token(ctx: GrantContext, resource_app_id: str, scope: str) -> GrantOutcome:
        """The Entra-issued token of a pipeline service connection (protocol/service_connections.py): only the
        Azure DevOps service may ask, only for the token-exchange app. The token is Azure DevOps' own
        (`azp`, `oid`: its app and service principal in the tenant) and its subject names the connection."""
        client = ctx.client.client
        value = ctx.request.require(SERVICE_CONNECTION_PARAMETER)
        if client.app_id != DEVOPS_WEB.app_id or resource_app_id != AZURE_AD_TOKEN_EXCHANGE.app_id:
            raise OAuthError(
                SERVICE_CONNECTION_CLIENT_REFUSED,
                detail=f"client {client.app_id} asked for a service connection token for {resource_app_id}",
            )
        parsed = parse_service_connection(value)
        if parsed is None:
            raise OAuthError(SERVICE_CONNECTION_MALFORMED, detail=f"service_connection {value[:100]!r}")
        devops = ctx.directory.find_client(ctx.tenant.id, AZURE_DEVOPS.app_id)
        if devops is None:  # every tenant has it (directory/service.py ensure_first_party_apps)
            raise OAuthError(
                RESOURCE_NOT_FOUND, resource=AZURE_DEVOPS.app_id, directory=ctx.tenant.display_name
            )
        organization_id, connection_id = parsed
        return GrantOutcome(
            audience=AZURE_AD_TOKEN_EXCHANGE.app_id,
            access_token_version=2,
            scope=scope,
            subject=AppOnlySubject(
                devops.service_principal_id,
                (),
                subject=entra_connection_subject(
                    ctx.tenant.id, AZURE_DEVOPS.app_id, organization_id, connection_id
                ),
            ),
            acting_app_id=AZURE_DEVOPS.app_id,
            lifetime=SERVICE_CONNECTION_TOKEN_LIFETIME_SECONDS,
        )

    @staticmethod
    def _resource_from_scope(scope: str) -> str:
        resources = set()
        for item in split_scope(scope):
            resource, value = resource_of(item)
            if value != ".default" or not resource:
                raise OAuthError(SCOPE_NEEDS_DEFAULT, scope=scope)
            resources.add(resource)
        if not resources:
            raise OAuthError(SCOPE_NEEDS_DEFAULT, scope=scope)
        if len(resources) > 1:
            raise OAuthError(SCOPE_MULTIPLE_RESOURCES, scope=scope)
        return resources.pop()
