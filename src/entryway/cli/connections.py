"""`entryway serviceconnection`: a project's service connections (workload identity federation), and the
federated credential that makes the app or managed identity trust one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, cast

import typer

from entryway.cli.main import Admin, DataDir, admin_runtime, app, fail

if TYPE_CHECKING:
    from entryway.devops.connections.service import ConnectionService, Federation, ServiceConnection
    from entryway.devops.orgs.service import Organization
    from entryway.devops.projects.service import Project

connections_app = typer.Typer(
    no_args_is_help=True,
    help="Service connections of a project: an app registration or user-assigned managed identity that "
    "pipelines sign in as through workload identity federation (no secret).",
)
app.add_typer(connections_app, name="serviceconnection")

ProjectPathArg = Annotated[str, typer.Argument(help="{organization}/{project}", metavar="ORG/PROJECT")]
ConnectionOpt = Annotated[str, typer.Option("--name", help="The service connection's name or id.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON instead of text.")]


@dataclass
class _Scope:
    admin: Admin
    org: Organization
    project: Project
    connections: ConnectionService

    def federation(self, connection: ServiceConnection) -> Federation:
        from entryway.devops.connections.service import federation_of

        return federation_of(
            connection,
            organization_id=self.org.id,
            organization=self.org.name,
            project=self.project.name,
            devops_origin=self.admin.runtime.settings.devops_origin,
            identity_origin=self.admin.runtime.settings.identity_origin,
        )


@contextmanager
def _project_scope(data_dir: DataDir, path: str, *, write: bool = True) -> Iterator[_Scope]:
    """One unit of work over the directory, the organization's project and its service connections."""
    from entryway.devops.audit.recorder import Actor
    from entryway.devops.connections.service import ConnectionService, ServiceConnectionError
    from entryway.devops.orgs.service import OrgService
    from entryway.devops.projects.service import ProjectService
    from entryway.identity.directory.service import DirectoryService

    org_name, sep, project_name = path.strip().strip("/").partition("/")
    if not sep or not org_name or not project_name or "/" in project_name:
        raise fail(f"'{path}' is not ORG/PROJECT")
    with admin_runtime(data_dir) as rt, rt.db.unit_of_work() if write else rt.db.read() as session:
        a = Admin(
            rt,
            DirectoryService(session, rt.clock, rt.digester),
            OrgService(session, rt.clock),
            ProjectService(session, rt.clock, str(rt.settings.data_dir / "git")),
        )
        org = a.orgs.get(org_name)
        project = a.projects.get(org, project_name)
        try:
            service = ConnectionService(session, rt.clock, org=org, actor=Actor.local("cli"))
            yield _Scope(a, org, project, service)
        except ServiceConnectionError as exc:
            raise fail(str(exc)) from exc


def _describe(scope: _Scope, connection: ServiceConnection) -> dict[str, object]:
    body: dict[str, object] = {
        "id": connection.id,
        "name": connection.name,
        "project": scope.project.name,
        "organization": scope.org.name,
        "tenant": connection.tenant_id,
        "client_id": connection.client_id,
        "issuer_mode": connection.issuer_mode.value,
        "pipelines": "all" if connection.all_pipelines else scope.connections.pipeline_names(connection),
    }
    federation = scope.federation(connection)
    body.update(issuer=federation.issuer, subject=federation.subject, audience=federation.audience)
    return body


def _print(body: dict[str, object]) -> None:
    for key in ("id", "name", "tenant", "client_id", "issuer_mode", "issuer", "subject", "audience"):
        if key in body:
            typer.echo(f"{key:<12}{body[key]}")
    pipelines = body["pipelines"]
    listed = (
        pipelines if isinstance(pipelines, str) else ", ".join(map(str, cast("list[str]", pipelines))) or "-"
    )
    typer.echo(f"{'pipelines':<12}{listed}")


