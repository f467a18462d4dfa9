"""The DevOps service as a pipeline OIDC issuer (issue 7): its discovery document and keys, the tokens the
oidctoken endpoint mints for a job token and a service connection, each refusal, the exchange of those tokens
at the identity platform by real azure-identity credentials (and AADSTS700213 once the connection is renamed),
the serviceendpoint REST list, service connections from the config file, and rotation of the issuer's keys.

Runs are rows with tokens issued by the pipelines package's JobTokens (the runner's end-to-end tests are
tests/devops/test_pipeline_e2e.py)."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import pytest
import requests
import yaml
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import AzurePipelinesCredential, ClientAssertionCredential, ClientSecretCredential

from entryway.config.declarative import ConfigError, apply_config
from entryway.devops.connections.service import ConnectionService, federated_credential_name
from entryway.devops.orgs.service import OrgService
from entryway.devops.pipelines.jobtokens import JobTokens
from entryway.devops.projects.service import ProjectService
from entryway.identity.directory.service import DirectoryService
from entryway.keys.keyring import rfc7638_thumbprint
from entryway.kit.ids import new_guid
from entryway.store.models import PipelineRow, PipelineRunRow
from tests.conftest import (
    BUILD_BOT_ID,
    BUILD_BOT_SECRET,
    CONTOSO_TENANT,
    DEVOPS_SCOPE,
    Instance,
)

ORG = "fabrikam"
PROJECT = "Deployments"
OTHER_PROJECT = "Elsewhere"
REPO = "infra"
DEPLOYER_ID = "4e0a6c1b-7d2f-4b3a-9c5e-1f2a3b4c5d6e"
DEPLOYER_SECRET = "deployer-secret-0123456789abcdefghijklmn"
AUDIENCE = "api://AzureADTokenExchange"

WORLD_CONFIG = f"""\
tenants:
  - id: {CONTOSO_TENANT}
    domains: [contoso.test]
    apps:
      - name: wif-deployer
        client_id: {DEPLOYER_ID}
organizations:
  - name: {ORG}
    tenant: contoso.test
    projects:
      - name: {PROJECT}
        repositories: [{REPO}]
        members:
          - app: build-bot
            role: readers
      - name: {OTHER_PROJECT}
        repositories: [elsewhere-code]
"""

CONNECTIONS_CONFIG = f"""\
organizations:
  - name: {ORG}
    tenant: contoso.test
    projects:
      - name: {PROJECT}
        service_connections:
          - name: azure-prod
            tenant: contoso.test
            app: wif-deployer
            pipelines: [deploy]
            create_federated_credential: true
          - name: azure-renamed
            tenant: {CONTOSO_TENANT}
            app: {DEPLOYER_ID}
            pipelines: [deploy]
            create_federated_credential: true
          - name: azure-unauthorized
            tenant: contoso.test
            app: wif-deployer
            create_federated_credential: true
      - name: {OTHER_PROJECT}
        service_connections:
          - name: elsewhere-conn
            tenant: contoso.test
            app: wif-deployer
            all_pipelines: true
