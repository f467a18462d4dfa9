"""Personal access tokens: the scope order and the token format, then the lifecycle API over TLS."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import yaml
from sqlalchemy import select

from entryway.config.declarative import apply_config
from entryway.devops.orgs.service import OrgService
from entryway.devops.pats import format as pat_format
from entryway.devops.pats import scopes
from entryway.store.models import AuditEventRow, PersonalAccessTokenRow
from tests.conftest import (
    ADA,
    AZURE_CLI_ID,
    BUILD_BOT_ID,
    BUILD_BOT_SECRET,
    CONTOSO_TENANT,
    DEVOPS_SCOPE,
    Instance,
    form_post,
)


def test_scope_inclusion_follows_the_family_order() -> None:
    assert scopes.includes("vso.code_write", "vso.code")
    assert scopes.includes("vso.code_manage", "vso.code_write")
    assert scopes.includes("vso.code", "vso.code")
    assert not scopes.includes("vso.code", "vso.code_write")
    assert not scopes.includes("vso.code_full", "vso.build")
    assert not scopes.includes("vso.unknown", "vso.unknown_write")


def test_full_access_includes_every_scope() -> None:
    assert all(scopes.includes("app_token", s) for s in scopes.KNOWN_SCOPES)
    assert scopes.grants("vso.build vso.code_write", "vso.code")
    assert not scopes.grants("vso.build vso.work", "vso.code")
    assert scopes.parse("vso.code  vso.code vso.build") == ["vso.code", "vso.build"]


def test_a_minted_pat_has_azure_devops_layout() -> None:
    value = pat_format.mint(datetime(2026, 11, 27, tzinfo=UTC))
    assert len(value) == 84
    assert value.isalnum()
    assert value.isascii()
    assert value[52:58] == "JQQJ99"
    assert value[58:60] == "CK"  # 2026 -> C, November -> K
    assert value[60:72] == "A" * 12
    assert value[72:80] == "AAAAAZDO"
    assert pat_format.is_well_formed(value)
    assert pat_format.mint(datetime(2026, 11, 27, tzinfo=UTC))[:52] != value[:52]


def test_a_damaged_pat_is_not_well_formed() -> None:
    value = pat_format.mint(datetime(2025, 1, 1, tzinfo=UTC))
    flipped = "B" if value[10] != "B" else "C"
    assert not pat_format.is_well_formed(value[:10] + flipped + value[11:])  # checksum
    assert not pat_format.is_well_formed(value[:-1])  # length
    assert not pat_format.is_well_formed(value[:52] + "JQQJ9D" + value[58:])  # signature
    assert not pat_format.is_well_formed(value[:76] + "AZDX" + value[80:])  # provider
    assert not pat_format.is_well_formed(value[:5] + "-" + value[6:])  # alphabet
    assert not pat_format.is_well_formed("a" * 52)  # a legacy PAT is not ours


# --- the lifecycle API over TLS ------------------------------------------------------------------------

ORG = "fabrikam"
PATS = f"/{ORG}/_apis/tokens/pats"
API_VERSION = "7.1-preview.1"
OTHER_USER = "patsy@contoso.test"
OTHER_PASSWORD = "Pat-Api-Tests-Password-0042"
PAT_CONFIG = f"""\
tenants:
  - id: {CONTOSO_TENANT}
    domains: [contoso.test]
    users:
      - upn: {OTHER_USER}
        password: "{OTHER_PASSWORD}"
        mfa_required: false
organizations:
  - name: {ORG}
    tenant: contoso.test
    members:
      - user: {OTHER_USER}
        access: basic
