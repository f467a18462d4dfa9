"""The managed identities this host carries, read from the directory (one Core query)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from entryway.identity.managed.selection import HostIdentity
from entryway.store.models import ManagedIdentityRow, ServicePrincipalRow

_ON_HOST = (
    select(
        ManagedIdentityRow.object_id,
        ManagedIdentityRow.app_id,
        ManagedIdentityRow.tenant_id,
        ManagedIdentityRow.kind,
        ManagedIdentityRow.resource_id,
        ServicePrincipalRow.display_name,
        ServicePrincipalRow.account_enabled,
    )
    .join(ServicePrincipalRow, ServicePrincipalRow.object_id == ManagedIdentityRow.object_id)
    .where(ManagedIdentityRow.on_host.is_(True))
    .order_by(ManagedIdentityRow.created_at, ManagedIdentityRow.object_id)
)


class SqlHostIdentities:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def find_on_host(self) -> tuple[HostIdentity, ...]:
        return tuple(
            HostIdentity(r[0], r[1], r[2], r[3], r[4].lower(), r[5], bool(r[6]))
            for r in self._connection.execute(_ON_HOST)
        )
