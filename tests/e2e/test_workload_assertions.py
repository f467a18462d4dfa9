"""Workload identities with the real clients, unchanged: azure-identity CertificateCredential (PEM and
password-protected PFX), msal with a thumbprint (RS256 + x5t) and with a public certificate (PS256 + x5c),
ClientAssertionCredential, WorkloadIdentityCredential and DefaultAzureCredential from the environment alone
with a token file of an OIDC issuer served over TLS. Their tokens open connectionData for an organization
member and get 401 for a non-member.

These run on an Entryway of their own: msal and azure-identity date their assertions with the wall clock,
and the shared server's clock has been moved hours ahead by other tests by the time these run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import msal
import pytest
import requests
from azure.identity import (
    CertificateCredential,
    ClientAssertionCredential,
    DefaultAzureCredential,
    WorkloadIdentityCredential,
)
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from entryway.kit.clock import ManualClock
from tests.conftest import (
    CONTOSO_TENANT,
    DEVOPS_SCOPE,
    WORKLOAD_BOT_ID,
    WORKLOAD_CONFIG,
    WORKLOAD_OUTSIDER_ID,
    Instance,
    OidcIssuer,
    WorkloadCertificate,
    make_certificate,
    register_certificate,
    register_federated_credential,
    start_entryway,
)

SUBJECT = "system:serviceaccount:deploy:pipeline"
PFX_PASSWORD = "pfx-password-42"
# Variables of other credentials DefaultAzureCredential would try first; none may leak in from the machine.
OTHER_CREDENTIAL_VARIABLES = (
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "IDENTITY_ENDPOINT",
    "MSI_ENDPOINT",
)


class Workload:
    def __init__(self, instance: Instance, bot: WorkloadCertificate, outsider: WorkloadCertificate) -> None:
        self.instance = instance
        self.bot = bot
        self.outsider = outsider


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory, oidc_issuer: OidcIssuer) -> Iterator[Workload]:
    instance = start_entryway(tmp_path_factory.mktemp("workload"), ManualClock(), configs=(WORKLOAD_CONFIG,))
    bot, outsider = make_certificate("workload-bot"), make_certificate("workload-outsider")
    register_certificate(instance, WORKLOAD_BOT_ID, bot)
    register_certificate(instance, WORKLOAD_OUTSIDER_ID, outsider)
    register_federated_credential(
        instance, WORKLOAD_BOT_ID, name="deploy", issuer=oidc_issuer.url, subject=SUBJECT
    )
    yield Workload(instance, bot, outsider)
    instance.server.stop()


@pytest.fixture(autouse=True)
def trust_workload_instance(workload: Workload, monkeypatch: pytest.MonkeyPatch) -> None:
    """requests (under msal and azure-identity) reads its trust store from here."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", workload.instance.ca_bundle)


def connection_data(instance: Instance, token: str) -> requests.Response:
    return requests.get(
        f"{instance.devops}/fabrikam/_apis/connectionData",
        headers={"Authorization": f"Bearer {token}"},
        verify=instance.ca_bundle,
        timeout=30,
    )


def assert_member_token(instance: Instance, token: str, client_id: str = WORKLOAD_BOT_ID) -> None:
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["appid"], claims["appidacr"], claims["tid"]) == (client_id, "2", CONTOSO_TENANT)
    response = connection_data(instance, token)
    assert response.status_code == 200, response.text
    assert response.json()["authenticatedUser"]["properties"]["Account"]["$value"] == client_id


def test_certificate_credential_with_a_pem_file(workload: Workload, tmp_path: Path) -> None:
    pem = tmp_path / "bot.pem"
    pem.write_text(workload.bot.key_pem + workload.bot.cert_pem)
    credential = CertificateCredential(
        CONTOSO_TENANT,
        WORKLOAD_BOT_ID,
        certificate_path=str(pem),
        authority=workload.instance.identity,
        disable_instance_discovery=True,
    )
    assert_member_token(workload.instance, credential.get_token(DEVOPS_SCOPE).token)
    # A second scope: msal sends the assertion it signed for the first request again (it keeps one for nine
    # minutes), which must be accepted.
    assert_member_token(
        workload.instance, credential.get_token("https://app.vssps.visualstudio.com/.default").token
    )


