"""On-behalf-of: a middle-tier API exchanges the user's token it received for an Azure DevOps token for the
same user, with azure-identity's `OnBehalfOfCredential` unchanged; and the assertions Entra refuses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import requests
from azure.identity import OnBehalfOfCredential

from entryway.identity.directory.first_party import AZURE_CLI, AZURE_DEVOPS
from entryway.identity.directory.service import DirectoryService
from tests.conftest import (
    BUILD_BOT_ID,
    BUILD_BOT_SECRET,
    CONTOSO_TENANT,
    DEVOPS_SCOPE,
    Instance,
)

ADA = ("ada@contoso.test", "Ada-Signs-In-0042")
CHEN = ("chen@contoso.test", "Chen-No-Org-0042")
API_URI = "api://contoso-obo-api"


@dataclass(frozen=True)
class MiddleTier:
    app_id: str
    secret: str


@pytest.fixture(scope="module")
def middle_tier(entryway: Instance) -> MiddleTier:
    """An API that exposes `access_as_user`, which the Azure CLI may ask for, and may itself call Azure DevOps
    on behalf of its users (both by admin consent)."""
    runtime = entryway.runtime
    with runtime.db.unit_of_work() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        tenant = directory.find_tenant(CONTOSO_TENANT)
        api, _ = directory.create_application(
            tenant,
            "contoso-obo-api",
            identifier_uris=[API_URI],
            app_roles=["Tasks.Read"],
            scopes=["access_as_user"],
        )
        secret = directory.add_client_secret(api)
        directory.grant_admin_consent(
            tenant, directory.find_enterprise_app(tenant, AZURE_CLI.app_id), api, ["access_as_user"]
        )
        directory.grant_admin_consent(
            tenant, api, directory.find_enterprise_app(tenant, AZURE_DEVOPS.app_id), ["user_impersonation"]
        )
        build_bot = directory.find_application(tenant, BUILD_BOT_ID)
        directory.grant_app_role(tenant, build_bot, api, "Tasks.Read")
        assert secret.value is not None
        return MiddleTier(api.app_id, secret.value)


def token_endpoint(instance: Instance) -> str:
    return f"{instance.identity}/{CONTOSO_TENANT}/oauth2/v2.0/token"


def user_token_for_api(instance: Instance, user: tuple[str, str]) -> str:
    """What the middle tier receives: the user's token, issued for the API (via the Azure CLI, by password)."""
    response = requests.post(
        token_endpoint(instance),
        data={
            "grant_type": "password",
            "client_id": AZURE_CLI.app_id,
            "username": user[0],
            "password": user[1],
            "scope": f"{API_URI}/access_as_user openid profile offline_access",
        },
        verify=instance.ca_bundle,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def obo(instance: Instance, api: MiddleTier, assertion: str) -> requests.Response:
    return requests.post(
        token_endpoint(instance),
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "client_id": api.app_id,
            "client_secret": api.secret,
            "assertion": assertion,
            "requested_token_use": "on_behalf_of",
            "scope": f"{DEVOPS_SCOPE} offline_access openid profile",
        },
        verify=instance.ca_bundle,
        timeout=30,
    )


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def connection_data(instance: Instance, token: str) -> requests.Response:
    return requests.get(
        f"{instance.devops}/fabrikam/_apis/connectionData",
        headers={"Authorization": f"Bearer {token}"},
        verify=instance.ca_bundle,
        timeout=30,
    )


def test_on_behalf_of_credential_gets_a_devops_token_for_the_same_user(
    entryway: Instance, middle_tier: MiddleTier
) -> None:
    incoming = user_token_for_api(entryway, ADA)
    assert claims_of(incoming)["aud"] == API_URI
    credential = OnBehalfOfCredential(
        tenant_id=CONTOSO_TENANT,
        client_id=middle_tier.app_id,
        client_secret=middle_tier.secret,
        user_assertion=incoming,
        authority=entryway.identity,
        disable_instance_discovery=True,
    )
    access = credential.get_token(DEVOPS_SCOPE)
    claims = claims_of(access.token)
    assert claims["aud"] == AZURE_DEVOPS.app_id
    assert claims["upn"] == ADA[0]
    assert claims["oid"] == claims_of(incoming)["oid"]
    assert claims["appid"] == middle_tier.app_id
    assert claims["appidacr"] == "1"
    assert claims["scp"] == "user_impersonation"
    assert claims["amr"] == ["pwd"]

    response = connection_data(entryway, access.token)
    assert response.status_code == 200, response.text
    assert response.json()["authenticatedUser"]["properties"]["Account"]["$value"] == ADA[0]


def test_a_non_members_exchanged_token_is_refused_by_devops(
    entryway: Instance, middle_tier: MiddleTier
) -> None:
    response = obo(entryway, middle_tier, user_token_for_api(entryway, CHEN))
    assert response.status_code == 200, response.text
    assert connection_data(entryway, response.json()["access_token"]).status_code == 401


def expect_error(response: requests.Response, code: int, error: str = "invalid_grant") -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]


def test_an_app_only_assertion_is_refused(entryway: Instance, middle_tier: MiddleTier) -> None:
    app_only = requests.post(
        token_endpoint(entryway),
        data={
            "grant_type": "client_credentials",
            "client_id": BUILD_BOT_ID,
            "client_secret": BUILD_BOT_SECRET,
            "scope": f"{API_URI}/.default",
        },
        verify=entryway.ca_bundle,
        timeout=30,
    ).json()["access_token"]
    assert claims_of(app_only)["idtyp"] == "app"
    expect_error(obo(entryway, middle_tier, app_only), 50013)


def test_an_assertion_for_another_audience_is_refused(entryway: Instance, middle_tier: MiddleTier) -> None:
    devops_token = requests.post(
        token_endpoint(entryway),
        data={
            "grant_type": "password",
            "client_id": AZURE_CLI.app_id,
            "username": ADA[0],
            "password": ADA[1],
            "scope": DEVOPS_SCOPE,
        },
        verify=entryway.ca_bundle,
        timeout=30,
    ).json()["access_token"]
    response = obo(entryway, middle_tier, devops_token)
    expect_error(response, 50013)
    assert AZURE_DEVOPS.app_id in response.json()["error_description"]


def test_a_forged_assertion_is_refused(entryway: Instance, middle_tier: MiddleTier) -> None:
    incoming = user_token_for_api(entryway, ADA)
    header, payload, signature = incoming.split(".")
    forged = ".".join([header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")])
    expect_error(obo(entryway, middle_tier, forged), 50013)
    expect_error(obo(entryway, middle_tier, "not-a-jwt"), 50013)


def test_an_expired_assertion_is_refused(entryway: Instance, middle_tier: MiddleTier) -> None:
    incoming = user_token_for_api(entryway, ADA)
    entryway.clock.advance(3601)
    expect_error(obo(entryway, middle_tier, incoming), 500133)


def test_the_middle_tier_must_authenticate(entryway: Instance, middle_tier: MiddleTier) -> None:
    response = requests.post(
        token_endpoint(entryway),
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "client_id": middle_tier.app_id,
            "assertion": user_token_for_api(entryway, ADA),
            "requested_token_use": "on_behalf_of",
            "scope": DEVOPS_SCOPE,
        },
        verify=entryway.ca_bundle,
        timeout=30,
    )
    assert response.status_code == 401, response.text
    assert response.json()["error_codes"] == [7000218]
