"""Managed identities end to end: azure-identity's ManagedIdentityCredential and DefaultAzureCredential, and
msal's ManagedIdentityClient, against Entryway's IMDS- and App Service-compatible endpoints (plain HTTP on
loopback), configured only by their usual environment variables; the tokens at the DevOps service.

The module runs an Entryway of its own: which identities "this host" carries decides what a request that
names none gets, so no other test may add one.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from sqlalchemy import select

from entryway.identity.directory.service import DirectoryService
from entryway.identity.managed.issuance import MANAGED_IDENTITY_TOKEN_LIFETIME_SECONDS
from entryway.kit.clock import ManualClock
from entryway.kit.ids import new_guid
from entryway.store.models import ManagedIdentityRow
from tests.conftest import DEVOPS_RESOURCE, DEVOPS_SCOPE, Instance, start_entryway
from tests.e2e.flows import claims_of

# Every variable that makes azure-identity or msal pick a credential or a managed identity source.
CREDENTIAL_ENV = (
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_TOKEN_CREDENTIALS",
)
IMDS_PATH = "/metadata/identity/oauth2/token"


MI_TENANT = "4e1d2c3b-5a69-4f8e-9d0c-1b2a3f4e5d6c"
MI_ORG = "workloads"


def resource_id_of(name: str, kind: str) -> str:
    """As the portal shows one (mixed case); Azure and Entryway compare them without case."""
    provider = (
        "Microsoft.ManagedIdentity/userAssignedIdentities"
        if kind == "user"
        else "Microsoft.Compute/virtualMachines"
    )
    return f"/subscriptions/{MI_TENANT}/resourceGroups/Workloads/providers/{provider}/{name}"


# The host: a virtual machine with a system-assigned identity, two user-assigned identities attached, and one
# that exists in the directory but is attached elsewhere. All but the outsider are organization members.
MI_CONFIG = f"""\
tenants:
  - id: {MI_TENANT}
    domains: [workloads.test]
    managed_identities:
      - name: build-vm
        kind: system
        resource_id: {resource_id_of("build-vm", "system")}
        on_host: true
      - name: build-identity
        kind: user
        resource_id: {resource_id_of("build-identity", "user")}
        on_host: true
      - name: outsider-identity
        kind: user
        resource_id: {resource_id_of("outsider-identity", "user")}
        on_host: true
      - name: elsewhere-identity
        kind: user
        resource_id: {resource_id_of("elsewhere-identity", "user")}
organizations:
  - name: {MI_ORG}
    tenant: workloads.test
    members:
      - managed_identity: build-vm
        access: basic
      - managed_identity: build-identity
        access: basic
      - managed_identity: elsewhere-identity
        access: basic
