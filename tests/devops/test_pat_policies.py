"""Administrator PAT policies enforced over the real PAT lifecycle API and on PAT use (devops-wire-contract 4).

A tenant of its own (policies.test) with two organizations, so the tenant policies set here never reach the
other tests' tenants. Each test starts from the defaults (an autouse fixture clears every policy and allowlist).
Tokens come from the real token endpoint (password grant of the Azure CLI client); PATs are used with requests
over TLS.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import yaml
from sqlalchemy import select

from entryway.config.declarative import apply_config
from entryway.devops.audit.recorder import Actor
from entryway.devops.orgs.service import Organization, OrgService
from entryway.devops.pats.policy import (
    ORGANIZATION,
    TENANT,
    TENANT_POLICIES,
    AllowlistEntry,
    PatPolicyService,
    PolicyName,
    Requester,
)
from entryway.devops.pats.service import Owner, PatError, PatErrorKind, PatService
from entryway.identity.directory.groups import GroupService
from entryway.identity.directory.service import DirectoryService
from entryway.store.models import AuditEventRow, PersonalAccessTokenRow
from tests.conftest import AZURE_CLI_ID, DEVOPS_SCOPE, Instance, form_post

TENANT_ID = "5e1d2c3b-4a59-4687-9a0b-1c2d3e4f5a6b"
ONE, TWO = "policy-one", "policy-two"
PIA = ("pia@policies.test", "Pia-Policy-Tests-0042")  # on no allowlist
QUINN = ("quinn@policies.test", "Quinn-Policy-Tests-0042")  # put on allowlists by the tests
ROSA = ("rosa@policies.test", "Rosa-Policy-Tests-0042")  # in the group EXEMPT (through a nested group)
EXEMPT = "PAT Exempt"
API_VERSION = "7.1-preview.1"
CONFIG = f"""\
tenants:
  - id: {TENANT_ID}
    domains: [policies.test]
    users:
      - upn: {PIA[0]}
        password: "{PIA[1]}"
        display_name: Pia Policy
        mfa_required: false
      - upn: {QUINN[0]}
        password: "{QUINN[1]}"
        display_name: Quinn Allowed
        mfa_required: false
      - upn: {ROSA[0]}
        password: "{ROSA[1]}"
        display_name: Rosa Grouped
        mfa_required: false
    groups:
      - name: {EXEMPT}
        members: [{{group: Release Team}}]
      - name: Release Team
        members: [{{user: {ROSA[0]}}}]
organizations:
  - name: {ONE}
    tenant: policies.test
    members:
      - user: {PIA[0]}
        access: basic
      - user: {QUINN[0]}
        access: basic
      - user: {ROSA[0]}
        access: basic
  - name: {TWO}
    tenant: policies.test
    members:
      - user: {PIA[0]}
        access: basic
      - user: {QUINN[0]}
        access: basic
      - user: {ROSA[0]}
        access: basic
"""


def _token(instance: Instance, user: tuple[str, str]) -> str:
    form = {
        "grant_type": "password",
        "client_id": AZURE_CLI_ID,
        "username": user[0],
        "password": user[1],
        "scope": DEVOPS_SCOPE,
    }
    response = form_post(instance, f"/{TENANT_ID}/oauth2/v2.0/token", form)
    assert response.status_code == 200, response.text
    value: str = response.json()["access_token"]
    return value


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def _oid(token: str) -> str:
    return str(_claims(token)["oid"])


@dataclass(frozen=True)
class World:
    instance: Instance
    pia: str
    quinn: str
    quinn_oid: str
    pia_oid: str
    one: Organization
    two: Organization
    rosa: str
    exempt_id: str  # the group's object id


@pytest.fixture(scope="module")
def world(entryway: Instance) -> World:
    apply_config(entryway.runtime, yaml.safe_load(CONFIG), source="test_pat_policies")
    pia, quinn, rosa = _token(entryway, PIA), _token(entryway, QUINN), _token(entryway, ROSA)
    with entryway.runtime.db.read() as session:
        orgs = OrgService(session, entryway.clock)
        one, two = orgs.get(ONE), orgs.get(TWO)
        directory = DirectoryService(session, entryway.clock, entryway.runtime.digester)
        exempt = GroupService(session, entryway.clock).find_group(directory.find_tenant(TENANT_ID), EXEMPT)
    assert exempt.object_id in _claims(rosa)["groups"]  # transitively, through Release Team
    return World(entryway, pia, quinn, _oid(quinn), _oid(pia), one, two, rosa, exempt.object_id)


@contextmanager
def policies(world: World) -> Iterator[PatPolicyService]:
    with world.instance.runtime.db.unit_of_work() as session:
        yield PatPolicyService(session, world.instance.clock)


@pytest.fixture(autouse=True)
def _defaults(world: World) -> None:
    """Every policy off (automatic revocation on), every allowlist empty."""
    with policies(world) as service:
        service.set_tenant_policy(
            TENANT_ID, None, restrict_global=False, restrict_full_scope=False, max_lifespan_days=None
        )
        tenant = service.tenant_policy(TENANT_ID)
        for name in TENANT_POLICIES:
            for entry in tenant.allowlist(name):
                service.disallow(TENANT, TENANT_ID, name, entry.principal_object_id, None)
        for org in (world.one, world.two):
            service.set_org_policy(org, None, restrict_creation=False, packaging_only=False)
            for entry in service.org_policy(org.id).allowlist:
                service.disallow(
                    ORGANIZATION, org.id, PolicyName.RESTRICT_CREATION, entry.principal_object_id, None
                )


def call(
    world: World, method: str, token: str, *, org: str = ONE, body: dict[str, Any] | None = None
) -> requests.Response:
    return requests.request(
        method,
        f"{world.instance.devops}/{org}/_apis/tokens/pats",
        params={"api-version": API_VERSION},
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        verify=world.instance.ca_bundle,
        timeout=30,
    )


def created(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["patTokenError"] == "none", body
    return dict(body["patToken"])


def refused(response: requests.Response, error: str) -> str:
    """The in-band refusal: 200, no token, the exact patTokenError, and a message for a person."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["patToken"] is None
    assert body["patTokenError"] == error, body
    message: str = body["patTokenErrorMessage"]
    assert message
    assert error not in message  # a sentence, not the code again
    return message


