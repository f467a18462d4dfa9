"""The PAT lifecycle: create, list, get, update and revoke a user's PATs (devops-wire-contract 3).

Never commits: the caller's unit of work does, with the change's audit row (`record_change`, actions
Token.Create / Token.Update / Token.Revoke; never the token). The value is returned once, at creation; only its
keyed digest is stored. Failures raise `PatError`, whose kind is Azure DevOps' `patTokenError` value.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from entryway.devops.audit.recorder import Actor, record_change_by
from entryway.devops.orgs.service import Organization
from entryway.devops.pats import format as pat_format
from entryway.devops.pats import scopes as pat_scopes
from entryway.devops.pats.repository import PatRepository
from entryway.kit.clock import Clock, as_utc
from entryway.kit.ids import new_guid
from entryway.kit.secrets import SecretDigester
from entryway.store.models import PersonalAccessTokenRow

MAX_DISPLAY_NAME_LENGTH = 256
DEFAULT_LIFETIME = timedelta(days=30)  # the Azure DevOps UI's default
MAX_LIFETIME = timedelta(days=365)  # the Azure DevOps UI's maximum
MAX_TOP = 100


class PatErrorKind(enum.Enum):
    """The `patTokenError` values this service answers with."""

    DISPLAY_NAME_REQUIRED = "displayNameRequired"
    INVALID_DISPLAY_NAME = "invalidDisplayName"
    INVALID_VALID_TO = "invalidValidTo"
    INVALID_SCOPE = "invalidScope"
    INVALID_TARGET_ACCOUNTS = "invalidTargetAccounts"
    INVALID_AUTHORIZATION_ID = "invalidAuthorizationId"
    AUTHORIZATION_NOT_FOUND = "authorizationNotFound"
    FAILED_TO_ISSUE = "failedToIssueAccessToken"
    FAILED_TO_UPDATE = "failedToUpdateAccessToken"
    EXPIRED_CANNOT_BE_EXTENDED = "expiredPatCannotBeExtended"


class PatError(Exception):
    def __init__(self, kind: PatErrorKind, reason: str) -> None:
        super().__init__(reason)  # the reason is for the log; the caller gets the kind
        self.kind = kind


class PatStatus(enum.Enum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class DisplayFilter(enum.Enum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"
    ALL = "all"


class SortBy(enum.Enum):
    DISPLAY_NAME = "displayName"
    DISPLAY_DATE = "displayDate"  # the expiry date, the date the Azure DevOps list shows
    STATUS = "status"


_STATUS_ORDER = {PatStatus.ACTIVE: 0, PatStatus.EXPIRED: 1, PatStatus.REVOKED: 2}


@dataclass(frozen=True)
class Owner:
    """The user whose PATs these are, from their Entra token."""

    object_id: str
    tenant_id: str
    name: str


@dataclass(frozen=True)
class Pat:
    authorization_id: str
    display_name: str
    scope: str
    organization_id: str | None  # None: global (all accessible organizations)
    valid_from: datetime
    valid_to: datetime
    revoked_at: datetime | None
    token: str | None = None  # only at creation

    @classmethod
    def from_row(cls, row: PersonalAccessTokenRow, token: str | None = None) -> Pat:
        return cls(
            row.authorization_id,
            row.display_name,
            row.scope,
            row.organization_id,
            as_utc(row.valid_from),
            as_utc(row.valid_to),
            None if row.revoked_at is None else as_utc(row.revoked_at),
            token,
        )

    def status(self, now: datetime) -> PatStatus:
        if self.revoked_at is not None:
            return PatStatus.REVOKED
        if self.valid_to <= now:
            return PatStatus.EXPIRED
        return PatStatus.ACTIVE


@dataclass(frozen=True)
class PatPage:
    pats: list[Pat]
    continuation_token: str  # "" at the end


def check_display_name(value: Any) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PatError(PatErrorKind.DISPLAY_NAME_REQUIRED, "no display name")
    if not isinstance(value, str) or len(value) > MAX_DISPLAY_NAME_LENGTH:
        raise PatError(PatErrorKind.INVALID_DISPLAY_NAME, "display name not a string or too long")
    return value.strip()


def check_scope(value: Any) -> str:
    """One space-separated string of known scopes, as Azure DevOps takes it."""
    if not isinstance(value, str):
        raise PatError(PatErrorKind.INVALID_SCOPE, "scope is not a string")
    parsed = pat_scopes.parse(value)
    if not parsed or not all(pat_scopes.is_known(s) for s in parsed):
        raise PatError(PatErrorKind.INVALID_SCOPE, f"unknown or no scopes: {value[:200]!r}")
    return " ".join(parsed)


def check_authorization_id(value: Any) -> str:
    if not isinstance(value, str):
        raise PatError(PatErrorKind.INVALID_AUTHORIZATION_ID, "no authorization id")
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise PatError(PatErrorKind.INVALID_AUTHORIZATION_ID, "authorization id is not a GUID") from exc


class PatService:
    def __init__(self, session: Session, clock: Clock, digester: SecretDigester | None) -> None:
        self._session = session
        self._clock = clock
        self._digester = digester
        self._repo = PatRepository(session)

    # --- validity ----------------------------------------------------------------------------------------

    def _check_valid_to(self, value: datetime | None, now: datetime) -> datetime:
        if value is None:
            return now + DEFAULT_LIFETIME
        value = as_utc(value)
        if value <= now or value > now + MAX_LIFETIME:
            raise PatError(PatErrorKind.INVALID_VALID_TO, "validTo in the past or beyond a year")
        return value

    # --- lifecycle ---------------------------------------------------------------------------------------

    def create(
        self,
        owner: Owner,
        org: Organization,
        actor: Actor,
        *,
        display_name: Any,
        scope: Any,
        valid_to: datetime | None,
        all_orgs: bool,
    ) -> Pat:
        name = check_display_name(display_name)
        scope_string = check_scope(scope)
        now = self._clock.now()
        expires = self._check_valid_to(valid_to, now)
        if self._digester is None:
            raise PatError(PatErrorKind.FAILED_TO_ISSUE, "no digester configured")
        token = pat_format.mint(now)
        row = PersonalAccessTokenRow(
            authorization_id=new_guid(),
            digest=self._digester.digest(token),
            owner_object_id=owner.object_id,
            owner_tenant_id=owner.tenant_id,
            owner_name=owner.name,
            display_name=name,
            scope=scope_string,
            organization_id=None if all_orgs else org.id,
            valid_from=now,
            valid_to=expires,
            revoked_at=None,
            created_at=now,
            rest_uses=0,
            git_uses=0,
        )
        self._repo.add(row)
        self._audit(org, actor, "Token.Create", row)
        return Pat.from_row(row, token)

    def list_pats(
        self,
        owner: Owner,
        org: Organization,
        *,
        display_filter: DisplayFilter = DisplayFilter.ACTIVE,
        sort_by: SortBy = SortBy.DISPLAY_NAME,
        ascending: bool = True,
        top: int = MAX_TOP,
        continuation_token: str = "",
    ) -> PatPage:
        """A page of the owner's PATs. The continuation token is the position of the next page."""
        now = self._clock.now()
        pats = [Pat.from_row(r) for r in self._repo.list_for_owner(owner.object_id, owner.tenant_id, org.id)]
        if display_filter is not DisplayFilter.ALL:
            pats = [p for p in pats if p.status(now).value == display_filter.value]
        if sort_by is SortBy.DISPLAY_NAME:
            pats.sort(key=lambda p: (p.display_name.lower(), p.authorization_id), reverse=not ascending)
        elif sort_by is SortBy.DISPLAY_DATE:
            pats.sort(key=lambda p: (p.valid_to, p.authorization_id), reverse=not ascending)
        else:
            pats.sort(
                key=lambda p: (_STATUS_ORDER[p.status(now)], p.display_name.lower(), p.authorization_id),
                reverse=not ascending,
            )
        start = int(continuation_token) if continuation_token.isdigit() else 0
        top = min(max(top, 1), MAX_TOP)
        page = pats[start : start + top]
        following = start + top
        return PatPage(page, str(following) if following < len(pats) else "")

    def get(self, owner: Owner, org: Organization, authorization_id: Any) -> Pat:
        return Pat.from_row(self._find(owner, org, authorization_id))

    def update(
        self,
        owner: Owner,
        org: Organization,
        actor: Actor,
        authorization_id: Any,
        *,
        display_name: Any = None,
        scope: Any = None,
        valid_to: datetime | None = None,
        all_orgs: bool | None = None,
    ) -> Pat:
        row = self._find(owner, org, authorization_id)
        now = self._clock.now()
        if row.revoked_at is not None:
            raise PatError(PatErrorKind.FAILED_TO_UPDATE, "the PAT is revoked")
        changed: list[str] = []
        if display_name is not None:
            row.display_name = check_display_name(display_name)
            changed.append("displayName")
        if scope is not None:
            row.scope = check_scope(scope)
            changed.append("scope")
        if valid_to is not None:
            if as_utc(row.valid_to) <= now:
                raise PatError(PatErrorKind.EXPIRED_CANNOT_BE_EXTENDED, "the PAT has expired")
            row.valid_to = self._check_valid_to(valid_to, now)
            changed.append("validTo")
        if all_orgs is not None:
            row.organization_id = None if all_orgs else org.id
            changed.append("allOrgs")
        self._audit(org, actor, "Token.Update", row, changed=changed)
        return Pat.from_row(row)

    def revoke(self, owner: Owner, org: Organization, actor: Actor, authorization_id: Any) -> None:
        """Revocation is effective at once: every verification reads `revoked_at`. Revoking twice is no error."""
        row = self._find(owner, org, authorization_id)
        if row.revoked_at is not None:
            return
        row.revoked_at = self._clock.now()
        self._audit(org, actor, "Token.Revoke", row)

    # --- helpers -----------------------------------------------------------------------------------------

    def _find(self, owner: Owner, org: Organization, authorization_id: Any) -> PersonalAccessTokenRow:
        key = check_authorization_id(authorization_id)
        row = self._repo.find_for_owner(key, owner.object_id, owner.tenant_id, org.id)
        if row is None:
            raise PatError(PatErrorKind.AUTHORIZATION_NOT_FOUND, "no such PAT for this user and organization")
        return row

    def _audit(
        self,
        org: Organization,
        actor: Actor,
        action: str,
        row: PersonalAccessTokenRow,
        *,
        changed: list[str] | None = None,
    ) -> None:
        details: dict[str, Any] = {
            "authorizationId": row.authorization_id,
            "displayName": row.display_name,
            "scope": row.scope,
            "allOrgs": row.organization_id is None,
            "validTo": as_utc(row.valid_to).isoformat(),
        }
        if changed is not None:
            details["changed"] = changed
        record_change_by(
            self._session, clock=self._clock, organization=org, actor=actor, action=action, details=details
        )
