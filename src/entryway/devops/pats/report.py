"""The way off PATs (issue 6): for each active PAT, its risks and the Entra credential that replaces it, judged
from how it is actually used."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from entryway.devops.pats.scopes import FULL_ACCESS, parse
from entryway.kit.clock import as_utc
from entryway.store.models import OrganizationRow, PersonalAccessTokenRow

LONG_LIVED = timedelta(days=90)  # a lifetime above this is a standing credential, not a task's
UNUSED_AFTER = timedelta(days=30)  # not used for this long: nobody will miss it
ALL_ORGANIZATIONS = "all"

# User agents of the Azure Pipelines agent and the tasks it runs.
PIPELINE_AGENT_MARKERS = ("vsservices", "azurepipelines", "vsts-agent")

ALTERNATIVE_GIT = (
    "git credential helper with Entra tokens (`entryway` credential helper / Git Credential Manager)"
)
ALTERNATIVE_PIPELINE = "service connection with workload identity federation"
ALTERNATIVE_SCRIPT = (
    "a one-off Entra token: `az account get-access-token --resource 499b84ac-1321-427f-aa17-267ca6975798` "
    "(or azure-identity)"
)
ALTERNATIVE_REVOKE = "revoke it"


@dataclass(frozen=True)
class PatReportEntry:
    authorization_id: str
    owner: str
    display_name: str
    organization: str  # its name, or "all" for a global PAT
    scopes: tuple[str, ...]
    created_at: datetime
    valid_to: datetime
    age_days: int
    expires_in_days: int
    last_used_at: datetime | None
    last_used_route_kind: str | None
    last_used_user_agent: str | None
    last_used_address: str | None
    rest_uses: int
    git_uses: int
    flags: tuple[str, ...]
    alternative: str

    def as_json(self) -> dict[str, Any]:
        return {
            "authorizationId": self.authorization_id,
            "owner": self.owner,
            "displayName": self.display_name,
            "organization": self.organization,
            "scopes": list(self.scopes),
            "createdAt": self.created_at.isoformat(),
            "validTo": self.valid_to.isoformat(),
            "ageDays": self.age_days,
            "expiresInDays": self.expires_in_days,
            "lastUsedAt": None if self.last_used_at is None else self.last_used_at.isoformat(),
            "lastUsedRouteKind": self.last_used_route_kind,
            "lastUsedUserAgent": self.last_used_user_agent,
            "lastUsedAddress": self.last_used_address,
            "restUses": self.rest_uses,
            "gitUses": self.git_uses,
            "flags": list(self.flags),
            "alternative": self.alternative,
        }


def is_active(row: PersonalAccessTokenRow, now: datetime) -> bool:
    """Not revoked and within its validity (a PAT that starts later is active too: it will be usable)."""
    return row.revoked_at is None and now < as_utc(row.valid_to)


def is_pipeline_agent(user_agent: str | None) -> bool:
    agent = (user_agent or "").lower()
    return any(marker in agent for marker in PIPELINE_AGENT_MARKERS)


def risk_flags(row: PersonalAccessTokenRow, now: datetime) -> tuple[str, ...]:
    flags = []
    if FULL_ACCESS in parse(row.scope):
        flags.append("full-scope")
    if row.organization_id is None:
        flags.append("global")
    if as_utc(row.valid_to) - as_utc(row.valid_from) > LONG_LIVED:
        flags.append("long-lived")
    if row.last_used_at is None or now - as_utc(row.last_used_at) > UNUSED_AFTER:
        flags.append("unused")
    return tuple(flags)


def alternative(row: PersonalAccessTokenRow) -> str:
    """The Entra credential for how the PAT is used: Git first (a helper covers it whoever runs git), then the
    pipeline agent, then any other REST caller."""
    if row.last_used_at is None and not (row.rest_uses or row.git_uses):
        return ALTERNATIVE_REVOKE
    if row.git_uses > 0:
        return ALTERNATIVE_GIT
    if is_pipeline_agent(row.last_used_user_agent):
        return ALTERNATIVE_PIPELINE
    return ALTERNATIVE_SCRIPT


def build_report(
    rows: Iterable[PersonalAccessTokenRow], organization_names: Mapping[str, str], now: datetime
) -> list[PatReportEntry]:
    """The active PATs among `rows`, oldest first. `organization_names`: organization id -> name."""
    entries = []
    for row in rows:
        if not is_active(row, now):
            continue
        created = as_utc(row.created_at)
        valid_to = as_utc(row.valid_to)
        last_used = None if row.last_used_at is None else as_utc(row.last_used_at)
        entries.append(
            PatReportEntry(
                authorization_id=row.authorization_id,
                owner=row.owner_name or row.owner_object_id,
                display_name=row.display_name,
                organization=ALL_ORGANIZATIONS
                if row.organization_id is None
                else organization_names.get(row.organization_id, row.organization_id),
                scopes=tuple(parse(row.scope)),
                created_at=created,
                valid_to=valid_to,
                age_days=(now - created).days,
                expires_in_days=(valid_to - now).days,
                last_used_at=last_used,
                last_used_route_kind=row.last_used_route_kind,
                last_used_user_agent=row.last_used_user_agent,
                last_used_address=row.last_used_address,
                rest_uses=row.rest_uses,
                git_uses=row.git_uses,
                flags=risk_flags(row, now),
                alternative=alternative(row),
            )
        )
    entries.sort(key=lambda e: (e.created_at, e.authorization_id))
    return entries


def find_unrevoked_pats(session: Session, organization_id: str | None) -> list[PersonalAccessTokenRow]:
    """The unrevoked PATs usable at `organization_id` — its own, and the global ones of its tenant's users
    (a global PAT works only in organizations of its owner's tenant) — or all when None."""
    query = select(PersonalAccessTokenRow).where(PersonalAccessTokenRow.revoked_at.is_(None))
    if organization_id is not None:
        tenant_of_org = select(OrganizationRow.tenant_id).where(OrganizationRow.id == organization_id)
        query = query.where(
            or_(
                PersonalAccessTokenRow.organization_id == organization_id,
                (PersonalAccessTokenRow.organization_id.is_(None))
                & (PersonalAccessTokenRow.owner_tenant_id == tenant_of_org.scalar_subquery()),
            )
        )
    return list(session.scalars(query))
