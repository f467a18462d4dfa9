"""Who may clone and who may push: the repository a Git URL names, and the decision for one member.

The rules themselves are `devops.projects.permissions`; this module applies them to a located repository and
words the refusals as Azure DevOps does (TF401019 for a repository one cannot read, which never tells whether
it exists; TF401027 for a push without the Git 'GenericContribute' permission).

A pipeline job token is the project-scoped build service (devops/auth/jobtoken.py). Azure DevOps grants that
identity Read on its project's repositories by default and not Contribute (learn: pipelines/scripts/
git-commands, "Grant version control permissions to the build service"); with the job authorization scope
limited to the current project, another project's repository answers TF401019. Entryway has no per-repository
permissions to grant it more, so a job clones and fetches its own project's repositories and pushes nowhere.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy.orm import Session

from entryway.devops.git.repository import GitRepository
from entryway.devops.orgs.service import Member, Organization
from entryway.devops.pats import scopes as pat_scopes_catalogue
from entryway.devops.projects.permissions import ProjectRole, can_push, can_read_code
from entryway.store.models import ProjectRow, RepositoryRow


class GitOperation(enum.Enum):
    READ = "read"  # git-upload-pack: clone, fetch, ls-remote
    PUSH = "push"  # git-receive-pack


@dataclass(frozen=True)
class GitTarget:
    """A repository the caller may reach for the operation asked."""

    organization: Organization
    project_id: str
    project_name: str
    repository_id: str
    repository_name: str


@dataclass(frozen=True)
class GitRefusal:
    status: int
    message: str  # Azure DevOps' wording; the git client prints it as `remote: …`
    reason: str  # for the log only


def tf401019(repository: str) -> str:
    return (
        f"TF401019: The Git repository with name or identifier {repository} does not exist or you do not "
        "have permissions for the operation you are attempting."
    )


def tf401027(identity: str) -> str:
    return (
        "TF401027: You need the Git 'GenericContribute' permission to perform this action. "
        f"Details: identity '{identity}', scope 'repository'."
    )


class GitService:
    """Never commits; reads only."""

    def __init__(self, session: Session) -> None:
        self._repositories = GitRepository(session)

    def authorize(
        self,
        org: Organization,
        member: Member,
        project: str | None,
        repository: str,
        operation: GitOperation,
        *,
        pat_scopes: frozenset[str] | None = None,
        job_project_id: str | None = None,
    ) -> GitTarget | GitRefusal:
        """`project` None: the organization-level URL `/{org}/_git/{repo}`, which names a repository whose name
        is unique in the organization. `pat_scopes`: a PAT's scopes (None: an Entra token). `job_project_id`:
        the caller is a job token of that project (`member` is its build service)."""
        if job_project_id is not None:
            return self._authorize_build_service(
                org, member, project, repository, operation, job_project_id=job_project_id
            )
        return self._authorize_member(org, member, project, repository, operation, pat_scopes=pat_scopes)

    def _authorize_member(
        self,
        org: Organization,
        member: Member,
        project: str | None,
        repository: str,
        operation: GitOperation,
        *,
        pat_scopes: frozenset[str] | None,
    ) -> GitTarget | GitRefusal:
        # PAT scopes (PAT-AUTH): vso.code to read, vso.code_write to push. A PAT that cannot read is answered
        # as a repository one may not read (TF401019, 404); one that cannot push as a push without
        # 'GenericContribute' (TF401027, 403): the scope caps the owner's permissions.
        if pat_scopes is not None and not _scopes_allow(pat_scopes, GitOperation.READ):
            reason = f"the PAT does not hold vso.code ({' '.join(sorted(pat_scopes))})"
            return GitRefusal(404, tf401019(repository), reason)
        located = self._locate(org, project, repository)
        if located is None:
            return GitRefusal(
                404, tf401019(repository), f"no repository '{repository}' in project '{project}'"
            )
        project_row, repository_row = located
        stored_role = self._repositories.find_role(project_row.id, member.id)
        role = ProjectRole.parse(stored_role) if stored_role else None
        if not can_read_code(member, role, member.organization_admin):
            reason = (
                f"{member.principal_name} ({member.access_level.value}, role {role}) may not read "
                f"{project_row.name}/{repository_row.name}"
            )
            return GitRefusal(404, tf401019(repository), reason)
        if (
            operation is GitOperation.PUSH
            and pat_scopes is not None
            and not _scopes_allow(pat_scopes, GitOperation.PUSH)
        ):
            reason = f"the PAT does not hold vso.code_write ({' '.join(sorted(pat_scopes))})"
            return GitRefusal(403, tf401027(member.principal_name), reason)
        if operation is GitOperation.PUSH and not can_push(member, role, member.organization_admin):
            reason = f"{member.principal_name} (role {role}) may not push to {project_row.name}/{repository_row.name}"
            return GitRefusal(403, tf401027(member.principal_name), reason)
        return GitTarget(org, project_row.id, project_row.name, repository_row.id, repository_row.name)

    def _authorize_build_service(
        self,
        org: Organization,
        member: Member,
        project: str | None,
        repository: str,
        operation: GitOperation,
        *,
        job_project_id: str,
    ) -> GitTarget | GitRefusal:
        located = self._locate(org, project, repository)
        if located is None:
            return GitRefusal(
                404, tf401019(repository), f"no repository '{repository}' in project '{project}'"
            )
        project_row, repository_row = located
        if project_row.id != job_project_id:
            reason = (
                f"{member.display_name} may not read {project_row.name}/{repository_row.name}: "
                "a job token reaches its own project only"
            )
            return GitRefusal(404, tf401019(repository), reason)
        if operation is GitOperation.PUSH:
            reason = f"{member.display_name} may not push: the build service has no Contribute permission"
            return GitRefusal(403, tf401027(member.principal_name), reason)
        return GitTarget(org, project_row.id, project_row.name, repository_row.id, repository_row.name)

    def _locate(
        self, org: Organization, project: str | None, repository: str
    ) -> tuple[ProjectRow, RepositoryRow] | None:
        if project is not None:
            return self._repositories.find_in_project(org.id, project, repository)
        found = self._repositories.find_in_organization(org.id, repository)
        return found[0] if len(found) == 1 else None


# PAT-AUTH: the scope each Git operation needs.
_NEEDED_SCOPE = {GitOperation.READ: "vso.code", GitOperation.PUSH: "vso.code_write"}


def _scopes_allow(granted: frozenset[str], operation: GitOperation) -> bool:
    needed = _NEEDED_SCOPE[operation]
    return any(pat_scopes_catalogue.includes(scope, needed) for scope in granted)
