"""The directory as the token pipeline reads it: `DirectoryPort` over the database.

These are the hot-path reads of the token endpoint, so each is one Core query returning plain values.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from entryway.identity.protocol.model import Client, ClientSecret, Resource, Tenant
from entryway.kit.clock import as_utc
from entryway.kit.ids import parse_guid
from entryway.store.models import (
    ApplicationRow,
    AppRoleAssignmentRow,
    ClientSecretRow,
    IdentifierUriRow,
    ServicePrincipalRow,
    TenantDomainRow,
    TenantRow,
)

_TENANT_COLUMNS = (TenantRow.id, TenantRow.display_name, TenantRow.access_token_lifetime_seconds)


class SqlDirectory:
    def __init__(self, session: Session) -> None:
        self._session = session

    def find_tenant(self, ref: str) -> Tenant | None:
        guid = parse_guid(ref)
        if guid is not None:
            query = select(*_TENANT_COLUMNS).where(TenantRow.id == guid)
        else:
            query = select(*_TENANT_COLUMNS).join(TenantDomainRow).where(TenantDomainRow.name == ref.lower())
        row = self._session.execute(query).first()
        return None if row is None else Tenant(row[0], row[1], row[2])

    def find_client(self, tenant_id: str, client_id: str) -> Client | None:
        rows = self._session.execute(
            select(
                ApplicationRow.app_id,
                ApplicationRow.display_name,
                ServicePrincipalRow.object_id,
                ServicePrincipalRow.account_enabled,
                ClientSecretRow.key_id,
                ClientSecretRow.digest,
                ClientSecretRow.expires_at,
            )
            .join(ServicePrincipalRow, ServicePrincipalRow.app_id == ApplicationRow.app_id)
            .outerjoin(ClientSecretRow, ClientSecretRow.application_object_id == ApplicationRow.object_id)
            .where(ApplicationRow.app_id == client_id, ServicePrincipalRow.tenant_id == tenant_id)
        ).all()
        if not rows:
            return None
        first = rows[0]
        secrets = tuple(ClientSecret(r[4], r[5], as_utc(r[6])) for r in rows if r[4] is not None)
        return Client(first[0], first[1], first[2], bool(first[3]), secrets)

    def find_resource(self, tenant_id: str, identifier: str) -> Resource | None:
        columns = (
            ApplicationRow.app_id,
            ApplicationRow.display_name,
            ApplicationRow.access_token_version,
            ApplicationRow.delegated_scopes,
            ApplicationRow.app_roles,
        )
        guid = parse_guid(identifier)
        if guid is not None:
            query = select(*columns).where(ApplicationRow.app_id == guid)
        else:
            # az asks for `https://management.core.windows.net//.default`: the URI keeps a trailing slash.
            uris = {identifier.lower(), identifier.lower().rstrip("/")}
            query = select(*columns).join(IdentifierUriRow).where(IdentifierUriRow.uri.in_(uris))
        query = query.join(ServicePrincipalRow, ServicePrincipalRow.app_id == ApplicationRow.app_id).where(
            ServicePrincipalRow.tenant_id == tenant_id
        )
        row = self._session.execute(query).first()
        if row is None:
            return None
        return Resource(row[0], row[1], row[2], tuple(row[3] or ()), tuple(row[4] or ()))

    def find_app_roles_granted(
        self, tenant_id: str, client_sp_id: str, resource_app_id: str
    ) -> tuple[str, ...]:
        return tuple(
            self._session.scalars(
                select(AppRoleAssignmentRow.role)
                .where(
                    AppRoleAssignmentRow.tenant_id == tenant_id,
                    AppRoleAssignmentRow.principal_id == client_sp_id,
                    AppRoleAssignmentRow.resource_app_id == resource_app_id,
                )
                .order_by(AppRoleAssignmentRow.role)
            )
        )
