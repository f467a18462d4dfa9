"""Every query on the organization and member tables."""

from __future__ import annotations

from sqlalchemy import Row, bindparam, delete, select
from sqlalchemy.orm import Session

from entryway.store.models import MemberRow, OrganizationRow, SettingRow

# Every authenticated request looks its member up: one Core statement, built once (building a select() and
# its cache key costs more than SQLite takes to answer it).
_MEMBER_BY_OBJECT_ID = select(
    MemberRow.id,
    MemberRow.organization_id,
    MemberRow.object_id,
    MemberRow.kind,
    MemberRow.display_name,
    MemberRow.principal_name,
    MemberRow.access_level,
    MemberRow.organization_admin,
).where(MemberRow.organization_id == bindparam("org_id"), MemberRow.object_id == bindparam("object_id"))


class OrgRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: object) -> None:
        self._session.add(row)
        self._session.flush()

    def find_by_name(self, name: str) -> OrganizationRow | None:
        return self._session.scalars(
            select(OrganizationRow).where(OrganizationRow.name_key == name.lower())
        ).first()

    def list_orgs(self) -> list[OrganizationRow]:
        return list(self._session.scalars(select(OrganizationRow).order_by(OrganizationRow.name_key)))

    def find_member_values(
        self, organization_id: str, object_id: str
    ) -> Row[str, str, str, str, str, str, str, bool] | None:
        """The member's columns, for request authentication (no ORM object)."""
        params = {"org_id": organization_id, "object_id": object_id}
        return self._session.connection().execute(_MEMBER_BY_OBJECT_ID, params).first()

    def find_member(self, organization_id: str, object_id: str) -> MemberRow | None:
        return self._session.scalars(
            select(MemberRow).where(
                MemberRow.organization_id == organization_id, MemberRow.object_id == object_id
            )
        ).first()

    def list_members(self, organization_id: str) -> list[MemberRow]:
        return list(
            self._session.scalars(
                select(MemberRow)
                .where(MemberRow.organization_id == organization_id)
                .order_by(MemberRow.created_at)
            )
        )

    def delete_member(self, organization_id: str, object_id: str) -> bool:
        result = self._session.execute(
            delete(MemberRow).where(
                MemberRow.organization_id == organization_id, MemberRow.object_id == object_id
            )
        )
        return bool(getattr(result, "rowcount", 0))

    def find_setting(self, name: str) -> str | None:
        row = self._session.get(SettingRow, name)
        return None if row is None else row.value
