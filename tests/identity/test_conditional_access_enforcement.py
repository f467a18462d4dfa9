"""Conditional Access at the token endpoint, the `claims` parameter (CP1 / continuous access evaluation, claims
challenges) and trusted proxies, with the real clients (msal, azure-identity, requests).

Everything runs in this module's own tenant, fence.test. The server listens on 127.0.0.1; a client whose
connections leave from 127.0.0.2 stands for another network (`outside_session`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jwt
import msal
import pytest
import requests
from requests.adapters import HTTPAdapter

from entryway.identity.directory.first_party import AZURE_CLI, AZURE_DEVOPS
from entryway.identity.directory.service import DirectoryService
from tests.conftest import DEVOPS_SCOPE, Instance, SignInUser, complete_device_login

FENCE_TENANT = "5e7d1c3b-9a2f-4d6e-8b1c-f3a5e7d9c1b2"
PASSWORD = "Fence-Test-Password-0042"
USER_SCOPE = f"{DEVOPS_SCOPE} offline_access openid profile"
CP1 = json.dumps({"access_token": {"xms_cc": {"values": ["CP1"]}}})
OUTSIDE = "127.0.0.2"


class SourceAddressAdapter(HTTPAdapter):
    """Connections from a given local address: 127.0.0.2 stands for a client on another network."""

    def __init__(self, source: str) -> None:
        self._source = source
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._source, 0)
        super().init_poolmanager(*args, **kwargs)


def session_from(ca_bundle: str, source: str | None = None) -> requests.Session:
    """A requests session trusting the server's CA, whose connections leave from `source` if given."""
    http = requests.Session()
    http.verify = ca_bundle
    if source is not None:
        adapter = SourceAddressAdapter(source)
        http.mount("https://", adapter)
        http.mount("http://", adapter)
    return http


@dataclass(frozen=True)
class Fence:
    tenant_id: str
    web_app_id: str
    web_app_secret: str


@pytest.fixture(scope="module")
def fence(entryway: Instance) -> Fence:
    runtime = entryway.runtime
    with runtime.db.unit_of_work() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        tenant = directory.create_tenant(["fence.test"], display_name="Fence", tenant_id=FENCE_TENANT)
        for name in ("cora", "dirk", "emil", "fran", "gwen", "hugo", "ines"):
            directory.create_user(tenant, f"{name}@fence.test", PASSWORD, name.title())
        web_app, _ = directory.create_application(tenant, "fence-web")
        secret = directory.add_client_secret(web_app)
        devops = directory.find_enterprise_app(tenant, AZURE_DEVOPS.app_id)
        directory.grant_admin_consent(tenant, web_app, devops, ["user_impersonation"])
        assert secret.value is not None
        return Fence(tenant.id, web_app.app_id, secret.value)


def token_url(instance: Instance, tenant: str = FENCE_TENANT) -> str:
    return f"{instance.identity}/{tenant}/oauth2/v2.0/token"


def password_grant(
    instance: Instance, user: str, *, http: requests.Session | None = None, **extra: str
) -> requests.Response:
    form = {
        "grant_type": "password",
        "client_id": AZURE_CLI.app_id,
        "username": f"{user}@fence.test",
        "password": PASSWORD,
        "scope": USER_SCOPE,
        **extra,
    }
    return (http or session_from(instance.ca_bundle)).post(token_url(instance), data=form, timeout=30)


def refresh_grant(
    instance: Instance, refresh_token: str, *, http: requests.Session | None = None, **extra: str
) -> requests.Response:
    form = {
        "grant_type": "refresh_token",
        "client_id": AZURE_CLI.app_id,
        "refresh_token": refresh_token,
        "scope": USER_SCOPE,
        **extra,
    }
    return (http or session_from(instance.ca_bundle)).post(token_url(instance), data=form, timeout=30)


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def assert_refused(response: requests.Response, code: int, error: str, status: int = 400) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert response.status_code == status, body
    assert body["error"] == error, body
    assert body["error_codes"] == [code], body
    assert body["error_description"].startswith(f"AADSTS{code}: "), body
    return body


def family_count(instance: Instance, user: str) -> int:
    """Refresh-token families of a fence.test user: what a refused request must not have started."""
    from sqlalchemy import func, select

    from entryway.store.models import RefreshTokenFamilyRow, UserRow

    with instance.runtime.db.read() as session:
        user_id = session.scalar(
            select(UserRow.object_id).where(UserRow.user_principal_name == f"{user}@fence.test")
        )
        return int(
            session.scalar(
                select(func.count())
                .select_from(RefreshTokenFamilyRow)
                .where(RefreshTokenFamilyRow.user_id == user_id)
            )
            or 0
        )