"""


def _token(instance: Instance, form: dict[str, str]) -> str:
    response = form_post(instance, f"/{CONTOSO_TENANT}/oauth2/v2.0/token", {**form, "scope": DEVOPS_SCOPE})
    assert response.status_code == 200, response.text
    value: str = response.json()["access_token"]
    return value


@dataclass(frozen=True)
class PatWorld:
    instance: Instance
    ada: str  # a user's Entra token
    bot: str  # an app-only Entra token
    org_id: str
    other: str  # another user's Entra token


@pytest.fixture(scope="module")
def pat_world(entryway: Instance) -> PatWorld:
    apply_config(entryway.runtime, yaml.safe_load(PAT_CONFIG), source="test_pat_api")
    other = _token(
        entryway,
        {
            "grant_type": "password",
            "client_id": AZURE_CLI_ID,
            "username": OTHER_USER,
            "password": OTHER_PASSWORD,
        },
    )
    ada = _token(
        entryway,
        {"grant_type": "password", "client_id": AZURE_CLI_ID, "username": ADA.upn, "password": ADA.password},
    )
    bot = _token(
        entryway,
        {"grant_type": "client_credentials", "client_id": BUILD_BOT_ID, "client_secret": BUILD_BOT_SECRET},
    )
    with entryway.runtime.db.read() as session:
        org_id = OrgService(session, entryway.clock).get(ORG).id
    return PatWorld(entryway, ada, bot, org_id, other)


def call(
    world: PatWorld,
    method: str,
    *,
    token: str | None = None,
    authorization: str | None = None,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    api_version: str | None = API_VERSION,
) -> requests.Response:
    query = dict(params or {})
    if api_version is not None:
        query["api-version"] = api_version
    return requests.request(
        method,
        f"{world.instance.devops}{PATS}",
        params=query,
        json=body,
        headers={"Authorization": authorization or f"Bearer {token or world.ada}"},
        verify=world.instance.ca_bundle,
        timeout=30,
    )


def create(world: PatWorld, **body: Any) -> dict[str, Any]:
    body.setdefault("scope", "vso.code")
    response = call(world, "POST", body=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert result["patTokenError"] == "none", result
    return dict(result["patToken"])


def pat_error(response: requests.Response) -> str:
    """In-band, as Azure DevOps answers: 200, no token, the error's name and (7.2) a message for a person."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"patToken", "patTokenError", "patTokenErrorMessage"}
    assert body["patToken"] is None
    assert isinstance(body["patTokenErrorMessage"], str)
    assert body["patTokenErrorMessage"].endswith(".")
    error: str = body["patTokenError"]
    return error


def _parse(value: str) -> datetime:
    assert value.endswith("Z")
    return datetime.fromisoformat(value)


def test_create_answers_azure_devops_shape_and_the_token_once(pat_world: PatWorld) -> None:
    now = pat_world.instance.clock.now()
    valid_to = (now + timedelta(days=7)).replace(microsecond=0)
    pat = create(pat_world, displayName="ci reader", scope="vso.code vso.build", validTo=valid_to.isoformat())
    assert list(pat) == [
        "displayName", "validTo", "scope", "targetAccounts", "validFrom", "authorizationId", "token"
    ]  # fmt: skip
    assert pat["displayName"] == "ci reader"
    assert pat["scope"] == "vso.code vso.build"
    assert pat["targetAccounts"] == [pat_world.org_id]
    assert _parse(pat["validTo"]) == valid_to
    assert abs(_parse(pat["validFrom"]) - now) < timedelta(seconds=5)
    assert pat_format.is_well_formed(pat["token"])
    got = call(pat_world, "GET", params={"authorizationId": pat["authorizationId"]}).json()
    assert got == {"patToken": {**pat, "token": None}, "patTokenError": "none"}
    listed = call(pat_world, "GET").json()
    assert set(listed) == {"continuationToken", "patTokens"}
    assert {**pat, "token": None} in listed["patTokens"]


