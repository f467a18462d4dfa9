"""The README's quickstart step 4: the seeded demo user signs in with the Azure CLI's client id through msal's
device flow, and the DevOps service accepts the token in the demo organization."""

from __future__ import annotations

import msal
import requests

from entryway.config.seed import DEMO_DOMAIN, DEMO_ORG, DEMO_USER_NAME
from entryway.identity.directory.first_party import AZURE_CLI
from tests.conftest import DEVOPS_SCOPE, Instance, SignInUser, complete_device_login


def test_demo_user_signs_in_with_the_azure_cli_client_id(entryway: Instance) -> None:
    demo = entryway.demo
    assert demo.user_password is not None
    app = msal.PublicClientApplication(
        AZURE_CLI.app_id, authority=f"{entryway.identity}/{DEMO_DOMAIN}", instance_discovery=False
    )
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    assert flow["verification_uri"] == f"{entryway.identity}/devicelogin", flow
    user = SignInUser(demo.user_upn, demo.user_password, DEMO_USER_NAME, mfa=False)
    done = complete_device_login(entryway, flow["user_code"], user)
    assert "AADSTS" not in done.html, done.html
    result = app.acquire_token_by_device_flow(flow)
    assert result["id_token_claims"]["preferred_username"] == demo.user_upn, result
    response = requests.get(
        f"{entryway.devops}/{DEMO_ORG}/_apis/connectionData",
        headers={"Authorization": f"Bearer {result['access_token']}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["authenticatedUser"]["providerDisplayName"] == DEMO_USER_NAME