def new(world: World, token: str, *, org: str = ONE, **fields: Any) -> requests.Response:
    body = {"displayName": "policy test", "scope": "vso.code", **fields}
    return call(world, "POST", token, org=org, body=body)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _in(days: int, world: World) -> str:
    return (world.instance.clock.now() + timedelta(days=days)).astimezone(UTC).isoformat()


def use(world: World, pat: str, org: str) -> int:
    """The status of a REST call with the PAT as Basic password."""
    basic = base64.b64encode(f":{pat}".encode()).decode()
    response = requests.get(
        f"{world.instance.devops}/{org}/_apis/projects",
        params={"api-version": "7.1"},
        headers={"Authorization": f"Basic {basic}"},
        verify=world.instance.ca_bundle,
        timeout=30,
    )
    return response.status_code


# --- the organization's "Restrict personal access token (PAT) creation" -------------------------------------


def test_restrict_creation_refuses_and_the_allowlist_exempts_a_user(world: World) -> None:
    with policies(world) as service:
        service.set_org_policy(world.one, None, restrict_creation=True)
        service.allow(
            ORGANIZATION, world.one.id, "restrictCreation", AllowlistEntry(world.quinn_oid, "user"), None
        )
    message = refused(new(world, world.pia), "disablePatCreationPolicyViolation")
    assert "organization's policy restricts the creation" in message
    created(new(world, world.quinn))
    created(new(world, world.pia, org=TWO))  # the other organization has no such policy


def test_packaging_only_allows_packaging_scopes_alone(world: World) -> None:
    with policies(world) as service:
        service.set_org_policy(world.one, None, restrict_creation=True, packaging_only=True)
    pat = created(new(world, world.pia, scope="vso.packaging_write vso.packaging"))
    assert pat["scope"] == "vso.packaging_write vso.packaging"
    message = refused(
        new(world, world.pia, scope="vso.packaging vso.code"), "disablePatCreationPolicyViolation"
    )
    assert "Packaging scopes" in message
    refused(new(world, world.pia, scope="app_token"), "disablePatCreationPolicyViolation")


# --- the tenant's policies ------------------------------------------------------------------------------------


def test_restrict_global_refuses_all_orgs_unless_allowlisted(world: World) -> None:
    with policies(world) as service:
        service.set_tenant_policy(TENANT_ID, None, restrict_global=True)
        service.allow(
            TENANT, TENANT_ID, "restrictGlobal", AllowlistEntry(world.quinn_oid, "user", "Quinn"), None
        )
    message = refused(new(world, world.pia, allOrgs=True), "globalPatPolicyViolation")
    assert "global personal access tokens" in message
    assert created(new(world, world.pia, allOrgs=False))["targetAccounts"] == [world.one.id]
    assert created(new(world, world.quinn, allOrgs=True))["targetAccounts"] is None


def test_restrict_full_scope_refuses_app_token_unless_allowlisted(world: World) -> None:
    with policies(world) as service:
        service.set_tenant_policy(TENANT_ID, None, restrict_full_scope=True)
        service.allow(TENANT, TENANT_ID, "restrictFullScope", AllowlistEntry(world.quinn_oid, "user"), None)
    message = refused(new(world, world.pia, scope="app_token"), "fullScopePatPolicyViolation")
    assert "full-scoped" in message
    refused(new(world, world.pia, scope="vso.code app_token"), "fullScopePatPolicyViolation")
    created(new(world, world.pia, scope="vso.code_full"))
    assert created(new(world, world.quinn, scope="app_token"))["scope"] == "app_token"


