"""Access tokens for the host's managed identities: app-only tokens about the identity's service principal,
as Entra issues them to IMDS and App Service on the identity's behalf.

Claims as in https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference (app-only), with
`appidacr` "2" (the platform authenticates the identity with a certificate it holds) and `xms_mirid`, the
identity's Azure resource id. The resource is named as on the v1 token endpoint (`resource=`, an app id or an
identifier URI), and the token's version is the resource's accessTokenVersion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from entryway.identity.managed.selection import HostIdentity, Selector, choose_identity
from entryway.identity.protocol.claims import CLIENT_AUTH_CERTIFICATE, AppOnlySubject, access_token
from entryway.identity.protocol.delegation import audience_as_asked
from entryway.identity.protocol.errors import RESOURCE_NOT_FOUND, SERVICE_PRINCIPAL_DISABLED, OAuthError
from entryway.identity.protocol.model import DirectoryPort
from entryway.identity.protocol.pipeline import TokenSigner
from entryway.kit.clock import Clock

# Conditional Access is not evaluated: Entra's policies for workload identities do not cover managed identities
# (https://learn.microsoft.com/entra/workload-id/workload-identities-faqs). The web layer logs each issuance.

# Managed identity tokens live 24 hours in Azure whatever the tenant's settings (token lifetime policies do not
# apply to them), and IMDS hands out a cached token until shortly before it expires. Entryway mints a new token
# per request, with the same 24-hour lifetime.
MANAGED_IDENTITY_TOKEN_LIFETIME_SECONDS = 24 * 3600


class HostIdentitiesPort(Protocol):
    def find_on_host(self) -> tuple[HostIdentity, ...]:
        """Every managed identity this host carries (`on_host`)."""
        ...


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    identity: HostIdentity
    resource: str  # as the request named it
    resource_app_id: str
    resource_display_name: str
    not_before: int
    expires_on: int
    expires_in: int


class ManagedIdentityIssuer:
    def __init__(self, *, origin: str, signer: TokenSigner, clock: Clock) -> None:
        self._origin = origin
        self._signer = signer
        self._clock = clock

    def issue(
        self, directory: DirectoryPort, host: HostIdentitiesPort, resource: str, selector: Selector
    ) -> IssuedToken:
        """Raises `IdentityNotFound` / `AmbiguousIdentity` for the selection, and `OAuthError` with Entra's
        code for what Entra would refuse (an unknown resource, a disabled service principal)."""
        identity = choose_identity(host.find_on_host(), selector)
        if not identity.enabled:
            raise OAuthError(
                SERVICE_PRINCIPAL_DISABLED, client_id=identity.client_id, name=identity.display_name
            )
        tenant = directory.find_tenant(identity.tenant_id)
        if tenant is None:  # pragma: no cover - the foreign key keeps the tenant
            raise OAuthError(RESOURCE_NOT_FOUND, resource=resource, directory=identity.tenant_id)
        target = directory.find_resource(tenant.id, resource)
        if target is None:
            raise OAuthError(RESOURCE_NOT_FOUND, resource=resource, directory=tenant.display_name)
        roles = directory.find_app_roles_granted(tenant.id, identity.object_id, target.app_id)
        now = int(self._clock.timestamp())
        claims = access_token(
            origin=self._origin,
            tenant_id=tenant.id,
            audience=audience_as_asked(resource, target),
            version=target.access_token_version,
            client_app_id=identity.client_id,
            client_auth_method=CLIENT_AUTH_CERTIFICATE,
            subject=AppOnlySubject(identity.object_id, roles),
            now=now,
            lifetime=MANAGED_IDENTITY_TOKEN_LIFETIME_SECONDS,
        )
        # After `ver`, where Entra writes it.
        claims["xms_mirid"] = identity.resource_id
        return IssuedToken(
            access_token=self._signer.sign(claims),
            identity=identity,
            resource=resource,
            resource_app_id=target.app_id,
            resource_display_name=target.display_name,
            not_before=claims["nbf"],
            expires_on=claims["exp"],
            expires_in=claims["exp"] - now,
        )
