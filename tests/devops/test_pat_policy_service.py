"""PatPolicyService on the real database: defaults, changes and their audit rows, allowlists, bad input."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from entryway.devops.orgs.service import Organization, OrgService
from entryway.devops.pats.policy import (
    UNSET,
    AllowlistEntry,
    PatPolicyError,
    PatPolicyService,
    PolicyErrorKind,
    PolicyName,
    Requester,
)
from entryway.identity.directory.groups import DirectoryPrincipals, GroupService
from entryway.identity.directory.service import DirectoryService
from entryway.store.models import AuditEventRow
from tests.conftest import Instance


@pytest.fixture
def world(entryway: Instance) -> Iterator[tuple[Session, PatPolicyService, str, Organization]]:
    """A fresh tenant with one organization, in one unit of work that is rolled back at the end."""
    with entryway.runtime.db.unit_of_work() as session:
        tenant = str(uuid.uuid4())
        org = OrgService(session, entryway.runtime.clock).create(f"pol-{tenant[:8]}", tenant)
        yield session, PatPolicyService(session, entryway.runtime.clock), tenant, org
        session.rollback()


def _audit(session: Session, org: Organization) -> list[AuditEventRow]:
    statement = select(AuditEventRow).where(AuditEventRow.organization_id == org.id)
    return [r for r in session.scalars(statement) if r.action.startswith("Policy.")]


def test_no_row_means_the_defaults(world: tuple[Session, PatPolicyService, str, Organization]) -> None:
    _, service, tenant, org = world
    policy = service.tenant_policy(tenant)
    assert (policy.restrict_global, policy.restrict_full_scope, policy.max_lifespan_days) == (
        False,
        False,
        None,
    )
    assert policy.auto_revoke_leaked is True
    assert policy.allowlist(PolicyName.RESTRICT_GLOBAL) == ()
    org_policy = service.org_policy(org.id)
    assert (org_policy.restrict_creation, org_policy.packaging_only, org_policy.allowlist) == (
        False,
        False,
        (),
    )


def test_a_tenant_change_is_audited_in_each_org_of_the_tenant(
    world: tuple[Session, PatPolicyService, str, Organization], entryway: Instance
) -> None:
    session, service, tenant, org = world
    second = OrgService(session, entryway.runtime.clock).create(f"pol2-{tenant[:8]}", tenant)
    policy = service.set_tenant_policy(tenant, None, restrict_global=True, max_lifespan_days=7)
    assert policy.restrict_global
    assert policy.max_lifespan_days == 7
    assert not policy.restrict_full_scope
    for o in (org, second):
        (row,) = _audit(session, o)
        assert row.action == "Policy.Update"
        assert row.details["changed"] == {"restrictGlobal": True, "maxLifespanDays": 7}
        assert row.credential_kind == "local"
    # UNSET leaves the lifespan; None turns it off; no change, no audit row.
    assert service.set_tenant_policy(tenant, None, max_lifespan_days=UNSET).max_lifespan_days == 7
    assert len(_audit(session, org)) == 1
    assert service.set_tenant_policy(tenant, None, max_lifespan_days=None).max_lifespan_days is None
    assert len(_audit(session, org)) == 2


def test_allowlists_are_idempotent_and_audited(
    world: tuple[Session, PatPolicyService, str, Organization],
) -> None:
    session, service, tenant, org = world
    user, group = str(uuid.uuid4()), str(uuid.uuid4())
    service.allow("tenant", tenant, "restrictGlobal", AllowlistEntry(user, "user", "Ada"), None)
    service.allow("tenant", tenant, PolicyName.RESTRICT_GLOBAL, AllowlistEntry(user, "user", "Ada"), None)
    service.allow(
        "organization", org.id, "restrictCreation", AllowlistEntry(group, "group", "Builders"), None
    )
    entries = service.tenant_policy(tenant).allowlist(PolicyName.RESTRICT_GLOBAL)
    assert entries == (AllowlistEntry(user, "user", "Ada"),)
    assert service.tenant_policy(tenant).allowlist(PolicyName.MAX_LIFESPAN) == ()
    assert service.org_policy(org.id).allowlist == (AllowlistEntry(group, "group", "Builders"),)
    assert [r.action for r in _audit(session, org)] == ["Policy.AllowlistAdd", "Policy.AllowlistAdd"]

    assert Requester(user).is_allowed(entries)
    assert not Requester(group).is_allowed(entries)  # a user entry does not match a group of that id
    assert Requester(str(uuid.uuid4()), frozenset({group})).is_allowed(service.org_policy(org.id).allowlist)

    service.disallow("tenant", tenant, "restrictGlobal", user, None)
    service.disallow("tenant", tenant, "restrictGlobal", user, None)
    assert service.tenant_policy(tenant).allowlist(PolicyName.RESTRICT_GLOBAL) == ()
    assert [r.action for r in _audit(session, org)][-1] == "Policy.AllowlistRemove"
    assert len(_audit(session, org)) == 3


def test_org_policy_change(world: tuple[Session, PatPolicyService, str, Organization]) -> None:
    session, service, _, org = world
    policy = service.set_org_policy(org, None, restrict_creation=True, packaging_only=True)
    assert policy.restrict_creation
    assert policy.packaging_only
    (row,) = _audit(session, org)
    assert row.details == {
        "scope": "organization",
        "changed": {"restrictCreation": True, "packagingOnly": True},
    }


@pytest.mark.parametrize("days", [0, -1, 366, 3.5, "30", True])
def test_a_bad_lifespan_is_refused(
    world: tuple[Session, PatPolicyService, str, Organization], days: object
) -> None:
    _, service, tenant, _ = world
    with pytest.raises(PatPolicyError) as caught:
        service.set_tenant_policy(tenant, None, max_lifespan_days=days)  # type: ignore[arg-type]
    assert caught.value.kind is PolicyErrorKind.INVALID_LIFESPAN


def test_bad_input_raises_typed_errors(world: tuple[Session, PatPolicyService, str, Organization]) -> None:
    _, service, tenant, org = world
    user = AllowlistEntry(str(uuid.uuid4()), "user")
    cases: list[tuple[PolicyErrorKind, object]] = [
        (PolicyErrorKind.UNKNOWN_POLICY, lambda: service.allow("tenant", tenant, "noSuchPolicy", user, None)),
        (
            PolicyErrorKind.UNKNOWN_POLICY,
            lambda: service.allow("tenant", tenant, "restrictCreation", user, None),
        ),
        (
            PolicyErrorKind.UNKNOWN_POLICY,
            lambda: service.allow("organization", org.id, "maxLifespan", user, None),
        ),
        (PolicyErrorKind.UNKNOWN_OWNER, lambda: service.allow("project", tenant, "maxLifespan", user, None)),
        (
            PolicyErrorKind.UNKNOWN_OWNER,
            lambda: service.allow("tenant", "contoso", "maxLifespan", user, None),
        ),
        (
            PolicyErrorKind.UNKNOWN_OWNER,
            lambda: service.allow("organization", str(uuid.uuid4()), "restrictCreation", user, None),
        ),
        (
            PolicyErrorKind.UNKNOWN_PRINCIPAL,
            lambda: service.allow("tenant", tenant, "maxLifespan", AllowlistEntry("ada", "user"), None),
        ),
        (
            PolicyErrorKind.UNKNOWN_PRINCIPAL,
            lambda: service.allow(
                "tenant", tenant, "maxLifespan", AllowlistEntry(user.principal_object_id, "app"), None
            ),
        ),
        (
            PolicyErrorKind.UNKNOWN_PRINCIPAL,
            lambda: service.disallow("tenant", tenant, "maxLifespan", "x", None),
        ),
        (
            PolicyErrorKind.INVALID_VALUE,
            lambda: service.set_tenant_policy(tenant, None, restrict_global="yes"),
        ),  # type: ignore[arg-type]
        (PolicyErrorKind.INVALID_VALUE, lambda: service.set_org_policy(org, None, packaging_only=1)),  # type: ignore[arg-type]
    ]
    for kind, call in cases:
        with pytest.raises(PatPolicyError) as caught:
            call()  # type: ignore[operator]
        assert caught.value.kind is kind, str(caught.value)


def test_with_the_directory_an_unknown_principal_is_refused_and_names_are_filled(
    world: tuple[Session, PatPolicyService, str, Organization], entryway: Instance
) -> None:
    """The real directory port (identity.directory.groups.DirectoryPrincipals), as the CLI and config use it."""
    session, _, _, _ = world
    clock = entryway.runtime.clock
    directory = DirectoryService(session, clock, entryway.runtime.digester)
    domain = f"pol-{uuid.uuid4().hex[:8]}.test"
    tenant = directory.create_tenant([domain])
    other = directory.create_tenant([f"other-{domain}"])
    ada = directory.create_user(tenant, f"ada@{domain}", "Ada-Policy-Service-0042", "Ada Lovelace")
    stranger = directory.create_user(other, f"sam@other-{domain}", "Sam-Policy-Service-0042", "Sam")
    group = GroupService(session, clock).create_group(tenant, "Builders")
    service = PatPolicyService(session, clock, directory=DirectoryPrincipals(session))
    service.allow("tenant", tenant.id, "maxLifespan", AllowlistEntry(ada.object_id, "user"), None)
    service.allow("tenant", tenant.id, "maxLifespan", AllowlistEntry(group.object_id, "group"), None)
    names = [e.display_name for e in service.tenant_policy(tenant.id).allowlist(PolicyName.MAX_LIFESPAN)]
    assert names == ["Ada Lovelace", "Builders"]
    for entry in (
        AllowlistEntry(str(uuid.uuid4()), "group"),  # no such group
        AllowlistEntry(group.object_id, "user"),  # a group named as a user
        AllowlistEntry(stranger.object_id, "user"),  # a user of another tenant
    ):
        with pytest.raises(PatPolicyError) as caught:
            service.allow("tenant", tenant.id, "maxLifespan", entry, None)
        assert caught.value.kind is PolicyErrorKind.UNKNOWN_PRINCIPAL
