"""Reading the audit log: queries with filters and keyset continuation, and the entries in Azure DevOps'
`DecoratedAuditLogEntry` shape (Audit - Audit Log - Query, api-version 7.1-preview.1). Never commits."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from entryway.devops.audit.repository import AuditQuery, AuditRepository
from entryway.kit.clock import as_utc
from entryway.kit.ids import parse_guid
from entryway.store.models import AuditEventRow

DEFAULT_BATCH_SIZE = 200
MAX_BATCH_SIZE = 1000
NO_ACTOR = "00000000-0000-0000-0000-000000000000"


class AuditQueryError(ValueError):
    """A query the caller got wrong; the message says what."""


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEventRow]
    principal_names: dict[str, str]  # object id -> UPN (or app id)
    continuation_token: str | None

    @property
    def has_more(self) -> bool:
        return self.continuation_token is not None


def parse_time(value: str, name: str) -> datetime:
    """An ISO 8601 time; one without an offset is UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise AuditQueryError(f"{name} '{value}' is not an ISO 8601 time") from exc
    return as_utc(parsed)


def encode_continuation(row: AuditEventRow) -> str:
    raw = f"{as_utc(row.timestamp).isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continuation(token: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        at, _, row_id = raw.partition("|")
        if parse_guid(row_id) is None:
            raise ValueError(row_id)
        return as_utc(datetime.fromisoformat(at)), row_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise AuditQueryError("the continuation token is not one this service returned") from exc


def query_page(session: Session, query: AuditQuery, *, continuation: str | None = None) -> AuditPage:
    """One page, newest first; `continuation` comes from the previous page."""
    if not 1 <= query.limit <= MAX_BATCH_SIZE:
        raise AuditQueryError(f"batchSize must be between 1 and {MAX_BATCH_SIZE}")
    if continuation:
        query = replace(query, before=decode_continuation(continuation))
    repository = AuditRepository(session)
    rows = repository.query(replace(query, limit=query.limit + 1))
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    actors = {row.actor_id for row in rows if row.actor_id}
    names = repository.principal_names(query.organization_id, actors)
    return AuditPage(rows, names, encode_continuation(rows[-1]) if more else None)


def resolve_principal(session: Session, principal: str) -> frozenset[str]:
    """The object ids a UPN, an app id or an object id stands for (itself, when it is an object id)."""
    found = AuditRepository(session).object_ids_of(principal)
    guid = parse_guid(principal.lower())
    return found | {guid} if guid else found


def _category(action: str) -> str:
    area, _, verb = action.partition(".")
    if area == "Authentication":
        return "access"
    if verb in {"Create", "Add"}:
        return "create"
    if verb in {"Delete", "Remove"}:
        return "remove"
    return "modify"


def _summary(row: AuditEventRow) -> str:
    who = row.actor_name or row.actor_id or "An anonymous caller"
    what = f"{row.method} {row.path}".strip()
    if row.action == "Authentication.Refused":
        reason = row.details.get("reason", "")
        return f"{who} was refused ({row.credential_kind}) at {what}" + (f": {reason}" if reason else "")
    if row.action == "Authentication.Accepted":
        return f"{who} was authenticated ({row.credential_kind}) at {what}"
    return f"{who}: {row.action}" + (f" at {what}" if what else "")


def decorated_entry(row: AuditEventRow, principal_names: dict[str, str]) -> dict[str, Any]:
    """One `DecoratedAuditLogEntry`."""
    category = _category(row.action)
    actor = row.actor_id or NO_ACTOR
    org_scope = row.organization_id or NO_ACTOR
    return {
        "id": row.id,
        "correlationId": row.id,
        "activityId": row.id,
        "actorCUID": actor,
        "actorUserId": actor,
        "actorUPN": principal_names.get(row.actor_id or "", ""),
        "authenticationMechanism": row.credential_kind,
        "timestamp": as_utc(row.timestamp).isoformat().replace("+00:00", "Z"),
        "scopeType": "organization",
        "scopeDisplayName": f"{row.organization_name} (Organization)",
        "scopeId": org_scope,
        "projectId": row.details.get("projectId"),
        "projectName": row.details.get("projectName"),
        "ipAddress": row.client_address,
        "userAgent": row.details.get("userAgent", ""),
        "actionId": row.action,
        "data": {
            **row.details,
            "outcome": row.outcome,
            "method": row.method,
            "path": row.path,
            "status": row.status,
        },
        "details": _summary(row),
        "area": row.action.partition(".")[0],
        "category": category,
        "categoryDisplayName": category.capitalize(),
        "actorDisplayName": row.actor_name or "Anonymous",
    }
