"""The DevOps origin's web pages: sign-in through the identity platform as a confidential OIDC client (code +
PKCE, nonce, state bound to the browser), web sessions (digest only), sign-out, and the personal access token
page. Over HTTP with requests where a test needs to send what no browser would (no CSRF token, another
browser's answer), in headless Chromium for what a person does (MFA, create, copy once, revoke). The Chromium
tests also take docs/screenshots/pat-*.png (written when ENTRYWAY_SCREENSHOTS=1)."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
import requests
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.sync_api import Browser, Page
from sqlalchemy import select

from entryway.config.declarative import apply_config
from entryway.devops.auth.jwks import IdentityKeySource
from entryway.devops.notifications.service import NotificationService
from entryway.devops.orgs.service import OrgService
from entryway.devops.pats.policy import LOCAL_ACTOR, PatPolicyService
from entryway.devops.portal.oidc import OidcClient, PendingSignIn, SignInFailed
from entryway.devops.portal.sessions import SESSION_COOKIE, SIGN_IN_COOKIE
from entryway.identity.directory.first_party import DEVOPS_WEB
from entryway.identity.directory.groups import GroupService
from entryway.identity.directory.installation import DEVOPS_WEB_SECRET_KEY_ID, register_devops_web_client
from entryway.identity.directory.service import DirectoryService
from entryway.keys.signer import KeyringSigner
from entryway.store.models import (
    ApplicationRow,
    AuditEventRow,
    ClientSecretRow,
    PersonalAccessTokenRow,
    UserRow,
    WebSessionRow,
)
from tests.conftest import (
    AZURE_CLI_ID,
    CHEN,
    CONTOSO_TENANT,
    NORTHWIND_TENANT,
    Instance,
    SignInUser,
    identity_session,
    parse_page,
    screenshot,
    walk_sign_in,
)
from tests.e2e.test_browser_signin import fresh_page, sign_in

ORG = "tailspin"
TOKENS = f"/{ORG}/_usersSettings/tokens"
# Pia needs MFA (the Chromium test enrolls her authenticator); Quinn and Chen do not. Both are members of
# tailspin, an organization of these tests alone, so no other test's policy reaches them.
PIA = SignInUser("pia@contoso.test", "Pia-Uses-The-Pages-0042", "Pia Portal", mfa=True)
QUINN = SignInUser("quinn@contoso.test", "Quinn-Posts-Forms-0042", "Quinn Forms", mfa=False)
# Rosa is a Project Collection Administrator of tailspin; Tess an Azure DevOps Administrator of the tenant.
ROSA = SignInUser("rosa@contoso.test", "Rosa-Runs-The-Org-0042", "Rosa OrgAdmin", mfa=False)
TESS = SignInUser("tess@contoso.test", "Tess-Runs-The-Tenant-0042", "Tess TenantAdmin", mfa=False)
PORTAL_GROUP = "portal-testers"
PORTAL_CONFIG = f"""\
tenants:
  - id: {CONTOSO_TENANT}
    domains: [contoso.test]
    users:
      - upn: {PIA.upn}
        password: "{PIA.password}"
        display_name: {PIA.display_name}
        mfa_required: true
      - upn: {QUINN.upn}
        password: "{QUINN.password}"
        display_name: {QUINN.display_name}
        mfa_required: false
      - upn: {ROSA.upn}
        password: "{ROSA.password}"
        display_name: {ROSA.display_name}
        mfa_required: false
      - upn: {TESS.upn}
        password: "{TESS.password}"
        display_name: {TESS.display_name}
        mfa_required: false
organizations:
  - name: {ORG}
    tenant: contoso.test
    members:
      - user: {PIA.upn}
        access: basic
      - user: {QUINN.upn}
        access: basic
      - user: {ROSA.upn}
        access: basic
        organization_admin: true
      - user: {TESS.upn}
        access: basic