"""


@dataclass(frozen=True)
class World:
    instance: Instance
    organization_id: str
    project_id: str
    other_project_id: str
    pipeline_id: int
    other_pipeline_id: int
    repository_id: str
    connections: dict[str, str]  # name -> id


@dataclass(frozen=True)
class Job:
    token: str
    run_id: int
    plan_id: str
    job_id: str

    def uri(self, world: World, *, project: str | None = None, org: str = ORG) -> str:
        return (
            f"{world.instance.devops}/{org}/{project or world.project_id}/_apis/distributedtask/hubs/build/"
            f"plans/{self.plan_id}/jobs/{self.job_id}/oidctoken"
        )


def _pipeline(runtime: Any, session: Any, project_id: str, repository_id: str, name: str) -> int:
    row = PipelineRow(
        project_id=project_id,
        name=name,
        name_key=name.lower(),
        repository_id=repository_id,
        yaml_path="azure-pipelines.yml",
        created_at=runtime.clock.now(),
    )
    session.add(row)
    session.flush()
    return row.id


@pytest.fixture(scope="module")
def world(entryway: Instance) -> World:
    """A project with a repository and two pipelines, and service connections from the config file (the
    pipelines exist before the connections that name them)."""
    runtime = entryway.runtime
    apply_config(runtime, yaml.safe_load(WORLD_CONFIG))
    with runtime.db.unit_of_work() as session:
        org = OrgService(session, runtime.clock).get(ORG)
        projects = ProjectService(session, runtime.clock, str(runtime.settings.data_dir / "git"))
        project = projects.get(org, PROJECT)
        other = projects.get(org, OTHER_PROJECT)
        repo = projects.list_repositories(org, project=project)[0]
        pipeline_id = _pipeline(runtime, session, project.id, repo.id, "deploy")
        other_pipeline_id = _pipeline(runtime, session, project.id, repo.id, "other-pipeline")
        organization_id, project_id, other_project_id, repository_id = org.id, project.id, other.id, repo.id
    apply_config(runtime, yaml.safe_load(CONNECTIONS_CONFIG))
    with runtime.db.read() as session:
        service = ConnectionService(session, runtime.clock)
        connections = {
            c.name: c.id
            for c in [*service.list_connections(project_id), *service.list_connections(other_project_id)]
        }
    return World(
        entryway,
        organization_id,
        project_id,
        other_project_id,
        pipeline_id,
        other_pipeline_id,
        repository_id,
        connections,
    )


def start_job(
    world: World, pipeline_id: int | None = None, lifetime: timedelta = timedelta(minutes=60)
) -> Job:
    runtime = world.instance.runtime
    with runtime.db.unit_of_work() as session:
        run = PipelineRunRow(
            pipeline_id=pipeline_id or world.pipeline_id,
            project_id=world.project_id,
            plan_id=new_guid(),
            job_id=new_guid(),
            state="inProgress",
            result=None,
            source_branch="refs/heads/main",
            source_version="0123456789abcdef0123456789abcdef01234567",
            queued_at=runtime.clock.now(),
            started_at=runtime.clock.now(),
        )
        session.add(run)
        session.flush()
        token = JobTokens(session, runtime.clock, runtime.digester).issue(
            run, world.organization_id, lifetime
        )
        return Job(token, run.id, run.plan_id, run.job_id)


def end_job(world: World, job: Job) -> None:
    runtime = world.instance.runtime
    with runtime.db.unit_of_work() as session:
        JobTokens(session, runtime.clock, runtime.digester).revoke_for_run(job.run_id)


def request_token(
    world: World,
    job: Job,
    connection: str | None = "azure-prod",
    *,
    authorization: str | None = None,
    api_version: str | None = "7.1",
    body: bytes | None = None,
    uri: str | None = None,
) -> requests.Response:
    """AzurePipelinesCredential's request (devops-wire-contract 6), with one thing changed per test."""
    params: dict[str, str] = {}
    if api_version is not None:
        params["api-version"] = api_version
    if connection is not None:
        params["serviceConnectionId"] = world.connections.get(connection, connection)
    headers = {"Content-Type": "application/json", "X-TFS-FedAuthRedirect": "Suppress"}
    headers["Authorization"] = authorization if authorization is not None else f"Bearer {job.token}"
    return requests.post(uri or job.uri(world), params=params, headers=headers, data=body, timeout=30)


def devops_jwks(world: World) -> dict[str, Any]:
    response = requests.get(f"{world.instance.devops}/_oidc/.well-known/jwks", timeout=30)
    assert response.status_code == 200
    return response.json()


def verified(world: World, token: str) -> dict[str, Any]:
    """The token's claims, verified with the issuer's published keys, as the identity platform does."""
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in devops_jwks(world)["keys"] if k["kid"] == kid)
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience=AUDIENCE,
        issuer=f"{world.instance.devops}/_oidc/{world.organization_id}",
        # The server's clock is a test clock, ahead of this process's: time is checked against it below.
        options={
            "require": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"],
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
        },
    )
    return claims


def build_bot_token(world: World) -> str:
    """An Entra token of build-bot, a member of the organization (a reader of the project)."""
    credential = ClientSecretCredential(
        CONTOSO_TENANT,
        BUILD_BOT_ID,
        BUILD_BOT_SECRET,
        authority=world.instance.identity,
        disable_instance_discovery=True,
    )
    return credential.get_token(DEVOPS_SCOPE).token


def issuer_of(world: World) -> str:
    return f"{world.instance.devops}/_oidc/{world.organization_id}"


