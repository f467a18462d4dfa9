"""User grants at the token endpoint over raw HTTP: the password grant (which needs no pages, so it reaches
every rule of the token side), refresh-token rotation and family revocation, lifetimes, the device
authorization endpoint's answers and errors, and MSAL's user-realm pre-flight.

Flows through the sign-in pages with the real clients live in tests/e2e.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import requests

from entryway.identity.directory.first_party import AZURE_CLI, AZURE_DEVOPS, VISUAL_STUDIO
from entryway.identity.directory.service import DirectoryService
from tests.conftest import DEVOPS_SCOPE, Instance

PASSWORD = "Grants-Test-Password-0042"
USER_SCOPE = f"{DEVOPS_SCOPE} offline_access openid profile"
ENTRA_ERROR_KEYS = ["error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id"]


@dataclass(frozen=True)
class Realm:
    tenant_id: str
    domain: str
    web_app_id: str
    web_app_secret: str
    native_app_id: str  # a public client nobody consented to
    strict_tenant_id: str  # short refresh-token inactivity and sign-in frequency


@pytest.fixture(scope="module")
def realm(entryway: Instance) -> Realm:
    """A tenant of this module's own, so that lockouts and lifetimes touch no other test."""
    runtime = entryway.runtime
    with runtime.db.unit_of_work() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        tenant = directory.create_tenant(["grants.test"], display_name="Grants")
        for name, mfa in [("gil", False), ("hal", True), ("ivy", False), ("jon", False), ("kim", False)]:
            directory.create_user(tenant, f"{name}@grants.test", PASSWORD, name.title(), mfa_required=mfa)
        web_app, _ = directory.create_application(tenant, "grants-web")
        secret = directory.add_client_secret(web_app)
        native_app, _ = directory.create_application(tenant, "grants-native", public_client=True)
        devops = directory.find_enterprise_app(tenant, AZURE_DEVOPS.app_id)
        directory.grant_admin_consent(tenant, web_app, devops, ["user_impersonation"])
        strict = directory.create_tenant(
            ["strict.test"],
            display_name="Strict",
            refresh_token_inactivity_seconds=3600,
            sign_in_frequency_seconds=7200,
        )
        directory.create_user(strict, "lee@strict.test", PASSWORD, "Lee")
        assert secret.value is not None
        # Returning from inside the unit of work commits it.
        return Realm(tenant.id, "grants.test", web_app.app_id, secret.value, native_app.app_id, strict.id)


def token(instance: Instance, tenant: str, **form: str) -> requests.Response:
    return requests.post(
        f"{instance.identity}/{tenant}/oauth2/v2.0/token", data=form, verify=instance.ca_bundle, timeout=30
    )


def password_grant(
    instance: Instance, tenant: str, user: str, password: str = PASSWORD, **extra: str
) -> requests.Response:
    form = {
        "grant_type": "password",
        "client_id": AZURE_CLI.app_id,
        "username": user,
        "password": password,
        "scope": USER_SCOPE,
        "client_info": "1",
        **extra,
    }
    return token(instance, tenant, **form)