"""


@dataclass(frozen=True)
class Identity:
    name: str
    client_id: str
    object_id: str
    resource_id: str  # as declared (mixed case)


def identity_named(instance: Instance, name: str) -> Identity:
    with instance.runtime.db.read() as session:
        row = session.scalars(select(ManagedIdentityRow).where(ManagedIdentityRow.name == name)).one()
        return Identity(name, row.app_id, row.object_id, resource_id_of(name, row.kind))


def set_on_host(instance: Instance, identity: Identity, on_host: bool) -> None:
    runtime = instance.runtime
    with runtime.db.unit_of_work() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        tenant = directory.find_tenant(MI_TENANT)
        directory.set_on_host(directory.find_managed_identity(tenant, identity.name), on_host)


@dataclass(frozen=True)
class Host:
    instance: Instance
    vm: Identity  # system-assigned, on the host, org member
    build: Identity  # user-assigned, on the host, org member
    outsider: Identity  # user-assigned, on the host, not a member
    elsewhere: Identity  # user-assigned, member, not on this host

    @property
    def imds(self) -> str:
        assert self.instance.server.imds_url is not None
        return self.instance.server.imds_url

    @property
    def endpoint(self) -> str:
        assert self.instance.server.identity_endpoint is not None
        return self.instance.server.identity_endpoint

    @property
    def header(self) -> str:
        assert self.instance.server.identity_header is not None
        return self.instance.server.identity_header


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    instance = start_entryway(tmp_path_factory.mktemp("mi-host"), ManualClock(), configs=(MI_CONFIG,))
    yield Host(
        instance,
        vm=identity_named(instance, "build-vm"),
        build=identity_named(instance, "build-identity"),
        outsider=identity_named(instance, "outsider-identity"),
        elsewhere=identity_named(instance, "elsewhere-identity"),
    )
    instance.server.stop()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def imds_env(clean_env: pytest.MonkeyPatch, host: Host) -> pytest.MonkeyPatch:
    clean_env.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", host.imds)
    return clean_env


@pytest.fixture
def app_service_env(clean_env: pytest.MonkeyPatch, host: Host) -> pytest.MonkeyPatch:
    clean_env.setenv("IDENTITY_ENDPOINT", host.endpoint)
    clean_env.setenv("IDENTITY_HEADER", host.header)
    return clean_env


def connection_data(host: Host, token: str) -> requests.Response:
    instance = host.instance
    return requests.get(
        f"{instance.devops}/{MI_ORG}/_apis/connectionData",
        headers={"Authorization": f"Bearer {token}"},
        verify=instance.ca_bundle,
        timeout=30,
    )


def assert_identity_token(host: Host, token: str, identity: Identity) -> dict[str, Any]:
    """An app-only v1 DevOps token about the managed identity, as Entra issues one to IMDS."""
    claims = claims_of(token)
    tenant_id = MI_TENANT
    assert claims["aud"] == DEVOPS_RESOURCE
    assert claims["iss"] == f"{host.instance.identity}/{tenant_id}/"
    assert claims["tid"] == tenant_id
    assert claims["oid"] == claims["sub"] == identity.object_id
    assert claims["appid"] == identity.client_id
    assert claims["appidacr"] == "2"
    assert claims["idtyp"] == "app"
    assert claims["ver"] == "1.0"
    assert claims["xms_mirid"] == identity.resource_id.lower()
    assert "scp" not in claims
    assert claims["exp"] - claims["iat"] == MANAGED_IDENTITY_TOKEN_LIFETIME_SECONDS + 300
    return claims


def assert_accepted(host: Host, token: str, identity: Identity) -> None:
    response = connection_data(host, token)
    assert response.status_code == 200, response.text
    user = response.json()["authenticatedUser"]
    assert user["providerDisplayName"] == identity.name
    assert user["descriptor"].endswith(f"\\{identity.object_id}")


def imds_get(host: Host, headers: dict[str, str] | None = None, **params: str) -> requests.Response:
    query = {"api-version": "2018-02-01", "resource": DEVOPS_RESOURCE, **params}
    return requests.get(
        host.imds + IMDS_PATH,
        params=query,
        headers={"Metadata": "true"} if headers is None else headers,
        timeout=30,
    )


def app_service_get(host: Host, header: str | None = None, **params: str) -> requests.Response:
    query = {"api-version": "2019-08-01", "resource": DEVOPS_RESOURCE, **params}
    headers = {"X-IDENTITY-HEADER": host.header if header is None else header}
    return requests.get(host.endpoint, params=query, headers=headers, timeout=30)


# --- IMDS -------------------------------------------------------------------------------------------------------


def test_imds_system_assigned_token_is_accepted_at_devops(host: Host, imds_env: pytest.MonkeyPatch) -> None:
    token = ManagedIdentityCredential().get_token(DEVOPS_SCOPE).token
    assert_identity_token(host, token, host.vm)
    assert_accepted(host, token, host.vm)


@pytest.mark.parametrize("selector", ["client_id", "object_id", "resource_id"])
def test_imds_user_assigned_by_each_selector(host: Host, imds_env: pytest.MonkeyPatch, selector: str) -> None:
    identity = host.build
    if selector == "client_id":
        credential = ManagedIdentityCredential(client_id=identity.client_id)
    elif selector == "object_id":
        credential = ManagedIdentityCredential(identity_config={"object_id": identity.object_id})
    else:
        # As the portal shows it (mixed case); compared case-insensitively.
        credential = ManagedIdentityCredential(identity_config={"resource_id": identity.resource_id})
    token = credential.get_token(DEVOPS_SCOPE).token
    assert_identity_token(host, token, identity)
    assert_accepted(host, token, identity)


def test_each_issuance_is_in_the_sign_in_log(host: Host, imds_env: pytest.MonkeyPatch) -> None:
    """Managed identities are not under Conditional Access (Entra's workload policies do not cover them), but
    every token they get is logged, as Entra's managed identity sign-ins are."""
    from entryway.store.models import SignInLogRow

    ManagedIdentityCredential(client_id=host.build.client_id).get_token(DEVOPS_SCOPE)
    runtime = host.instance.runtime
    runtime.sign_in_log.flush()
    with runtime.db.read() as session:
        row = session.scalars(
            select(SignInLogRow)
            .where(SignInLogRow.app_id == host.build.client_id)
            .order_by(SignInLogRow.created_at.desc())
        ).first()
        assert row is not None
        assert (row.principal_kind, row.authentication_protocol) == ("managedIdentity", "managedIdentity")
        assert row.service_principal_id == host.build.object_id
        assert row.resource_id == DEVOPS_RESOURCE
        assert (row.error_code, row.ip_address, row.is_interactive) == (0, "127.0.0.1", False)


def test_imds_answer_is_written_as_imds_writes_it(host: Host) -> None:
    response = imds_get(host, client_id=host.build.client_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == [
        "access_token",
        "client_id",
        "expires_in",
        "expires_on",
        "ext_expires_in",
        "not_before",
        "resource",
        "token_type",
    ]
    assert all(isinstance(value, str) for value in body.values())
    claims = claims_of(body["access_token"])
    assert body["client_id"] == host.build.client_id
    assert body["resource"] == DEVOPS_RESOURCE
    assert body["token_type"] == "Bearer"
    assert body["expires_on"] == str(claims["exp"])
    assert body["not_before"] == str(claims["nbf"])
    assert int(body["expires_in"]) == MANAGED_IDENTITY_TOKEN_LIFETIME_SECONDS
    assert body["ext_expires_in"] == body["expires_in"]
    # Later api-versions answer the same way.
    assert imds_get(host, **{"api-version": "2019-08-01"}).status_code == 200


def test_imds_resource_as_identifier_uri_gives_that_audience(host: Host) -> None:
    response = imds_get(host, resource="https://app.vssps.visualstudio.com")
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])["aud"] == "https://app.vssps.visualstudio.com"


