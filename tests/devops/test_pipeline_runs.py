"""Pipeline runs (issue 7) on a server of their own: `entryway pipelines create / variable set / run / show`
and the runner underneath — the checkout with the job token by the real git CLI, script steps as real bash
subprocesses with the agent's environment, variables and macros, masking, a failing step, the YAML refusals,
the timeout, and the job token revoked when the job ends.

The server here has its own clock with no offset: `entryway pipelines run` in this process issues the job token
with the system clock (as the CLI does in production) and the server checks it with its ManualClock, so the
two must agree — the shared server's clock is moved hours ahead by other tests."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from sqlalchemy import select
from typer.testing import CliRunner

from entryway.cli.main import app as cli
from entryway.devops.git.storage import repository_path
from entryway.devops.orgs.service import OrgService
from entryway.devops.pipelines.jobtokens import JobTokens
from entryway.devops.pipelines.runner import JobRunner, RunnerSettings
from entryway.devops.pipelines.service import PipelineService
from entryway.devops.pipelines.variables import PIPELINE_VARIABLES_PURPOSE, VariableCipher
from entryway.devops.projects.service import ProjectService
from entryway.kit.clock import ManualClock
from entryway.store.models import JobTokenRow, PipelineLogLineRow, PipelineVariableRow
from tests.conftest import Instance, start_entryway

GIT = shutil.which("git") or "/usr/bin/git"
ORG = "pipelineorg"
PROJECT = "Pipeline Works"
OTHER_PROJECT = "Pipeline Elsewhere"
REPO = "pipeline-code"
SECRET = "s3cr3t-Value-that-must-never-show"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z ")

CONFIG = f"""\
tenants:
  - id: 4b1c2d3e-5f60-4a7b-8c9d-0e1f2a3b4c5d
    domains: [pipelines.test]
    users:
      - upn: pia@pipelines.test
        password: "Pia-Runs-Pipelines-0042"
        mfa_required: false
      - upn: rita@pipelines.test
        password: "Pia-Runs-Pipelines-0042"
        mfa_required: false
      - upn: otto@pipelines.test
        password: "Pia-Runs-Pipelines-0042"
        mfa_required: false
organizations:
  - name: {ORG}
    tenant: pipelines.test
    members:
      - user: pia@pipelines.test
        access: basic
      - user: rita@pipelines.test
        access: basic
      - user: otto@pipelines.test
        access: basic
    projects:
      - name: {PROJECT}
        repositories: [{REPO}]
        members:
          - user: pia@pipelines.test
            role: contributors
          - user: rita@pipelines.test
            role: readers
      - name: {OTHER_PROJECT}
        repositories: [elsewhere]
"""


@dataclass
class World:
    instance: Instance
    bare: Path
    work: Path  # a clone that pushes commits into the bare repository
    home: Path

    @property
    def data_dir(self) -> Path:
        return self.instance.settings.data_dir


def _git(*args: str, cwd: Path, home: Path) -> str:
    done = subprocess.run(
        [GIT, *args],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def commit_files(world: World, files: dict[str, str], branch: str = "main") -> str:
    """Commit `files` on `branch` and push them straight into the bare repository; returns the commit id."""
    _git("checkout", "-B", branch, cwd=world.work, home=world.home)
    for name, text in files.items():
        path = world.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    _git("add", "-A", cwd=world.work, home=world.home)
    _git("commit", "-q", "--allow-empty", "-m", "pipeline files", cwd=world.work, home=world.home)
    _git("push", "-q", "--force", "origin", f"HEAD:refs/heads/{branch}", cwd=world.work, home=world.home)
    return _git("rev-parse", "HEAD", cwd=world.work, home=world.home).strip()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    instance = start_entryway(tmp_path_factory.mktemp("pipelines"), ManualClock(), configs=(CONFIG,))
    runtime = instance.runtime
    actual = runtime.settings
    # What `entryway serve` writes, so that the CLI in this process finds the server's ports.
    (actual.data_dir / "state.json").write_text(
        json.dumps(
            {
                "host": actual.host,
                "identity_port": actual.identity_port,
                "devops_port": actual.devops_port,
                "imds_port": actual.imds_port,
                "app_service_port": actual.app_service_port,
                "managed_identity": actual.managed_identity,
                "database_url": actual.database_url,
            }
        )
    )
    with runtime.db.read() as session:
        org = OrgService(session, runtime.clock).get(ORG)
        projects = ProjectService(session, runtime.clock)
        project = projects.get(org, PROJECT)
        repo_id = projects.get_repository(org, REPO, project=project).id
    bare = repository_path(runtime.settings.data_dir / "git", repo_id)
    home = tmp_path_factory.mktemp("pipeline-home")
    (home / ".gitconfig").write_text("[user]\n\tname = Pia\n\temail = pia@pipelines.test\n")
    work = tmp_path_factory.mktemp("pipeline-work") / "code"
    _git("clone", "-q", str(bare), str(work), cwd=home, home=home)
    yield World(instance, bare, work, home)
    instance.server.stop()


SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(autouse=True)
def _parent_trusts_the_system_cas_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent's CA variables name the system's bundle (or nothing), not this server's CA (the shared server
    of other modules may have set them to its own): the steps must trust this server's CA all the same."""
    for name in (
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
        "NODE_EXTRA_CA_CERTS",
    ):
        if SYSTEM_BUNDLE.is_file():
            monkeypatch.setenv(name, str(SYSTEM_BUNDLE))
        else:
            monkeypatch.delenv(name, raising=False)


