"""Projects, their Git repository records and project roles. Never commits: the caller's unit of work does.

Every change is recorded in the audit log inside the same unit of work (`record_change`), so a change and its
audit row are written together or not at all.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from entryway.devops.audit.recorder import Actor, record_change_by
from entryway.devops.git.storage import init_bare_repository
from entryway.devops.orgs.service import Member, Organization
from entryway.devops.projects.permissions import ProjectRole, can_manage_project, can_see_project
from entryway.devops.projects.repository import ProjectRepository
from entryway.kit.clock import Clock
from entryway.kit.ids import new_guid
from entryway.store.models import ProjectMemberRow, ProjectRow, RepositoryRow

# Azure DevOps' naming restrictions for projects and repositories
# (learn: organizations/settings/naming-restrictions): at most 64 characters, none of these, no leading
# underscore or period, no trailing period, no control characters, not a name the web platform reserves.
MAX_NAME_LENGTH = 64
_FORBIDDEN_CHARACTERS = frozenset("\\/:*?\"'<>;#${},+=[]|%&")
RESERVED_NAMES = frozenset(
    name.lower()
    for name in (
        "AUX", "CON", "NUL", "PRN", "SERVER", "SignalR", "DefaultCollection", "Web", "bin", "web.config",
        "App_Browsers", "App_code", "App_Data", "App_GlobalResources", "App_LocalResources", "App_Themes",
        "App_WebResources", "_apis", "_git",
        *(f"COM{n}" for n in range(1, 11)),
        *(f"LPT{n}" for n in range(1, 10)),
    )
)  # fmt: skip
_SPACES = re.compile(r"\s")


class ProjectErrorKind(enum.Enum):
    INVALID = "invalid"
    PROJECT_NOT_FOUND = "project_not_found"
    REPOSITORY_NOT_FOUND = "repository_not_found"
    PROJECT_EXISTS = "project_exists"
    REPOSITORY_EXISTS = "repository_exists"
    FORBIDDEN = "forbidden"


class ProjectError(ValueError):
    """A request the project service refuses. `subject` is the name the caller gave (for the wire message)."""

    def __init__(self, kind: ProjectErrorKind, message: str, subject: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.subject = subject


@dataclass(frozen=True)
class Project:
    id: str
    organization_id: str
    name: str
    description: str
    visibility: str
    revision: int
    last_update_time: datetime

    @classmethod
    def from_row(cls, row: ProjectRow) -> Project:
        return cls(
            row.id,
            row.organization_id,
            row.name,
            row.description,
            row.visibility,
            row.revision,
            row.last_update_time,
        )


@dataclass(frozen=True)
class Repository:
    id: str
    name: str
    project: Project
    default_branch: str | None


@dataclass(frozen=True)
class ProjectMember:
    member: Member
    role: ProjectRole


@dataclass(frozen=True)
class Viewer:
    """A caller whose view is limited to what they may see; `None` where a viewer is expected: the host."""

    member: Member
    # A pipeline job token: `member` is this project's build service, a reader of it and of no other project
    # (Azure DevOps' project-scoped build identity; devops/auth/jobtoken.py). It holds no membership row.
    build_project_id: str | None = None

    @property
    def is_org_admin(self) -> bool:
        return self.member.organization_admin


def check_name(name: str, what: str = "project") -> str:
    """Azure DevOps' naming restrictions; the message says which one `name` breaks."""
    if not name or not name.strip():
        raise ProjectError(ProjectErrorKind.INVALID, f"a {what} name is required", name)
    if name != name.strip():
        raise ProjectError(
            ProjectErrorKind.INVALID, f"'{name}': a {what} name has no surrounding spaces", name
        )
    if len(name) > MAX_NAME_LENGTH:
        raise ProjectError(
            ProjectErrorKind.INVALID,
            f"'{name}': a {what} name has at most {MAX_NAME_LENGTH} characters",
            name,
        )
    bad = sorted({c for c in name if c in _FORBIDDEN_CHARACTERS})
    if bad:
        raise ProjectError(
            ProjectErrorKind.INVALID, f"'{name}': a {what} name cannot contain {' '.join(bad)}", name
        )
    if any(unicodedata.category(c) in {"Cc", "Cf", "Cs", "Co", "Cn"} for c in name):
        raise ProjectError(
            ProjectErrorKind.INVALID, f"'{name}': a {what} name cannot contain control characters", name
        )
    if name.startswith(("_", ".")) or name.endswith("."):
        raise ProjectError(
            ProjectErrorKind.INVALID,
            f"'{name}': a {what} name cannot start with an underscore or a period, nor end with a period",
            name,
        )
    if name.lower() in RESERVED_NAMES:
        raise ProjectError(ProjectErrorKind.INVALID, f"'{name}' is a reserved name", name)
    return name


