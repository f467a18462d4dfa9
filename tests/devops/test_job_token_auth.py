"""A pipeline job token (System.AccessToken) at the DevOps service (issue 7): the project's build service,
which clones its own project's repositories with the real git CLI and reaches nothing else; expired or
revoked (its job ended), it is refused on the very next request, also by another server on the database.

The runs here are rows, with tokens issued by the pipelines package's own JobTokens; the runner's end-to-end
tests are tests/devops/test_pipeline_e2e.py."""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from azure.devops.connection import Connection
from azure.devops.exceptions import AzureDevOpsServiceError
from msrest.authentication import BasicAuthentication
from sqlalchemy import select

from entryway.config.settings import Settings
from entryway.devops.audit.recorder import Actor
from entryway.devops.auth.credentials import CredentialKind, Scheme, parse_authorization
from entryway.devops.orgs.service import OrgService
from entryway.devops.pipelines.jobtokens import JobTokens
from entryway.devops.projects.permissions import ProjectRole
from entryway.devops.projects.service import ProjectService
from entryway.kit.ids import new_guid
from entryway.kit.secrets import JOB_TOKEN
from entryway.runtime import Runtime
from entryway.store.models import AuditEventRow, PipelineRow, PipelineRunRow
from tests.conftest import ADA, CONTOSO_TENANT, NORTHWIND_TENANT, start_entryway
from tests.devops.test_git import ORG, GitWorld, commit_file, git, git_world, ok
from tests.test_cli import start_serve, stop_serve

__all__ = ["git_world"]  # the fixture, imported from the Git tests

ANONYMOUS_MESSAGE = "TF400813: Resource not available for anonymous access. Client authentication required."
# A project and repository of their own: the Git tests look for audit rows by their repository's name.
PROJECT = "Job Works"
REPO = "job-works-code"
OTHER_PROJECT = "Job Elsewhere"
OTHER_REPO = "job-elsewhere-code"
SOURCE_BRANCH = "job-token-source"


@dataclass(frozen=True)
class JobWorld:
    git: GitWorld
    project_id: str
    other_project_id: str
    pipeline_id: int
    other_url: str  # a repository of another project of the same organization


@pytest.fixture(scope="module")
def job_world(git_world: GitWorld, tmp_path_factory: pytest.TempPathFactory) -> JobWorld:
    """A project with a pipeline on its repository and a commit on SOURCE_BRANCH (pushed by ada), and
    another project of the same organization with a repository of its own."""
    runtime = git_world.instance.runtime
    git_root = str(runtime.settings.data_dir / "git")
    actor = Actor.local("test_job_token_auth")
    with runtime.db.unit_of_work() as session:
        org = OrgService(session, runtime.clock).get(ORG)
        projects = ProjectService(session, runtime.clock, git_root)
        project = projects.create(org, PROJECT, actor)
        repository = projects.create_repository(org, project, REPO, actor)
        other = projects.create(org, OTHER_PROJECT, actor)
        projects.create_repository(org, other, OTHER_REPO, actor)
        ada = next(
            m for m in OrgService(session, runtime.clock).list_members(org) if m.principal_name == ADA.upn
        )
        projects.set_role(org, project, ada, ProjectRole.CONTRIBUTORS, actor)
        projects.set_role(org, other, ada, ProjectRole.READERS, actor)
        pipeline = PipelineRow(
            project_id=project.id,
            name="job-token-auth",
            name_key="job-token-auth",
            repository_id=repository.id,
            yaml_path="azure-pipelines.yml",
            created_at=runtime.clock.now(),
        )
        session.add(pipeline)
        session.flush()
        project_id, other_project_id, pipeline_id = project.id, other.id, pipeline.id
        git_world = replace(
            git_world,
            url=f"{git_world.instance.devops}/{ORG}/{quote(PROJECT)}/_git/{REPO}",
            repository_id=repository.id,
        )
    work = tmp_path_factory.mktemp("job-source")
    token = git_world.tokens[ADA.upn]
    ok(git(git_world, "clone", "-q", git_world.url, str(work), token=token))
    commit_file(git_world, work, "built-by-the-job.txt", b"checked out by a job token\n")
    ok(git(git_world, "push", "-q", "origin", f"HEAD:refs/heads/{SOURCE_BRANCH}", cwd=work, token=token))
    other_url = f"{git_world.instance.devops}/{ORG}/{quote(OTHER_PROJECT)}/_git/{OTHER_REPO}"
    return JobWorld(git_world, project_id, other_project_id, pipeline_id, other_url)


