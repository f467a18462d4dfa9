"""Every query of the PAT lifecycle: a user's PATs, one PAT by authorization id. Never commits."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from entryway.store.models import PersonalAccessTokenRow


class PatRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: PersonalAccessTokenRow) -> None:
        self._session.add(row)

    def list_for_owner(
        self, owner_object_id: str, owner_tenant_id: str, organization_id: str
    ) -> list[PersonalAccessTokenRow]:
        """The owner's PATs for this organization and their global ones: what they see from this organization."""
        statement = select(PersonalAccessTokenRow).where(
            PersonalAccessTokenRow.owner_object_id == owner_object_id,
            PersonalAccessTokenRow.owner_tenant_id == owner_tenant_id,
            or_(
                PersonalAccessTokenRow.organization_id == organization_id,
                PersonalAccessTokenRow.organization_id.is_(None),
            ),
        )
        return list(self._session.scalars(statement))

    def find_for_owner(
        self, authorization_id: str, owner_object_id: str, owner_tenant_id: str, organization_id: str
    ) -> PersonalAccessTokenRow | None:
        row = self._session.get(PersonalAccessTokenRow, authorization_id)
        if row is None or row.owner_object_id != owner_object_id or row.owner_tenant_id != owner_tenant_id:
            return None
        if row.organization_id not in (None, organization_id):
            return None
        return row
