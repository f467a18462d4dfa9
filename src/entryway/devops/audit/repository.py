"""Every query on the audit table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from entryway.store.models import AuditEventRow, MemberRow, UserRow


@dataclass(frozen=True)
class AuditQuery:
    """Filters of a query; every one optional. Entries come newest first."""

    organization_id: str | None = None
    organization_name: str | None = None  # for events of an organization that does not exist
    actor_ids: frozenset[str] | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    outcome: str | None = None
    # Keyset pagination: only entries older than this (timestamp, id).
    before: tuple[datetime, str] | None = None
    limit: int = 200


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def query(self, q: AuditQuery) -> list[AuditEventRow]:
        e = AuditEventRow
        stmt = select(e)
        if q.organization_id is not None:
            stmt = stmt.where(e.organization_id == q.organization_id)
        if q.organization_name is not None:
            stmt = stmt.where(e.organization_name == q.organization_name)
        if q.actor_ids is not None:
            stmt = stmt.where(e.actor_id.in_(sorted(q.actor_ids)))
        if q.since is not None:
            stmt = stmt.where(e.timestamp >= _naive(q.since))
        if q.until is not None:
            stmt = stmt.where(e.timestamp < _naive(q.until))
        if q.outcome is not None:
            stmt = stmt.where(e.outcome == q.outcome)
        if q.before is not None:
            at, row_id = _naive(q.before[0]), q.before[1]
            stmt = stmt.where(or_(e.timestamp < at, and_(e.timestamp == at, e.id < row_id)))
        stmt = stmt.order_by(e.timestamp.desc(), e.id.desc()).limit(q.limit)
        return list(self._session.scalars(stmt))

    def principal_names(self, organization_id: str | None, object_ids: set[str]) -> dict[str, str]:
        """UPNs (or app ids) by object id: the organization's members first, then the directory's users."""
        if not object_ids:
            return {}
        names: dict[str, str] = {}
        members = select(MemberRow.object_id, MemberRow.principal_name).where(
            MemberRow.object_id.in_(sorted(object_ids))
        )
        if organization_id is not None:
            members = members.where(MemberRow.organization_id == organization_id)
        for object_id, name in self._session.execute(members):
            names.setdefault(object_id, name)
        users = select(UserRow.object_id, UserRow.user_principal_name).where(
            UserRow.object_id.in_(sorted(object_ids - names.keys()))
        )
        for object_id, name in self._session.execute(users):
            names[object_id] = name
        return names

    def object_ids_of(self, principal: str) -> frozenset[str]:
        """The object ids a UPN, an app id or an object id names (a UPN may be a member of several orgs)."""
        key = principal.lower()
        found = set(
            self._session.scalars(
                select(MemberRow.object_id).where(
                    or_(func.lower(MemberRow.principal_name) == key, MemberRow.object_id == key)
                )
            )
        )
        found |= set(
            self._session.scalars(
                select(UserRow.object_id).where(
                    or_(UserRow.user_principal_name == key, UserRow.object_id == key)
                )
            )
        )
        return frozenset(found)


def _naive(value: datetime) -> datetime:
    """Timestamps are stored as naive UTC (SQLite keeps no offset); compare with the same."""
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
