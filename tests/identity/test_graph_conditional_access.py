"""Microsoft Graph's Conditional Access API on the identity origin: tokens from msal for Graph, Graph's shapes
and errors, who may read and write, and that a refused request writes nothing. Own tenant policyadmin.test;
every policy written here targets the DevOps resource for one user, so no token this module asks for is
affected by it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msal
import pytest
import requests
import yaml
from sqlalchemy import func, select

from entryway.config.declarative import apply_config
from entryway.store.models import ConditionalAccessPolicyRow, ContinuousAccessEventRow, NamedLocationRow
from tests.conftest import AZURE_CLI_ID, DEVOPS_RESOURCE, DEVOPS_SCOPE, Instance, form_post

TENANT = "5e1d7c3b-9a2f-4d6e-8b1c-0f3a5e7d9c2b"
ADMIN = ("admin@policyadmin.test", "Ca-Admin-Writes-0042")
READER = ("reader@policyadmin.test", "Security-Reads-0042")
GLOBAL = ("global@policyadmin.test", "Global-Admin-0042")
PLAIN = ("plain@policyadmin.test", "Plain-User-0042")
LEAVER = ("leaver@policyadmin.test", "Leaves-Soon-0042")
WRITER_BOT = ("6d2e8f4a-1b3c-4d5e-9f6a-7b8c9d0e1f2a", "policy-writer-secret-0123456789abcdefghij")
READER_BOT = ("7e3f9a5b-2c4d-4e6f-8a7b-8c9d0e1f2a3b", "policy-reader-secret-0123456789abcdefghij")
PLAIN_BOT = ("8f4a0b6c-3d5e-4f7a-9b8c-9d0e1f2a3b4c", "plain-bot-secret-0123456789abcdefghijklm")
GRAPH_SCOPE = "https://graph.microsoft.com/.default"

CONFIG = f"""\
tenants:
  - id: {TENANT}
    domains: [policyadmin.test]
    display_name: Policy Admin
    users:
      - {{upn: {ADMIN[0]}, password: "{ADMIN[1]}", display_name: CA Admin, roles: [Conditional Access Administrator]}}
      - {{upn: {READER[0]}, password: "{READER[1]}", display_name: Reader, roles: [Security Reader]}}
      - {{upn: {GLOBAL[0]}, password: "{GLOBAL[1]}", display_name: Global, roles: [Global Administrator]}}
      - {{upn: {PLAIN[0]}, password: "{PLAIN[1]}", display_name: Plain}}
      - {{upn: {LEAVER[0]}, password: "{LEAVER[1]}", display_name: Leaver, roles: [Conditional Access Administrator]}}
    apps:
      - name: policy-writer
        client_id: {WRITER_BOT[0]}
        secrets: [{{value: "{WRITER_BOT[1]}"}}]
        grants: [{{resource: Microsoft Graph, roles: [Policy.ReadWrite.ConditionalAccess]}}]
      - name: policy-reader
        client_id: {READER_BOT[0]}
        secrets: [{{value: "{READER_BOT[1]}"}}]
        grants: [{{resource: "https://graph.microsoft.com", roles: [Policy.Read.All]}}]
      - name: plain-bot
        client_id: {PLAIN_BOT[0]}
        secrets: [{{value: "{PLAIN_BOT[1]}"}}]
