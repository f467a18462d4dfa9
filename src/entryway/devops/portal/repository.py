"""What the administrators' pages read that no other DevOps package does: a tenant's users as the DevOps
service knows them (organization members) and organization names."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from entryway.devops.orgs.service import MemberKind
from entryway.store.models import MemberRow, OrganizationRow


class PortalRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def find_user_member(self, tenant_id: str, principal_name: str) -> tuple[str, str] | None:
        """(object id, display name) of a user who is a member of any organization of the tenant, by UPN
        (case-insensitive)."""
        query = (
            select(MemberRow.object_id, MemberRow.display_name)
            .join(OrganizationRow, OrganizationRow.id == MemberRow.organization_id)
            .where(
                OrganizationRow.tenant_id == tenant_id,
                MemberRow.kind == MemberKind.USER.value,
                func.lower(MemberRow.principal_name) == principal_name.strip().lower(),
            )
            .limit(1)
        )
        row = self._session.execute(query).first()
        return None if row is None else (row.object_id, row.display_name)

    def organization_names(self, tenant_id: str) -> dict[str, str]:
        query = select(OrganizationRow.id, OrganizationRow.name).where(OrganizationRow.tenant_id == tenant_id)
        return {row.id: row.name for row in self._session.execute(query)}
