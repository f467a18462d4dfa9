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
from tests.conftest import (
    DEVOPS_SCOPE,
    Instance,
    OidcIssuer,
    SignInUser,
    complete_device_login,
    register_federated_credential,
)

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
    api_app_id: str  # a middle tier: exposes access_as_user, calls Azure DevOps on behalf of its users
    api_secret: str
    daemon_app_id: str  # a workload identity with a secret
    daemon_secret: str
    federated_app_id: str  # a workload identity with a federated credential
    users: dict[str, str]  # name -> object id
    policies: dict[str, str]  # name -> policy id


# Users of this module, each with one job: cora, dirk and emil are under no policy (the claims tests); fran is
# fenced to the office (a trusted named location: 127.0.0.1), also for the middle tier; gwen is under a
# report-only block; hugo and ines need MFA (hugo has no authenticator, ines has one); jill under a one-hour
# sign-in frequency.
USERS = ("cora", "dirk", "emil", "fran", "gwen", "hugo", "ines", "jill")
API_URI = "api://fence-api"
FEDERATED_SUBJECT = "system:serviceaccount:fence:deployer"


def _policy(
    name: str, *, users: list[str] | None = None, sps: list[str] | None = None, **parts: Any
) -> dict[str, Any]:
    conditions: dict[str, Any] = {"applications": {"includeApplications": ["All"]}}
    if users is not None:
        conditions["users"] = {"includeUsers": users}
    if sps is not None:
        conditions["clientApplications"] = {"includeServicePrincipals": sps}
    conditions.update(parts.pop("conditions", {}))
    return {
        "displayName": name,
        "state": parts.pop("state", "enabled"),
        "conditions": conditions,
        "grantControls": parts.pop("grant", {"operator": "OR", "builtInControls": ["block"]}),
        **parts,
    }