"""


@dataclass(frozen=True)
class Tokens:
    admin: str
    reader: str
    global_admin: str
    plain: str
    writer_bot: str
    reader_bot: str
    plain_bot: str
    devops: str
    leaver: str


def _user_token(instance: Instance, user: tuple[str, str], scope: str = GRAPH_SCOPE) -> str:
    """The password grant as `az login -u -p` sends it (msal's ROPC looks the user's realm up on port 443,
    which a test server on an ephemeral port is not)."""
    response = form_post(
        instance,
        f"/{TENANT}/oauth2/v2.0/token",
        {
            "grant_type": "password",
            "client_id": AZURE_CLI_ID,
            "username": user[0],
            "password": user[1],
            "scope": scope,
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _app_token(instance: Instance, bot: tuple[str, str]) -> str:
    app = msal.ConfidentialClientApplication(
        bot[0], client_credential=bot[1], authority=instance.authority(TENANT), instance_discovery=False
    )
    result = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" in result, result
    return str(result["access_token"])


@pytest.fixture(scope="module")
def tokens(entryway: Instance) -> Tokens:
    apply_config(entryway.runtime, yaml.safe_load(CONFIG), source="test_graph_conditional_access")
    return Tokens(
        admin=_user_token(entryway, ADMIN),
        reader=_user_token(entryway, READER),
        global_admin=_user_token(entryway, GLOBAL),
        plain=_user_token(entryway, PLAIN),
        writer_bot=_app_token(entryway, WRITER_BOT),
        reader_bot=_app_token(entryway, READER_BOT),
        plain_bot=_app_token(entryway, PLAIN_BOT),
        devops=_user_token(entryway, ADMIN, DEVOPS_SCOPE),
        leaver=_user_token(entryway, LEAVER),
    )


def graph(instance: Instance, method: str, path: str, token: str | None, **kwargs: Any) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(
        method,
        f"{instance.identity}/graph/v1.0/identity/conditionalAccess/{path}",
        headers=headers,
        verify=instance.ca_bundle,
        timeout=30,
        **kwargs,
    )


def counts(instance: Instance) -> tuple[int, int, int]:
    """Policies and locations of the tenant, and its CAE events: what a refused request must not change."""
    with instance.runtime.db.read() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(ConditionalAccessPolicyRow)
                .where(ConditionalAccessPolicyRow.tenant_id == TENANT)
            )
            or 0,
            session.scalar(
                select(func.count()).select_from(NamedLocationRow).where(NamedLocationRow.tenant_id == TENANT)
            )
            or 0,
            session.scalar(
                select(func.count())
                .select_from(ContinuousAccessEventRow)
                .where(ContinuousAccessEventRow.tenant_id == TENANT)
            )
            or 0,
        )


def plain_user_id(instance: Instance) -> str:
    from entryway.store.models import UserRow

    with instance.runtime.db.read() as session:
        return str(session.scalar(select(UserRow.object_id).where(UserRow.user_principal_name == PLAIN[0])))


def expect_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert body["code"] == code, body
    assert set(body["innerError"]) == {"date", "request-id", "client-request-id"}
    return body


def location_body(name: str = "HQ", cidr: str = "10.20.0.0/16", trusted: bool = True) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.ipNamedLocation",
        "displayName": name,
        "isTrusted": trusted,
        "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": cidr}],
    }


def policy_body(instance: Instance, name: str, location_id: str | None = None) -> dict[str, Any]:
    conditions: dict[str, Any] = {
        "users": {"includeUsers": [plain_user_id(instance)]},
        "applications": {"includeApplications": [DEVOPS_RESOURCE]},
        "clientAppTypes": ["all"],
    }
    if location_id:
        conditions["locations"] = {"includeLocations": ["All"], "excludeLocations": [location_id]}
    return {
        "displayName": name,
        "state": "enabledForReportingButNotEnforced",
        "conditions": conditions,
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }


def test_the_whole_life_of_a_policy(entryway: Instance, tokens: Tokens) -> None:
    listed = graph(entryway, "GET", "policies", tokens.admin)
    assert listed.status_code == 200, listed.text
    assert listed.json()["@odata.context"].endswith("$metadata#identity/conditionalAccess/policies")
    before = counts(entryway)

    created_location = graph(entryway, "POST", "namedLocations", tokens.admin, json=location_body())
    assert created_location.status_code == 201, created_location.text
    location = created_location.json()
    assert location["@odata.type"] == "#microsoft.graph.ipNamedLocation"
    assert location["ipRanges"] == [
        {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "10.20.0.0/16"}
    ]

    created = graph(
        entryway, "POST", "policies", tokens.admin, json=policy_body(entryway, "Life", location["id"])
    )
    assert created.status_code == 201, created.text
    policy = created.json()
    assert policy["state"] == "enabledForReportingButNotEnforced"
    assert policy["conditions"]["locations"] == {
        "includeLocations": ["All"],
        "excludeLocations": [location["id"]],
    }
    assert policy["createdDateTime"].endswith("Z")
    # Two changes, two policiesChanged events, the last with both objects in its snapshot.
    assert counts(entryway) == (before[0] + 1, before[1] + 1, before[2] + 2)
    with entryway.runtime.db.read() as session:
        event = session.scalars(
            select(ContinuousAccessEventRow)
            .where(ContinuousAccessEventRow.tenant_id == TENANT)
            .order_by(ContinuousAccessEventRow.seq.desc())
        ).first()
        assert event is not None
        assert event.kind == "policiesChanged"
        assert policy["id"] in [p["id"] for p in event.payload["policies"]]
        assert location["id"] in [loc["id"] for loc in event.payload["namedLocations"]]

    shown = graph(entryway, "GET", f"policies/{policy['id']}", tokens.reader)
    assert shown.status_code == 200
    assert shown.json()["displayName"] == "Life"

    patched = graph(entryway, "PATCH", f"policies/{policy['id']}", tokens.admin, json={"state": "disabled"})
    assert patched.status_code == 204, patched.text
    shown = graph(entryway, "GET", f"policies/{policy['id']}", tokens.admin).json()
    assert shown["state"] == "disabled"
    assert shown["conditions"]["locations"]["excludeLocations"] == [location["id"]]  # PATCH kept the rest

    # A location a policy uses cannot go.
    expect_error(graph(entryway, "DELETE", f"namedLocations/{location['id']}", tokens.admin), 409, "Conflict")

    assert graph(entryway, "DELETE", f"policies/{policy['id']}", tokens.admin).status_code == 204
    expect_error(graph(entryway, "GET", f"policies/{policy['id']}", tokens.admin), 404, "ResourceNotFound")
    assert (
        graph(entryway, "DELETE", f"namedLocations/{location['id']}", tokens.global_admin).status_code == 204
    )
    assert counts(entryway)[:2] == before[:2]


def test_named_location_patch_and_ipv6(entryway: Instance, tokens: Tokens) -> None:
    body = location_body("Lab", "2001:db8:1::/48", trusted=False)
    body["ipRanges"][0]["@odata.type"] = "#microsoft.graph.iPv6CidrRange"
    created = graph(entryway, "POST", "namedLocations", tokens.writer_bot, json=body)
    assert created.status_code == 201, created.text
    location_id = created.json()["id"]
    patched = graph(
        entryway, "PATCH", f"namedLocations/{location_id}", tokens.writer_bot, json={"isTrusted": True}
    )
    assert patched.status_code == 204
    shown = graph(entryway, "GET", f"namedLocations/{location_id}", tokens.reader_bot).json()
    assert shown["isTrusted"] is True
    assert shown["ipRanges"][0] == {
        "@odata.type": "#microsoft.graph.iPv6CidrRange",
        "cidrAddress": "2001:db8:1::/48",
    }
    listed = graph(entryway, "GET", "namedLocations", tokens.reader).json()["value"]
    assert location_id in [loc["id"] for loc in listed]
    assert graph(entryway, "DELETE", f"namedLocations/{location_id}", tokens.writer_bot).status_code == 204


@pytest.mark.parametrize(
    "case",
    [
        # A user holding the scope but no admin role.
        ("plain", "GET", 403, "Authorization_RequestDenied"),
        ("plain", "POST", 403, "Authorization_RequestDenied"),
        # Security Reader reads only.
        ("reader", "POST", 403, "Authorization_RequestDenied"),
        # An app without the app role, and one with only the read role.
        ("plain_bot", "GET", 403, "AccessDenied"),
        ("reader_bot", "POST", 403, "AccessDenied"),
        # A token for another resource, none, or not a token.
        ("devops", "GET", 401, "InvalidAuthenticationToken"),
        (None, "GET", 401, "InvalidAuthenticationToken"),
        ("garbage", "POST", 401, "InvalidAuthenticationToken"),
    ],
)
def test_callers_without_access_are_refused(
    entryway: Instance, tokens: Tokens, case: tuple[str | None, str, int, str]
) -> None:
    who, method, status, code = case
    token = None if who is None else "not.a.token" if who == "garbage" else getattr(tokens, who)
    before = counts(entryway)
    kwargs: dict[str, Any] = {"json": location_body(f"Refused {who} {method}")} if method == "POST" else {}
    response = graph(entryway, method, "namedLocations", token, **kwargs)
    expect_error(response, status, code)
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert counts(entryway) == before


def test_client_request_id_is_echoed(entryway: Instance, tokens: Tokens) -> None:
    request_id = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
    response = graph(entryway, "GET", "policies", "not.a.token", headers={"client-request-id": request_id})
    assert (
        expect_error(response, 401, "InvalidAuthenticationToken")["innerError"]["client-request-id"]
        == request_id
    )


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("policies", b"{not json", "Unable to read JSON"),
        ("policies", b"[]", "JSON object"),
        ("policies", {"displayName": "No state", "conditions": {}}, "state"),
        (
            "policies",
            {
                "displayName": "X",
                "state": "enabled",
                "conditions": {
                    "applications": {"includeApplications": ["All"]},
                    "users": {"includeUsers": ["All"]},
                },
                "grantControls": {"operator": "OR", "builtInControls": ["compliantDevice"]},
            },
            "compliantDevice",
        ),
        (
            "policies",
            {
                "displayName": "X",
                "state": "enabled",
                "conditions": {
                    "applications": {"includeApplications": ["All"]},
                    "users": {"includeUsers": ["0a0a0a0a-0a0a-4a0a-8a0a-0a0a0a0a0a0a"]},
                },
                "grantControls": {"operator": "OR", "builtInControls": ["block"]},
            },
            "includeUsers",
        ),
        (
            "policies",
            {
                "displayName": "X",
                "state": "enabled",
                "conditions": {
                    "applications": {"includeApplications": ["All"]},
                    "users": {"includeUsers": ["All"]},
                    "locations": {"includeLocations": ["0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b"]},
                },
                "grantControls": {"operator": "OR", "builtInControls": ["block"]},
            },
            "named location",
        ),
        (
            "namedLocations",
            {"displayName": "Bad", "ipRanges": [{"cidrAddress": "10.0.0.300/8"}]},
            "ipRanges[0].cidrAddress",
        ),
        ("namedLocations", {"displayName": "Empty", "ipRanges": []}, "ipRanges"),
    ],
)
def test_bad_bodies_are_400_and_change_nothing(
    entryway: Instance, tokens: Tokens, path: str, body: Any, message: str
) -> None:
    before = counts(entryway)
    kwargs: dict[str, Any] = (
        {"data": body, "headers": {"Content-Type": "application/json"}}
        if isinstance(body, bytes)
        else {"json": body}
    )
    response = graph(entryway, "POST", path, tokens.admin, **kwargs)
    assert message in expect_error(response, 400, "BadRequest")["message"]
    assert counts(entryway) == before


def test_bad_patch_changes_nothing(entryway: Instance, tokens: Tokens) -> None:
    created = graph(entryway, "POST", "policies", tokens.admin, json=policy_body(entryway, "Patched badly"))
    assert created.status_code == 201, created.text
    policy_id = created.json()["id"]
    before = counts(entryway)
    for patch in (
        {"state": "sometimes"},
        {"grantControls": {"operator": "OR", "builtInControls": ["block", "mfa"]}},
    ):
        expect_error(
            graph(entryway, "PATCH", f"policies/{policy_id}", tokens.admin, json=patch), 400, "BadRequest"
        )
    expect_error(
        graph(entryway, "PATCH", f"policies/{policy_id}", tokens.reader, json={"state": "enabled"}),
        403,
        "Authorization_RequestDenied",
    )
    assert counts(entryway) == before
    assert (
        graph(entryway, "GET", f"policies/{policy_id}", tokens.admin).json()["state"]
        == "enabledForReportingButNotEnforced"
    )
    # A second policy of the same name is refused (names are unique per tenant in Entryway).
    expect_error(
        graph(entryway, "POST", "policies", tokens.admin, json=policy_body(entryway, "patched BADLY")),
        409,
        "Conflict",
    )
    assert graph(entryway, "DELETE", f"policies/{policy_id}", tokens.admin).status_code == 204


@pytest.mark.parametrize("ref", ["00000000-0000-0000-0000-000000000001", "not-a-guid"])
def test_unknown_ids_are_404(entryway: Instance, tokens: Tokens, ref: str) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"state": "disabled"}} if method == "PATCH" else {}
        expect_error(
            graph(entryway, method, f"policies/{ref}", tokens.admin, **kwargs), 404, "ResourceNotFound"
        )
        expect_error(
            graph(entryway, method, f"namedLocations/{ref}", tokens.admin, **kwargs), 404, "ResourceNotFound"
        )


def test_another_tenants_objects_are_not_found(entryway: Instance, tokens: Tokens) -> None:
    """A policy id of another tenant is unknown to this tenant's administrator."""
    created = graph(
        entryway, "POST", "namedLocations", tokens.admin, json=location_body("Tenant-bound", "10.99.0.0/16")
    )
    location_id = created.json()["id"]
    with entryway.runtime.db.unit_of_work() as session:
        row = session.get(NamedLocationRow, location_id)
        assert row is not None
        assert row.tenant_id == TENANT
    contoso_admin_cannot = graph(entryway, "GET", f"namedLocations/{location_id}", tokens.admin)
    assert contoso_admin_cannot.status_code == 200  # same tenant: found
    assert graph(entryway, "DELETE", f"namedLocations/{location_id}", tokens.admin).status_code == 204


def test_a_disabled_or_demoted_user_loses_access_at_once(entryway: Instance, tokens: Tokens) -> None:
    """The directory is read at every call: the token still looks fine, the user no longer is."""
    from entryway.identity.directory.groups import GroupService
    from entryway.identity.directory.service import DirectoryService

    assert graph(entryway, "GET", "policies", tokens.leaver).status_code == 200
    runtime = entryway.runtime
    with runtime.db.unit_of_work() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        user = directory.get_user(LEAVER[0])
        GroupService(session, runtime.clock).remove_role(
            directory.find_tenant(TENANT), user, "Conditional Access Administrator"
        )
    expect_error(graph(entryway, "GET", "policies", tokens.leaver), 403, "Authorization_RequestDenied")
    with runtime.db.unit_of_work() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        directory.set_account_enabled(directory.get_user(LEAVER[0]), False)
    expect_error(graph(entryway, "GET", "policies", tokens.leaver), 401, "InvalidAuthenticationToken")
