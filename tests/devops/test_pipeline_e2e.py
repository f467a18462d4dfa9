"""Pipelines with workload identity federation, end to end (issue 7): real servers, the real job runner (its
steps are bash subprocesses with the agent's environment), real clients inside the steps — azure-identity's
AzurePipelinesCredential and WorkloadIdentityCredential, curl, git — and no stored secret anywhere.

The jobs run in this process (as `entryway pipelines run` runs them in the CLI's), on the servers' own clock,
so a test can move the clock past a job token's expiry while its job waits.

- A job gets an Entra token for Azure DevOps with AzurePipelinesCredential (the oidctoken endpoint, then the
  identity platform's token exchange) and clones, with it, a repository of another project that its job token
  cannot reach: the app's service principal is a reader there.
- A job writes the OIDC token to a file and WorkloadIdentityCredential reads it.
- Refusals, each with its real code: the service connection renamed (AADSTS700213), a connection not
  authorized for the pipeline (404), the job token past its expiry (401), in another project (TF401019,
  404, 401), after its job ended (401).
- Secrets never in the log: a secret variable and the job token are `***` in the stored log and in what the
  run prints.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import yaml

from entryway.config.declarative import apply_config
from entryway.devops.audit.recorder import Actor
from entryway.devops.connections.service import ConnectionService, federation_of
from entryway.devops.git.storage import repository_path
from entryway.devops.orgs.service import OrgService
from entryway.devops.pipelines.runner import JobRunner, RunnerSettings
from entryway.devops.pipelines.service import PipelineService
from entryway.devops.pipelines.variables import PIPELINE_VARIABLES_PURPOSE, VariableCipher
from entryway.devops.projects.permissions import ProjectRole
from entryway.devops.projects.service import ProjectService
from entryway.kit.clock import ManualClock
from entryway.store.models import AuditEventRow, JobTokenRow, PipelineLogLineRow
from tests.conftest import (
    ADA,
    CONTOSO_TENANT,
    Instance,
    register_federated_credential,
    start_entryway,
)
from tests.devops.test_git import GIT, ORG, GitWorld, commit_file, git, git_world, ok

__all__ = ["git_world"]  # the fixture, imported from the Git tests

PROJECT = "Pipelines E2E"
REPO = "pipelines-e2e"
TARGET_PROJECT = "Deploy Targets"
TARGET_REPO = "deploy-notes"
DEPLOYER_ID = "8e2f4a6c-1b3d-4e5f-9a7b-c0d1e2f3a4b5"
DEPLOYER_NAME = "pipeline-deployer"
ANONYMOUS_MESSAGE = "TF400813: Resource not available for anonymous access. Client authentication required."

PIPELINE_CONFIG = f"""\
tenants:
  - id: {CONTOSO_TENANT}
    domains: [contoso.test]
    apps:
      - name: {DEPLOYER_NAME}
        client_id: {DEPLOYER_ID}
organizations:
  - name: {ORG}
    tenant: contoso.test
    members:
      - app: {DEPLOYER_NAME}
        access: basic
"""

# A step's Python script: AzurePipelinesCredential (service connection id, tenant, client id, the job token),
# then git clone with the Entra token it got, as Azure DevOps' docs show for a service principal.
WIF_CLONE_PY = """\
import os
import subprocess
import sys

from azure.core.exceptions import ClientAuthenticationError
from azure.identity import AzurePipelinesCredential

credential = AzurePipelinesCredential(
    tenant_id=os.environ["DEPLOYER_TENANT"],
    client_id=os.environ["DEPLOYER_CLIENT"],
    service_connection_id=os.environ["CONNECTION_ID"],
    system_access_token=os.environ["SYSTEM_ACCESSTOKEN"],
    authority=os.environ["AUTHORITY_HOST"],
)
try:
    token = credential.get_token("499b84ac-1321-427f-aa17-267ca6975798/.default")
except ClientAuthenticationError as error:
    response = error.response
    status, url = (response.status_code, response.request.url.split("?")[0]) if response else (None, None)
    sys.exit("no Entra token (HTTP %s from %s): %s" % (status, url, error.message))
print("got an Entra token for Azure DevOps, expiring", token.expires_on)
done = subprocess.run(
    ["git", "-c", "http.extraheader=AUTHORIZATION: bearer " + token.token, "clone", "-q",
     os.environ["TARGET_URL"], "target"],
    capture_output=True, text=True,
)
sys.stdout.write(done.stderr)
if done.returncode != 0:
    sys.exit("git clone failed with exit code %d" % done.returncode)