@pytest.fixture(scope="module")
def fence(entryway: Instance, oidc_issuer: OidcIssuer) -> Fence:
    from datetime import UTC, datetime

    from entryway.identity.directory.conditional_access import ConditionalAccessService
    from entryway.store.models import UserRow

    runtime = entryway.runtime
    with runtime.db.unit_of_work() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        tenant = directory.create_tenant(["fence.test"], display_name="Fence", tenant_id=FENCE_TENANT)
        users = {
            name: directory.create_user(tenant, f"{name}@fence.test", PASSWORD, name.title()).object_id
            for name in USERS
        }
        devops = directory.find_enterprise_app(tenant, AZURE_DEVOPS.app_id)
        api, _ = directory.create_application(
            tenant, "fence-api", identifier_uris=[API_URI], scopes=["access_as_user"]
        )
        api_secret = directory.add_client_secret(api)
        directory.grant_admin_consent(
            tenant, directory.find_enterprise_app(tenant, AZURE_CLI.app_id), api, ["access_as_user"]
        )
        directory.grant_admin_consent(tenant, api, devops, ["user_impersonation"])
        daemon, daemon_sp = directory.create_application(tenant, "fence-daemon")
        daemon_secret = directory.add_client_secret(daemon)
        federated, federated_sp = directory.create_application(tenant, "fence-federated")
        # ines has an authenticator (TOTP) enrolled; hugo has none.
        ines = session.get(UserRow, users["ines"])
        assert ines is not None
        ines.totp_enrolled_at = datetime.now(UTC)
        assert api_secret.value is not None
        assert daemon_secret.value is not None
        app_ids = (api.app_id, api_secret.value, daemon.app_id, daemon_secret.value, federated.app_id)
        sp_ids = (daemon_sp.object_id, federated_sp.object_id)
    register_federated_credential(
        entryway, app_ids[4], name="deployer", issuer=oidc_issuer.url, subject=FEDERATED_SUBJECT
    )
    with runtime.db.unit_of_work() as session:
        ca = ConditionalAccessService(session, runtime.clock)
        office = ca.create_location(
            FENCE_TENANT,
            {
                "@odata.type": "#microsoft.graph.ipNamedLocation",
                "displayName": "Office",
                "isTrusted": True,
                "ipRanges": [
                    {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "127.0.0.1/32"}
                ],
            },
        )
        ca.create_location(
            FENCE_TENANT,
            {
                "@odata.type": "#microsoft.graph.ipNamedLocation",
                "displayName": "Lab (not trusted)",
                "isTrusted": False,
                "ipRanges": [
                    {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "127.0.0.4/32"}
                ],
            },
        )
        outside = {"locations": {"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]}}
        policies = {
            "fran": ca.create_policy(
                FENCE_TENANT, _policy("Office only", users=[users["fran"]], conditions=outside)
            ).id,
            "gwen": ca.create_policy(
                FENCE_TENANT,
                _policy(
                    "Block gwen (report-only)",
                    users=[users["gwen"]],
                    state="enabledForReportingButNotEnforced",
                ),
            ).id,
            "mfa": ca.create_policy(
                FENCE_TENANT,
                _policy(
                    "MFA for hugo and ines",
                    users=[users["hugo"], users["ines"]],
                    grant={"operator": "OR", "builtInControls": ["mfa"]},
                ),
            ).id,
            "sif": ca.create_policy(
                FENCE_TENANT,
                _policy(
                    "Sign in hourly",
                    users=[users["jill"]],
                    grant=None,
                    sessionControls={
                        "signInFrequency": {
                            "isEnabled": True,
                            "value": 1,
                            "type": "hours",
                            "frequencyInterval": "timeBased",
                        }
                    },
                ),
            ).id,
            "workload": ca.create_policy(
                FENCE_TENANT, _policy("Workloads from the office", sps=list(sp_ids), conditions=outside)
            ).id,
        }
        assert office.id
    return Fence(FENCE_TENANT, *app_ids, users=users, policies=policies)


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

    # A challenge from a minute after the sign-in (the resource saw an event then).
    later = int(entryway.clock.timestamp()) + 60
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


# --- Conditional Access: locations ---------------------------------------------------------------------------


def outside_client(instance: Instance, **kwargs: Any) -> Any:
    """msal as a client on another network: every connection leaves from 127.0.0.2."""
    return msal.PublicClientApplication(
        AZURE_CLI.app_id,
        authority=instance.authority("fence.test"),
        instance_discovery=False,
        http_client=session_from(instance.ca_bundle, OUTSIDE),
        **kwargs,
    )


def log_entries(instance: Instance, **where: Any) -> list[Any]:
    """The sign-in log's rows for fence.test matching `where`, newest last (after writing what is queued)."""
    from sqlalchemy import select

    from entryway.store.models import SignInLogRow

    instance.runtime.sign_in_log.flush()
    query = select(SignInLogRow).where(SignInLogRow.tenant_id == FENCE_TENANT)
    for name, value in where.items():
        query = query.where(getattr(SignInLogRow, name) == value)
    with instance.runtime.db.read() as session:
        rows = list(session.scalars(query.order_by(SignInLogRow.created_at)))
        session.expunge_all()
        return rows


def outcome_of(row: Any, policy_id: str) -> dict[str, Any]:
    (outcome,) = [p for p in row.applied_policies if p["id"] == policy_id]
    return dict(outcome)


def test_msal_device_flow_is_blocked_outside_the_office_and_works_inside(
    entryway: Instance, fence: Fence
) -> None:
    fran = SignInUser("fran@fence.test", PASSWORD, "Fran", mfa=False)
    app = outside_client(entryway)
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    done = complete_device_login(entryway, flow["user_code"], fran)  # the browser is in the office
    assert "AADSTS" not in done.html, done.html
    refused = app.acquire_token_by_device_flow(flow)
    assert refused["error"] == "interaction_required", refused
    assert refused["error_codes"] == [53003], refused
    assert refused["suberror"] == "message_only", refused
    assert refused["error_description"].startswith(
        "AADSTS53003: Access has been blocked by Conditional Access policies."
    )
    assert not app.get_accounts()

    inside = msal.PublicClientApplication(
        AZURE_CLI.app_id, authority=entryway.authority("fence.test"), instance_discovery=False
    )
    flow = inside.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    complete_device_login(entryway, flow["user_code"], fran)
    result = inside.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    assert claims_of(result["access_token"])["ipaddr"] == "127.0.0.1"

    (blocked,) = log_entries(
        entryway,
        user_id=fence.users["fran"],
        authentication_protocol="deviceCode",
        error_code=53003,
        is_interactive=False,
    )
    assert blocked.ip_address == OUTSIDE
    assert blocked.conditional_access_status == "failure"
    assert blocked.client_app_used == "mobileAppsAndDesktopClients"
    assert blocked.is_interactive is False
    assert blocked.resource_id == AZURE_DEVOPS.app_id
    assert blocked.failure_reason.startswith("AADSTS53003: ")
    assert outcome_of(blocked, fence.policies["fran"])["result"] == "failure"
    assert outcome_of(blocked, fence.policies["fran"])["enforcedGrantControls"] == ["Block"]
    (issued,) = log_entries(
        entryway,
        user_id=fence.users["fran"],
        authentication_protocol="deviceCode",
        error_code=0,
        is_interactive=False,  # the device page's own entries are the interactive ones
    )
    assert issued.ip_address == "127.0.0.1"
    assert issued.conditional_access_status == "notApplied"
    assert outcome_of(issued, fence.policies["fran"])["result"] == "notApplied"


@pytest.mark.parametrize(
    ("source", "allowed"),
    [("127.0.0.1", True), (OUTSIDE, False), ("127.0.0.4", False)],  # .4 is a named location, not trusted
)
def test_password_grant_by_location(entryway: Instance, fence: Fence, source: str, allowed: bool) -> None:
    response = password_grant(entryway, "fran", http=session_from(entryway.ca_bundle, source))
    if allowed:
        assert response.status_code == 200, response.text
    else:
        body = assert_refused(response, 53003, "interaction_required")
        assert body["suberror"] == "message_only"


def test_refresh_is_evaluated_and_a_refused_one_stays_usable(entryway: Instance, fence: Fence) -> None:
    first = password_grant(entryway, "fran")
    assert first.status_code == 200, first.text
    refresh_token = first.json()["refresh_token"]
    families = family_count(entryway, "fran")
    refused = refresh_grant(entryway, refresh_token, http=session_from(entryway.ca_bundle, OUTSIDE))
    assert_refused(refused, 53003, "interaction_required")
    assert family_count(entryway, "fran") == families
    again = refresh_grant(entryway, refresh_token)
    assert again.status_code == 200, again.text


def test_the_address_a_claims_challenge_names_is_checked_too(entryway: Instance, fence: Fence) -> None:
    """CAE: the resource saw the client at 127.0.0.2; a token asked for from the office is refused too."""
    challenge = json.dumps(
        {"access_token": {"xms_rp_ipaddr": {"value": OUTSIDE}, "xms_cc": {"values": ["CP1"]}}}
    )
    assert_refused(password_grant(entryway, "fran", claims=challenge), 53003, "interaction_required")
    inside = json.dumps({"access_token": {"xms_rp_ipaddr": {"value": "127.0.0.1"}}})
    assert password_grant(entryway, "fran", claims=inside).status_code == 200


def test_report_only_records_and_never_blocks(entryway: Instance, fence: Fence) -> None:
    response = password_grant(entryway, "gwen", http=session_from(entryway.ca_bundle, OUTSIDE))
    assert response.status_code == 200, response.text
    row = log_entries(entryway, user_id=fence.users["gwen"])[-1]
    assert row.error_code == 0
    assert row.is_interactive is True  # the password grant presents the credentials itself
    assert row.authentication_protocol == "ropc"
    assert row.conditional_access_status == "notApplied"
    assert outcome_of(row, fence.policies["gwen"])["result"] == "reportOnlyFailure"


# --- Conditional Access: MFA and sign-in frequency -------------------------------------------------------------


def test_mfa_policy_without_an_authenticator_asks_for_enrolment(entryway: Instance, fence: Fence) -> None:
    body = assert_refused(password_grant(entryway, "hugo"), 50079, "interaction_required")
    assert "enroll in multi-factor authentication" in body["error_description"]
    assert json.loads(body["claims"]) == {
        "access_token": {"capolids": {"essential": True, "values": [fence.policies["mfa"]]}}
    }
    assert family_count(entryway, "hugo") == 0


def test_mfa_policy_with_an_authenticator_asks_for_mfa(entryway: Instance, fence: Fence) -> None:
    body = assert_refused(password_grant(entryway, "ines"), 50076, "interaction_required")
    assert "you must use multi-factor authentication" in body["error_description"]
    row = log_entries(entryway, user_id=fence.users["ines"])[-1]
    assert row.error_code == 50076
    assert outcome_of(row, fence.policies["mfa"])["result"] == "failure"


def test_sign_in_frequency_expires_refresh_tokens(entryway: Instance, fence: Fence) -> None:
    first = password_grant(entryway, "jill")
    assert first.status_code == 200, first.text
    refresh_token = first.json()["refresh_token"]
    entryway.clock.advance(3601)
    try:
        body = assert_refused(refresh_grant(entryway, refresh_token), 70043, "invalid_grant")
        assert "0.01:00:00" in body["error_description"]
        fresh = password_grant(entryway, "jill")  # a new sign-in meets the frequency
        assert fresh.status_code == 200, fresh.text
    finally:
        entryway.clock.advance(-3601)  # the session's other tests keep the clock they had
    row = log_entries(entryway, user_id=fence.users["jill"], error_code=70043)[-1]
    assert outcome_of(row, fence.policies["sif"])["enforcedSessionControls"] == ["SignInFrequency"]


# --- Conditional Access: workload identities and the middle tier --------------------------------------------


def transport_from(instance: Instance, source: str) -> Any:
    from azure.core.pipeline.transport import RequestsTransport

    return RequestsTransport(session=session_from(instance.ca_bundle, source), session_owner=False)


@pytest.mark.parametrize(("source", "allowed"), [("127.0.0.1", True), (OUTSIDE, False)])
def test_client_credentials_with_a_secret_by_location(
    entryway: Instance, fence: Fence, source: str, allowed: bool
) -> None:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ClientSecretCredential

    credential = ClientSecretCredential(
        FENCE_TENANT,
        fence.daemon_app_id,
        fence.daemon_secret,
        authority=entryway.identity,
        disable_instance_discovery=True,
        transport=transport_from(entryway, source),
    )
    if allowed:
        token = credential.get_token(DEVOPS_SCOPE).token
        assert claims_of(token)["appid"] == fence.daemon_app_id
        return
    with pytest.raises(ClientAuthenticationError) as refused:
        credential.get_token(DEVOPS_SCOPE)
    assert "AADSTS53003" in str(refused.value)
    row = log_entries(entryway, app_id=fence.daemon_app_id, error_code=53003)[-1]
    assert row.principal_kind == "servicePrincipal"
    assert row.authentication_protocol == "clientCredentials"
    assert row.ip_address == OUTSIDE
    assert outcome_of(row, fence.policies["workload"])["result"] == "failure"


def test_federated_assertion_is_blocked_outside_the_office(
    entryway: Instance, fence: Fence, oidc_issuer: OidcIssuer
) -> None:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ClientAssertionCredential

    def credential(source: str) -> Any:
        return ClientAssertionCredential(
            FENCE_TENANT,
            fence.federated_app_id,
            lambda: oidc_issuer.token(FEDERATED_SUBJECT, now=entryway.clock.timestamp()),
            authority=entryway.identity,
            transport=transport_from(entryway, source),
        )

    with pytest.raises(ClientAuthenticationError) as refused:
        credential(OUTSIDE).get_token(DEVOPS_SCOPE)
    assert "AADSTS53003" in str(refused.value)
    token = credential("127.0.0.1").get_token(DEVOPS_SCOPE).token
    assert claims_of(token)["appid"] == fence.federated_app_id
    row = log_entries(entryway, app_id=fence.federated_app_id, error_code=53003)[-1]
    assert row.authentication_protocol == "federatedAssertion"


def test_a_raw_client_credentials_refusal_is_invalid_grant(entryway: Instance, fence: Fence) -> None:
    response = session_from(entryway.ca_bundle, OUTSIDE).post(
        token_url(entryway),
        data={
            "grant_type": "client_credentials",
            "client_id": fence.daemon_app_id,
            "client_secret": fence.daemon_secret,
            "scope": DEVOPS_SCOPE,
        },
        timeout=30,
    )
    body = assert_refused(response, 53003, "invalid_grant")
    assert "suberror" not in body
    # Without a client-request-id the answer's correlation id is Entryway's own: the log entry carries the same.
    assert body["correlation_id"] == response.headers["client-request-id"]
    (row,) = log_entries(entryway, correlation_id=body["correlation_id"])
    assert (row.app_id, row.error_code) == (fence.daemon_app_id, 53003)


def test_on_behalf_of_is_evaluated_at_the_middle_tier_address(entryway: Instance, fence: Fence) -> None:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import OnBehalfOfCredential

    incoming = password_grant(
        entryway, "fran", scope=f"{API_URI}/access_as_user openid profile offline_access"
    )
    assert incoming.status_code == 200, incoming.text
    assertion = incoming.json()["access_token"]

    def middle_tier(source: str) -> Any:
        return OnBehalfOfCredential(
            FENCE_TENANT,
            fence.api_app_id,
            client_secret=fence.api_secret,
            user_assertion=assertion,
            authority=entryway.identity,
            disable_instance_discovery=True,
            transport=transport_from(entryway, source),
        )

    with pytest.raises(ClientAuthenticationError) as refused:
        middle_tier(OUTSIDE).get_token(DEVOPS_SCOPE)
    assert "AADSTS53003" in str(refused.value)
    token = middle_tier("127.0.0.1").get_token(DEVOPS_SCOPE).token
    claims = claims_of(token)
    assert (claims["upn"], claims["appid"]) == ("fran@fence.test", fence.api_app_id)
    row = log_entries(entryway, app_id=fence.api_app_id, error_code=53003)[-1]
    assert row.authentication_protocol == "onBehalfOf"
    assert row.client_app_used == "browser"  # a confidential client acting for a user


def test_a_forwarded_office_address_from_an_untrusted_peer_does_not_get_past_the_fence(
    entryway: Instance, fence: Fence
) -> None:
    """The shared server trusts no proxy: X-Forwarded-For naming the office is the client's own say."""
    http = session_from(entryway.ca_bundle, OUTSIDE)
    http.headers["X-Forwarded-For"] = "127.0.0.1"
    assert_refused(password_grant(entryway, "fran", http=http), 53003, "interaction_required")
    row = log_entries(entryway, user_id=fence.users["fran"], error_code=53003)[-1]
    assert row.ip_address == OUTSIDE


def test_a_refused_password_grant_is_logged_with_the_user_it_named(entryway: Instance, fence: Fence) -> None:
    wrong = password_grant(entryway, "dirk", password="not-the-password")
    assert_refused(wrong, 50126, "invalid_grant")
    row = log_entries(entryway, user_id=fence.users["dirk"], error_code=50126)[-1]
    assert row.user_principal_name == "dirk@fence.test"
    assert row.authentication_protocol == "ropc"
    # A name that is nobody in the tenant is logged as it was typed (Entra's AADSTS50034 entries do so).
    unknown = password_grant(entryway, "nobody")
    assert_refused(unknown, 50034, "invalid_grant")
    row = log_entries(entryway, user_principal_name="nobody@fence.test")[-1]
    assert (row.error_code, row.user_id) == (50034, None)
