"""Security groups (members: users, service principals, other groups) and the directory roles users hold.

Tokens carry a user's transitive group object ids as `groups` and their role template ids as `wids`
(https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference). Group names are unique
per tenant here (Entra allows duplicates; the CLI and the config file name groups, so we do not). A group may
not contain itself, directly or through other groups. Never commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, bindparam, delete, select
from sqlalchemy.orm import Session

from entryway.identity.directory.service import DirectoryError
from entryway.kit.clock import Clock
from entryway.kit.ids import new_guid, parse_guid
from entryway.store.models import (
    ApplicationRow,
    DirectoryRoleAssignmentRow,
    GroupMemberRow,
    GroupRow,
    ServicePrincipalRow,
    TenantRow,
    UserRow,
)

# Directory role template ids (https://learn.microsoft.com/entra/identity/role-based-access-control/
# permissions-reference). The ones Azure DevOps' tenant PAT policies care about.
ROLE_TEMPLATES: Final = {
    "Azure DevOps Administrator": "e3973bdf-4987-49ae-837a-ba8e231c7286",
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
    "Conditional Access Administrator": "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9",
    "Security Reader": "5d6b6bb7-de71-4623-b4af-96380a352509",
}
# Every member user holds the default "User" role: Entra puts it in every user's `wids`.
DEFAULT_USER_ROLE: Final = "b79fbf4d-3ef9-4689-8143-76b194e85509"
# Past this many groups, Entra leaves `groups` out of a JWT and signals the overage instead.
MAX_GROUPS_IN_TOKEN: Final = 200

USER = "user"
SERVICE_PRINCIPAL = "servicePrincipal"
GROUP = "group"
MAX_GROUP_NAME = 256
# Nesting deeper than this is refused when a group is added, and not followed when memberships are read.
MAX_NESTING_DEPTH = 32

_PARENTS = select(GroupMemberRow.group_id).where(
    GroupMemberRow.member_object_id.in_(bindparam("ids", expanding=True))
)
_ROLES = select(DirectoryRoleAssignmentRow.role_template_id).where(
    DirectoryRoleAssignmentRow.tenant_id == bindparam("tenant_id"),
    DirectoryRoleAssignmentRow.principal_object_id == bindparam("object_id"),
)
_GROUPS_OF_TENANT = select(GroupRow.object_id).where(
    GroupRow.tenant_id == bindparam("tenant_id"), GroupRow.object_id.in_(bindparam("ids", expanding=True))
)


@dataclass(frozen=True)
class Member:
    object_id: str
    kind: str  # user | servicePrincipal | group
    name: str  # UPN, app id, or group name ("" when the member no longer exists)


def parse_role(value: str) -> str:
    """A role's template id from its display name (any case) or the template id itself."""
    for name, template in ROLE_TEMPLATES.items():
        if value.strip().lower() in (name.lower(), template):
            return template
    names = ", ".join(f'"{n}"' for n in ROLE_TEMPLATES)
    raise DirectoryError(f"unknown directory role '{value}' ({names})")


def role_name(template_id: str) -> str:
    return next((n for n, t in ROLE_TEMPLATES.items() if t == template_id), template_id)


def transitive_group_ids(connection: Connection, tenant_id: str, object_id: str) -> list[str]:
    """Every group `object_id` is in, directly or through other groups, in the tenant (sorted)."""
    found: set[str] = set()
    frontier = {object_id}
    for _ in range(MAX_NESTING_DEPTH):
        parents = set(connection.scalars(_PARENTS, {"ids": sorted(frontier)})) - found
        if not parents:
            break
        found |= parents
        frontier = parents
    if not found:
        return []
    return sorted(connection.scalars(_GROUPS_OF_TENANT, {"tenant_id": tenant_id, "ids": sorted(found)}))


def role_template_ids(connection: Connection, tenant_id: str, object_id: str) -> list[str]:
    return sorted(connection.scalars(_ROLES, {"tenant_id": tenant_id, "object_id": object_id}))


