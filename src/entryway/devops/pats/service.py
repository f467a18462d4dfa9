"""The PAT lifecycle: create, list, get, update and revoke a user's PATs (devops-wire-contract 3).

Never commits: the caller's unit of work does, with the change's audit row (`record_change`, actions
Token.Create / Token.Update / Token.Revoke; never the token). The value is returned once, at creation; only its
keyed digest is stored. Failures raise `PatError`, whose kind is Azure DevOps' `patTokenError` value and
whose `message` is for the person asking (7.2's `patTokenErrorMessage`).

The administrator PAT policies (policy.py; devops-wire-contract 4) are enforced here, on what is new or
renewed: creation, and an update that renews (validTo), widens (allOrgs, scope) or regenerates a PAT. A PAT
made before a policy keeps working until it is renewed; then it must comply.
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
from entryway.devops.pats.policy import OrgPatPolicy, PatPolicyService, PolicyName, Requester, TenantPatPolicy
from entryway.devops.pats.repository import PatRepository
from entryway.kit.clock import Clock, as_utc
from entryway.kit.ids import new_guid
from entryway.kit.secrets import SecretDigester
from entryway.store.models import PersonalAccessTokenRow

MAX_DISPLAY_NAME_LENGTH = 256
DEFAULT_LIFETIME = timedelta(days=30)  # the Azure DevOps UI's default
MAX_LIFETIME = timedelta(days=365)  # the Azure DevOps UI's maximum
MAX_TOP = 100
SOURCES = frozenset({"api", "sessiontoken", "web"})  # the lifecycle API, GCM's session tokens, the PAT page
PACKAGING_SCOPE_PREFIX = "vso.packaging"


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
    GLOBAL_PAT_POLICY_VIOLATION = "globalPatPolicyViolation"
    FULL_SCOPE_PAT_POLICY_VIOLATION = "fullScopePatPolicyViolation"
    LIFESPAN_POLICY_VIOLATION = "patLifespanPolicyViolation"
    DISABLE_CREATION_POLICY_VIOLATION = "disablePatCreationPolicyViolation"
    INVALID_SOURCE = "invalidSource"


# What a person is told for each error (7.2's patTokenErrorMessage). Never the private reason.
MESSAGES: dict[PatErrorKind, str] = {
    PatErrorKind.DISPLAY_NAME_REQUIRED: "Give the personal access token a name.",
    PatErrorKind.INVALID_DISPLAY_NAME: f"The name must be text of at most {MAX_DISPLAY_NAME_LENGTH} characters.",
    PatErrorKind.INVALID_VALID_TO: "The expiration date must be in the future and at most one year from now.",
    PatErrorKind.INVALID_SCOPE: "Choose one or more known scopes (for example vso.code or vso.packaging).",
    PatErrorKind.INVALID_TARGET_ACCOUNTS: "allOrgs must be true or false.",
    PatErrorKind.INVALID_AUTHORIZATION_ID: "The authorization id must be a GUID.",
    PatErrorKind.AUTHORIZATION_NOT_FOUND: "You have no personal access token with this authorization id here.",
    PatErrorKind.FAILED_TO_ISSUE: "The service cannot issue personal access tokens; ask your administrator.",
    PatErrorKind.FAILED_TO_UPDATE: "A revoked personal access token cannot be changed.",
    PatErrorKind.EXPIRED_CANNOT_BE_EXTENDED: "An expired personal access token cannot be extended; create a new one.",
    PatErrorKind.GLOBAL_PAT_POLICY_VIOLATION: (
        "Your Microsoft Entra tenant's policy restricts global personal access tokens: choose this organization"
        " instead of all accessible organizations, or ask an Azure DevOps Administrator to add you to the"
        " policy's allowlist."
    ),
    PatErrorKind.FULL_SCOPE_PAT_POLICY_VIOLATION: (
        "Your Microsoft Entra tenant's policy restricts full-scoped personal access tokens: choose the specific"
        " scopes you need instead of full access, or ask an Azure DevOps Administrator to add you to the"
        " policy's allowlist."
    ),
    PatErrorKind.LIFESPAN_POLICY_VIOLATION: (
        "Your Microsoft Entra tenant's policy limits how long a personal access token may live: choose an"
        " expiration date within the limit (counted from the token's creation), or create a new token."
    ),
    PatErrorKind.DISABLE_CREATION_POLICY_VIOLATION: (
        "This organization's policy restricts the creation of personal access tokens: ask a Project"
        " Collection Administrator to add you to the policy's allowlist, or use a Microsoft Entra token"
        " instead."
    ),
    PatErrorKind.INVALID_SOURCE: "The personal access token was requested from an unknown source.",
}
_PACKAGING_ONLY_MESSAGE = (
    "This organization's policy only allows personal access tokens with Packaging scopes (vso.packaging,"
    " vso.packaging_write, vso.packaging_manage): choose only those, or ask a Project Collection"
    " Administrator to add you to the policy's allowlist."
)


class PatError(Exception):
    def __init__(self, kind: PatErrorKind, reason: str, message: str | None = None) -> None:
        super().__init__(reason)  # the reason is for the log; the caller gets the kind and the message
        self.kind = kind
        self.message = message or MESSAGES.get(kind, "The request for a personal access token failed.")


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
        self._policies = PatPolicyService(session, clock)

    # --- validity ----------------------------------------------------------------------------------------

    def _check_valid_to(self, value: datetime | None, now: datetime) -> datetime:
        if value is None:
            return now + DEFAULT_LIFETIME
        value = as_utc(value)
        if value <= now or value > now + MAX_LIFETIME:
            raise PatError(PatErrorKind.INVALID_VALID_TO, "validTo in the past or beyond a year")
        return value

    # --- policies (devops-wire-contract 4) ---------------------------------------------------------------

    def _check_creation_policies(
        self,
        tenant: TenantPatPolicy,
        org_policy: OrgPatPolicy,
        requester: Requester,
        *,
        scope: str,
        all_orgs: bool,
    ) -> None:
        """Refuse a new (or regenerated) PAT the organization's or the tenant's policies forbid."""
        if org_policy.restrict_creation and not requester.is_allowed(org_policy.allowlist):
            packaging = all(s.startswith(PACKAGING_SCOPE_PREFIX) for s in pat_scopes.parse(scope))
            if not (org_policy.packaging_only and packaging):
                raise PatError(
                    PatErrorKind.DISABLE_CREATION_POLICY_VIOLATION,
                    f"organization {org_policy.organization_id} restricts PAT creation; {requester.object_id}"
                    " is not on its allowlist",
                    _PACKAGING_ONLY_MESSAGE if org_policy.packaging_only else None,
                )
        if (
            all_orgs
            and tenant.restrict_global
            and not requester.is_allowed(tenant.allowlist(PolicyName.RESTRICT_GLOBAL))
        ):
            raise PatError(
                PatErrorKind.GLOBAL_PAT_POLICY_VIOLATION,
                f"tenant {tenant.tenant_id} restricts global PATs; {requester.object_id} is not on its allowlist",
            )
        if (
            pat_scopes.FULL_ACCESS in pat_scopes.parse(scope)
            and tenant.restrict_full_scope
            and not requester.is_allowed(tenant.allowlist(PolicyName.RESTRICT_FULL_SCOPE))
        ):
            raise PatError(
                PatErrorKind.FULL_SCOPE_PAT_POLICY_VIOLATION,
                f"tenant {tenant.tenant_id} restricts full-scoped PATs; {requester.object_id} is not allowlisted",
            )

    @staticmethod
    def _max_lifespan(tenant: TenantPatPolicy, requester: Requester) -> timedelta | None:
        """The lifespan the tenant allows this requester; None: no limit beyond the year every PAT has."""
        if tenant.max_lifespan_days is None or requester.is_allowed(
            tenant.allowlist(PolicyName.MAX_LIFESPAN)
        ):
            return None
        return timedelta(days=tenant.max_lifespan_days)

    @staticmethod
    def _lifespan_violation(tenant: TenantPatPolicy, reason: str) -> PatError:
        days = tenant.max_lifespan_days
        return PatError(
            PatErrorKind.LIFESPAN_POLICY_VIOLATION,
            reason,
            f"Your Microsoft Entra tenant's policy limits personal access tokens to {days} days from their"
            " creation: choose an earlier expiration date, or create a new token.",
        )

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
        requester: Requester,
        source: str = "api",
    ) -> Pat:
        """A new PAT for `owner`, made in `org`, if the policies allow `requester` (the owner and the groups of
        the token they asked with: required, so no caller can forget the groups an allowlist may name). With a
        maximum lifespan, validTo (or the 30-day default) is clamped to now + the maximum, as Azure DevOps
        does. `source` is where the request came from: api, sessiontoken (GCM) or web (the PAT page)."""
        if source not in SOURCES:
            raise PatError(PatErrorKind.INVALID_SOURCE, f"unknown PAT source {source!r}")
        name = check_display_name(display_name)
        scope_string = check_scope(scope)
        now = self._clock.now()
        expires = self._check_valid_to(valid_to, now)
        tenant = self._policies.tenant_policy(owner.tenant_id)
        self._check_creation_policies(
            tenant, self._policies.org_policy(org.id), requester, scope=scope_string, all_orgs=all_orgs
        )
        limit = self._max_lifespan(tenant, requester)
        clamped = limit is not None and expires > now + limit
        if limit is not None:
            expires = min(expires, now + limit)
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
            owner_groups=sorted(requester.groups),
            source=source,
        )
        self._repo.add(row)
        self._audit(org, actor, "Token.Create", row, clamped=clamped)
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
        requester: Requester,
    ) -> Pat:
        """Change a PAT. Everything is checked before anything is changed.

        A change other than the name (validTo, scope, allOrgs) regenerates the PAT in the policies' eyes: the
        resulting PAT must comply with the organization's creation policy and the tenant's global and
        full-scope policies, and a new validTo must lie within creation + the maximum lifespan (refused, not
        clamped: `patLifespanPolicyViolation`). Renaming a PAT made before a policy is always allowed."""
        row = self._find(owner, org, authorization_id)
        now = self._clock.now()
        if row.revoked_at is not None:
            raise PatError(PatErrorKind.FAILED_TO_UPDATE, "the PAT is revoked")
        new_name = None if display_name is None else check_display_name(display_name)
        new_scope = None if scope is None else check_scope(scope)
        new_valid_to: datetime | None = None
        if valid_to is not None:
            if as_utc(row.valid_to) <= now:
                raise PatError(PatErrorKind.EXPIRED_CANNOT_BE_EXTENDED, "the PAT has expired")
            new_valid_to = self._check_valid_to(valid_to, now)
        new_org_id = row.organization_id if all_orgs is None else (None if all_orgs else org.id)
        if new_scope is not None or new_valid_to is not None or all_orgs is not None:
            tenant = self._policies.tenant_policy(owner.tenant_id)
            self._check_creation_policies(
                tenant,
                self._policies.org_policy(org.id),
                requester,
                scope=row.scope if new_scope is None else new_scope,
                all_orgs=new_org_id is None,
            )
            limit = self._max_lifespan(tenant, requester)
            if (
                limit is not None
                and new_valid_to is not None
                and new_valid_to > as_utc(row.created_at) + limit
            ):
                raise self._lifespan_violation(
                    tenant,
                    f"validTo {new_valid_to.isoformat()} is past creation + {tenant.max_lifespan_days} days",
                )
        changed: list[str] = []
        if new_name is not None:
            row.display_name = new_name
            changed.append("displayName")
        if new_scope is not None:
            row.scope = new_scope
            changed.append("scope")
        if new_valid_to is not None:
            row.valid_to = new_valid_to
            changed.append("validTo")
        if all_orgs is not None:
            row.organization_id = new_org_id
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
        clamped: bool = False,
    ) -> None:
        details: dict[str, Any] = {
            "authorizationId": row.authorization_id,
            "displayName": row.display_name,
            "scope": row.scope,
            "allOrgs": row.organization_id is None,
            "validTo": as_utc(row.valid_to).isoformat(),
            "source": row.source,
        }
        if changed is not None:
            details["changed"] = changed
        if clamped:
            details["validToClampedByPolicy"] = True  # the tenant's maximum lifespan shortened it
        record_change_by(
            self._session, clock=self._clock, organization=org, actor=actor, action=action, details=details
        )
