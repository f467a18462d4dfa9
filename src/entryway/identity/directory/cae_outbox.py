"""The identity platform's outbox of critical events for continuous access evaluation: every change that must
reach resource services within seconds (a user disabled, deleted or re-enabled, a password reset, refresh tokens
revoked, MFA newly required, a tenant's Conditional Access policies changed) adds one row to `cae_events` in the
same transaction as the change itself. Resource services (the DevOps service's devops/cae feed) read it, in every
process that shares the database. Never commits: the caller's unit of work does."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from entryway.store.models import ContinuousAccessEventRow


class CaeEventKind(StrEnum):
    """Entra's critical events (CAE documentation, "Critical event evaluation"), plus the tenant's policy set."""

    USER_DISABLED = "userDisabled"
    USER_ENABLED = "userEnabled"
    USER_DELETED = "userDeleted"
    PASSWORD_RESET = "passwordReset"  # noqa: S105 - an event name, not a secret
    REFRESH_TOKENS_REVOKED = "refreshTokensRevoked"
    MFA_REQUIRED = "mfaRequired"
    POLICIES_CHANGED = "policiesChanged"


# The events about one user that make a token issued before them unacceptable.
USER_REVOKING_KINDS = frozenset(
    {
        CaeEventKind.USER_DISABLED,
        CaeEventKind.USER_DELETED,
        CaeEventKind.PASSWORD_RESET,
        CaeEventKind.REFRESH_TOKENS_REVOKED,
        CaeEventKind.MFA_REQUIRED,
    }
)


def publish_event(
    session: Session,
    *,
    tenant_id: str,
    kind: CaeEventKind,
    at: datetime,
    subject_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Add one critical event to the outbox, in the caller's transaction (so it is visible exactly when the
    change is). `subject_id` is the user's object id for user events and None for tenant events; a
    POLICIES_CHANGED event carries the tenant's whole policy set (PolicySet.to_graph()) as its payload."""
    if kind is CaeEventKind.POLICIES_CHANGED:
        if subject_id is not None:
            raise ValueError("a policiesChanged event has no subject")
    elif subject_id is None:
        raise ValueError(f"a {kind} event needs the user's object id")
    session.add(
        ContinuousAccessEventRow(
            tenant_id=tenant_id,
            kind=str(kind),
            subject_id=subject_id,
            occurred_at=at,
            payload=dict(payload or {}),
        )
    )