def test_defaults_global_pats_and_full_access(pat_world: PatWorld) -> None:
    now = pat_world.instance.clock.now()
    pat = create(pat_world, displayName="everything everywhere", scope="app_token", allOrgs=True)
    assert pat["targetAccounts"] is None
    assert abs(_parse(pat["validTo"]) - (now + timedelta(days=30))) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"scope": "vso.code"}, "displayNameRequired"),
        ({"displayName": "  ", "scope": "vso.code"}, "displayNameRequired"),
        ({"displayName": "x" * 257, "scope": "vso.code"}, "invalidDisplayName"),
        ({"displayName": 7, "scope": "vso.code"}, "invalidDisplayName"),
        ({"displayName": "n", "scope": "vso.nothing"}, "invalidScope"),
        ({"displayName": "n", "scope": ""}, "invalidScope"),
        ({"displayName": "n"}, "invalidScope"),
        ({"displayName": "n", "scope": "vso.code", "validTo": "yesterday"}, "invalidValidTo"),
        ({"displayName": "n", "scope": "vso.code", "validTo": "2020-01-01T00:00:00Z"}, "invalidValidTo"),
        ({"displayName": "n", "scope": "vso.code", "validTo": "2999-01-01T00:00:00Z"}, "invalidValidTo"),
        ({"displayName": "n", "scope": "vso.code", "allOrgs": "yes"}, "invalidTargetAccounts"),
    ],
)
def test_create_refusals_are_in_band(pat_world: PatWorld, body: dict[str, Any], expected: str) -> None:
    assert pat_error(call(pat_world, "POST", body=body)) == expected


def test_update_changes_what_it_names(pat_world: PatWorld) -> None:
    pat = create(pat_world, displayName="to update")
    valid_to = (pat_world.instance.clock.now() + timedelta(days=90)).replace(microsecond=0)
    response = call(
        pat_world,
        "PUT",
        body={
            "authorizationId": pat["authorizationId"],
            "displayName": "updated",
            "scope": "vso.code_write",
            "validTo": valid_to.isoformat().replace("+00:00", "Z"),
            "allOrgs": True,
        },
    )
    body = response.json()
    assert body["patTokenError"] == "none", body
    updated = body["patToken"]
    assert updated["displayName"] == "updated"
    assert updated["scope"] == "vso.code_write"
    assert _parse(updated["validTo"]) == valid_to
    assert updated["targetAccounts"] is None
    assert updated["token"] is None
    assert updated["validFrom"] == pat["validFrom"]
    # Only the name: the rest stays.
    renamed = call(pat_world, "PUT", body={"authorizationId": pat["authorizationId"], "displayName": "again"})
    assert renamed.json()["patToken"] == {**updated, "displayName": "again"}
    with pat_world.instance.runtime.db.read() as session:
        changes = session.scalars(
            select(AuditEventRow.details)
            .where(AuditEventRow.action == "Token.Update")
            .where(AuditEventRow.details["authorizationId"].as_string() == pat["authorizationId"])
        ).all()
    assert sorted(d["changed"] for d in changes) == [
        ["displayName"],
        ["displayName", "scope", "validTo", "allOrgs"],
    ]


def test_update_and_get_refusals(pat_world: PatWorld) -> None:
    missing = "7d1c3f4e-0000-4000-8000-000000000000"
    assert pat_error(call(pat_world, "PUT", body={"authorizationId": missing})) == "authorizationNotFound"
    assert pat_error(call(pat_world, "PUT", body={"authorizationId": "nope"})) == "invalidAuthorizationId"
    assert pat_error(call(pat_world, "PUT", body={"displayName": "x"})) == "invalidAuthorizationId"
    assert pat_error(call(pat_world, "GET", params={"authorizationId": missing})) == "authorizationNotFound"
    assert pat_error(call(pat_world, "GET", params={"authorizationId": "nope"})) == "invalidAuthorizationId"
    assert (
        pat_error(call(pat_world, "DELETE", params={"authorizationId": missing})) == "authorizationNotFound"
    )
    pat = create(pat_world, displayName="refusals")
    key = pat["authorizationId"]
    assert (
        pat_error(call(pat_world, "PUT", body={"authorizationId": key, "scope": "vso.bogus"}))
        == "invalidScope"
    )
    too_far = "2999-01-01T00:00:00Z"
    assert (
        pat_error(call(pat_world, "PUT", body={"authorizationId": key, "validTo": too_far}))
        == "invalidValidTo"
    )