"""


@dataclass(frozen=True)
class Portal:
    instance: Instance
    org_id: str
    group_id: str  # portal-testers, whose one member is Quinn

    def url(self, path: str) -> str:
        return f"{self.instance.devops}{path}"


@pytest.fixture(scope="module")
def portal(entryway: Instance) -> Portal:
    runtime = entryway.runtime
    apply_config(runtime, yaml.safe_load(PORTAL_CONFIG), source="test_portal")
    with runtime.db.unit_of_work() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        tenant = directory.find_tenant(CONTOSO_TENANT)
        groups = GroupService(session, runtime.clock)
        groups.add_role(tenant, directory.get_user(TESS.upn), "Azure DevOps Administrator")
        group = groups.find_group_or_none(tenant, PORTAL_GROUP) or groups.create_group(tenant, PORTAL_GROUP)
        groups.add_member(tenant, PORTAL_GROUP, groups.resolve_member(tenant, user=QUINN.upn))
        group_id = group.object_id
        org = OrgService(session, runtime.clock).find(ORG)
        assert org is not None
        return Portal(entryway, org.id, group_id)


def signed_in(portal: Portal, user: SignInUser) -> tuple[requests.Session, str]:
    """A browser (requests) signed in to the DevOps pages as `user` through the identity platform's pages;
    returns it and the HTML of the page it landed on."""
    http = identity_session(portal.instance)
    response = http.get(portal.url(TOKENS), timeout=30)
    assert urlsplit(response.url).netloc == urlsplit(portal.instance.identity).netloc, "sent to sign in"
    result = walk_sign_in(http, response, user=user, clock=portal.instance.clock)
    assert result.url == portal.url(TOKENS), result.html
    return http, result.html


def csrf_of(html: str) -> str:
    for form in parse_page(html).forms:
        hidden = form.hidden()
        if "csrf" in hidden:
            return hidden["csrf"]
    raise AssertionError("no CSRF token on the page")


def authorize_redirect(portal: Portal, http: requests.Session) -> str:
    """Start a sign-in in `http` and return the authorization request URL the DevOps origin sent it to."""
    start = http.get(portal.url(f"/_signin?reply_to={TOKENS}"), allow_redirects=False, timeout=30)
    assert start.status_code == 303
    return start.headers["location"]


class _Answered(Exception):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def answer_of(portal: Portal, http: requests.Session, user: SignInUser) -> str:
    """Sign in at the identity platform in `http` but stop before following its answer: the redirect URI
    with the code and the state."""
    page = http.get(authorize_redirect(portal, http), timeout=30)

    def stop_at_answer(response: requests.Response, *_args: object, **_kwargs: object) -> None:
        location = response.headers.get("location", "")
        if response.is_redirect and location.startswith(portal.url("/_signedin")):
            raise _Answered(location)

    http.hooks["response"].append(stop_at_answer)
    try:
        walk_sign_in(http, page, user=user, clock=portal.instance.clock)
    except _Answered as answered:
        return answered.location
    finally:
        http.hooks["response"].remove(stop_at_answer)
    raise AssertionError("the identity platform did not answer with a redirect to /_signedin")


# --- sign-in ---------------------------------------------------------------------------------------------


def test_a_visitor_without_a_session_is_sent_to_sign_in_with_pkce_nonce_and_state(portal: Portal) -> None:
    http = identity_session(portal.instance)
    page = http.get(portal.url(TOKENS), allow_redirects=False, timeout=30)
    assert page.status_code == 303
    assert page.headers["location"] == f"/_signin?reply_to={TOKENS}"
    start = http.get(portal.url(page.headers["location"]), allow_redirects=False, timeout=30)
    assert start.status_code == 303
    target = urlsplit(start.headers["location"])
    assert f"{target.scheme}://{target.netloc}" == portal.instance.identity
    assert target.path == f"/{CONTOSO_TENANT}/oauth2/v2.0/authorize", "the organization's tenant"
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert query["client_id"] == DEVOPS_WEB.app_id
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == portal.url("/_signedin")
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 43
    assert len(query["nonce"]) >= 43
    assert "code_verifier" not in query
    cookie = start.headers["set-cookie"]
    assert cookie.startswith(f"{SIGN_IN_COOKIE}=")
    for flag in ("Secure", "HttpOnly", "SameSite=lax", "Path=/"):
        assert flag.lower() in cookie.lower(), cookie


def test_a_sign_in_keeps_only_the_session_cookie_digest(portal: Portal) -> None:
    http, html = signed_in(portal, QUINN)
    assert parse_page(html).text_by_id["userName"] == QUINN.upn
    cookie = http.cookies.get(SESSION_COOKIE)
    assert cookie is not None
    assert cookie.startswith("ewws_")
    runtime = portal.instance.runtime
    with runtime.db.read() as session:
        rows = list(session.scalars(select(WebSessionRow).where(WebSessionRow.principal_name == QUINN.upn)))
        assert any(row.digest == runtime.digester.digest(cookie) for row in rows)
        assert all(cookie not in json.dumps([row.digest, row.claims, row.name]) for row in rows)
    assert http.cookies.get(SIGN_IN_COOKIE) is None, "the sign-in cookie is spent"


def test_the_client_credential_is_derived_and_registered_only_as_a_digest(portal: Portal) -> None:
    runtime = portal.instance.runtime
    secret = runtime.devops_web_client_secret
    assert secret.startswith("ewcs_")
    assert secret == runtime.devops_web_client_secret, "recomputed, not drawn"
    with runtime.db.read() as session:
        row = session.get(ClientSecretRow, DEVOPS_WEB_SECRET_KEY_ID)
        assert row is not None
        assert row.digest == runtime.digester.digest(secret)
        assert secret not in {row.digest, row.hint, row.display_name}


def test_servers_with_other_origins_on_the_same_database_keep_each_others_redirect_uris(
    portal: Portal,
) -> None:
    runtime = portal.instance.runtime

    def register(origin: str) -> list[str]:
        with runtime.db.unit_of_work() as session:
            register_devops_web_client(
                session,
                runtime.clock,
                runtime.digester,
                devops_origin=origin,
                secret=runtime.devops_web_client_secret,
            )
            app = session.scalars(
                select(ApplicationRow).where(ApplicationRow.app_id == DEVOPS_WEB.app_id)
            ).one()
            return list(app.redirect_uris)

    uris = register("https://devops.other.example:4443")
    assert uris[:2] == [
        "https://devops.other.example:4443/_signedin",
        "https://devops.other.example:4443/_signedout",
    ]
    assert portal.url("/_signedin") in uris
    assert register(portal.instance.devops)[:2] == [portal.url("/_signedin"), portal.url("/_signedout")]
    signed_in(portal, QUINN)


def test_the_code_is_worthless_without_the_client_secret(portal: Portal) -> None:
    http = identity_session(portal.instance)
    answer = answer_of(portal, http, QUINN)
    query = {k: v[0] for k, v in parse_qs(urlsplit(answer).query).items()}
    # The verifier is in the browser's sealed sign-in cookie (signed, not secret from its own browser).
    sealed = http.cookies[SIGN_IN_COOKIE].rpartition(".")[0]
    verifier = json.loads(base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4)))["code_verifier"]
    refused = requests.post(
        f"{portal.instance.identity}/{CONTOSO_TENANT}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": DEVOPS_WEB.app_id,
            "code": query["code"],
            "redirect_uri": portal.url("/_signedin"),
            "code_verifier": verifier,
        },
        verify=portal.instance.ca_bundle,
        timeout=30,
    )
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "invalid_client"


def test_the_answer_is_taken_only_in_the_browser_that_started_the_sign_in(portal: Portal) -> None:
    mine = identity_session(portal.instance)
    answer = answer_of(portal, mine, QUINN)
    other = identity_session(portal.instance)
    stolen = other.get(answer, allow_redirects=False, timeout=30)
    assert stolen.status_code == 400
    assert other.cookies.get(SESSION_COOKIE) is None
    tampered = mine.get(answer.replace("state=", "state=x"), allow_redirects=False, timeout=30)
    assert tampered.status_code == 400
    taken = mine.get(answer, allow_redirects=False, timeout=30)
    assert taken.status_code == 303, taken.text
    assert taken.headers["location"] == TOKENS
    assert mine.cookies.get(SESSION_COOKIE) is not None


def _id_token_claims(portal: Portal, pending: PendingSignIn) -> dict[str, Any]:
    now = int(portal.instance.clock.timestamp())
    return {
        "aud": DEVOPS_WEB.app_id,
        "iss": f"{portal.instance.identity}/{CONTOSO_TENANT}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "tid": CONTOSO_TENANT,
        "oid": "11111111-2222-4333-8444-555555555555",
        "nonce": pending.nonce,
        "name": "Forged Person",
    }


def _verify_id_token(portal: Portal, token: str, pending: PendingSignIn) -> dict[str, Any]:
    """The DevOps origin's check of an ID token, with the identity platform's keys fetched over TLS."""
    instance = portal.instance
    client = OidcClient(
        identity_origin=instance.identity,
        devops_origin=instance.devops,
        client_secret="unused",
        digester=instance.runtime.digester,
        clock=instance.clock,
    )

    async def verify() -> dict[str, Any]:
        tls = ssl.create_default_context(cafile=instance.ca_bundle)
        async with httpx.AsyncClient(verify=tls) as http:
            keys = IdentityKeySource(instance.identity, http, instance.clock)
            return await client.verify_id_token(keys, token, pending)

    return asyncio.run(verify())


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({}, None),
        ({"nonce": "another-sign-in"}, "nonce"),
        ({"aud": AZURE_CLI_ID}, "InvalidAudienceError"),
        ({"iss": "https://login.microsoftonline.com/x/v2.0"}, "InvalidIssuerError"),
        ({"tid": NORTHWIND_TENANT}, "tid"),
        ({"exp": 1}, "exp"),
        ({"iat": 4_000_000_000}, "iat"),
        ({"nonce": None}, "MissingRequiredClaimError"),
        ({"oid": None}, "MissingRequiredClaimError"),
    ],
)
def test_the_id_token_is_verified_claim_by_claim(
    portal: Portal, changes: dict[str, Any], refusal: str | None
) -> None:
    """ID tokens signed with the identity platform's own key (so only the claims differ), through the JWKS the
    DevOps origin fetches over TLS."""
    pending = PendingSignIn(CONTOSO_TENANT, TOKENS, "the-nonce-of-this-sign-in", "verifier")
    claims = {k: v for k, v in {**_id_token_claims(portal, pending), **changes}.items() if v is not None}
    token = KeyringSigner(portal.instance.runtime.keyring).sign(claims)
    if refusal is None:
        assert _verify_id_token(portal, token, pending)["name"] == "Forged Person"
        return
    with pytest.raises(SignInFailed, match=refusal):
        _verify_id_token(portal, token, pending)


def test_an_unsigned_or_foreign_id_token_is_refused(portal: Portal) -> None:
    pending = PendingSignIn(CONTOSO_TENANT, TOKENS, "nonce", "verifier")
    claims = _id_token_claims(portal, pending)
    foreign_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tokens = {
        "algorithm": jwt.encode(claims, "", algorithm="none"),
        "kid": jwt.encode(claims, foreign_key, algorithm="RS256", headers={"kid": "not-published"}),
        "header": "not.a.jwt",
    }
    for refusal, token in tokens.items():
        with pytest.raises(SignInFailed, match=refusal):
            _verify_id_token(portal, token, pending)


def test_an_error_answer_is_shown_not_followed(portal: Portal) -> None:
    http = identity_session(portal.instance)
    state = parse_qs(urlsplit(authorize_redirect(portal, http)).query)["state"][0]
    page = http.get(
        portal.url("/_signedin"),
        params={
            "error": "access_denied",
            "error_description": "AADSTS65004: <b>declined</b>",
            "state": state,
        },
        timeout=30,
    )
    assert page.status_code == 400
    assert "AADSTS65004: &lt;b&gt;declined&lt;/b&gt;" in page.text
    assert http.cookies.get(SESSION_COOKIE) is None


def test_sign_in_refuses_to_return_anywhere_but_an_organization_page(portal: Portal) -> None:
    http = identity_session(portal.instance)
    for reply_to in (
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil",
        "",
        "/nosuchorg/_usersSettings/tokens",
    ):
        response = http.get(
            portal.url("/_signin"), params={"reply_to": reply_to}, allow_redirects=False, timeout=30
        )
        assert response.status_code in {400, 404}, reply_to
        assert "location" not in response.headers


def test_a_non_member_is_refused(portal: Portal) -> None:
    http = identity_session(portal.instance)
    response = http.get(portal.url(TOKENS), timeout=30)
    result = walk_sign_in(http, response, user=CHEN, clock=portal.instance.clock)
    assert result.url == portal.url(TOKENS)
    final = http.get(portal.url(TOKENS), timeout=30)
    assert final.status_code == 403
    assert "not a member of the organization tailspin" in final.text


def test_sign_out_ends_the_web_session(portal: Portal) -> None:
    http, html = signed_in(portal, QUINN)
    cookie = http.cookies[SESSION_COOKIE]
    refused = http.post(portal.url("/_signout"), data={}, allow_redirects=False, timeout=30)
    assert refused.status_code == 403, "no CSRF token"
    out = http.post(portal.url("/_signout"), data={"csrf": csrf_of(html)}, allow_redirects=False, timeout=30)
    assert out.status_code == 303
    assert out.headers["location"].startswith(
        f"{portal.instance.identity}/{CONTOSO_TENANT}/oauth2/v2.0/logout?"
    )
    final = http.get(out.headers["location"], timeout=30)
    assert final.url == portal.url("/_signedout")
    assert "You signed out" in final.text
    runtime = portal.instance.runtime
    with runtime.db.read() as session:
        assert session.get(WebSessionRow, runtime.digester.digest(cookie)) is None
    replay = requests.get(
        portal.url(TOKENS),
        cookies={SESSION_COOKIE: cookie},
        allow_redirects=False,
        verify=portal.instance.ca_bundle,
        timeout=30,
    )
    assert replay.status_code == 303
    assert replay.headers["location"].startswith("/_signin")


# --- the token page over HTTP --------------------------------------------------------------------------------


def _pats_named(portal: Portal, name: str) -> list[PersonalAccessTokenRow]:
    with portal.instance.runtime.db.read() as session:
        return list(
            session.scalars(select(PersonalAccessTokenRow).where(PersonalAccessTokenRow.display_name == name))
        )


def test_a_form_without_its_csrf_token_changes_nothing(portal: Portal) -> None:
    http, html = signed_in(portal, QUINN)
    form = {
        "name": "no-csrf",
        "organization": "this",
        "expires": "30",
        "access": "custom",
        "family-0": "vso.code",
    }
    for csrf in (None, "", "0" * 64, csrf_of(html)[:-1] + "x"):
        data = dict(form) if csrf is None else {**form, "csrf": csrf}
        response = http.post(portal.url(TOKENS), data=data, timeout=30)
        assert response.status_code == 403, csrf
        assert "This page expired" in response.text
    assert _pats_named(portal, "no-csrf") == []
    _other, other_html = signed_in(portal, QUINN)
    foreign = http.post(portal.url(TOKENS), data={**form, "csrf": csrf_of(other_html)}, timeout=30)
    assert foreign.status_code == 403, "a token of another session"
    assert _pats_named(portal, "no-csrf") == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "Give the personal access token a name."),
        ({"name": "x" * 300}, "at most 256 characters"),
        ({"family-0": "", "family-2": "vso.nonsense"}, "Choose one or more known scopes"),
        ({"expires": "999"}, "Choose one of the expiration periods."),
        ({"expires": "abc"}, "Choose one of the expiration periods."),
    ],
)
def test_bad_input_on_the_create_form_is_shown(portal: Portal, changes: dict[str, str], message: str) -> None:
    http, html = signed_in(portal, QUINN)
    form = {"csrf": csrf_of(html), "name": "bad-input", "organization": "this", "expires": "30"}
    form |= {"access": "custom", "family-0": "vso.code"}
    response = http.post(portal.url(TOKENS), data={**form, **changes}, timeout=30)
    assert response.status_code == 400
    assert message in parse_page(response.text).text_by_id["errorText"]
    assert "newToken" not in parse_page(response.text).text_by_id
    assert _pats_named(portal, "bad-input") == []


def test_revoking_what_is_not_yours_is_refused(portal: Portal) -> None:
    http, html = signed_in(portal, QUINN)
    for value in ("not-a-guid", "00000000-0000-4000-8000-000000000000"):
        response = http.post(
            portal.url(f"{TOKENS}/revoke"), data={"csrf": csrf_of(html), "authorizationId": value}, timeout=30
        )
        assert response.status_code == 400
        assert parse_page(response.text).text_by_id["errorText"]


def test_the_users_notifications_are_shown_and_can_be_marked_read(portal: Portal) -> None:
    runtime = portal.instance.runtime
    http, _html = signed_in(portal, QUINN)
    with runtime.db.read() as session:
        object_id = session.scalars(
            select(UserRow.object_id).where(UserRow.user_principal_name == QUINN.upn)
        ).one()
    with runtime.db.unit_of_work() as session:
        note = NotificationService(session, runtime.clock).notify(
            recipient_object_id=object_id,
            tenant_id=CONTOSO_TENANT,
            recipient_name=QUINN.display_name,
            organization_id=portal.org_id,
            kind="patLeakRevoked",
            subject="Your personal access token 'ci' was revoked",
            body="It was found in a public repository.",
        )
    page = http.get(portal.url(TOKENS), timeout=30)
    assert "Your personal access token &#39;ci&#39; was revoked" in page.text
    read = http.post(
        portal.url(f"{TOKENS}/notifications/read"),
        data={"csrf": csrf_of(page.text), "notificationId": note.id},
        timeout=30,
    )
    assert read.status_code == 200
    with runtime.db.read() as session:
        listed = NotificationService(session, runtime.clock).list_for(object_id, CONTOSO_TENANT)
        assert next(n for n in listed if n.id == note.id).is_read
    missing = http.post(
        portal.url(f"{TOKENS}/notifications/read"),
        data={"csrf": csrf_of(page.text), "notificationId": "nope"},
        timeout=30,
    )
    assert missing.status_code == 404


# --- in Chromium -------------------------------------------------------------------------------------------


def _create(page: Page, name: str, scope: str, *, organization: str = "this") -> None:
    page.fill("#tokenName", name)
    page.check("#orgAll" if organization == "all" else "#orgThis")
    page.check("#accessCustom")
    page.check(f'input[data-scope="{scope}"]')
    page.select_option("#expires", "30")
    page.click("#createToken")


def test_in_chromium_sign_in_with_mfa_create_a_token_seen_once_use_it_and_revoke_it(
    portal: Portal, browser: Browser
) -> None:
    instance = portal.instance
    with fresh_page(browser) as page:
        page.goto(portal.url(TOKENS))
        assert page.url.startswith(instance.identity), "signed out: sent to the identity platform"
        sign_in(page, instance, PIA)
        page.wait_for_url(portal.url(TOKENS))
        assert page.inner_text("#userName") == PIA.upn
        assert page.locator("#noTokens").count() == 1
        screenshot(page, "pat-list-empty")

        _create(page, "laptop git", "vso.code_write")
        token = page.input_value("#newToken")
        assert len(token) == 84
        assert page.inner_text("#createdName") == "laptop git"
        screenshot(page, "pat-created")
        used = requests.get(
            portal.url(f"/{ORG}/_apis/connectionData"),
            auth=("", token),
            verify=instance.ca_bundle,
            timeout=30,
        )
        assert used.status_code == 200, "the token works"

        page.goto(portal.url(TOKENS))
        assert token not in page.content(), "shown once, never again"
        row = page.locator("#tokenList tr", has_text="laptop git")
        assert row.get_attribute("data-status") == "active"
        assert "vso.code_write" in row.inner_text()
        screenshot(page, "pat-list")

        row.locator("button.revoke").click()
        page.wait_for_url(portal.url(TOKENS))
        assert page.locator("#tokenList tr", has_text="laptop git").get_attribute("data-status") == "revoked"
        refused = requests.get(
            portal.url(f"/{ORG}/_apis/connectionData"),
            auth=("", token),
            verify=instance.ca_bundle,
            timeout=30,
        )
        assert refused.status_code == 401, "revoked at once"

        page.click("#signOut")
        page.wait_for_url(portal.url("/_signedout"))
        page.goto(portal.url(TOKENS))
        assert page.url.startswith(instance.identity), (
            "signed out everywhere: the identity platform asks again"
        )


def test_in_chromium_a_policy_violation_is_explained(portal: Portal, browser: Browser) -> None:
    runtime = portal.instance.runtime
    with runtime.db.unit_of_work() as session:
        org = OrgService(session, runtime.clock).find(ORG)
        assert org is not None
        PatPolicyService(session, runtime.clock).set_org_policy(org, LOCAL_ACTOR, restrict_creation=True)
    try:
        with fresh_page(browser) as page:
            page.goto(portal.url(TOKENS))
            sign_in(page, portal.instance, QUINN)
            page.wait_for_url(portal.url(TOKENS))
            _create(page, "blocked by policy", "vso.code")
            error = page.inner_text("#errorText")
            assert "This organization's policy restricts the creation of personal access tokens" in error
            assert page.locator("#newToken").count() == 0
            assert page.input_value("#tokenName") == "blocked by policy", "what was typed is kept"
            screenshot(page, "pat-policy-violation")
    finally:
        with runtime.db.unit_of_work() as session:
            org = OrgService(session, runtime.clock).find(ORG)
            assert org is not None
            PatPolicyService(session, runtime.clock).set_org_policy(org, LOCAL_ACTOR, restrict_creation=False)
    assert _pats_named(portal, "blocked by policy") == []


# --- the administrators' pages -------------------------------------------------------------------------------

ORG_POLICY = f"/{ORG}/_settings/organizationPolicy"
TENANT_POLICY = f"/{ORG}/_settings/organizationAad"
REPORT = f"/{ORG}/_settings/pats"


def _org_policy(portal: Portal) -> Any:
    runtime = portal.instance.runtime
    with runtime.db.read() as session:
        return PatPolicyService(session, runtime.clock).org_policy(portal.org_id)


def _tenant_policy(portal: Portal) -> Any:
    runtime = portal.instance.runtime
    with runtime.db.read() as session:
        return PatPolicyService(session, runtime.clock).tenant_policy(CONTOSO_TENANT)


def _create_over_http(portal: Portal, http: requests.Session, name: str, **fields: str) -> requests.Response:
    html = http.get(portal.url(TOKENS), timeout=30).text
    form = {"csrf": csrf_of(html), "name": name, "organization": "this", "expires": "30", "access": "custom"}
    return http.post(portal.url(TOKENS), data={**form, "family-0": "vso.code", **fields}, timeout=30)


def test_a_member_who_is_no_administrator_is_refused_the_admin_pages(portal: Portal) -> None:
    http, html = signed_in(portal, QUINN)
    assert "navOrgPolicy" not in parse_page(html).text_by_id
    for path in (ORG_POLICY, TENANT_POLICY, REPORT):
        assert http.get(portal.url(path), timeout=30).status_code == 403, path
    for path, data in (
        (ORG_POLICY, {"action": "policy", "restrict_creation": "on"}),
        (TENANT_POLICY, {"action": "policy", "restrict_global": "on", "auto_revoke_leaked": "on"}),
    ):
        assert (
            http.post(portal.url(path), data={**data, "csrf": csrf_of(html)}, timeout=30).status_code == 403
        )
    assert not _org_policy(portal).restrict_creation
    assert not _tenant_policy(portal).restrict_global
    org_admin, _ = signed_in(portal, ROSA)
    assert org_admin.get(portal.url(TENANT_POLICY), timeout=30).status_code == 403, (
        "an org admin is no tenant admin"
    )


def test_an_org_admin_restricts_creation_and_allowlists_a_user_and_a_group(portal: Portal) -> None:
    admin, html = signed_in(portal, ROSA)
    assert parse_page(html).text_by_id.get("navOrgPolicy") == "Organization policies"
    page = admin.get(portal.url(ORG_POLICY), timeout=30)
    assert page.status_code == 200
    csrf = csrf_of(page.text)

    def post(**data: str) -> requests.Response:
        return admin.post(portal.url(ORG_POLICY), data={"csrf": csrf, **data}, timeout=30)

    quinn, _ = signed_in(portal, QUINN)
    try:
        assert post(action="policy", restrict_creation="on").status_code == 200  # 303 to ?saved=1
        assert _org_policy(portal).restrict_creation
        refused = _create_over_http(portal, quinn, "refused by the org")
        assert refused.status_code == 400
        assert "restricts the creation of personal access tokens" in refused.text

        saved = post(action="allow", kind="group", principal=portal.group_id, name=PORTAL_GROUP)
        assert "Saved." in saved.text
        assert PORTAL_GROUP in saved.text
        allowed, _ = signed_in(portal, QUINN)  # a new sign-in: the groups claim now lists portal-testers
        assert _create_over_http(portal, allowed, "allowed by group").status_code == 200
        assert post(action="disallow", principal_id=portal.group_id).status_code == 200

        assert post(action="allow", kind="user", principal=QUINN.upn.upper()).status_code == 200
        assert [e.display_name for e in _org_policy(portal).allowlist] == [QUINN.display_name]
        assert _create_over_http(portal, quinn, "allowed by name").status_code == 200

        for data, message in (
            ({"kind": "user", "principal": "nobody@contoso.test"}, "No user 'nobody@contoso.test'"),
            ({"kind": "group", "principal": "not-a-guid"}, "is not an object id"),
            ({"kind": "robot", "principal": QUINN.upn}, "Choose a user or a group."),
        ):
            bad = post(action="allow", **data)
            assert bad.status_code == 400
            assert message in parse_page(bad.text).text_by_id["errorText"]
        assert post(action="dance").status_code == 400
        no_csrf = admin.post(portal.url(ORG_POLICY), data={"action": "policy"}, timeout=30)
        assert no_csrf.status_code == 403
        assert _org_policy(portal).restrict_creation, "the refused form changed nothing"
    finally:
        runtime = portal.instance.runtime
        with runtime.db.unit_of_work() as session:
            org = OrgService(session, runtime.clock).find(ORG)
            assert org is not None
            service = PatPolicyService(session, runtime.clock)
            service.set_org_policy(org, LOCAL_ACTOR, restrict_creation=False, packaging_only=False)
            for entry in service.org_policy(org.id).allowlist:
                service.disallow(
                    "organization", org.id, "restrictCreation", entry.principal_object_id, LOCAL_ACTOR
                )


def test_the_tenant_admins_page_sets_the_tenant_policies(portal: Portal) -> None:
    admin, html = signed_in(portal, TESS)
    assert parse_page(html).text_by_id.get("navTenantPolicy") == "Microsoft Entra policies"
    assert admin.get(portal.url(ORG_POLICY), timeout=30).status_code == 403, "a tenant admin is no org admin"
    page = admin.get(portal.url(TENANT_POLICY), timeout=30)
    assert page.status_code == 200
    csrf = csrf_of(page.text)

    def post(**data: str) -> requests.Response:
        return admin.post(portal.url(TENANT_POLICY), data={"csrf": csrf, **data}, timeout=30)

    quinn, _ = signed_in(portal, QUINN)
    try:
        saved = post(action="policy", restrict_full_scope="on", max_lifespan="on", max_lifespan_days="7")
        assert "Saved." in saved.text
        policy = _tenant_policy(portal)
        assert (policy.restrict_full_scope, policy.max_lifespan_days) == (True, 7)
        assert not policy.auto_revoke_leaked, "an unticked box turns it off"
        full = _create_over_http(portal, quinn, "full scope", access="full")
        assert full.status_code == 400
        assert "restricts full-scoped personal access tokens" in full.text
        for days in ("0", "366", "seven", ""):
            bad = post(action="policy", max_lifespan="on", max_lifespan_days=days)
            assert bad.status_code == 400, days
            assert "from 1 to 365" in parse_page(bad.text).text_by_id["errorText"]
        assert _tenant_policy(portal).max_lifespan_days == 7
        assert (
            post(action="allow", policy="restrictFullScope", kind="user", principal=QUINN.upn).status_code
            == 200
        )
        allowed = _create_over_http(portal, quinn, "full scope allowed", access="full")
        assert allowed.status_code == 200
        # 30 days asked, 7 given: the lifespan policy clamps, and the page says until when.
        week = (portal.instance.clock.now() + timedelta(days=7)).strftime("%Y-%m-%d")
        assert f"valid until {week}" in " ".join(parse_page(allowed.text).text_by_id["created"].split())
        bad_policy = post(action="allow", policy="restrictEverything", kind="user", principal=QUINN.upn)
        assert bad_policy.status_code == 400
    finally:
        runtime = portal.instance.runtime
        with runtime.db.unit_of_work() as session:
            service = PatPolicyService(session, runtime.clock)
            service.set_tenant_policy(
                CONTOSO_TENANT,
                LOCAL_ACTOR,
                restrict_global=False,
                restrict_full_scope=False,
                max_lifespan_days=None,
                auto_revoke_leaked=True,
            )
            for policy_name, entries in service.tenant_policy(CONTOSO_TENANT).allowlists.items():
                for entry in entries:
                    service.disallow(
                        "tenant", CONTOSO_TENANT, policy_name, entry.principal_object_id, LOCAL_ACTOR
                    )


def test_the_report_lists_the_pats_usable_in_the_organization(portal: Portal) -> None:
    quinn, _ = signed_in(portal, QUINN)
    assert _create_over_http(portal, quinn, "for the report").status_code == 200
    admin, _ = signed_in(portal, ROSA)
    page = admin.get(portal.url(REPORT), timeout=30)
    assert page.status_code == 200
    row = next(r for r in page.text.split("<tr") if "for the report" in r)
    assert QUINN.upn in row
    assert "unused" in row
    assert "revoke it" in row, "never used: nothing needs it"


def test_in_chromium_administrators_set_policies_and_read_the_report(
    portal: Portal, browser: Browser
) -> None:
    instance = portal.instance
    try:
        with fresh_page(browser) as page:
            page.goto(portal.url(ORG_POLICY))
            sign_in(page, instance, ROSA)
            page.wait_for_url(portal.url(ORG_POLICY))
            page.check("#restrictCreation")
            page.check("#packagingOnly")
            page.click("#saveOrgPolicy")
            page.wait_for_url(portal.url(ORG_POLICY + "?saved=1"))
            assert page.is_checked("#restrictCreation")
            assert page.is_checked("#packagingOnly")
            screenshot(page, "pat-org-policy")
            policy = _org_policy(portal)
            assert (policy.restrict_creation, policy.packaging_only) == (True, True)

            with fresh_page(browser) as member:
                member.goto(portal.url(TOKENS))
                sign_in(member, instance, QUINN)
                member.wait_for_url(portal.url(TOKENS))
                assert member.locator("#packagingOnly").count() == 1
                assert member.locator("#accessFull").count() == 0, "no full access on offer"
                _create(member, "feed reader", "vso.packaging")
                assert len(member.input_value("#newToken")) == 84

            page.click("#navReport")
            page.wait_for_url(portal.url(REPORT))
            assert page.locator("#report tr", has_text="feed reader").count() == 1
            screenshot(page, "pat-report")

        with fresh_page(browser) as page:
            page.goto(portal.url(TENANT_POLICY))
            sign_in(page, instance, TESS)
            page.wait_for_url(portal.url(TENANT_POLICY))
            page.check("#restrictGlobal")
            page.click("#saveTenantPolicy")
            page.wait_for_url(portal.url(TENANT_POLICY + "?saved=1"))
            assert _tenant_policy(portal).restrict_global
            screenshot(page, "pat-tenant-policy")
    finally:
        runtime = instance.runtime
        with runtime.db.unit_of_work() as session:
            org = OrgService(session, runtime.clock).find(ORG)
            assert org is not None
            service = PatPolicyService(session, runtime.clock)
            service.set_org_policy(org, LOCAL_ACTOR, restrict_creation=False, packaging_only=False)
            service.set_tenant_policy(
                CONTOSO_TENANT, LOCAL_ACTOR, restrict_global=False, auto_revoke_leaked=True
            )


def test_an_oversized_or_undecodable_form_changes_nothing(portal: Portal) -> None:
    http, html = signed_in(portal, QUINN)
    csrf = csrf_of(html)
    huge = f"csrf={csrf}&name=huge&expires=30&family-0=vso.code&pad={'x' * 70_000}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert http.post(portal.url(TOKENS), data=huge, headers=headers, timeout=30).status_code == 403
    garbled = f"csrf={csrf}&name=".encode() + b"\xff\xfe" + b"&expires=30&family-0=vso.code"
    assert http.post(portal.url(TOKENS), data=garbled, headers=headers, timeout=30).status_code == 403
    assert _pats_named(portal, "huge") == []


def test_a_global_token_is_listed_for_all_organizations(portal: Portal) -> None:
    http, _ = signed_in(portal, QUINN)
    created = _create_over_http(portal, http, "everywhere", organization="all")
    assert created.status_code == 200
    (row,) = _pats_named(portal, "everywhere")
    assert row.organization_id is None
    assert row.source == "web"
    listed = next(r for r in created.text.split("<tr") if "everywhere" in r)
    assert "All accessible organizations" in listed
    with portal.instance.runtime.db.read() as session:
        audit = session.scalars(
            select(AuditEventRow).where(
                AuditEventRow.action == "Token.Create", AuditEventRow.actor_name == QUINN.display_name
            )
        ).all()
    event = next(e for e in audit if e.details.get("authorizationId") == row.authorization_id)
    assert (event.credential_kind, event.method, event.path) == ("cookie:web", "POST", TOKENS)
    assert event.organization_id == portal.org_id


def test_a_form_sent_without_a_session_leads_to_sign_in_and_back_to_the_page(portal: Portal) -> None:
    anonymous = identity_session(portal.instance)
    for path in (TOKENS, f"{TOKENS}/revoke", ORG_POLICY):
        response = anonymous.post(portal.url(path), data={"name": "x"}, allow_redirects=False, timeout=30)
        assert response.status_code == 303
        assert response.headers["location"] == f"/_signin?reply_to={TOKENS}", path
    page = anonymous.get(portal.url(REPORT), allow_redirects=False, timeout=30)
    assert page.headers["location"] == f"/_signin?reply_to={REPORT}"


def test_an_expired_web_session_sends_the_person_to_sign_in_again(portal: Portal) -> None:
    http, _ = signed_in(portal, QUINN)
    runtime = portal.instance.runtime
    digest = runtime.digester.digest(http.cookies[SESSION_COOKIE])
    with runtime.db.unit_of_work() as session:
        row = session.get(WebSessionRow, digest)
        assert row is not None
        assert row.expires_at - row.created_at == timedelta(hours=8)
        row.expires_at = runtime.clock.now() - timedelta(seconds=1)
    page = http.get(portal.url(TOKENS), allow_redirects=False, timeout=30)
    assert page.status_code == 303
    assert page.headers["location"] == f"/_signin?reply_to={TOKENS}"


def test_an_answer_after_the_sign_in_expired_is_refused(portal: Portal) -> None:
    http = identity_session(portal.instance)
    answer = answer_of(portal, http, QUINN)
    portal.instance.clock.advance(timedelta(minutes=15, seconds=1))
    late = http.get(answer, allow_redirects=False, timeout=30)
    assert late.status_code == 400
    assert "expired" in late.text
    assert http.cookies.get(SESSION_COOKIE) is None


def test_pages_carry_a_fresh_csp_nonce_and_are_never_cached_or_framed(portal: Portal) -> None:
    http, _ = signed_in(portal, QUINN)
    nonces = set()
    for _ in range(2):
        page = http.get(portal.url(TOKENS), timeout=30)
        policy = page.headers["content-security-policy"]
        assert "script-src 'nonce-" in policy
        assert "frame-ancestors 'none'" in policy
        nonces.add(policy.split("'nonce-")[1].split("'")[0])
        assert page.headers["cache-control"] == "no-store, no-cache"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "<script" not in page.text, "no JavaScript"
    assert len(nonces) == 2


def test_the_session_cookie_is_secure_httponly_and_samesite_lax(portal: Portal) -> None:
    http = identity_session(portal.instance)
    answer = answer_of(portal, http, QUINN)
    taken = http.get(answer, allow_redirects=False, timeout=30)
    cookies = taken.raw.headers.getlist("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith(f"{SESSION_COOKIE}="))
    for flag in ("Secure", "HttpOnly", "SameSite=lax", "Path=/"):
        assert flag.lower() in session_cookie.lower(), session_cookie
    assert "domain=" not in session_cookie.lower()
    assert any(c.startswith(f"{SIGN_IN_COOKIE}=") and "max-age=0" in c.lower() for c in cookies), "spent"


def _ip_ca_validation(portal: Portal) -> bool:
    runtime = portal.instance.runtime
    with runtime.db.read() as session:
        org = OrgService(session, runtime.clock).find(ORG)
        assert org is not None
        return org.ip_conditional_access_validation


def test_an_org_admin_turns_ip_conditional_access_validation_on_and_off(portal: Portal) -> None:
    quinn, quinn_html = signed_in(portal, QUINN)
    refused = quinn.post(
        portal.url(ORG_POLICY),
        data={"csrf": csrf_of(quinn_html), "action": "security", "ip_ca_validation": "on"},
        timeout=30,
    )
    assert refused.status_code == 403
    assert not _ip_ca_validation(portal)

    admin, _ = signed_in(portal, ROSA)
    page = admin.get(portal.url(ORG_POLICY), timeout=30)
    assert 'id="ipCaValidation"' in page.text
    assert 'id="ipCaValidation" checked' not in page.text
    csrf = csrf_of(page.text)
    try:
        on = admin.post(
            portal.url(ORG_POLICY),
            data={"csrf": csrf, "action": "security", "ip_ca_validation": "on"},
            timeout=30,
        )
        assert on.status_code == 200  # 303 to ?saved=1
        assert "Saved." in on.text
        assert 'id="ipCaValidation" checked' in on.text
        assert _ip_ca_validation(portal)
        forged = admin.post(portal.url(ORG_POLICY), data={"csrf": "forged", "action": "security"}, timeout=30)
        assert forged.status_code in (400, 403)
        assert _ip_ca_validation(portal)
    finally:
        off = admin.post(portal.url(ORG_POLICY), data={"csrf": csrf, "action": "security"}, timeout=30)
    assert off.status_code == 200
    assert not _ip_ca_validation(portal)
    runtime = portal.instance.runtime
    with runtime.db.read() as session:
        changes = list(
            session.scalars(
                select(AuditEventRow).where(
                    AuditEventRow.action == "OrganizationPolicy.PolicyValueUpdated",
                    AuditEventRow.actor_name == ROSA.display_name,
                )
            )
        )
    assert [c.details["value"] for c in changes] == [True, False]
