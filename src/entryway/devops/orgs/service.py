"""Organization administration and the member lookups request authentication needs. Never commits."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from sqlalchemy import Row
from sqlalchemy.orm import Session

from entryway.devops.orgs.repository import OrgRepository
from entryway.kit.clock import Clock
from entryway.kit.ids import new_guid, parse_guid
from entryway.store.models import MemberRow, OrganizationRow

# Azure DevOps organization names: letters, digits and hyphens, starting and ending with a letter or digit.
_ORG_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,48}[A-Za-z0-9])?$")


# Names the service's own routes use at the top level.
RESERVED_ORG_NAMES = frozenset({"health", "_apis", "error"})


class AccessLevel(enum.StrEnum):
    """Organization access levels, lowest first."""

    STAKEHOLDER = "stakeholder"
    BASIC = "basic"
    BASIC_PLUS_TEST = "basicPlusTest"

    @classmethod
    def parse(cls, value: str) -> AccessLevel:
        for level in cls:
            if level.value.lower() == value.replace("_", "").replace("+", "plus").lower():
                return level
        raise OrgError(f"unknown access level '{value}' (stakeholder, basic, basicPlusTest)")


class MemberKind(enum.StrEnum):
    USER = "user"
    SERVICE_PRINCIPAL = "servicePrincipal"


class OrgError(ValueError):
    """An administrative request the DevOps service refuses; the message is for the administrator."""


@dataclass(frozen=True)
class Member:
    id: str
    organization_id: str
    object_id: str
    kind: MemberKind
    display_name: str
    principal_name: str
    access_level: AccessLevel
    # Project Collection Administrators: a project administrator of every project.
    organization_admin: bool = False

    @classmethod
    def from_row(cls, row: MemberRow | Row[str, str, str, str, str, str, str, bool]) -> Member:
        return cls(
            row.id,
            row.organization_id,
            row.object_id,
            MemberKind(row.kind),
            row.display_name,
            row.principal_name,
            AccessLevel(row.access_level),
            bool(row.organization_admin),
        )


@dataclass(frozen=True)
class Organization:
    id: str
    name: str
    tenant_id: str
    # "IP Conditional Access policy validation on non-interactive flows" (devops/orgs/policy.py).
    ip_conditional_access_validation: bool = False

    @classmethod
    def from_row(cls, row: OrganizationRow) -> Organization:
        return cls(row.id, row.name, row.tenant_id, bool(row.ip_conditional_access_validation))


class OrgService:
    def __init__(self, session: Session, clock: Clock) -> None:
        self._repo = OrgRepository(session)
        self._clock = clock

    def find(self, name: str) -> Organization | None:
        row = self._repo.find_by_name(name)
        return None if row is None else Organization.from_row(row)

    def get(self, name: str) -> Organization:
        org = self.find(name)
        if org is None:
            raise OrgError(f"organization '{name}' not found")
        return org

    def list_orgs(self) -> list[Organization]:
        return [Organization.from_row(r) for r in self._repo.list_orgs()]

    def create(self, name: str, tenant_id: str) -> Organization:
        if name.lower() in RESERVED_ORG_NAMES:
            raise OrgError(f"'{name}' is reserved")
        if not _ORG_NAME.match(name):
            raise OrgError(
                f"'{name}' is not a valid organization name (letters, digits and hyphens, up to 50)"
            )
        tid = parse_guid(tenant_id)
        if tid is None:
            raise OrgError(f"tenant id '{tenant_id}' is not a GUID")
        if self._repo.find_by_name(name) is not None:
            raise OrgError(f"organization '{name}' already exists")
        row = OrganizationRow(
            id=new_guid(), name=name, name_key=name.lower(), tenant_id=tid, created_at=self._clock.now()
        )
        self._repo.add(row)
        return Organization.from_row(row)

    def find_member(self, org: Organization, object_id: str) -> Member | None:
        row = self._repo.find_member_values(org.id, object_id)
        return None if row is None else Member.from_row(row)

    def list_members(self, org: Organization) -> list[Member]:
        return [Member.from_row(r) for r in self._repo.list_members(org.id)]

    def add_member(
        self,
        org: Organization,
        *,
        object_id: str,
        kind: MemberKind,
        display_name: str,
        principal_name: str,
        access_level: AccessLevel,
        organization_admin: bool | None = None,
    ) -> Member:
        """Add a member, or change an existing one's access level (and, unless None, whether it is an
        organization administrator: a Project Collection Administrator)."""
        oid = parse_guid(object_id)
        if oid is None:
            raise OrgError(f"object id '{object_id}' is not a GUID")
        existing = self._repo.find_member(org.id, oid)
        if existing is not None:
            existing.access_level = access_level.value
            existing.display_name = display_name
            if organization_admin is not None:
                existing.organization_admin = organization_admin
            return Member.from_row(existing)
        row = MemberRow(
            id=new_guid(),
            organization_id=org.id,
            object_id=oid,
            kind=kind.value,
            display_name=display_name,
            principal_name=principal_name,
            access_level=access_level.value,
            organization_admin=bool(organization_admin),
            created_at=self._clock.now(),
        )
        self._repo.add(row)
        return Member.from_row(row)

    def remove_member(self, org: Organization, object_id: str) -> None:
        if not self._repo.delete_member(org.id, object_id):
            raise OrgError(f"{object_id} is not a member of {org.name}")