print("cloned:", open("target/NOTES.md").read().strip())
"""

# WorkloadIdentityCredential from the environment alone (AZURE_FEDERATED_TOKEN_FILE and friends), then the
# Entra token at the DevOps service: who am I.
WIF_TOKEN_FILE_PY = """\
import os

import requests
from azure.identity import WorkloadIdentityCredential

token = WorkloadIdentityCredential().get_token("499b84ac-1321-427f-aa17-267ca6975798/.default")
answer = requests.get(
    os.environ["SYSTEM_COLLECTIONURI"] + "_apis/connectionData",
    headers={"Authorization": "Bearer " + token.token, "X-TFS-FedAuthRedirect": "Suppress"},
    timeout=30,
)
answer.raise_for_status()
print("connectionData says:", answer.json()["authenticatedUser"]["providerDisplayName"])
"""

WIF_CLONE_YML = """\
trigger: none
pool:
  vmImage: ubuntu-latest
steps:
- script: $(python) wif_clone.py
  displayName: Clone with AzurePipelinesCredential
  env:
    DEPLOYER_TENANT: $(deployer.tenant)
    DEPLOYER_CLIENT: $(deployer.client)
    CONNECTION_ID: $(connection.id)
    AUTHORITY_HOST: $(authority.host)
    TARGET_URL: $(target.url)
"""

WIF_TOKEN_FILE_YML = """\
steps:
- script: |
    curl -sS --fail-with-body -X POST \\
      -H "Authorization: Bearer $SYSTEM_ACCESSTOKEN" -H "Content-Type: application/json" \\
      -H "X-TFS-FedAuthRedirect: Suppress" -d '{}' \\
      "$SYSTEM_OIDCREQUESTURI?api-version=7.1&serviceConnectionId=$(connection.id)" -o oidc.json
    $(python) -c 'import json, sys; sys.stdout.write(json.load(open("oidc.json"))["oidcToken"])' \\
      > "$(Agent.TempDirectory)/federated-token"
    echo "federated token file written"
  displayName: Write the federated token file
- script: $(python) wif_token_file.py
  displayName: Sign in with WorkloadIdentityCredential
  env:
    AZURE_FEDERATED_TOKEN_FILE: $(Agent.TempDirectory)/federated-token
    AZURE_CLIENT_ID: $(deployer.client)
    AZURE_TENANT_ID: $(deployer.tenant)
    AZURE_AUTHORITY_HOST: $(authority.host)
"""

# What the job token reaches from inside a job: its own repository and project, not another project's
# repository, oidctoken route or REST API.
OTHER_PROJECT_YML = """\
steps:
- script: |
    set +e
    git -c "http.extraheader=AUTHORIZATION: bearer $SYSTEM_ACCESSTOKEN" ls-remote "$(target.url)"
    echo "ls-remote of the other project's repository exited $?"
    git -c "http.extraheader=AUTHORIZATION: bearer $SYSTEM_ACCESSTOKEN" ls-remote "$BUILD_REPOSITORY_URI" > /dev/null
    echo "ls-remote of its own repository exited $?"
    other="${SYSTEM_COLLECTIONURI}$(target.project)/_apis/distributedtask/hubs/build/plans/$SYSTEM_PLANID/jobs/$SYSTEM_JOBID/oidctoken"
    curl -sS -o /dev/null -w "oidctoken in the other project answered %{http_code}\\n" -X POST \\
      -H "Authorization: Bearer $SYSTEM_ACCESSTOKEN" -H "Content-Type: application/json" \\
      "$other?api-version=7.1&serviceConnectionId=$(connection.id)"
    curl -sS -o answer.json -w "the other project's repositories answered %{http_code}\\n" \\
      -H "Authorization: Bearer $SYSTEM_ACCESSTOKEN" -H "X-TFS-FedAuthRedirect: Suppress" \\
      "${SYSTEM_COLLECTIONURI}$(target.project)/_apis/git/repositories?api-version=7.1"
    cat answer.json; echo
    curl -sS -o answer.json -w "its own project's repositories answered %{http_code}\\n" \\
      -H "Authorization: Bearer $SYSTEM_ACCESSTOKEN" -H "X-TFS-FedAuthRedirect: Suppress" \\
      "${SYSTEM_COLLECTIONURI}$SYSTEM_TEAMPROJECTID/_apis/git/repositories?api-version=7.1"
  displayName: Reach beyond the project
