"""Which resource and delegated scopes a user token carries: the scope a client asked for, checked against
the resource's published scopes and what the user or an administrator consented to.

https://learn.microsoft.com/entra/identity-platform/scopes-oidc. `{resource}/.default` means "every scope
consented for this client on this resource"; named scopes must each be published and consented.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from entryway.identity.protocol.errors import (
    CONSENT_REQUIRED,
    INVALID_SCOPE,
    RESOURCE_NOT_FOUND,
    SCOPE_MULTIPLE_RESOURCES,
    OAuthError,
)
from entryway.identity.protocol.model import Client, DirectoryPort, Resource, Tenant
from entryway.identity.protocol.scopes import RESERVED_SCOPES, resource_of, split_scope
from entryway.kit.ids import parse_guid

DEFAULT = ".default"


class ConsentSource(Protocol):
    def consented_scopes(
        self, *, tenant_id: str, client_id: str, user_id: str, resource_app_id: str
    ) -> frozenset[str]: ...


@dataclass(frozen=True)
class UserScope:
    """A user-flow scope string taken apart."""

    resource: str | None  # the identifier as asked (GUID or URI), None when only OIDC scopes were asked
    values: tuple[str, ...]
    reserved: tuple[str, ...]


@dataclass(frozen=True)
class Delegation:
    resource: Resource | None
    audience: str
    access_token_version: int
    scopes: tuple[str, ...]  # the `scp` values


def parse_user_scope(scope: str) -> UserScope:
    reserved: list[str] = []
    resources: dict[str, list[str]] = {}
    for item in split_scope(scope):
        if item.lower() in RESERVED_SCOPES:
            reserved.append(item.lower())
            continue
        resource, value = resource_of(item)
        if not value or not resource:
            # A bare name ("user_impersonation") would be a Microsoft Graph scope in Entra; Entryway has no
            # Graph, so the scope names nothing it could issue.
            raise OAuthError(INVALID_SCOPE, detail="scope names no resource", scope=item)
        resources.setdefault(resource, []).append(value)
    if len(resources) > 1:
        raise OAuthError(SCOPE_MULTIPLE_RESOURCES, scope=scope)
    if not resources:
        return UserScope(None, (), tuple(reserved))
    ((resource, values),) = resources.items()
    return UserScope(resource, tuple(values), tuple(reserved))


def audience_as_asked(identifier: str, resource: Resource) -> str:
    """v1 tokens carry the resource as it was asked for (GUID or URI); v2 tokens always the app id. A GUID
    names the app id itself, which Entra writes in lower case; a URI keeps its path as asked, with the
    case-insensitive scheme and host in lower case (RFC 3986 section 6.2.2.1)."""
    if resource.access_token_version != 1 or parse_guid(identifier):
        return resource.app_id
    parts = urlsplit(identifier)
    return parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower()).geturl()


def resolve_delegation(
    scope: str,
    *,
    tenant: Tenant,
    client: Client,
    user_id: str,
    directory: DirectoryPort,
    consents: ConsentSource,
) -> Delegation:
    """Raises 70011/28000 for a malformed scope, 500011 for an unknown resource and 65001 (consent_required)
    when the user has not consented. The sign-in pages catch the last to show the consent page."""
    asked = parse_user_scope(scope)
    if asked.resource is None:
        # Only OpenID scopes: Entra would issue a Microsoft Graph token. Entryway issues one for the client
        # itself, carrying the OpenID scopes, so that the sign-in still succeeds.
        oidc = tuple(s for s in asked.reserved if s != "offline_access")
        return Delegation(None, client.app_id, 2, oidc or ("openid",))
    resource = directory.find_resource(tenant.id, asked.resource)
    if resource is None:
        raise OAuthError(RESOURCE_NOT_FOUND, resource=asked.resource, directory=tenant.display_name)
    consented = consents.consented_scopes(
        tenant_id=tenant.id, client_id=client.app_id, user_id=user_id, resource_app_id=resource.app_id
    )
    published = set(resource.delegated_scopes)
    if DEFAULT in asked.values:
        if len(asked.values) > 1:
            raise OAuthError(INVALID_SCOPE, detail=".default mixed with named scopes", scope=scope)
        granted = tuple(sorted(consented & published))
    else:
        unknown = [v for v in asked.values if v not in published]
        if unknown:
            raise OAuthError(INVALID_SCOPE, detail=f"unpublished scopes {unknown}", scope=scope)
        granted = tuple(v for v in asked.values if v in consented)
        if len(granted) != len(asked.values):
            granted = ()
    if not granted:
        raise OAuthError(
            CONSENT_REQUIRED,
            detail=f"no consent for {asked.values} on {resource.app_id}",
            client_id=client.app_id,
            name=client.display_name,
        )
    return Delegation(
        resource,
        audience_as_asked(asked.resource, resource),
        resource.access_token_version,
        granted,
    )
