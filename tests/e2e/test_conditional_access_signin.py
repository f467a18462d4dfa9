"""Conditional Access on the sign-in pages: a policy's MFA grant steps the browser up to the TOTP page (after
enrollment when the user has no authenticator), a block policy shows Entra's page and the app receives
access_denied / AADSTS53003, report-only policies are recorded and never enforced, sign-in frequency asks for
the password again, silent requests (prompt=none) get Entra's errors, and a claims challenge's `nbf` after the
session's sign-in needs fresh credentials. Every sign-in lands in the sign-in log with each policy's result.

Everything runs in this module's own tenant, stepup.test; its policies name their users one by one, so each
test's user meets exactly the policy the test is about. Real Chromium (the shared `browser`), msal, requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
import msal
import pytest
import requests
import yaml
from playwright.sync_api import Browser, Page
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from entryway.cli.main import app as cli
from entryway.config.declarative import apply_config
from entryway.identity.directory.first_party import AZURE_CLI, AZURE_DEVOPS
from entryway.identity.signin.log import SignInRecord
from entryway.store.models import (
    BrowserSessionRow,
    ConditionalAccessPolicyRow,
    DeviceCodeRow,
    SignInLogRow,
    UserRow,
)
from tests.conftest import (
    CONTOSO_TENANT,
    DEVOPS_SCOPE,
    TOTP_SECRETS,
    Instance,
    SignInUser,
    complete_device_login,
    identity_session,
    parse_page,
    totp_code,
    walk_sign_in,
)
from tests.e2e.flows import loopback_redirect

STEPUP_TENANT = "3f6b2d4e-8a1c-4e5f-9b7d-2c4e6a8b0d13"
PASSWORD = "Stepup-Test-Password-0042"
PRIMARY = "#idSIButton9"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
REDIRECT_URI = "http://localhost"

USERS = ("mia", "noah", "bea", "remy", "sid", "pia", "dev", "olga")


def person(name: str) -> SignInUser:
    return SignInUser(f"{name}@stepup.test", PASSWORD, name.title(), mfa=name in {"mia", "dev", "pia"})


@dataclass(frozen=True)
class Stepup:
    tenant_id: str
    user_ids: dict[str, str]
    policy_ids: dict[str, str]


LOG_READER_BOT = ("9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d", "log-reader-secret-0123456789abcdefghijkl")
POLICY_BOT = ("0b2c3d4e-5f6a-4b7c-9d8e-1f2a3b4c5d6e", "policy-bot-secret-0123456789abcdefghijklm")
_USER_LINES = "".join(
    f'      - {{upn: {name}@stepup.test, password: "{PASSWORD}", display_name: {name.title()}}}\n'
    for name in USERS
)
STEPUP_CONFIG = f"""\
tenants:
  - id: {STEPUP_TENANT}
    domains: [stepup.test]
    display_name: Stepup
    users:
{_USER_LINES}\
      - {{upn: auditor@stepup.test, password: "{PASSWORD}", roles: [Security Reader]}}
      - {{upn: ga@stepup.test, password: "{PASSWORD}", roles: [Global Administrator]}}
    apps:
      - name: log-reader
        client_id: {LOG_READER_BOT[0]}
        secrets: [{{value: "{LOG_READER_BOT[1]}"}}]
        grants: [{{resource: Microsoft Graph, roles: [AuditLog.Read.All]}}]
      - name: policy-only-bot
        client_id: {POLICY_BOT[0]}
        secrets: [{{value: "{POLICY_BOT[1]}"}}]
        grants: [{{resource: Microsoft Graph, roles: [Policy.Read.All]}}]
    conditional_access:
      policies:
        - name: Require MFA for Azure DevOps
          users: [mia@stepup.test, dev@stepup.test, pia@stepup.test]
          applications: [Azure DevOps]
          grant: mfa
        - name: Block Bea outside Graph
          users: [bea@stepup.test]
          applications: [All]
          exclude_applications: [Microsoft Graph]
          grant: block
        - name: MFA for Remy (report-only)
          state: report-only
          users: [remy@stepup.test]
          applications: [All]
          grant: mfa
        - name: Sid signs in every hour
          users: [sid@stepup.test]
          applications: [All]
          sign_in_frequency: 1h
