"""Continuous access evaluation at the DevOps service, with real clients: the identity platform's critical
events (user disabled, password reset, sessions revoked, MFA newly required) and its location policies refuse
tokens and PATs at the DevOps service within seconds; CP1 clients get the `insufficient_claims` challenge and
take it back to the identity platform; the organization's IP validation policy answers VS403463.

Everything runs in this module's own tenant, cae.test, and organization, caeorg. The servers listen on
127.0.0.1; a client whose connections leave from 127.0.0.2 stands for another network.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt
import msal
import pytest
import requests
import yaml
from requests.adapters import HTTPAdapter
from sqlalchemy import select

from entryway.config.declarative import apply_config
from entryway.devops.auth.challenge import TF400813, VS403463
from entryway.devops.orgs.service import OrgService
from entryway.devops.pats.format import mint
from entryway.identity.directory.first_party import AZURE_CLI
from entryway.identity.directory.service import DirectoryService
from entryway.store.models import AuditEventRow, PersonalAccessTokenRow, SignInLogRow
from tests.conftest import DEVOPS_SCOPE, Instance, SignInUser, complete_device_login

CAE_TENANT = "c4e0a1b2-3c4d-4e5f-8a6b-7c8d9e0f1a2b"
ORG = "caeorg"
PASSWORD = "Cae-Test-Password-0042"
OUTSIDE = "127.0.0.2"
POLL_DEADLINE = 10.0

# One user per job: pia, uma and vic are fenced to 127.0.0.1 for Azure DevOps (pia with PATs, uma with a CP1
# token, vic with a plain token); quin is disabled, rex's PAT outlives his account, tia's sessions are revoked,
# wes must do MFA from now on. None of them has MFA required at sign-in to begin with.
USERS = ("pia", "quin", "rex", "tia", "uma", "vic", "wes")
FENCED = ("pia", "uma", "vic")

CONFIG = f"""\
tenants:
  - id: {CAE_TENANT}
    domains: [cae.test]
    users:
{
    "".join(
        f'''      - {{upn: {u}@cae.test, password: "{PASSWORD}", mfa_required: false}}
'''
        for u in USERS
    )
}    conditional_access:
      named_locations:
        - {{name: CAE office, ranges: [127.0.0.1/32], trusted: true}}
      policies:
        - name: CAE DevOps from the office only
          users: [{", ".join(f"{u}@cae.test" for u in FENCED)}]
          applications: [Azure DevOps]
          locations: [All]
          exclude_locations: [CAE office]
          grant: block
organizations:
  - name: {ORG}
    tenant: cae.test
    ip_conditional_access_validation: true
    members:
{
    "".join(
        f'''      - {{user: {u}@cae.test, access: basic}}
'''
        for u in USERS
    )
}"""


class SourceAddressAdapter(HTTPAdapter):
    """Connections from a given local address: 127.0.0.2 stands for a client on another network."""

    def __init__(self, source: str) -> None:
        self._source = source
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._source, 0)
        super().init_poolmanager(*args, **kwargs)


def http_from(ca_bundle: str, source: str | None = None) -> requests.Session:
    http = requests.Session()
    http.verify = ca_bundle
    if source is not None:
        http.mount("https://", SourceAddressAdapter(source))
    return http


@pytest.fixture(scope="module")
def cae(entryway: Instance) -> dict[str, str]:
    """The module's tenant and organization; user name -> object id."""
    apply_config(entryway.runtime, yaml.safe_load(CONFIG))
    runtime = entryway.runtime
    with runtime.db.read() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        users = {u: directory.get_user(f"{u}@cae.test").object_id for u in USERS}
    time.sleep(1.1)  # the DevOps service reads the outbox once a second: the policy snapshot reaches it
    return users


def upn(name: str) -> str:
    return f"{name}@cae.test"


def cp1_app(instance: Instance, **kwargs: Any) -> msal.PublicClientApplication:
    """The Azure CLI's client id, declaring CP1 as the Azure CLI does."""
    return msal.PublicClientApplication(
        AZURE_CLI.app_id,
        authority=instance.authority("cae.test"),
        instance_discovery=False,
        client_capabilities=["CP1"],
        **kwargs,
    )