# --- discovery and keys ------------------------------------------------------------------------------


def test_discovery_names_the_issuer_and_its_keys(world: World) -> None:
    response = requests.get(f"{issuer_of(world)}/.well-known/openid-configuration", timeout=30)
    assert response.status_code == 200
    document = response.json()
    assert document["issuer"] == issuer_of(world)
    assert document["jwks_uri"] == f"{world.instance.devops}/_oidc/.well-known/jwks"
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"sub", "aud", "iss", "org_id", "prj_id", "def_id", "run_id"} <= set(document["claims_supported"])


@pytest.mark.parametrize("organization_id", [str(uuid.uuid4()), "not-a-guid", "fabrikam"])
def test_discovery_of_an_unknown_organization_is_404(world: World, organization_id: str) -> None:
    response = requests.get(
        f"{world.instance.devops}/_oidc/{organization_id}/.well-known/openid-configuration", timeout=30
    )
    assert response.status_code == 404


def test_jwks_are_the_issuers_own_keys_with_thumbprint_kids(world: World) -> None:
    keys = devops_jwks(world)["keys"]
    assert keys
    for key in keys:
        assert key["kty"] == "RSA"
        assert key["alg"] == "RS256"
        assert key["use"] == "sig"
        assert key["kid"] == rfc7638_thumbprint(key)
        assert "d" not in key
    identity = requests.get(f"{world.instance.identity}/common/discovery/v2.0/keys", timeout=30).json()
    assert not {k["kid"] for k in keys} & {k["kid"] for k in identity["keys"]}


# --- the token ---------------------------------------------------------------------------------------


def test_oidctoken_returns_a_token_with_azure_devops_claims(world: World) -> None:
    job = start_job(world)
    response = request_token(world, job)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"oidcToken"}
    token = response.json()["oidcToken"]
    claims = verified(world, token)
    assert claims["sub"] == f"sc://{ORG}/{PROJECT}/azure-prod"
    assert claims["aud"] == AUDIENCE
    assert claims["iss"] == issuer_of(world)
    assert claims["nbf"] == claims["iat"] - 600
    assert claims["exp"] == claims["iat"] + 300
    assert abs(claims["iat"] - world.instance.clock.timestamp()) < 5
    uuid.UUID(claims["jti"])
    assert claims["org_id"] == world.organization_id
    assert claims["prj_id"] == world.project_id
    assert claims["def_id"] == str(world.pipeline_id)
    assert claims["rpo_id"] == world.repository_id
    assert claims["rpo_uri"] == f"{world.instance.devops}/{ORG}/{PROJECT}/_git/{REPO}"
    assert claims["rpo_ref"] == "refs/heads/main"
    assert claims["rpo_ver"] == "0123456789abcdef0123456789abcdef01234567"
    assert claims["run_id"] == str(job.run_id)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] in {k["kid"] for k in devops_jwks(world)["keys"]}
    second = verified(world, request_token(world, job).json()["oidcToken"])
    assert second["jti"] != claims["jti"]


def test_oidctoken_accepts_an_empty_json_object_and_the_project_name(world: World) -> None:
    job = start_job(world)
    assert request_token(world, job, body=b"{}").status_code == 200
    assert request_token(world, job, body=b'{"audience": "x"}').status_code == 200
    assert request_token(world, job, uri=job.uri(world, project=PROJECT.lower())).status_code == 200


def test_oidctoken_accepts_the_job_token_as_a_basic_password(world: World) -> None:
    job = start_job(world)
    basic = "Basic " + base64.b64encode(f"build:{job.token}".encode()).decode()
    assert request_token(world, job, authorization=basic).status_code == 200


def test_without_a_service_connection_the_subject_is_the_pipelines(world: World) -> None:
    job = start_job(world)
    response = request_token(world, job, connection=None)
    assert response.status_code == 200, response.text
    assert verified(world, response.json()["oidcToken"])["sub"] == f"p://{ORG}/{PROJECT}/deploy"


