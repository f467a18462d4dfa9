"""`entryway leaks`: the secret-scanning partners allowed to report leaked PATs, and the reports they sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from entryway.cli.main import DataDir, admin_runtime, app, fail

leaks_app = typer.Typer(
    no_args_is_help=True, help="Leaked-PAT reports and the reporters allowed to send them."
)
reporter_app = typer.Typer(no_args_is_help=True, help="Secret-scanning partners and their signing keys.")
app.add_typer(leaks_app, name="leaks")
leaks_app.add_typer(reporter_app, name="reporter")


@reporter_app.command("add")
def reporter_add(
    data_dir: DataDir,
    name: Annotated[str, typer.Option("--name", help="Who reports, e.g. 'GitHub secret scanning'.")],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="PEM file of the reporter's EC P-256 public key.")
    ],
    key_id: Annotated[
        str | None,
        typer.Option(
            "--key-id",
            help="The identifier the reporter sends in Github-Public-Key-Identifier "
            "(default: the hex SHA-256 of the key's PEM, as GitHub computes its identifiers).",
        ),
    ] = None,
) -> None:
    """Allow a reporter to post leak reports signed with this key; prints the key identifier."""
    from entryway.devops.leaks.service import LeakReporterError, LeakReporterService

    try:
        pem = public_key.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {public_key}: {exc}") from exc
    with admin_runtime(data_dir) as rt, rt.db.unit_of_work() as session:
        try:
            reporter, created = LeakReporterService(session, rt.clock).add(name, pem, key_id)
        except LeakReporterError as exc:
            raise fail(str(exc)) from exc
    typer.echo(f"{reporter.key_identifier}\t{reporter.name}" + ("" if created else "\t(already registered)"))


@reporter_app.command("list")
def reporter_list(data_dir: DataDir) -> None:
    """List reporters: key identifier, name, registered."""
    from entryway.devops.leaks.service import LeakReporterService

    with admin_runtime(data_dir) as rt, rt.db.read() as session:
        reporters = LeakReporterService(session, rt.clock).list_reporters()
    for r in reporters:
        typer.echo(f"{r.key_identifier}\t{r.name}\t{r.created_at.isoformat()}")


@reporter_app.command("remove")
def reporter_remove(
    data_dir: DataDir,
    key_id: Annotated[str, typer.Argument(help="The reporter's key identifier.")],
) -> None:
    """Stop accepting reports signed with this key."""
    from entryway.devops.leaks.service import LeakReporterError, LeakReporterService

    with admin_runtime(data_dir) as rt, rt.db.unit_of_work() as session:
        try:
            LeakReporterService(session, rt.clock).remove(key_id)
        except LeakReporterError as exc:
            raise fail(str(exc)) from exc


@leaks_app.command("list")
def leaks_list(
    data_dir: DataDir,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array instead of the table.")] = False,
) -> None:
    """List reported tokens, newest first: time, outcome, reporter, PAT (owner and name), where it was found.
    Never the token."""
    from entryway.devops.leaks.service import LeakReportService

    with admin_runtime(data_dir) as rt, rt.db.read() as session:
        reports = LeakReportService(session, rt.clock, rt.digester).list_reports(limit=limit)
    if as_json:
        typer.echo(json.dumps([r.as_json() for r in reports], indent=2, sort_keys=True))
        return
    if not reports:
        typer.echo("No leak reports.")
        return
    for r in reports:
        pat = f"{r.owner} '{r.display_name}' ({r.authorization_id})" if r.authorization_id else "-"
        where = r.url + (f" [{r.source}]" if r.source else "")
        typer.echo(
            f"{r.received_at.isoformat()}\t{r.outcome}\t{r.reporter}\t{r.token_type}\t{pat}\t{where}".rstrip()
        )
