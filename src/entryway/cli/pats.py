"""`entryway pats report`: every active PAT, its risks, and the Entra credential that replaces it."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from entryway.cli.main import DataDir, admin_runtime, app, fail

pats_app = typer.Typer(no_args_is_help=True, help="Personal access tokens and the way off them.")
app.add_typer(pats_app, name="pats")

COLUMNS = ("OWNER", "NAME", "ORG", "SCOPES", "AGE", "EXPIRES", "LAST USED", "USES", "RISK", "ALTERNATIVE")


@pats_app.command("report")
def pats_report(
    data_dir: DataDir,
    org: Annotated[
        str | None,
        typer.Option("--org", help="Organization name: its PATs and the global ones (default: every PAT)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array instead of the table.")] = False,
) -> None:
    """For each active PAT: owner, name, organization, scopes, age and expiry in days, usage, risk flags
    (full-scope, global, long-lived, unused) and the Entra alternative for how it is used."""
    from entryway.devops.orgs.service import OrgService
    from entryway.devops.pats.report import build_report, find_unrevoked_pats

    with admin_runtime(data_dir) as rt, rt.db.read() as session:
        orgs = OrgService(session, rt.clock)
        organization_id = None
        if org is not None:
            found = orgs.find(org)
            if found is None:
                raise fail(f"organization '{org}' not found")
            organization_id = found.id
        names = {o.id: o.name for o in orgs.list_orgs()}
        entries = build_report(find_unrevoked_pats(session, organization_id), names, rt.clock.now())
    if as_json:
        typer.echo(json.dumps([e.as_json() for e in entries], indent=2, sort_keys=True))
        return
    if not entries:
        typer.echo("No active PATs.")
        return
    rows = [COLUMNS]
    for e in entries:
        last_used = (
            "never"
            if e.last_used_at is None
            else f"{e.last_used_at.date().isoformat()} {e.last_used_route_kind or '-'} "
            f"({e.last_used_user_agent or 'no user agent'})"
        )
        rows.append(
            (
                e.owner,
                e.display_name,
                e.organization,
                " ".join(e.scopes),
                f"{e.age_days}d",
                f"{e.expires_in_days}d",
                last_used,
                f"rest {e.rest_uses} / git {e.git_uses}",
                ",".join(e.flags) or "-",
                e.alternative,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    for r in rows:
        typer.echo("  ".join([*(cell.ljust(w) for cell, w in zip(r, widths, strict=False)), r[-1]]).rstrip())
