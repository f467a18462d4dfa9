"""The device code flow with the real clients (msal, azure-identity), a person completing the device page
over HTTP, and the delegated token at the DevOps service (issue 3, "Tests")."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from azure.identity import DeviceCodeCredential

from tests.conftest import (
    ADA,
    AZURE_CLI_ID,
    BRUNO,
    CHEN,
    CONTOSO_TENANT,
    DEVOPS_SCOPE,
    Instance,
    complete_device_login,
)
from tests.devops.test_token_rejection import assert_challenge
from tests.e2e.flows import (
    assert_delegated_devops_token,
    assert_id_token,
    claims_of,
    connection_data,
    public_client,
)


def test_msal_device_flow_while_msal_polls(entryway: Instance) -> None:
    app = public_client(entryway)
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    assert "user_code" in flow, flow
    assert flow["verification_uri"] == f"{entryway.identity}/devicelogin"
    assert flow["user_code"] in flow["message"]
    assert flow["verification_uri"] in flow["message"]
    assert 1 <= int(flow["interval"]) <= 5
    assert int(flow["expires_in"]) > 60

    with ThreadPoolExecutor(1) as person:
        # The person signs in while msal polls (authorization_pending until they confirm).
        signed_in = person.submit(complete_device_login, entryway, flow["user_code"], ADA)
        result = app.acquire_token_by_device_flow(
            flow, exit_condition=lambda _: signed_in.done() and signed_in.exception() is not None
        )
        done = signed_in.result()
    assert done.posted_back is None
    assert "AADSTS" not in done.html, done.html

    assert "access_token" in result, result
    assert result["token_type"] == "Bearer"
    assert isinstance(result["expires_in"], int)
    assert "refresh_token" in result
    assert set(result["scope"].split()) >= {DEVOPS_SCOPE}, "the scope of /devicecode, remembered"
    access = assert_delegated_devops_token(result["access_token"], ADA)
    ids = assert_id_token(result, ADA)
    assert access["oid"] == ids["oid"]
    assert [account["username"] for account in app.get_accounts()] == [ADA.upn]

    response = connection_data(entryway, result["access_token"])
    assert response.status_code == 200, response.text
    user = response.json()["authenticatedUser"]
    assert user["properties"]["Account"]["$value"] == ADA.upn
    assert user["providerDisplayName"] == ADA.display_name
    assert user["descriptor"] == f"Microsoft.IdentityModel.Claims.ClaimsIdentity;{CONTOSO_TENANT}\\{ADA.upn}"


def test_device_flow_with_mfa(entryway: Instance) -> None:
    """Bruno must do MFA: the device page enrolls him (or asks for his code), and the token says so."""
    app = public_client(entryway)
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    done = complete_device_login(entryway, flow["user_code"], BRUNO)
    assert "AADSTS" not in done.html, done.html
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    assert_delegated_devops_token(result["access_token"], BRUNO, mfa=True)
    assert connection_data(entryway, result["access_token"]).status_code == 200


def test_delegated_token_of_a_user_who_is_not_a_member_is_refused(entryway: Instance) -> None:
    app = public_client(entryway)
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    complete_device_login(entryway, flow["user_code"], CHEN)
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    assert_delegated_devops_token(result["access_token"], CHEN)
    assert_challenge(connection_data(entryway, result["access_token"]), entryway)


def test_azure_identity_device_code_credential(entryway: Instance) -> None:
    prompts: list[tuple[str, str, datetime]] = []

    def prompt(verification_uri: str, user_code: str, expires_on: datetime) -> None:
        # What a person reads on the terminal; they open the page and sign in before the first poll.
        prompts.append((verification_uri, user_code, expires_on))
        complete_device_login(entryway, user_code, ADA, verification_uri=verification_uri)

    credential = DeviceCodeCredential(
        client_id=AZURE_CLI_ID,
        tenant_id=CONTOSO_TENANT,
        authority=entryway.identity,
        disable_instance_discovery=True,
        prompt_callback=prompt,
        timeout=60,
    )
    token = credential.get_token(DEVOPS_SCOPE)
    assert len(prompts) == 1
    assert prompts[0][0] == f"{entryway.identity}/devicelogin"
    assert_delegated_devops_token(token.token, ADA)
    assert token.expires_on > time.time() + 3000, "azure-identity counts expires_in from its own clock"
    assert connection_data(entryway, token.token).status_code == 200
    # The second call is served from the cache: no new prompt.
    assert credential.get_token(DEVOPS_SCOPE).token == token.token
    assert len(prompts) == 1


def test_expired_device_code(entryway: Instance) -> None:
    """Nobody signs in; once the shared clock passes expires_in the poll answers expired_token, and the
    code is no use on the device page any more."""
    app = public_client(entryway)
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    entryway.clock.advance(int(flow["expires_in"]) + 1)
    result: dict[str, Any] = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
    assert result.get("error") == "expired_token", result
    assert result["error_description"].startswith("AADSTS70019: "), result
    late = complete_device_login(entryway, flow["user_code"], ADA)
    assert late.posted_back is None
    assert "AADSTS" in late.html or "expired" in late.html.lower()


def test_device_flow_token_claims_follow_the_shared_clock(entryway: Instance) -> None:
    # Two hours on, more than a token's lifetime: a token dated by the real clock would be expired already.
    entryway.clock.advance(2 * 3600)
    app = public_client(entryway)
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    complete_device_login(entryway, flow["user_code"], ADA)
    now = entryway.clock.timestamp()
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    claims = claims_of(result["access_token"])
    assert abs(claims["exp"] - (now + result["expires_in"])) < 30