def sign_in(instance: Instance, app: msal.PublicClientApplication, name: str) -> dict[str, Any]:
    """The device code flow, the user signing in on the device page."""
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    done = complete_device_login(
        instance, flow["user_code"], SignInUser(upn(name), PASSWORD, name, mfa=False)
    )
    assert "AADSTS" not in done.html, done.html
    result: dict[str, Any] = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    return result


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def devops_get(
    instance: Instance, authorization: str, *, source: str | None = None, origin: str | None = None
) -> requests.Response:
    return http_from(instance.ca_bundle, source).get(
        f"{origin or instance.devops}/{ORG}/_apis/projects",
        headers={"Authorization": authorization, "X-TFS-FedAuthRedirect": "Suppress"},
        timeout=30,
    )


def until(
    check: Callable[[], requests.Response], wanted: int, deadline: float = POLL_DEADLINE
) -> requests.Response:
    """Repeat `check` until it answers `wanted` (the feed polls once a second), at most `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        response = check()
        if response.status_code == wanted or time.monotonic() > end:
            return response
        time.sleep(0.2)


def challenge_claims(response: requests.Response, instance: Instance) -> dict[str, Any]:
    """The claims of the 401's insufficient_claims challenge; checks the rest of its shape."""
    assert response.status_code == 401, response.text
    bearer = [h for h in response.raw.headers.getlist("WWW-Authenticate") if h.startswith("Bearer ")]
    assert len(bearer) == 1, bearer
    prefix = f'Bearer authorization_uri="{instance.identity}/{CAE_TENANT}/oauth2/authorize", '
    prefix += 'error="insufficient_claims", claims="'
    assert bearer[0].startswith(prefix), bearer[0]
    assert bearer[0].endswith('"')
    decoded: dict[str, Any] = json.loads(base64.b64decode(bearer[0][len(prefix) : -1], validate=True))
    assert response.json()["message"] == TF400813
    return decoded


def make_pat(instance: Instance, owner_object_id: str, owner: str) -> str:
    """A full-access PAT for caeorg, stored as the PAT lifecycle API stores one."""
    runtime = instance.runtime
    now = runtime.clock.now()
    value = mint(now)
    with runtime.db.unit_of_work() as session:
        org = OrgService(session, runtime.clock).get(ORG)
        session.add(
            PersonalAccessTokenRow(
                authorization_id=str(uuid.uuid4()), digest=runtime.digester.digest(value),
                owner_object_id=owner_object_id, owner_tenant_id=CAE_TENANT, owner_name=upn(owner),
                display_name="cae test", scope="app_token", organization_id=org.id,
                valid_from=now - timedelta(minutes=1), valid_to=now + timedelta(days=7), revoked_at=None,
                created_at=now, last_used_at=None, last_used_address=None, last_used_user_agent=None,
                last_used_route_kind=None, rest_uses=0, git_uses=0,
            )
        )  # fmt: skip
    return value


def basic(pat: str) -> str:
    return "Basic " + base64.b64encode(f":{pat}".encode()).decode()


def pat_use(instance: Instance, pat: str) -> tuple[str | None, int]:
    runtime = instance.runtime
    with runtime.db.read() as session:
        row = session.scalars(
            select(PersonalAccessTokenRow).where(
                PersonalAccessTokenRow.digest == runtime.digester.digest(pat)
            )
        ).one()
        return row.last_used_address, row.rest_uses


def administer(instance: Instance, name: str, change: Callable[[DirectoryService, Any], object]) -> None:
    """What `entryway user …` does, through the same directory service, one second after the token (events
    refuse tokens issued in an earlier second)."""
    instance.clock.advance(1.5)
    runtime = instance.runtime
    with runtime.db.unit_of_work() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        change(directory, directory.get_user(upn(name)))


