"""The Entra-issued form of a service connection's OIDC token (issue 7, docs/pipelines-wif.md): the oidctoken
endpoint answers with a v2 token the identity platform issued to the Azure DevOps service about the
connection; real azure-identity credentials exchange it; a federated credential naming another subject is
AADSTS700213; no client but the DevOps service may name a connection; the identity platform's refusal reaches
the job as a clear 400; the DevOps form still works beside it."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
import requests
import yaml
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import AzurePipelinesCredential, ClientAssertionCredential, ClientSecretCredential
from sqlalchemy import select

from entryway.config.declarative import ConfigError, apply_config
from entryway.devops.connections.service import ConnectionService, IssuerMode
from entryway.devops.oidc.entra import EntraTokenUnavailable, request_entra_token
from entryway.devops.orgs.service import OrgService
from entryway.devops.pipelines.jobtokens import JobTokens
from entryway.devops.projects.service import ProjectService
from entryway.identity.directory.first_party import DEVOPS_WEB
from entryway.identity.directory.service import DirectoryService
from entryway.kit.ids import new_guid
from entryway.store.models import PipelineRow, PipelineRunRow, ServicePrincipalRow
from tests.conftest import BUILD_BOT_ID, BUILD_BOT_SECRET, CONTOSO_TENANT, DEVOPS_SCOPE, Instance

ORG = "entra-wif"
PROJECT = "Releases"
APP_ID = "8c3b1d2e-5f6a-4b7c-9d8e-0f1a2b3c4d5e"
OTHER_APP_ID = "9d4c2e3f-6a7b-4c8d-8e9f-1a2b3c4d5e6f"
ADO_APP_ID = "499b84ac-1321-427f-aa17-267ca6975798"
TOKEN_EXCHANGE_APP_ID = "fb60f99c-7a34-4190-8149-302f77469936"
TOKEN_EXCHANGE_SCOPE = f"{TOKEN_EXCHANGE_APP_ID}/.default"
AUDIENCE = "api://AzureADTokenExchange"

CONFIG = f"""\
tenants:
  - id: {CONTOSO_TENANT}
    domains: [contoso.test]
    apps:
      - name: entra-wif-deployer
        client_id: {APP_ID}
      - name: entra-wif-other
        client_id: {OTHER_APP_ID}
organizations:
  - name: {ORG}
    tenant: contoso.test
    members:
      - app: build-bot
        access: basic
    projects:
      - name: {PROJECT}
        repositories: [release-code]
        members:
          - app: build-bot
            role: readers
"""

CONNECTIONS = f"""\
organizations:
  - name: {ORG}
    tenant: contoso.test
    projects:
      - name: {PROJECT}
        service_connections:
          - name: entra-prod
            tenant: contoso.test
            app: entra-wif-deployer
            issuer: entra
            pipelines: [ship]
            create_federated_credential: true
          - name: entra-wrong-subject
            tenant: contoso.test
            app: entra-wif-other
            issuer: entra
            pipelines: [ship]
          - name: devops-prod
            tenant: contoso.test
            app: entra-wif-deployer
            pipelines: [ship]
            create_federated_credential: true