def test_max_lifespan_clamps_creation(world: World) -> None:
    with policies(world) as service:
        service.set_tenant_policy(TENANT_ID, None, max_lifespan_days=7)
    before = world.instance.clock.now()
    defaulted = created(new(world, world.pia))  # the 30-day default, clamped
    asked = created(new(world, world.pia, validTo=_in(60, world)))
    after = world.instance.clock.now()
    for pat in (defaulted, asked):
        assert before + timedelta(days=7) - timedelta(seconds=1) <= _time(pat["validTo"])
        assert _time(pat["validTo"]) <= after + timedelta(days=7)
    shorter = created(new(world, world.pia, validTo=_in(3, world)))
    assert _time(shorter["validTo"]) < before + timedelta(days=3, minutes=1)
    with world.instance.runtime.db.read() as session:
        audited = {
            d["authorizationId"]: d
            for d in session.scalars(
                select(AuditEventRow.details).where(
                    AuditEventRow.action == "Token.Create", AuditEventRow.organization_id == world.one.id
                )
            )
        }
    assert audited[asked["authorizationId"]]["validToClampedByPolicy"] is True
    assert audited[asked["authorizationId"]]["source"] == "api"
    assert "validToClampedByPolicy" not in audited[shorter["authorizationId"]]


def test_max_lifespan_refuses_an_extension_past_creation_plus_the_maximum(world: World) -> None:
    pat = created(new(world, world.pia, validTo=_in(5, world)))
    with policies(world) as service:
        service.set_tenant_policy(TENANT_ID, None, max_lifespan_days=7)
    body = {"authorizationId": pat["authorizationId"], "validTo": _in(10, world)}
    message = refused(call(world, "PUT", world.pia, body=body), "patLifespanPolicyViolation")
    assert "7 days" in message
    within = created(call(world, "PUT", world.pia, body={**body, "validTo": _in(6, world)}))
    assert _time(within["validTo"]) <= _time(pat["validFrom"]) + timedelta(days=7)


def test_max_lifespan_allowlist_exempts(world: World) -> None:
    with policies(world) as service:
        service.set_tenant_policy(TENANT_ID, None, max_lifespan_days=7)
        service.allow(TENANT, TENANT_ID, "maxLifespan", AllowlistEntry(world.quinn_oid, "user"), None)
    pat = created(new(world, world.quinn, validTo=_in(60, world)))
    assert _time(pat["validTo"]) > world.instance.clock.now() + timedelta(days=59)
    updated = created(
        call(
            world,
            "PUT",
            world.quinn,
            body={"authorizationId": pat["authorizationId"], "validTo": _in(90, world)},
        )
    )
    assert _time(updated["validTo"]) > world.instance.clock.now() + timedelta(days=89)


def test_an_update_that_makes_a_pat_global_or_full_scoped_is_checked_like_a_create(world: World) -> None:
    with policies(world) as service:
        service.set_tenant_policy(TENANT_ID, None, restrict_global=True, restrict_full_scope=True)
    pat = created(new(world, world.pia))
    key = pat["authorizationId"]
    refused(
        call(world, "PUT", world.pia, body={"authorizationId": key, "allOrgs": True}),
        "globalPatPolicyViolation",
    )
    refused(
        call(world, "PUT", world.pia, body={"authorizationId": key, "scope": "app_token"}),
        "fullScopePatPolicyViolation",
    )
    # Nothing of a refused update is kept.
    with world.instance.runtime.db.read() as session:
        row = session.get(PersonalAccessTokenRow, key)
        assert row is not None
        assert row.scope == "vso.code"
        assert row.organization_id == world.one.id


def test_a_pat_made_before_a_policy_keeps_working_and_must_comply_to_be_renewed(world: World) -> None:
    pat = created(new(world, world.pia, allOrgs=True, scope="vso.project"))
    with policies(world) as service:
        service.set_tenant_policy(TENANT_ID, None, restrict_global=True)
    assert use(world, pat["token"], ONE) == 200  # existing PATs keep working
    key = pat["authorizationId"]
    renamed = created(call(world, "PUT", world.pia, body={"authorizationId": key, "displayName": "renamed"}))
    assert renamed["displayName"] == "renamed"
    refused(
        call(world, "PUT", world.pia, body={"authorizationId": key, "validTo": _in(20, world)}),
        "globalPatPolicyViolation",
    )
    compliant = created(
        call(
            world,
            "PUT",
            world.pia,
            body={"authorizationId": key, "validTo": _in(20, world), "allOrgs": False},
        )
    )
    assert compliant["targetAccounts"] == [world.one.id]


