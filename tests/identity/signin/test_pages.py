"""The sign-in pages over HTTP against the shared server, the way a browser without JavaScript uses them."""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import requests
from sqlalchemy import func, select

from entryway.identity.directory.service import DirectoryService
from entryway.kit.ids import new_guid
from entryway.store.models import SignInFailureRow, UserRow
from tests.conftest import (
    AZURE_CLI_ID,
    CONTOSO_TENANT,
    DEVOPS_SCOPE,
    SIGNIN_TOOL_ID,
    Instance,
    SignInUser,
    identity_session,
    parse_page,
    walk_sign_in,
)

REDIRECT_URI = "http://localhost:53100"
VERIFIER = "pages-test-verifier-" + "x" * 40
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).decode().rstrip("=")
SECURITY_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "Cache-Control", "Referrer-Policy")


def new_user(entryway: Instance, *, mfa: bool = False) -> SignInUser:
    """A user of its own for each test: lockout and TOTP state never leak between tests."""
    upn = f"pages-{new_guid()[:8]}@contoso.test"
    password = "Pages-Test-Password-1"
    with entryway.runtime.db.unit_of_work() as session:
        directory = DirectoryService(session, entryway.clock, entryway.runtime.digester)
        user = directory.create_user(directory.find_tenant(CONTOSO_TENANT), upn, password, "Pages Test")
        user.mfa_required = mfa
    return SignInUser(upn, password, "Pages Test", mfa=mfa)


def authorize(http: requests.Session, entryway: Instance, tenant: str = "organizations", **extra: str) -> Any:
    params = {
        "client_id": SIGNIN_TOOL_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": f"{DEVOPS_SCOPE} openid profile offline_access",
        "state": "state-123",
        "nonce": "nonce-123",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "response_mode": "form_post",
    }
    params.update(extra)
    params = {k: v for k, v in params.items() if v != ""}
    return http.get(
        f"{entryway.identity}/{tenant}/oauth2/v2.0/authorize", params=params, allow_redirects=False
    )


def submit(http: requests.Session, entryway: Instance, response: Any, **fields: str) -> Any:
    """Post the page's form with its hidden fields and `fields`."""
    form = parse_page(response.text).forms[0]
    data = {**form.hidden(), **fields}
    return http.post(f"{entryway.identity}{form.action}", data=data, allow_redirects=False)


def error_code(response: Any) -> str | None:
    text = response.text
    marker = 'data-code="'
    if marker in text:
        return text.split(marker, 1)[1].split('"', 1)[0]
    page = parse_page(text)
    return page.text_by_id.get("errorCode", "").removeprefix("AADSTS") or None


def failures_of(entryway: Instance, upn: str) -> int:
    with entryway.runtime.db.read() as session:
        user_id = session.scalars(select(UserRow.object_id).where(UserRow.user_principal_name == upn)).one()
        query = select(func.coalesce(func.sum(SignInFailureRow.failures), 0)).where(
            SignInFailureRow.user_id == user_id
        )
        return int(session.scalar(query) or 0)


def test_a_full_sign_in_posts_a_code_and_the_session_signs_in_again_without_pages(entryway: Instance) -> None:
    user = new_user(entryway)
    http = identity_session(entryway)
    first = authorize(http, entryway)
    assert first.status_code == 200
    for header in SECURITY_HEADERS:
        assert header in first.headers
    assert first.headers["X-Frame-Options"] == "DENY"
    assert "no-store" in first.headers["Cache-Control"]
    result = walk_sign_in(http, first, user=user, clock=entryway.clock)
    assert result.action == REDIRECT_URI
    assert result.posted_back is not None
    assert result.posted_back["state"] == "state-123"
    assert result.posted_back["code"]
    session_cookie = next(c for c in http.cookies if c.name == "ESTSAUTH")
    assert session_cookie.secure
    assert session_cookie.has_nonstandard_attr("HttpOnly")

    token = requests.post(
        f"{entryway.identity}/organizations/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": SIGNIN_TOOL_ID,
            "code": result.posted_back["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER,
        },
        timeout=30,
    )
    assert token.status_code == 200, token.text

    # Single sign-on: the same browser gets a code straight away, as a query redirect when asked so.
    again = authorize(http, entryway, response_mode="query", prompt="none")
    assert again.status_code == 302
    query = parse_qs(urlsplit(again.headers["location"]).query)
    assert query["state"] == ["state-123"]
    assert "code" in query


