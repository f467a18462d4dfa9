"""`entryway audit list`: the DevOps audit log, filtered by organization, principal, time and outcome."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from entryway.cli.main import DataDir, admin_runtime, app, fail

audit_app = typer.Typer(
    no_args_is_help=True, help="The DevOps audit log (authentication decisions, changes)."
)
app.add_typer(audit_app, name="audit")

OUTCOMES = ("success", "failure")


@audit_app.command("list")
def audit_list(
    data_dir: DataDir,
    org: Annotated[str | None, typer.Option("--org", help="Organization name.")] = None,
    principal: Annotated[
        str | None, typer.Option("--principal", help="UPN, app id or object id of the actor.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="ISO 8601 time (inclusive; UTC if no offset).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO 8601 time (exclusive).")] = None,
    outcome: Annotated[str | None, typer.Option("--outcome", help="success or failure.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many entries, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List audit entries, newest first: time, outcome, action, organization, actor, credential kind,
    address, request, reason."""
    from entryway.devops.audit.repository import AuditQuery
    from entryway.devops.audit.service import (
        MAX_BATCH_SIZE,
        AuditQueryError,
        parse_time,
        query_page,
        resolve_principal,
    )
    from entryway.devops.orgs.service import OrgService
    from entryway.kit.clock import as_utc

    if outcome is not None and outcome not in OUTCOMES:
        raise fail(f"--outcome must be one of {', '.join(OUTCOMES)}, not '{outcome}'")
    if not 1 <= limit <= MAX_BATCH_SIZE:
        raise fail(f"--limit must be between 1 and {MAX_BATCH_SIZE}")
    try:
        start = parse_time(since, "--since") if since else None
        end = parse_time(until, "--until") if until else None
    except AuditQueryError as exc:
        raise fail(str(exc)) from exc
    with admin_runtime(data_dir) as rt, rt.db.read() as session:
        organization_id = organization_name = None
        if org is not None:
            found = OrgService(session, rt.clock).find(org)
            if found is not None:
                organization_id = found.id
            else:  # refusals at an organization that does not exist are logged under the name asked for
                organization_name = org
        actors = resolve_principal(session, principal) if principal else None
        if actors is not None and not actors:
            raise fail(f"no user, app or member is known as '{principal}'")
        query = AuditQuery(
            organization_id=organization_id,
            organization_name=organization_name,
            actor_ids=actors,
            since=start,
            until=end,
            outcome=outcome,
            limit=limit,
        )
        page = query_page(session, query)
        for row in page.entries:
            upn = page.principal_names.get(row.actor_id or "", "")
            if as_json:
                record = {
                    "id": row.id,
                    "timestamp": as_utc(row.timestamp).isoformat(),
                    "organization": row.organization_name,
                    "organizationId": row.organization_id,
                    "action": row.action,
                    "outcome": row.outcome,
                    "actorId": row.actor_id,
                    "actorName": row.actor_name,
                    "actorUpn": upn,
                    "credentialKind": row.credential_kind,
                    "clientAddress": row.client_address,
                    "method": row.method,
                    "path": row.path,
                    "status": row.status,
                    "details": row.details,
                }
                typer.echo(json.dumps(record, sort_keys=True))
            else:
                actor = upn or row.actor_name or row.actor_id or "-"
                fields = [
                    as_utc(row.timestamp).isoformat(timespec="seconds"),
                    row.outcome,
                    row.action,
                    row.organization_name or "-",
                    actor,
                    row.credential_kind or "-",
                    row.client_address or "-",
                    f"{row.method} {row.path}".strip() or "-",
                    str(row.details.get("reason", "")),
                ]
                typer.echo("\t".join(fields))