def run_cli(world: World, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*args, "--data-dir", str(world.data_dir)])
    return result.exit_code, result.output


def _run_record(world: World, run_id: int) -> dict[str, object]:
    code, output = run_cli(world, "pipelines", "show", str(run_id), "--json")
    assert code == 0, output
    record: dict[str, object] = json.loads(output)
    return record


def _stored_log(world: World, run_id: int) -> str:
    with world.instance.runtime.db.read() as session:
        rows = session.scalars(select(PipelineLogLineRow).where(PipelineLogLineRow.run_id == run_id)).all()
        return "\n".join(r.text for r in rows)


def _run_id(output: str) -> int:
    found = re.search(r"Run (\d+) of", output)
    assert found, output
    return int(found.group(1))


MAIN_YAML = """\
trigger: none
pool:
  vmImage: ubuntu-latest
variables:
  greeting: hello
  app.mode: test
steps:
  - script: |
      echo "$(greeting) from run $(Build.BuildId)"
      echo "mode=$APP_MODE greeting=$GREETING plain=$PLAIN_VAR"
      echo "token-in-env=$SYSTEM_ACCESSTOKEN"
      echo "secret-macro=$(db.password)"
      echo "secret-env=$MAPPED_SECRET"
      echo "unmapped-secret=[$DB_PASSWORD]"
      echo "collection=$SYSTEM_COLLECTIONURI tfcollection=$SYSTEM_TEAMFOUNDATIONCOLLECTIONURI"
      echo "project=$SYSTEM_TEAMPROJECT projectid=$SYSTEM_TEAMPROJECTID definition=$SYSTEM_DEFINITIONID"
      echo "plan=$SYSTEM_PLANID job=$SYSTEM_JOBID oidc=$SYSTEM_OIDCREQUESTURI"
      echo "build=$BUILD_BUILDID number=$BUILD_BUILDNUMBER tf=$TF_BUILD"
      echo "repo=$BUILD_REPOSITORY_NAME uri=$BUILD_REPOSITORY_URI"
      echo "branch=$BUILD_SOURCEBRANCH short=$BUILD_SOURCEBRANCHNAME version=$BUILD_SOURCEVERSION"
      echo "sources=$BUILD_SOURCESDIRECTORY pwd=$(pwd)"
      echo "temp=$AGENT_TEMPDIRECTORY builddir=$AGENT_BUILDDIRECTORY"
      echo "ca=$REQUESTS_CA_BUNDLE ssl=$SSL_CERT_FILE curlca=$CURL_CA_BUNDLE"
      echo "certificates=$(grep -c 'BEGIN CERTIFICATE' "$REQUESTS_CA_BUNDLE")"
      curl -s -o /dev/null -w "curl %{http_code}\\n" -H "Authorization: Bearer $SYSTEM_ACCESSTOKEN" \
        "${SYSTEM_COLLECTIONURI}_apis/connectionData"
      printf '%s' "$SYSTEM_ACCESSTOKEN" > "{token_file}"
      git ls-remote "$BUILD_REPOSITORY_URI" refs/heads/main > /dev/null && echo "ls-remote with the job token"
      echo "##vso[task.setvariable variable=handed.on]from step one"
    displayName: Greet
    env:
      MAPPED_SECRET: $(db.password)
  - bash: |
      echo "handed=$HANDED_ON"
      value="$(echo runtime-secret | tr a-z A-Z)-123"
      echo "##vso[task.setsecret]$value"
      echo "registered $value"
      test -f README.md && echo "checked out README"
      echo "to stderr" >&2
      exit 3
    displayName: Fail on purpose
  - script: echo never
    displayName: Skipped
"""


