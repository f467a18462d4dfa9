"""Every query of the PAT policies: tenant and organization policy rows and their allowlists. Never commits."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from entryway.store.models import (
    OrganizationRow,
    PatOrganizationPolicyRow,
    PatPolicyAllowlistRow,
    PatTenantPolicyRow,
)


class PatPolicyRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: object) -> None:
        self._session.add(row)

    def find_tenant_policy(self, tenant_id: str) -> PatTenantPolicyRow | None:
        return self._session.get(PatTenantPolicyRow, tenant_id)

    def find_org_policy(self, organization_id: str) -> PatOrganizationPolicyRow | None:
        return self._session.get(PatOrganizationPolicyRow, organization_id)

    def list_allowlist(self, owner_kind: str, owner_id: str) -> list[PatPolicyAllowlistRow]:
        return list(
            self._session.scalars(
                select(PatPolicyAllowlistRow)
                .where(
                    PatPolicyAllowlistRow.owner_kind == owner_kind, PatPolicyAllowlistRow.owner_id == owner_id
                )
                .order_by(PatPolicyAllowlistRow.created_at, PatPolicyAllowlistRow.id)
            )
        )

    def find_allowlist_entry(
        self, owner_kind: str, owner_id: str, policy: str, principal_object_id: str
    ) -> PatPolicyAllowlistRow | None:
        return self._session.scalars(
            select(PatPolicyAllowlistRow).where(
                PatPolicyAllowlistRow.owner_kind == owner_kind,
                PatPolicyAllowlistRow.owner_id == owner_id,
                PatPolicyAllowlistRow.policy == policy,
                PatPolicyAllowlistRow.principal_object_id == principal_object_id,
            )
        ).first()

    def delete_allowlist_entry(
        self, owner_kind: str, owner_id: str, policy: str, principal_object_id: str
    ) -> bool:
        result = self._session.execute(
            delete(PatPolicyAllowlistRow).where(
                PatPolicyAllowlistRow.owner_kind == owner_kind,
                PatPolicyAllowlistRow.owner_id == owner_id,
                PatPolicyAllowlistRow.policy == policy,
                PatPolicyAllowlistRow.principal_object_id == principal_object_id,
            )
        )
        return bool(getattr(result, "rowcount", 0))

    def find_org(self, organization_id: str) -> OrganizationRow | None:
        return self._session.get(OrganizationRow, organization_id)

    def list_orgs_of_tenant(self, tenant_id: str) -> list[OrganizationRow]:
        return list(
            self._session.scalars(
                select(OrganizationRow)
                .where(OrganizationRow.tenant_id == tenant_id)
                .order_by(OrganizationRow.name_key)
            )
        )