def start_job(world: JobWorld, lifetime: timedelta = timedelta(minutes=60)) -> tuple[str, int]:
    """A run of the pipeline, in progress, and its job token; (token, run id)."""
    runtime = world.git.instance.runtime
    with runtime.db.unit_of_work() as session:
        org = OrgService(session, runtime.clock).get(ORG)
        run = PipelineRunRow(
            pipeline_id=world.pipeline_id,
            project_id=world.project_id,
            plan_id=new_guid(),
            job_id=new_guid(),
            state="inProgress",
            result=None,
            source_branch=f"refs/heads/{SOURCE_BRANCH}",
            queued_at=runtime.clock.now(),
            started_at=runtime.clock.now(),
        )
        session.add(run)
        session.flush()
        token = JobTokens(session, runtime.clock, runtime.digester).issue(run, org.id, lifetime)
        return token, run.id


def end_job(world: JobWorld, run_id: int) -> None:
    """What the runner does when the job ends: revoke its tokens (a row update, no message to any server)."""
    runtime = world.git.instance.runtime
    with runtime.db.unit_of_work() as session:
        JobTokens(session, runtime.clock, runtime.digester).revoke_for_run(run_id)


def basic(token: str, user: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


def call(
    world: JobWorld,
    method: str,
    path: str,
    authorization: str,
    *,
    devops: str | None = None,
    **kwargs: object,
) -> requests.Response:
    return requests.request(
        method,
        f"{devops or world.git.instance.devops}{path}",
        headers={"Authorization": authorization, "X-TFS-FedAuthRedirect": "Suppress"},
        verify=world.git.instance.ca_bundle,
        allow_redirects=False,
        timeout=30,
        **kwargs,  # type: ignore[arg-type]
    )


def assert_anonymous_401(response: requests.Response, tenant: str = CONTOSO_TENANT) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["message"] == ANONYMOUS_MESSAGE
    assert response.headers["X-VSS-ResourceTenant"] == tenant


def assert_not_authorized_401(response: requests.Response) -> None:
    """A valid job token on a route that does not take one: 401, TF400813 naming the identity."""
    assert response.status_code == 401, response.text
    message = response.json()["message"]
    assert message.startswith("TF400813: The user '"), message
    assert message.endswith("' is not authorized to access this resource."), message


def wait_for_audit(world: JobWorld, *conditions: object) -> list[AuditEventRow]:
    """Authentication decisions are written off the request path: wait for them briefly."""
    deadline = time.monotonic() + 5
    while True:
        with world.git.instance.runtime.db.read() as session:
            rows = list(session.scalars(select(AuditEventRow).where(*conditions)).all())  # type: ignore[arg-type]
            for row in rows:
                session.expunge(row)
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


# --- what a job token looks like ------------------------------------------------------------------------------


def test_a_job_token_is_told_apart_by_its_shape_as_bearer_and_as_basic_password() -> None:
    token = JOB_TOKEN.mint()
    assert token.startswith("ewjt_")
    bearer = parse_authorization(f"Bearer {token}")
    assert (bearer.kind, bearer.scheme, bearer.value) == (CredentialKind.JOB_TOKEN, Scheme.BEARER, token)
    assert bearer.label == "bearer:jobtoken"
    as_password = parse_authorization(basic(token, "build"))
    assert (as_password.kind, as_password.value) == (CredentialKind.JOB_TOKEN, token)
    assert as_password.label == "basic:jobtoken"


# --- what it reaches -----------------------------------------------------------------------------------------


def test_a_job_token_is_its_projects_build_service(job_world: JobWorld) -> None:
    token, _ = start_job(job_world)
    for authorization in (f"Bearer {token}", basic(token), basic(token, "anything")):
        answer = call(job_world, "GET", f"/{ORG}/_apis/connectionData", authorization)
        assert answer.status_code == 200, answer.text
        user = answer.json()["authenticatedUser"]
        assert user["providerDisplayName"] == f"{PROJECT} Build Service ({ORG})"
        assert user["properties"]["Account"]["$value"] == f"Build\\{job_world.project_id}"


def test_a_job_token_clones_its_projects_repository_as_the_agent_does(
    job_world: JobWorld, tmp_path: Path
) -> None:
    """The checkout step: `git -c http.extraheader="AUTHORIZATION: bearer <token>" clone`; and a script that
    hands the token to git as a password (a credential helper)."""
    token, _ = start_job(job_world)
    world = job_world.git
    work = tmp_path / "checkout"
    ok(git(world, "clone", "-q", "--branch", SOURCE_BRANCH, world.url, str(work), token=token))
    assert (work / "built-by-the-job.txt").read_bytes() == b"checked out by a job token\n"
    ok(git(world, "fetch", "-q", "origin", cwd=work, token=token, helper=True))
    # The organization-level URL names the same repository.
    org_url = f"{world.instance.devops}/{ORG}/_git/{REPO}"
    listed = ok(git(world, "ls-remote", org_url, f"refs/heads/{SOURCE_BRANCH}", token=token)).stdout
    assert listed.endswith(f"\trefs/heads/{SOURCE_BRANCH}\n")


def test_a_job_token_cannot_push(job_world: JobWorld, tmp_path: Path) -> None:
    """Azure DevOps' build service has Read, not Contribute, by default: TF401027 naming Build\\{projectId}."""
    token, _ = start_job(job_world)
    world = job_world.git
    work = tmp_path / "push"
    ok(git(world, "clone", "-q", "--branch", SOURCE_BRANCH, world.url, str(work), token=token))
    commit_file(world, work, "from-the-job.txt", b"pushed?\n")
    refused = git(world, "push", "origin", "HEAD:refs/heads/job-pushed", cwd=work, token=token)
    assert refused.returncode != 0
    assert (
        "remote: TF401027: You need the Git 'GenericContribute' permission to perform this action. "
        f"Details: identity 'Build\\{job_world.project_id}', scope 'repository'." in refused.stderr
    )
    assert "The requested URL returned error: 403" in refused.stderr
    assert "job-pushed" not in ok(git(world, "ls-remote", world.url, token=token)).stdout
    refusals = wait_for_audit(
        job_world,
        AuditEventRow.action == "Authentication.Refused",
        AuditEventRow.status == 403,
        AuditEventRow.credential_kind == "bearer:jobtoken",
    )
    assert refusals
    assert refusals[0].actor_id == job_world.project_id
    assert refusals[0].actor_name == f"{PROJECT} Build Service ({ORG})"
    assert token not in str(refusals[0].details)


def test_a_job_token_cannot_read_another_projects_repository(job_world: JobWorld, tmp_path: Path) -> None:
    """With the job authorization scope limited to the current project, Azure DevOps answers a repository of
    another project as one that does not exist: TF401019."""
    token, _ = start_job(job_world)
    world = job_world.git
    # The other project's repository is readable by its members: it is the job token that is refused.
    ok(git(world, "ls-remote", job_world.other_url, token=world.tokens[ADA.upn]))
    for helper in (False, True):
        refused = git(
            world, "clone", job_world.other_url, str(tmp_path / f"other-{helper}"), token=token, helper=helper
        )
        assert refused.returncode != 0
        assert (
            f"remote: TF401019: The Git repository with name or identifier {OTHER_REPO} does not exist"
            in refused.stderr
        )
    org_url = f"{world.instance.devops}/{ORG}/_git/{OTHER_REPO}"
    refused = git(world, "ls-remote", org_url, token=token)
    assert "remote: TF401019" in refused.stderr
    # Named through the job's own project, it is not found either.
    crossed = f"{world.instance.devops}/{ORG}/{quote(PROJECT)}/_git/{OTHER_REPO}"
    assert "remote: TF401019" in git(world, "ls-remote", crossed, token=token).stderr


def test_the_azure_devops_sdk_reads_its_own_project_with_a_job_token(job_world: JobWorld) -> None:
    """`System.AccessToken` with the azure-devops SDK (Basic, empty user name, as pipeline scripts do): the
    build service sees its own project and its repositories, and no other project."""
    token, _ = start_job(job_world)
    connection = Connection(
        base_url=f"{job_world.git.instance.devops}/{ORG}", creds=BasicAuthentication("", token)
    )
    core = connection.clients.get_core_client()
    assert [p.name for p in core.get_projects()] == [PROJECT]
    assert core.get_project(PROJECT).id == job_world.project_id
    with pytest.raises(AzureDevOpsServiceError, match="TF200016"):
        core.get_project(OTHER_PROJECT)
    git_client = connection.clients.get_git_client()
    assert REPO in [r.name for r in git_client.get_repositories(project=PROJECT)]
    assert {r.project.name for r in git_client.get_repositories()} == {PROJECT}
    assert git_client.get_repository(REPO, project=PROJECT).id == job_world.git.repository_id
    with pytest.raises(AzureDevOpsServiceError, match="TF401019"):
        git_client.get_repository(OTHER_REPO)
    with pytest.raises(AzureDevOpsServiceError, match="TF200016"):
        git_client.get_repositories(project=OTHER_PROJECT)


def test_a_job_token_is_refused_everywhere_else(job_world: JobWorld) -> None:
    """Anything that changes a project or a repository, the PAT API, Git Credential Manager's sessiontokens,
    the audit log: each answers 401 TF400813 naming the identity."""
    token, _ = start_job(job_world)
    bearer = f"Bearer {token}"
    for method, path, kwargs in (
        ("POST", f"/{ORG}/_apis/projects", {"json": {"name": "made-by-a-job"}}),
        ("POST", f"/{ORG}/{quote(PROJECT)}/_apis/git/repositories", {"json": {"name": "made-by-a-job"}}),
        ("POST", f"/{ORG}/_apis/git/repositories", {"json": {"name": "made-by-a-job"}}),
        ("DELETE", f"/{ORG}/_apis/projects/{job_world.other_project_id}", {}),
        ("GET", f"/{ORG}/_apis/tokens/pats", {}),
        ("POST", f"/{ORG}/_apis/tokens/pats", {"json": {"displayName": "from a job", "scope": "vso.code"}}),
        ("POST", f"/{ORG}/_apis/token/sessiontokens", {"json": {"scope": "vso.code_write"}}),
        ("GET", f"/{ORG}/_apis/audit/auditlog", {}),
    ):
        answer = call(job_world, method, f"{path}?api-version=7.1", bearer, **kwargs)
        assert_not_authorized_401(answer)
    # An open route (Git Credential Manager's tenant discovery) sees the job token as no credential.
    assert_anonymous_401(call(job_world, "GET", f"/{ORG}", bearer))


def test_a_job_token_is_refused_in_another_organization(job_world: JobWorld) -> None:
    token, _ = start_job(job_world)
    answer = call(job_world, "GET", "/northwind/_apis/connectionData", f"Bearer {token}")
    assert_anonymous_401(answer, NORTHWIND_TENANT)
    url = f"{job_world.git.instance.devops}/northwind/{quote(PROJECT)}/_git/{REPO}"
    refused = git(job_world.git, "ls-remote", url, token=token)
    assert refused.returncode != 0
    # The 401 challenge: git would ask for a user name (no terminal here); with a helper answering the token,
    # it gives up with "Authentication failed".
    assert "could not read Username" in refused.stderr
    with_helper = git(job_world.git, "ls-remote", url, token=token, helper=True)
    assert "Authentication failed" in with_helper.stderr


def test_malformed_and_unknown_job_tokens_are_answered_as_anonymous(job_world: JobWorld) -> None:
    good, _ = start_job(job_world)
    bad_checksum = good[:-1] + ("A" if good[-1] != "A" else "B")
    unknown = JOB_TOKEN.mint()
    truncated = good[:-3]
    for token in (bad_checksum, unknown, truncated, "ewjt_"):
        for authorization in (f"Bearer {token}", basic(token)):
            assert_anonymous_401(call(job_world, "GET", f"/{ORG}/_apis/connectionData", authorization))
    assert call(job_world, "GET", f"/{ORG}/_apis/connectionData", f"Bearer {good}").status_code == 200


# --- when it stops working -----------------------------------------------------------------------------------


def test_an_expired_job_token_is_refused_at_once(job_world: JobWorld, tmp_path: Path) -> None:
    """Past the job's timeout (the server's clock moved on), the token is refused on the next request:
    REST 401, and git finds no way to authenticate."""
    token, _ = start_job(job_world, lifetime=timedelta(seconds=30))
    world = job_world.git
    assert call(job_world, "GET", f"/{ORG}/_apis/connectionData", f"Bearer {token}").status_code == 200
    ok(git(world, "ls-remote", world.url, token=token))
    world.instance.clock.advance(timedelta(seconds=31))
    assert_anonymous_401(call(job_world, "GET", f"/{ORG}/_apis/connectionData", f"Bearer {token}"))
    refused = git(world, "ls-remote", world.url, token=token)
    assert refused.returncode != 0
    assert "could not read Username" in refused.stderr  # the 401 challenge; no terminal to ask on
    assert "Authentication failed" in git(world, "ls-remote", world.url, token=token, helper=True).stderr
    refusals = wait_for_audit(
        job_world,
        AuditEventRow.action == "Authentication.Refused",
        AuditEventRow.credential_kind == "bearer:jobtoken",
        AuditEventRow.status == 401,
    )
    assert any("expired" in str(r.details.get("reason")) for r in refusals)
    assert all(token not in str(r.details) for r in refusals)


def test_the_job_token_stops_working_when_the_job_ends_also_on_another_server(job_world: JobWorld) -> None:
    """Two servers on one database (as two processes would be): when the job ends and its token is revoked,
    both refuse it on their very next request."""
    first = job_world.git.instance
    second = start_entryway(first.settings.data_dir, first.clock)
    try:
        token, run_id = start_job(job_world)
        other_token, _ = start_job(job_world)
        for devops in (first.devops, second.devops):
            answer = call(job_world, "GET", f"/{ORG}/_apis/connectionData", f"Bearer {token}", devops=devops)
            assert answer.status_code == 200, answer.text
        end_job(job_world, run_id)
        for devops in (first.devops, second.devops):
            answer = call(job_world, "GET", f"/{ORG}/_apis/connectionData", basic(token), devops=devops)
            assert_anonymous_401(answer)
            # Another job's token is not touched.
            answer = call(
                job_world, "GET", f"/{ORG}/_apis/connectionData", f"Bearer {other_token}", devops=devops
            )
            assert answer.status_code == 200
    finally:
        second.server.stop()


def test_a_job_token_whose_project_is_deleted_is_refused(job_world: JobWorld) -> None:
    runtime = job_world.git.instance.runtime
    git_root = str(runtime.settings.data_dir / "git")
    actor = Actor.local("test_job_token_auth")
    name = f"Doomed {uuid.uuid4().hex[:8]}"
    with runtime.db.unit_of_work() as session:
        org = OrgService(session, runtime.clock).get(ORG)
        projects = ProjectService(session, runtime.clock, git_root)
        doomed = projects.create(org, name, actor)
        repository = projects.create_repository(org, doomed, "doomed-code", actor)
        pipeline = PipelineRow(
            project_id=doomed.id,
            name="doomed",
            name_key="doomed",
            repository_id=repository.id,
            yaml_path="azure-pipelines.yml",
            created_at=runtime.clock.now(),
        )
        session.add(pipeline)
        session.flush()
        world = JobWorld(
            job_world.git, doomed.id, job_world.other_project_id, pipeline.id, job_world.other_url
        )
    token, _ = start_job(world)
    assert call(job_world, "GET", f"/{ORG}/_apis/connectionData", f"Bearer {token}").status_code == 200
    with runtime.db.unit_of_work() as session:
        org = OrgService(session, runtime.clock).get(ORG)
        ProjectService(session, runtime.clock, git_root).delete(org, doomed.id, actor)
    assert_anonymous_401(call(job_world, "GET", f"/{ORG}/_apis/connectionData", f"Bearer {token}"))


PROCESS_TENANT = "6a7b8c9d-0e1f-4a2b-9c3d-4e5f6a7b8c9d"
PROCESS_CONFIG = f"""\
tenants:
  - id: {PROCESS_TENANT}
    domains: [processes.test]
organizations:
  - name: processorg
    tenant: processes.test
    projects:
      - name: Served Apart
        repositories: [apart]
"""


def test_a_server_process_of_its_own_refuses_the_token_once_revoked_or_expired(tmp_path: Path) -> None:
    """`entryway serve` in a process of its own; this process, sharing only the database (as the CLI running
    the job does), issues job tokens, revokes one and lets another expire: the server refuses each on its
    very next request. Both processes use the system clock."""
    data_dir = tmp_path / "data"
    config = tmp_path / "entryway.yaml"
    config.write_text(PROCESS_CONFIG)
    served = start_serve(data_dir, "--config", str(config))
    try:
        devops, ca = served.field("DevOps service"), served.field("CA bundle")
        runtime = Runtime.open(Settings(data_dir=data_dir))
        try:

            def issue(lifetime: timedelta) -> tuple[str, int]:
                with runtime.db.unit_of_work() as session:
                    org = OrgService(session, runtime.clock).get("processorg")
                    projects = ProjectService(session, runtime.clock)
                    project = projects.get(org, "Served Apart")
                    repository = projects.get_repository(org, "apart", project=project)
                    pipeline = session.scalars(
                        select(PipelineRow).where(PipelineRow.project_id == project.id)
                    ).first() or PipelineRow(
                        project_id=project.id,
                        name="apart",
                        name_key="apart",
                        repository_id=repository.id,
                        yaml_path="azure-pipelines.yml",
                        created_at=runtime.clock.now(),
                    )
                    session.add(pipeline)
                    session.flush()
                    run = PipelineRunRow(
                        pipeline_id=pipeline.id,
                        project_id=project.id,
                        plan_id=new_guid(),
                        job_id=new_guid(),
                        state="inProgress",
                        source_branch="refs/heads/main",
                        queued_at=runtime.clock.now(),
                        started_at=runtime.clock.now(),
                    )
                    session.add(run)
                    session.flush()
                    token = JobTokens(session, runtime.clock, runtime.digester).issue(run, org.id, lifetime)
                    return token, run.id

            def who(token: str) -> requests.Response:
                return requests.get(
                    f"{devops}/processorg/_apis/connectionData",
                    headers={"Authorization": f"Bearer {token}", "X-TFS-FedAuthRedirect": "Suppress"},
                    verify=ca,
                    timeout=30,
                )

            revoked, run_id = issue(timedelta(minutes=60))
            expiring, _ = issue(timedelta(seconds=2))
            for token in (revoked, expiring):
                answer = who(token)
                assert answer.status_code == 200, answer.text
                assert answer.json()["authenticatedUser"]["providerDisplayName"] == (
                    "Served Apart Build Service (processorg)"
                )
            with runtime.db.unit_of_work() as session:
                JobTokens(session, runtime.clock, runtime.digester).revoke_for_run(run_id)
            assert_anonymous_401(who(revoked), PROCESS_TENANT)
            time.sleep(2.1)
            assert_anonymous_401(who(expiring), PROCESS_TENANT)
        finally:
            runtime.close()
    finally:
        stop_serve(served)
