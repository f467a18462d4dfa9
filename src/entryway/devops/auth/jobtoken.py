"""A pipeline job token (System.AccessToken) presented to the DevOps service -> the project's build service.

Azure DevOps runs a job as a built-in identity, not as the person who queued it. With the job authorization
scope limited to the current project (Azure DevOps' default for new organizations), that identity is the
project-scoped build service, named `{Project Name} Build Service ({Org Name})`, whose account is
`Build\\{projectId}` (learn: pipelines/process/access-tokens, "Scoped build identities"). Entryway only has
that scope: a job token reaches its own project and nothing else.

What the identity may do is decided where the route is declared (`DevOpsRouter.org_route(job_token=True)`:
connectionData, Git, reading its project and repositories, the oidctoken endpoint), then by the domain: Git in
`GitService.authorize` (its own project's repositories, read only), projects in `ProjectService` through
`Viewer.build_project_id` (a reader of its own project). Any route that does not declare it refuses the token.

Nothing is cached: every request reads the token's row (`JobTokens.verify`), so a token revoked when its job
ends, or past its expiry, is refused on the very next request, in every server process sharing the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from entryway.devops.orgs.service import AccessLevel, Member, MemberKind, Organization
from entryway.devops.pats.verify import SessionRunner
from entryway.devops.pipelines.jobtokens import JobIdentity, JobTokens
from entryway.kit.clock import Clock
from entryway.kit.secrets import JOB_TOKEN, SecretDigester
from entryway.store.models import ProjectRow


def build_service_name(project_name: str, organization_name: str) -> str:
    """Azure DevOps' display name of a project-scoped build identity."""
    return f"{project_name} Build Service ({organization_name})"


def build_service_account(project_id: str) -> str:
    """The identity's account name, as Azure DevOps' refusals print it (`identity 'Build\\{projectId}'`)."""
    return f"Build\\{project_id}"


def build_service_member(org: Organization, project_id: str, project_name: str) -> Member:
    """The build service as the rest of the service sees a caller. It is no row of devops_members: it exists
    as long as its project does, holds no organization role and no project role of its own."""
    return Member(
        id=project_id,
        organization_id=org.id,
        object_id=project_id,
        kind=MemberKind.SERVICE_PRINCIPAL,
        display_name=build_service_name(project_name, org.name),
        principal_name=build_service_account(project_id),
        access_level=AccessLevel.BASIC,
        organization_admin=False,
    )


@dataclass(frozen=True)
class BuildService:
    """A valid job token, resolved: the job it speaks for and the project's build service identity."""

    job: JobIdentity
    member: Member


@dataclass(frozen=True)
class JobTokenRefusal:
    """Why a job token is refused: for the log and the audit trail only, never for the caller."""

    reason: str


class JobTokenVerifier:
    def __init__(self, *, digester: SecretDigester, clock: Clock, read: SessionRunner) -> None:
        self._digester = digester
        self._clock = clock
        self._read = read

    async def verify(self, value: str, org: Organization) -> BuildService | JobTokenRefusal:
        # Shape and checksum first: a mistyped or forged value costs no query.
        if not JOB_TOKEN.is_well_formed(value):
            return JobTokenRefusal("not a well-formed job token (length or checksum)")
        found = await self._read(lambda session: self._find(session, value))
        if found is None:
            return JobTokenRefusal("job token unknown, expired, or revoked (its job ended)")
        job, project_name = found
        if job.organization_id != org.id:
            return JobTokenRefusal(f"job token of run {job.run_id} belongs to another organization")
        if project_name is None:
            return JobTokenRefusal(f"job token of run {job.run_id}: its project {job.project_id} is gone")
        return BuildService(job, build_service_member(org, job.project_id, project_name))

    def _find(self, session: Session, value: str) -> tuple[JobIdentity, str | None] | None:
        job = JobTokens(session, self._clock, self._digester).verify(value)
        if job is None:
            return None
        project = session.get(ProjectRow, job.project_id)
        return job, (project.name if project is not None else None)
