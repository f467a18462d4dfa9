"""Who may do what in a project: Azure DevOps' access levels and default project groups, as pure functions.

Access levels (learn: organizations/security/access-levels): Stakeholder cannot read code; Basic and
Basic + Test Plans can. Default project groups (learn: organizations/security/permissions#git-repository):
Readers read, Contributors read and push (create branches, tags), Project Administrators do all of that and
manage the project. A Project Collection Administrator (`organization_admin`) is a project administrator of
every project. No I/O: the Git service and the REST routes both ask here.
"""

from __future__ import annotations

import enum

from entryway.devops.orgs.service import AccessLevel, Member


class ProjectRole(enum.StrEnum):
    """A project's default security groups, weakest first (stored in `devops_project_members.role`)."""

    READERS = "readers"
    CONTRIBUTORS = "contributors"
    PROJECT_ADMINISTRATORS = "projectAdministrators"

    @classmethod
    def parse(cls, value: str) -> ProjectRole:
        """Accepts the wire names and the config/CLI spellings (`project_administrators`, `Readers`)."""
        key = value.replace("_", "").replace("-", "").replace(" ", "").lower()
        for role in cls:
            if role.value.lower() == key:
                return role
        raise ValueError(f"unknown project role '{value}' (readers, contributors, project_administrators)")

    @property
    def rank(self) -> int:
        return list(ProjectRole).index(self)


def _effective_role(role: ProjectRole | None, is_org_admin: bool) -> ProjectRole | None:
    return ProjectRole.PROJECT_ADMINISTRATORS if is_org_admin else role


def can_see_project(member: Member, role: ProjectRole | None, is_org_admin: bool) -> bool:
    """A project is visible to its members (any role, any access level) and to organization admins."""
    return _effective_role(role, is_org_admin) is not None


def can_read_code(member: Member, role: ProjectRole | None, is_org_admin: bool) -> bool:
    """Clone, fetch, list repositories' contents. Stakeholders never read code, whatever their role."""
    if member.access_level is AccessLevel.STAKEHOLDER:
        return False
    return _effective_role(role, is_org_admin) is not None


def can_push(member: Member, role: ProjectRole | None, is_org_admin: bool) -> bool:
    """Push, create branches and tags (Git 'GenericContribute'): Contributors and above, not Readers."""
    if not can_read_code(member, role, is_org_admin):
        return False
    effective = _effective_role(role, is_org_admin)
    return effective is not None and effective.rank >= ProjectRole.CONTRIBUTORS.rank


def can_manage_project(member: Member, role: ProjectRole | None, is_org_admin: bool) -> bool:
    """Create repositories, change project membership, delete the project: Project Administrators.
    The access level does not matter here (a Stakeholder may administer a project's settings)."""
    return _effective_role(role, is_org_admin) is ProjectRole.PROJECT_ADMINISTRATORS