def test_an_all_pipelines_connection_serves_every_pipeline_of_its_project(world: World) -> None:
    runtime = world.instance.runtime
    with runtime.db.unit_of_work() as session:
        ConnectionService(session, runtime.clock).set_all_pipelines(
            world.project_id, "azure-unauthorized", True
        )
    try:
        job = start_job(world, world.other_pipeline_id)
        assert request_token(world, job, "azure-unauthorized").status_code == 200
    finally:
        from entryway.store.models import ServiceConnectionRow

        with runtime.db.unit_of_work() as session:
            row = session.get(ServiceConnectionRow, world.connections["azure-unauthorized"])
            assert row is not None
            row.all_pipelines = False


# --- refusals ----------------------------------------------------------------------------------------


def assert_unauthorized(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert "oidcToken" not in response.text
    assert any(
        h.startswith("Bearer authorization_uri=") for h in response.headers["WWW-Authenticate"].split(", ")
    )


def assert_not_found(response: requests.Response, type_key: str | None = None) -> None:
    assert response.status_code == 404, response.text
    assert "oidcToken" not in response.text
    if type_key is not None:
        assert response.json()["typeKey"] == type_key


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Bearer ",
        "Bearer ewjt_notatoken",
        "Bearer " + "ewjt_" + "A" * 46,
        "Basic " + base64.b64encode(b"build:").decode(),
        "Basic !!!",
        "Negotiate abc",
    ],
)
def test_oidctoken_without_a_valid_job_token_is_401(world: World, authorization: str) -> None:
    job = start_job(world)
    assert_unauthorized(request_token(world, job, authorization=authorization))


def test_oidctoken_with_an_entra_token_is_401(world: World) -> None:
    job = start_job(world)
    assert_unauthorized(request_token(world, job, authorization=f"Bearer {build_bot_token(world)}"))


def test_oidctoken_with_an_expired_job_token_is_401(world: World) -> None:
    job = start_job(world, lifetime=timedelta(minutes=1))
    assert request_token(world, job).status_code == 200
    world.instance.clock.advance(timedelta(minutes=1, seconds=1))
    assert_unauthorized(request_token(world, job))


def test_oidctoken_after_the_job_ended_is_401(world: World) -> None:
    job = start_job(world)
    assert request_token(world, job).status_code == 200
    end_job(world, job)
    assert_unauthorized(request_token(world, job))


def test_oidctoken_in_another_organization_is_401(world: World) -> None:
    job = start_job(world)
    assert_unauthorized(request_token(world, job, uri=job.uri(world, org="northwind")))


def test_oidctoken_for_another_project_plan_or_job_is_404(world: World) -> None:
    job = start_job(world)
    other = start_job(world)
    uris = [
        job.uri(world, project=world.other_project_id),
        job.uri(world, project=OTHER_PROJECT),
        job.uri(world, project=str(uuid.uuid4())),
        job.uri(world).replace(job.plan_id, other.plan_id),
        job.uri(world).replace(job.job_id, other.job_id),
    ]
    for uri in uris:
        assert_not_found(request_token(world, job, uri=uri))


@pytest.mark.parametrize(
    "connection_id",
    [
        "azure-unauthorized",  # of the project, not authorized for the pipeline
        "elsewhere-conn",  # of another project, open to all of its pipelines
        "00000000-0000-0000-0000-000000000000",  # no such connection
        "not-a-guid",
    ],
)
def test_oidctoken_for_a_connection_the_pipeline_may_not_use_is_404(world: World, connection_id: str) -> None:
    job = start_job(world)
    assert_not_found(request_token(world, job, connection=connection_id), "ServiceEndpointNotFoundException")


def test_oidctoken_asks_for_a_connection_by_id_never_by_name(world: World) -> None:
    job = start_job(world)
    uri = f"{job.uri(world)}?serviceConnectionId=azure-prod"
    assert_not_found(request_token(world, job, connection=None, uri=uri), "ServiceEndpointNotFoundException")


@pytest.mark.parametrize(
    ("api_version", "type_key"),
    [
        (None, "VssVersionNotSpecifiedException"),
        ("seven", "VssInvalidApiVersionException"),
        ("99.0", "VssVersionOutOfRangeException"),
    ],
)
def test_oidctoken_with_a_bad_api_version_is_400(
    world: World, api_version: str | None, type_key: str
) -> None:
    job = start_job(world)
    response = request_token(world, job, api_version=api_version)
    assert response.status_code == 400
    assert response.json()["typeKey"] == type_key