def refusals(instance: Instance, object_id: str) -> list[str]:
    """The audit log's refused authentication decisions for the user in caeorg, oldest first."""
    end = time.monotonic() + 5
    while True:
        with instance.runtime.db.read() as session:
            rows = session.scalars(
                select(AuditEventRow)
                .where(AuditEventRow.organization_name == ORG, AuditEventRow.actor_id == object_id)
                .where(AuditEventRow.action == "Authentication.Refused")
                .order_by(AuditEventRow.timestamp)
            )
            reasons = [str(r.details.get("reason", "")) for r in rows]
        if reasons or time.monotonic() > end:
            return reasons
        time.sleep(0.2)


# --- the organization's IP validation policy --------------------------------------------------------------


def test_a_pat_from_outside_the_allowed_locations_gets_vs403463(
    entryway: Instance, cae: dict[str, str]
) -> None:
    pat = make_pat(entryway, cae["pia"], "pia")
    inside = devops_get(entryway, basic(pat))
    assert inside.status_code == 200, inside.text
    assert pat_use(entryway, pat) == ("127.0.0.1", 1)

    outside = devops_get(entryway, basic(pat), source=OUTSIDE)
    assert outside.status_code == 401, outside.text
    assert outside.json()["message"] == VS403463
    assert pat_use(entryway, pat) == ("127.0.0.1", 1)  # the refused use is not recorded as a use
    assert any(
        "IP Conditional Access policy validation: 127.0.0.2 refused by 'CAE DevOps from the office only'" in r
        for r in refusals(entryway, cae["pia"])
    )


def test_a_plain_entra_token_from_outside_gets_vs403463(entryway: Instance, cae: dict[str, str]) -> None:
    app = msal.PublicClientApplication(
        AZURE_CLI.app_id, authority=entryway.authority("cae.test"), instance_discovery=False
    )
    token = sign_in(entryway, app, "vic")["access_token"]
    assert "xms_cc" not in claims_of(token)
    assert devops_get(entryway, f"Bearer {token}").status_code == 200
    outside = devops_get(entryway, f"Bearer {token}", source=OUTSIDE)
    assert outside.status_code == 401
    assert outside.json()["message"] == VS403463
    assert 'error="insufficient_claims"' not in outside.headers["WWW-Authenticate"]


def test_a_user_outside_the_policy_is_not_fenced(entryway: Instance, cae: dict[str, str]) -> None:
    pat = make_pat(entryway, cae["tia"], "tia")
    assert devops_get(entryway, basic(pat), source=OUTSIDE).status_code == 200


# --- critical events -----------------------------------------------------------------------------------------


def test_a_cp1_client_whose_user_is_disabled_gets_the_claims_challenge(
    entryway: Instance, cae: dict[str, str]
) -> None:
    app = cp1_app(entryway)
    result = sign_in(entryway, app, "quin")
    token = result["access_token"]
    assert claims_of(token)["xms_cc"] == ["CP1"]
    assert devops_get(entryway, f"Bearer {token}").status_code == 200

    administer(entryway, "quin", lambda d, u: d.set_account_enabled(u, False))
    refused = until(lambda: devops_get(entryway, f"Bearer {token}"), 401)
    claims = challenge_claims(refused, entryway)
    nbf = int(claims["access_token"]["nbf"]["value"])
    assert claims == {"access_token": {"nbf": {"essential": True, "value": str(nbf)}}}
    assert nbf > claims_of(token)["iat"]

    # The client takes the challenge to the identity platform, which refuses the disabled user.
    (account,) = app.get_accounts()
    again = app.acquire_token_silent_with_error([DEVOPS_SCOPE], account, claims_challenge=json.dumps(claims))
    assert again is not None
    assert "access_token" not in again, again
    assert again["error_codes"] == [50057], again  # the user is disabled
    # The sign-in log has the sign-in and the refused redemption, which names the disabled user.
    entryway.runtime.sign_in_log.flush()
    with entryway.runtime.db.read() as session:
        rows = list(
            session.scalars(
                select(SignInLogRow)
                .where(SignInLogRow.tenant_id == CAE_TENANT)
                .order_by(SignInLogRow.created_at)
            )
        )
    assert any(r.user_principal_name == upn("quin") and r.error_code == 0 for r in rows)
    assert (rows[-1].error_code, rows[-1].authentication_protocol) == (50057, "refreshToken")
    assert (rows[-1].user_id, rows[-1].user_principal_name) == (cae["quin"], upn("quin"))
    assert any("userDisabled" in r for r in refusals(entryway, cae["quin"]))