def test_a_run_from_the_cli(world: World, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    version = commit_files(
        world, {"README.md": "hello\n", "ci/main.yml": MAIN_YAML.replace("{token_file}", str(token_file))}
    )
    project_path = f"{ORG}/{PROJECT}"
    code, output = run_cli(
        world,
        "pipelines",
        "create",
        project_path,
        "--name",
        "main-ci",
        "--repo",
        REPO,
        "--yaml",
        "ci/main.yml",
    )
    assert code == 0, output
    assert "Created pipeline main-ci" in output
    assert (
        run_cli(
            world, "pipelines", "variable", "set", project_path, "--pipeline", "main-ci", "plain.var", "pv"
        )[0]
        == 0
    )
    code, output = run_cli(
        world,
        "pipelines",
        "variable",
        "set",
        project_path,
        "--pipeline",
        "main-ci",
        "db.password",
        SECRET,
        "--secret",
    )
    assert code == 0, output
    code, output = run_cli(world, "pipelines", "variable", "list", project_path, "--pipeline", "main-ci")
    assert "db.password = *** (secret)" in output
    assert "plain.var = pv" in output
    assert SECRET not in output

    code, output = run_cli(world, "pipelines", "run", project_path, "--pipeline", "main-ci")
    assert code == 1, output  # a step failed
    run_id = _run_id(output)
    assert token_file.exists(), output
    token = token_file.read_text()
    assert token.startswith("ewjt_")
    log_lines = [line for line in output.splitlines() if TIMESTAMP.match(line)]
    assert len(log_lines) > 20
    log = output
    with world.instance.runtime.db.read() as session:
        org = OrgService(session, world.instance.runtime.clock).get(ORG)
        project = ProjectService(session, world.instance.runtime.clock).get(org, PROJECT)
        pipeline = PipelineService(session, world.instance.runtime.clock).get(project, "main-ci")
        run = PipelineService(session, world.instance.runtime.clock).get_run(run_id)
    devops = world.instance.devops
    expected = [
        f"hello from run {run_id}",
        "mode=test greeting=hello plain=pv",
        "token-in-env=***",
        "secret-macro=***",
        "secret-env=***",
        "unmapped-secret=[]",  # secrets are not exported; a step maps them in env
        f"collection={devops}/{ORG}/ tfcollection={devops}/{ORG}/",
        f"project={PROJECT} projectid={project.id} definition={pipeline.id}",
        f"plan={run.plan_id} job={run.job_id} oidc={devops}/{ORG}/{project.id}/_apis/distributedtask/hubs/build/"
        f"plans/{run.plan_id}/jobs/{run.job_id}/oidctoken",
        f"build={run_id} number=",
        " tf=True",
        f"repo={REPO} uri={devops}/{ORG}/{quote(PROJECT)}/_git/{REPO}",
        f"branch=refs/heads/main short=main version={version}",
        "curl 200",  # the job token at connectionData, over TLS with this server's CA
        "ls-remote with the job token",
        "handed=from step one",
        "registered ***",
        "checked out README",
        "to stderr",
        "##[error]Bash exited with code '3'.",
        '##[command]git -c http.extraheader="AUTHORIZATION: bearer ***" clone',
    ]
    for text in expected:
        assert text in log, text
    assert "echo never" not in "\n".join(line for line in log_lines if "Starting: Skipped" in line)
    bundle = re.search(r"ca=(/\S+/_temp/ca-bundle.pem) ssl=(\S+) curlca=(\S+)", log)
    assert bundle is not None, log
    assert bundle.group(1) == bundle.group(2) == bundle.group(3)
    certificates = re.search(r"certificates=(\d+)", log)
    assert certificates is not None
    assert int(certificates.group(1)) > (
        1 if SYSTEM_BUNDLE.is_file() else 0
    )  # this server's CA and the system's
    sources = re.search(r"sources=(/\S+) pwd=(/\S+)", log)
    assert sources is not None
    assert sources.group(1) == sources.group(2)
    assert sources.group(1).endswith("/1/s")
    stored = _stored_log(world, run_id)
    for secret in (SECRET, token, "RUNTIME-SECRET-123"):
        assert secret not in output
        assert secret not in stored
    assert "hello from run" in stored

    record = _run_record(world, run_id)
    assert record["state"] == "completed"
    assert record["result"] == "failed"
    assert record["sourceVersion"] == version
    steps = record["steps"]
    assert isinstance(steps, list)
    assert [(s["displayName"], s["result"], s["exitCode"]) for s in steps] == [
        (f"Checkout {REPO}@main to s", "succeeded", 0),
        ("Greet", "succeeded", 0),
        ("Fail on purpose", "failed", 3),
        ("Skipped", "skipped", None),
    ]
    code, text = run_cli(world, "pipelines", "show", str(run_id))
    assert f"Run {run_id}  main-ci  completed  failed" in text
    assert "[skipped] 3 Skipped" in text
    assert SECRET not in text

    # The job ended: its token is revoked, and refused by the server on the next request.
    with world.instance.runtime.db.read() as session:
        assert (
            JobTokens(session, world.instance.runtime.clock, world.instance.runtime.digester).verify(token)
            is None
        )
        row = session.scalars(select(JobTokenRow).where(JobTokenRow.run_id == run_id)).one()
        assert row.revoked_at is not None
    refused = requests.get(
        f"{devops}/{ORG}/{quote(PROJECT)}/_git/{REPO}/info/refs?service=git-upload-pack",
        headers={"Authorization": f"Bearer {token}"},
        verify=world.instance.ca_bundle,
        timeout=30,
    )
    assert refused.status_code == 401

    # The secret is stored encrypted, never in the clear.
    with world.instance.runtime.db.read() as session:
        variable = session.scalars(
            select(PipelineVariableRow).where(PipelineVariableRow.name == "db.password")
        ).one()
        assert variable.value is None
        assert variable.value_encrypted is not None
        assert SECRET.encode() not in variable.value_encrypted


def test_a_run_that_succeeds_exits_0_and_runs_by_yaml_path(world: World) -> None:
    commit_files(world, {"ok.yml": "steps:\n  - script: echo fine\n"}, branch="feature/ok")
    code, output = run_cli(
        world, "pipelines", "run", f"{ORG}/{PROJECT}", "--pipeline", "ok.yml", "--branch", "feature/ok"
    )
    assert code == 0, output
    assert "fine" in output
    run_id = _run_id(output)
    record = _run_record(world, run_id)
    assert record["result"] == "succeeded"
    assert record["sourceBranch"] == "refs/heads/feature/ok"
    assert record["pipeline"] == {"id": record["pipeline"]["id"], "name": REPO}  # type: ignore[index]
    code, output = run_cli(world, "pipelines", "list", f"{ORG}/{PROJECT}")
    assert f"{REPO}/ok.yml" in output
    code, output = run_cli(world, "pipelines", "runs", f"{ORG}/{PROJECT}", "--pipeline", REPO)
    assert code == 0, output
    assert f"{run_id}  completed  succeeded  refs/heads/feature/ok" in output


@pytest.mark.parametrize(
    ("files", "branch", "message"),
    [
        (
            {"bad.yml": "steps:\n  - script: echo hi\n    condition: always()\n"},
            "main",
            "bad.yml: 'steps[0].condition' (line 3): not supported",
        ),
        ({"bad.yml": "jobs:\n  - job: A\n"}, "main", "bad.yml: 'jobs' (line 1): not supported"),
        ({"other.yml": "steps: []\n"}, "main", "bad.yml not found in repository pipeline-code"),
        ({}, "no-such-branch", "branch 'refs/heads/no-such-branch' not found in repository pipeline-code"),
        ({"bad.yml": "#" * (1024 * 1024 + 1)}, "main", "bad.yml is larger than 1024 KiB"),
    ],
    ids=["condition", "jobs", "no-file", "no-branch", "too-large"],
)
def test_a_refused_pipeline_fails_before_any_step(
    world: World, files: dict[str, str], branch: str, message: str
) -> None:
    if files:
        _git("rm", "-q", "--ignore-unmatch", "bad.yml", cwd=world.work, home=world.home)
        commit_files(world, files, branch="refusals")
        branch = "refusals" if branch == "main" else branch
    project_path = f"{ORG}/{PROJECT}"
    if run_cli(world, "pipelines", "list", project_path)[1].find("refusals-ci") < 0:
        code, output = run_cli(
            world,
            "pipelines",
            "create",
            project_path,
            "--name",
            "refusals-ci",
            "--repo",
            REPO,
            "--yaml",
            "bad.yml",
        )
        assert code == 0, output
    code, output = run_cli(
        world, "pipelines", "run", project_path, "--pipeline", "refusals-ci", "--branch", branch
    )
    assert code == 1, output
    assert message in output
    record = _run_record(world, _run_id(output))
    assert record["result"] == "failed"
    assert message in str(record["error"])
    assert record["steps"] == []  # no step ran, not even the checkout
    with world.instance.runtime.db.read() as session:
        assert session.scalars(select(JobTokenRow).where(JobTokenRow.run_id == record["id"])).all() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["pipelines", "create", f"{ORG}/{PROJECT}", "--name", "x", "--repo", "nope"],
            "repository 'nope' not found",
        ),
        (
            ["pipelines", "create", f"{ORG}/{PROJECT}", "--name", "x", "--repo", REPO, "--yaml", "../x.yml"],
            "not a path",
        ),
        (["pipelines", "create", f"{ORG}/{PROJECT}", "--name", "x", "--repo", "elsewhere"], "not found"),
        (["pipelines", "create", f"{ORG}", "--name", "x", "--repo", REPO], "is not ORG/PROJECT"),
        (["pipelines", "create", f"{ORG}/Nope", "--name", "x", "--repo", REPO], "not found"),
        (["pipelines", "create", f"{ORG}/{PROJECT}", "--name", "a/b", "--repo", REPO], "cannot contain"),
        (["pipelines", "run", f"{ORG}/{PROJECT}", "--pipeline", "nope"], "pipeline 'nope' not found"),
        (
            ["pipelines", "run", f"{ORG}/{PROJECT}", "--pipeline", "ok.yml", "--branch", "a..b"],
            "not a branch",
        ),
        (["pipelines", "variable", "set", f"{ORG}/{PROJECT}", "--pipeline", "nope", "a", "b"], "not found"),
        (["pipelines", "show", "999999"], "run 999999 not found"),
    ],
)
def test_cli_refusals(world: World, args: list[str], message: str) -> None:
    code, output = run_cli(world, *args)
    assert code == 2, output
    assert message in output