def test_csrf_missing_or_wrong_is_refused_and_nothing_is_written(entryway: Instance) -> None:
    user = new_user(entryway)
    http = identity_session(entryway)
    username_page = authorize(http, entryway)
    password_page = submit(http, entryway, username_page, loginfmt=user.upn)
    assert parse_page(password_page.text).forms[0].input(id="i0118") is not None
    form = parse_page(password_page.text).forms[0]
    hidden = form.hidden()
    url = f"{entryway.identity}{form.action}"

    missing = {k: v for k, v in hidden.items() if k != "csrf"}
    for data in ({**missing, "passwd": "wrong"}, {**hidden, "csrf": "0" * 64, "passwd": "wrong"}):
        refused = http.post(url, data=data, allow_redirects=False)
        assert refused.status_code == 400
        assert "i0118" not in refused.text
    # A flow state that was tampered with, or is presented by another browser, is refused the same way.
    # (The signature is hex: swap its last digit for another one, so the flow is always changed.)
    flow = hidden["flow"]
    forged = flow[:-1] + ("1" if flow[-1] == "0" else "0")
    tampered = http.post(url, data={**hidden, "flow": forged, "passwd": "x"})
    assert tampered.status_code == 400
    stranger = requests.post(url, data={**hidden, "passwd": "wrong"}, timeout=30, verify=entryway.ca_bundle)
    assert stranger.status_code == 400
    assert failures_of(entryway, user.upn) == 0

    wrong = http.post(url, data={**hidden, "passwd": "wrong"}, allow_redirects=False)
    assert wrong.status_code == 400
    assert error_code(wrong) == "50126"
    assert failures_of(entryway, user.upn) == 1


def test_wrong_password_then_lockout_then_cool_down(entryway: Instance) -> None:
    user = new_user(entryway)
    http = identity_session(entryway)
    page = submit(http, entryway, authorize(http, entryway), loginfmt=user.upn)
    for _ in range(10):
        page = submit(http, entryway, page, passwd="not-the-password")
        assert error_code(page) == "50126"
        assert "Your account or password is incorrect." in page.text
    # The right password does not help while the account is locked for this source.
    page = submit(http, entryway, page, passwd=user.password)
    assert error_code(page) == "50053"
    assert "locked" in page.text
    entryway.clock.advance(61)
    result = walk_sign_in(
        http, submit(http, entryway, page, passwd=user.password), user=user, clock=entryway.clock
    )
    assert result.action == REDIRECT_URI
    assert result.posted_back is not None
    assert "code" in result.posted_back


def test_unknown_username_is_told_on_the_username_page(entryway: Instance) -> None:
    http = identity_session(entryway)
    page = submit(http, entryway, authorize(http, entryway), loginfmt="nobody@contoso.test")
    assert error_code(page) == "50034"
    assert parse_page(page.text).forms[0].input(id="i0116") is not None


def test_mfa_enrollment_then_a_code_each_sign_in_and_a_reused_code_refused(entryway: Instance) -> None:
    user = new_user(entryway, mfa=True)
    http = identity_session(entryway)
    page = submit(http, entryway, authorize(http, entryway), loginfmt=user.upn)
    page = submit(http, entryway, page, passwd=user.password)
    parsed = parse_page(page.text)
    secret = "".join(parsed.text_by_id["totpSecret"].split())
    assert "<svg" in page.text
    totp = pyotp.TOTP(secret)
    wrong = submit(http, entryway, page, otc="000000" if totp.now() != "000000" else "111111")
    assert error_code(wrong) == "500121"
    assert parse_page(wrong.text).text_by_id["totpSecret"].replace(" ", "") == secret
    code = totp.at(entryway.clock.timestamp())
    consent = submit(http, entryway, wrong, otc=code)
    assert parse_page(consent.text).forms[0].button(id="idSIButton9") is not None
    assert "consentScopes" in parse_page(consent.text).text_by_id
    done = submit(http, entryway, consent, accept="1")
    assert 'action="http://localhost:53100"' in done.text
    # The form_post page submits itself with a script the CSP allows by its nonce; a button does it without.
    nonce = done.text.split('<script nonce="', 1)[1].split('"', 1)[0]
    assert f"script-src 'nonce-{nonce}'" in done.headers["Content-Security-Policy"]
    assert parse_page(done.text).forms[0].button(id="idSIButton9") is not None

    # Next sign-in (prompt=login): the code page, no enrollment; the code just used is refused.
    page = submit(http, entryway, authorize(http, entryway, prompt="login"), loginfmt=user.upn)
    page = submit(http, entryway, page, passwd=user.password)
    assert "totpSecret" not in parse_page(page.text).text_by_id
    assert parse_page(page.text).forms[0].input(id="idTxtBx_SAOTCC_OTC") is not None
    reused = submit(http, entryway, page, otc=code)
    assert error_code(reused) == "500121"
    fresh = submit(http, entryway, reused, otc=totp.at(entryway.clock.timestamp() + 30))
    assert 'action="http://localhost:53100"' in fresh.text
    assert 'name="code"' in fresh.text