def expect_error(response: requests.Response, *, status: int = 400, error: str, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert list(body)[: len(ENTRA_ERROR_KEYS)] == ENTRA_ERROR_KEYS
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    return body


def claims_of(token_value: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token_value, options={"verify_signature": False})
    return decoded


# --- the password grant, and what every user-flow response carries ----------------------------------------


def test_password_grant_issues_delegated_tokens_as_entra_does(entryway: Instance, realm: Realm) -> None:
    response = password_grant(entryway, realm.tenant_id, "gil@grants.test")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "token_type",
        "expires_in",
        "ext_expires_in",
        "scope",
        "access_token",
        "refresh_token",
        "id_token",
        "client_info",
    }
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == USER_SCOPE  # echoed as asked, reserved scopes included
    assert body["refresh_token"].startswith("ewrt_")

    access = claims_of(body["access_token"])
    now = int(entryway.clock.timestamp())
    assert access["aud"] == AZURE_DEVOPS.app_id
    assert access["iss"] == f"{entryway.identity}/{realm.tenant_id}/"
    assert access["ver"] == "1.0"
    assert access["scp"] == "user_impersonation"
    assert access["upn"] == access["unique_name"] == "gil@grants.test"
    assert access["name"] == "Gil"
    assert access["tid"] == realm.tenant_id
    assert access["amr"] == ["pwd"]
    assert access["acr"] == "1"
    assert access["appid"] == AZURE_CLI.app_id
    assert access["appidacr"] == "0"  # a public client
    # The shared clock is moved by tests but still ticks: allow for the second it may turn.
    assert abs(access["exp"] - (now + 3600)) <= 2
    assert access["iat"] == access["nbf"] == access["exp"] - 3900

    id_claims = claims_of(body["id_token"])
    assert id_claims["aud"] == AZURE_CLI.app_id
    assert id_claims["iss"] == f"{entryway.identity}/{realm.tenant_id}/v2.0"
    assert id_claims["oid"] == access["oid"]
    assert id_claims["tid"] == realm.tenant_id
    assert id_claims["preferred_username"] == "gil@grants.test"
    assert id_claims["sub"] == access["sub"]
    assert abs(id_claims["auth_time"] - now) <= 2
    assert "nonce" not in id_claims

    padded = body["client_info"] + "=" * (-len(body["client_info"]) % 4)
    assert json.loads(base64.urlsafe_b64decode(padded)) == {"uid": access["oid"], "utid": realm.tenant_id}


def test_sub_is_pairwise_per_application(entryway: Instance, realm: Realm) -> None:
    cli = claims_of(password_grant(entryway, realm.tenant_id, "gil@grants.test").json()["id_token"])
    vs = claims_of(
        password_grant(entryway, realm.tenant_id, "gil@grants.test", client_id=VISUAL_STUDIO.app_id).json()[
            "id_token"
        ]
    )
    assert cli["oid"] == vs["oid"]
    assert cli["sub"] != vs["sub"]
    assert len(cli["sub"]) == 43


@pytest.mark.parametrize("authority", ["organizations", "common", "grants.test"])
def test_tenant_independent_authorities_resolve_the_home_tenant(
    entryway: Instance, realm: Realm, authority: str
) -> None:
    response = password_grant(entryway, authority, "gil@grants.test")
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])["tid"] == realm.tenant_id


def test_only_openid_scopes_give_a_token_for_the_client_itself(entryway: Instance, realm: Realm) -> None:
    response = password_grant(
        entryway, realm.tenant_id, "gil@grants.test", scope="openid profile offline_access"
    )
    assert response.status_code == 200, response.text
    access = claims_of(response.json()["access_token"])
    assert access["aud"] == AZURE_CLI.app_id
    assert access["ver"] == "2.0"
    assert access["scp"] == "openid profile"


def test_password_grant_on_the_v1_endpoint_names_a_resource(entryway: Instance, realm: Realm) -> None:
    response = requests.post(
        f"{entryway.identity}/{realm.tenant_id}/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": AZURE_CLI.app_id,
            "username": "gil@grants.test",
            "password": PASSWORD,
            "resource": AZURE_DEVOPS.app_id,
        },
        verify=entryway.ca_bundle,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resource"] == AZURE_DEVOPS.app_id
    assert isinstance(body["expires_on"], str)
    assert claims_of(body["access_token"])["scp"] == "user_impersonation"
    assert "id_token" in body


def test_password_grant_without_offline_access_or_openid_gives_neither(
    entryway: Instance, realm: Realm
) -> None:
    body = password_grant(entryway, realm.tenant_id, "gil@grants.test", scope=DEVOPS_SCOPE).json()
    assert "refresh_token" not in body
    assert "id_token" not in body
    assert "client_info" in body