class GroupService:
    """Groups and role assignments of one tenant, for the CLI and the config file."""

    def __init__(self, session: Session, clock: Clock) -> None:
        self._session = session
        self._clock = clock

    # --- groups ------------------------------------------------------------------------------------------

    def create_group(self, tenant: TenantRow, name: str) -> GroupRow:
        clean = name.strip()
        if not clean or len(clean) > MAX_GROUP_NAME:
            raise DirectoryError(f"a group name is 1 to {MAX_GROUP_NAME} characters")
        if self.find_group_or_none(tenant, clean) is not None:
            raise DirectoryError(f"group '{clean}' already exists in the tenant")
        row = GroupRow(
            object_id=new_guid(),
            tenant_id=tenant.id,
            display_name=clean,
            display_name_key=clean.lower(),
            created_at=self._clock.now(),
        )
        self._session.add(row)
        self._session.flush()
        return row

    def find_group_or_none(self, tenant: TenantRow, ref: str) -> GroupRow | None:
        """A group by name (any case) or object id."""
        guid = parse_guid(ref.strip())
        condition = GroupRow.object_id == guid if guid else GroupRow.display_name_key == ref.strip().lower()
        return self._session.scalars(
            select(GroupRow).where(GroupRow.tenant_id == tenant.id, condition)
        ).first()

    def find_group(self, tenant: TenantRow, ref: str) -> GroupRow:
        group = self.find_group_or_none(tenant, ref)
        if group is None:
            raise DirectoryError(f"no group '{ref}' in the tenant")
        return group

    def list_groups(self, tenant: TenantRow) -> list[GroupRow]:
        return list(
            self._session.scalars(
                select(GroupRow).where(GroupRow.tenant_id == tenant.id).order_by(GroupRow.display_name_key)
            )
        )

    def delete_group(self, tenant: TenantRow, ref: str) -> None:
        """Delete a group: its own memberships go with it, and so does its membership in other groups."""
        group = self.find_group(tenant, ref)
        self._session.execute(
            delete(GroupMemberRow).where(GroupMemberRow.member_object_id == group.object_id)
        )
        self._session.execute(delete(GroupMemberRow).where(GroupMemberRow.group_id == group.object_id))
        self._session.delete(group)
        self._session.flush()

    # --- members -----------------------------------------------------------------------------------------

    def resolve_member(
        self, tenant: TenantRow, *, user: str | None = None, app: str | None = None, group: str | None = None
    ) -> Member:
        """A member named by exactly one of: a user's UPN, a service principal's app id, a group's name."""
        if sum(ref is not None for ref in (user, app, group)) != 1:
            raise DirectoryError("name exactly one member: a user (UPN), an app (app id) or a group (name)")
        if user is not None:
            row = self._session.scalars(
                select(UserRow).where(
                    UserRow.tenant_id == tenant.id, UserRow.user_principal_name == user.strip().lower()
                )
            ).first()
            if row is None:
                raise DirectoryError(f"no user '{user}' in the tenant")
            return Member(row.object_id, USER, row.user_principal_name)
        if app is not None:
            sp = self._find_service_principal(tenant, app)
            return Member(sp.object_id, SERVICE_PRINCIPAL, sp.app_id)
        assert group is not None
        found = self.find_group(tenant, group)
        return Member(found.object_id, GROUP, found.display_name)

    def _find_service_principal(self, tenant: TenantRow, ref: str) -> ServicePrincipalRow:
        app_id = parse_guid(ref.strip())
        if app_id is None:  # an app registration's name, in its own tenant
            app_id = self._session.scalars(
                select(ApplicationRow.app_id).where(
                    ApplicationRow.tenant_id == tenant.id, ApplicationRow.display_name == ref.strip()
                )
            ).first()
        sp = (
            None
            if app_id is None
            else self._session.scalars(
                select(ServicePrincipalRow).where(
                    ServicePrincipalRow.tenant_id == tenant.id, ServicePrincipalRow.app_id == app_id
                )
            ).first()
        )
        if sp is None:
            raise DirectoryError(f"no service principal for app '{ref}' in the tenant")
        return sp

    def add_member(self, tenant: TenantRow, group_ref: str, member: Member) -> bool:
        """Add a member; False when it already is one. A group may not contain itself, even indirectly."""
        group = self.find_group(tenant, group_ref)
        if member.kind == GROUP:
            # A cycle: the new member is the group itself or one of the groups it is in.
            above = {
                group.object_id,
                *transitive_group_ids(self._session.connection(), tenant.id, group.object_id),
            }
            if member.object_id in above or self._depth_of(member.object_id) >= MAX_NESTING_DEPTH:
                raise DirectoryError(
                    f"group '{member.name}' cannot be a member of '{group.display_name}': a cycle"
                )
        existing = self._session.get(GroupMemberRow, (group.object_id, member.object_id))
        if existing is not None:
            return False
        self._session.add(
            GroupMemberRow(
                group_id=group.object_id,
                member_object_id=member.object_id,
                member_kind=member.kind,
                created_at=self._clock.now(),
            )
        )
        self._session.flush()
        return True

    def _depth_of(self, group_id: str) -> int:
        """How deep the groups nested inside `group_id` go."""
        depth, frontier = 0, {group_id}
        while frontier and depth <= MAX_NESTING_DEPTH:
            frontier = set(
                self._session.scalars(
                    select(GroupMemberRow.member_object_id).where(
                        GroupMemberRow.group_id.in_(sorted(frontier)), GroupMemberRow.member_kind == GROUP
                    )
                )
            )
            depth += 1 if frontier else 0
        return depth

    def remove_member(self, tenant: TenantRow, group_ref: str, member: Member) -> None:
        group = self.find_group(tenant, group_ref)
        row = self._session.get(GroupMemberRow, (group.object_id, member.object_id))
        if row is None:
            raise DirectoryError(f"'{member.name}' is not a direct member of '{group.display_name}'")
        self._session.delete(row)
        self._session.flush()

    def list_members(self, group: GroupRow) -> list[Member]:
        rows = list(
            self._session.scalars(
                select(GroupMemberRow)
                .where(GroupMemberRow.group_id == group.object_id)
                .order_by(GroupMemberRow.created_at, GroupMemberRow.member_object_id)
            )
        )
        return [Member(r.member_object_id, r.member_kind, self._name_of(r)) for r in rows]

    def _name_of(self, row: GroupMemberRow) -> str:
        if row.member_kind == USER:
            user = self._session.get(UserRow, row.member_object_id)
            return "" if user is None else user.user_principal_name
        if row.member_kind == GROUP:
            group = self._session.get(GroupRow, row.member_object_id)
            return "" if group is None else group.display_name
        sp = self._session.get(ServicePrincipalRow, row.member_object_id)
        return "" if sp is None else sp.app_id

    def groups_of(self, tenant: TenantRow, object_id: str) -> list[GroupRow]:
        """Every group of the member, transitively."""
        ids = transitive_group_ids(self._session.connection(), tenant.id, object_id)
        if not ids:
            return []
        return list(
            self._session.scalars(
                select(GroupRow).where(GroupRow.object_id.in_(ids)).order_by(GroupRow.display_name_key)
            )
        )

    # --- directory roles ---------------------------------------------------------------------------------

    def add_role(self, tenant: TenantRow, user: UserRow, role: str) -> bool:
        """Assign a directory role to a user; False when they already hold it."""
        template = parse_role(role)
        key = (tenant.id, template, user.object_id)
        if self._session.get(DirectoryRoleAssignmentRow, key) is not None:
            return False
        self._session.add(
            DirectoryRoleAssignmentRow(
                tenant_id=tenant.id,
                role_template_id=template,
                principal_object_id=user.object_id,
                created_at=self._clock.now(),
            )
        )
        self._session.flush()
        return True

    def remove_role(self, tenant: TenantRow, user: UserRow, role: str) -> None:
        template = parse_role(role)
        row = self._session.get(DirectoryRoleAssignmentRow, (tenant.id, template, user.object_id))
        if row is None:
            raise DirectoryError(f"{user.user_principal_name} does not hold the role {role_name(template)}")
        self._session.delete(row)
        self._session.flush()

    def roles_of(self, tenant: TenantRow, object_id: str) -> list[str]:
        return role_template_ids(self._session.connection(), tenant.id, object_id)

    def ensure_roles(self, tenant: TenantRow, user: UserRow, roles: Iterable[str]) -> list[str]:
        """Assign each of `roles` the user does not hold yet (the config file's `roles:`; it never takes a role
        away, as it never removes a member). The template ids newly assigned."""
        added = []
        for template in sorted({parse_role(r) for r in roles}):
            if self.add_role(tenant, user, template):
                added.append(template)
        return added


class DirectoryPrincipals:
    """The directory as the PAT policies' `PrincipalDirectory` port sees it (for the CLI and the config file,
    which run beside both services): the display name of a user or group of a tenant, or None."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def find_principal_name(self, tenant_id: str, kind: str, object_id: str) -> str | None:
        if kind == USER:
            user = self._session.get(UserRow, object_id)
            return None if user is None or user.tenant_id != tenant_id else user.display_name
        if kind == GROUP:
            group = self._session.get(GroupRow, object_id)
            return None if group is None or group.tenant_id != tenant_id else group.display_name
        return None