@connections_app.command("create")
def create(
    data_dir: DataDir,
    path: ProjectPathArg,
    name: Annotated[str, typer.Option("--name", help="Name, unique in the project (its tokens' subject).")],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id or domain of the app or identity.")],
    app_ref: Annotated[
        str | None, typer.Option("--app", help="Client id or name of the app registration.")
    ] = None,
    identity: Annotated[
        str | None,
        typer.Option(
            "--identity", help="Name, client id or resource id of a user-assigned managed identity."
        ),
    ] = None,
    issuer: Annotated[
        str,
        typer.Option(
            "--issuer",
            help="'devops' (the DevOps service's issuer) or 'entra' (the identity platform issues the token).",
        ),
    ] = "devops",
    pipeline: Annotated[
        list[str] | None,
        typer.Option("--pipeline", help="A pipeline (name or id) that may use it; repeatable."),
    ] = None,
    all_pipelines: Annotated[
        bool, typer.Option("--all-pipelines", help="Every pipeline of the project may.")
    ] = False,
    create_federated_credential: Annotated[
        bool,
        typer.Option(
            "--create-federated-credential",
            help="Also add the matching federated credential to the app or managed identity.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a service connection; prints the issuer and subject a federated credential must name."""
    from entryway.devops.connections.service import IssuerMode, federated_credential_name

    if (app_ref is None) == (identity is None):
        raise fail("give exactly one of --app or --identity")
    if issuer not in {m.value for m in IssuerMode}:
        raise fail(f"--issuer is 'devops' or 'entra', not '{issuer}'")
    with _project_scope(data_dir, path) as scope:
        directory = scope.admin.directory
        t = directory.find_tenant(tenant)
        if app_ref is not None:
            client_id = directory.find_application(t, app_ref).app_id
        else:
            assert identity is not None
            mi = directory.find_managed_identity(t, identity)
            if mi.kind != "user":
                raise fail(
                    f"'{mi.name}' is a system-assigned managed identity; a service connection needs a "
                    "user-assigned one (only those have federated credentials)"
                )
            client_id = mi.app_id
        connection = scope.connections.create(
            scope.project.id,
            name=name,
            tenant_id=t.id,
            client_id=client_id,
            issuer_mode=IssuerMode(issuer),
            pipelines=pipeline or (),
            all_pipelines=all_pipelines,
        )
        body = _describe(scope, connection)
        if create_federated_credential:
            federation = scope.federation(connection)
            fic = directory.add_federated_credential(
                client_id,
                name=federated_credential_name(connection),
                issuer=federation.issuer,
                subject=federation.subject,
                audiences=[federation.audience],
                description=f"Azure DevOps service connection {scope.org.name}/{scope.project.name}/{name}",
            )
            body["federated_credential"] = fic.name
    if as_json:
        typer.echo(json.dumps(body, indent=2, sort_keys=True))
        return
    _print(body)
    if "federated_credential" in body:
        typer.echo(f"federated credential {body['federated_credential']} added to {client_id}")


@connections_app.command("list")
def list_connections(data_dir: DataDir, path: ProjectPathArg, as_json: JsonOpt = False) -> None:
    """The project's service connections: id, name, client id, subject."""
    with _project_scope(data_dir, path, write=False) as scope:
        bodies = [_describe(scope, c) for c in scope.connections.list_connections(scope.project.id)]
    if as_json:
        typer.echo(json.dumps(bodies, indent=2, sort_keys=True))
        return
    for b in bodies:
        typer.echo(f"{b['id']}\t{b['name']}\t{b['client_id']}\t{b.get('subject', '-')}")


@connections_app.command("show")
def show(data_dir: DataDir, path: ProjectPathArg, name: ConnectionOpt, as_json: JsonOpt = False) -> None:
    """A service connection, with the issuer, subject and audience its federated credential must name."""
    with _project_scope(data_dir, path, write=False) as scope:
        body = _describe(scope, scope.connections.get(scope.project.id, name))
    if as_json:
        typer.echo(json.dumps(body, indent=2, sort_keys=True))
        return
    _print(body)


@connections_app.command("rename")
def rename(
    data_dir: DataDir,
    path: ProjectPathArg,
    name: ConnectionOpt,
    new_name: Annotated[str, typer.Option("--to", help="The new name.")],
    update_federated_credential: Annotated[
        bool,
        typer.Option(
            "--update-federated-credential",
            help="Also set the connection's federated credential (made by --create-federated-credential) to "
            "the new subject.",
        ),
    ] = False,
) -> None:
    """Rename a service connection. Its tokens' subject changes with the name: a federated credential naming the
    old subject no longer matches (sign-ins fail with AADSTS700213, as in Azure DevOps) unless it is updated."""
    from entryway.devops.connections.service import federated_credential_name

    with _project_scope(data_dir, path) as scope:
        connection = scope.connections.rename(scope.project.id, name, new_name)
        body = _describe(scope, connection)
        if update_federated_credential:
            federation = scope.federation(connection)
            scope.admin.directory.update_federated_credential(
                connection.client_id,
                federated_credential_name(connection),
                issuer=federation.issuer,
                subject=federation.subject,
                audiences=[federation.audience],
                description=f"Azure DevOps service connection {scope.org.name}/{scope.project.name}/{new_name}",
            )
    _print(body)
    if update_federated_credential:
        typer.echo(f"federated credential {federated_credential_name(connection)} now names the new subject")
    else:
        typer.echo("the subject changed: a federated credential naming the old one no longer matches")


@connections_app.command("authorize")
def authorize(
    data_dir: DataDir,
    path: ProjectPathArg,
    name: ConnectionOpt,
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="The pipeline (name or id).")] = None,
    all_pipelines: Annotated[
        bool, typer.Option("--all-pipelines", help="Every pipeline of the project.")
    ] = False,
) -> None:
    """Let a pipeline (or every pipeline of the project) use the service connection."""
    if (pipeline is None) == (not all_pipelines):
        raise fail("give exactly one of --pipeline or --all-pipelines")
    with _project_scope(data_dir, path) as scope:
        if pipeline is not None:
            changed = scope.connections.authorize(scope.project.id, name, pipeline)
        else:
            changed = scope.connections.set_all_pipelines(scope.project.id, name, True)
    typer.echo("authorized" if changed else "already authorized")


@connections_app.command("delete")
def delete(data_dir: DataDir, path: ProjectPathArg, name: ConnectionOpt) -> None:
    """Delete a service connection; its pipelines get no more tokens for it. The federated credential on the
    app or identity stays (remove it with `entryway app fic remove`)."""
    with _project_scope(data_dir, path) as scope:
        connection = scope.connections.delete(scope.project.id, name)
    typer.echo(f"deleted {connection.id}")