def test_certificate_credential_with_a_password_protected_pfx(workload: Workload, tmp_path: Path) -> None:
    pfx = tmp_path / "bot.pfx"
    pfx.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"workload-bot",
            workload.bot.key,
            workload.bot.cert,
            None,
            BestAvailableEncryption(PFX_PASSWORD.encode()),
        )
    )
    credential = CertificateCredential(
        CONTOSO_TENANT,
        WORKLOAD_BOT_ID,
        certificate_path=str(pfx),
        password=PFX_PASSWORD,
        authority=workload.instance.identity,
        disable_instance_discovery=True,
    )
    assert_member_token(workload.instance, credential.get_token(DEVOPS_SCOPE).token)


@pytest.mark.parametrize("form", ["thumbprint", "public_certificate"])
def test_msal_with_a_certificate(workload: Workload, form: str) -> None:
    """A thumbprint makes msal sign RS256 with x5t; a public certificate, PS256 with x5t#S256 and x5c."""
    certificate = {"private_key": workload.bot.key_pem}
    if form == "thumbprint":
        certificate["thumbprint"] = workload.bot.sha1.hex().upper()
    else:
        certificate["public_certificate"] = workload.bot.cert_pem
    app = msal.ConfidentialClientApplication(
        WORKLOAD_BOT_ID,
        client_credential=certificate,
        authority=workload.instance.authority(CONTOSO_TENANT),
        instance_discovery=False,
    )
    result = app.acquire_token_for_client([DEVOPS_SCOPE])
    assert "access_token" in result, result
    assert_member_token(workload.instance, result["access_token"])


def test_client_assertion_credential(workload: Workload, oidc_issuer: OidcIssuer) -> None:
    credential = ClientAssertionCredential(
        CONTOSO_TENANT,
        WORKLOAD_BOT_ID,
        lambda: oidc_issuer.token(SUBJECT, now=time.time()),
        authority=workload.instance.identity,
    )
    assert_member_token(workload.instance, credential.get_token(DEVOPS_SCOPE).token)


def federated_environment(
    workload: Workload, oidc_issuer: OidcIssuer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What a Kubernetes pod with workload identity gets: a projected token file (ending with a newline, as
    files do) and four variables."""
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(oidc_issuer.token(SUBJECT, now=time.time()) + "\n")
    monkeypatch.setenv("AZURE_TENANT_ID", CONTOSO_TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", WORKLOAD_BOT_ID)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", workload.instance.identity)
    for name in OTHER_CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_workload_identity_credential_from_the_environment(
    workload: Workload, oidc_issuer: OidcIssuer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    federated_environment(workload, oidc_issuer, monkeypatch, tmp_path)
    assert_member_token(workload.instance, WorkloadIdentityCredential().get_token(DEVOPS_SCOPE).token)


def test_default_azure_credential_picks_workload_identity_from_the_environment_alone(
    workload: Workload, oidc_issuer: OidcIssuer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    federated_environment(workload, oidc_issuer, monkeypatch, tmp_path)
    assert_member_token(workload.instance, DefaultAzureCredential().get_token(DEVOPS_SCOPE).token)


def test_token_of_a_non_member_app_is_refused_by_devops(workload: Workload, tmp_path: Path) -> None:
    pem = tmp_path / "outsider.pem"
    pem.write_text(workload.outsider.key_pem + workload.outsider.cert_pem)
    credential = CertificateCredential(
        CONTOSO_TENANT,
        WORKLOAD_OUTSIDER_ID,
        certificate_path=str(pem),
        authority=workload.instance.identity,
        disable_instance_discovery=True,
    )
    token = credential.get_token(DEVOPS_SCOPE).token
    assert jwt.decode(token, options={"verify_signature": False})["appidacr"] == "2"
    assert connection_data(workload.instance, token).status_code == 401


def test_default_azure_credential_with_a_certificate_from_the_environment(
    workload: Workload, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """EnvironmentCredential builds a CertificateCredential from AZURE_CLIENT_CERTIFICATE_PATH. It goes through
    msal, whose instance discovery no variable turns off: the flag is the one line of code it needs."""
    pem = tmp_path / "bot.pem"
    pem.write_text(workload.bot.key_pem + workload.bot.cert_pem)
    for name in (*OTHER_CREDENTIAL_VARIABLES, "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_TENANT_ID", CONTOSO_TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", WORKLOAD_BOT_ID)
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(pem))
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", workload.instance.identity)
    credential = DefaultAzureCredential(disable_instance_discovery=True)
    assert_member_token(workload.instance, credential.get_token(DEVOPS_SCOPE).token)
