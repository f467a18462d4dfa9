"""The PAT policies as values: their names, the tenant's and the organization's settings, allowlist entries and
who asks (policy.py reads and changes them; this module does no I/O, so verification can import it).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from entryway.store.models import PatOrganizationPolicyRow, PatPolicyAllowlistRow

MAX_LIFESPAN_DAYS = 365  # Azure DevOps' own limit on a PAT's lifetime
TENANT = "tenant"
ORGANIZATION = "organization"
USER = "user"
GROUP = "group"
PRINCIPAL_KINDS = frozenset({USER, GROUP})


class PolicyName(enum.Enum):
    """The policies that have an allowlist (automatic revocation of leaked PATs has none)."""

    RESTRICT_GLOBAL = "restrictGlobal"
    RESTRICT_FULL_SCOPE = "restrictFullScope"
    MAX_LIFESPAN = "maxLifespan"
    RESTRICT_CREATION = "restrictCreation"  # the organization's

    @classmethod
    def parse(cls, value: PolicyName | str) -> PolicyName:
        """A policy by its wire name (`restrictGlobal`) or its enum name, any case; `PatPolicyError` if none."""
        if isinstance(value, PolicyName):
            return value
        if isinstance(value, str):
            wanted = value.replace("-", "").replace("_", "").lower()
            for policy in cls:
                if policy.value.lower() == wanted:
                    return policy
        names = ", ".join(p.value for p in cls)
        raise PatPolicyError(PolicyErrorKind.UNKNOWN_POLICY, f"unknown PAT policy {value!r} ({names})")

    @property
    def owner_kind(self) -> str:
        """`organization` for restrictCreation, `tenant` for the others."""
        return ORGANIZATION if self is PolicyName.RESTRICT_CREATION else TENANT


TENANT_POLICIES: Final = (PolicyName.RESTRICT_GLOBAL, PolicyName.RESTRICT_FULL_SCOPE, PolicyName.MAX_LIFESPAN)


class PolicyErrorKind(enum.Enum):
    UNKNOWN_POLICY = "unknownPolicy"
    INVALID_VALUE = "invalidValue"
    INVALID_LIFESPAN = "invalidLifespan"
    UNKNOWN_PRINCIPAL = "unknownPrincipal"
    UNKNOWN_OWNER = "unknownOwner"


class PatPolicyError(ValueError):
    """A policy change refused; the message is for the administrator."""

    def __init__(self, kind: PolicyErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class AllowlistEntry:
    principal_object_id: str
    principal_kind: str  # user | group
    display_name: str = ""

    @classmethod
    def from_row(cls, row: PatPolicyAllowlistRow) -> AllowlistEntry:
        return cls(row.principal_object_id, row.principal_kind, row.display_name)


@dataclass(frozen=True)
class TenantPatPolicy:
    tenant_id: str
    restrict_global: bool = False
    restrict_full_scope: bool = False
    max_lifespan_days: int | None = None  # None: not enforced
    auto_revoke_leaked: bool = True  # on by default, as in Azure DevOps
    allowlists: Mapping[PolicyName, tuple[AllowlistEntry, ...]] = field(default_factory=dict)

    def allowlist(self, policy: PolicyName) -> tuple[AllowlistEntry, ...]:
        return tuple(self.allowlists.get(policy, ()))


@dataclass(frozen=True)
class OrgPatPolicy:
    organization_id: str
    restrict_creation: bool = False
    # With restrict_creation: PATs of vso.packaging* scopes only may still be made.
    packaging_only: bool = False
    allowlist: tuple[AllowlistEntry, ...] = ()


@dataclass(frozen=True)
class Requester:
    """Who asks for a PAT, or owns one: their object id and the group ids their token carried."""

    object_id: str
    groups: frozenset[str] = frozenset()

    def is_allowed(self, entries: Iterable[AllowlistEntry]) -> bool:
        """True when the requester, or one of their groups, is on the allowlist."""
        for entry in entries:
            if entry.principal_kind == USER and entry.principal_object_id == self.object_id:
                return True
            if entry.principal_kind == GROUP and entry.principal_object_id in self.groups:
                return True
        return False


def org_policy_of(
    organization_id: str, row: PatOrganizationPolicyRow | None, entries: Sequence[PatPolicyAllowlistRow]
) -> OrgPatPolicy:
    """The organization's policy from its row (None: off) and its allowlist rows."""
    allowlist = tuple(
        AllowlistEntry.from_row(e) for e in entries if e.policy == PolicyName.RESTRICT_CREATION.value
    )
    if row is None:
        return OrgPatPolicy(organization_id, allowlist=allowlist)
    return OrgPatPolicy(
        organization_id,
        restrict_creation=bool(row.restrict_creation),
        packaging_only=bool(row.packaging_only),
        allowlist=allowlist,
    )
