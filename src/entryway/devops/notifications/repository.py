"""Every query of the notification outbox. Never commits."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from entryway.store.models import NotificationRow


class NotificationRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: NotificationRow) -> None:
        self._session.add(row)

    def list_for(self, object_id: str, tenant_id: str, *, unread_only: bool) -> list[NotificationRow]:
        statement = select(NotificationRow).where(
            NotificationRow.recipient_object_id == object_id,
            NotificationRow.recipient_tenant_id == tenant_id,
        )
        if unread_only:
            statement = statement.where(NotificationRow.read_at.is_(None))
        return list(self._session.scalars(statement.order_by(NotificationRow.created_at.desc())))

    def list_all(self, *, limit: int) -> list[NotificationRow]:
        statement = select(NotificationRow).order_by(NotificationRow.created_at.desc()).limit(limit)
        return list(self._session.scalars(statement))

    def find_for(self, notification_id: str, object_id: str, tenant_id: str) -> NotificationRow | None:
        row = self._session.get(NotificationRow, notification_id)
        if row is None or row.recipient_object_id != object_id or row.recipient_tenant_id != tenant_id:
            return None
        return row
