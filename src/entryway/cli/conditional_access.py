"""`entryway ca ...`: Conditional Access policies, IP named locations, and what-if."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from entryway.cli.main import DataDir, TenantOpt, admin_runtime, app, fail

if TYPE_CHECKING:
    from entryway.identity.directory.conditional_access import ConditionalAccessService
    from entryway.store.models import ConditionalAccessPolicyRow, NamedLocationRow, TenantRow

ca_app = typer.Typer(
    no_args_is_help=True,
    help="Conditional Access: policies, named locations, and what-if (docs/conditional-access.md).",
)
policy_app = typer.Typer(
    no_args_is_help=True, help="Conditional Access policies (Graph's conditionalAccessPolicy)."
)
location_app = typer.Typer(no_args_is_help=True, help="IP named locations (Graph's ipNamedLocation).")
app.add_typer(ca_app, name="ca")
ca_app.add_typer(policy_app, name="policy")
ca_app.add_typer(location_app, name="location")

PolicyArg = Annotated[str, typer.Argument(help="Policy id or name.")]
LocationArg = Annotated[str, typer.Argument(help="Named location id or name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Graph's JSON.")]
Many = Annotated[list[str] | None, typer.Option()]


@contextmanager
def _service(
    data_dir: Path, tenant_ref: str, *, write: bool = True
) -> Iterator[tuple[ConditionalAccessService, TenantRow]]:
    from entryway.identity.directory.conditional_access import ConditionalAccessService
    from entryway.identity.directory.service import DirectoryService

    with admin_runtime(data_dir) as rt, rt.db.unit_of_work() if write else rt.db.read() as session:
        tenant = DirectoryService(session, rt.clock, rt.digester).find_tenant(tenant_ref)
        yield ConditionalAccessService(session, rt.clock), tenant


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def _policy_line(row: ConditionalAccessPolicyRow) -> str:
    grant = ",".join((row.grant_controls or {}).get("builtInControls") or []) or "-"
    sif = (row.session_controls or {}).get("signInFrequency")
    if not sif:
        session = "-"
    elif sif.get("frequencyInterval") == "everyTime":
        session = "signInFrequency=everyTime"
    else:
        session = f"signInFrequency={sif.get('value')}{str(sif.get('type'))[0]}"
    return f"{row.id}\t{row.display_name}\t{row.state}\t{grant}\t{session}"


def _location_line(row: NamedLocationRow) -> str:
    trust = "trusted" if row.is_trusted else "untrusted"
    return f"{row.id}\t{row.display_name}\t{trust}\t{','.join(row.ip_ranges or [])}"


# --- named locations -------------------------------------------------------------------------------------


@location_app.command("add")
def location_add(
    data_dir: DataDir,
    tenant: TenantOpt,
    name: Annotated[str, typer.Option("--name", help="Display name (unique in the tenant).")],
    ranges: Annotated[list[str], typer.Option("--range", help="CIDR range, IPv4 or IPv6 (repeatable).")],
    trusted: Annotated[
        bool, typer.Option("--trusted", help="A trusted location (counts for 'AllTrusted').")
    ] = False,
) -> None:
    """Add an IP named location; prints its id."""
    with _service(data_dir, tenant) as (service, t):
        ranges = [r for item in ranges for r in item.split(",") if r.strip()]
        row = service.create_location(t.id, service.location_from_short_form(name, ranges, trusted))
        typer.echo(_location_line(row))


@location_app.command("update")
def location_update(
    data_dir: DataDir,
    tenant: TenantOpt,
    location: LocationArg,
    name: Annotated[str | None, typer.Option("--name", help="New display name.")] = None,
    ranges: Annotated[
        list[str] | None,
        typer.Option("--range", help="CIDR range (repeatable): the ranges given replace all the old ones."),
    ] = None,
    trusted: Annotated[
        bool | None, typer.Option("--trusted/--untrusted", help="Whether it counts for 'AllTrusted'.")
    ] = None,
) -> None:
    """Change a named location: the options given replace those parts (like Graph's PATCH). Policies that
    name it see the change at once."""
    patch: dict[str, Any] = {}
    if name is not None:
        patch["displayName"] = name
    if ranges is not None:
        patch["ipRanges"] = [{"cidrAddress": r} for item in ranges for r in item.split(",") if r.strip()]
    if trusted is not None:
        patch["isTrusted"] = trusted
    if not patch:
        raise fail("nothing to change: give --name, --range or --trusted/--untrusted")
    with _service(data_dir, tenant) as (service, t):
        typer.echo(_location_line(service.update_location(t.id, location, patch)))


@location_app.command("list")
def location_list(data_dir: DataDir, tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """List the tenant's named locations: id, name, trusted, ranges."""
    from entryway.identity.directory.conditional_access import location_to_graph

    with _service(data_dir, tenant, write=False) as (service, t):
        rows = service.list_locations(t.id)
        if as_json:
            _echo_json({"value": [location_to_graph(r) for r in rows]})
            return
        for row in rows:
            typer.echo(_location_line(row))


@location_app.command("show")
def location_show(data_dir: DataDir, tenant: TenantOpt, location: LocationArg) -> None:
    """A named location in Graph's JSON."""
    from entryway.identity.directory.conditional_access import location_to_graph

    with _service(data_dir, tenant, write=False) as (service, t):
        _echo_json(location_to_graph(service.find_location(t.id, location)))


@location_app.command("remove")
def location_remove(data_dir: DataDir, tenant: TenantOpt, location: LocationArg) -> None:
    """Remove a named location (refused while a policy names it)."""
    with _service(data_dir, tenant) as (service, t):
        service.delete_location(t.id, location)


# --- policies --------------------------------------------------------------------------------------------


def _short_form(
    *,
    name: str | None,
    state: str | None,
    options: dict[str, list[str] | None],
    grant: list[str] | None,
    sign_in_frequency: str | None,
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if name is not None:
        data["name"] = name
    if state is not None:
        data["state"] = state
    for key, values in options.items():
        if values is not None:
            data[key] = [v.strip() for item in values for v in item.split(",") if v.strip()]
    if grant is not None:
        data["grant"] = [v.strip() for item in grant for v in item.split(",") if v.strip()]
    if sign_in_frequency is not None:
        data["sign_in_frequency"] = sign_in_frequency
    return data


def _document(file: Path | None, text: str | None) -> dict[str, Any] | None:
    """A policy from --file (JSON or YAML) or --json: Graph's JSON or the short form."""
    if file is not None and text is not None:
        raise fail("give --file or --json, not both")
    if file is None and text is None:
        return None
    try:
        raw = file.read_text(encoding="utf-8") if file is not None else text
        data = yaml.safe_load(raw or "") if file is not None else json.loads(raw or "")
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc}") from exc
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise fail(f"not valid {'YAML/JSON' if file else 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise fail("the policy must be a JSON object (Graph's conditionalAccessPolicy or the short form)")
    return data


UsersOpt = Annotated[
    list[str] | None, typer.Option("--users", help="UPNs, object ids or All (repeatable or comma-separated).")
]
ExUsersOpt = Annotated[list[str] | None, typer.Option("--exclude-users", help="UPNs or object ids.")]
GroupsOpt = Annotated[list[str] | None, typer.Option("--groups", help="Group names or ids.")]
ExGroupsOpt = Annotated[list[str] | None, typer.Option("--exclude-groups", help="Group names or ids.")]
RolesOpt = Annotated[list[str] | None, typer.Option("--roles", help="Directory role names or template ids.")]
ExRolesOpt = Annotated[list[str] | None, typer.Option("--exclude-roles", help="Directory role names or ids.")]
SpsOpt = Annotated[
    list[str] | None,
    typer.Option("--service-principals", help="Workload identities: app names, app ids, object ids or All."),
]
ExSpsOpt = Annotated[list[str] | None, typer.Option("--exclude-service-principals", help="App names or ids.")]
AppsOpt = Annotated[
    list[str] | None,
    typer.Option("--apps", help="Target resources: All, app names, app ids or identifier URIs."),
]
ExAppsOpt = Annotated[list[str] | None, typer.Option("--exclude-apps", help="App names, ids or URIs.")]
LocationsOpt = Annotated[
    list[str] | None, typer.Option("--locations", help="All, AllTrusted or location names.")
]
ExLocationsOpt = Annotated[list[str] | None, typer.Option("--exclude-locations", help="AllTrusted or names.")]
TypesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--client-app-types", help="all, browser, mobileAppsAndDesktopClients, exchangeActiveSync, other."
    ),
]
PlatformsOpt = Annotated[
    list[str] | None,
    typer.Option("--platforms", help="all, android, iOS, windows, macOS, linux, windowsPhone."),
]
ExPlatformsOpt = Annotated[list[str] | None, typer.Option("--exclude-platforms", help="Platforms.")]
GrantOpt = Annotated[list[str] | None, typer.Option("--grant", help="block or mfa.")]
SifOpt = Annotated[str | None, typer.Option("--sign-in-frequency", help="8h, 1d, every_time, or off.")]
NameOpt = Annotated[str | None, typer.Option("--name", help="Display name (unique in the tenant).")]
StateOpt = Annotated[str | None, typer.Option("--state", help="enabled, report-only or disabled.")]
FileOpt = Annotated[
    Path | None, typer.Option("--file", help="The policy as JSON or YAML (Graph's or the short form).")
]
JsonTextOpt = Annotated[str | None, typer.Option("--json-body", help="The policy as JSON text.")]


@policy_app.command("create")
def policy_create(
    data_dir: DataDir,
    tenant: TenantOpt,
    name: NameOpt = None,
    state: StateOpt = None,
    users: UsersOpt = None,
    exclude_users: ExUsersOpt = None,
    groups: GroupsOpt = None,
    exclude_groups: ExGroupsOpt = None,
    roles: RolesOpt = None,
    exclude_roles: ExRolesOpt = None,
    service_principals: SpsOpt = None,
    exclude_service_principals: ExSpsOpt = None,
    apps: AppsOpt = None,
    exclude_apps: ExAppsOpt = None,
    locations: LocationsOpt = None,
    exclude_locations: ExLocationsOpt = None,
    client_app_types: TypesOpt = None,
    platforms: PlatformsOpt = None,
    exclude_platforms: ExPlatformsOpt = None,
    grant: GrantOpt = None,
    sign_in_frequency: SifOpt = None,
    file: FileOpt = None,
    json_body: JsonTextOpt = None,
) -> None:
    """Create a policy from options (the short form), or from --file / --json-body; prints id, name, state,
    grant and session controls. Users default to All and apps to All; state to enabled."""
    document = _document(file, json_body)
    options = {
        "users": users,
        "exclude_users": exclude_users,
        "groups": groups,
        "exclude_groups": exclude_groups,
        "roles": roles,
        "exclude_roles": exclude_roles,
        "service_principals": service_principals,
        "exclude_service_principals": exclude_service_principals,
        "applications": apps,
        "exclude_applications": exclude_apps,
        "locations": locations,
        "exclude_locations": exclude_locations,
        "client_app_types": client_app_types,
        "platforms": platforms,
        "exclude_platforms": exclude_platforms,
    }
    short = _short_form(
        name=name, state=state, options=options, grant=grant, sign_in_frequency=sign_in_frequency
    )
    if document is not None and short:
        raise fail("give the policy either as options or as --file/--json-body, not both")
    with _service(data_dir, tenant) as (service, t):
        data = service.expand_policy(t.id, document if document is not None else short)
        typer.echo(_policy_line(service.create_policy(t.id, data)))


@policy_app.command("update")
def policy_update(
    data_dir: DataDir,
    tenant: TenantOpt,
    policy: PolicyArg,
    name: NameOpt = None,
    state: StateOpt = None,
    users: UsersOpt = None,
    exclude_users: ExUsersOpt = None,
    groups: GroupsOpt = None,
    exclude_groups: ExGroupsOpt = None,
    roles: RolesOpt = None,
    exclude_roles: ExRolesOpt = None,
    apps: AppsOpt = None,
    exclude_apps: ExAppsOpt = None,
    locations: LocationsOpt = None,
    exclude_locations: ExLocationsOpt = None,
    client_app_types: TypesOpt = None,
    platforms: PlatformsOpt = None,
    exclude_platforms: ExPlatformsOpt = None,
    grant: GrantOpt = None,
    sign_in_frequency: SifOpt = None,
    file: FileOpt = None,
    json_body: JsonTextOpt = None,
) -> None:
    """Change a policy: the options given replace those parts (like Graph's PATCH), or --file / --json-body
    is a Graph PATCH body."""
    document = _document(file, json_body)
    options = {
        "users": users,
        "exclude_users": exclude_users,
        "groups": groups,
        "exclude_groups": exclude_groups,
        "roles": roles,
        "exclude_roles": exclude_roles,
        "applications": apps,
        "exclude_applications": exclude_apps,
        "locations": locations,
        "exclude_locations": exclude_locations,
        "client_app_types": client_app_types,
        "platforms": platforms,
        "exclude_platforms": exclude_platforms,
    }
    short = _short_form(
        name=name, state=state, options=options, grant=grant, sign_in_frequency=sign_in_frequency
    )
    if document is not None and short:
        raise fail("give the change either as options or as --file/--json-body, not both")
    if document is None and not short:
        raise fail("nothing to change: give options, --file or --json-body")
    with _service(data_dir, tenant) as (service, t):
        patch = document if document is not None else service.expand_policy(t.id, short, partial=True)
        typer.echo(_policy_line(service.update_policy(t.id, policy, patch)))


@policy_app.command("set-state")
def policy_set_state(
    data_dir: DataDir,
    tenant: TenantOpt,
    policy: PolicyArg,
    state: Annotated[str, typer.Argument(help="enabled, report-only or disabled.")],
) -> None:
    """Turn a policy on, to report-only, or off."""
    from entryway.identity.directory.conditional_access import parse_state

    with _service(data_dir, tenant) as (service, t):
        typer.echo(_policy_line(service.set_state(t.id, policy, parse_state(state))))


@policy_app.command("list")
def policy_list(data_dir: DataDir, tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """List the tenant's policies: id, name, state, grant controls, session controls."""
    from entryway.identity.directory.conditional_access import policy_to_graph

    with _service(data_dir, tenant, write=False) as (service, t):
        rows = service.list_policies(t.id)
        if as_json:
            _echo_json({"value": [policy_to_graph(r) for r in rows]})
            return
        for row in rows:
            typer.echo(_policy_line(row))


@policy_app.command("show")
def policy_show(data_dir: DataDir, tenant: TenantOpt, policy: PolicyArg) -> None:
    """A policy in Graph's JSON."""
    from entryway.identity.directory.conditional_access import policy_to_graph

    with _service(data_dir, tenant, write=False) as (service, t):
        _echo_json(policy_to_graph(service.find_policy(t.id, policy)))


@policy_app.command("delete")
def policy_delete(data_dir: DataDir, tenant: TenantOpt, policy: PolicyArg) -> None:
    """Delete a policy."""
    with _service(data_dir, tenant) as (service, t):
        service.delete_policy(t.id, policy)


# --- what-if -------------------------------------------------------------------------------------------


@ca_app.command("what-if")
def what_if(
    data_dir: DataDir,
    tenant: TenantOpt,
    app_ref: Annotated[str, typer.Option("--app", help="The resource signed in to: app id, name or URI.")],
    ip: Annotated[str, typer.Option("--ip", help="The client's address (IPv4 or IPv6).")],
    user: Annotated[str | None, typer.Option("--user", help="UPN of a user of the tenant.")] = None,
    service_principal: Annotated[
        str | None,
        typer.Option("--service-principal", help="A workload identity: app id, name or object id."),
    ] = None,
    client_app_type: Annotated[
        str, typer.Option("--client-app-type", help="browser, mobileAppsAndDesktopClients, other, ...")
    ] = "browser",
    platform: Annotated[
        str, typer.Option("--platform", help="android, iOS, windows, macOS, linux, ...")
    ] = "unknownFutureValue",
    mfa_done: Annotated[bool, typer.Option("--mfa-done", help="The sign-in already did MFA.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Which policies would apply to a sign-in, and why; and what the enabled ones would demand."""
    with _service(data_dir, tenant, write=False) as (service, t):
        result = service.what_if(
            t.id,
            user=user,
            service_principal=service_principal,
            app=app_ref,
            ip=ip,
            client_app_type=client_app_type,
            platform=platform,
            mfa_done=mfa_done,
        )
    if as_json:
        _echo_json(result)
        return
    for outcome in result["policies"]:
        applies = "applies" if outcome["applies"] else "not applied"
        typer.echo(f"{outcome['displayName']}\t{outcome['state']}\t{applies}\t{outcome['result']}")
        for reason in outcome["reasons"]:
            typer.echo(f"    {reason}")
    decision = result["decision"]
    typer.echo(
        f"decision: {decision['outcome']} (conditionalAccessStatus {decision['conditionalAccessStatus']})"
    )