"""
POLICY_NAMES = {
    "mfa": "Require MFA for Azure DevOps",
    "block": "Block Bea outside Graph",
    "report": "MFA for Remy (report-only)",
    "sif": "Sid signs in every hour",
}


@pytest.fixture(scope="module")
def stepup(entryway: Instance) -> Stepup:
    apply_config(entryway.runtime, yaml.safe_load(STEPUP_CONFIG), source="test_conditional_access_signin")
    with entryway.runtime.db.read() as session:
        users = dict(
            session.execute(
                select(UserRow.user_principal_name, UserRow.object_id).where(
                    UserRow.tenant_id == STEPUP_TENANT
                )
            ).all()
        )
        policies = dict(
            session.execute(
                select(ConditionalAccessPolicyRow.display_name, ConditionalAccessPolicyRow.id).where(
                    ConditionalAccessPolicyRow.tenant_id == STEPUP_TENANT
                )
            ).all()
        )
    return Stepup(
        STEPUP_TENANT,
        {upn.partition("@")[0]: oid for upn, oid in users.items()},
        {key: policies[name] for key, name in POLICY_NAMES.items()},
    )


# --- helpers -----------------------------------------------------------------------------------------------


def msal_app(instance: Instance) -> Any:
    return msal.PublicClientApplication(
        AZURE_CLI.app_id, authority=instance.authority(STEPUP_TENANT), instance_discovery=False
    )


def log_rows(instance: Instance, name: str, *, interactive: bool = True) -> list[SignInLogRow]:
    instance.runtime.sign_in_log.flush()
    with instance.runtime.db.read() as session:
        return list(
            session.scalars(
                select(SignInLogRow)
                .where(
                    SignInLogRow.user_principal_name == f"{name}@stepup.test",
                    SignInLogRow.is_interactive == interactive,
                )
                .order_by(SignInLogRow.created_at)
            )
        )


def policy_result(row: SignInLogRow, policy_id: str) -> str:
    (found,) = [p for p in row.applied_policies if p["id"] == policy_id]
    return str(found["result"])


def sign_in(page: Page, instance: Instance, user: SignInUser, *, expect_mfa: bool) -> None:
    """Type the username and password; then the TOTP code (enrolling first) when `expect_mfa`."""
    page.locator("#i0116").fill(user.upn)
    page.click(PRIMARY)
    page.locator("#i0118").fill(user.password)
    page.click(PRIMARY)
    if not expect_mfa:
        return
    code = page.locator("#idTxtBx_SAOTCC_OTC")
    code.wait_for()
    if page.locator("#totpSecret").count():
        TOTP_SECRETS[user.upn] = "".join(page.inner_text("#totpSecret").split())
    code.fill(totp_code(user.upn, instance.clock))
    page.click(PRIMARY)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(instance: Instance, scope: str, **extra: str) -> str:
    _, challenge = pkce()
    query = {
        "client_id": AZURE_CLI.app_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "response_mode": "form_post",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st-42",
        **extra,
    }
    return f"{instance.identity}/{STEPUP_TENANT}/oauth2/v2.0/authorize?{urlencode(query)}"


def posted_back(response: requests.Response) -> dict[str, str]:
    """The fields a form_post page sends to the app."""
    assert response.status_code == 200, response.text
    forms = [f for f in parse_page(response.text).forms if f.action.startswith(REDIRECT_URI)]
    assert forms, response.text
    return forms[0].hidden()


def browser_with_session(instance: Instance, user: SignInUser) -> requests.Session:
    """A browser where `user` signed in (password only) to an app asking for OpenID Connect scopes, which no
    policy here targets beyond Graph: its session holds a password sign-in."""
    http = identity_session(instance)
    result = walk_sign_in(
        http, http.get(authorize_url(instance, "openid profile"), timeout=30), user=user, clock=instance.clock
    )
    assert result.posted_back is not None, result.html
    assert "code" in result.posted_back, result.html
    return http


# --- the browser flows -----------------------------------------------------------------------------------


def test_mfa_policy_steps_up_to_totp_with_enrollment_and_not_for_others(
    entryway: Instance, stepup: Stepup, browser: Browser
) -> None:
    app = msal_app(entryway)
    mia = person("mia")
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        with loopback_redirect() as (redirect_uri, catch):
            flow = app.initiate_auth_code_flow(
                [DEVOPS_SCOPE], redirect_uri=redirect_uri, response_mode="form_post"
            )
            page.goto(flow["auth_uri"])
            page.locator("#i0116").fill(mia.upn)
            page.click(PRIMARY)
            page.locator("#i0118").fill(mia.password)
            page.click(PRIMARY)
            # Mia has no authenticator: the policy's MFA grant starts with enrollment.
            page.locator("#totpSecret").wait_for()
            TOTP_SECRETS[mia.upn] = "".join(page.inner_text("#totpSecret").split())
            page.locator("#idTxtBx_SAOTCC_OTC").fill(totp_code(mia.upn, entryway.clock))
            page.click(PRIMARY)
            fields = catch.wait()
        result = app.acquire_token_by_auth_code_flow(flow, fields)
        assert "access_token" in result, result
        assert result["id_token_claims"]["preferred_username"] == mia.upn
        claims = jwt.decode(result["access_token"], options={"verify_signature": False})
        assert claims["amr"] == ["pwd", "mfa"]
    finally:
        context.close()

    # Noah is outside the policy: the password is all he is asked for.
    noah = person("noah")
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        with loopback_redirect() as (redirect_uri, catch):
            flow = app.initiate_auth_code_flow(
                [DEVOPS_SCOPE], redirect_uri=redirect_uri, response_mode="form_post"
            )
            page.goto(flow["auth_uri"])
            sign_in(page, entryway, noah, expect_mfa=False)
            fields = catch.wait()
        assert page.locator("#idTxtBx_SAOTCC_OTC").count() == 0
        result = app.acquire_token_by_auth_code_flow(flow, fields)
        assert "access_token" in result, result
    finally:
        context.close()

    interrupt, success = log_rows(entryway, "mia")[-2:]
    assert (interrupt.error_code, success.error_code) == (50074, 0)
    assert policy_result(interrupt, stepup.policy_ids["mfa"]) == "failure"
    assert interrupt.conditional_access_status == "failure"
    assert policy_result(success, stepup.policy_ids["mfa"]) == "success"
    assert success.conditional_access_status == "success"
    assert success.authentication_requirement == "multiFactorAuthentication"
    assert success.resource_id == AZURE_DEVOPS.app_id
    assert success.app_id == AZURE_CLI.app_id
    assert success.client_app_used == "mobileAppsAndDesktopClients"
    assert success.device_platform == "linux"  # headless Chromium on Linux
    assert success.ip_address == "127.0.0.1"
    assert success.authentication_protocol == "interactive"
    assert interrupt.correlation_id == success.correlation_id
    (noah_row,) = log_rows(entryway, "noah")
    assert noah_row.error_code == 0
    assert policy_result(noah_row, stepup.policy_ids["mfa"]) == "notApplied"
    assert noah_row.conditional_access_status == "notApplied"
    assert noah_row.authentication_requirement == "singleFactorAuthentication"


def test_block_policy_shows_the_page_and_the_app_gets_access_denied(
    entryway: Instance, stepup: Stepup, page: Page
) -> None:
    app = msal_app(entryway)
    with loopback_redirect() as (redirect_uri, catch):
        flow = app.initiate_auth_code_flow(
            [DEVOPS_SCOPE], redirect_uri=redirect_uri, response_mode="form_post"
        )
        page.goto(flow["auth_uri"])
        sign_in(page, entryway, person("bea"), expect_mfa=False)
        page.locator("#errorCode").wait_for()
        assert page.inner_text("#pageTitle") == "You cannot access this right now"
        assert page.inner_text("#errorCode") == "AADSTS53003"
        assert page.inner_text("#ipAddress") == "127.0.0.1"
        page.click(PRIMARY)  # Back to the app
        fields = catch.wait()
    assert fields["error"] == "access_denied"
    assert fields["error_description"].startswith(
        "AADSTS53003: Access has been blocked by Conditional Access"
    )
    assert fields["state"] == flow["state"]
    assert "code" not in fields
    result = app.acquire_token_by_auth_code_flow(flow, fields)
    assert result.get("error") == "access_denied", result

    (row,) = log_rows(entryway, "bea")
    assert row.error_code == 53003
    assert row.failure_reason.startswith("AADSTS53003: ")
    assert row.conditional_access_status == "failure"
    assert policy_result(row, stepup.policy_ids["block"]) == "failure"


def test_report_only_mfa_policy_is_recorded_and_never_prompts(
    entryway: Instance, stepup: Stepup, page: Page
) -> None:
    app = msal_app(entryway)
    with loopback_redirect() as (redirect_uri, catch):
        flow = app.initiate_auth_code_flow(
            [DEVOPS_SCOPE], redirect_uri=redirect_uri, response_mode="form_post"
        )
        page.goto(flow["auth_uri"])
        sign_in(page, entryway, person("remy"), expect_mfa=False)
        fields = catch.wait()
    result = app.acquire_token_by_auth_code_flow(flow, fields)
    assert "access_token" in result, result
    (row,) = log_rows(entryway, "remy")
    assert row.error_code == 0
    # Entra's result for a report-only policy whose grant would have needed the user to act.
    assert policy_result(row, stepup.policy_ids["report"]) == "reportOnlyInterrupted"
    assert row.conditional_access_status == "notApplied"  # report-only policies never count


def test_sign_in_frequency_asks_for_the_password_again(
    entryway: Instance, stepup: Stepup, page: Page
) -> None:
    app = msal_app(entryway)
    sid = person("sid")
    with loopback_redirect() as (redirect_uri, catch):
        flow = app.initiate_auth_code_flow(
            [DEVOPS_SCOPE], redirect_uri=redirect_uri, response_mode="form_post"
        )
        page.goto(flow["auth_uri"])
        sign_in(page, entryway, sid, expect_mfa=False)
        fields = catch.wait()
    assert "access_token" in app.acquire_token_by_auth_code_flow(flow, fields)

    # Within the hour the session signs Sid in without a password.
    with loopback_redirect() as (redirect_uri, catch):
        flow = app.initiate_auth_code_flow(
            [DEVOPS_SCOPE], redirect_uri=redirect_uri, response_mode="form_post"
        )
        page.goto(flow["auth_uri"])
        fields = catch.wait()
    assert "code" in fields

    passed = timedelta(hours=1, minutes=5)
    entryway.clock.advance(passed)
    try:
        with loopback_redirect() as (redirect_uri, catch):
            flow = app.initiate_auth_code_flow(
                [DEVOPS_SCOPE], redirect_uri=redirect_uri, response_mode="form_post"
            )
            page.goto(flow["auth_uri"])
            page.locator("#i0118").wait_for()
            assert page.inner_text("#passwordNotice") == "Your organization requires you to sign in again."
            page.locator("#i0118").fill(sid.password)
            page.click(PRIMARY)
            fields = catch.wait()
        result = app.acquire_token_by_auth_code_flow(flow, fields)
        assert "access_token" in result, result
    finally:
        entryway.clock.advance(-passed)  # the session's other tests keep the clock they had

    rows = log_rows(entryway, "sid")
    assert [r.error_code for r in rows] == [0, 0, 70044, 0]
    assert policy_result(rows[2], stepup.policy_ids["sif"]) == "failure"
    assert policy_result(rows[3], stepup.policy_ids["sif"]) == "success"
    assert rows[2].correlation_id == rows[3].correlation_id


# --- silent requests, claims challenges, the device pages (over HTTP, as a browser would) -----------------


def test_prompt_none_gets_interaction_required_when_a_policy_needs_mfa(
    entryway: Instance, stepup: Stepup
) -> None:
    http = browser_with_session(entryway, person("pia"))
    before = len(log_rows(entryway, "pia"))
    fields = posted_back(
        http.get(authorize_url(entryway, f"{DEVOPS_SCOPE} openid", prompt="none"), timeout=30)
    )
    assert fields["error"] == "interaction_required"
    assert fields["error_description"].startswith("AADSTS50076: ")
    assert fields["state"] == "st-42"
    assert "code" not in fields
    rows = log_rows(entryway, "pia")
    assert len(rows) == before + 1
    assert rows[-1].error_code == 50076
    assert policy_result(rows[-1], stepup.policy_ids["mfa"]) == "failure"


def test_prompt_none_blocked_by_a_policy_gets_access_denied(entryway: Instance, stepup: Stepup) -> None:
    http = browser_with_session(entryway, person("bea"))
    fields = posted_back(
        http.get(authorize_url(entryway, f"{DEVOPS_SCOPE} openid", prompt="none"), timeout=30)
    )
    assert fields["error"] == "access_denied"
    assert fields["error_description"].startswith("AADSTS53003: ")
    assert log_rows(entryway, "bea")[-1].error_code == 53003


def test_claims_nbf_after_the_session_sign_in_asks_for_fresh_credentials(
    entryway: Instance, stepup: Stepup
) -> None:
    olga = person("olga")
    http = browser_with_session(entryway, olga)
    entryway.clock.advance(30)
    later = int(entryway.clock.timestamp())
    challenge = json.dumps({"access_token": {"nbf": {"essential": True, "value": str(later)}}})

    silent = posted_back(
        http.get(authorize_url(entryway, "openid profile", prompt="none", claims=challenge), timeout=30)
    )
    assert silent["error"] == "interaction_required"
    assert silent["error_description"].startswith("AADSTS50173: ")

    # Interactively: the password page, even though the session holds Olga's sign-in.
    page = http.get(
        authorize_url(entryway, "openid profile", claims=challenge, login_hint=olga.upn), timeout=30
    )
    assert 'id="i0118"' in page.text, page.text
    result = walk_sign_in(http, page, user=olga, clock=entryway.clock)
    assert result.posted_back is not None
    assert "code" in result.posted_back

    # A challenge from before the (new) sign-in is met by the session.
    old = json.dumps({"access_token": {"nbf": {"essential": True, "value": str(later - 600)}}})
    fields = posted_back(
        http.get(authorize_url(entryway, "openid profile", prompt="none", claims=old), timeout=30)
    )
    assert "code" in fields


@pytest.mark.parametrize(
    "claims",
    [
        "{not json",
        "[1, 2]",
        json.dumps({"access_token": "CP1"}),
        json.dumps({"access_token": {"nbf": {"value": "yesterday"}}}),
        json.dumps({"access_token": {"xms_rp_ipaddr": {"value": "300.1.2.3"}}}),
    ],
)
def test_malformed_claims_on_authorize_are_sent_back_and_nothing_is_written(
    entryway: Instance, stepup: Stepup, claims: str
) -> None:
    before = _counts(entryway)
    http = identity_session(entryway)
    fields = posted_back(http.get(authorize_url(entryway, DEVOPS_SCOPE, claims=claims), timeout=30))
    assert fields["error"] == "invalid_request"
    assert fields["error_description"].startswith("AADSTS50117: ")
    assert fields["state"] == "st-42"
    assert _counts(entryway) == before


def test_malformed_claims_at_the_devicecode_endpoint_start_nothing(
    entryway: Instance, stepup: Stepup
) -> None:
    before = _counts(entryway)
    response = requests.post(
        f"{entryway.identity}/{STEPUP_TENANT}/oauth2/v2.0/devicecode",
        data={"client_id": AZURE_CLI.app_id, "scope": DEVOPS_SCOPE, "claims": "{nope"},
        verify=entryway.ca_bundle,
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error_codes"] == [50117]
    assert _counts(entryway) == before


def _counts(instance: Instance) -> tuple[int, int, int]:
    instance.runtime.sign_in_log.flush()
    with instance.runtime.db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(SignInLogRow)) or 0,
            session.scalar(select(func.count()).select_from(BrowserSessionRow)) or 0,
            session.scalar(select(func.count()).select_from(DeviceCodeRow)) or 0,
        )


def test_device_pages_step_up_for_the_policy_and_log_the_device_sign_in(
    entryway: Instance, stepup: Stepup
) -> None:
    app = msal_app(entryway)
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    done = complete_device_login(entryway, flow["user_code"], person("dev"))
    assert "AADSTS" not in done.html, done.html
    assert person("dev").upn in TOTP_SECRETS, "enrollment, then the code"
    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
    assert "access_token" in result, result
    rows = log_rows(entryway, "dev")
    assert [r.error_code for r in rows] == [50074, 0]
    assert {r.authentication_protocol for r in rows} == {"deviceCode"}
    assert policy_result(rows[1], stepup.policy_ids["mfa"]) == "success"


def test_device_pages_blocked_by_a_policy_decline_the_device(entryway: Instance, stepup: Stepup) -> None:
    app = msal_app(entryway)
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    done = complete_device_login(entryway, flow["user_code"], person("bea"))
    assert done.error_code == "AADSTS53003", done.html
    assert "You cannot access this right now" in done.html
    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
    assert result.get("error") == "authorization_declined", result
    assert log_rows(entryway, "bea")[-1].authentication_protocol == "deviceCode"


# --- the sign-in log over Graph and the CLI -------------------------------------------------------------

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
SIGN_INS = "/graph/v1.0/auditLogs/signIns"


def graph_token(instance: Instance, name: str) -> str:
    """The password grant as `az login -u -p` sends it, for Microsoft Graph."""
    response = requests.post(
        f"{instance.identity}/{STEPUP_TENANT}/oauth2/v2.0/token",
        data={
            "grant_type": "password",
            "client_id": AZURE_CLI.app_id,
            "username": f"{name}@stepup.test",
            "password": PASSWORD,
            "scope": GRAPH_SCOPE,
        },
        verify=instance.ca_bundle,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def graph_get(instance: Instance, path: str, token: str | None, **params: str) -> requests.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return requests.get(
        f"{instance.identity}{path}", params=params, headers=headers, verify=instance.ca_bundle, timeout=30
    )


def blocked_and_report_only_sign_ins(instance: Instance) -> None:
    """Bea blocked, Remy past a report-only policy: two sign-ins through the pages, as a browser makes them."""
    for name in ("bea", "remy"):
        http = identity_session(instance)
        start = http.get(authorize_url(instance, f"{DEVOPS_SCOPE} openid"), timeout=30)
        result = walk_sign_in(http, start, user=person(name), clock=instance.clock)
        assert result.posted_back is not None, result.html


def test_graph_lists_and_shows_sign_ins_with_each_policy_result(entryway: Instance, stepup: Stepup) -> None:
    blocked_and_report_only_sign_ins(entryway)
    for reader in ("auditor", "ga"):  # Security Reader, Global Administrator
        token = graph_token(entryway, reader)
        response = graph_get(
            entryway,
            SIGN_INS,
            token,
            **{"$filter": "userPrincipalName eq 'bea@stepup.test' and status/errorCode eq 53003"},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["@odata.context"].endswith("/graph/v1.0/$metadata#auditLogs/signIns")
        entry = body["value"][0]
        assert entry["userPrincipalName"] == "bea@stepup.test"
        assert entry["userId"] == stepup.user_ids["bea"]
        assert entry["status"]["errorCode"] == 53003
        assert entry["status"]["failureReason"].startswith("AADSTS53003: ")
        assert entry["conditionalAccessStatus"] == "failure"
        assert entry["isInteractive"] is True
        assert entry["ipAddress"] == "127.0.0.1"
        assert entry["appId"] == AZURE_CLI.app_id
        assert entry["resourceId"] == AZURE_DEVOPS.app_id
        assert entry["clientAppUsed"] == "Mobile Apps and Desktop clients"
        applied = {p["id"]: p for p in entry["appliedConditionalAccessPolicies"]}
        assert applied[stepup.policy_ids["block"]] == {
            "id": stepup.policy_ids["block"],
            "displayName": "Block Bea outside Graph",
            "result": "failure",
            "enforcedGrantControls": ["Block"],
            "enforcedSessionControls": [],
        }
        assert applied[stepup.policy_ids["mfa"]]["result"] == "notApplied"

        one = graph_get(entryway, f"{SIGN_INS}/{entry['id']}", token)
        assert one.status_code == 200, one.text
        assert one.json()["@odata.context"].endswith("#auditLogs/signIns/$entity")
        assert {k: v for k, v in one.json().items() if k != "@odata.context"} == entry

    token = graph_token(entryway, "auditor")
    remy = graph_get(
        entryway, SIGN_INS, token, **{"$filter": "userPrincipalName eq 'remy@stepup.test'"}
    ).json()
    interactive = [e for e in remy["value"] if e["isInteractive"]]
    assert interactive[0]["status"]["errorCode"] == 0
    results = {p["id"]: p["result"] for p in interactive[0]["appliedConditionalAccessPolicies"]}
    assert results[stepup.policy_ids["report"]] == "reportOnlyInterrupted"

    # Paging: $top and the nextLink, over this tenant's entries only.
    first = graph_get(entryway, SIGN_INS, token, **{"$top": "2"}).json()
    assert len(first["value"]) == 2
    follow = requests.get(
        first["@odata.nextLink"],
        headers={"Authorization": f"Bearer {token}"},
        verify=entryway.ca_bundle,
        timeout=30,
    )
    assert follow.status_code == 200, follow.text
    assert {e["id"] for e in follow.json()["value"]}.isdisjoint({e["id"] for e in first["value"]})
    everything = graph_get(entryway, SIGN_INS, token).json()["value"]
    assert everything
    assert all(
        e["userPrincipalName"] is None or e["userPrincipalName"].endswith("@stepup.test") for e in everything
    )
    since = graph_get(
        entryway, SIGN_INS, token, **{"$filter": f"createdDateTime ge {everything[0]['createdDateTime']}"}
    ).json()["value"]
    assert everything[0]["id"] in {e["id"] for e in since}


def test_graph_sign_ins_refuse_callers_without_the_permission(entryway: Instance, stepup: Stepup) -> None:
    plain = graph_token(entryway, "noah")
    refused = graph_get(entryway, SIGN_INS, plain)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "Authorization_RequestDenied"
    # Authentication first: a caller without access learns nothing from a bad query either.
    assert graph_get(entryway, SIGN_INS, plain, **{"$top": "0"}).status_code == 403
    assert graph_get(entryway, SIGN_INS, None).status_code == 401
    devops = requests.post(
        f"{entryway.identity}/{STEPUP_TENANT}/oauth2/v2.0/token",
        data={
            "grant_type": "password",
            "client_id": AZURE_CLI.app_id,
            "username": "ga@stepup.test",
            "password": PASSWORD,
            "scope": DEVOPS_SCOPE,
        },
        verify=entryway.ca_bundle,
        timeout=30,
    ).json()["access_token"]
    assert graph_get(entryway, SIGN_INS, devops).status_code == 401  # a token for another audience


def app_graph_token(instance: Instance, bot: tuple[str, str]) -> str:
    app = msal.ConfidentialClientApplication(
        bot[0],
        client_credential=bot[1],
        authority=instance.authority(STEPUP_TENANT),
        instance_discovery=False,
    )
    result = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" in result, result
    return str(result["access_token"])


def test_graph_sign_ins_for_an_app_with_the_app_role(entryway: Instance, stepup: Stepup) -> None:
    """App-only: the AuditLog.Read.All app role reads the log (no directory role needed); Policy.Read.All
    alone does not."""
    blocked_and_report_only_sign_ins(entryway)
    reader = graph_get(
        entryway,
        SIGN_INS,
        app_graph_token(entryway, LOG_READER_BOT),
        **{"$filter": "userPrincipalName eq 'bea@stepup.test'", "$top": "1"},
    )
    assert reader.status_code == 200, reader.text
    assert reader.json()["value"][0]["userPrincipalName"] == "bea@stepup.test"
    other = graph_get(entryway, SIGN_INS, app_graph_token(entryway, POLICY_BOT))
    assert other.status_code == 403, other.text
    assert other.json()["error"]["code"] == "AccessDenied"


@pytest.mark.parametrize(
    "params",
    [
        {"$top": "0"},
        {"$top": "1001"},
        {"$top": "ten"},
        {"$skiptoken": "abc"},
        {"$orderby": "createdDateTime"},
        {"$filter": ""},
        {"$filter": "userPrincipalName eq bea@stepup.test"},
        {"$filter": "appId eq 'not-a-guid'"},
        {"$filter": "createdDateTime ge yesterday"},
        {"$filter": "status/errorCode ne 5"},
        {"$filter": "isInteractive eq maybe"},
        {"$filter": "conditionalAccessStatus eq 'sometimes'"},
        {"$filter": "ipAddress eq '127.0.0.1'"},
        {"$filter": "userPrincipalName eq 'a@b' or appId eq 'x'"},
    ],
)
def test_graph_sign_ins_bad_queries_are_400(
    entryway: Instance, stepup: Stepup, params: dict[str, str]
) -> None:
    response = graph_get(entryway, SIGN_INS, graph_token(entryway, "auditor"), **params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "BadRequest"
    assert error["innerError"]["request-id"]


def test_graph_sign_in_of_another_tenant_or_unknown_is_404(entryway: Instance, stepup: Stepup) -> None:
    token = graph_token(entryway, "auditor")
    # An entry of another tenant of the same installation: never visible from this one.
    other = entryway.runtime.sign_in_log.record(
        SignInRecord(
            tenant_id=CONTOSO_TENANT,
            principal_kind="user",
            is_interactive=True,
            app_id=AZURE_CLI.app_id,
            ip_address="127.0.0.1",
        )
    )
    for ref in (other, "0f0e0d0c-0b0a-4909-8807-060504030201", "not-a-guid"):
        response = graph_get(entryway, f"{SIGN_INS}/{ref}", token)
        assert response.status_code == 404, (ref, response.text)
        assert response.json()["error"]["code"] == "ResourceNotFound"


def cli_signins(instance: Instance, *args: str) -> Result:
    instance.runtime.sign_in_log.flush()
    return CliRunner().invoke(cli, ["signins", *args, "--data-dir", str(instance.settings.data_dir)])


def test_cli_lists_and_shows_sign_ins(entryway: Instance, stepup: Stepup) -> None:
    blocked_and_report_only_sign_ins(entryway)
    listed = cli_signins(
        entryway, "list", "--tenant", "stepup.test", "--user", "bea@stepup.test", "--failures"
    )
    assert listed.exit_code == 0, listed.output
    line = listed.output.splitlines()[0].split("\t")
    assert line[1] == "AADSTS53003"
    assert line[2] == "bea@stepup.test"
    assert line[5] == "127.0.0.1"
    assert line[6] == "failure"
    assert line[3] == "Microsoft Azure CLI"
    assert line[4] == "Azure DevOps"
    assert line[7] == "interactive"

    as_json = cli_signins(entryway, "list", "--user", "remy@stepup.test", "--app", AZURE_CLI.app_id, "--json")
    assert as_json.exit_code == 0, as_json.output
    entries = [json.loads(text) for text in as_json.output.splitlines()]
    assert entries
    assert {e["appId"] for e in entries} == {AZURE_CLI.app_id}
    interactive = next(e for e in entries if e["isInteractive"])
    assert {p["result"] for p in interactive["appliedConditionalAccessPolicies"]} >= {"reportOnlyInterrupted"}

    shown = cli_signins(entryway, "show", line[8])
    assert shown.exit_code == 0, shown.output
    entry = json.loads(shown.output)
    assert entry["status"]["errorCode"] == 53003
    assert any(
        p["id"] == stepup.policy_ids["block"] and p["result"] == "failure"
        for p in entry["appliedConditionalAccessPolicies"]
    )

    limited = cli_signins(entryway, "list", "--tenant", "stepup.test", "--limit", "1")
    assert limited.exit_code == 0, limited.output
    assert len(limited.output.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("list", "--limit", "0"), "--limit must be between 1 and 1000"),
        (("list", "--limit", "1001"), "--limit must be between 1 and 1000"),
        (("list", "--tenant", "nowhere.test"), "no tenant 'nowhere.test'"),
        (("list", "--app", "signin-tool"), "--app must be an application (client) id"),
        (("list", "--user", "bea"), "--user must be a user principal name"),
        (("show", "not-a-guid"), "'not-a-guid' is not a sign-in id"),
        (
            ("show", "0f0e0d0c-0b0a-4909-8807-060504030201"),
            "no sign-in '0f0e0d0c-0b0a-4909-8807-060504030201'",
        ),
    ],
)
def test_cli_bad_input_is_refused_and_writes_nothing(
    entryway: Instance, stepup: Stepup, args: tuple[str, ...], message: str
) -> None:
    before = _counts(entryway)
    result = cli_signins(entryway, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert _counts(entryway) == before
