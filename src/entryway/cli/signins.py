"""`entryway signins list|show`: the identity platform's sign-in log (interactive sign-ins on the pages and
every token issuance or refusal), with each Conditional Access policy's result."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from entryway.cli.main import DataDir, admin_runtime, app, fail

signins_app = typer.Typer(
    no_args_is_help=True,
    help="The sign-in log: sign-ins and token issuance, with Conditional Access results.",
)
app.add_typer(signins_app, name="signins")


@signins_app.command("list")
def signins_list(
    data_dir: DataDir,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Tenant id or domain.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="User principal name.")] = None,
    app_id: Annotated[str | None, typer.Option("--app", help="The client's app id.")] = None,
    failures: Annotated[bool, typer.Option("--failures", help="Only sign-ins with an error code.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="At most this many entries, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One Graph signIn JSON object per line.")] = False,
) -> None:
    """List sign-ins, newest first: time, result, user or app, client, resource, address, Conditional Access
    status, interactive or not / protocol, id."""
    from entryway.identity.directory.reads import SqlDirectory
    from entryway.identity.signin.log_reads import (
        MAX_PAGE_SIZE,
        SignInQuery,
        find_sign_ins,
        sign_in_to_graph,
        summary_fields,
    )
    from entryway.kit.ids import parse_guid

    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise fail(f"--limit must be between 1 and {MAX_PAGE_SIZE}")
    if app_id is not None and parse_guid(app_id) is None:
        raise fail(f"--app must be an application (client) id, not '{app_id}'")
    if user is not None and "@" not in user:
        raise fail(f"--user must be a user principal name (name@domain), not '{user}'")
    with admin_runtime(data_dir) as rt:
        rt.sign_in_log.flush()
        with rt.db.read() as session:
            tenant_id = None
            if tenant is not None:
                found = SqlDirectory(session.connection()).find_tenant(tenant.strip())
                if found is None:
                    raise fail(f"no tenant '{tenant}'")
                tenant_id = found.id
            query = SignInQuery(
                tenant_id=tenant_id,
                user_principal_name=user.strip().lower() if user else None,
                app_id=parse_guid(app_id) if app_id else None,
                failures_only=failures,
                limit=limit,
            )
            for row in find_sign_ins(session, query):
                if as_json:
                    typer.echo(json.dumps(sign_in_to_graph(row), sort_keys=True))
                else:
                    typer.echo("\t".join(summary_fields(row)))


@signins_app.command("show")
def signins_show(
    data_dir: DataDir,
    entry_id: Annotated[str, typer.Argument(metavar="ID", help="The sign-in's id (from signins list).")],
) -> None:
    """One sign-in as Graph's signIn JSON, with every policy's result."""
    from entryway.identity.signin.log_reads import find_sign_in, sign_in_to_graph
    from entryway.kit.ids import parse_guid

    ref = parse_guid(entry_id.strip())
    if ref is None:
        raise fail(f"'{entry_id}' is not a sign-in id (a GUID)")
    with admin_runtime(data_dir) as rt:
        rt.sign_in_log.flush()
        with rt.db.read() as session:
            row = find_sign_in(session, ref)
            if row is None:
                raise fail(f"no sign-in '{entry_id}'")
            typer.echo(json.dumps(sign_in_to_graph(row), indent=2, sort_keys=True))
