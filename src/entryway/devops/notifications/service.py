"""The notification outbox: one row per message the service would mail (Azure DevOps mails the owner of a
leaked PAT). Nothing is sent; the CLI (`entryway notifications list`) and the PAT page show the outbox.

Never commits: the caller's unit of work writes the notification with the change it is about (a leaked PAT
revoked and its owner told, or neither).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from entryway.devops.notifications.repository import NotificationRepository
from entryway.kit.clock import Clock, as_utc
from entryway.kit.ids import new_guid, parse_guid
from entryway.store.models import NotificationRow

# Column widths (devops_notifications): longer text is cut, never refused; a notice must not fail the change.
_NAME_WIDTH = 256
_KIND_WIDTH = 32
_SUBJECT_WIDTH = 256
_BODY_WIDTH = 4096


class NotificationKind(enum.StrEnum):
    PAT_LEAK_REVOKED = "patLeakRevoked"  # a leaked PAT was revoked
    PAT_LEAK_DETECTED = "patLeakDetected"  # a leaked PAT was found; the tenant policy kept it working


class NotificationNotFound(Exception):
    """No such notification for this recipient (a typed error: the caller answers 404 or an error line)."""


@dataclass(frozen=True)
class Notification:
    id: str
    recipient_object_id: str
    recipient_tenant_id: str
    recipient_name: str
    organization_id: str | None
    kind: str
    subject: str
    body: str
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def from_row(cls, row: NotificationRow) -> Notification:
        return cls(
            row.id,
            row.recipient_object_id,
            row.recipient_tenant_id,
            row.recipient_name,
            row.organization_id,
            row.kind,
            row.subject,
            row.body,
            as_utc(row.created_at),
            None if row.read_at is None else as_utc(row.read_at),
        )

    @property
    def is_read(self) -> bool:
        return self.read_at is not None

    def as_json(self) -> dict[str, str | None]:
        return {
            "id": self.id,
            "recipientObjectId": self.recipient_object_id,
            "recipientTenantId": self.recipient_tenant_id,
            "recipientName": self.recipient_name,
            "organizationId": self.organization_id,
            "kind": self.kind,
            "subject": self.subject,
            "body": self.body,
            "createdAt": self.created_at.isoformat(),
            "readAt": None if self.read_at is None else self.read_at.isoformat(),
        }


class NotificationService:
    def __init__(self, session: Session, clock: Clock) -> None:
        self._clock = clock
        self._repo = NotificationRepository(session)

    def notify(
        self,
        *,
        recipient_object_id: str,
        tenant_id: str,
        recipient_name: str,
        organization_id: str | None,
        kind: str,
        subject: str,
        body: str,
    ) -> Notification:
        """Put a message for a user in the outbox (in the caller's unit of work). Keyword-only: seven strings in
        a row are too easy to pass in the wrong order."""
        row = NotificationRow(
            id=new_guid(),
            recipient_object_id=recipient_object_id,
            recipient_tenant_id=tenant_id,
            recipient_name=recipient_name[:_NAME_WIDTH],
            organization_id=organization_id,
            kind=kind[:_KIND_WIDTH],
            subject=subject[:_SUBJECT_WIDTH],
            body=body[:_BODY_WIDTH],
            created_at=self._clock.now(),
            read_at=None,
        )
        self._repo.add(row)
        return Notification.from_row(row)

    def list_for(self, object_id: str, tenant_id: str, *, unread_only: bool = False) -> list[Notification]:
        """A user's notifications, newest first."""
        rows = self._repo.list_for(object_id, tenant_id, unread_only=unread_only)
        return [Notification.from_row(r) for r in rows]

    def list_all(self, *, limit: int = 100) -> list[Notification]:
        """Every user's notifications, newest first (the CLI, for the server's administrator)."""
        return [Notification.from_row(r) for r in self._repo.list_all(limit=max(limit, 1))]

    def mark_read(self, object_id: str, tenant_id: str, notification_id: str) -> Notification:
        """Mark one of the user's notifications read; marking it again keeps the first time.
        Raises `NotificationNotFound` for an id that is not a GUID or not this user's."""
        key = parse_guid(notification_id) if isinstance(notification_id, str) else None
        row = None if key is None else self._repo.find_for(key, object_id, tenant_id)
        if row is None:
            raise NotificationNotFound(notification_id)
        if row.read_at is None:
            row.read_at = self._clock.now()
        return Notification.from_row(row)
