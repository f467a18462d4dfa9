"""Verification of a PAT presented to the DevOps service: shape and checksum first (no database work for a
mistyped or forged value), then the keyed digest lookup, then revocation, validity, organization and owner.

Nothing positive is cached beyond the request: a revocation (a row's `revoked_at`) takes effect on the next
request, in every process sharing the database. Each accepted use is recorded with one UPDATE (when, from
where, by which user agent, on which kind of route, and the per-kind counter), awaited before the request
goes on: the way-off-PATs report must never miss a use.

An organization whose "Restrict PAT creation" policy is on also refuses *global* PATs, unless their owner (by
object id, or by the groups recorded when the PAT was made) is on that policy's allowlist
(devops-wire-contract 4). The policy is read on each use of a global PAT, so a change applies at once.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from entryway.devops.cae.checks import ContinuousAccess
from entryway.devops.orgs.service import Member, Organization
from entryway.devops.pats import scopes as pat_scopes
from entryway.devops.pats.policy_model import ORGANIZATION, Requester, org_policy_of
from entryway.devops.pats.policy_repository import PatPolicyRepository
from entryway.kit.clock import Clock, as_utc
from entryway.kit.secrets import SecretDigester
from entryway.store.models import PersonalAccessTokenRow

log = logging.getLogger("entryway.devops.pats")

MemberLookup = Callable[[Organization, str], Awaitable[Member | None]]
ShapeCheck = Callable[[str], bool]
T = TypeVar("T")


class SessionRunner(Protocol):
    """Runs a function in a session (DevOpsRouter.read / write)."""

    def __call__(self, fn: Callable[[Session], T], /) -> Awaitable[T]: ...


# Column widths of the use record (devops_pats.last_used_*).
_ADDRESS_WIDTH = 64
_USER_AGENT_WIDTH = 256


class RouteKind(enum.StrEnum):
    REST = "rest"
    GIT = "git"


@dataclass(frozen=True)
class PatUse:
    """Where a PAT was presented, for the use record."""

    address: str
    user_agent: str
    route_kind: RouteKind


@dataclass(frozen=True)
class VerifiedPat:
    authorization_id: str
    member: Member  # the owner, as a member of the organization asked
    scopes: frozenset[str]
    owner_groups: frozenset[str] = frozenset()  # the owner's groups when the PAT was made

    def allows(self, needed: str) -> bool:
        return any(pat_scopes.includes(granted, needed) for granted in self.scopes)


@dataclass(frozen=True)
class PatRefusal:
    """Why a PAT is refused: for the log and the audit trail only, never for the caller."""

    reason: str
    owner_object_id: str | None = None
    conditional_access_failed: bool = False  # VS403463 (devops/cae)


@dataclass(frozen=True)
class _Found:
    authorization_id: str
    owner_object_id: str
    organization_id: str | None
    scope: str
    valid_from: datetime
    valid_to: datetime
    revoked_at: datetime | None
    owner_groups: list[str] | None


class PatVerifier:
    def __init__(
        self,
        *,
        digester: SecretDigester,
        clock: Clock,
        is_well_formed: ShapeCheck,
        read: SessionRunner,
        write: SessionRunner,
        find_member: MemberLookup,
        cae: ContinuousAccess | None = None,
    ) -> None:
        self._digester = digester
        # Continuous access evaluation: the owner disabled or deleted, the org's IP validation policy.
        self._cae = cae
        self._clock = clock
        self._is_well_formed = is_well_formed
        self._read = read
        self._write = write
        self._find_member = find_member

    async def verify(
        self, value: str, org: Organization, use: PatUse | None = None
    ) -> VerifiedPat | PatRefusal:
        # The checksum is verified in constant time before any lookup (format.is_well_formed).
        if not self._is_well_formed(value):
            return PatRefusal("not a well-formed PAT (length, signature or checksum)")
        digest = self._digester.digest(value)
        found = await self._read(lambda session: _find_by_digest(session, digest))
        if found is None:
            return PatRefusal("no such PAT")
        owner = found.owner_object_id
        now = self._clock.now()
        refused = _refusal(found, org, now)
        if refused is not None:
            return PatRefusal(f"PAT {found.authorization_id} {refused}", owner)
        groups = frozenset(g for g in found.owner_groups or () if isinstance(g, str))
        if found.organization_id is None and not await self._read(
            lambda session: _global_pat_allowed(session, org, Requester(owner, groups))
        ):
            return PatRefusal(
                f"PAT {found.authorization_id} is global and {org.name} restricts PAT creation"
                " (its owner is not on the policy's allowlist)",
                owner,
            )
        member = await self._find_member(org, owner)
        refused_owner = await self._owner_refusal(
            found.authorization_id, org, owner, member, groups=groups, use=use
        )
        if refused_owner is not None or member is None:
            return refused_owner or PatRefusal(f"PAT {found.authorization_id}: no member", owner)
        if use is not None:
            try:
                await self._write(lambda session: _record_use(session, found.authorization_id, now, use))
            except Exception:  # a busy database must not turn a valid PAT into a 500; the next use records
                log.exception("recording the use of PAT %s failed", found.authorization_id)
        return VerifiedPat(found.authorization_id, member, frozenset(pat_scopes.parse(found.scope)), groups)

    async def _owner_refusal(
        self,
        authorization_id: str,
        org: Organization,
        owner: str,
        member: Member | None,
        *,
        groups: frozenset[str],
        use: PatUse | None,
    ) -> PatRefusal | None:
        """The owner is not a member, or continuous access evaluation refuses the PAT (owner disabled or
        deleted, the organization's IP validation policy)."""
        if member is None:
            return PatRefusal(f"PAT {authorization_id}: its owner is not a member of {org.name}", owner)
        if self._cae is None:
            return None
        refused = await self._cae.check_pat(org, owner, groups, use.address if use is not None else "")
        if refused is None:
            return None
        return PatRefusal(
            f"PAT {authorization_id}: {refused.reason}", owner, refused.conditional_access_failed
        )


def _refusal(found: _Found, org: Organization, now: datetime) -> str | None:
    """Why a PAT found by its digest is not acceptable now, for this organization; None: it is."""
    checks = (
        (found.revoked_at is not None, "is revoked"),
        (as_utc(found.valid_to) <= now, f"expired at {found.valid_to}"),
        (as_utc(found.valid_from) > now, f"is not valid before {found.valid_from}"),
        (
            found.organization_id is not None and found.organization_id != org.id,
            f"is for another organization than {org.name}",
        ),
    )
    return next((reason for failed, reason in checks if failed), None)


def _global_pat_allowed(session: Session, org: Organization, owner: Requester) -> bool:
    """False when the organization restricts PAT creation and the owner is not on its allowlist."""
    repo = PatPolicyRepository(session)
    policy = org_policy_of(org.id, repo.find_org_policy(org.id), repo.list_allowlist(ORGANIZATION, org.id))
    return not policy.restrict_creation or owner.is_allowed(policy.allowlist)


def _find_by_digest(session: Session, digest: str) -> _Found | None:
    row = session.execute(
        select(
            PersonalAccessTokenRow.authorization_id,
            PersonalAccessTokenRow.owner_object_id,
            PersonalAccessTokenRow.organization_id,
            PersonalAccessTokenRow.scope,
            PersonalAccessTokenRow.valid_from,
            PersonalAccessTokenRow.valid_to,
            PersonalAccessTokenRow.revoked_at,
            PersonalAccessTokenRow.owner_groups,
        ).where(PersonalAccessTokenRow.digest == digest)
    ).first()
    return None if row is None else _Found(*row)


def _record_use(session: Session, authorization_id: str, now: datetime, use: PatUse) -> None:
    counter = (
        PersonalAccessTokenRow.git_uses
        if use.route_kind is RouteKind.GIT
        else PersonalAccessTokenRow.rest_uses
    )
    session.execute(
        update(PersonalAccessTokenRow)
        .where(PersonalAccessTokenRow.authorization_id == authorization_id)
        .values(
            {
                PersonalAccessTokenRow.last_used_at: now,
                PersonalAccessTokenRow.last_used_address: use.address[:_ADDRESS_WIDTH],
                PersonalAccessTokenRow.last_used_user_agent: use.user_agent[:_USER_AGENT_WIDTH],
                PersonalAccessTokenRow.last_used_route_kind: use.route_kind.value,
                counter: counter + 1,
            }
        )
    )