def test_prompt_none_without_a_session_sends_login_required_to_the_app(entryway: Instance) -> None:
    http = identity_session(entryway)
    query = authorize(http, entryway, prompt="none", response_mode="query")
    assert query.status_code == 302
    location = urlsplit(query.headers["location"])
    assert f"{location.scheme}://{location.netloc}" == REDIRECT_URI
    params = parse_qs(location.query)
    assert params["error"] == ["login_required"]
    assert params["error_description"][0].startswith("AADSTS50058: ")
    assert params["state"] == ["state-123"]
    posted = authorize(http, entryway, prompt="none")
    form = parse_page(posted.text).forms[0]
    assert form.action == REDIRECT_URI
    assert form.hidden()["error"] == "login_required"


def test_prompt_none_with_two_accounts_needs_a_login_hint(entryway: Instance) -> None:
    first, second = new_user(entryway), new_user(entryway)
    http = identity_session(entryway)
    walk_sign_in(http, authorize(http, entryway), user=first, clock=entryway.clock)
    walk_sign_in(http, authorize(http, entryway, prompt="login"), user=second, clock=entryway.clock)
    # Two accounts in this browser: a silent request that does not say which is Entra's AADSTS16000.
    ambiguous = authorize(http, entryway, prompt="none", response_mode="query")
    params = parse_qs(urlsplit(ambiguous.headers["location"]).query)
    assert params["error"] == ["interaction_required"]
    assert params["error_description"][0].startswith("AADSTS16000: Either multiple user identities")
    assert params["state"] == ["state-123"]
    # A login_hint picks one; a hint naming nobody signed in here is login_required.
    for user in (first, second):
        hinted = authorize(http, entryway, prompt="none", response_mode="query", login_hint=user.upn.upper())
        assert "code" in parse_qs(urlsplit(hinted.headers["location"]).query), hinted.headers["location"]
    stranger = authorize(
        http, entryway, prompt="none", response_mode="query", login_hint="nobody@contoso.test"
    )
    assert parse_qs(urlsplit(stranger.headers["location"]).query)["error"] == ["login_required"]


def test_redirect_uri_mismatch_and_unknown_client_are_shown_never_redirected(entryway: Instance) -> None:
    http = identity_session(entryway)
    mismatch = authorize(http, entryway, redirect_uri="https://attacker.example/cb")
    assert mismatch.status_code == 400
    assert "location" not in mismatch.headers
    assert error_code(mismatch) == "50011"
    assert "attacker.example" in mismatch.text
    unknown = authorize(http, entryway, client_id="11111111-2222-4333-8444-555555555555")
    assert unknown.status_code == 400
    assert error_code(unknown) == "700016"
    malformed = authorize(http, entryway, client_id="not-a-guid")
    assert error_code(malformed) == "700038"
    bad_tenant = authorize(http, entryway, tenant="no-such-tenant.test")
    assert error_code(bad_tenant) == "90002"


@pytest.mark.parametrize(
    ("extra", "error", "code"),
    [
        ({"response_type": "token"}, "unsupported_response_type", "70005"),
        ({"code_challenge": "", "code_challenge_method": ""}, "invalid_request", "9002325"),
        ({"code_challenge_method": "plain"}, "invalid_request", "501491"),
        ({"scope": ""}, "invalid_request", "900144"),
    ],
)
def test_refused_requests_go_back_to_the_app(
    entryway: Instance, extra: dict[str, str], error: str, code: str
) -> None:
    response = authorize(identity_session(entryway), entryway, response_mode="query", **extra)
    assert response.status_code == 302
    params = parse_qs(urlsplit(response.headers["location"]).query)
    assert params["error"] == [error]
    assert params["error_description"][0].startswith(f"AADSTS{code}: ")
    assert params["error_uri"][0].endswith(f"/error?code={code}")