def test_an_expired_pat_cannot_be_extended(pat_world: PatWorld) -> None:
    pat = create(pat_world, displayName="soon expired")
    key = pat["authorizationId"]
    with pat_world.instance.runtime.db.unit_of_work() as session:
        row = session.get(PersonalAccessTokenRow, key)
        assert row is not None
        row.valid_to = pat_world.instance.clock.now() - timedelta(days=1)
    later = (pat_world.instance.clock.now() + timedelta(days=10)).isoformat()
    response = call(pat_world, "PUT", body={"authorizationId": key, "validTo": later})
    assert pat_error(response) == "expiredPatCannotBeExtended"
    expired = call(pat_world, "GET", params={"displayFilterOption": "expired", "$top": "100"}).json()
    assert key in {p["authorizationId"] for p in expired["patTokens"]}
    active = call(pat_world, "GET", params={"displayFilterOption": "active"}).json()
    assert key not in {p["authorizationId"] for p in active["patTokens"]}


def test_revoke_is_204_and_final(pat_world: PatWorld) -> None:
    pat = create(pat_world, displayName="to revoke")
    key = pat["authorizationId"]
    response = call(pat_world, "DELETE", params={"authorizationId": key})
    assert response.status_code == 204
    assert response.content == b""
    assert call(pat_world, "DELETE", params={"authorizationId": key}).status_code == 204  # idempotent
    revoked = call(pat_world, "GET", params={"displayFilterOption": "revoked"}).json()["patTokens"]
    assert key in {p["authorizationId"] for p in revoked}
    active = call(pat_world, "GET").json()["patTokens"]
    assert key not in {p["authorizationId"] for p in active}
    assert pat_error(call(pat_world, "PUT", body={"authorizationId": key, "displayName": "x"})) == (
        "failedToUpdateAccessToken"
    )
    with pat_world.instance.runtime.db.read() as session:
        rows = session.scalars(
            select(AuditEventRow).where(AuditEventRow.details["authorizationId"].as_string() == key)
        ).all()
    assert sorted(r.action for r in rows) == ["Token.Create", "Token.Revoke"]
    # The actor as every audit row names it: the display name (the auditlog's actorDisplayName), not the UPN.
    assert {r.actor_name for r in rows} == {"Ada Basic"}


def test_list_sorts_pages_and_filters(pat_world: PatWorld) -> None:
    for name in ["list-b", "list-c", "list-a"]:
        create(pat_world, displayName=name)
    everything = call(pat_world, "GET", params={"displayFilterOption": "all", "$top": "100"}).json()
    names = [p["displayName"].lower() for p in everything["patTokens"]]
    assert names == sorted(names)
    assert all(p["token"] is None for p in everything["patTokens"])
    # Pages of two, followed with the continuation token, give the same list.
    paged: list[dict[str, Any]] = []
    params = {"displayFilterOption": "all", "$top": "2"}
    while True:
        page = call(pat_world, "GET", params=params).json()
        assert len(page["patTokens"]) <= 2
        paged.extend(page["patTokens"])
        if not page["continuationToken"]:
            break
        params = {**params, "continuationToken": page["continuationToken"]}
    assert paged == everything["patTokens"]
    descending = call(
        pat_world,
        "GET",
        params={"displayFilterOption": "all", "sortByOption": "displayName", "isSortAscending": "false"},
    ).json()["patTokens"]
    assert [p["displayName"].lower() for p in descending] == sorted(names, reverse=True)
    by_date = call(pat_world, "GET", params={"sortByOption": "displayDate"}).json()["patTokens"]
    assert [p["validTo"] for p in by_date] == sorted(p["validTo"] for p in by_date)
    gone = create(pat_world, displayName="list-0-revoked")
    call(pat_world, "DELETE", params={"authorizationId": gone["authorizationId"]})
    kept = create(pat_world, displayName="list-z-active")
    by_status = call(
        pat_world, "GET", params={"displayFilterOption": "all", "sortByOption": "status"}
    ).json()["patTokens"]
    ids = [p["authorizationId"] for p in by_status]
    assert ids.index(kept["authorizationId"]) < ids.index(gone["authorizationId"])  # active before revoked