"""

# The job hands its token to the test and waits for the test to move the servers' clock past its expiry.
EXPIRY_YML = """\
steps:
- script: |
    set +e
    printf %s "$SYSTEM_ACCESSTOKEN" > "$(handoff.dir)/token"
    touch "$(handoff.dir)/ready"
    for i in $(seq 600); do [ -e "$(handoff.dir)/go" ] && break; sleep 0.1; done
    curl -sS -o /dev/null -w "oidctoken answered %{http_code}\\n" -X POST \\
      -H "Authorization: Bearer $SYSTEM_ACCESSTOKEN" -H "Content-Type: application/json" \\
      "$SYSTEM_OIDCREQUESTURI?api-version=7.1&serviceConnectionId=$(connection.id)"
    GIT_TERMINAL_PROMPT=0 git -c "http.extraheader=AUTHORIZATION: bearer $SYSTEM_ACCESSTOKEN" \\
      ls-remote "$BUILD_REPOSITORY_URI" > /dev/null
    echo "ls-remote after the expiry exited $?"
  displayName: Outlive the job token
"""

SECRETS_YML = """\
variables:
  greeting: hello
steps:
- script: |
    echo "$(greeting), the password is $(deploy.password)"
    echo "mapped into the environment: $DEPLOY_PASSWORD"
    echo "the job token is $SYSTEM_ACCESSTOKEN"
    echo "and as a macro: $(System.AccessToken)"
    echo "inside a line: x$(deploy.password)x"
    printf %s "$SYSTEM_ACCESSTOKEN" > "$(handoff.dir)/token"
  displayName: Print secrets
  env:
    DEPLOY_PASSWORD: $(deploy.password)