@pytest.mark.parametrize(
    ("name", "message"),
    [("System.AccessToken", "predefined"), ("bad name", "letters, digits"), ("", "letters, digits")],
)
def test_variable_names_are_checked(world: World, name: str, message: str) -> None:
    commit_files(world, {"vars.yml": "steps:\n  - script: echo\n"}, branch="vars")
    run_cli(
        world,
        "pipelines",
        "create",
        f"{ORG}/{PROJECT}",
        "--name",
        "vars-ci",
        "--repo",
        REPO,
        "--yaml",
        "vars.yml",
    )
    code, output = run_cli(
        world, "pipelines", "variable", "set", f"{ORG}/{PROJECT}", "--pipeline", "vars-ci", name, "v"
    )
    assert code == 2, output
    assert message in output


def test_a_secret_copied_onto_another_variable_does_not_decrypt() -> None:
    cipher = VariableCipher(b"k" * 32)
    blob = cipher.encrypt(1, "a", "value")
    assert cipher.decrypt(1, "A", blob) == "value"  # names are case-insensitive
    with pytest.raises(ValueError, match="cannot be decrypted"):
        cipher.decrypt(2, "a", blob)
    with pytest.raises(ValueError, match="cannot be decrypted"):
        VariableCipher(b"o" * 32).decrypt(1, "a", blob)


