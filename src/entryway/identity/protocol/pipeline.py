"""The token endpoint's pipeline, in one place: parse, resolve the tenant, find and authenticate the
client, let the grant decide the resource and subject, issue, and answer in Entra's shape.

(dex `server/grants/grants.go`; node-oidc-provider `lib/actions/token.js`)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from entryway.identity.protocol.claims import AppOnlySubject, app_only_access_token
from entryway.identity.protocol.client_auth import (
    AuthenticatedClient,
    authenticate_client,
    read_client_credential,
)
from entryway.identity.protocol.errors import (
    CLIENT_NOT_FOUND,
    INVALID_CLIENT_ID,
    INVALID_TENANT_NAME,
    MISSING_PARAMETER,
    NO_TENANT_IDENTIFYING_INFORMATION,
    SERVICE_PRINCIPAL_DISABLED,
    TENANT_NOT_FOUND,
    UNSUPPORTED_GRANT_TYPE,
    UNSUPPORTED_GRANT_TYPE_V1,
    Aadsts,
    OAuthError,
)
from entryway.identity.protocol.model import DirectoryPort, Resource, Tenant
from entryway.identity.protocol.requests import TokenRequest
from entryway.kit.clock import Clock, utc_from_timestamp
from entryway.kit.ids import parse_guid
from entryway.kit.secrets import SecretDigester

# Tenant-independent authorities: they name no directory of their own.
TENANT_INDEPENDENT = frozenset({"common", "organizations", "consumers"})
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.IGNORECASE)


class TokenSigner(Protocol):
    def sign(self, claims: Mapping[str, Any]) -> str: ...


@dataclass(frozen=True)
class GrantContext:
    request: TokenRequest
    tenant: Tenant
    client: AuthenticatedClient
    directory: DirectoryPort


@dataclass(frozen=True)
class GrantOutcome:
    """What a grant decided: the resource and audience, the scope to echo, and whom the token is about."""

    resource: Resource
    audience: str
    scope: str
    subject: AppOnlySubject


class Grant(Protocol):
    grant_type: ClassVar[str]
    # The error when a confidential client presents no credential (it differs per grant in Entra).
    missing_credential: ClassVar[Aadsts]

    def authorize(self, ctx: GrantContext) -> GrantOutcome: ...


def validate_tenant_ref(ref: str) -> str:
    """A tenant segment is a GUID or a DNS name (AADSTS900023 otherwise)."""
    guid = parse_guid(ref)
    if guid is not None:
        return guid
    if ref.lower() in TENANT_INDEPENDENT or _DNS_NAME.match(ref):
        return ref.lower()
    raise OAuthError(INVALID_TENANT_NAME, tenant=ref)


def resolve_tenant(directory: DirectoryPort, ref: str) -> Tenant:
    """The tenant a request names. `common` and `organizations` name none: an app-only grant there has
    no directory to look in (AADSTS50059); user grants resolve the user's home tenant instead."""
    normalized = validate_tenant_ref(ref)
    if normalized in TENANT_INDEPENDENT:
        raise OAuthError(NO_TENANT_IDENTIFYING_INFORMATION)
    tenant = directory.find_tenant(normalized)
    if tenant is None:
        raise OAuthError(TENANT_NOT_FOUND, tenant=ref)
    return tenant


class TokenEndpoint:
    """`POST /{tenant}/oauth2/v2.0/token` and `POST /{tenant}/oauth2/token`."""

    def __init__(
        self,
        *,
        origin: str,
        grants: list[Grant],
        signer: TokenSigner,
        digester: SecretDigester,
        clock: Clock,
    ) -> None:
        self._origin = origin
        self._grants = {g.grant_type: g for g in grants}
        self._signer = signer
        self._digester = digester
        self._clock = clock

    def handle(self, request: TokenRequest, directory: DirectoryPort) -> dict[str, Any]:
        grant_type = request.require("grant_type")
        grant = self._grants.get(grant_type)
        if grant is None:
            kind = UNSUPPORTED_GRANT_TYPE if request.endpoint_version == 2 else UNSUPPORTED_GRANT_TYPE_V1
            raise OAuthError(kind, grant_type=grant_type)

        credential = read_client_credential(request)
        if credential.client_id is None:
            raise OAuthError(MISSING_PARAMETER, name="client_id")
        tenant = resolve_tenant(directory, request.tenant_ref)
        client_id = parse_guid(credential.client_id)
        if client_id is None:
            raise OAuthError(INVALID_CLIENT_ID, client_id=credential.client_id)
        client = directory.find_client(tenant.id, client_id)
        if client is None:
            raise OAuthError(CLIENT_NOT_FOUND, client_id=client_id, directory=tenant.display_name)

        now = self._clock.timestamp()
        authenticated = authenticate_client(
            client,
            credential,
            digester=self._digester,
            now=utc_from_timestamp(now),
            missing=grant.missing_credential,
        )
        if not client.service_principal_enabled:
            raise OAuthError(SERVICE_PRINCIPAL_DISABLED, client_id=client.app_id, name=client.display_name)

        outcome = grant.authorize(GrantContext(request, tenant, authenticated, directory))
        lifetime = tenant.access_token_lifetime_seconds
        claims = app_only_access_token(
            origin=self._origin,
            tenant_id=tenant.id,
            audience=outcome.audience,
            version=outcome.resource.access_token_version,
            client_app_id=client.app_id,
            client_auth_method=authenticated.method,
            subject=outcome.subject,
            now=int(now),
            lifetime=lifetime,
        )
        access_token = self._signer.sign(claims)
        if request.endpoint_version == 1:
            # The v1 endpoint writes numbers as strings, except where clients need integers.
            return {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "expires_on": str(claims["exp"]),
                "not_before": str(claims["nbf"]),
                "resource": outcome.audience,
                "access_token": access_token,
            }
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "scope": outcome.scope,
            "access_token": access_token,
        }