def test_only_a_users_entra_token_may_call(pat_world: PatWorld) -> None:
    refused = call(pat_world, "GET", token=pat_world.bot)
    assert refused.status_code == 403
    assert refused.json()["typeKey"] == "InvalidAccessException"
    assert refused.json()["message"] == "The requested operation is not allowed."
    assert (
        call(
            pat_world, "POST", token=pat_world.bot, body={"displayName": "n", "scope": "vso.code"}
        ).status_code
        == 403
    )
    # A PAT, even a full-access one, is refused as Azure DevOps refuses it; a narrower one lacks the
    # route's scope (app_token) and gets the 401 of scope enforcement first.
    pat = create(pat_world, displayName="a pat calling", scope="app_token")
    basic = "Basic " + base64.b64encode(f":{pat['token']}".encode()).decode()
    by_pat = call(pat_world, "GET", authorization=basic)
    assert by_pat.status_code == 403
    assert by_pat.json()["typeKey"] == "InvalidAccessException"
    narrow = create(pat_world, displayName="a narrow pat calling", scope="vso.tokens")
    basic_narrow = "Basic " + base64.b64encode(f":{narrow['token']}".encode()).decode()
    assert call(pat_world, "GET", authorization=basic_narrow).status_code == 401
    assert (
        call(
            pat_world, "POST", authorization=basic, body={"displayName": "n", "scope": "vso.code"}
        ).status_code
        == 403
    )


def test_a_change_needs_an_api_version(pat_world: PatWorld) -> None:
    response = call(pat_world, "POST", body={"displayName": "n", "scope": "vso.code"}, api_version=None)
    assert response.status_code == 400
    assert response.json()["typeKey"] == "VssVersionNotSpecifiedException"


def test_the_database_holds_no_pat_in_clear(pat_world: PatWorld) -> None:
    values = [create(pat_world, displayName=f"scan {i}")["token"] for i in range(3)]
    data_dir = pat_world.instance.runtime.settings.data_dir
    files = [p for p in data_dir.glob("entryway.db*") if p.is_file()]  # the database, its WAL and SHM
    assert data_dir / "entryway.db" in files
    for path in files:
        content = path.read_bytes()
        for value in values:
            assert value.encode() not in content, path
            assert value[:52].encode() not in content, path
    with pat_world.instance.runtime.db.read() as session:
        details = session.scalars(
            select(AuditEventRow.details).where(AuditEventRow.action.like("Token.%"))
        ).all()
    assert details
    assert not any(value in str(d) for d in details for value in values)


def test_a_user_sees_only_their_own_pats(pat_world: PatWorld) -> None:
    mine = create(pat_world, displayName="ada's own")
    key = mine["authorizationId"]
    theirs = call(pat_world, "GET", token=pat_world.other, params={"displayFilterOption": "all"}).json()
    assert key not in {p["authorizationId"] for p in theirs["patTokens"]}
    assert pat_error(call(pat_world, "GET", token=pat_world.other, params={"authorizationId": key})) == (
        "authorizationNotFound"
    )
    body = {"authorizationId": key, "displayName": "hijacked"}
    assert pat_error(call(pat_world, "PUT", token=pat_world.other, body=body)) == "authorizationNotFound"
    refused = call(pat_world, "DELETE", token=pat_world.other, params={"authorizationId": key})
    assert pat_error(refused) == "authorizationNotFound"
    still = call(pat_world, "GET", params={"authorizationId": key}).json()["patToken"]
    assert still == {**mine, "token": None}


def test_a_pat_made_here_works_until_it_is_revoked(pat_world: PatWorld) -> None:
    pat = create(pat_world, displayName="connection data", scope="vso.profile")
    basic = "Basic " + base64.b64encode(f":{pat['token']}".encode()).decode()

    def connection_data() -> int:
        response = requests.get(
            f"{pat_world.instance.devops}/{ORG}/_apis/connectionData",
            headers={"Authorization": basic, "X-TFS-FedAuthRedirect": "Suppress"},
            verify=pat_world.instance.ca_bundle,
            timeout=30,
        )
        return response.status_code

    assert connection_data() == 200
    assert call(pat_world, "DELETE", params={"authorizationId": pat["authorizationId"]}).status_code == 204
    assert connection_data() == 401