def test_the_job_timeout_cancels_the_run_and_revokes_its_token(world: World) -> None:
    commit_files(world, {"slow.yml": "steps:\n  - script: sleep 30\n  - script: echo after\n"}, branch="slow")
    runtime = world.instance.runtime
    project_path = f"{ORG}/{PROJECT}"
    run_cli(
        world, "pipelines", "create", project_path, "--name", "slow-ci", "--repo", REPO, "--yaml", "slow.yml"
    )
    with runtime.db.unit_of_work() as session:
        from entryway.devops.audit.recorder import Actor

        org = OrgService(session, runtime.clock).get(ORG)
        project = ProjectService(session, runtime.clock).get(org, PROJECT)
        service = PipelineService(session, runtime.clock)
        run = service.queue_run(org, service.get(project, "slow-ci"), "slow", Actor.local("test"))
    lines: list[str] = []
    runner = JobRunner(
        runtime.db,
        runtime.clock,
        runtime.digester,
        VariableCipher(runtime.master_key.derive(PIPELINE_VARIABLES_PURPOSE)),
        RunnerSettings(
            devops_origin=runtime.settings.devops_origin,
            git_root=str(runtime.settings.data_dir / "git"),
            ca_bundle=str(runtime.settings.ca_bundle),
            job_timeout=timedelta(seconds=4),
        ),
    )
    assert runner.run(run.id, echo=lines.append) == "canceled"
    assert any("The job ran longer than the maximum time" in line for line in lines)
    record = _run_record(world, run.id)
    assert record["result"] == "canceled"
    assert [s["result"] for s in record["steps"]] == ["succeeded", "canceled", "skipped"]  # type: ignore[union-attr]
    with runtime.db.read() as session:
        row = session.scalars(select(JobTokenRow).where(JobTokenRow.run_id == run.id)).one()
        assert row.revoked_at is not None
    # A run is run once.
    assert runner.run(run.id) == "failed"
    assert _run_record(world, run.id)["result"] == "canceled"


# --- the REST API ------------------------------------------------------------------------------------------

TENANT = "4b1c2d3e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
AZURE_CLI_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


