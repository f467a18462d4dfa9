"""`entryway group ...` (security groups and their members) and `entryway user role ...` (directory roles)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from entryway.cli.main import DataDir, TenantOpt, admin_runtime, app, user_app

if TYPE_CHECKING:
    from entryway.identity.directory.groups import GroupService
    from entryway.identity.directory.service import DirectoryService

group_app = typer.Typer(
    no_args_is_help=True, help="Security groups: members are users, apps and other groups."
)
role_app = typer.Typer(no_args_is_help=True, help="A user's directory roles (tokens carry them as `wids`).")
app.add_typer(group_app, name="group")
user_app.add_typer(role_app, name="role")

GroupArg = Annotated[str, typer.Argument(help="Group name (or object id).")]
MemberUserOpt = Annotated[str | None, typer.Option("--user", help="UPN of a user of the tenant.")]
MemberAppOpt = Annotated[
    str | None, typer.Option("--app", help="App id (or app name) of a service principal of the tenant.")
]
MemberGroupOpt = Annotated[str | None, typer.Option("--group", help="Name of another group of the tenant.")]
RoleOpt = Annotated[
    str,
    typer.Option(
        "--role", help='"Azure DevOps Administrator" or "Global Administrator" (or the role template id).'
    ),
]


@contextmanager
def _directory(data_dir: Path, *, write: bool = True) -> Iterator[tuple[DirectoryService, GroupService]]:
    """The directory and its groups in one unit of work (or one read)."""
    from entryway.identity.directory.groups import GroupService
    from entryway.identity.directory.service import DirectoryService

    with admin_runtime(data_dir) as rt, rt.db.unit_of_work() if write else rt.db.read() as session:
        yield DirectoryService(session, rt.clock, rt.digester), GroupService(session, rt.clock)


@group_app.command("create")
def group_create(data_dir: DataDir, tenant: TenantOpt, name: GroupArg) -> None:
    """Create a group; prints its object id."""
    with _directory(data_dir) as (directory, groups):
        group = groups.create_group(directory.find_tenant(tenant), name)
        typer.echo(f"{group.object_id}\t{group.display_name}")


@group_app.command("list")
def group_list(
    data_dir: DataDir,
    tenant: TenantOpt,
    as_json: Annotated[bool, typer.Option("--json", help="JSON, with each group's direct members.")] = False,
) -> None:
    """List the tenant's groups: object id, name, direct members (kind:name)."""
    with _directory(data_dir, write=False) as (directory, service):
        groups = [(g, service.list_members(g)) for g in service.list_groups(directory.find_tenant(tenant))]
    if as_json:
        listing = [
            {
                "objectId": g.object_id,
                "displayName": g.display_name,
                "members": [{"objectId": m.object_id, "kind": m.kind, "name": m.name} for m in members],
            }
            for g, members in groups
        ]
        typer.echo(json.dumps(listing, indent=2))
        return
    for g, members in groups:
        names = ", ".join(f"{m.kind}:{m.name or m.object_id}" for m in members) or "-"
        typer.echo(f"{g.object_id}\t{g.display_name}\t{names}")


@group_app.command("delete")
def group_delete(data_dir: DataDir, tenant: TenantOpt, name: GroupArg) -> None:
    """Delete a group (its memberships, and its membership in other groups, go with it)."""
    with _directory(data_dir) as (directory, groups):
        groups.delete_group(directory.find_tenant(tenant), name)


@group_app.command("add-member")
def group_add_member(
    data_dir: DataDir,
    tenant: TenantOpt,
    name: GroupArg,
    user: MemberUserOpt = None,
    app_ref: MemberAppOpt = None,
    group: MemberGroupOpt = None,
) -> None:
    """Add a user, a service principal or a group to a group (membership is transitive)."""
    with _directory(data_dir) as (directory, service):
        t = directory.find_tenant(tenant)
        member = service.resolve_member(t, user=user, app=app_ref, group=group)
        added = service.add_member(t, name, member)
        typer.echo(
            f"{member.object_id}\t{member.kind}\t{member.name}" + ("" if added else "\t(already a member)")
        )


@group_app.command("remove-member")
def group_remove_member(
    data_dir: DataDir,
    tenant: TenantOpt,
    name: GroupArg,
    user: MemberUserOpt = None,
    app_ref: MemberAppOpt = None,
    group: MemberGroupOpt = None,
) -> None:
    """Remove a direct member from a group."""
    with _directory(data_dir) as (directory, service):
        t = directory.find_tenant(tenant)
        service.remove_member(t, name, service.resolve_member(t, user=user, app=app_ref, group=group))


# --- directory roles --------------------------------------------------------------------------------


@role_app.command("add")
def role_add(
    data_dir: DataDir, upn: Annotated[str, typer.Argument(help="The user's UPN.")], role: RoleOpt
) -> None:
    """Assign a directory role to a user (their next tokens carry it in `wids`)."""
    from entryway.identity.directory.groups import role_name

    with _directory(data_dir) as (directory, service):
        user = directory.get_user(upn)
        tenant = directory.find_tenant(user.tenant_id)
        added = service.add_role(tenant, user, role)
        roles = ", ".join(role_name(r) for r in service.roles_of(tenant, user.object_id))
        typer.echo(f"{user.user_principal_name}\t{roles}" + ("" if added else "\t(already held)"))


@role_app.command("remove")
def role_remove(
    data_dir: DataDir, upn: Annotated[str, typer.Argument(help="The user's UPN.")], role: RoleOpt
) -> None:
    """Take a directory role away from a user."""
    with _directory(data_dir) as (directory, service):
        user = directory.get_user(upn)
        service.remove_role(directory.find_tenant(user.tenant_id), user, role)


@role_app.command("list")
def role_list(data_dir: DataDir, upn: Annotated[str, typer.Argument(help="The user's UPN.")]) -> None:
    """The user's directory roles: template id and name."""
    from entryway.identity.directory.groups import role_name

    with _directory(data_dir, write=False) as (directory, service):
        user = directory.get_user(upn)
        roles = service.roles_of(directory.find_tenant(user.tenant_id), user.object_id)
    for r in roles:
        typer.echo(f"{r}\t{role_name(r)}")