# --- use of a global PAT in an organization that restricts creation ----------------------------------------


def test_a_global_pat_is_refused_where_creation_is_restricted_unless_its_owner_is_allowlisted(
    world: World,
) -> None:
    global_pat = created(new(world, world.pia, allOrgs=True, scope="vso.project"))["token"]
    scoped = created(new(world, world.pia, org=TWO, scope="vso.project"))["token"]
    assert use(world, global_pat, TWO) == 200
    with policies(world) as service:
        service.set_org_policy(world.two, None, restrict_creation=True)
    assert use(world, global_pat, TWO) == 401  # refused as Azure DevOps refuses any bad PAT
    assert use(world, global_pat, ONE) == 200  # the other organization does not restrict
    assert use(world, scoped, TWO) == 200  # an existing PAT for this organization keeps working
    with policies(world) as service:
        service.allow(
            ORGANIZATION, world.two.id, "restrictCreation", AllowlistEntry(world.pia_oid, "user"), None
        )
    assert use(world, global_pat, TWO) == 200


# --- the service's own checks --------------------------------------------------------------------------------


def test_an_unknown_source_is_refused(world: World) -> None:
    with world.instance.runtime.db.unit_of_work() as session:
        service = PatService(session, world.instance.clock, world.instance.runtime.digester)
        with pytest.raises(PatError) as caught:
            service.create(
                Owner(world.pia_oid, TENANT_ID, PIA[0]),
                world.one,
                Actor.local("test"),
                display_name="x",
                scope="vso.code",
                valid_to=None,
                all_orgs=False,
                requester=Requester(world.pia_oid),
                source="email",
            )
    assert caught.value.kind is PatErrorKind.INVALID_SOURCE


def test_a_pat_records_its_source(world: World) -> None:
    key = created(new(world, world.pia))["authorizationId"]
    with world.instance.runtime.db.read() as session:
        row = session.scalars(
            select(PersonalAccessTokenRow).where(PersonalAccessTokenRow.authorization_id == key)
        ).one()
        assert row.source == "api"
        assert row.owner_groups == []


# --- group allowlists: the groups claim at creation, the owner_groups snapshot at use ------------------------


def test_a_group_on_the_allowlist_exempts_its_transitive_members(world: World) -> None:
    group = AllowlistEntry(world.exempt_id, "group", EXEMPT)
    with policies(world) as service:
        service.set_tenant_policy(TENANT_ID, None, restrict_global=True, restrict_full_scope=True)
        service.set_org_policy(world.one, None, restrict_creation=True)
        for name in ("restrictGlobal", "restrictFullScope"):
            service.allow(TENANT, TENANT_ID, name, group, None)
        service.allow(ORGANIZATION, world.one.id, "restrictCreation", group, None)
    pat = created(new(world, world.rosa, allOrgs=True, scope="app_token"))
    assert pat["targetAccounts"] is None
    refused(new(world, world.pia, allOrgs=True, scope="app_token"), "disablePatCreationPolicyViolation")
    refused(new(world, world.pia, org=TWO, allOrgs=True), "globalPatPolicyViolation")
    refused(new(world, world.pia, org=TWO, scope="app_token"), "fullScopePatPolicyViolation")
    with world.instance.runtime.db.read() as session:
        row = session.get(PersonalAccessTokenRow, pat["authorizationId"])
        assert row is not None
        assert world.exempt_id in row.owner_groups  # the snapshot the token's groups claim gave


def test_a_global_pat_of_an_allowlisted_groups_member_works_where_creation_is_restricted(
    world: World,
) -> None:
    global_pat = created(new(world, world.rosa, allOrgs=True, scope="vso.project"))["token"]
    with policies(world) as service:
        service.set_org_policy(world.two, None, restrict_creation=True)
    assert use(world, global_pat, TWO) == 401
    with policies(world) as service:
        service.allow(
            ORGANIZATION, world.two.id, "restrictCreation", AllowlistEntry(world.exempt_id, "group"), None
        )
    assert use(world, global_pat, TWO) == 200


def test_a_group_allowlist_lifts_the_maximum_lifespan(world: World) -> None:
    with policies(world) as service:
        service.set_tenant_policy(TENANT_ID, None, max_lifespan_days=7)
        service.allow(TENANT, TENANT_ID, "maxLifespan", AllowlistEntry(world.exempt_id, "group"), None)
    pat = created(new(world, world.rosa, validTo=_in(60, world)))
    assert _time(pat["validTo"]) > world.instance.clock.now() + timedelta(days=59)
    clamped = created(new(world, world.pia, validTo=_in(60, world)))
    assert _time(clamped["validTo"]) < world.instance.clock.now() + timedelta(days=7, minutes=1)