def test_confidential_client_must_authenticate_for_the_password_grant(
    entryway: Instance, realm: Realm
) -> None:
    refused = password_grant(entryway, realm.tenant_id, "gil@grants.test", client_id=realm.web_app_id)
    expect_error(refused, status=401, error="invalid_client", code=7000218)
    allowed = password_grant(
        entryway,
        realm.tenant_id,
        "gil@grants.test",
        client_id=realm.web_app_id,
        client_secret=realm.web_app_secret,
    )
    assert allowed.status_code == 200, allowed.text
    assert claims_of(allowed.json()["access_token"])["appidacr"] == "1"


def test_wrong_password_then_smart_lockout_then_cool_down(entryway: Instance, realm: Realm) -> None:
    for _ in range(10):
        expect_error(
            password_grant(entryway, realm.tenant_id, "ivy@grants.test", password="wrong-password"),
            error="invalid_grant",
            code=50126,
        )
    # Locked: even the right password is not tried.
    expect_error(
        password_grant(entryway, realm.tenant_id, "ivy@grants.test"), error="invalid_grant", code=50053
    )
    entryway.clock.advance(61)
    assert password_grant(entryway, realm.tenant_id, "ivy@grants.test").status_code == 200


def test_mfa_users_cannot_use_the_password_grant(entryway: Instance, realm: Realm) -> None:
    expect_error(
        password_grant(entryway, realm.tenant_id, "hal@grants.test"), error="interaction_required", code=50076
    )


def test_unknown_user(entryway: Instance, realm: Realm) -> None:
    body = expect_error(
        password_grant(entryway, realm.tenant_id, "nobody@grants.test"), error="invalid_grant", code=50034
    )
    assert "nobody@grants.test" in body["error_description"]


def test_user_of_another_tenant(entryway: Instance, realm: Realm) -> None:
    expect_error(
        password_grant(entryway, realm.strict_tenant_id, "gil@grants.test"), error="invalid_grant", code=50034
    )


def test_client_without_consent_gets_consent_required(entryway: Instance, realm: Realm) -> None:
    response = password_grant(entryway, realm.tenant_id, "gil@grants.test", client_id=realm.native_app_id)
    expect_error(response, error="consent_required", code=65001)


@pytest.mark.parametrize(
    ("scope", "code"),
    [
        ("user_impersonation openid", 70011),  # a bare scope names no resource here
        (f"{DEVOPS_SCOPE} api://other/.default", 28000),
        ("499b84ac-1321-427f-aa17-267ca6975798/not_published", 70011),
        ("00000000-1111-2222-3333-444444444444/.default", 500011),
    ],
)
def test_bad_user_scopes(entryway: Instance, realm: Realm, scope: str, code: int) -> None:
    response = password_grant(entryway, realm.tenant_id, "gil@grants.test", scope=scope)
    assert response.status_code == 400, response.text
    assert response.json()["error_codes"] == [code]


# --- refresh tokens ------------------------------------------------------------------------------------------


def refresh(instance: Instance, tenant: str, refresh_token: str, **extra: str) -> requests.Response:
    form = {
        "grant_type": "refresh_token",
        "client_id": AZURE_CLI.app_id,
        "refresh_token": refresh_token,
        "scope": USER_SCOPE,
        "client_info": "1",
        **extra,
    }
    return token(instance, tenant, **form)


