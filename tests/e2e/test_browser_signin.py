"""The interactive flows in a real browser: headless Debian Chromium driven by Playwright types the
username, the password and the TOTP code, and the page form-posts the code to the app's loopback redirect
URI, where msal (or azure-identity) redeems it. These tests also take the screenshots in docs/screenshots
(written when ENTRYWAY_SCREENSHOTS=1)."""

from __future__ import annotations

import hashlib
import queue
import webbrowser
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlencode

import pytest
from azure.identity import InteractiveBrowserCredential
from playwright.sync_api import Browser, Page

from tests.conftest import (
    ADA,
    AZURE_CLI_ID,
    CONSENT_DEMO_ID,
    CONTOSO_TENANT,
    DEVOPS_SCOPE,
    ERIN,
    TOTP_SECRETS,
    Instance,
    SignInUser,
    screenshot,
    totp_code,
)
from tests.e2e.flows import (
    assert_delegated_devops_token,
    assert_id_token,
    connection_data,
    loopback_redirect,
    public_client,
)

PRIMARY = "#idSIButton9"


@contextmanager
def fresh_page(browser: Browser) -> Iterator[Page]:
    """Another person's browser (or the same person's next day): a new profile, no cookies."""
    context = browser.new_context(ignore_https_errors=False, viewport={"width": 1100, "height": 800})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(page: Page, instance: Instance, user: SignInUser, *, shots: bool = False) -> None:
    """Type what a person types on the username, password and TOTP pages."""
    page.locator("#i0116").fill(user.upn)
    if shots:
        screenshot(page, "sign-in")
    page.click(PRIMARY)
    page.locator("#i0118").fill(user.password)
    if shots:
        screenshot(page, "password")
    page.click(PRIMARY)
    if not user.mfa:
        return
    code = page.locator("#idTxtBx_SAOTCC_OTC")
    code.wait_for()
    if page.locator("#totpSecret").count():
        TOTP_SECRETS[user.upn] = "".join(page.inner_text("#totpSecret").split())
        assert page.locator("#totpQr svg").count() == 1, "the QR code, inline"
        if shots:
            screenshot(page, "mfa-enrollment")
    elif shots:
        screenshot(page, "mfa-prompt")
    code.fill(totp_code(user.upn, instance.clock))
    page.click(PRIMARY)


def test_msal_auth_code_flow_in_chromium_with_mfa_enrollment_prompt_and_picker(
    entryway: Instance, browser: Browser
) -> None:
    """Erin's first sign-in enrolls her authenticator; her next, in a new browser, asks for its code; the
    one after that, in the same browser, offers her account on the picker."""
    app = public_client(entryway)
    with fresh_page(browser) as page:
        with loopback_redirect() as (redirect_uri, catch):
            flow = app.initiate_auth_code_flow(
                [DEVOPS_SCOPE], redirect_uri=redirect_uri, response_mode="form_post"
            )
            page.goto(flow["auth_uri"])
            sign_in(page, entryway, ERIN, shots=True)
            fields = catch.wait()
        assert catch.method == "POST", "form_post, as msal requires"
        assert ERIN.upn in TOTP_SECRETS, "the enrollment page showed the key"
        result = app.acquire_token_by_auth_code_flow(flow, fields)
        assert "access_token" in result, result
        assert_delegated_devops_token(result["access_token"], ERIN, mfa=True)
        ids = assert_id_token(result, ERIN)
        # msal sends sha256(hex) of its secret nonce; the id token echoes exactly what was sent.
        assert ids["nonce"] == hashlib.sha256(flow["nonce"].encode()).hexdigest()
        response = connection_data(entryway, result["access_token"])
        assert response.status_code == 200, response.text

    with fresh_page(browser) as page:
        with loopback_redirect() as (redirect_uri, catch):
            flow = app.initiate_auth_code_flow(
                [DEVOPS_SCOPE], redirect_uri=redirect_uri, response_mode="form_post"
            )
            page.goto(flow["auth_uri"])
            sign_in(page, entryway, ERIN, shots=True)  # now the TOTP prompt, not enrollment
            fields = catch.wait()
        result = app.acquire_token_by_auth_code_flow(flow, fields)
        assert "access_token" in result, result
        assert_delegated_devops_token(result["access_token"], ERIN, mfa=True)

        # The same browser again: a session exists, so the picker offers Erin's account.
        with loopback_redirect() as (redirect_uri, catch):
            flow = app.initiate_auth_code_flow(
                [DEVOPS_SCOPE], redirect_uri=redirect_uri, response_mode="form_post", prompt="select_account"
            )
            page.goto(flow["auth_uri"])
            tile = page.locator(f'[data-upn="{ERIN.upn}"]')
            tile.wait_for()
            assert page.locator("#otherTile").count() == 1
            screenshot(page, "account-picker")
            tile.click()
            fields = catch.wait()
        result = app.acquire_token_by_auth_code_flow(flow, fields)
        assert "access_token" in result, result
        assert_delegated_devops_token(result["access_token"], ERIN, mfa=True)