# --- the claims parameter: CP1, claims challenges -----------------------------------------------------------


def test_cp1_token_carries_xms_cc_and_lives_24_hours(entryway: Instance, fence: Fence) -> None:
    response = password_grant(entryway, "cora", claims=CP1)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_in"] == 24 * 3600
    claims = claims_of(body["access_token"])
    assert claims["xms_cc"] == ["CP1"]
    assert claims["exp"] - claims["iat"] == 24 * 3600 + 300  # iat is back-dated five minutes

    plain = password_grant(entryway, "cora")
    assert plain.status_code == 200, plain.text
    assert plain.json()["expires_in"] < 24 * 3600
    assert "xms_cc" not in claims_of(plain.json()["access_token"])


def test_msal_device_flow_with_cp1_and_a_claims_challenge(entryway: Instance, fence: Fence) -> None:
    """msal declares CP1 on every request; a challenge with an `nbf` after the sign-in cannot be met by its
    refresh token (a fresh sign-in is needed), one before it can."""
    app = msal.PublicClientApplication(
        AZURE_CLI.app_id,
        authority=entryway.authority("fence.test"),
        instance_discovery=False,
        client_capabilities=["CP1"],
    )
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    done = complete_device_login(
        entryway, flow["user_code"], SignInUser("dirk@fence.test", PASSWORD, "Dirk", mfa=False)
    )
    assert "AADSTS" not in done.html, done.html
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    assert claims_of(result["access_token"])["xms_cc"] == ["CP1"]
    assert result["expires_in"] == 24 * 3600
    (account,) = app.get_accounts()

    entryway.clock.advance(60)
    later = int(entryway.clock.timestamp())
    challenge = json.dumps({"access_token": {"nbf": {"essential": True, "value": str(later)}}})
    refused = app.acquire_token_silent_with_error([DEVOPS_SCOPE], account, claims_challenge=challenge)
    assert refused is not None
    assert refused["error"] == "interaction_required", refused
    assert refused["error_codes"] == [50173], refused

    # The refused refresh token was not consumed: a challenge the sign-in meets works with the same one.
    met = json.dumps({"access_token": {"nbf": {"essential": True, "value": str(later - 3600)}}})
    again = app.acquire_token_silent_with_error([DEVOPS_SCOPE], account, claims_challenge=met)
    assert again is not None
    assert "access_token" in again, again
    assert claims_of(again["access_token"])["xms_cc"] == ["CP1"]


@pytest.mark.parametrize(
    "claims",
    [
        "{not json",
        "[]",
        '"CP1"',
        '{"access_token": ["xms_cc"]}',
        '{"access_token": {"xms_cc": "CP1"}}',
        '{"access_token": {"xms_cc": {"values": "CP1"}}}',
        '{"access_token": {"xms_cc": {"values": [1]}}}',
        '{"access_token": {"nbf": {"essential": true, "value": "yesterday"}}}',
        '{"access_token": {"nbf": {"essential": true, "value": true}}}',
        '{"access_token": {"xms_rp_ipaddr": {"value": "10.0.0.999"}}}',
        '{"id_token": 5}',
        "{" * 5000,
    ],
)
def test_malformed_claims_are_refused_and_change_nothing(
    entryway: Instance, fence: Fence, claims: str
) -> None:
    before = family_count(entryway, "emil")
    response = password_grant(entryway, "emil", claims=claims)
    assert_refused(response, 50117, "invalid_request")
    assert family_count(entryway, "emil") == before


def test_unknown_claims_are_ignored(entryway: Instance, fence: Fence) -> None:
    claims = json.dumps(
        {"access_token": {"acrs": {"essential": True, "value": "c1"}, "xms_cc": None}, "x": 1}
    )
    response = password_grant(entryway, "emil", claims=claims)
    assert response.status_code == 200, response.text
    assert "xms_cc" not in claims_of(response.json()["access_token"])


def test_refused_refresh_for_a_challenge_leaves_the_refresh_token_usable(
    entryway: Instance, fence: Fence
) -> None:
    first = password_grant(entryway, "emil")
    assert first.status_code == 200, first.text
    refresh_token = first.json()["refresh_token"]
    future = int(entryway.clock.timestamp()) + 10
    challenge = json.dumps({"access_token": {"nbf": {"essential": True, "value": future}}})
    refused = refresh_grant(entryway, refresh_token, claims=challenge)
    assert_refused(refused, 50173, "interaction_required")
    again = refresh_grant(entryway, refresh_token)
    assert again.status_code == 200, again.text