def _token(world: World, upn: str) -> str:
    response = requests.post(
        f"{world.instance.identity}/{TENANT}/oauth2/v2.0/token",
        data={
            "grant_type": "password",
            "client_id": AZURE_CLI_ID,
            "username": upn,
            "password": "Pia-Runs-Pipelines-0042",
            "scope": "499b84ac-1321-427f-aa17-267ca6975798/.default",
        },
        verify=world.instance.ca_bundle,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    value: str = response.json()["access_token"]
    return value


@pytest.fixture(scope="module")
def rest(world: World) -> dict[str, object]:
    """A pipeline for the REST tests, and who calls."""
    commit_files(
        world,
        {
            "rest.yml": 'variables:\n  who: rest\nsteps:\n  - script: echo "over $(who) as $SYSTEM_TEAMPROJECT"\n'
        },
        branch="rest",
    )
    code, output = run_cli(
        world,
        "pipelines",
        "create",
        f"{ORG}/{PROJECT}",
        "--name",
        "rest-ci",
        "--repo",
        REPO,
        "--yaml",
        "rest.yml",
    )
    assert code == 0, output
    code, output = run_cli(world, "pipelines", "list", f"{ORG}/{PROJECT}", "--json")
    pipeline_id = next(p["id"] for p in json.loads(output) if p["name"] == "rest-ci")
    return {
        "pipeline_id": pipeline_id,
        "pia": _token(world, "pia@pipelines.test"),
        "rita": _token(world, "rita@pipelines.test"),
        "otto": _token(world, "otto@pipelines.test"),
    }


def _api(world: World, method: str, path: str, token: str | None, **kwargs: object) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(
        method,
        f"{world.instance.devops}/{ORG}/{quote(PROJECT)}/_apis/pipelines{path}",
        headers=headers,
        verify=world.instance.ca_bundle,
        timeout=30,
        **kwargs,  # type: ignore[arg-type]
    )


def _wait_completed(world: World, pipeline_id: object, run_id: int, token: str) -> dict[str, object]:
    import time

    for _ in range(200):
        response = _api(world, "GET", f"/{pipeline_id}/runs/{run_id}?api-version=7.1", token)
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        if body["state"] == "completed":
            return body
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not complete")


def test_a_run_queued_over_rest_runs_in_the_background(world: World, rest: dict[str, object]) -> None:
    pipeline_id, pia = rest["pipeline_id"], str(rest["pia"])
    response = _api(
        world,
        "POST",
        f"/{pipeline_id}/runs?api-version=7.1",
        pia,
        json={"resources": {"repositories": {"self": {"refName": "refs/heads/rest"}}}},
    )
    assert response.status_code == 200, response.text
    queued = response.json()
    assert queued["state"] == "inProgress"
    assert queued["pipeline"]["id"] == pipeline_id
    assert queued["pipeline"]["name"] == "rest-ci"
    assert queued["resources"]["repositories"]["self"]["refName"] == "refs/heads/rest"
    assert "result" not in queued
    run_id = queued["id"]
    done = _wait_completed(world, pipeline_id, run_id, pia)
    assert done["result"] == "succeeded"
    assert "finishedDate" in done
    assert done["url"].endswith(f"/_apis/pipelines/{pipeline_id}/runs/{run_id}")  # type: ignore[union-attr]

    listed = _api(world, "GET", f"/{pipeline_id}/runs?api-version=7.1", pia).json()
    assert run_id in [r["id"] for r in listed["value"]]
    pipelines = _api(world, "GET", "?api-version=7.1", str(rest["rita"])).json()  # readers see pipelines
    assert "rest-ci" in [p["name"] for p in pipelines["value"]]
    assert (
        _api(world, "GET", f"/{pipeline_id}?api-version=7.1", pia).json()["configuration"]["path"]
        == "rest.yml"
    )

    logs = _api(world, "GET", f"/{pipeline_id}/runs/{run_id}/logs?api-version=7.1", pia).json()["logs"]
    assert [entry["id"] for entry in logs] == [1, 2]
    assert all(entry["lineCount"] > 0 for entry in logs)
    log = _api(world, "GET", f"/{pipeline_id}/runs/{run_id}/logs/2?api-version=7.1", pia).json()
    assert log["signedContent"]["url"].endswith(f"/runs/{run_id}/logs/2/content")
    content = _api(world, "GET", f"/{pipeline_id}/runs/{run_id}/logs/2/content", str(rest["rita"]))
    assert content.status_code == 200
    assert content.headers["content-type"].startswith("text/plain")
    assert f"over rest as {PROJECT}" in content.text
    assert all(TIMESTAMP.match(line) for line in content.text.splitlines())


def test_a_run_queued_without_a_body_runs_the_default_branch(world: World, rest: dict[str, object]) -> None:
    pipeline_id, pia = rest["pipeline_id"], str(rest["pia"])
    response = _api(world, "POST", f"/{pipeline_id}/runs?api-version=7.1", pia)
    assert response.status_code == 200, response.text
    assert response.json()["resources"]["repositories"]["self"]["refName"] == "refs/heads/main"
    done = _wait_completed(world, pipeline_id, response.json()["id"], pia)
    assert done["result"] == "failed"  # main holds no rest.yml: refused before any step
    logs = _api(world, "GET", f"/{pipeline_id}/runs/{done['id']}/logs?api-version=7.1", pia).json()["logs"]
    assert len(logs) == 1
    content = _api(world, "GET", f"/{pipeline_id}/runs/{done['id']}/logs/1/content", pia).text
    assert "rest.yml not found in repository" in content


@pytest.mark.parametrize(
    "case",
    [
        ("pia", "POST", "/{p}/runs", {}, 400, "No api-version was supplied"),
        (
            "pia",
            "POST",
            "/{p}/runs?api-version=7.1",
            {"variables": {"a": {"value": "b"}}},
            400,
            "'variables' is not",
        ),
        ("pia", "POST", "/{p}/runs?api-version=7.1", {"previewRun": True}, 400, "'previewRun' is not"),
        (
            "pia",
            "POST",
            "/{p}/runs?api-version=7.1",
            {"yamlOverride": "steps: []"},
            400,
            "'yamlOverride' is not",
        ),
        ("pia", "POST", "/{p}/runs?api-version=7.1", [1], 400, "must be a JSON object"),
        ("pia", "POST", "/{p}/runs?api-version=7.1", "not json", 400, "must be a JSON object"),
        (
            "pia",
            "POST",
            "/{p}/runs?api-version=7.1",
            {"resources": {"repositories": {"other": {"refName": "main"}}}},
            400,
            "Only the pipeline's own repository",
        ),
        (
            "pia",
            "POST",
            "/{p}/runs?api-version=7.1",
            {"resources": {"repositories": {"self": {"refName": 5}}}},
            400,
            "refName is a string",
        ),
        (
            "pia",
            "POST",
            "/{p}/runs?api-version=7.1",
            {"resources": {"repositories": {"self": {"refName": "refs/heads/a..b"}}}},
            400,
            "is not a branch name",
        ),
        ("rita", "POST", "/{p}/runs?api-version=7.1", {}, 403, "TF215106: Access denied."),
        ("otto", "GET", "/{p}/runs?api-version=7.1", None, 404, "TF200016"),
        ("otto", "POST", "/{p}/runs?api-version=7.1", {}, 404, "TF200016"),
        (None, "GET", "/{p}/runs?api-version=7.1", None, 401, ""),
        ("pia", "GET", "/999999/runs?api-version=7.1", None, 404, "Pipeline with id 999999 not found."),
        ("pia", "GET", "/rest-ci?api-version=7.1", None, 404, "Pipeline with id rest-ci not found."),
        ("pia", "GET", "/{p}/runs/999999?api-version=7.1", None, 404, "Run with id 999999 not found."),
        (
            "pia",
            "GET",
            "/{p}/runs/1?api-version=7.1",
            None,
            404,
            "Run with id 1 not found.",
        ),  # another pipeline's
        ("pia", "GET", "/{p}/runs?api-version=99.0", None, 400, "out of range"),
    ],
)
def test_rest_refusals(
    world: World, rest: dict[str, object], case: tuple[str | None, str, str, object, int, str]
) -> None:
    who, method, path, body, status, message = case
    token = str(rest[who]) if who else None
    kwargs: dict[str, object] = {}
    if isinstance(body, str):
        kwargs["data"] = body
    elif body is not None:
        kwargs["json"] = body
    response = _api(world, method, path.replace("{p}", str(rest["pipeline_id"])), token, **kwargs)
    assert response.status_code == status, response.text
    assert message in response.text


# --- the config file ---------------------------------------------------------------------------------------

PIPELINES_CONFIG = f"""\
organizations:
  - name: {ORG}
    tenant: pipelines.test
    projects:
      - name: {PROJECT}
        pipelines:
          - name: configured
            repository: {REPO}
            yaml: ci/configured.yml
            variables:
              greeting: hello
              answer: 42
              db.password:
                secret: true
                from_env: TEST_PIPELINE_SECRET
"""


def test_pipelines_from_the_config_file(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from entryway.config.declarative import apply_config

    monkeypatch.setenv("TEST_PIPELINE_SECRET", SECRET)
    runtime = world.instance.runtime
    report = apply_config(runtime, yaml.safe_load(PIPELINES_CONFIG), source="test_pipelines")
    assert f"pipeline {ORG}/{PROJECT}/configured" in report.created
    assert "secret variable db.password of pipeline configured" in report.created
    again = apply_config(runtime, yaml.safe_load(PIPELINES_CONFIG), source="test_pipelines")
    assert again.created == []  # applying twice changes nothing, the secret included
    _code, output = run_cli(
        world, "pipelines", "variable", "list", f"{ORG}/{PROJECT}", "--pipeline", "configured"
    )
    assert "answer = 42" in output
    assert "db.password = *** (secret)" in output
    monkeypatch.setenv("TEST_PIPELINE_SECRET", "another-value-of-the-secret")
    changed = apply_config(runtime, yaml.safe_load(PIPELINES_CONFIG), source="test_pipelines")
    assert changed.created == ["secret variable db.password of pipeline configured"]


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        ("name: configured\n            repository: elsewhere", "not found"),
        (
            "name: configured\n            repository: " + REPO + "\n            yaml: other.yml",
            "never changes",
        ),
        ("name: fresh\n            repository: nope", "repository 'nope' not found"),
        ("name: fresh\n            repository: " + REPO + "\n            yaml: ../up.yml", "not a path"),
        ("name: fresh\n            repository: " + REPO + "\n            trigger: x", "trigger"),
        (
            "name: fresh\n            repository: " + REPO + "\n            variables: [a]",
            "expected a mapping",
        ),
        (
            "name: fresh\n            repository: " + REPO + "\n            variables: {a: [1]}",
            "expected a value",
        ),
        (
            "name: fresh\n            repository: " + REPO + "\n            variables: {a: {secret: true}}",
            "exactly one",
        ),
        (
            "name: fresh\n            repository: "
            + REPO
            + "\n            variables: {a: {from_env: NOPE_X}}",
            "not set",
        ),
        (
            "name: fresh\n            repository: " + REPO + "\n            variables: {a: {value: x, b: 1}}",
            "unknown key",
        ),
        (
            "name: fresh\n            repository: " + REPO + "\n            variables: {System.X: 1}",
            "predefined",
        ),
    ],
)
def test_config_file_refusals(
    world: World, monkeypatch: pytest.MonkeyPatch, pipeline: str, message: str
) -> None:
    import yaml

    from entryway.config.declarative import ConfigError, apply_config

    monkeypatch.setenv("TEST_PIPELINE_SECRET", SECRET)
    apply_config(world.instance.runtime, yaml.safe_load(PIPELINES_CONFIG), source="test_pipelines")
    text = f"""\
organizations:
  - name: {ORG}
    tenant: pipelines.test
    projects:
      - name: {PROJECT}
        pipelines:
          - {pipeline}
"""
    with pytest.raises(ConfigError, match=re.escape(message)):
        apply_config(world.instance.runtime, yaml.safe_load(text), source="test_pipelines")
    _code, output = run_cli(world, "pipelines", "list", f"{ORG}/{PROJECT}")
    assert "fresh" not in output  # all or nothing