def test_consent_for_an_app_that_is_not_pre_consented(entryway: Instance, page: Page) -> None:
    app = public_client(entryway, CONSENT_DEMO_ID)
    with loopback_redirect() as (redirect_uri, catch):
        flow = app.initiate_auth_code_flow(
            [DEVOPS_SCOPE], redirect_uri=redirect_uri, response_mode="form_post"
        )
        page.goto(flow["auth_uri"])
        sign_in(page, entryway, ADA)
        page.locator("#idBtn_Back").wait_for()  # Cancel, beside Accept
        assert page.inner_text("#appName") == "consent-demo"
        screenshot(page, "consent")
        page.click(PRIMARY)
        fields = catch.wait()
    result = app.acquire_token_by_auth_code_flow(flow, fields)
    assert "access_token" in result, result
    assert_delegated_devops_token(result["access_token"], ADA, client_id=CONSENT_DEMO_ID)


def test_device_code_pages_in_chromium(entryway: Instance, page: Page) -> None:
    app = public_client(entryway)
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    page.goto(flow["verification_uri"])
    page.locator("#otc").fill(flow["user_code"])
    screenshot(page, "device-code")
    page.click(PRIMARY)
    sign_in(page, entryway, ADA)
    page.locator("#idBtn_Back").wait_for()  # the confirmation: Continue or Cancel
    page.click(PRIMARY)
    page.locator(PRIMARY).wait_for(state="detached")
    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
    assert "access_token" in result, result
    assert_delegated_devops_token(result["access_token"], ADA)


def test_redirect_uri_mismatch_error_page(entryway: Instance, page: Page) -> None:
    query = {
        "client_id": AZURE_CLI_ID,
        "response_type": "code",
        "redirect_uri": "https://attacker.example/callback",
        "scope": f"{DEVOPS_SCOPE} openid offline_access",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "response_mode": "form_post",
    }
    page.goto(f"{entryway.identity}/{CONTOSO_TENANT}/oauth2/v2.0/authorize?{urlencode(query)}")
    assert "AADSTS50011" in page.inner_text("body")
    assert page.url.startswith(entryway.identity)
    screenshot(page, "error")


def test_azure_identity_interactive_browser_credential(
    entryway: Instance, page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    """azure-identity opens the system browser with webbrowser.open; here that hands the URL to Chromium.
    get_token blocks until the redirect arrives, so it runs in a thread; Playwright stays in this one."""
    urls: queue.Queue[str] = queue.Queue()

    def open_in_chromium(url: str, *_: object, **__: object) -> bool:
        urls.put(url)
        return True

    monkeypatch.setattr(webbrowser, "open", open_in_chromium)
    credential = InteractiveBrowserCredential(
        client_id=AZURE_CLI_ID,
        tenant_id=CONTOSO_TENANT,
        authority=entryway.identity,
        disable_instance_discovery=True,
        timeout=60,
    )
    with ThreadPoolExecutor(1) as app:
        pending = app.submit(credential.get_token, DEVOPS_SCOPE)
        page.goto(urls.get(timeout=30))
        sign_in(page, entryway, ADA)
        token = pending.result(timeout=60)
    assert_delegated_devops_token(token.token, ADA)
    assert connection_data(entryway, token.token).status_code == 200
    # Cached: no second browser.
    assert credential.get_token(DEVOPS_SCOPE).token == token.token
    assert urls.empty()