def test_default_azure_credential_picks_imds_from_the_environment(
    host: Host, imds_env: pytest.MonkeyPatch
) -> None:
    token = DefaultAzureCredential().get_token(DEVOPS_SCOPE).token
    assert_identity_token(host, token, host.vm)
    # AZURE_CLIENT_ID names the user-assigned identity (the only way DefaultAzureCredential takes one from the
    # environment alone).
    imds_env.setenv("AZURE_CLIENT_ID", host.build.client_id)
    token = DefaultAzureCredential().get_token(DEVOPS_SCOPE).token
    assert_identity_token(host, token, host.build)
    assert_accepted(host, token, host.build)


def test_msal_managed_identity_client_through_imds(host: Host, imds_env: pytest.MonkeyPatch) -> None:
    client = msal.ManagedIdentityClient(
        msal.UserAssignedManagedIdentity(client_id=host.build.client_id), http_client=requests.Session()
    )
    result = client.acquire_token_for_client(resource=DEVOPS_RESOURCE)
    assert "access_token" in result, result
    assert_identity_token(host, result["access_token"], host.build)
    system = msal.ManagedIdentityClient(msal.SystemAssignedManagedIdentity(), http_client=requests.Session())
    result = system.acquire_token_for_client(resource=DEVOPS_RESOURCE)
    assert_identity_token(host, result["access_token"], host.vm)


def test_non_member_identity_token_is_refused_at_devops(host: Host, imds_env: pytest.MonkeyPatch) -> None:
    token = ManagedIdentityCredential(client_id=host.outsider.client_id).get_token(DEVOPS_SCOPE).token
    assert_identity_token(host, token, host.outsider)
    assert connection_data(host, token).status_code == 401


def test_imds_refuses_a_request_without_the_metadata_header(host: Host) -> None:
    for headers in ({}, {"Metadata": "false"}):
        response = imds_get(host, headers=headers)
        assert response.status_code == 400
        assert response.json() == {
            "error": "invalid_request",
            "error_description": "Required metadata header not specified",
        }


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"api-version": ""}, "Required query variable 'api-version' is missing"),
        ({"api-version": "2017-12-01"}, "Invalid 'api-version' requested"),
        ({"api-version": "latest"}, "Invalid 'api-version' requested"),
        ({"resource": ""}, "Required query variable 'resource' is missing"),
    ],
)
def test_imds_refuses_malformed_requests(host: Host, params: dict[str, str], description: str) -> None:
    response = imds_get(host, **params)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": description}