def test_two_runners_given_one_run_run_it_once(world: World) -> None:
    import threading

    from entryway.devops.audit.recorder import Actor

    commit_files(world, {"once.yml": "steps:\n  - script: echo once\n"}, branch="once")
    runtime = world.instance.runtime
    run_cli(
        world,
        "pipelines",
        "create",
        f"{ORG}/{PROJECT}",
        "--name",
        "once-ci",
        "--repo",
        REPO,
        "--yaml",
        "once.yml",
    )
    with runtime.db.unit_of_work() as session:
        org = OrgService(session, runtime.clock).get(ORG)
        project = ProjectService(session, runtime.clock).get(org, PROJECT)
        service = PipelineService(session, runtime.clock)
        run = service.queue_run(org, service.get(project, "once-ci"), "once", Actor.local("test"))
    settings = RunnerSettings(
        devops_origin=runtime.settings.devops_origin,
        git_root=str(runtime.settings.data_dir / "git"),
        ca_bundle=str(runtime.settings.ca_bundle),
    )
    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                JobRunner(runtime.db, runtime.clock, runtime.digester, None, settings).run(run.id)
            )
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == ["failed", "succeeded"]  # the second was refused, and wrote nothing
    assert _run_record(world, run.id)["result"] == "succeeded"
    assert _stored_log(world, run.id).count("##[section]Starting: CmdLine: echo once") == 1


