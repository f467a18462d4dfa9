"""RFC 6749 section 4.4, as Entra runs it: the token is about the client's own service principal, for one
resource named `{resource}/.default` (v2) or `resource=` (v1).
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow"""

from __future__ import annotations

from typing import ClassVar

from entryway.identity.protocol.claims import AppOnlySubject
from entryway.identity.protocol.delegation import audience_as_asked
from entryway.identity.protocol.errors import (
    CLIENT_CREDENTIAL_MISSING_CLIENT_CREDENTIALS,
    RESOURCE_NOT_FOUND,
    SCOPE_MULTIPLE_RESOURCES,
    SCOPE_NEEDS_DEFAULT,
    Aadsts,
    OAuthError,
)
from entryway.identity.protocol.model import DirectoryPort
from entryway.identity.protocol.pipeline import GrantContext, GrantOutcome
from entryway.identity.protocol.requests import TokenRequest
from entryway.identity.protocol.scopes import resource_of, split_scope
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
        roles = ctx.directory.find_app_roles_granted(
            ctx.tenant.id, ctx.client.client.service_principal_id, resource.app_id
        )
        return GrantOutcome(
            audience=audience,
            access_token_version=resource.access_token_version,
            scope=scope,
            subject=AppOnlySubject(ctx.client.client.service_principal_id, roles),
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
