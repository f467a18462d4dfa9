"""`entryway serviceconnection` against a running Entryway (the CLI process has the directory too, so
`--create-federated-credential` makes the matching credential), and `entryway keys --purpose devops-oidc`.
The tokens the CLI's connections get are exchanged by real azure-identity at the identity platform."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientAssertionCredential
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from entryway.cli.main import STATE_FILE
from entryway.cli.main import app as cli
from entryway.config.declarative import apply_config
from entryway.devops.orgs.service import OrgService
from entryway.devops.pipelines.jobtokens import JobTokens
from entryway.devops.projects.service import ProjectService
from entryway.identity.directory.service import DirectoryService
from entryway.kit.clock import ManualClock
from entryway.kit.ids import new_guid
from entryway.store.models import AuditEventRow, PipelineRow, PipelineRunRow
from tests.conftest import CONTOSO_TENANT, DEVOPS_SCOPE, Instance, start_entryway

ORG = "clorg"
PROJECT = "Ops"
DEPLOYER_ID = "6d1e2f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a"

CONFIG = f"""\
tenants:
  - id: {CONTOSO_TENANT}
    domains: [contoso.test]
    apps:
      - name: cli-deployer
        client_id: {DEPLOYER_ID}
    managed_identities:
      - name: cli-uami
        kind: user
      - name: cli-system
        kind: system
organizations:
  - name: {ORG}
    tenant: contoso.test
    projects:
      - name: {PROJECT}
        repositories: [ops-code]
"""


@dataclass(frozen=True)
class CliWorld:
    instance: Instance
    data_dir: Path
    organization_id: str
    project_id: str
    pipeline_id: int


@pytest.fixture(scope="module")
def cli_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliWorld]:
    """An Entryway of its own, with the state file `serve` writes, so the CLI knows its origins."""
    data_dir = tmp_path_factory.mktemp("serviceconnection-cli")
    instance = start_entryway(data_dir, ManualClock(), configs=(CONFIG,))
    settings = instance.settings
    (data_dir / STATE_FILE).write_text(
        json.dumps(
            {
                "host": settings.host,
                "identity_port": settings.identity_port,
                "devops_port": settings.devops_port,
                "managed_identity": False,
            }
        )
    )
    runtime = instance.runtime
    with runtime.db.unit_of_work() as session:
        org = OrgService(session, runtime.clock).get(ORG)
        projects = ProjectService(session, runtime.clock, str(settings.data_dir / "git"))
        project = projects.get(org, PROJECT)
        repo = projects.list_repositories(org, project=project)[0]
        pipeline = PipelineRow(
            project_id=project.id,
            name="release",
            name_key="release",
            repository_id=repo.id,
            yaml_path="azure-pipelines.yml",
            created_at=runtime.clock.now(),
        )
        session.add(pipeline)
        session.flush()
        world = CliWorld(instance, data_dir, org.id, project.id, pipeline.id)
    try:
        yield world
    finally:
        instance.server.stop()


@pytest.fixture
def trusts_the_instance(cli_world: CliWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """azure-identity (requests) trusts this instance's CA rather than the session instance's."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cli_world.instance.ca_bundle)
    monkeypatch.setenv("SSL_CERT_FILE", cli_world.instance.ca_bundle)