"""

FILES = {
    "wif_clone.py": WIF_CLONE_PY,
    "wif_token_file.py": WIF_TOKEN_FILE_PY,
    "wif-clone.yml": WIF_CLONE_YML,
    "wif-token-file.yml": WIF_TOKEN_FILE_YML,
    "other-project.yml": OTHER_PROJECT_YML,
    "expiry.yml": EXPIRY_YML,
    "secrets.yml": SECRETS_YML,
}
# pipeline name -> YAML path
PIPELINES = {
    "wif-clone": "wif-clone.yml",
    "wif-token-file": "wif-token-file.yml",
    "wif-renamed": "wif-clone.yml",
    "wif-unauthorized": "wif-clone.yml",
    "other-project": "other-project.yml",
    "expiry": "expiry.yml",
    "secrets": "secrets.yml",
}
# connection name -> the pipelines it authorizes
CONNECTIONS = {
    "deploy-wif": ("wif-clone", "wif-token-file", "other-project", "expiry"),
    "rename-me": ("wif-renamed",),
    "not-for-you": ("wif-clone",),
}

# pipeline name -> the connection its job asks a token for (default: deploy-wif)
CONNECTION_OF = {"wif-renamed": "rename-me", "wif-unauthorized": "not-for-you"}


@dataclass
class PipelineWorld:
    instance: Instance
    git: GitWorld  # the Git tests' world, pointed at this project's repository
    org_id: str
    project_id: str
    target_project_id: str
    target_url: str
    connections: dict[str, str]  # name -> id
    handoff: Path  # where a job hands the test its token, and waits for the test's go


@dataclass(frozen=True)
class Outcome:
    run_id: int
    result: str
    printed: list[str]  # what the run printed (what `entryway pipelines run` writes to stdout)
    stored: list[str]  # the stored log lines

    @property
    def log(self) -> str:
        return "\n".join(self.stored)


@pytest.fixture(scope="module")
def pipeline_world(git_world: GitWorld, tmp_path_factory: pytest.TempPathFactory) -> PipelineWorld:
    """Steps get the CA variables the runner makes for each job (this server's CA and whatever this process
    trusts): git and curl inside a step reach the servers even where the shell names only the system bundle."""
    instance = git_world.instance
    runtime = instance.runtime
    apply_config(runtime, yaml.safe_load(PIPELINE_CONFIG), source="test_pipeline_e2e")
    git_root = str(runtime.settings.data_dir / "git")
    actor = Actor.local("test_pipeline_e2e")
    handoff = tmp_path_factory.mktemp("handoff")
    with runtime.db.unit_of_work() as session:
        orgs = OrgService(session, runtime.clock)
        org = orgs.get(ORG)
        members = {m.principal_name.lower(): m for m in orgs.list_members(org)}
        projects = ProjectService(session, runtime.clock, git_root)
        project = projects.create(org, PROJECT, actor)
        projects.create_repository(org, project, REPO, actor)
        target = projects.create(org, TARGET_PROJECT, actor)
        projects.create_repository(org, target, TARGET_REPO, actor)
        for where in (project, target):
            projects.set_role(org, where, members[ADA.upn], ProjectRole.CONTRIBUTORS, actor)
        # The service connection's app reads the other project's code, not this project's.
        projects.set_role(org, target, members[DEPLOYER_ID], ProjectRole.READERS, actor)
        org_id, project_id, target_id = org.id, project.id, target.id
    world_git = replace(git_world, url=f"{instance.devops}/{ORG}/{quote(PROJECT)}/_git/{REPO}")
    target_url = f"{instance.devops}/{ORG}/{quote(TARGET_PROJECT)}/_git/{TARGET_REPO}"
    _push(world_git, world_git.url, FILES, tmp_path_factory.mktemp("pipelines-src"))
    _push(
        world_git,
        target_url,
        {"NOTES.md": "release notes only the deployer app may read\n"},
        tmp_path_factory.mktemp("target-src"),
    )
    cipher = VariableCipher(runtime.master_key.derive(PIPELINE_VARIABLES_PURPOSE))
    connections: dict[str, str] = {}
    federations: list[tuple[str, str, str]] = []
    with runtime.db.unit_of_work() as session:
        org = OrgService(session, runtime.clock).get(ORG)
        project = ProjectService(session, runtime.clock, git_root).get(org, PROJECT)
        pipelines = PipelineService(session, runtime.clock, cipher)
        for name, path in PIPELINES.items():
            pipelines.create(org, project, name, actor, repository=REPO, yaml_path=path)
        service = ConnectionService(session, runtime.clock)
        for name, authorized in CONNECTIONS.items():
            connection = service.create(
                project.id, name=name, tenant_id=CONTOSO_TENANT, client_id=DEPLOYER_ID, pipelines=authorized
            )
            connections[name] = connection.id
            federation = federation_of(
                connection,
                organization_id=org.id,
                organization=org.name,
                project=project.name,
                devops_origin=instance.devops,
            )
            federations.append((name, federation.issuer, federation.subject))
        common = {
            "python": sys.executable,
            "deployer.tenant": CONTOSO_TENANT,
            "deployer.client": DEPLOYER_ID,
            "authority.host": instance.identity,
            "target.url": target_url,
            "target.project": target_id,
            "handoff.dir": str(handoff),
        }
        for name in PIPELINES:
            pipeline = pipelines.get(project, name)
            chosen = CONNECTION_OF.get(name, "deploy-wif")
            for variable, value in {**common, "connection.id": connections[chosen]}.items():
                pipelines.set_variable(org, pipeline, variable, value, actor)
    # The federated credentials on the app, as `serviceconnection show` tells the administrator to make them.
    for name, issuer, subject in federations:
        register_federated_credential(
            instance, DEPLOYER_ID, name=f"e2e-{name}", issuer=issuer, subject=subject
        )
    return PipelineWorld(instance, world_git, org_id, project_id, target_id, target_url, connections, handoff)


def _push(world: GitWorld, url: str, files: dict[str, str], work: Path) -> None:
    token = world.tokens[ADA.upn]
    ok(git(world, "clone", "-q", url, str(work), token=token))
    for name, content in files.items():
        commit_file(world, work, name, content.encode())
    ok(git(world, "push", "-q", "origin", "HEAD:refs/heads/main", cwd=work, token=token))


def runner(world: PipelineWorld, job_timeout: timedelta = timedelta(minutes=60)) -> JobRunner:
    runtime = world.instance.runtime
    return JobRunner(
        runtime.db,
        world.instance.clock,
        runtime.digester,
        VariableCipher(runtime.master_key.derive(PIPELINE_VARIABLES_PURPOSE)),
        RunnerSettings(
            devops_origin=world.instance.devops,
            git_root=str(runtime.settings.data_dir / "git"),
            ca_bundle=world.instance.ca_bundle,
            job_timeout=job_timeout,
        ),
    )


def queue(world: PipelineWorld, pipeline_name: str) -> int:
    runtime = world.instance.runtime
    with runtime.db.unit_of_work() as session:
        org = OrgService(session, runtime.clock).get(ORG)
        project = ProjectService(session, runtime.clock).get(org, PROJECT)
        pipelines = PipelineService(session, runtime.clock)
        pipeline = pipelines.get(project, pipeline_name)
        return pipelines.queue_run(org, pipeline, "main", Actor.local("test_pipeline_e2e")).id


def stored_log(world: PipelineWorld, run_id: int) -> list[str]:
    runtime = world.instance.runtime
    with runtime.db.read() as session:
        return [text for _, _, text in PipelineService(session, runtime.clock).log_lines(run_id)]


def run_pipeline(
    world: PipelineWorld, pipeline_name: str, job_timeout: timedelta = timedelta(minutes=60)
) -> Outcome:
    run_id = queue(world, pipeline_name)
    printed: list[str] = []
    result = runner(world, job_timeout).run(run_id, echo=printed.append)
    return Outcome(run_id, result, printed, stored_log(world, run_id))


def devops_get(world: PipelineWorld, path: str, token: str) -> requests.Response:
    return requests.get(
        f"{world.instance.devops}{path}",
        headers={"Authorization": f"Bearer {token}", "X-TFS-FedAuthRedirect": "Suppress"},
        verify=world.instance.ca_bundle,
        allow_redirects=False,
        timeout=30,
    )


def oidc_request(
    world: PipelineWorld, token: str, plan_id: str, job_id: str, connection: str
) -> requests.Response:
    return requests.post(
        f"{world.instance.devops}/{ORG}/{world.project_id}/_apis/distributedtask/hubs/build/plans/{plan_id}"
        f"/jobs/{job_id}/oidctoken",
        params={"api-version": "7.1", "serviceConnectionId": connection},
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        verify=world.instance.ca_bundle,
        timeout=30,
    )


def run_ids(world: PipelineWorld, run_id: int) -> tuple[str, str]:
    runtime = world.instance.runtime
    with runtime.db.read() as session:
        run = PipelineService(session, runtime.clock).get_run(run_id)
        return run.plan_id, run.job_id


@pytest.fixture
def handoff(pipeline_world: PipelineWorld) -> Iterator[Path]:
    for name in ("token", "ready", "go"):
        (pipeline_world.handoff / name).unlink(missing_ok=True)
    yield pipeline_world.handoff
    for name in ("token", "ready", "go"):
        (pipeline_world.handoff / name).unlink(missing_ok=True)


# --- the issue's two pipelines ---------------------------------------------------------------------------------


def test_azure_pipelines_credential_gets_an_entra_token_that_clones_a_repository(
    pipeline_world: PipelineWorld,
) -> None:
    outcome = run_pipeline(pipeline_world, "wif-clone")
    assert outcome.result == "succeeded", outcome.log
    assert "got an Entra token for Azure DevOps" in outcome.log
    assert "cloned: release notes only the deployer app may read" in outcome.log


def test_workload_identity_credential_reads_the_token_file_a_step_wrote(
    pipeline_world: PipelineWorld,
) -> None:
    outcome = run_pipeline(pipeline_world, "wif-token-file")
    assert outcome.result == "succeeded", outcome.log
    assert "federated token file written" in outcome.log
    assert f"connectionData says: {DEPLOYER_NAME}" in outcome.log


def test_a_run_queued_over_rest_signs_in_from_the_server(pipeline_world: PipelineWorld) -> None:
    """Azure DevOps' Runs API: ada queues the pipeline with her Entra token; the server runs the job in the
    background with the same runner, and the job signs in with AzurePipelinesCredential; the run and its logs
    are read back over REST."""
    instance = pipeline_world.instance
    runtime = instance.runtime
    with runtime.db.read() as session:
        org = OrgService(session, runtime.clock).get(ORG)
        project = ProjectService(session, runtime.clock).get(org, PROJECT)
        pipeline_id = PipelineService(session, runtime.clock).get(project, "wif-clone").id
    http = requests.Session()
    http.verify = instance.ca_bundle
    http.headers["Authorization"] = f"Bearer {pipeline_world.git.tokens[ADA.upn]}"
    base = f"{instance.devops}/{ORG}/{quote(PROJECT)}/_apis/pipelines/{pipeline_id}/runs"
    queued = http.post(base, params={"api-version": "7.1"}, json={}, timeout=30)
    assert queued.status_code == 200, queued.text
    run_id = queued.json()["id"]
    deadline = time.monotonic() + 120
    while True:
        run = http.get(f"{base}/{run_id}", params={"api-version": "7.1"}, timeout=30).json()
        if run["state"] == "completed" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    logs = http.get(f"{base}/{run_id}/logs", params={"api-version": "7.1"}, timeout=30).json()["logs"]
    text = "\n".join(
        http.get(f"{base}/{run_id}/logs/{log['id']}/content", params={"api-version": "7.1"}, timeout=30).text
        for log in logs
    )
    assert run["state"] == "completed", text
    assert run["result"] == "succeeded", text
    assert "got an Entra token for Azure DevOps" in text
    assert "cloned: release notes only the deployer app may read" in text
    assert 'http.extraheader="AUTHORIZATION: bearer ***"' in text


# --- refusals -----------------------------------------------------------------------------------------------


def test_renaming_the_service_connection_breaks_the_federated_credential(
    pipeline_world: PipelineWorld,
) -> None:
    """The subject names the connection (sc://org/project/name): after a rename the credential on the app
    still names the old one, and the exchange fails with AADSTS700213, as in Azure DevOps."""
    runtime = pipeline_world.instance.runtime
    with runtime.db.unit_of_work() as session:
        ConnectionService(session, runtime.clock).rename(pipeline_world.project_id, "rename-me", "renamed")
    try:
        outcome = run_pipeline(pipeline_world, "wif-renamed")
    finally:
        with runtime.db.unit_of_work() as session:
            ConnectionService(session, runtime.clock).rename(
                pipeline_world.project_id, "renamed", "rename-me"
            )
    assert outcome.result == "failed", outcome.log
    assert "no Entra token (HTTP 401 from " in outcome.log, outcome.log
    assert "/oauth2/v2.0/token): Microsoft Entra ID error '(invalid_client) AADSTS700213: " in outcome.log
    assert "presented assertion subject 'sc://fabrikam/Pipelines E2E/renamed'" in outcome.log
    assert "got an Entra token" not in outcome.log
    # Renamed back, the subject matches again.
    assert run_pipeline(pipeline_world, "wif-renamed").result == "succeeded"


def test_a_service_connection_not_authorized_for_the_pipeline_is_not_found(
    pipeline_world: PipelineWorld,
) -> None:
    outcome = run_pipeline(pipeline_world, "wif-unauthorized")
    assert outcome.result == "failed", outcome.log
    assert "no Entra token (HTTP 404 from " in outcome.log, outcome.log
    assert "/oidctoken): (None) Service connection " in outcome.log, outcome.log
    assert "could not be found, or the pipeline is not authorized to use it." in outcome.log
    assert "got an Entra token" not in outcome.log


def test_an_expired_job_token_is_refused_while_its_job_still_runs(
    pipeline_world: PipelineWorld, handoff: Path
) -> None:
    """The job's timeout is five minutes; the job waits while the test moves the servers' clock past it."""
    lifetime = timedelta(minutes=5)
    run_id = queue(pipeline_world, "expiry")
    printed: list[str] = []
    result: list[str] = []
    job = threading.Thread(
        target=lambda: result.append(runner(pipeline_world, lifetime).run(run_id, echo=printed.append))
    )
    job.start()
    try:
        deadline = time.monotonic() + 60
        while not (handoff / "ready").exists():
            assert time.monotonic() < deadline, "\n".join(printed)
            assert job.is_alive(), "\n".join(printed)
            time.sleep(0.05)
        token = (handoff / "token").read_text()
        assert devops_get(pipeline_world, f"/{ORG}/_apis/connectionData", token).status_code == 200
        pipeline_world.instance.clock.advance(lifetime + timedelta(seconds=1))
        answer = devops_get(pipeline_world, f"/{ORG}/_apis/connectionData", token)
        assert answer.status_code == 401
        assert answer.json()["message"] == ANONYMOUS_MESSAGE
    finally:
        (handoff / "go").touch()
        job.join(timeout=120)
    log = "\n".join(stored_log(pipeline_world, run_id))
    assert "oidctoken answered 401" in log
    assert "ls-remote after the expiry exited 128" in log
    assert token not in log


def test_a_job_token_is_refused_in_another_project(pipeline_world: PipelineWorld) -> None:
    outcome = run_pipeline(pipeline_world, "other-project")
    assert outcome.result == "succeeded", outcome.log
    assert (
        f"remote: TF401019: The Git repository with name or identifier {TARGET_REPO} does not exist"
        in outcome.log
    )
    assert "ls-remote of the other project's repository exited 128" in outcome.log
    assert "ls-remote of its own repository exited 0" in outcome.log
    assert "oidctoken in the other project answered 404" in outcome.log
    assert "the other project's repositories answered 404" in outcome.log
    assert "TF200016: The following project does not exist" in outcome.log
    assert "its own project's repositories answered 200" in outcome.log


def test_the_job_token_is_refused_once_the_job_has_ended(
    pipeline_world: PipelineWorld, handoff: Path
) -> None:
    outcome = run_pipeline(pipeline_world, "secrets")
    assert outcome.result == "succeeded", outcome.log
    token = (handoff / "token").read_text()
    plan_id, job_id = run_ids(pipeline_world, outcome.run_id)
    answer = devops_get(pipeline_world, f"/{ORG}/_apis/connectionData", token)
    assert answer.status_code == 401
    assert answer.json()["message"] == ANONYMOUS_MESSAGE
    assert (
        oidc_request(
            pipeline_world, token, plan_id, job_id, pipeline_world.connections["deploy-wif"]
        ).status_code
        == 401
    )
    refused = git(pipeline_world.git, "ls-remote", pipeline_world.git.url, token=token)
    assert refused.returncode != 0
    with pipeline_world.instance.runtime.db.read() as session:
        rows = session.query(JobTokenRow).filter(JobTokenRow.run_id == outcome.run_id).all()
        assert rows
        assert all(row.revoked_at is not None for row in rows)


# --- secrets ------------------------------------------------------------------------------------------------


def test_secrets_never_appear_in_the_log(
    pipeline_world: PipelineWorld, handoff: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the job's log (stored, printed) nor the servers' own log nor the audit log."""
    caplog.set_level(logging.DEBUG)
    password = f"pw-{uuid.uuid4().hex}"
    runtime = pipeline_world.instance.runtime
    with runtime.db.unit_of_work() as session:
        org = OrgService(session, runtime.clock).get(ORG)
        project = ProjectService(session, runtime.clock).get(org, PROJECT)
        pipelines = PipelineService(
            session, runtime.clock, VariableCipher(runtime.master_key.derive(PIPELINE_VARIABLES_PURPOSE))
        )
        pipelines.set_variable(
            org,
            pipelines.get(project, "secrets"),
            "deploy.password",
            password,
            Actor.local("test"),
            secret=True,
        )
    outcome = run_pipeline(pipeline_world, "secrets")
    assert outcome.result == "succeeded", outcome.log
    token = (handoff / "token").read_text()
    assert token.startswith("ewjt_")
    for lines in (outcome.stored, outcome.printed):
        text = "\n".join(lines)
        assert password not in text
        assert token not in text
        assert "hello, the password is ***" in text
        assert "mapped into the environment: ***" in text
        assert "the job token is ***" in text
        assert "and as a macro: ***" in text
        assert "inside a line: x***x" in text
        assert 'http.extraheader="AUTHORIZATION: bearer ***"' in text
    # Nothing of either in the database: log lines are stored masked, the token only as its digest.
    with runtime.db.read() as session:
        rows = session.query(PipelineLogLineRow).filter(PipelineLogLineRow.run_id == outcome.run_id).all()
        assert rows
        assert not any(password in row.text or token in row.text for row in rows)
    # The ended job's token, presented again, is refused: the refusal is logged and audited, the value is not.
    assert devops_get(pipeline_world, f"/{ORG}/_apis/connectionData", token).status_code == 401
    time.sleep(0.5)  # authentication decisions are written to the audit log in the background
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "job token refused" in logged
    assert token not in logged
    assert password not in logged
    with runtime.db.read() as session:
        audited = [f"{row.path} {row.details}" for row in session.query(AuditEventRow).all()]
    assert audited
    assert not any(token in row or password in row for row in audited)


# --- the issue as an administrator types it ---------------------------------------------------------------------

CLI_TENANT = "2e4f6a8b-0c1d-4e3f-a5b7-c9d0e1f2a3b4"
CLI_DEPLOYER_ID = "3f5a7b9c-1d2e-4f40-b6c8-d0e1f2a3b4c5"
CLI_CONFIG = f"""\
tenants:
  - id: {CLI_TENANT}
    domains: [wif.test]
    apps:
      - name: wif-deployer
        client_id: {CLI_DEPLOYER_ID}
organizations:
  - name: wiforg
    tenant: wif.test
    members:
      - app: wif-deployer
        access: basic
    projects:
      - name: Web Shop
        repositories: [shop]
      - name: Release Notes
        repositories: [notes]
        members:
          - app: wif-deployer
            role: readers
"""
CLI_YML = """\
steps:
- script: $(python) wif_clone.py
  displayName: Clone with AzurePipelinesCredential
  env:
    DEPLOYER_TENANT: $(deployer.tenant)
    DEPLOYER_CLIENT: $(deployer.client)
    CONNECTION_ID: $(connection.id)
    AUTHORITY_HOST: $(authority.host)
    TARGET_URL: $(target.url)
- script: |
    echo "the deploy password is $(deploy.password)"
    printf %s "$SYSTEM_ACCESSTOKEN" > "$(handoff.dir)/cli-token"
  displayName: Print a secret
"""


def _commit_into(bare: Path, files: dict[str, str], work: Path) -> None:
    """Commit files on main straight into a bare repository (the administrator's own clone)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work.parent), "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["clone", "-q", str(bare), str(work)], ["-C", str(work), "checkout", "-q", "-B", "main"]):
        subprocess.run([GIT, *args], env=env, check=True, capture_output=True)
    for name, text in files.items():
        (work / name).write_text(text)
    for args in (
        ["add", "-A"],
        ["-c", "user.name=Admin", "-c", "user.email=admin@wif.test", "commit", "-q", "-m", "pipeline"],
        ["push", "-q", "origin", "HEAD:refs/heads/main"],
    ):
        subprocess.run([GIT, "-C", str(work), *args], env=env, check=True, capture_output=True)


def test_the_issue_typed_at_the_command_line(tmp_path: Path) -> None:
    """`entryway pipelines create`, `serviceconnection create --create-federated-credential`, `pipelines
    variable set [--secret]`, `pipelines run` — each a real `entryway` process against a running server of
    this test's own (its clock agrees with the CLI's): the job signs in with AzurePipelinesCredential, clones
    with the Entra token, and what `run` prints shows neither the secret nor the job token."""
    instance = start_entryway(tmp_path / "data", ManualClock(), configs=(CLI_CONFIG,))
    try:
        runtime = instance.runtime
        settings = runtime.settings
        # What `entryway serve` writes, so that the CLI finds the server's ports.
        (settings.data_dir / "state.json").write_text(
            json.dumps(
                {
                    "host": settings.host,
                    "identity_port": settings.identity_port,
                    "devops_port": settings.devops_port,
                    "imds_port": settings.imds_port,
                    "app_service_port": settings.app_service_port,
                    "managed_identity": settings.managed_identity,
                    "database_url": settings.database_url,
                }
            )
        )
        with runtime.db.read() as session:
            org = OrgService(session, runtime.clock).get("wiforg")
            projects = ProjectService(session, runtime.clock)
            shop = projects.get_repository(org, "shop", project=projects.get(org, "Web Shop")).id
            notes = projects.get_repository(org, "notes", project=projects.get(org, "Release Notes")).id
        git_root = settings.data_dir / "git"
        _commit_into(
            repository_path(git_root, shop),
            {"azure-pipelines.yml": CLI_YML, "wif_clone.py": WIF_CLONE_PY},
            tmp_path / "shop",
        )
        _commit_into(
            repository_path(git_root, notes), {"NOTES.md": "notes for the deployer\n"}, tmp_path / "notes"
        )
        ca = instance.ca_bundle
        # A shell whose CA variables name only public CAs: the runner adds this server's CA for the job.
        env = {
            **os.environ,
            **dict.fromkeys(
                ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"),
                requests.certs.where(),
            ),
        }

        def entryway(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "entryway", *args, "--data-dir", str(settings.data_dir)],
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )

        where = "wiforg/Web Shop"
        created = entryway("pipelines", "create", where, "--name", "deploy", "--repo", "shop")
        assert created.returncode == 0, created.stdout + created.stderr
        connection = entryway(
            "serviceconnection", "create", where, "--name", "shop-prod", "--tenant", CLI_TENANT,
            "--app", CLI_DEPLOYER_ID, "--pipeline", "deploy", "--create-federated-credential", "--json",
        )  # fmt: skip
        assert connection.returncode == 0, connection.stdout + connection.stderr
        connection_id = json.loads(connection.stdout)["id"]
        password = f"pw-{uuid.uuid4().hex}"
        handoff = tmp_path / "handoff"
        handoff.mkdir()
        variables = {
            "python": sys.executable,
            "deployer.tenant": CLI_TENANT,
            "deployer.client": CLI_DEPLOYER_ID,
            "connection.id": connection_id,
            "authority.host": instance.identity,
            "target.url": f"{instance.devops}/wiforg/{quote('Release Notes')}/_git/notes",
            "handoff.dir": str(handoff),
        }
        for name, value in variables.items():
            done = entryway("pipelines", "variable", "set", where, name, value, "--pipeline", "deploy")
            assert done.returncode == 0, done.stdout + done.stderr
        done = entryway(
            "pipelines",
            "variable",
            "set",
            where,
            "deploy.password",
            password,
            "--pipeline",
            "deploy",
            "--secret",
        )
        assert done.returncode == 0, done.stdout + done.stderr

        run = entryway("pipelines", "run", where, "--pipeline", "azure-pipelines.yml")
        printed = run.stdout + run.stderr
        assert run.returncode == 0, printed
        assert "got an Entra token for Azure DevOps" in printed
        assert "cloned: notes for the deployer" in printed
        assert "the deploy password is ***" in printed
        token = (handoff / "cli-token").read_text()
        assert token.startswith("ewjt_")
        assert password not in printed
        assert token not in printed
        # The job has ended: its token is refused.
        answer = requests.get(
            f"{instance.devops}/wiforg/_apis/connectionData",
            headers={"Authorization": f"Bearer {token}"},
            verify=ca,
            timeout=30,
        )
        assert answer.status_code == 401
    finally:
        instance.server.stop()
