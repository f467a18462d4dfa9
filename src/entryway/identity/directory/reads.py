"""The directory as the token pipeline reads it: `DirectoryPort` over the database.

These are the hot-path reads of the token endpoint, so each is one Core query returning plain values. The
statements are built once, with bound parameters: building a `select()` and its cache key costs several
times what SQLite takes to answer it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

import orjson
from sqlalchemy import Connection, Row, bindparam, exists, select

from entryway.identity.directory.groups import DEFAULT_USER_ROLE, role_template_ids, transitive_group_ids
from entryway.identity.policy.model import NamedLocation, Policy, PolicySet, parse_ip_range
from entryway.identity.protocol.model import (
    Certificate,
    Client,
    ClientSecret,
    FederatedCredential,
    Memberships,
    Resource,
    Tenant,
    User,
)
from entryway.kit.clock import as_utc
from entryway.kit.ids import parse_guid
from entryway.store.models import (
    ApplicationRow,
    AppRoleAssignmentRow,
    CertificateRow,
    ClientSecretRow,
    ConditionalAccessPolicyRow,
    FederatedCredentialRow,
    IdentifierUriRow,
    NamedLocationRow,
    ServicePrincipalRow,
    TenantDomainRow,
    TenantRow,
    UserRow,
)

T = TypeVar("T")

_TENANT = select(
    TenantRow.id,
    TenantRow.display_name,
    TenantRow.access_token_lifetime_seconds,
    TenantRow.refresh_token_inactivity_seconds,
    TenantRow.sign_in_frequency_seconds,
    TenantRow.mfa_required_default,
    exists().where(ConditionalAccessPolicyRow.tenant_id == TenantRow.id).label("has_policies"),
)
_TENANT_BY_ID = _TENANT.where(TenantRow.id == bindparam("tenant_id"))
_TENANT_BY_DOMAIN = _TENANT.join(TenantDomainRow).where(TenantDomainRow.name == bindparam("domain"))

_CLIENT = (
    select(
        ApplicationRow.app_id,
        ApplicationRow.display_name,
        ServicePrincipalRow.object_id,
        ServicePrincipalRow.account_enabled,
        ApplicationRow.public_client,
        ClientSecretRow.key_id,
        ClientSecretRow.digest,
        ClientSecretRow.expires_at,
    )
    .join(ServicePrincipalRow, ServicePrincipalRow.app_id == ApplicationRow.app_id)
    .outerjoin(ClientSecretRow, ClientSecretRow.application_object_id == ApplicationRow.object_id)
    .where(
        ApplicationRow.app_id == bindparam("client_id"),
        ServicePrincipalRow.tenant_id == bindparam("tenant_id"),
    )
)

_RESOURCE = select(
    ApplicationRow.app_id,
    ApplicationRow.display_name,
    ApplicationRow.access_token_version,
    ApplicationRow.delegated_scopes,
    ApplicationRow.app_roles,
)
_IN_TENANT = (ServicePrincipalRow, ServicePrincipalRow.app_id == ApplicationRow.app_id)
_RESOURCE_BY_APP_ID = (
    _RESOURCE.where(ApplicationRow.app_id == bindparam("app_id"))
    .join(*_IN_TENANT)
    .where(ServicePrincipalRow.tenant_id == bindparam("tenant_id"))
)
_RESOURCE_BY_URI = (
    _RESOURCE.join(IdentifierUriRow)
    .where(IdentifierUriRow.uri.in_(bindparam("uris", expanding=True)))
    .join(*_IN_TENANT)
    .where(ServicePrincipalRow.tenant_id == bindparam("tenant_id"))
)

_APP_ROLES_GRANTED = (
    select(AppRoleAssignmentRow.role)
    .where(
        AppRoleAssignmentRow.tenant_id == bindparam("tenant_id"),
        AppRoleAssignmentRow.principal_id == bindparam("principal_id"),
        AppRoleAssignmentRow.resource_app_id == bindparam("resource_app_id"),
    )
    .order_by(AppRoleAssignmentRow.role)
)


_APPLICATION_EXISTS = select(ApplicationRow.app_id).where(ApplicationRow.app_id == bindparam("app_id"))

_CERTIFICATES = (
    select(
        CertificateRow.key_id,
        CertificateRow.thumbprint_sha1,
        CertificateRow.thumbprint_sha256,
        CertificateRow.certificate_der,
        CertificateRow.not_before,
        CertificateRow.not_after,
    )
    .join(ApplicationRow, ApplicationRow.object_id == CertificateRow.application_object_id)
    .where(ApplicationRow.app_id == bindparam("app_id"))
)
_FEDERATED_CREDENTIALS = select(
    FederatedCredentialRow.name,
    FederatedCredentialRow.issuer,
    FederatedCredentialRow.subject,
    FederatedCredentialRow.claims_matching_expression,
    FederatedCredentialRow.audiences,
).where(FederatedCredentialRow.owner_app_id == bindparam("app_id"))

_USER = select(
    UserRow.object_id,
    UserRow.tenant_id,
    UserRow.user_principal_name,
    UserRow.display_name,
    UserRow.account_enabled,
    UserRow.mfa_required,
    TenantRow.mfa_required_default,
    UserRow.totp_enrolled_at,
).join(TenantRow, TenantRow.id == UserRow.tenant_id)
_USER_BY_ID = _USER.where(
    UserRow.object_id == bindparam("object_id"), UserRow.tenant_id == bindparam("tenant_id")
)
_USER_BY_UPN = _USER.where(UserRow.user_principal_name == bindparam("upn"))

_POLICIES = (
    select(
        ConditionalAccessPolicyRow.id,
        ConditionalAccessPolicyRow.display_name,
        ConditionalAccessPolicyRow.state,
        ConditionalAccessPolicyRow.conditions,
        ConditionalAccessPolicyRow.grant_controls,
        ConditionalAccessPolicyRow.session_controls,
    )
    .where(ConditionalAccessPolicyRow.tenant_id == bindparam("tenant_id"))
    .order_by(ConditionalAccessPolicyRow.created_at, ConditionalAccessPolicyRow.id)
)
_NAMED_LOCATIONS = (
    select(
        NamedLocationRow.id,
        NamedLocationRow.display_name,
        NamedLocationRow.is_trusted,
        NamedLocationRow.ip_ranges,
    )
    .where(NamedLocationRow.tenant_id == bindparam("tenant_id"))
    .order_by(NamedLocationRow.created_at, NamedLocationRow.id)
)


class SqlDirectory:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def find_tenant(self, ref: str) -> Tenant | None:
        guid = parse_guid(ref)
        if guid is not None:
            row = self._connection.execute(_TENANT_BY_ID, {"tenant_id": guid}).first()
        else:
            row = self._connection.execute(_TENANT_BY_DOMAIN, {"domain": ref.lower()}).first()
        if row is None:
            return None
        return Tenant(row[0], row[1], row[2], row[3], row[4], bool(row[5]), has_policies=bool(row[6]))

    def find_client(self, tenant_id: str, client_id: str) -> Client | None:
        rows = self._connection.execute(_CLIENT, {"client_id": client_id, "tenant_id": tenant_id}).all()
        if not rows:
            return None
        first = rows[0]
        secrets = tuple(ClientSecret(r[5], r[6], as_utc(r[7])) for r in rows if r[5] is not None)
        return Client(first[0], first[1], first[2], bool(first[3]), secrets, public_client=bool(first[4]))

    def find_resource(self, tenant_id: str, identifier: str) -> Resource | None:
        guid = parse_guid(identifier)
        params: dict[str, object] = {"tenant_id": tenant_id}
        if guid is not None:
            query = _RESOURCE_BY_APP_ID
            params["app_id"] = guid
        else:
            # az asks for `https://management.core.windows.net//.default`: the URI keeps a trailing slash.
            query = _RESOURCE_BY_URI
            params["uris"] = sorted({identifier.lower(), identifier.lower().rstrip("/")})
        row = self._connection.execute(query, params).first()
        if row is None:
            return None
        return Resource(row[0], row[1], row[2], tuple(row[3] or ()), tuple(row[4] or ()))

    def find_app_roles_granted(
        self, tenant_id: str, client_sp_id: str, resource_app_id: str
    ) -> tuple[str, ...]:
        params = {"tenant_id": tenant_id, "principal_id": client_sp_id, "resource_app_id": resource_app_id}
        return tuple(self._connection.scalars(_APP_ROLES_GRANTED, params))

    def application_exists(self, app_id: str) -> bool:
        """For tenant-independent requests, which name no directory to look the client up in."""
        return self._connection.execute(_APPLICATION_EXISTS, {"app_id": app_id}).first() is not None

    def find_user(self, tenant_id: str, object_id: str) -> User | None:
        row = self._connection.execute(_USER_BY_ID, {"object_id": object_id, "tenant_id": tenant_id}).first()
        return None if row is None else _user(row)

    def find_user_by_upn(self, upn: str) -> User | None:
        row = self._connection.execute(_USER_BY_UPN, {"upn": upn.strip().lower()}).first()
        return None if row is None else _user(row)

    def find_memberships(self, tenant_id: str, object_id: str) -> Memberships:
        groups = transitive_group_ids(self._connection, tenant_id, object_id)
        roles = sorted({DEFAULT_USER_ROLE, *role_template_ids(self._connection, tenant_id, object_id)})
        return Memberships(tuple(groups), tuple(roles))

    def find_certificates(self, app_id: str) -> tuple[Certificate, ...]:
        rows = self._connection.execute(_CERTIFICATES, {"app_id": app_id}).all()
        return tuple(Certificate(r[0], r[1], r[2], r[3], as_utc(r[4]), as_utc(r[5])) for r in rows)

    def find_federated_credentials(self, app_id: str) -> tuple[FederatedCredential, ...]:
        rows = self._connection.execute(_FEDERATED_CREDENTIALS, {"app_id": app_id}).all()
        return tuple(FederatedCredential(r[0], r[1], r[2], r[3], tuple(r[4] or ())) for r in rows)

    def find_policy_set(self, tenant_id: str) -> PolicySet:
        policy_rows = self._connection.execute(_POLICIES, {"tenant_id": tenant_id}).all()
        if not policy_rows:
            # Locations matter only to policies; a tenant without policies is the common, cheap case.
            return PolicySet()
        location_rows = self._connection.execute(_NAMED_LOCATIONS, {"tenant_id": tenant_id}).all()
        return policy_set_from_rows(policy_rows, location_rows)


# Parsed policies and locations by their stored content: validating a policy costs tens of microseconds, and the
# token endpoint reads a tenant's set at every issuance. Content-keyed, so a change is never served stale.
_PARSED: dict[bytes, Any] = {}
_MAX_PARSED = 4096


def _parsed(kind: str, row: Sequence[Any], parse: Callable[[Sequence[Any]], T]) -> T:
    key = orjson.dumps([kind, *row])
    found = _PARSED.get(key)
    if found is None:
        if len(_PARSED) >= _MAX_PARSED:
            _PARSED.clear()
        found = _PARSED[key] = parse(row)
    return cast(T, found)


def _location(r: Sequence[Any]) -> NamedLocation:
    return NamedLocation(r[0], r[1], bool(r[2]), tuple(parse_ip_range(c) for c in (r[3] or ())))


def _policy(r: Sequence[Any]) -> Policy:
    graph = {
        "id": r[0],
        "displayName": r[1],
        "state": r[2],
        "conditions": r[3],
        "grantControls": r[4],
        "sessionControls": r[5],
    }
    return Policy.from_graph(graph)


def policy_set_from_rows(
    policy_rows: Sequence[Row[Any]] | Sequence[tuple[Any, ...]],
    location_rows: Sequence[Row[Any]] | Sequence[tuple[Any, ...]],
) -> PolicySet:
    """Stored rows were validated by `identity.policy` when written; an unreadable one raises rather than
    being skipped, since a skipped policy would silently allow what it blocks."""
    locations = tuple(_parsed("location", tuple(r[:4]), _location) for r in location_rows)
    policies = tuple(_parsed("policy", tuple(r[:6]), _policy) for r in policy_rows)
    return PolicySet(policies, locations)


def _user(row: Row[str, str, str, str, bool, bool | None, bool, datetime | None]) -> User:
    mfa_required = bool(row[6]) if row[5] is None else bool(row[5])
    return User(
        row[0], row[1], row[2], row[3], bool(row[4]), mfa_required, has_authenticator=row[7] is not None
    )