def test_account_picker_and_use_another_account(entryway: Instance) -> None:
    user = new_user(entryway)
    http = identity_session(entryway)
    walk_sign_in(http, authorize(http, entryway), user=user, clock=entryway.clock)
    picker = authorize(http, entryway, prompt="select_account")
    form = parse_page(picker.text).forms[0]
    assert form.button(upn=user.upn) is not None
    assert form.button(id="otherTile") is not None
    other = submit(http, entryway, picker, other="1")
    assert parse_page(other.text).forms[0].input(id="i0116") is not None
    picked = submit(http, entryway, picker, pick=user.upn)
    assert 'name="code"' in picked.text


def test_logout_ends_the_session(entryway: Instance) -> None:
    user = new_user(entryway)
    http = identity_session(entryway)
    walk_sign_in(http, authorize(http, entryway), user=user, clock=entryway.clock)
    assert authorize(http, entryway, prompt="none", response_mode="query").status_code == 302
    signed_out = http.get(f"{entryway.identity}/organizations/oauth2/v2.0/logout", allow_redirects=False)
    assert signed_out.status_code == 200
    assert "You signed out" in signed_out.text
    assert "ESTSAUTH" not in http.cookies.get_dict()
    after = authorize(http, entryway, prompt="none", response_mode="query")
    assert parse_qs(urlsplit(after.headers["location"]).query)["error"] == ["login_required"]

    # Back to the app only to a redirect URI it registered: never an open redirect.
    back = http.get(
        f"{entryway.identity}/common/oauth2/v2.0/logout",
        params={"post_logout_redirect_uri": "http://localhost:9999/signed-out-elsewhere"},
        allow_redirects=False,
    )
    assert back.status_code == 200
    back = http.get(
        f"{entryway.identity}/common/oauth2/v2.0/logout",
        params={"post_logout_redirect_uri": "http://localhost:9999", "client_id": SIGNIN_TOOL_ID},
        allow_redirects=False,
    )
    assert back.status_code == 302
    assert back.headers["location"] == "http://localhost:9999"
    evil = http.get(
        f"{entryway.identity}/common/oauth2/v2.0/logout",
        params={"post_logout_redirect_uri": "https://attacker.example/"},
        allow_redirects=False,
    )
    assert evil.status_code == 200


def test_error_page_explains_codes_of_the_catalogue(entryway: Instance) -> None:
    http = identity_session(entryway)
    known = http.get(f"{entryway.identity}/error", params={"code": "50126"})
    assert known.status_code == 200
    assert "invalid username or password" in known.text
    assert "Content-Security-Policy" in known.headers
    # The codes only the sign-in pages answer with (Conditional Access) are in the catalogue too.
    for code, text in (
        ("70044", "sign-in frequency"),
        ("50074", "Strong Authentication"),
        ("53003", "blocked"),
    ):
        page = http.get(f"{entryway.identity}/error", params={"code": f"AADSTS{code}"})
        assert page.status_code == 200
        assert text in page.text
    assert http.get(f"{entryway.identity}/error", params={"code": "12345678"}).status_code == 404
    assert http.get(f"{entryway.identity}/error", params={"code": "<script>"}).status_code == 404


def test_device_page_refuses_a_bad_code_and_lets_the_person_cancel(entryway: Instance) -> None:
    http = identity_session(entryway)
    page = http.get(f"{entryway.identity}/devicelogin")
    assert page.status_code == 200
    assert parse_page(page.text).forms[0].input(id="otc") is not None
    bad = submit(http, entryway, page, otc="BCDFGHJKL")
    assert bad.status_code == 400
    assert error_code(bad) == "70018"

    started = requests.post(
        f"{entryway.identity}/organizations/oauth2/v2.0/devicecode",
        data={"client_id": AZURE_CLI_ID, "scope": f"{DEVOPS_SCOPE} offline_access"},
        timeout=30,
    )
    assert started.status_code == 200, started.text
    flow = started.json()
    user = new_user(entryway)
    page = submit(http, entryway, page, otc=flow["user_code"].lower())
    page = submit(http, entryway, page, loginfmt=user.upn)
    confirm = submit(http, entryway, page, passwd=user.password)
    assert "Are you trying to sign in to" in confirm.text
    cancelled = submit(http, entryway, confirm, cancel="1")
    assert cancelled.status_code == 200
    poll = requests.post(
        f"{entryway.identity}/organizations/oauth2/v2.0/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "client_id": AZURE_CLI_ID,
            "device_code": flow["device_code"],
        },
        timeout=30,
    )
    assert poll.json()["error"] == "authorization_declined"


