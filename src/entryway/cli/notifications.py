"""`entryway notifications list`: the notification outbox (what the service would mail each user)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from entryway.cli.main import DataDir, admin_runtime, app, fail

notifications_app = typer.Typer(
    no_args_is_help=True, help="The notification outbox (leaked PATs revoked or detected)."
)
app.add_typer(notifications_app, name="notifications")


@notifications_app.command("list")
def notifications_list(
    data_dir: DataDir,
    user: Annotated[
        str | None, typer.Option("--user", help="UPN of the recipient (default: everyone).")
    ] = None,
    unread: Annotated[bool, typer.Option("--unread", help="Only notifications not read yet.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array instead of the text.")] = False,
) -> None:
    """List notifications, newest first: time, recipient, kind, subject, then the body."""
    from entryway.devops.notifications.service import NotificationService
    from entryway.identity.directory.service import DirectoryService

    with admin_runtime(data_dir) as rt, rt.db.read() as session:
        service = NotificationService(session, rt.clock)
        if user is not None:
            found = DirectoryService(session, rt.clock, rt.digester).find_user(user)
            if found is None:
                raise fail(f"user '{user}' not found")
            notes = service.list_for(found.object_id, found.tenant_id, unread_only=unread)[: max(limit, 1)]
        else:
            notes = [n for n in service.list_all(limit=limit) if not (unread and n.is_read)]
    if as_json:
        typer.echo(json.dumps([n.as_json() for n in notes], indent=2, sort_keys=True))
        return
    if not notes:
        typer.echo("No notifications.")
        return
    for n in notes:
        state = "read" if n.is_read else "unread"
        typer.echo(f"{n.created_at.isoformat()}  {n.recipient_name}  {n.kind}  ({state})  {n.subject}")
        for line in n.body.splitlines():
            typer.echo(f"    {line}")
        typer.echo("")