class ProjectService:
    def __init__(self, session: Session, clock: Clock, git_root: str | None = None) -> None:
        self._session = session
        self._repo = ProjectRepository(session)
        self._clock = clock
        self._git_root = git_root

    def _audit(self, org: Organization, actor: Actor, action: str, details: dict[str, str]) -> None:
        record_change_by(
            self._session, clock=self._clock, organization=org, actor=actor, action=action, details=details
        )

    # --- projects ------------------------------------------------------------------------------------

    def find(self, org: Organization, id_or_name: str) -> Project | None:
        row = self._repo.find_project(org.id, id_or_name)
        return None if row is None else Project.from_row(row)

    def role_of(self, project: Project, member: Member) -> ProjectRole | None:
        row = self._repo.find_role(project.id, member.id)
        return None if row is None else ProjectRole(row.role)

    def get(self, org: Organization, id_or_name: str, viewer: Viewer | None = None) -> Project:
        """The project, if the viewer may see it; otherwise the same answer as for a missing one
        (Azure DevOps never tells a caller that a project it cannot see exists)."""
        project = self.find(org, id_or_name)
        if project is not None and viewer is not None:
            role = self._role_of_viewer(project, viewer)
            if not can_see_project(viewer.member, role, viewer.is_org_admin):
                project = None
        if project is None:
            raise ProjectError(
                ProjectErrorKind.PROJECT_NOT_FOUND,
                f"project '{id_or_name}' not found in {org.name}",
                id_or_name,
            )
        return project

    def _role_of_viewer(self, project: Project, viewer: Viewer) -> ProjectRole | None:
        if viewer.build_project_id is not None:
            return ProjectRole.READERS if project.id == viewer.build_project_id else None
        return self.role_of(project, viewer.member)

    def list_projects(self, org: Organization, viewer: Viewer | None = None) -> list[Project]:
        projects = [Project.from_row(r) for r in self._repo.list_projects(org.id)]
        if viewer is not None and viewer.build_project_id is not None:
            return [p for p in projects if p.id == viewer.build_project_id]
        if viewer is None or viewer.is_org_admin:
            return projects
        roles = self._repo.roles_of_member(viewer.member.id)
        return [
            p for p in projects if can_see_project(viewer.member, _role(roles.get(p.id)), viewer.is_org_admin)
        ]

    def create(
        self,
        org: Organization,
        name: str,
        actor: Actor,
        *,
        description: str = "",
        visibility: str = "private",
    ) -> Project:
        check_name(name)
        if visibility not in {"private", "public"}:
            raise ProjectError(
                ProjectErrorKind.INVALID, f"visibility '{visibility}' is private or public", name
            )
        if self._repo.find_project(org.id, name) is not None:
            raise ProjectError(ProjectErrorKind.PROJECT_EXISTS, f"project '{name}' already exists", name)
        now = self._clock.now()
        row = ProjectRow(
            id=new_guid(),
            organization_id=org.id,
            name=name,
            name_key=name.lower(),
            description=description,
            visibility=visibility,
            revision=1,
            created_at=now,
            last_update_time=now,
        )
        self._repo.add(row)
        self._audit(org, actor, "Project.Create", {"projectId": row.id, "projectName": name})
        return Project.from_row(row)

    def delete(self, org: Organization, id_or_name: str, actor: Actor) -> list[str]:
        """Delete the project and its repository records; returns the ids of the repositories, whose
        directories the caller removes once the unit of work has committed."""
        project = self.get(org, id_or_name)
        repo_ids = [r.id for r in self._repo.list_repositories([project.id])]
        self._repo.delete_project(project.id)
        self._audit(org, actor, "Project.Delete", {"projectId": project.id, "projectName": project.name})
        return repo_ids

    # --- roles ---------------------------------------------------------------------------------------

    def set_role(
        self, org: Organization, project: Project, member: Member, role: ProjectRole, actor: Actor
    ) -> bool:
        """Give `member` `role` in `project` (replacing another role). False when it already had it."""
        if member.organization_id != org.id:
            raise ProjectError(
                ProjectErrorKind.INVALID, f"{member.principal_name} is not a member of {org.name}"
            )
        row = self._repo.find_role(project.id, member.id)
        if row is not None and row.role == role.value:
            return False
        if row is None:
            self._repo.add(
                ProjectMemberRow(
                    project_id=project.id, member_id=member.id, role=role.value, created_at=self._clock.now()
                )
            )
        else:
            row.role = role.value
        self._audit(
            org,
            actor,
            "Project.MemberRoleSet",
            {"projectId": project.id, "projectName": project.name, "memberId": member.object_id,
             "member": member.principal_name, "role": role.value},
        )  # fmt: skip
        return True

    def remove_role(self, org: Organization, project: Project, member: Member, actor: Actor) -> None:
        if not self._repo.delete_role(project.id, member.id):
            raise ProjectError(
                ProjectErrorKind.INVALID, f"{member.principal_name} has no role in project '{project.name}'"
            )
        self._audit(
            org,
            actor,
            "Project.MemberRoleRemove",
            {"projectId": project.id, "projectName": project.name, "memberId": member.object_id,
             "member": member.principal_name},
        )  # fmt: skip

    def list_roles(self, project: Project) -> list[ProjectMember]:
        return [
            ProjectMember(Member.from_row(member), ProjectRole(role.role))
            for role, member in self._repo.list_roles(project.id)
        ]

    def may_manage(self, project: Project, viewer: Viewer) -> bool:
        return can_manage_project(viewer.member, self.role_of(project, viewer.member), viewer.is_org_admin)

    # --- repositories --------------------------------------------------------------------------------

    def create_repository(self, org: Organization, project: Project, name: str, actor: Actor) -> Repository:
        """The record, and its bare repository on disk (an orphan directory left by a rolled-back unit of
        work is harmless: the id naming it is never reused)."""
        check_name(name, "repository")
        if self._repo.find_repository(project.id, name) is not None:
            raise ProjectError(
                ProjectErrorKind.REPOSITORY_EXISTS, f"repository '{name}' already exists", name
            )
        row = RepositoryRow(
            id=new_guid(),
            project_id=project.id,
            name=name,
            name_key=name.lower(),
            default_branch=None,
            created_at=self._clock.now(),
        )
        self._repo.add(row)
        if self._git_root is not None:
            init_bare_repository(self._git_root, row.id)
        self._audit(
            org,
            actor,
            "Git.RepositoryCreated",
            {"projectId": project.id, "projectName": project.name, "repoId": row.id, "repoName": name},
        )
        return Repository(row.id, row.name, project, row.default_branch)

    def list_repositories(
        self, org: Organization, viewer: Viewer | None = None, project: Project | None = None
    ) -> list[Repository]:
        projects = {p.id: p for p in ([project] if project else self.list_projects(org, viewer))}
        return [
            Repository(r.id, r.name, projects[r.project_id], r.default_branch)
            for r in self._repo.list_repositories(list(projects))
        ]

    def get_repository(
        self, org: Organization, id_or_name: str, viewer: Viewer | None = None, project: Project | None = None
    ) -> Repository:
        """By id or name, in `project` or (by id, or a name unique in the organization) anywhere the viewer
        sees. Not visible and missing get the same answer."""
        if project is not None:
            rows = [r for r in [self._repo.find_repository(project.id, id_or_name)] if r is not None]
        else:
            rows = self._repo.find_repository_in_org(org.id, id_or_name)
        visible = (
            {p.id: p for p in self.list_projects(org, viewer)} if project is None else {project.id: project}
        )
        found = [r for r in rows if r.project_id in visible]
        if len(found) != 1:
            raise ProjectError(
                ProjectErrorKind.REPOSITORY_NOT_FOUND, f"repository '{id_or_name}' not found", id_or_name
            )
        row = found[0]
        return Repository(row.id, row.name, visible[row.project_id], row.default_branch)


def _role(value: str | None) -> ProjectRole | None:
    return None if value is None else ProjectRole(value)