def test_a_pat_of_a_disabled_user_is_refused_and_works_again_once_enabled(
    entryway: Instance, cae: dict[str, str]
) -> None:
    pat = make_pat(entryway, cae["rex"], "rex")
    assert devops_get(entryway, basic(pat)).status_code == 200
    administer(entryway, "rex", lambda d, u: d.set_account_enabled(u, False))
    refused = until(lambda: devops_get(entryway, basic(pat)), 401)
    assert refused.status_code == 401
    assert refused.json()["message"] == TF400813
    assert pat_use(entryway, pat)[1] == 1
    administer(entryway, "rex", lambda d, u: d.set_account_enabled(u, True))
    assert until(lambda: devops_get(entryway, basic(pat)), 200).status_code == 200
    assert any("its owner's account is disabled" in r for r in refusals(entryway, cae["rex"]))


def test_revoked_sessions_refuse_plain_tokens_too(entryway: Instance, cae: dict[str, str]) -> None:
    plain = msal.PublicClientApplication(
        AZURE_CLI.app_id, authority=entryway.authority("cae.test"), instance_discovery=False
    )
    plain_token = sign_in(entryway, plain, "tia")["access_token"]
    cp1_token = sign_in(entryway, cp1_app(entryway), "tia")["access_token"]
    for token in (plain_token, cp1_token):
        assert devops_get(entryway, f"Bearer {token}").status_code == 200
    administer(entryway, "tia", lambda d, u: d.revoke_sessions(u))
    refused = until(lambda: devops_get(entryway, f"Bearer {plain_token}"), 401)
    assert refused.status_code == 401
    assert 'error="insufficient_claims"' not in refused.headers["WWW-Authenticate"]
    assert refused.json()["message"] == TF400813
    assert challenge_claims(devops_get(entryway, f"Bearer {cp1_token}"), entryway)["access_token"]["nbf"]
    # A token from a sign-in after the revocation is accepted.
    fresh = sign_in(entryway, plain, "tia")
    assert devops_get(entryway, f"Bearer {fresh['access_token']}").status_code == 200


def test_mfa_newly_required_refuses_earlier_cae_tokens(entryway: Instance, cae: dict[str, str]) -> None:
    token = sign_in(entryway, cp1_app(entryway), "wes")["access_token"]
    assert devops_get(entryway, f"Bearer {token}").status_code == 200
    administer(entryway, "wes", lambda d, u: d.set_user_mfa(u, True))
    claims = challenge_claims(until(lambda: devops_get(entryway, f"Bearer {token}"), 401), entryway)
    assert set(claims["access_token"]) == {"nbf"}


def test_a_cae_token_used_from_a_refused_location_gets_the_location_challenge(
    entryway: Instance, cae: dict[str, str]
) -> None:
    app = cp1_app(entryway)
    token = sign_in(entryway, app, "uma")["access_token"]
    assert devops_get(entryway, f"Bearer {token}").status_code == 200
    # The challenge's nbf is a later second than the sign-in (as it is for any token not minutes old): the
    # location block must still be the answer, not a request for a fresh sign-in that would meet the same block.
    entryway.clock.advance(2)
    outside = devops_get(entryway, f"Bearer {token}", source=OUTSIDE)
    claims = challenge_claims(outside, entryway)
    assert claims["access_token"]["xms_rp_ipaddr"] == {"value": OUTSIDE}
    assert claims["access_token"]["nbf"]["essential"] is True
    # The identity platform evaluates the location the resource saw: blocked (AADSTS53003).
    (account,) = app.get_accounts()
    again = app.acquire_token_silent_with_error([DEVOPS_SCOPE], account, claims_challenge=json.dumps(claims))
    assert again is not None
    assert again.get("error_codes") == [53003], again