def test_deleting_a_project_takes_its_pipelines_runs_and_tokens_with_it(world: World) -> None:
    from entryway.devops.audit.recorder import Actor
    from entryway.store.models import PipelineRow, PipelineRunRow

    runtime = world.instance.runtime
    code, output = run_cli(
        world, "pipelines", "create", f"{ORG}/{OTHER_PROJECT}", "--name", "doomed", "--repo", "elsewhere"
    )
    assert code == 0, output
    with runtime.db.unit_of_work() as session:
        org = OrgService(session, runtime.clock).get(ORG)
        project = ProjectService(session, runtime.clock).get(org, OTHER_PROJECT)
        service = PipelineService(session, runtime.clock)
        pipeline = service.get(project, "doomed")
        service.set_variable(org, pipeline, "a", "b", Actor.local("test"))
        run = service.queue_run(org, pipeline, "main", Actor.local("test"))
        row = session.get(PipelineRunRow, run.id)
        assert row is not None
        JobTokens(session, runtime.clock, runtime.digester).issue(row, org.id)
    with runtime.db.unit_of_work() as session:
        org = OrgService(session, runtime.clock).get(ORG)
        ProjectService(session, runtime.clock).delete(org, OTHER_PROJECT, Actor.local("test"))
    with runtime.db.read() as session:
        assert session.get(PipelineRow, pipeline.id) is None
        assert session.get(PipelineRunRow, run.id) is None
        assert session.scalars(select(JobTokenRow).where(JobTokenRow.run_id == run.id)).all() == []