def test_imds_refuses_identities_it_does_not_carry(host: Host, imds_env: pytest.MonkeyPatch) -> None:
    not_found = {"error": "invalid_request", "error_description": "Identity not found"}
    for params in (
        {"client_id": new_guid()},
        {"object_id": new_guid()},
        {"msi_res_id": resource_id_of("nobody", "user")},
        {"client_id": "not-a-guid"},
        # It exists, in the directory, but this host does not carry it.
        {"client_id": host.elsewhere.client_id},
    ):
        response = imds_get(host, **params)
        assert response.status_code == 400, params
        assert response.json() == not_found
    # azure-identity reads a 400 as "no such identity here".
    with pytest.raises(ClientAuthenticationError, match="Identity not found"):
        ManagedIdentityCredential(client_id=host.elsewhere.client_id).get_token(DEVOPS_SCOPE)


def test_imds_refuses_an_unknown_resource_with_entras_error(host: Host, imds_env: pytest.MonkeyPatch) -> None:
    response = imds_get(host, resource="https://nothing.example")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_resource"
    assert body["error_codes"] == [500011]
    assert body["error_description"].startswith(
        "AADSTS500011: The resource principal named https://nothing.example"
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS500011"):
        ManagedIdentityCredential().get_token("https://nothing.example/.default")


def test_imds_default_identity_without_a_system_assigned_one(host: Host) -> None:
    """No system-assigned identity: IMDS uses the one user-assigned identity, and refuses to guess among
    several."""
    set_on_host(host.instance, host.vm, False)
    set_on_host(host.instance, host.outsider, False)
    try:
        response = imds_get(host)
        assert response.status_code == 200, response.text
        assert response.json()["client_id"] == host.build.client_id
        set_on_host(host.instance, host.outsider, True)
        response = imds_get(host)
        assert response.status_code == 400
        assert response.json() == {
            "error": "invalid_request",
            "error_description": "Multiple user assigned identities exist, please specify the clientId / "
            "resourceId of the identity in the token request",
        }
        set_on_host(host.instance, host.build, False)
        set_on_host(host.instance, host.outsider, False)
        assert imds_get(host).json() == {
            "error": "invalid_request",
            "error_description": "Identity not found",
        }
    finally:
        for identity in (host.vm, host.build, host.outsider):
            set_on_host(host.instance, identity, True)


# --- App Service ------------------------------------------------------------------------------------------------


def test_app_service_system_assigned(host: Host, app_service_env: pytest.MonkeyPatch) -> None:
    token = ManagedIdentityCredential().get_token(DEVOPS_SCOPE).token
    assert_identity_token(host, token, host.vm)
    assert_accepted(host, token, host.vm)


@pytest.mark.parametrize("selector", ["client_id", "object_id", "resource_id"])
def test_app_service_user_assigned_by_each_selector(
    host: Host, app_service_env: pytest.MonkeyPatch, selector: str
) -> None:
    identity = host.build
    if selector == "client_id":
        credential = ManagedIdentityCredential(client_id=identity.client_id)
    elif selector == "object_id":
        credential = ManagedIdentityCredential(identity_config={"object_id": identity.object_id})
    else:
        credential = ManagedIdentityCredential(identity_config={"resource_id": identity.resource_id})
    token = credential.get_token(DEVOPS_SCOPE).token
    assert_identity_token(host, token, identity)
    assert_accepted(host, token, identity)


def test_app_service_answer_and_principal_id(host: Host) -> None:
    response = app_service_get(host, principal_id=host.build.object_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["access_token", "expires_on", "resource", "token_type", "client_id"]
    assert body["expires_on"] == str(claims_of(body["access_token"])["exp"])
    assert body["client_id"] == host.build.client_id
    assert body["resource"] == DEVOPS_RESOURCE
    # The published URL, and the form App Service writes it in (a trailing slash).
    assert app_service_get(host, client_id=host.build.client_id).status_code == 200
    slash = requests.get(
        host.endpoint + "/",
        params={"api-version": "2019-08-01", "resource": DEVOPS_RESOURCE},
        headers={"X-IDENTITY-HEADER": host.header},
        timeout=30,
    )
    assert slash.status_code == 200


def test_default_azure_credential_picks_app_service_from_the_environment(
    host: Host, app_service_env: pytest.MonkeyPatch
) -> None:
    token = DefaultAzureCredential().get_token(DEVOPS_SCOPE).token
    assert_identity_token(host, token, host.vm)
    assert_accepted(host, token, host.vm)


def test_app_service_refuses_a_wrong_or_missing_identity_header(
    host: Host, clean_env: pytest.MonkeyPatch
) -> None:
    for header in ("", "wrong", host.header[:-1], host.header + "x"):
        response = app_service_get(host, header=header)
        assert response.status_code == 401, header
        body = response.json()
        assert body["statusCode"] == 401
        assert body["correlationId"] == response.headers["X-CORRELATION-ID"]
        assert "access_token" not in body
    missing = requests.get(
        host.endpoint, params={"api-version": "2019-08-01", "resource": DEVOPS_RESOURCE}, timeout=30
    )
    assert missing.status_code == 401
    clean_env.setenv("IDENTITY_ENDPOINT", host.endpoint)
    clean_env.setenv("IDENTITY_HEADER", "not-the-header")
    with pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential().get_token(DEVOPS_SCOPE)


def test_app_service_refuses_identities_it_does_not_carry(host: Host) -> None:
    for params in (
        {"client_id": new_guid()},
        {"mi_res_id": resource_id_of("nobody", "user")},
        {"client_id": host.elsewhere.client_id},
    ):
        response = app_service_get(host, **params)
        assert response.status_code == 400, params
        assert response.json()["message"] == "Unable to load the proper Managed Identity."


def test_app_service_refuses_malformed_requests_and_unknown_resources(host: Host) -> None:
    assert app_service_get(host, **{"api-version": "2017-09-01"}).status_code == 400
    assert app_service_get(host, resource="").status_code == 400
    response = app_service_get(host, resource="https://nothing.example")
    assert response.status_code == 500
    assert response.json()["message"] == "An unexpected error occured while fetching the AAD Token."


# --- the shared instance -----------------------------------------------------------------------------------------


def test_shared_instance_serves_the_endpoints_on_loopback(entryway: Instance) -> None:
    """The session's Entryway serves both endpoints too (plain HTTP, 127.0.0.1); a probe without the
    Metadata header gets IMDS's 400, which is all DefaultAzureCredential's probe needs."""
    imds, endpoint = entryway.server.imds_url, entryway.server.identity_endpoint
    assert imds is not None
    assert endpoint is not None
    assert imds.startswith("http://127.0.0.1:")
    assert endpoint.startswith("http://127.0.0.1:")
    probe = requests.get(imds + IMDS_PATH, timeout=30)
    assert probe.status_code == 400
    assert entryway.server.identity_header is not None
    assert entryway.server.identity_header.startswith("ewih_")


def test_identity_header_is_stable_across_restarts(tmp_path: Path) -> None:
    first = start_entryway(tmp_path / "data", ManualClock())
    header = first.server.identity_header
    first.server.stop()
    second = start_entryway(tmp_path / "data", ManualClock())
    try:
        assert second.server.identity_header == header
    finally:
        second.server.stop()


# --- worker processes --------------------------------------------------------------------------------------------

WORKERS_SCRIPT = """\
import json, sys
from pathlib import Path

import yaml

from entryway.config.declarative import apply_config
from entryway.config.settings import Settings
from entryway.server import EntrywayServer

settings = Settings(
    data_dir=Path(sys.argv[1]), identity_port=0, devops_port=0, imds_port=0, app_service_port=0, workers=2
)
server = EntrywayServer(settings)
runtime = server.prepare()
apply_config(runtime, yaml.safe_load(sys.stdin.read()))
print(json.dumps([server.imds_url, server.identity_endpoint, server.identity_header]), flush=True)
server.serve_forever()
"""


def test_worker_processes_serve_the_managed_identity_endpoints(tmp_path: Path) -> None:
    """With worker processes every worker listens on the managed identity ports too (SO_REUSEPORT)."""
    process = subprocess.Popen(
        [sys.executable, "-c", WORKERS_SCRIPT, str(tmp_path / "data")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(MI_CONFIG)
        process.stdin.close()
        imds, endpoint, header = json.loads(process.stdout.readline())
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(imds + IMDS_PATH, timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the workers did not start"
                time.sleep(0.2)
        query = {"api-version": "2018-02-01", "resource": DEVOPS_RESOURCE}
        for _ in range(8):  # new connections each time: spread over the workers
            response = requests.get(imds + IMDS_PATH, params=query, headers={"Metadata": "true"}, timeout=30)
            assert response.status_code == 200, response.text
            assert claims_of(response.json()["access_token"])["tid"] == MI_TENANT
            response = requests.get(
                endpoint,
                params={**query, "api-version": "2019-08-01"},
                headers={"X-IDENTITY-HEADER": header},
                timeout=30,
            )
            assert response.status_code == 200, response.text
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
            if process.stdout is not None:
                process.stdout.close()