"""


@dataclass(frozen=True)
class World:
    instance: Instance
    organization_id: str
    project_id: str
    pipeline_id: int
    connections: dict[str, str]


@pytest.fixture(scope="module")
def world(entryway: Instance) -> World:
    runtime = entryway.runtime
    apply_config(runtime, yaml.safe_load(CONFIG))
    with runtime.db.unit_of_work() as session:
        org = OrgService(session, runtime.clock).get(ORG)
        projects = ProjectService(session, runtime.clock, str(runtime.settings.data_dir / "git"))
        project = projects.get(org, PROJECT)
        repo = projects.list_repositories(org, project=project)[0]
        pipeline = PipelineRow(
            project_id=project.id,
            name="ship",
            name_key="ship",
            repository_id=repo.id,
            yaml_path="azure-pipelines.yml",
            created_at=runtime.clock.now(),
        )
        session.add(pipeline)
        session.flush()
        organization_id, project_id, pipeline_id = org.id, project.id, pipeline.id
    apply_config(runtime, yaml.safe_load(CONNECTIONS))
    with runtime.db.read() as session:
        connections = {
            c.name: c.id for c in ConnectionService(session, runtime.clock).list_connections(project_id)
        }
    return World(entryway, organization_id, project_id, pipeline_id, connections)


@dataclass(frozen=True)
class Job:
    token: str
    uri: str


def start_job(world: World) -> Job:
    runtime = world.instance.runtime
    with runtime.db.unit_of_work() as session:
        run = PipelineRunRow(
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
        session.add(run)
        session.flush()
        token = JobTokens(session, runtime.clock, runtime.digester).issue(run, world.organization_id)
        uri = (
            f"{world.instance.devops}/{ORG}/{world.project_id}/_apis/distributedtask/hubs/build/plans/"
            f"{run.plan_id}/jobs/{run.job_id}/oidctoken"
        )
        return Job(token, uri)


def request_token(world: World, job: Job, connection: str) -> requests.Response:
    return requests.post(
        job.uri,
        params={"api-version": "7.1", "serviceConnectionId": world.connections.get(connection, connection)},
        headers={"Authorization": f"Bearer {job.token}", "X-TFS-FedAuthRedirect": "Suppress"},
        timeout=30,
    )


def entra_subject(organization_id: str, connection_id: str) -> str:
    tenant = base64.urlsafe_b64encode(uuid.UUID(CONTOSO_TENANT).bytes_le).rstrip(b"=").decode()
    return f"/eid1/c/pub/t/{tenant}/a/rISbSSETf0KqFyZ8ppdXmA/sc/{organization_id}/{connection_id}"


def verified(world: World, token: str) -> dict[str, Any]:
    """The token's claims, verified with the identity platform's published keys."""
    keys = requests.get(f"{world.instance.identity}/{CONTOSO_TENANT}/discovery/v2.0/keys", timeout=30).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys["keys"] if k["kid"] == kid)
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience=TOKEN_EXCHANGE_APP_ID,
        issuer=f"{world.instance.identity}/{CONTOSO_TENANT}/v2.0",
        # The server's clock is a test clock, ahead of this process's.
        options={
            "require": ["iss", "sub", "aud", "exp", "iat", "nbf"],
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
        },
    )
    return claims


def exchange(world: World, client_id: str, assertion: str) -> str:
    credential = ClientAssertionCredential(
        CONTOSO_TENANT, client_id, lambda: assertion, authority=world.instance.identity
    )
    return credential.get_token(DEVOPS_SCOPE).token


def test_oidctoken_answers_with_an_entra_issued_token(world: World) -> None:
    response = request_token(world, start_job(world), "entra-prod")
    assert response.status_code == 200, response.text
    claims = verified(world, response.json()["oidcToken"])
    runtime = world.instance.runtime
    with runtime.db.read() as session:
        devops_sp = session.scalars(
            select(ServicePrincipalRow.object_id).where(
                ServicePrincipalRow.tenant_id == CONTOSO_TENANT, ServicePrincipalRow.app_id == ADO_APP_ID
            )
        ).one()
    expected = {
        "ver": "2.0",
        "azp": ADO_APP_ID,
        "idtyp": "app",
        "tid": CONTOSO_TENANT,
        "oid": devops_sp,
        "sub": entra_subject(world.organization_id, world.connections["entra-prod"]),
    }
    assert {name: claims[name] for name in expected} == expected
    assert claims["exp"] - claims["iat"] <= 3600


def test_client_assertion_credential_exchanges_it_for_a_devops_token(world: World) -> None:
    assertion = request_token(world, start_job(world), "entra-prod").json()["oidcToken"]
    claims = jwt.decode(exchange(world, APP_ID, assertion), options={"verify_signature": False})
    assert claims["appid"] == APP_ID
    assert claims["tid"] == CONTOSO_TENANT


def test_azure_pipelines_credential_with_an_entra_connection(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = start_job(world)
    monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", job.uri)
    credential = AzurePipelinesCredential(
        tenant_id=CONTOSO_TENANT,
        client_id=APP_ID,
        service_connection_id=world.connections["entra-prod"],
        system_access_token=job.token,
        authority=world.instance.identity,
    )
    claims = jwt.decode(credential.get_token(DEVOPS_SCOPE).token, options={"verify_signature": False})
    assert claims["appid"] == APP_ID


def test_a_federated_credential_naming_another_subject_is_aadsts700213(world: World) -> None:
    runtime = world.instance.runtime
    with runtime.db.unit_of_work() as session:
        DirectoryService(session, runtime.clock, runtime.digester).add_federated_credential(
            OTHER_APP_ID,
            name="wrong-subject",
            issuer=f"{world.instance.identity}/{CONTOSO_TENANT}/v2.0",
            # The subject of the other connection (entra-prod), not of entra-wrong-subject.
            subject=entra_subject(world.organization_id, world.connections["entra-prod"]),
            audiences=[AUDIENCE],
            description="",
        )
    assertion = request_token(world, start_job(world), "entra-wrong-subject").json()["oidcToken"]
    with pytest.raises(ClientAuthenticationError, match="AADSTS700213"):
        exchange(world, OTHER_APP_ID, assertion)


def identity_token(world: World, data: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{world.instance.identity}/{CONTOSO_TENANT}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", **data},
        timeout=30,
    )


def test_no_other_client_may_name_a_service_connection(world: World) -> None:
    connection = f"{world.organization_id}/{world.connections['entra-prod']}"
    refused = identity_token(
        world,
        {
            "client_id": BUILD_BOT_ID,
            "client_secret": BUILD_BOT_SECRET,
            "scope": TOKEN_EXCHANGE_SCOPE,
            "service_connection": connection,
        },
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error_description"].startswith("AADSTS9002313:")
    assert "service_connection" in refused.json()["error_description"]
    # The DevOps service itself, for any other resource.
    devops = {
        "client_id": DEVOPS_WEB.app_id,
        "client_secret": world.instance.runtime.devops_web_client_secret,
    }
    other_resource = identity_token(
        world, {**devops, "scope": DEVOPS_SCOPE, "service_connection": connection}
    )
    assert other_resource.status_code == 400, other_resource.text
    assert other_resource.json()["error_description"].startswith("AADSTS9002313:")
    malformed = identity_token(
        world, {**devops, "scope": TOKEN_EXCHANGE_SCOPE, "service_connection": "not/guids"}
    )
    assert malformed.status_code == 400, malformed.text
    assert malformed.json()["error_description"].startswith("AADSTS9002313:")
    # Without the parameter, a client's token for the token-exchange app is about itself, as in Entra.
    plain = identity_token(
        world, {"client_id": BUILD_BOT_ID, "client_secret": BUILD_BOT_SECRET, "scope": TOKEN_EXCHANGE_SCOPE}
    )
    assert plain.status_code == 200, plain.text
    claims = jwt.decode(plain.json()["access_token"], options={"verify_signature": False})
    assert claims["azp"] == BUILD_BOT_ID
    assert not claims["sub"].startswith("/eid1/")


def test_a_refusal_of_the_identity_platform_is_a_clear_400(world: World) -> None:
    """A connection whose tenant the identity platform does not know (made without the CLI's checks)."""
    runtime = world.instance.runtime
    with runtime.db.unit_of_work() as session:
        connection = ConnectionService(session, runtime.clock).create(
            world.project_id,
            name="entra-no-tenant",
            tenant_id=new_guid(),
            client_id=APP_ID,
            issuer_mode=IssuerMode.ENTRA,
            all_pipelines=True,
        )
    response = request_token(world, start_job(world), connection.id)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["typeKey"] == "ServiceEndpointException"
    assert connection.id in body["message"]
    assert "AADSTS90002" in body["message"]


def test_the_devops_form_still_works_beside_it(world: World) -> None:
    response = request_token(world, start_job(world), "devops-prod")
    assert response.status_code == 200, response.text
    assertion = response.json()["oidcToken"]
    claims = jwt.decode(assertion, options={"verify_signature": False})
    assert claims["iss"] == f"{world.instance.devops}/_oidc/{world.organization_id}"
    assert claims["sub"] == f"sc://{ORG}/{PROJECT}/devops-prod"
    assert exchange(world, APP_ID, assertion)


def test_the_config_file_makes_the_matching_federated_credential(world: World) -> None:
    runtime = world.instance.runtime
    with runtime.db.read() as session:
        fics = DirectoryService(session, runtime.clock, runtime.digester).list_federated_credentials(APP_ID)
    fic = next(f for f in fics if f.name == f"sc-{world.connections['entra-prod']}")
    assert fic.issuer == f"{world.instance.identity}/{CONTOSO_TENANT}/v2.0"
    assert fic.subject == entra_subject(world.organization_id, world.connections["entra-prod"])
    assert list(fic.audiences) == [AUDIENCE]


def test_the_serviceendpoint_names_the_entra_issuer(world: World) -> None:
    member = ClientSecretCredential(
        CONTOSO_TENANT,
        BUILD_BOT_ID,
        BUILD_BOT_SECRET,
        authority=world.instance.identity,
        disable_instance_discovery=True,
    ).get_token(DEVOPS_SCOPE)
    response = requests.get(
        f"{world.instance.devops}/{ORG}/{PROJECT}/_apis/serviceendpoint/endpoints",
        params={"api-version": "7.1", "endpointNames": "entra-prod"},
        headers={"Authorization": f"Bearer {member.token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    parameters = response.json()["value"][0]["authorization"]["parameters"]
    assert parameters["workloadIdentityFederationIssuerType"] == "EntraID"
    assert (
        parameters["workloadIdentityFederationIssuer"] == f"{world.instance.identity}/{CONTOSO_TENANT}/v2.0"
    )
    assert parameters["workloadIdentityFederationSubject"] == entra_subject(
        world.organization_id, world.connections["entra-prod"]
    )


def test_the_config_file_does_not_change_the_form_of_a_connection(world: World) -> None:
    config = yaml.safe_load(CONNECTIONS)
    entry = config["organizations"][0]["projects"][0]["service_connections"][0]
    assert entry["name"] == "entra-prod"
    assert apply_config(world.instance.runtime, config).created == []  # re-applied as it is: nothing to do
    entry["issuer"] = "devops"
    with pytest.raises(ConfigError, match=r"service_connections\[0\]: .*exists with issuer 'entra'"):
        apply_config(world.instance.runtime, config)


def _request(origin: str, secret: str, ca_bundle: str) -> str:
    async def go() -> str:
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca_bundle)) as http:
            return await request_entra_token(
                http,
                identity_origin=origin,
                client_secret=secret,
                tenant_id=CONTOSO_TENANT,
                organization_id=str(uuid.uuid4()),
                connection_id=str(uuid.uuid4()),
            )

    return asyncio.run(go())


def test_the_devops_side_tells_a_refusal_from_an_identity_platform_out_of_reach(world: World) -> None:
    """A refusal (here a wrong client secret) is for the job to read and not to retry (400); an identity
    platform that cannot be reached is 503."""
    with pytest.raises(EntraTokenUnavailable) as refused:
        _request(world.instance.identity, "not-the-secret", world.instance.ca_bundle)
    assert refused.value.refused
    assert "AADSTS7000215" in refused.value.message
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(EntraTokenUnavailable) as unreachable:
        _request(f"https://127.0.0.1:{port}", "whatever", world.instance.ca_bundle)
    assert not unreachable.value.refused
    assert "could not be reached" in unreachable.value.message
    issued = _request(
        world.instance.identity, world.instance.runtime.devops_web_client_secret, world.instance.ca_bundle
    )
    assert jwt.decode(issued, options={"verify_signature": False})["aud"] == TOKEN_EXCHANGE_APP_ID
