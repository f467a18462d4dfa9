"""The foundation's promise: unmodified msal and azure-identity get tokens, and the DevOps service
accepts them (issue 2, "What a user does")."""

from __future__ import annotations

import time

import jwt
import msal
import requests
from azure.identity import ClientSecretCredential

from tests.conftest import DEVOPS_RESOURCE, DEVOPS_SCOPE, Instance


def connection_data(instance: Instance, org: str, token: str) -> requests.Response:
    return requests.get(
        f"{instance.devops}/{org}/_apis/connectionData",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_msal_client_credentials_token_is_accepted_by_connection_data(entryway: Instance) -> None:
    demo = entryway.demo
    app = msal.ConfidentialClientApplication(
        demo.client_id,
        client_credential=demo.client_secret,
        authority=entryway.authority(demo.tenant_id),
        instance_discovery=False,
    )
    result = app.acquire_token_for_client([DEVOPS_SCOPE])
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer"
    assert isinstance(result["expires_in"], int)
    assert 3500 <= result["expires_in"] <= 3600

    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == DEVOPS_RESOURCE
    assert claims["iss"] == f"{entryway.identity}/{demo.tenant_id}/"
    assert claims["tid"] == demo.tenant_id
    assert claims["appid"] == demo.client_id
    assert claims["appidacr"] == "1"
    assert claims["idtyp"] == "app"
    assert claims["ver"] == "1.0"
    assert claims["sub"] == claims["oid"]
    for name in ("iat", "nbf", "exp", "uti", "aio", "rh", "idp"):
        assert name in claims

    response = connection_data(entryway, demo.organization, result["access_token"])
    assert response.status_code == 200, response.text
    body = response.json()
    user = body["authenticatedUser"]
    assert body["authorizedUser"] == user
    assert user["descriptor"] == (
        f"Microsoft.VisualStudio.Services.Claims.AadServicePrincipal;{demo.tenant_id}\\{claims['oid']}"
    )
    assert user["properties"]["Account"]["$value"] == demo.client_id
    assert body["deploymentType"] == "hosted"
    assert body["locationServiceData"]["serviceOwner"] == "00025394-6065-48ca-87d9-7f5672854ef7"


def test_azure_identity_client_secret_credential(entryway: Instance) -> None:
    demo = entryway.demo
    credential = ClientSecretCredential(
        demo.tenant_id,
        demo.client_id,
        demo.client_secret,
        authority=entryway.identity,
        disable_instance_discovery=True,
    )
    token = credential.get_token(DEVOPS_SCOPE)
    assert token.expires_on > time.time() + 3000
    response = connection_data(entryway, demo.organization, token.token)
    assert response.status_code == 200, response.text
    assert response.json()["authenticatedUser"]["providerDisplayName"] == "entryway-demo"