def test_login_hint_prefills_and_max_age_asks_for_the_password_again(entryway: Instance) -> None:
    user = new_user(entryway)
    http = identity_session(entryway)
    hinted = authorize(http, entryway, login_hint=user.upn)
    username = parse_page(hinted.text).forms[0].input(id="i0116")
    assert username is not None
    assert username["value"] == user.upn
    walk_sign_in(http, hinted, user=user, clock=entryway.clock)
    entryway.clock.advance(120)
    # Signed in two minutes ago: max_age=60 wants the password again, silently it is login_required.
    silent = authorize(http, entryway, prompt="none", max_age="60", response_mode="query")
    assert parse_qs(urlsplit(silent.headers["location"]).query)["error"] == ["login_required"]
    again = authorize(http, entryway, max_age="60", login_hint=user.upn)
    assert parse_page(again.text).forms[0].input(id="i0118") is not None
    assert 'name="code"' in submit(http, entryway, again, passwd=user.password).text
    assert authorize(http, entryway, max_age="600", prompt="none", response_mode="query").status_code == 302


def test_consent_declined_and_prompt_consent(entryway: Instance) -> None:
    user = new_user(entryway)
    http = identity_session(entryway)
    page = submit(http, entryway, authorize(http, entryway, response_mode="query"), loginfmt=user.upn)
    consent = submit(http, entryway, page, passwd=user.password)
    assert "Azure DevOps: user_impersonation" in parse_page(consent.text).text_by_id["consentScopes"]
    # Signed in, but no consent yet: a silent request gets consent_required.
    silent = authorize(http, entryway, prompt="none", response_mode="query")
    assert parse_qs(urlsplit(silent.headers["location"]).query)["error"] == ["consent_required"]
    declined = submit(http, entryway, consent, decline="1")
    assert declined.status_code == 302
    params = parse_qs(urlsplit(declined.headers["location"]).query)
    assert params["error"] == ["access_denied"]
    assert params["error_description"][0].startswith("AADSTS65004: ")

    accepted = submit(http, entryway, authorize(http, entryway), accept="1")
    assert 'name="code"' in accepted.text
    assert 'name="code"' in authorize(http, entryway).text
    # prompt=consent shows the page even though consent exists.
    assert "consentScopes" in parse_page(authorize(http, entryway, prompt="consent").text).text_by_id


def test_a_scope_the_named_tenant_cannot_grant_is_refused_before_any_page(entryway: Instance) -> None:
    http = identity_session(entryway)
    for scope, error, code in (
        ("api://nothing-here/.default openid", "invalid_resource", "500011"),
        ("499b84ac-1321-427f-aa17-267ca6975798/vso.nothing", "invalid_scope", "70011"),
        (f"{DEVOPS_SCOPE} api://other/.default", "invalid_scope", "28000"),
        ("User.Read openid", "invalid_scope", "70011"),  # a Graph scope: no resource here
    ):
        response = authorize(http, entryway, tenant="contoso.test", response_mode="query", scope=scope)
        assert response.status_code == 302, scope
        params = parse_qs(urlsplit(response.headers["location"]).query)
        assert params["error"] == [error]
        assert params["error_description"][0].startswith(f"AADSTS{code}: ")


def test_a_consent_page_left_open_does_nothing_after_sign_out(entryway: Instance) -> None:
    user = new_user(entryway)
    http = identity_session(entryway)
    page = submit(http, entryway, authorize(http, entryway), loginfmt=user.upn)
    consent = submit(http, entryway, page, passwd=user.password)
    assert "consentScopes" in parse_page(consent.text).text_by_id
    http.get(f"{entryway.identity}/organizations/oauth2/v2.0/logout")
    after = submit(http, entryway, consent, accept="1")
    assert 'name="code"' not in after.text
    assert parse_page(after.text).forms[0].input(id="i0116") is not None