@pytest.mark.parametrize("body", [b"[]", b"not json", b'{"a": 1}', b'"x"', b"{" * 20000])
def test_oidctoken_with_a_body_that_is_not_a_string_map_is_400(world: World, body: bytes) -> None:
    job = start_job(world)
    response = request_token(world, job, body=body)
    assert response.status_code == 400, response.text
    assert response.json()["typeKey"] == "ArgumentException"


# --- the exchange at the identity platform -----------------------------------------------------------


def test_azure_pipelines_credential_gets_an_entra_token(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = start_job(world)
    monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", job.uri(world))
    credential = AzurePipelinesCredential(
        tenant_id=CONTOSO_TENANT,
        client_id=DEPLOYER_ID,
        service_connection_id=world.connections["azure-prod"],
        system_access_token=job.token,
        authority=world.instance.identity,
    )
    token = credential.get_token(DEVOPS_SCOPE).token
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["appid"] == DEPLOYER_ID
    assert claims["tid"] == CONTOSO_TENANT


def exchange(world: World, assertion: str) -> str:
    credential = ClientAssertionCredential(
        CONTOSO_TENANT, DEPLOYER_ID, lambda: assertion, authority=world.instance.identity
    )
    return credential.get_token(DEVOPS_SCOPE).token


def test_renaming_the_connection_breaks_the_exchange_with_aadsts700213(world: World) -> None:
    runtime = world.instance.runtime
    job = start_job(world)
    assert exchange(world, request_token(world, job, "azure-renamed").json()["oidcToken"])
    with runtime.db.unit_of_work() as session:
        ConnectionService(session, runtime.clock).rename(world.project_id, "azure-renamed", "azure-renamed-2")
    token = request_token(world, job, "azure-renamed").json()["oidcToken"]
    assert verified(world, token)["sub"] == f"sc://{ORG}/{PROJECT}/azure-renamed-2"
    with pytest.raises(ClientAuthenticationError, match="AADSTS700213"):
        exchange(world, token)
    # Re-applying the config sets the federated credential to the new subject (same credential, by id).
    with runtime.db.read() as session:
        fics = DirectoryService(session, runtime.clock, runtime.digester).list_federated_credentials(
            DEPLOYER_ID
        )
        names = [f.name for f in fics]
    assert names.count(f"sc-{world.connections['azure-renamed']}") == 1


def test_the_federated_credential_made_for_a_connection(world: World) -> None:
    runtime = world.instance.runtime
    with runtime.db.read() as session:
        connection = ConnectionService(session, runtime.clock).get(world.project_id, "azure-prod")
        fics = DirectoryService(session, runtime.clock, runtime.digester).list_federated_credentials(
            DEPLOYER_ID
        )
    fic = next(f for f in fics if f.name == federated_credential_name(connection))
    assert fic.issuer == issuer_of(world)
    assert fic.subject == f"sc://{ORG}/{PROJECT}/azure-prod"
    assert list(fic.audiences) == [AUDIENCE]


def test_rotation_keeps_the_old_key_published_and_tokens_exchangeable(world: World) -> None:
    runtime = world.instance.runtime
    identity_keys = {k["kid"] for k in runtime.keyring.jwks()["keys"]}
    job = start_job(world)
    before = request_token(world, job).json()["oidcToken"]
    old_kid = jwt.get_unverified_header(before)["kid"]
    new_kid = runtime.devops_keys.rotate(old_kid)
    world.instance.clock.advance(
        31
    )  # past the keyring's refresh and the identity platform's refetch interval
    published = {k["kid"] for k in devops_jwks(world)["keys"]}
    assert {old_kid, new_kid} <= published
    assert {k["kid"] for k in runtime.keyring.jwks()["keys"]} == identity_keys
    after = request_token(world, job).json()["oidcToken"]
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    assert exchange(world, after)
    assert verified(world, before)["sub"] == verified(world, after)["sub"]


# --- the serviceendpoint REST list -------------------------------------------------------------------


@pytest.fixture(scope="module")
def member_token(world: World) -> str:
    return build_bot_token(world)


def endpoints(world: World, token: str | None, project: str = PROJECT, **params: str) -> requests.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return requests.get(
        f"{world.instance.devops}/{ORG}/{project}/_apis/serviceendpoint/endpoints",
        params={"api-version": "7.1", **params},
        headers=headers,
        timeout=30,
    )


def test_serviceendpoint_list_in_azure_devops_shape(world: World, member_token: str) -> None:
    response = endpoints(world, member_token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["value"])
    prod = next(e for e in body["value"] if e["name"] == "azure-prod")
    assert prod["id"] == world.connections["azure-prod"]
    assert prod["type"] == "azurerm"
    assert prod["authorization"]["scheme"] == "WorkloadIdentityFederation"
    parameters = prod["authorization"]["parameters"]
    assert parameters["tenantid"] == CONTOSO_TENANT
    assert parameters["serviceprincipalid"] == DEPLOYER_ID
    assert parameters["workloadIdentityFederationIssuer"] == issuer_of(world)
    assert parameters["workloadIdentityFederationSubject"] == f"sc://{ORG}/{PROJECT}/azure-prod"
    assert prod["serviceEndpointProjectReferences"][0]["projectReference"]["id"] == world.project_id
    assert prod["isReady"] is True
    assert "elsewhere-conn" not in {e["name"] for e in body["value"]}
    only = endpoints(world, member_token, endpointNames="AZURE-PROD").json()
    assert [e["name"] for e in only["value"]] == ["azure-prod"]
    single = requests.get(
        f"{world.instance.devops}/{ORG}/{PROJECT}/_apis/serviceendpoint/endpoints/{prod['id']}",
        params={"api-version": "7.1"},
        headers={"Authorization": f"Bearer {member_token}"},
        timeout=30,
    )
    assert single.status_code == 200
    assert single.json()["id"] == prod["id"]


def test_serviceendpoint_list_is_for_project_members_only(world: World, member_token: str) -> None:
    assert endpoints(world, None).status_code == 401
    # build-bot has no role in the other project, which is private: as if it did not exist.
    assert endpoints(world, member_token, project=OTHER_PROJECT).status_code == 404
    assert endpoints(world, member_token, project="No Such Project").status_code == 404
    job = start_job(world)
    assert endpoints(world, job.token).status_code == 401  # a job token reads no service connections
    unknown = requests.get(
        f"{world.instance.devops}/{ORG}/{PROJECT}/_apis/serviceendpoint/endpoints/{uuid.uuid4()}",
        params={"api-version": "7.1"},
        headers={"Authorization": f"Bearer {member_token}"},
        timeout=30,
    )
    assert unknown.status_code == 404


# --- the config file ---------------------------------------------------------------------------------


def test_reapplying_the_config_changes_nothing(world: World) -> None:
    config = yaml.safe_load(CONNECTIONS_CONFIG)
    project = config["organizations"][0]["projects"][0]
    # (the renaming test renames that one: the file would then declare a new connection)
    project["service_connections"] = [
        c for c in project["service_connections"] if c["name"] != "azure-renamed"
    ]
    assert apply_config(world.instance.runtime, config).created == []


def _connection_config(**entry: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "cfg-conn", "tenant": "contoso.test", "app": "wif-deployer"}
    base.update(entry)
    return {
        "organizations": [
            {
                "name": ORG,
                "tenant": "contoso.test",
                "projects": [{"name": PROJECT, "service_connections": [base]}],
            }
        ]
    }


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"colour": "blue"}, "unknown key(s) colour"),
        ({"managed_identity": "x"}, "exactly one of 'app' or 'managed_identity'"),
        ({"app": None}, "exactly one of 'app' or 'managed_identity'"),
        ({"issuer": "github"}, "'devops' or 'entra'"),
        ({"pipelines": ["no-such-pipeline"]}, "pipeline 'no-such-pipeline' not found"),
        ({"pipelines": ["deploy"], "all_pipelines": True}, "not both"),
        ({"app": "no-such-app"}, "application 'no-such-app' not found"),
        ({"tenant": "nowhere.test"}, "nowhere.test"),
        ({"name": " padded"}, "white space"),
        ({"name": "azure-prod", "app": BUILD_BOT_ID}, "exists with client id"),
    ],
)
def test_config_refusals_name_the_entry(world: World, entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"service_connections\[0\]") as caught:
        apply_config(world.instance.runtime, _connection_config(**entry))
    assert message in str(caught.value)
    with world.instance.runtime.db.read() as session:
        assert (
            ConnectionService(session, world.instance.runtime.clock).find(world.project_id, "cfg-conn")
            is None
        )