def run(world: CliWorld, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--data-dir", str(world.data_dir)])


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def oidc_token(world: CliWorld, connection_id: str) -> requests.Response:
    """A job of the pipeline asks for the connection's token, as AzurePipelinesCredential does."""
    runtime = world.instance.runtime
    with runtime.db.unit_of_work() as session:
        run_row = PipelineRunRow(
            pipeline_id=world.pipeline_id,
            project_id=world.project_id,
            plan_id=new_guid(),
            job_id=new_guid(),
            state="inProgress",
            result=None,
            source_branch="refs/heads/main",
            queued_at=runtime.clock.now(),
            started_at=runtime.clock.now(),
        )
        session.add(run_row)
        session.flush()
        token = JobTokens(session, runtime.clock, runtime.digester).issue(run_row, world.organization_id)
        plan_id, job_id = run_row.plan_id, run_row.job_id
    return requests.post(
        f"{world.instance.devops}/{ORG}/{world.project_id}/_apis/distributedtask/hubs/build/plans/{plan_id}/"
        f"jobs/{job_id}/oidctoken",
        params={"api-version": "7.1", "serviceConnectionId": connection_id},
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        verify=world.instance.ca_bundle,
        timeout=30,
    )


def exchange(world: CliWorld, client_id: str, assertion: str) -> str:
    credential = ClientAssertionCredential(
        CONTOSO_TENANT, client_id, lambda: assertion, authority=world.instance.identity
    )
    return credential.get_token(DEVOPS_SCOPE).token


def federated_credentials(world: CliWorld, client_id: str) -> dict[str, tuple[str, str | None]]:
    runtime = world.instance.runtime
    with runtime.db.read() as session:
        fics = DirectoryService(session, runtime.clock, runtime.digester).list_federated_credentials(
            client_id
        )
        return {f.name: (f.issuer, f.subject) for f in fics}


@pytest.mark.usefixtures("trusts_the_instance")
def test_create_show_rename_delete_with_the_federated_credential(cli_world: CliWorld) -> None:
    issuer = f"{cli_world.instance.devops}/_oidc/{cli_world.organization_id}"
    created = json.loads(
        ok(
            run(
                cli_world,
                "serviceconnection",
                "create",
                f"{ORG}/{PROJECT}",
                "--name",
                "prod",
                "--tenant",
                "contoso.test",
                "--app",
                "cli-deployer",
                "--pipeline",
                "release",
                "--create-federated-credential",
                "--json",
            )
        )
    )
    assert created["issuer"] == issuer
    assert created["subject"] == f"sc://{ORG}/{PROJECT}/prod"
    assert created["audience"] == "api://AzureADTokenExchange"
    assert created["client_id"] == DEPLOYER_ID
    assert created["pipelines"] == ["release"]
    connection_id = created["id"]
    assert federated_credentials(cli_world, DEPLOYER_ID)[f"sc-{connection_id}"] == (
        issuer,
        created["subject"],
    )

    shown = ok(run(cli_world, "serviceconnection", "show", f"{ORG}/{PROJECT}", "--name", "PROD"))
    assert f"issuer      {issuer}" in shown
    assert f"subject     sc://{ORG}/{PROJECT}/prod" in shown
    assert "pipelines   release" in shown
    listed = ok(run(cli_world, "serviceconnection", "list", f"{ORG}/{PROJECT}"))
    assert f"{connection_id}\tprod\t{DEPLOYER_ID}\tsc://{ORG}/{PROJECT}/prod" in listed

    response = oidc_token(cli_world, connection_id)
    assert response.status_code == 200, response.text
    assert exchange(cli_world, DEPLOYER_ID, response.json()["oidcToken"])

    renamed = ok(
        run(cli_world, "serviceconnection", "rename", f"{ORG}/{PROJECT}", "--name", "prod", "--to", "prod-2")
    )
    assert f"subject     sc://{ORG}/{PROJECT}/prod-2" in renamed
    with pytest.raises(ClientAuthenticationError, match="AADSTS700213"):
        exchange(cli_world, DEPLOYER_ID, oidc_token(cli_world, connection_id).json()["oidcToken"])

    assert ok(
        run(cli_world, "serviceconnection", "delete", f"{ORG}/{PROJECT}", "--name", "prod-2")
    ).strip() == (f"deleted {connection_id}")
    assert oidc_token(cli_world, connection_id).status_code == 404
    assert "prod" not in ok(run(cli_world, "serviceconnection", "list", f"{ORG}/{PROJECT}"))
    assert audited(cli_world, connection_id) == [
        ("Library.ServiceConnectionCreated", "prod"),
        ("Library.ServiceConnectionPropertyChanged", "prod-2"),
        ("Library.ServiceConnectionDeleted", "prod-2"),
    ]


def audited(world: CliWorld, connection_id: str) -> list[tuple[str, str]]:
    """The connection's audit rows: (action, its name then), oldest first; all by the CLI."""
    runtime = world.instance.runtime
    with runtime.db.read() as session:
        rows = session.scalars(select(AuditEventRow).order_by(AuditEventRow.timestamp)).all()
        mine = [r for r in rows if (r.details or {}).get("connectionId") == connection_id]
        assert all(r.actor_name == "cli" and r.organization_name == ORG for r in mine)
        return [(r.action, str(r.details["connectionName"])) for r in mine]


@pytest.mark.usefixtures("trusts_the_instance")
def test_rename_with_update_federated_credential_keeps_the_exchange_working(cli_world: CliWorld) -> None:
    args = ["--tenant", "contoso.test", "--app", "cli-deployer", "--pipeline", "release"]
    created = json.loads(
        ok(
            run(
                cli_world,
                "serviceconnection",
                "create",
                f"{ORG}/{PROJECT}",
                "--name",
                "staging",
                *args,
                "--create-federated-credential",
                "--json",
            )
        )
    )
    renamed = ok(
        run(
            cli_world,
            "serviceconnection",
            "rename",
            f"{ORG}/{PROJECT}",
            "--name",
            "staging",
            "--to",
            "staging-eu",
            "--update-federated-credential",
        )
    )
    assert f"federated credential sc-{created['id']} now names the new subject" in renamed
    fic = federated_credentials(cli_world, DEPLOYER_ID)[f"sc-{created['id']}"]
    assert fic[1] == f"sc://{ORG}/{PROJECT}/staging-eu"
    assert exchange(cli_world, DEPLOYER_ID, oidc_token(cli_world, created["id"]).json()["oidcToken"])
    # A connection made without its credential has none to update: refused, and the rename is not kept.
    ok(run(cli_world, "serviceconnection", "create", f"{ORG}/{PROJECT}", "--name", "bare", *args))
    refused = run(
        cli_world,
        "serviceconnection",
        "rename",
        f"{ORG}/{PROJECT}",
        "--name",
        "bare",
        "--to",
        "bare-2",
        "--update-federated-credential",
    )
    assert refused.exit_code == 2
    assert "has no federated credential named" in refused.output
    assert run(cli_world, "serviceconnection", "show", f"{ORG}/{PROJECT}", "--name", "bare").exit_code == 0


@pytest.mark.usefixtures("trusts_the_instance")
def test_a_connection_with_a_user_assigned_managed_identity(cli_world: CliWorld) -> None:
    created = json.loads(
        ok(
            run(
                cli_world,
                "serviceconnection",
                "create",
                f"{ORG}/{PROJECT}",
                "--name",
                "uami-conn",
                "--tenant",
                CONTOSO_TENANT,
                "--identity",
                "cli-uami",
                "--create-federated-credential",
                "--json",
            )
        )
    )
    client_id = created["client_id"]
    assert created["pipelines"] == []
    assert f"sc-{created['id']}" in federated_credentials(cli_world, client_id)
    assert oidc_token(cli_world, created["id"]).status_code == 404  # not authorized for the pipeline yet
    assert (
        ok(
            run(
                cli_world,
                "serviceconnection",
                "authorize",
                f"{ORG}/{PROJECT}",
                "--name",
                "uami-conn",
                "--pipeline",
                "release",
            )
        ).strip()
        == "authorized"
    )
    assert (
        ok(
            run(
                cli_world,
                "serviceconnection",
                "authorize",
                f"{ORG}/{PROJECT}",
                "--name",
                "uami-conn",
                "--pipeline",
                "release",
            )
        ).strip()
        == "already authorized"
    )
    response = oidc_token(cli_world, created["id"])
    assert response.status_code == 200
    assert exchange(cli_world, client_id, response.json()["oidcToken"])
    assert ("Pipelines.ResourceAuthorizedForPipeline", "uami-conn") in audited(cli_world, created["id"])


@pytest.mark.usefixtures("trusts_the_instance")
def test_create_and_show_the_entra_issued_form(cli_world: CliWorld) -> None:
    """`--issuer entra`: issuer and subject are the identity platform's (ids, not names), the matching
    federated credential is made, and the job's token is exchanged by azure-identity."""
    created = json.loads(
        ok(
            run(
                cli_world,
                "serviceconnection",
                "create",
                f"{ORG}/{PROJECT}",
                "--name",
                "entra-conn",
                "--tenant",
                "contoso.test",
                "--app",
                "cli-deployer",
                "--issuer",
                "entra",
                "--pipeline",
                "release",
                "--create-federated-credential",
                "--json",
            )
        )
    )
    tenant = base64.urlsafe_b64encode(uuid.UUID(CONTOSO_TENANT).bytes_le).rstrip(b"=").decode()
    subject = (
        f"/eid1/c/pub/t/{tenant}/a/rISbSSETf0KqFyZ8ppdXmA/sc/{cli_world.organization_id}/{created['id']}"
    )
    issuer = f"{cli_world.instance.identity}/{CONTOSO_TENANT}/v2.0"
    assert (created["issuer_mode"], created["issuer"], created["subject"]) == ("entra", issuer, subject)
    assert created["audience"] == "api://AzureADTokenExchange"
    assert federated_credentials(cli_world, DEPLOYER_ID)[f"sc-{created['id']}"] == (issuer, subject)
    shown = ok(run(cli_world, "serviceconnection", "show", f"{ORG}/{PROJECT}", "--name", "entra-conn"))
    assert f"issuer      {issuer}" in shown
    assert f"subject     {subject}" in shown
    response = oidc_token(cli_world, created["id"])
    assert response.status_code == 200, response.text
    assert exchange(cli_world, DEPLOYER_ID, response.json()["oidcToken"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--app", "cli-deployer", "--issuer", "github"], "--issuer is 'devops' or 'entra'"),
        (["--app", "cli-deployer", "--identity", "cli-uami"], "exactly one of --app or --identity"),
        ([], "exactly one of --app or --identity"),
        (["--identity", "cli-system"], "system-assigned"),
        (["--app", "cli-deployer", "--pipeline", "nope"], "pipeline 'nope' not found"),
        (["--app", "cli-deployer", "--pipeline", "release", "--all-pipelines"], "not both"),
        (["--app", "no-such-app"], "application 'no-such-app' not found"),
        (["--app", "cli-deployer", "--name", "dup"], "already has a service connection named 'dup'"),
    ],
)
def test_create_refuses_bad_input_clearly(cli_world: CliWorld, args: list[str], message: str) -> None:
    if run(cli_world, "serviceconnection", "show", f"{ORG}/{PROJECT}", "--name", "dup").exit_code != 0:
        create = [
            "create",
            f"{ORG}/{PROJECT}",
            "--name",
            "dup",
            "--tenant",
            "contoso.test",
            "--app",
            "cli-deployer",
        ]
        ok(run(cli_world, "serviceconnection", *create))
    base = ["serviceconnection", "create", f"{ORG}/{PROJECT}", "--tenant", "contoso.test"]
    if "--name" not in args:
        base += ["--name", "refused"]
    result = run(cli_world, *base, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert run(cli_world, "serviceconnection", "show", f"{ORG}/{PROJECT}", "--name", "refused").exit_code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", ORG, "--name", "x"], f"'{ORG}' is not ORG/PROJECT"),
        (["show", f"nope/{PROJECT}", "--name", "x"], "organization 'nope' not found"),
        (["show", f"{ORG}/Nope", "--name", "x"], "Nope"),
        (["show", f"{ORG}/{PROJECT}", "--name", "x"], "service connection 'x' not found"),
        (["rename", f"{ORG}/{PROJECT}", "--name", "x", "--to", "y"], "service connection 'x' not found"),
        (["authorize", f"{ORG}/{PROJECT}", "--name", "x"], "exactly one of --pipeline or --all-pipelines"),
        (["delete", f"{ORG}/{PROJECT}", "--name", "x"], "service connection 'x' not found"),
    ],
)
def test_commands_refuse_bad_input_clearly(cli_world: CliWorld, args: list[str], message: str) -> None:
    result = run(cli_world, "serviceconnection", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_keys_rotate_by_purpose(cli_world: CliWorld) -> None:
    identity_before = ok(run(cli_world, "keys", "list"))
    listed = ok(run(cli_world, "keys", "list", "--purpose", "devops-oidc")).splitlines()
    assert len(listed) == 1
    old_kid = listed[0].split("\t")[0]
    assert old_kid not in identity_before
    new_kid = ok(run(cli_world, "keys", "rotate", "--purpose", "devops-oidc", "--expect", old_kid)).strip()
    states = dict(
        line.split("\t")[:2]
        for line in ok(run(cli_world, "keys", "list", "--purpose", "devops-oidc")).splitlines()
    )
    assert states == {old_kid: "retired", new_kid: "active"}
    assert ok(run(cli_world, "keys", "list")) == identity_before
    conflict = run(cli_world, "keys", "rotate", "--purpose", "devops-oidc", "--expect", old_kid)
    assert conflict.exit_code == 2
    assert f"the active key is now {new_kid}" in conflict.output
    refused = run(cli_world, "keys", "rotate", "--purpose", "nope")
    assert refused.exit_code == 2
    assert "unknown purpose 'nope'" in refused.output
    cli_world.instance.clock.advance(6)  # past the keyring's refresh interval
    jwks = requests.get(
        f"{cli_world.instance.devops}/_oidc/.well-known/jwks", verify=cli_world.instance.ca_bundle, timeout=30
    ).json()
    assert {old_kid, new_kid} <= {k["kid"] for k in jwks["keys"]}


def test_config_file_connection_with_a_managed_identity(cli_world: CliWorld) -> None:
    config = {
        "organizations": [
            {
                "name": ORG,
                "tenant": "contoso.test",
                "projects": [
                    {
                        "name": PROJECT,
                        "service_connections": [
                            {
                                "name": "cfg-uami",
                                "tenant": "contoso.test",
                                "managed_identity": "cli-uami",
                                "all_pipelines": True,
                                "create_federated_credential": True,
                            }
                        ],
                    }
                ],
            }
        ]
    }
    report = apply_config(cli_world.instance.runtime, config)
    assert f"service connection {ORG}/{PROJECT}/cfg-uami" in report.created
    shown = ok(run(cli_world, "serviceconnection", "show", f"{ORG}/{PROJECT}", "--name", "cfg-uami"))
    assert "pipelines   all" in shown
    assert apply_config(cli_world.instance.runtime, yaml.safe_load(yaml.safe_dump(config))).created == []
