"""Reading the sign-in log: the queries behind `entryway signins` and Graph's `auditLogs/signIns`, and the
Graph `signIn` shape (https://learn.microsoft.com/graph/api/resources/signin) an entry is shown in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from entryway.kit.clock import as_utc
from entryway.store.models import SignInLogRow

# Graph's page size limit for signIns.
MAX_PAGE_SIZE = 1000

# Graph's clientAppUsed and deviceDetail.operatingSystem spell the values the log stores as enums.
_CLIENT_APP_USED = {
    "browser": "Browser",
    "mobileAppsAndDesktopClients": "Mobile Apps and Desktop clients",
    "exchangeActiveSync": "Exchange ActiveSync",
    "other": "Other clients",
}
_OPERATING_SYSTEMS = {
    "windows": "Windows",
    "macOS": "MacOs",
    "linux": "Linux",
    "iOS": "Ios",
    "android": "Android",
    "windowsPhone": "WindowsPhone",
}
# Graph's signInEventTypes (beta) by the log's principal kind.
_EVENT_TYPES = {"servicePrincipal": "servicePrincipal", "managedIdentity": "managedIdentity"}
# Graph's authenticationProtocol (beta) for the log's protocols; token grants without a Graph name are "none".
_PROTOCOLS = {"deviceCode": "deviceCode", "ropc": "ropc"}


@dataclass(frozen=True)
class SignInQuery:
    """Filters on the log; every one given must match. Results are newest first."""

    tenant_id: str | None = None
    user_principal_name: str | None = None
    app_id: str | None = None
    since: datetime | None = None  # createdDateTime ge
    error_code: int | None = None  # status/errorCode eq
    failures_only: bool = False  # status/errorCode ne 0
    is_interactive: bool | None = None
    conditional_access_status: str | None = None
    limit: int = 100
    offset: int = 0


def _statement(query: SignInQuery) -> Select[SignInLogRow]:
    row = SignInLogRow
    conditions: list[ColumnElement[bool]] = []
    if query.tenant_id is not None:
        conditions.append(row.tenant_id == query.tenant_id)
    if query.user_principal_name is not None:
        conditions.append(row.user_principal_name == query.user_principal_name.lower())
    if query.app_id is not None:
        conditions.append(row.app_id == query.app_id.lower())
    if query.since is not None:
        conditions.append(row.created_at >= query.since)
    if query.error_code is not None:
        conditions.append(row.error_code == query.error_code)
    if query.failures_only:
        conditions.append(row.error_code != 0)
    if query.is_interactive is not None:
        conditions.append(row.is_interactive == query.is_interactive)
    if query.conditional_access_status is not None:
        conditions.append(row.conditional_access_status == query.conditional_access_status)
    return select(row).where(*conditions).order_by(row.created_at.desc(), row.id.desc())


def find_sign_ins(session: Session, query: SignInQuery) -> list[SignInLogRow]:
    """One page of entries (`limit` from `offset`), newest first."""
    statement = _statement(query).offset(query.offset).limit(query.limit)
    return list(session.scalars(statement))


def find_sign_in(session: Session, entry_id: str, tenant_id: str | None = None) -> SignInLogRow | None:
    row = session.get(SignInLogRow, entry_id)
    if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
        return None
    return row


def graph_time(value: datetime) -> str:
    """Graph's DateTimeOffset, in UTC with a Z."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign_in_to_graph(row: SignInLogRow) -> dict[str, Any]:
    """An entry as Graph's `signIn` (v1.0 properties, plus beta's authenticationProtocol, servicePrincipalId,
    signInEventTypes and userAgent, which Entryway records)."""
    event_type = _EVENT_TYPES.get(
        row.principal_kind, "interactiveUser" if row.is_interactive else "nonInteractiveUser"
    )
    return {
        "id": row.id,
        "createdDateTime": graph_time(row.created_at),
        "userDisplayName": None,
        "userPrincipalName": row.user_principal_name or None,
        "userId": row.user_id or "",
        "appId": row.app_id,
        "appDisplayName": row.app_display_name,
        "servicePrincipalId": row.service_principal_id or "",
        "ipAddress": row.ip_address,
        "clientAppUsed": _CLIENT_APP_USED.get(row.client_app_used, row.client_app_used or None),
        "correlationId": row.correlation_id,
        "conditionalAccessStatus": row.conditional_access_status,
        "isInteractive": row.is_interactive,
        "signInEventTypes": [event_type],
        "resourceId": row.resource_id,
        "resourceDisplayName": row.resource_display_name,
        "userAgent": row.user_agent,
        "authenticationProtocol": _PROTOCOLS.get(row.authentication_protocol, "none"),
        "authenticationRequirement": row.authentication_requirement,
        "status": {
            "errorCode": row.error_code,
            "failureReason": row.failure_reason or None,
            "additionalDetails": None,
        },
        "deviceDetail": {
            "deviceId": "",
            "displayName": "",
            "operatingSystem": _OPERATING_SYSTEMS.get(row.device_platform, ""),
            "browser": "",
            "isCompliant": None,
            "isManaged": None,
            "trustType": "",
        },
        "appliedConditionalAccessPolicies": [dict(p) for p in (row.applied_policies or ())],
    }


def summary_fields(row: SignInLogRow) -> Sequence[str]:
    """One line of `entryway signins list`: time, result, who, app, resource, address, CA status, how."""
    who = row.user_principal_name or row.service_principal_id or row.app_id or "-"
    return (
        as_utc(row.created_at).isoformat(timespec="seconds"),
        "success" if row.error_code == 0 else f"AADSTS{row.error_code}",
        who,
        row.app_display_name or row.app_id or "-",
        row.resource_display_name or row.resource_id or "-",
        row.ip_address or "-",
        row.conditional_access_status,
        ("interactive" if row.is_interactive else "non-interactive")
        + (
            f"/{row.authentication_protocol}"
            if row.authentication_protocol not in {"", "interactive"}
            else ""
        ),
        row.id,
    )


__all__ = [
    "MAX_PAGE_SIZE",
    "SignInQuery",
    "find_sign_in",
    "find_sign_ins",
    "graph_time",
    "sign_in_to_graph",
    "summary_fields",
]