def test_refresh_rotates_and_a_replay_revokes_the_family(entryway: Instance, realm: Realm) -> None:
    first = password_grant(entryway, realm.tenant_id, "jon@grants.test").json()
    entryway.clock.advance(3700)  # the access token has expired; the refresh token has not
    second = refresh(entryway, realm.tenant_id, first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    access = claims_of(rotated["access_token"])
    assert abs(access["iat"] - (int(entryway.clock.timestamp()) - 300)) <= 2
    assert access["amr"] == ["pwd"]
    # The ID token keeps the time of the sign-in, not of the refresh.
    assert claims_of(rotated["id_token"])["auth_time"] == claims_of(first["id_token"])["auth_time"]

    # Presenting the rotated-out token again is a replay: the whole family goes.
    expect_error(
        refresh(entryway, realm.tenant_id, first["refresh_token"]), error="invalid_grant", code=50173
    )
    expect_error(
        refresh(entryway, realm.tenant_id, rotated["refresh_token"]), error="invalid_grant", code=50173
    )


def test_refresh_token_of_another_client_is_refused(entryway: Instance, realm: Realm) -> None:
    first = password_grant(entryway, realm.tenant_id, "kim@grants.test").json()
    response = refresh(entryway, realm.tenant_id, first["refresh_token"], client_id=VISUAL_STUDIO.app_id)
    expect_error(response, error="invalid_grant", code=70000)
    # The refusal did not use the token up.
    assert refresh(entryway, realm.tenant_id, first["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    ("value", "code"),
    [("not-a-refresh-token", 9002313), ("ewrt_" + "A" * 46, 9002313)],
)
def test_malformed_refresh_tokens(entryway: Instance, realm: Realm, value: str, code: int) -> None:
    expect_error(refresh(entryway, realm.tenant_id, value), error="invalid_grant", code=code)


def test_refresh_token_expires_after_inactivity(entryway: Instance, realm: Realm) -> None:
    first = password_grant(entryway, realm.strict_tenant_id, "lee@strict.test").json()
    entryway.clock.advance(3601)
    expect_error(
        refresh(entryway, realm.strict_tenant_id, first["refresh_token"]), error="invalid_grant", code=700082
    )


def test_sign_in_frequency_ends_the_family(entryway: Instance, realm: Realm) -> None:
    token_value = password_grant(entryway, realm.strict_tenant_id, "lee@strict.test").json()["refresh_token"]
    for _ in range(3):  # used within the inactivity window each time, but the sign-in itself ages
        entryway.clock.advance(3000)
        response = refresh(entryway, realm.strict_tenant_id, token_value)
        if response.status_code != 200:
            break
        token_value = response.json()["refresh_token"]
    expect_error(response, error="invalid_grant", code=70043)


# --- authorization codes (redemption errors that need no pages) ------------------------------------------------


@pytest.mark.parametrize("code", ["not-a-code", "ewac_" + "B" * 46])
def test_malformed_authorization_codes(entryway: Instance, realm: Realm, code: str) -> None:
    response = token(
        entryway,
        realm.tenant_id,
        grant_type="authorization_code",
        client_id=AZURE_CLI.app_id,
        code=code,
        redirect_uri="http://localhost:1234",
        code_verifier="v" * 43,
    )
    expect_error(response, error="invalid_grant", code=9002313)


# --- the device authorization endpoint ------------------------------------------------------------------------


def devicecode(instance: Instance, tenant: str, **form: str) -> requests.Response:
    return requests.post(
        f"{instance.identity}/{tenant}/oauth2/v2.0/devicecode",
        data=form,
        verify=instance.ca_bundle,
        timeout=30,
    )


def poll(
    instance: Instance, tenant: str, device_code: str, client_id: str = AZURE_CLI.app_id
) -> requests.Response:
    # MSAL sends the code twice and no scope.
    return token(
        instance,
        tenant,
        grant_type="urn:ietf:params:oauth:grant-type:device_code",
        client_id=client_id,
        device_code=device_code,
        code=device_code,
        client_info="1",
    )


def test_device_code_response_and_polling_errors(entryway: Instance, realm: Realm) -> None:
    response = devicecode(entryway, "organizations", client_id=AZURE_CLI.app_id, scope=USER_SCOPE)
    assert response.status_code == 200, response.text
    flow = response.json()
    assert set(flow) == {"user_code", "device_code", "verification_uri", "expires_in", "interval", "message"}
    assert flow["verification_uri"] == f"{entryway.identity}/devicelogin"
    assert flow["expires_in"] == 900
    assert flow["interval"] == 5
    assert len(flow["user_code"]) == 9
    assert flow["user_code"] in flow["message"]
    assert flow["verification_uri"] in flow["message"]

    expect_error(
        poll(entryway, "organizations", flow["device_code"]), error="authorization_pending", code=70016
    )
    # Polled again at once: too fast.
    expect_error(poll(entryway, "organizations", flow["device_code"]), error="slow_down", code=70016)
    entryway.clock.advance(5)
    expect_error(
        poll(entryway, "organizations", flow["device_code"]), error="authorization_pending", code=70016
    )
    # Another client cannot poll it.
    expect_error(
        poll(entryway, "organizations", flow["device_code"], client_id=VISUAL_STUDIO.app_id),
        error="bad_verification_code",
        code=70018,
    )
    entryway.clock.advance(900)
    expect_error(poll(entryway, "organizations", flow["device_code"]), error="expired_token", code=70019)


def test_unknown_device_code(entryway: Instance, realm: Realm) -> None:
    expect_error(
        poll(entryway, realm.tenant_id, "ewdc_" + "C" * 46), error="bad_verification_code", code=70018
    )


@pytest.mark.parametrize(
    ("form", "error", "code"),
    [
        ({"scope": USER_SCOPE}, "invalid_request", 900144),
        ({"client_id": AZURE_CLI.app_id}, "invalid_request", 900144),
        ({"client_id": "not-a-guid", "scope": USER_SCOPE}, "unauthorized_client", 700038),
        (
            {"client_id": "11111111-2222-3333-4444-555555555555", "scope": USER_SCOPE},
            "unauthorized_client",
            700016,
        ),
        ({"client_id": AZURE_CLI.app_id, "scope": "a/.default b/.default"}, "invalid_scope", 28000),
    ],
)
def test_device_code_request_errors(
    entryway: Instance, realm: Realm, form: dict[str, str], error: str, code: int
) -> None:
    expect_error(devicecode(entryway, realm.tenant_id, **form), error=error, code=code)


def test_device_code_endpoint_only_accepts_post(entryway: Instance) -> None:
    response = requests.get(
        f"{entryway.identity}/organizations/oauth2/v2.0/devicecode", verify=entryway.ca_bundle, timeout=30
    )
    expect_error(response, error="invalid_request", code=900561)


def test_device_code_for_an_unknown_tenant(entryway: Instance) -> None:
    response = devicecode(entryway, "nowhere.test", client_id=AZURE_CLI.app_id, scope=USER_SCOPE)
    expect_error(response, error="invalid_request", code=90002)


# --- MSAL's user-realm pre-flight ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upn", "kind"), [("gil@grants.test", "Managed"), ("someone@elsewhere.test", "Unknown")]
)
def test_user_realm(entryway: Instance, realm: Realm, upn: str, kind: str) -> None:
    response = requests.get(
        f"{entryway.identity}/common/userrealm/{upn}?api-version=1.0", verify=entryway.ca_bundle, timeout=30
    )
    assert response.status_code == 200
    body = response.json()
    assert body["account_type"] == kind
    assert body["domain_name"] == upn.split("@")[1]
    assert body["ver"] == "1.0"


# --- the DevOps service and delegated tokens ------------------------------------------------------------------


def test_devops_accepts_a_delegated_token_for_a_member_and_refuses_a_non_member(entryway: Instance) -> None:
    def connection_data(user: str, password: str) -> requests.Response:
        access = password_grant(entryway, "organizations", user, password).json()["access_token"]
        return requests.get(
            f"{entryway.devops}/fabrikam/_apis/connectionData",
            headers={"Authorization": f"Bearer {access}"},
            verify=entryway.ca_bundle,
            timeout=30,
        )

    member = connection_data("ada@contoso.test", "Ada-Signs-In-0042")
    assert member.status_code == 200, member.text
    user = member.json()["authenticatedUser"]
    assert user["providerDisplayName"] == "Ada Basic"
    assert user["properties"]["Account"]["$value"] == "ada@contoso.test"

    outsider = connection_data("chen@contoso.test", "Chen-No-Org-0042")
    assert outsider.status_code == 401, outsider.text
