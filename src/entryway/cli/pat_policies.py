"""`entryway pats policy show|set|allow|disallow`: the tenant's and the organization's PAT policies.

A tenant's policies (restrict global PATs, restrict full-scoped PATs, maximum lifespan, automatic revocation of
leaked PATs) apply to every organization of the tenant; an organization's policy restricts PAT creation
(optionally to packaging scopes only). Allowlist entries are users (by UPN) or groups (by name) of the tenant.
Changes are audited in each organization concerned, with the local administrator as the actor.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from entryway.cli.main import DataDir, admin_runtime, fail
from entryway.cli.pats import pats_app

if TYPE_CHECKING:
    from entryway.devops.audit.recorder import Actor
    from entryway.devops.orgs.service import Organization, OrgService
    from entryway.devops.pats.policy import AllowlistEntry, OrgPatPolicy, PatPolicyService, TenantPatPolicy
    from entryway.identity.directory.groups import GroupService
    from entryway.identity.directory.service import DirectoryService
    from entryway.store.models import TenantRow

policy_app = typer.Typer(
    no_args_is_help=True,
    help="PAT policies: the tenant's (global, full scope, lifespan, leaked) and the organization's (creation).",
)
pats_app.add_typer(policy_app, name="policy")

TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Tenant id or domain: its policies.")]
OrgOpt = Annotated[str | None, typer.Option("--org", help="Organization name: its creation policy.")]
PolicyOpt = Annotated[
    str | None,
    typer.Option(
        "--policy",
        help="restrictGlobal, restrictFullScope or maxLifespan (tenant); restrictCreation (organization, default).",
    ),
]
UserOpt = Annotated[str | None, typer.Option("--user", help="UPN of a user of the tenant.")]
GroupOpt = Annotated[str | None, typer.Option("--group", help="Name of a group of the tenant.")]


@dataclass
class _Ctx:
    directory: DirectoryService
    groups: GroupService
    orgs: OrgService
    policies: PatPolicyService


def _actor() -> Actor:
    from entryway.devops.audit.recorder import Actor

    return Actor.local("cli")


@contextmanager
def _policies(data_dir: Path, *, write: bool = True) -> Iterator[_Ctx]:
    from entryway.devops.orgs.service import OrgService
    from entryway.devops.pats.policy import PatPolicyError, PatPolicyService
    from entryway.identity.directory.groups import DirectoryPrincipals, GroupService
    from entryway.identity.directory.service import DirectoryService

    with admin_runtime(data_dir) as rt, rt.db.unit_of_work() if write else rt.db.read() as session:
        try:
            yield _Ctx(
                DirectoryService(session, rt.clock, rt.digester),
                GroupService(session, rt.clock),
                OrgService(session, rt.clock),
                PatPolicyService(session, rt.clock, directory=DirectoryPrincipals(session)),
            )
        except PatPolicyError as exc:
            raise fail(str(exc)) from exc


def _target(ctx: _Ctx, tenant: str | None, org: str | None) -> TenantRow | Organization:
    if (tenant is None) == (org is None):
        raise fail("give exactly one of --tenant or --org")
    if tenant is not None:
        return ctx.directory.find_tenant(tenant)
    assert org is not None
    return ctx.orgs.get(org)


def _entry(ctx: _Ctx, tenant_id: str, user: str | None, group: str | None) -> AllowlistEntry:
    from entryway.devops.pats.policy import GROUP, USER, AllowlistEntry

    if (user is None) == (group is None):
        raise fail("give exactly one of --user or --group")
    tenant = ctx.directory.find_tenant(tenant_id)
    if user is not None:
        found = ctx.directory.get_user(user)
        if found.tenant_id != tenant.id:
            raise fail(f"user '{user}' is not in tenant {tenant.id}")
        return AllowlistEntry(found.object_id, USER, found.display_name)
    assert group is not None
    g = ctx.groups.find_group(tenant, group)
    return AllowlistEntry(g.object_id, GROUP, g.display_name)


def _entries_json(entries: tuple[AllowlistEntry, ...]) -> list[dict[str, str]]:
    return [
        {"objectId": e.principal_object_id, "kind": e.principal_kind, "displayName": e.display_name}
        for e in entries
    ]


def tenant_policy_json(policy: TenantPatPolicy) -> dict[str, Any]:
    from entryway.devops.pats.policy import TENANT_POLICIES

    return {
        "tenantId": policy.tenant_id,
        "restrictGlobal": policy.restrict_global,
        "restrictFullScope": policy.restrict_full_scope,
        "maxLifespanDays": policy.max_lifespan_days,
        "autoRevokeLeaked": policy.auto_revoke_leaked,
        "allowlists": {p.value: _entries_json(policy.allowlist(p)) for p in TENANT_POLICIES},
    }


def org_policy_json(policy: OrgPatPolicy, name: str) -> dict[str, Any]:
    return {
        "organization": name,
        "organizationId": policy.organization_id,
        "restrictCreation": policy.restrict_creation,
        "packagingOnly": policy.packaging_only,
        "allowlist": _entries_json(policy.allowlist),
    }


def _echo_entries(label: str, entries: list[dict[str, str]]) -> None:
    names = ", ".join(f"{e['kind']}:{e['displayName'] or e['objectId']}" for e in entries) or "-"
    typer.echo(f"  {label} allowlist: {names}")


def _show(document: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    on = {True: "on", False: "off"}
    if "tenantId" in document:
        lifespan = document["maxLifespanDays"]
        typer.echo(f"tenant {document['tenantId']}")
        typer.echo(f"  restrictGlobal: {on[document['restrictGlobal']]}")
        typer.echo(f"  restrictFullScope: {on[document['restrictFullScope']]}")
        typer.echo(f"  maxLifespan: {'off' if lifespan is None else f'{lifespan} days'}")
        typer.echo(f"  autoRevokeLeaked: {on[document['autoRevokeLeaked']]}")
        for name, entries in document["allowlists"].items():
            _echo_entries(name, entries)
        return
    typer.echo(f"organization {document['organization']} ({document['organizationId']})")
    typer.echo(f"  restrictCreation: {on[document['restrictCreation']]}")
    typer.echo(f"  packagingOnly: {on[document['packagingOnly']]}")
    _echo_entries("restrictCreation", document["allowlist"])


def _document(ctx: _Ctx, target: TenantRow | Organization) -> dict[str, Any]:
    from entryway.devops.orgs.service import Organization

    if isinstance(target, Organization):
        return org_policy_json(ctx.policies.org_policy(target.id), target.name)
    return tenant_policy_json(ctx.policies.tenant_policy(target.id))


@policy_app.command("show")
def policy_show(
    data_dir: DataDir,
    tenant: TenantOpt = None,
    org: OrgOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of text.")] = False,
) -> None:
    """Show the tenant's PAT policies or the organization's, with their allowlists."""
    with _policies(data_dir, write=False) as ctx:
        document = _document(ctx, _target(ctx, tenant, org))
    _show(document, as_json)


@policy_app.command("set")
def policy_set(
    data_dir: DataDir,
    tenant: TenantOpt = None,
    org: OrgOpt = None,
    restrict_global: Annotated[
        bool | None,
        typer.Option("--restrict-global/--no-restrict-global", help="Tenant: refuse global PATs."),
    ] = None,
    restrict_full_scope: Annotated[
        bool | None,
        typer.Option(
            "--restrict-full-scope/--no-restrict-full-scope", help="Tenant: refuse full-scoped PATs."
        ),
    ] = None,
    max_lifespan: Annotated[
        int | None, typer.Option("--max-lifespan", help="Tenant: the maximum lifespan in days (1-365).")
    ] = None,
    no_max_lifespan: Annotated[
        bool, typer.Option("--no-max-lifespan", help="Tenant: no maximum lifespan.")
    ] = False,
    auto_revoke_leaked: Annotated[
        bool | None,
        typer.Option("--auto-revoke-leaked/--no-auto-revoke-leaked", help="Tenant: revoke leaked PATs."),
    ] = None,
    restrict_creation: Annotated[
        bool | None,
        typer.Option(
            "--restrict-creation/--no-restrict-creation", help="Organization: restrict PAT creation."
        ),
    ] = None,
    packaging_only: Annotated[
        bool | None,
        typer.Option(
            "--packaging-only/--no-packaging-only", help="Organization: still allow packaging-only PATs."
        ),
    ] = None,
) -> None:
    """Change PAT policies; what is not given stays as it is. Prints the result."""
    from entryway.devops.orgs.service import Organization
    from entryway.devops.pats.policy import UNSET

    if max_lifespan is not None and no_max_lifespan:
        raise fail("give --max-lifespan or --no-max-lifespan, not both")
    tenant_options = (restrict_global, restrict_full_scope, max_lifespan, auto_revoke_leaked)
    tenant_given = any(v is not None for v in tenant_options) or no_max_lifespan
    org_given = restrict_creation is not None or packaging_only is not None
    with _policies(data_dir) as ctx:
        target = _target(ctx, tenant, org)
        if isinstance(target, Organization):
            if tenant_given:
                raise fail(
                    "--org takes --restrict-creation and --packaging-only; the others are the tenant's"
                )
            ctx.policies.set_org_policy(
                target, _actor(), restrict_creation=restrict_creation, packaging_only=packaging_only
            )
        else:
            if org_given:
                raise fail("--restrict-creation and --packaging-only are an organization's (--org)")
            ctx.policies.set_tenant_policy(
                target.id,
                _actor(),
                restrict_global=restrict_global,
                restrict_full_scope=restrict_full_scope,
                max_lifespan_days=None
                if no_max_lifespan
                else (UNSET if max_lifespan is None else max_lifespan),
                auto_revoke_leaked=auto_revoke_leaked,
            )
        document = _document(ctx, target)
    _show(document, as_json=False)


def _allowlist_owner(
    ctx: _Ctx, target: TenantRow | Organization, policy: str | None
) -> tuple[str, str, str, str]:
    """(owner kind, owner id, tenant id, policy) of an allowlist change."""
    from entryway.devops.orgs.service import Organization
    from entryway.devops.pats.policy import ORGANIZATION, TENANT

    if isinstance(target, Organization):
        return ORGANIZATION, target.id, target.tenant_id, policy or "restrictCreation"
    if policy is None:
        raise fail("--policy: restrictGlobal, restrictFullScope or maxLifespan")
    return TENANT, target.id, target.id, policy


@policy_app.command("allow")
def policy_allow(
    data_dir: DataDir,
    tenant: TenantOpt = None,
    org: OrgOpt = None,
    policy: PolicyOpt = None,
    user: UserOpt = None,
    group: GroupOpt = None,
) -> None:
    """Put a user or a group on a policy's allowlist (no error if already there)."""
    with _policies(data_dir) as ctx:
        kind, owner_id, tenant_id, name = _allowlist_owner(ctx, _target(ctx, tenant, org), policy)
        entry = _entry(ctx, tenant_id, user, group)
        ctx.policies.allow(kind, owner_id, name, entry, _actor())
        typer.echo(f"{entry.principal_object_id}\t{entry.principal_kind}\t{entry.display_name}\t{name}")


@policy_app.command("disallow")
def policy_disallow(
    data_dir: DataDir,
    tenant: TenantOpt = None,
    org: OrgOpt = None,
    policy: PolicyOpt = None,
    user: UserOpt = None,
    group: GroupOpt = None,
    object_id: Annotated[
        str | None,
        typer.Option(
            "--object-id", help="The entry's object id (for a user or group no longer in the directory)."
        ),
    ] = None,
) -> None:
    """Take a user or a group off a policy's allowlist (no error if not there)."""
    with _policies(data_dir) as ctx:
        kind, owner_id, tenant_id, name = _allowlist_owner(ctx, _target(ctx, tenant, org), policy)
        if object_id is not None:
            if user is not None or group is not None:
                raise fail("give one of --user, --group or --object-id")
            ctx.policies.disallow(kind, owner_id, name, object_id, _actor())
            return
        entry = _entry(ctx, tenant_id, user, group)
        ctx.policies.disallow(kind, owner_id, name, entry.principal_object_id, _actor())
