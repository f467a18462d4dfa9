"""Every query of the leak reports: reporters, reports, and the PAT a reported token is. Never commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from entryway.store.models import (
    LeakReporterRow,
    LeakReportRow,
    OrganizationRow,
    PersonalAccessTokenRow,
)


@dataclass(frozen=True)
class LeakedPat:
    """What a leak report needs of the PAT it names (never its digest)."""

    authorization_id: str
    owner_object_id: str
    owner_tenant_id: str
    owner_name: str
    display_name: str
    scope: str
    organization_id: str | None
    valid_to: datetime
    revoked_at: datetime | None


class LeakRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    # --- reporters -------------------------------------------------------------------------------------

    def add_reporter(self, row: LeakReporterRow) -> None:
        self._session.add(row)

    def find_reporter(self, key_identifier: str) -> LeakReporterRow | None:
        return self._session.get(LeakReporterRow, key_identifier)

    def list_reporters(self) -> list[LeakReporterRow]:
        return list(self._session.scalars(select(LeakReporterRow).order_by(LeakReporterRow.name)))

    def delete_reporter(self, row: LeakReporterRow) -> None:
        self._session.delete(row)

    # --- reports ---------------------------------------------------------------------------------------

    def add_report(self, row: LeakReportRow) -> None:
        self._session.add(row)

    def list_reports(self, *, limit: int) -> list[LeakReportRow]:
        statement = select(LeakReportRow).order_by(LeakReportRow.received_at.desc()).limit(limit)
        return list(self._session.scalars(statement))

    # --- the PATs reported -----------------------------------------------------------------------------

    def find_pat_by_digest(self, digest: str) -> LeakedPat | None:
        row = self._session.execute(
            select(
                PersonalAccessTokenRow.authorization_id,
                PersonalAccessTokenRow.owner_object_id,
                PersonalAccessTokenRow.owner_tenant_id,
                PersonalAccessTokenRow.owner_name,
                PersonalAccessTokenRow.display_name,
                PersonalAccessTokenRow.scope,
                PersonalAccessTokenRow.organization_id,
                PersonalAccessTokenRow.valid_to,
                PersonalAccessTokenRow.revoked_at,
            ).where(PersonalAccessTokenRow.digest == digest)
        ).first()
        return None if row is None else LeakedPat(*row)

    def find_pat_names(self, authorization_ids: list[str]) -> dict[str, tuple[str, str]]:
        """authorization id -> (owner name, display name), for the report listing."""
        if not authorization_ids:
            return {}
        rows = self._session.execute(
            select(
                PersonalAccessTokenRow.authorization_id,
                PersonalAccessTokenRow.owner_name,
                PersonalAccessTokenRow.display_name,
            ).where(PersonalAccessTokenRow.authorization_id.in_(authorization_ids))
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    def revoke_if_active(self, authorization_id: str, now: datetime) -> bool:
        """Revoke the PAT unless it is revoked already, in one conditional UPDATE: of two reports of one token
        racing, exactly one revokes (and notifies)."""
        result = self._session.execute(
            update(PersonalAccessTokenRow)
            .where(
                PersonalAccessTokenRow.authorization_id == authorization_id,
                PersonalAccessTokenRow.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    # --- organizations, for the audit rows ---------------------------------------------------------------

    def organizations_of_tenant(self, tenant_id: str) -> list[OrganizationRow]:
        statement = select(OrganizationRow).where(OrganizationRow.tenant_id == tenant_id)
        return list(self._session.scalars(statement.order_by(OrganizationRow.name_key)))

    def find_organization(self, organization_id: str) -> OrganizationRow | None:
        return self._session.get(OrganizationRow, organization_id)
