"""What sign-in refuses, each with Entra's code (issue 3, "Tests": refused). The pages are walked over HTTP
the way a person would; the token endpoint is called raw where msal would not send the request (or would
replay a 400 from its own cache)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from tests.conftest import (
    ADA,
    AZURE_CLI_ID,
    BUILD_BOT_ID,
    CONTOSO_TENANT,
    DANA,
    DEVOPS_SCOPE,
    ROPC_TOOL_ID,
    Instance,
    PageParser,
    SignInUser,
    complete_device_login,
    identity_session,
    walk_sign_in,
)
from tests.e2e.flows import (
    assert_delegated_devops_token,
    authorize_over_http,
    connection_data,
    post_token,
    public_client,
)


def assert_token_error(response: requests.Response, error: str, code: int) -> dict[str, Any]:
    assert response.status_code in {400, 401}, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert body["error_description"].startswith(f"AADSTS{code}: "), body
    assert code in body["error_codes"], body
    return body


def redeem(
    instance: Instance, flow: dict[str, Any], code: str, verifier: str | None = None
) -> requests.Response:
    return post_token(
        instance,
        {
            "client_id": AZURE_CLI_ID,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": flow["redirect_uri"],
            "code_verifier": verifier or flow["code_verifier"],
            "scope": " ".join(flow["scope"]),
            "client_info": "1",
        },
    )


def refresh(instance: Instance, refresh_token: str, client_id: str = AZURE_CLI_ID) -> requests.Response:
    return post_token(
        instance,
        {
            "client_id": client_id,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "scope": f"{DEVOPS_SCOPE} offline_access openid profile",
            "client_info": "1",
        },
    )


def sign_in_with_password(instance: Instance, user: SignInUser, password: str) -> str | None:
    """A fresh authorize request; the person types `password`. The AADSTS code the page shows, or None
    when the pages posted a code back to the app."""
    _, _, ended = authorize_over_http(instance, user, password=password)
    if ended.posted_back is not None:
        assert "code" in ended.posted_back, ended.posted_back
        return None
    return ended.error_code


# --- the password ---------------------------------------------------------------------------------------


def test_wrong_password(entryway: Instance) -> None:
    _, _, ended = authorize_over_http(entryway, ADA, password="not-Ada's-password")
    assert ended.posted_back is None
    assert ended.error_code == "AADSTS50126"
    assert any(form.input(id="i0118") for form in ended.page.forms), "the person may try again"


def test_lockout_after_repeated_wrong_passwords_then_cool_down(entryway: Instance) -> None:
    """Entra smart lockout: 10 failures per account and source lock the account for 60 s; while locked even
    the right password is refused (AADSTS50053); after the cool-down it works."""
    codes = [sign_in_with_password(entryway, DANA, f"guess-{n}") for n in range(9)]
    assert codes == ["AADSTS50126"] * 9
    assert sign_in_with_password(entryway, DANA, "guess-9") in {"AADSTS50126", "AADSTS50053"}
    assert sign_in_with_password(entryway, DANA, DANA.password) == "AADSTS50053"
    # ROPC shares the lockout.
    ropc = post_token(entryway, ropc_body(ROPC_TOOL_ID, DANA))
    assert_token_error(ropc, "invalid_grant", 50053)
    entryway.clock.advance(61)
    assert sign_in_with_password(entryway, DANA, DANA.password) is None


# --- the authorization code ------------------------------------------------------------------------------


def test_pkce_verifier_mismatch(entryway: Instance) -> None:
    _, flow, ended = authorize_over_http(entryway, ADA)
    assert ended.posted_back is not None
    assert ended.posted_back["state"] == flow["state"]
    wrong = "W" * 43
    assert_token_error(redeem(entryway, flow, ended.posted_back["code"], wrong), "invalid_grant", 501481)


def test_reused_code_is_refused_and_revokes_what_it_issued(entryway: Instance) -> None:
    app, flow, ended = authorize_over_http(entryway, ADA)
    assert ended.posted_back is not None
    result = app.acquire_token_by_auth_code_flow(flow, ended.posted_back)
    assert "access_token" in result, result
    assert_delegated_devops_token(result["access_token"], ADA)

    assert_token_error(redeem(entryway, flow, ended.posted_back["code"]), "invalid_grant", 54005)
    # The refresh token of the first redemption is revoked with it.
    response = refresh(entryway, result["refresh_token"])
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_grant"


def test_redirect_uri_mismatch_is_an_error_page_not_a_redirect(entryway: Instance) -> None:
    query = {
        "client_id": AZURE_CLI_ID,
        "response_type": "code",
        "redirect_uri": "https://attacker.example/callback",
        "scope": f"{DEVOPS_SCOPE} openid offline_access",
        "state": "s",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "response_mode": "form_post",
    }
    url = f"{entryway.identity}/{CONTOSO_TENANT}/oauth2/v2.0/authorize?{urlencode(query)}"
    response = identity_session(entryway).get(url, allow_redirects=False, timeout=30)
    assert not response.is_redirect
    assert "attacker.example" not in response.headers.get("location", "")
    assert 'action="https://attacker.example' not in response.text
    assert "AADSTS50011" in response.text


def test_prompt_none_without_a_session_posts_login_required_back(entryway: Instance) -> None:
    _, flow, ended = authorize_over_http(entryway, ADA, prompt="none")
    assert ended.posted_back is not None, ended.html
    assert ended.action == flow["redirect_uri"]
    assert ended.posted_back["error"] == "login_required"
    assert ended.posted_back["error_description"].startswith("AADSTS50058: ")
    assert ended.posted_back["state"] == flow["state"]
    assert "code" not in ended.posted_back


# --- refresh tokens ---------------------------------------------------------------------------------------


def test_reused_rotated_refresh_token_revokes_the_family(entryway: Instance) -> None:
    app = public_client(entryway)
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    complete_device_login(entryway, flow["user_code"], ADA)
    first = app.acquire_token_by_device_flow(flow)
    assert "refresh_token" in first, first

    rotated = refresh(entryway, first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"], "rotated on every use"
    assert_delegated_devops_token(second["access_token"], ADA)

    replay = refresh(entryway, first["refresh_token"])
    assert replay.status_code == 400, replay.text
    assert replay.json()["error"] == "invalid_grant"
    newest = refresh(entryway, second["refresh_token"])
    assert newest.status_code == 400, "the whole family is revoked, the newest token too"
    assert newest.json()["error"] == "invalid_grant"


# --- ROPC -------------------------------------------------------------------------------------------------


def ropc_body(client_id: str, user: SignInUser, password: str | None = None) -> dict[str, str]:
    return {
        "client_id": client_id,
        "grant_type": "password",
        "username": user.upn,
        "password": password or user.password,
        "scope": f"{DEVOPS_SCOPE} offline_access openid profile",
        "client_info": "1",
    }


def test_ropc_refused_for_an_app_that_does_not_allow_public_client_flows(entryway: Instance) -> None:
    assert_token_error(post_token(entryway, ropc_body(BUILD_BOT_ID, ADA)), "invalid_client", 7000218)


def test_ropc_for_a_public_client(entryway: Instance) -> None:
    """msal's ROPC asks /common/userrealm on port 443 (the port of the authority is dropped), so the grant
    is sent raw here; the userrealm answer is checked on the identity origin."""
    realm = requests.get(
        f"{entryway.identity}/common/userrealm/{ADA.upn}?api-version=1.0",
        verify=entryway.ca_bundle,
        timeout=30,
    )
    assert realm.status_code == 200, realm.text
    assert realm.json()["account_type"] == "Managed"

    response = post_token(entryway, ropc_body(ROPC_TOOL_ID, ADA))
    assert response.status_code == 200, response.text
    body = response.json()
    assert_delegated_devops_token(body["access_token"], ADA, client_id=ROPC_TOOL_ID)
    assert "refresh_token" in body
    assert connection_data(entryway, body["access_token"]).status_code == 200

    wrong = post_token(entryway, ropc_body(ROPC_TOOL_ID, ADA, "not-Ada's-password"))
    assert_token_error(wrong, "invalid_grant", 50126)


def is_confirmation(page: PageParser) -> bool:
    typed = {"otc", "i0116", "i0118", "idTxtBx_SAOTCC_OTC"}
    return any(
        form.button(id="idBtn_Back") and not any(i.get("id") in typed for i in form.inputs)
        for form in page.forms
    )


def test_device_code_declined_on_the_page(entryway: Instance) -> None:
    """The person presses Cancel on the confirmation page: the poll answers authorization_declined."""
    app = public_client(entryway)
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    http = identity_session(entryway)
    page = http.get(f"{entryway.identity}/devicelogin", timeout=30)
    # Walk to the confirmation page (a Cancel button and nothing to type), then press Cancel.
    ended = walk_sign_in(
        http, page, user=ADA, user_code=flow["user_code"], clock=entryway.clock, until=is_confirmation
    )
    form = next(f for f in ended.page.forms if f.button(id="idBtn_Back"))
    cancel = form.button(id="idBtn_Back")
    assert cancel is not None
    data = {**form.hidden(), cancel["name"]: cancel.get("value", "")}
    target = form.action if urlsplit(form.action).scheme else f"{entryway.identity}{form.action}"
    assert http.post(target, data=data, timeout=30).status_code == 200
    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
    assert result.get("error") == "authorization_declined", result
