"""`entryway`: serve, env, and administration of tenants, apps, users, organizations and keys."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from entryway.config.settings import DEFAULT_DEVOPS_PORT, DEFAULT_IDENTITY_PORT, Settings
from entryway.kit.clock import as_utc

if TYPE_CHECKING:
    from entryway.devops.audit.recorder import Actor
    from entryway.devops.orgs.service import OrgService
    from entryway.devops.projects.service import ProjectService
    from entryway.identity.directory.service import DirectoryService
    from entryway.keys.keyring import KeyService
    from entryway.runtime import Runtime
    from entryway.store.models import ApplicationRow, ManagedIdentityRow

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Entryway: Entra ID and Azure DevOps, self-hosted."
)
tenant_app = typer.Typer(no_args_is_help=True, help="Tenants.")
apps_app = typer.Typer(no_args_is_help=True, help="App registrations and their client secrets.")
secret_app = typer.Typer(no_args_is_help=True, help="Client secrets of an app registration.")
cert_app = typer.Typer(no_args_is_help=True, help="Certificates of an app registration (client assertions).")
fic_app = typer.Typer(
    no_args_is_help=True,
    help="Federated identity credentials of an app registration or a user-assigned managed identity.",
)
mi_app = typer.Typer(no_args_is_help=True, help="Managed identities, and which ones this host carries.")
user_app = typer.Typer(no_args_is_help=True, help="Users.")
mfa_app = typer.Typer(no_args_is_help=True, help="A user's multi-factor authentication (TOTP).")
org_app = typer.Typer(no_args_is_help=True, help="DevOps organizations.")
member_app = typer.Typer(no_args_is_help=True, help="Members of an organization.")
org_policy_app = typer.Typer(no_args_is_help=True, help="An organization's security policies.")
project_app = typer.Typer(no_args_is_help=True, help="Projects of an organization.")
project_member_app = typer.Typer(no_args_is_help=True, help="Members' roles in a project.")
repo_app = typer.Typer(no_args_is_help=True, help="Git repositories of a project.")
keys_app = typer.Typer(no_args_is_help=True, help="Token signing keys.")
app.add_typer(tenant_app, name="tenant")
app.add_typer(apps_app, name="app")
apps_app.add_typer(secret_app, name="secret")
apps_app.add_typer(cert_app, name="cert")
apps_app.add_typer(fic_app, name="fic")
app.add_typer(mi_app, name="mi")
app.add_typer(user_app, name="user")
user_app.add_typer(mfa_app, name="mfa")
app.add_typer(org_app, name="org")
org_app.add_typer(member_app, name="member")
org_app.add_typer(org_policy_app, name="policy")
app.add_typer(project_app, name="project")
project_app.add_typer(project_member_app, name="member")
app.add_typer(repo_app, name="repo")
app.add_typer(keys_app, name="keys")

STATE_FILE = "state.json"


def default_data_dir() -> Path:
    return Path(os.environ.get("ENTRYWAY_DATA_DIR", ".entryway")).resolve()


DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="Where Entryway keeps its database, keys and CA (env ENTRYWAY_DATA_DIR).",
        default_factory=default_data_dir,
        show_default=".entryway",
    ),
]


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


@contextmanager
def admin_runtime(data_dir: Path) -> Iterator[Runtime]:
    """The runtime for an administrative command on a data directory (the server may be running)."""
    from entryway.config.errors import ConfigError
    from entryway.devops.orgs.service import OrgError
    from entryway.devops.projects.service import ProjectError
    from entryway.identity.directory.service import DirectoryError
    from entryway.keys.keyring import MasterKeyMismatch
    from entryway.runtime import Runtime

    settings = _saved_settings(data_dir.resolve())
    try:
        runtime = Runtime.open(settings)
    except (MasterKeyMismatch, ValueError) as exc:
        raise fail(str(exc)) from exc
    try:
        yield runtime
    except (DirectoryError, OrgError, ConfigError, ProjectError) as exc:
        raise fail(str(exc)) from exc
    finally:
        runtime.close()


@dataclass
class Admin:
    """What an administrative command works with: one unit of work over the directory and the orgs."""

    runtime: Runtime
    directory: DirectoryService
    orgs: OrgService
    projects: ProjectService


@contextmanager
def admin(data_dir: Path, *, write: bool = True) -> Iterator[Admin]:
    from entryway.devops.orgs.service import OrgService
    from entryway.devops.projects.service import ProjectService
    from entryway.identity.directory.service import DirectoryService

    with admin_runtime(data_dir) as rt, rt.db.unit_of_work() if write else rt.db.read() as session:
        yield Admin(
            rt,
            DirectoryService(session, rt.clock, rt.digester),
            OrgService(session, rt.clock),
            ProjectService(session, rt.clock, str(rt.settings.data_dir / "git")),
        )


def _saved_settings(data_dir: Path) -> Settings:
    state = data_dir / STATE_FILE
    if state.exists():
        saved = json.loads(state.read_text())
        return Settings(
            data_dir=data_dir,
            host=saved["host"],
            identity_port=saved["identity_port"],
            devops_port=saved["devops_port"],
            database_url=saved.get("database_url"),
            imds_port=saved.get("imds_port"),
            app_service_port=saved.get("app_service_port"),
            managed_identity=saved.get("managed_identity", True),
        )
    return Settings(data_dir=data_dir)


# --- serve ---------------------------------------------------------------------------------------

TRUSTED_PROXIES_ENV = "ENTRYWAY_TRUSTED_PROXIES"
SIGN_IN_LOG_RETENTION_ENV = "ENTRYWAY_SIGN_IN_LOG_RETENTION_DAYS"


def _trusted_proxies(given: list[str] | None) -> tuple[str, ...]:
    """`--trusted-proxy` values, else ENTRYWAY_TRUSTED_PROXIES (comma- or space-separated); each checked."""
    from entryway.kit.web import parse_networks

    values = list(given or ()) or os.environ.get(TRUSTED_PROXIES_ENV, "").replace(",", " ").split()
    try:
        return tuple(str(network) for network in parse_networks(values))
    except ValueError as exc:
        raise fail(f"--trusted-proxy: {exc}") from exc


@app.command()
def serve(
    data_dir: DataDir,
    config: Annotated[
        Path | None, typer.Option("--config", help="Declarative YAML config applied at start.")
    ] = None,
    identity_port: Annotated[
        int, typer.Option(help="Port of the identity platform (0 picks one).")
    ] = DEFAULT_IDENTITY_PORT,
    devops_port: Annotated[
        int, typer.Option(help="Port of the DevOps service (0 picks one).")
    ] = DEFAULT_DEVOPS_PORT,
    host: Annotated[str, typer.Option(help="Host name in every URL and in the certificate.")] = "localhost",
    bind: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    cert_name: Annotated[
        list[str] | None, typer.Option("--cert-name", help="Extra certificate name (repeatable).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes sharing the ports.")] = 1,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL (default: SQLite in the data dir).")
    ] = None,
    demo: Annotated[
        bool, typer.Option(help="Seed a demo tenant, app and organization on first start.")
    ] = True,
    managed_identity: Annotated[
        bool,
        typer.Option(
            help="Serve the IMDS and App Service managed identity endpoints (loopback, plain HTTP)."
        ),
    ] = True,
    imds_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Port of the IMDS endpoint (default 8480, or a free one if taken)."
        ),
    ] = None,
    app_service_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Port of the App Service endpoint (default 8481, or a free one)."
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(help="debug, info (each refused credential and token error, with its reason), warning."),
    ] = "warning",
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            help="A reverse proxy's address or CIDR range whose X-Forwarded-For is believed (repeatable; "
            f"default: {TRUSTED_PROXIES_ENV}, comma-separated).",
        ),
    ] = None,
    sign_in_log_retention_days: Annotated[
        int,
        typer.Option(
            min=0,
            max=36500,
            envvar=SIGN_IN_LOG_RETENTION_ENV,
            help="Days the sign-in log keeps an entry (as Entra: 30); 0 keeps every entry.",
        ),
    ] = 30,
) -> None:
    """Start the identity platform and the DevOps service over HTTPS."""
    from entryway.cli.banner import render
    from entryway.config.declarative import apply_config, load_config
    from entryway.config.errors import ConfigError
    from entryway.config.seed import DEMO_PASSWORD_ENV, ensure_installation, seed_demo
    from entryway.keys.keyring import MasterKeyMismatch
    from entryway.server import EntrywayServer

    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise fail(f"unknown log level '{log_level}'")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_dir = data_dir.resolve()
    proxies = _trusted_proxies(trusted_proxy)
    settings = Settings(
        data_dir=data_dir,
        trusted_proxies=proxies,
        sign_in_log_retention_days=sign_in_log_retention_days,
        host=host,
        bind=bind,
        identity_port=identity_port,
        devops_port=devops_port,
        extra_names=tuple(cert_name or ()),
        database_url=database_url,
        workers=workers,
        managed_identity=managed_identity,
        imds_port=imds_port,
        app_service_port=app_service_port,
    )
    server = EntrywayServer(settings)
    try:
        runtime = server.prepare()
    except OSError as exc:
        raise fail(f"cannot listen: {exc.strerror} (is another Entryway running? try other ports)") from exc
    except (MasterKeyMismatch, ValueError) as exc:
        raise fail(str(exc)) from exc
    # The config first: a file with an error changes nothing, not even the record of a first start.
    if config is not None:
        try:
            report = apply_config(runtime, load_config(config), str(config), base_dir=config.parent)
        except ConfigError as exc:
            raise fail(str(exc)) from exc
        for line in report.created:
            typer.echo(f"config: created {line}")
    demo_password = os.environ.get(DEMO_PASSWORD_ENV) or None
    if demo_password is not None and len(demo_password) < 8:
        raise fail(f"{DEMO_PASSWORD_ENV} must be at least 8 characters")
    first_start = ensure_installation(runtime)
    seed = seed_demo(runtime, demo_password) if first_start and demo and config is None else None
    actual = runtime.settings
    (data_dir / STATE_FILE).write_text(
        json.dumps(
            {
                "host": actual.host,
                "identity_port": actual.identity_port,
                "devops_port": actual.devops_port,
                "imds_port": actual.imds_port,
                "app_service_port": actual.app_service_port,
                "managed_identity": actual.managed_identity,
                "database_url": actual.database_url,
                "identity_origin": actual.identity_origin,
                "devops_origin": actual.devops_origin,
            },
            indent=2,
        )
    )
    server.catch_stop_signals()  # a Ctrl+C right after the banner must stop it too
    try:
        typer.echo(render(actual, seed, first_start=first_start))
        sys.stdout.flush()
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl+C it handled; stopping is the normal way out
    finally:
        server.stop()
    typer.echo("Entryway stopped.")


@app.command()
def env(
    data_dir: DataDir,
    tenant: Annotated[
        str | None, typer.Option(help="Tenant id or domain (default: the demo tenant).")
    ] = None,
    app_ref: Annotated[str | None, typer.Option("--app", help="Client id or app name.")] = None,
    org: Annotated[str | None, typer.Option(help="Organization name.")] = None,
) -> None:
    """Print the environment exports for this instance (client secrets are never stored, so never printed)."""
    from entryway.cli.banner import exports, managed_identity_exports
    from entryway.config.seed import DEMO_APP, DEMO_ORG, demo_tenant_id

    with admin(data_dir, write=False) as a:
        ref = tenant or demo_tenant_id(a.runtime)
        if ref is None:
            raise fail("no demo tenant here: pass --tenant")
        t = a.directory.find_tenant(ref)
        application = a.directory.find_application(t, app_ref or DEMO_APP)
        org_name = org or (DEMO_ORG if a.orgs.find(DEMO_ORG) else None)
        for line in exports(a.runtime.settings, t.id, application.app_id, None, org_name):
            typer.echo(line)
        typer.echo("# AZURE_CLIENT_SECRET is shown only when it is created: `entryway app secret add`.")
        managed = managed_identity_exports(a.runtime.settings)
        if managed:
            typer.echo("# Managed identities on this host (in a shell without AZURE_CLIENT_ID):")
            for line in managed:
                typer.echo(line)


# --- tenants -------------------------------------------------------------------------------------


@tenant_app.command("create")
def tenant_create(
    data_dir: DataDir,
    domain: Annotated[
        list[str], typer.Option("--domain", help="Domain name (repeatable; the first is initial).")
    ],
    tenant_id: Annotated[str | None, typer.Option("--id", help="Tenant id (default: a new GUID).")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    token_lifetime: Annotated[int, typer.Option(help="Access token lifetime in seconds (600-86400).")] = 3600,
) -> None:
    """Create a tenant."""
    with admin(data_dir) as a:
        t = a.directory.create_tenant(
            domain, tenant_id=tenant_id, display_name=name, access_token_lifetime_seconds=token_lifetime
        )
        typer.echo(t.id)


@tenant_app.command("set")
def tenant_set(
    data_dir: DataDir,
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id or domain.")],
    mfa_default: Annotated[
        bool | None,
        typer.Option("--mfa-default/--no-mfa-default", help="Users without their own setting must do MFA."),
    ] = None,
    refresh_inactivity: Annotated[
        int | None,
        typer.Option(help="Seconds a refresh token may go unused (3600-31536000; default 90 days)."),
    ] = None,
    sign_in_frequency: Annotated[
        int | None,
        typer.Option(help="Seconds after which a user must sign in again (3600-31536000; 0: never)."),
    ] = None,
    token_lifetime: Annotated[
        int | None, typer.Option(help="Access token lifetime in seconds (600-86400).")
    ] = None,
) -> None:
    """Change a tenant's sign-in settings; prints them (with no option, just prints them)."""
    with admin(data_dir) as a:
        directory = a.directory
        t = directory.find_tenant(tenant)
        if mfa_default is not None:
            directory.set_mfa_required_default(t, mfa_default)
        if refresh_inactivity is not None:
            directory.set_refresh_token_inactivity(t, refresh_inactivity)
        if sign_in_frequency is not None:
            directory.set_sign_in_frequency(t, sign_in_frequency or None)
        if token_lifetime is not None:
            directory.set_token_lifetime(t, token_lifetime)
        typer.echo(f"mfa required by default    {'yes' if t.mfa_required_default else 'no'}")
        typer.echo(f"access token lifetime      {t.access_token_lifetime_seconds}")
        typer.echo(f"refresh token inactivity   {t.refresh_token_inactivity_seconds}")
        typer.echo(f"sign-in frequency          {t.sign_in_frequency_seconds or 'never'}")


@tenant_app.command("list")
def tenant_list(data_dir: DataDir) -> None:
    """List tenants: id, domains, display name."""
    with admin(data_dir, write=False) as a:
        directory = a.directory
        for t in directory.list_tenants():
            typer.echo(f"{t.id}\t{','.join(directory.domains_of(t))}\t{t.display_name}")


# --- apps ----------------------------------------------------------------------------------------

TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant id or domain.")]
AppOpt = Annotated[str, typer.Option("--app", help="Client id or app name.")]


@apps_app.command("create")
def app_create(
    data_dir: DataDir,
    tenant: TenantOpt,
    name: Annotated[str, typer.Option(help="Display name.")],
    client_id: Annotated[str | None, typer.Option(help="Client id (default: a new GUID).")] = None,
    public_client: Annotated[
        bool, typer.Option(help="Allow public client flows (device code, ROPC) without a client credential.")
    ] = False,
    redirect_uri: Annotated[
        list[str] | None, typer.Option("--redirect-uri", help="Redirect URI (repeatable).")
    ] = None,
    identifier_uri: Annotated[
        list[str] | None,
        typer.Option("--identifier-uri", help="Application ID URI, e.g. api://my-api (repeatable)."),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope", help="Delegated scope the app exposes as an API, e.g. access_as_user (repeatable)."
        ),
    ] = None,
    with_secret: Annotated[
        bool | None,
        typer.Option(help="Also mint a client secret and print it once (default: unless --public-client)."),
    ] = None,
) -> None:
    """Register an application (and its service principal) in a tenant."""
    with admin(data_dir) as a:
        directory = a.directory
        application, sp = directory.create_application(
            directory.find_tenant(tenant),
            name,
            app_id=client_id,
            identifier_uris=identifier_uri or [],
            public_client=public_client,
            redirect_uris=redirect_uri or [],
            scopes=scope or [],
        )
        typer.echo(f"client id             {application.app_id}")
        typer.echo(f"service principal id  {sp.object_id}")
        if with_secret if with_secret is not None else not public_client:
            secret = directory.add_client_secret(application)
            typer.echo(
                f"client secret         {secret.value}  (shown once; expires {secret.expires_at:%Y-%m-%d})"
            )


@apps_app.command("update")
def app_update(
    data_dir: DataDir,
    tenant: TenantOpt,
    app_ref: AppOpt,
    public_client: Annotated[
        bool | None, typer.Option("--public-client/--no-public-client", help="Allow public client flows.")
    ] = None,
    redirect_uri: Annotated[
        list[str] | None,
        typer.Option("--redirect-uri", help="Redirect URI (repeatable); replaces the app's redirect URIs."),
    ] = None,
    clear_redirect_uris: Annotated[bool, typer.Option(help="Remove every redirect URI.")] = False,
) -> None:
    """Change whether an app allows public client flows, and its redirect URIs; prints them."""
    if clear_redirect_uris and redirect_uri:
        raise fail("give --redirect-uri or --clear-redirect-uris, not both")
    with admin(data_dir) as a:
        directory = a.directory
        application = directory.find_application(directory.find_tenant(tenant), app_ref)
        if public_client is not None:
            directory.set_public_client(application, public_client)
        if redirect_uri or clear_redirect_uris:
            directory.set_redirect_uris(application, redirect_uri or [])
        typer.echo(f"public client  {'yes' if application.public_client else 'no'}")
        for uri in application.redirect_uris:
            typer.echo(f"redirect uri   {uri}")


@apps_app.command("consent")
def app_consent(
    data_dir: DataDir,
    tenant: TenantOpt,
    app_ref: AppOpt,
    resource: Annotated[
        str,
        typer.Option(help="Client id, name or identifier URI of the resource (e.g. 'Azure DevOps')."),
    ],
    scope: Annotated[list[str], typer.Option("--scope", help="Delegated permission (repeatable).")],
) -> None:
    """Admin consent: the app may ask these delegated permissions for any user of the tenant, without a
    consent prompt. Prints the app's tenant-wide consents."""
    with admin(data_dir) as a:
        directory = a.directory
        t = directory.find_tenant(tenant)
        client = directory.find_enterprise_app(t, app_ref)
        directory.grant_admin_consent(t, client, directory.find_enterprise_app(t, resource), scope)
        for resource_app_id, scopes in directory.list_admin_consents(t, client):
            typer.echo(f"{resource_app_id}\t{' '.join(scopes)}")


@apps_app.command("list")
def app_list(data_dir: DataDir, tenant: TenantOpt) -> None:
    """List the app registrations of a tenant."""
    with admin(data_dir, write=False) as a:
        directory = a.directory
        for application in directory.list_applications(directory.find_tenant(tenant)):
            typer.echo(f"{application.app_id}\t{application.display_name}")


@apps_app.command("delete")
def app_delete(data_dir: DataDir, tenant: TenantOpt, app_ref: AppOpt) -> None:
    """Delete an app registration, its secrets and its service principals."""
    with admin(data_dir) as a:
        directory = a.directory
        directory.delete_application(directory.find_application(directory.find_tenant(tenant), app_ref))


@secret_app.command("add")
def secret_add(
    data_dir: DataDir,
    tenant: TenantOpt,
    app_ref: AppOpt,
    days: Annotated[int, typer.Option(min=1, max=730, help="Days until it expires.")] = 180,
    name: Annotated[str, typer.Option(help="Description.")] = "",
) -> None:
    """Mint a client secret; it is printed this once and stored only as a digest."""
    with admin(data_dir) as a:
        directory = a.directory
        application = directory.find_application(directory.find_tenant(tenant), app_ref)
        secret = directory.add_client_secret(
            application, expires_at=a.runtime.clock.now() + timedelta(days=days), display_name=name
        )
        typer.echo(f"key id   {secret.key_id}")
        typer.echo(f"secret   {secret.value}")
        typer.echo(f"expires  {secret.expires_at.isoformat()}")


@secret_app.command("list")
def secret_list(data_dir: DataDir, tenant: TenantOpt, app_ref: AppOpt) -> None:
    """List an app's secrets: key id, hint, expiry (never the value)."""
    with admin(data_dir, write=False) as a:
        directory = a.directory
        application = directory.find_application(directory.find_tenant(tenant), app_ref)
        for s in directory.list_client_secrets(application):
            typer.echo(f"{s.key_id}\t{s.hint}***\t{s.expires_at.isoformat()}\t{s.display_name}")


@secret_app.command("remove")
def secret_remove(
    data_dir: DataDir,
    tenant: TenantOpt,
    app_ref: AppOpt,
    key_id: Annotated[str, typer.Option(help="Key id.")],
) -> None:
    """Remove a client secret; it stops working at once."""
    with admin(data_dir) as a:
        directory = a.directory
        directory.remove_client_secret(
            directory.find_application(directory.find_tenant(tenant), app_ref), key_id
        )


# --- certificates --------------------------------------------------------------------------------


@cert_app.command("add")
def cert_add(
    data_dir: DataDir,
    tenant: TenantOpt,
    app_ref: AppOpt,
    file: Annotated[
        Path,
        typer.Option("--file", help="The public certificate, PEM or DER (.pem, .cer, .crt); no private key."),
    ],
    name: Annotated[str, typer.Option(help="Description (default: the certificate's subject).")] = "",
    end_date: Annotated[
        str | None,
        typer.Option(help="Stop accepting it on this date (ISO 8601), before the certificate expires."),
    ] = None,
) -> None:
    """Add a public certificate: client assertions signed with its private key authenticate the app."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from exc
    end = _parse_date(end_date, "--end-date") if end_date is not None else None
    with admin(data_dir) as a:
        directory = a.directory
        application = directory.find_application(directory.find_tenant(tenant), app_ref)
        cert = directory.add_certificate(application, data, display_name=name, end_date=end)
        typer.echo(f"key id      {cert.key_id}")
        typer.echo(f"thumbprint  {cert.thumbprint_sha1}")
        typer.echo(f"sha256      {cert.thumbprint_sha256}")
        typer.echo(f"valid       {cert.not_before.isoformat()} to {cert.not_after.isoformat()}")


def _parse_date(value: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise fail(f"{option}: expected an ISO 8601 date, like 2027-06-30") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@cert_app.command("list")
def cert_list(data_dir: DataDir, tenant: TenantOpt, app_ref: AppOpt) -> None:
    """List an app's certificates: key id, SHA-1 thumbprint, end, description."""
    with admin(data_dir, write=False) as a:
        directory = a.directory
        application = directory.find_application(directory.find_tenant(tenant), app_ref)
        for c in directory.list_certificates(application):
            typer.echo(
                f"{c.key_id}\t{c.thumbprint_sha1}\t{as_utc(c.not_after).isoformat()}\t{c.display_name}"
            )


@cert_app.command("remove")
def cert_remove(
    data_dir: DataDir,
    tenant: TenantOpt,
    app_ref: AppOpt,
    cert: Annotated[str, typer.Option("--cert", help="Key id, or SHA-1 or SHA-256 thumbprint.")],
) -> None:
    """Remove a certificate; assertions signed with its key stop working at once."""
    with admin(data_dir) as a:
        directory = a.directory
        directory.remove_certificate(directory.find_application(directory.find_tenant(tenant), app_ref), cert)


# --- federated identity credentials --------------------------------------------------------------

FicAppOpt = Annotated[str | None, typer.Option("--app", help="Client id or name of the app registration.")]
FicMiOpt = Annotated[
    str | None,
    typer.Option(
        "--managed-identity", help="Name, client id or resource id of a user-assigned managed identity."
    ),
]


def _fic_owner(
    a: Admin, tenant: str, app_ref: str | None, managed_identity: str | None
) -> ApplicationRow | ManagedIdentityRow:
    if (app_ref is None) == (managed_identity is None):
        raise fail("give exactly one of --app or --managed-identity")
    t = a.directory.find_tenant(tenant)
    if app_ref is not None:
        return a.directory.find_application(t, app_ref)
    assert managed_identity is not None
    return a.directory.find_managed_identity(t, managed_identity)


@fic_app.command("add")
def fic_add(
    data_dir: DataDir,
    tenant: TenantOpt,
    name: Annotated[str, typer.Option(help="Name, unique for the owner (3-120 letters, digits, - and _).")],
    issuer: Annotated[str, typer.Option(help="The external issuer, as its tokens' 'iss' claim writes it.")],
    app_ref: FicAppOpt = None,
    managed_identity: FicMiOpt = None,
    subject: Annotated[str | None, typer.Option(help="The tokens' 'sub' claim, matched exactly.")] = None,
    claims_matching_expression: Annotated[
        str | None,
        typer.Option(
            help="Instead of --subject (apps only), e.g. \"claims['sub'] matches 'repo:org/app:*'\"."
        ),
    ] = None,
    audience: Annotated[str, typer.Option(help="The tokens' 'aud' claim.")] = "api://AzureADTokenExchange",
    description: Annotated[str, typer.Option(help="Description.")] = "",
) -> None:
    """Trust an external issuer's tokens for a subject: they authenticate the app or managed identity."""
    with admin(data_dir) as a:
        fic = a.directory.add_federated_credential(
            _fic_owner(a, tenant, app_ref, managed_identity),
            name=name,
            issuer=issuer,
            subject=subject,
            claims_matching_expression=claims_matching_expression,
            audiences=[audience],
            description=description,
        )
        typer.echo(f"id        {fic.id}")
        typer.echo(f"owner     {fic.owner_app_id}")


@fic_app.command("list")
def fic_list(
    data_dir: DataDir, tenant: TenantOpt, app_ref: FicAppOpt = None, managed_identity: FicMiOpt = None
) -> None:
    """List federated credentials: name, issuer, subject (or expression), audience."""
    with admin(data_dir, write=False) as a:
        for f in a.directory.list_federated_credentials(_fic_owner(a, tenant, app_ref, managed_identity)):
            match = f.subject if f.subject is not None else f"expression: {f.claims_matching_expression}"
            typer.echo(f"{f.name}\t{f.issuer}\t{match}\t{','.join(f.audiences)}")


@fic_app.command("remove")
def fic_remove(
    data_dir: DataDir,
    tenant: TenantOpt,
    name: Annotated[str, typer.Option(help="Name of the federated credential.")],
    app_ref: FicAppOpt = None,
    managed_identity: FicMiOpt = None,
) -> None:
    """Remove a federated credential; its issuer's tokens stop working at once."""
    with admin(data_dir) as a:
        a.directory.remove_federated_credential(_fic_owner(a, tenant, app_ref, managed_identity), name)


# --- managed identities --------------------------------------------------------------------------

MiNameOpt = Annotated[str, typer.Option("--name", help="Name, client id, object id or resource id.")]
MiTenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", help="Tenant id or domain (default: the one tenant with that identity)."),
]


def _show_mi(mi: ManagedIdentityRow) -> None:
    typer.echo(f"client id    {mi.app_id}")
    typer.echo(f"object id    {mi.object_id}")
    typer.echo(f"resource id  {mi.resource_id}")
    typer.echo(f"kind         {mi.kind}")
    typer.echo(f"on host      {'yes' if mi.on_host else 'no'}")


def _find_mi(a: Admin, tenant: str | None, ref: str) -> ManagedIdentityRow:
    if tenant is not None:
        return a.directory.find_managed_identity(a.directory.find_tenant(tenant), ref)
    found = [
        m for t in a.directory.list_tenants() if (m := a.directory.find_managed_identity_or_none(t, ref))
    ]
    if len(found) != 1:
        where = "no tenant" if not found else f"{len(found)} tenants"
        raise fail(f"managed identity '{ref}' is in {where}; name the tenant with --tenant")
    return found[0]


@mi_app.command("create")
def mi_create(
    data_dir: DataDir,
    tenant: TenantOpt,
    name: Annotated[str, typer.Option(help="Name (3-128 letters, digits, - and _).")],
    kind: Annotated[str, typer.Option(help="user (user-assigned) or system (a host resource's own).")],
    resource_id: Annotated[
        str | None,
        typer.Option(help="Azure resource id (default: one in resource group 'entryway' of the tenant)."),
    ] = None,
    on_host: Annotated[
        bool, typer.Option(help="This host carries it: its token endpoints issue for it.")
    ] = False,
) -> None:
    """Create a managed identity with its service principal."""
    with admin(data_dir) as a:
        directory = a.directory
        mi = directory.create_managed_identity(
            directory.find_tenant(tenant), name, kind=kind, resource_id=resource_id, on_host=on_host
        )
        _show_mi(mi)


@mi_app.command("list")
def mi_list(
    data_dir: DataDir,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Tenant id or domain (default: all).")
    ] = None,
) -> None:
    """List managed identities: client id, object id, kind, on host, name, resource id."""
    with admin(data_dir, write=False) as a:
        directory = a.directory
        t = directory.find_tenant(tenant) if tenant is not None else None
        for mi in directory.list_managed_identities(t):
            host = "on-host" if mi.on_host else "-"
            typer.echo(f"{mi.app_id}\t{mi.object_id}\t{mi.kind}\t{host}\t{mi.name}\t{mi.resource_id}")


@mi_app.command("host")
def mi_host(
    data_dir: DataDir,
    name: MiNameOpt,
    on: Annotated[bool, typer.Option("--on/--off", help="Whether this host carries the identity.")],
    tenant: MiTenantOpt = None,
) -> None:
    """Put a managed identity on this host (its IMDS and App Service endpoints issue tokens for it) or off."""
    with admin(data_dir) as a:
        mi = _find_mi(a, tenant, name)
        a.directory.set_on_host(mi, on)
        _show_mi(mi)


@mi_app.command("delete")
def mi_delete(data_dir: DataDir, name: MiNameOpt, tenant: MiTenantOpt = None) -> None:
    """Delete a managed identity, its service principal and its federated credentials."""
    with admin(data_dir) as a:
        a.directory.delete_managed_identity(_find_mi(a, tenant, name))


# --- users ---------------------------------------------------------------------------------------


@user_app.command("create")
def user_create(
    data_dir: DataDir,
    tenant: TenantOpt,
    upn: Annotated[str, typer.Option(help="User principal name, in one of the tenant's domains.")],
    display_name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, envvar="ENTRYWAY_USER_PASSWORD"),
    ] = "",
    mfa: Annotated[
        bool | None,
        typer.Option("--mfa/--no-mfa", help="Must do MFA at sign-in (default: the tenant's setting)."),
    ] = None,
) -> None:
    """Create a user with a password (stored as an argon2id hash)."""
    with admin(data_dir) as a:
        directory = a.directory
        user = directory.create_user(
            directory.find_tenant(tenant), upn, password, display_name, mfa_required=mfa
        )
        typer.echo(user.object_id)


@user_app.command("list")
def user_list(data_dir: DataDir, tenant: TenantOpt) -> None:
    """List the users of a tenant."""
    with admin(data_dir, write=False) as a:
        directory = a.directory
        for u in directory.list_users(directory.find_tenant(tenant)):
            typer.echo(f"{u.object_id}\t{u.user_principal_name}\t{u.display_name}")


UpnOpt = Annotated[str, typer.Option("--upn", help="User principal name.")]


def _show_mfa(a: Admin, upn: str) -> None:
    """UPN, the user's setting (required, off, default), whether MFA applies, the authenticator's enrollment."""
    user = a.directory.get_user(upn)
    tenant = a.directory.find_tenant(user.tenant_id)
    setting = {None: "default", True: "required", False: "off"}[user.mfa_required]
    applies = "mfa" if a.directory.mfa_required_for(tenant, user) else "no-mfa"
    enrolled = f"enrolled {user.totp_enrolled_at:%Y-%m-%d}" if user.totp_enrolled_at else "not-enrolled"
    typer.echo(f"{user.user_principal_name}\t{setting}\t{applies}\t{enrolled}")


@mfa_app.command("require")
def mfa_require(data_dir: DataDir, upn: UpnOpt) -> None:
    """The user must do MFA at every sign-in, whatever the tenant's default."""
    with admin(data_dir) as a:
        a.directory.set_user_mfa(a.directory.get_user(upn), True)
        _show_mfa(a, upn)


@mfa_app.command("default")
def mfa_default(data_dir: DataDir, upn: UpnOpt) -> None:
    """The tenant's default decides whether the user must do MFA."""
    with admin(data_dir) as a:
        a.directory.set_user_mfa(a.directory.get_user(upn), None)
        _show_mfa(a, upn)


@mfa_app.command("off")
def mfa_off(data_dir: DataDir, upn: UpnOpt) -> None:
    """The user need not do MFA, whatever the tenant's default."""
    with admin(data_dir) as a:
        a.directory.set_user_mfa(a.directory.get_user(upn), False)
        _show_mfa(a, upn)


@mfa_app.command("reset")
def mfa_reset(data_dir: DataDir, upn: UpnOpt) -> None:
    """Forget the user's authenticator (a lost phone): the next sign-in that needs MFA enrolls a new one."""
    with admin(data_dir) as a:
        a.directory.reset_user_mfa(a.directory.get_user(upn))
        _show_mfa(a, upn)


@mfa_app.command("show")
def mfa_show(data_dir: DataDir, upn: UpnOpt) -> None:
    """Print the user's MFA setting, whether MFA applies, and whether an authenticator is enrolled."""
    with admin(data_dir, write=False) as a:
        _show_mfa(a, upn)


# Account administration. Each change is a critical event that resource services evaluating continuously (the
# DevOps service) act on within seconds (docs/continuous-access-evaluation.md).


def _show_user(a: Admin, upn: str) -> None:
    """Object id, UPN, enabled or disabled, display name."""
    user = a.directory.get_user(upn)
    state = "enabled" if user.account_enabled else "disabled"
    typer.echo(f"{user.object_id}\t{user.user_principal_name}\t{state}\t{user.display_name}")


@user_app.command("show")
def user_show(data_dir: DataDir, upn: UpnOpt) -> None:
    """Print a user: object id, UPN, enabled or disabled, display name."""
    with admin(data_dir, write=False) as a:
        _show_user(a, upn)


@user_app.command("disable")
def user_disable(data_dir: DataDir, upn: UpnOpt) -> None:
    """Block sign-in (accountEnabled false): no new tokens, and continuous access evaluation refuses the
    user's tokens and PATs at the DevOps service."""
    with admin(data_dir) as a:
        a.directory.set_account_enabled(a.directory.get_user(upn), False)
        _show_user(a, upn)


@user_app.command("enable")
def user_enable(data_dir: DataDir, upn: UpnOpt) -> None:
    """Allow sign-in again. Tokens issued before the user was disabled stay refused."""
    with admin(data_dir) as a:
        a.directory.set_account_enabled(a.directory.get_user(upn), True)
        _show_user(a, upn)


@user_app.command("delete")
def user_delete(
    data_dir: DataDir,
    upn: UpnOpt,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a user (final: no 30-day restore), their sessions, refresh tokens, memberships and roles."""
    with admin(data_dir) as a:
        user = a.directory.get_user(upn)
        if not yes and not typer.confirm(f"Delete {user.user_principal_name}?"):
            raise fail("not deleted")
        a.directory.delete_user(user)
        typer.echo(f"{user.object_id}\tdeleted")


@user_app.command("password")
def user_password(
    data_dir: DataDir,
    upn: UpnOpt,
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, envvar="ENTRYWAY_USER_PASSWORD"),
    ] = "",
) -> None:
    """Reset a user's password: every refresh token and browser session of the user is revoked."""
    with admin(data_dir) as a:
        revoked = a.directory.set_password(a.directory.get_user(upn), password)
        _show_user(a, upn)
        typer.echo(f"refresh token families revoked\t{revoked}")


@user_app.command("revoke-sessions")
def user_revoke_sessions(data_dir: DataDir, upn: UpnOpt) -> None:
    """Sign the user out everywhere (Entra's revokeSignInSessions): refresh tokens and browser sessions."""
    with admin(data_dir) as a:
        revoked = a.directory.revoke_sessions(a.directory.get_user(upn))
        _show_user(a, upn)
        typer.echo(f"refresh token families revoked\t{revoked}")


# --- organizations -------------------------------------------------------------------------------

OrgOpt = Annotated[str, typer.Option("--org", help="Organization name.")]


@org_app.command("create")
def org_create(
    data_dir: DataDir, name: Annotated[str, typer.Option(help="Organization name.")], tenant: TenantOpt
) -> None:
    """Create an organization connected to a tenant."""
    with admin(data_dir) as a:
        org = a.orgs.create(name, a.directory.find_tenant(tenant).id)
        typer.echo(f"{org.id}\t{a.runtime.settings.devops_origin}/{org.name}")


@org_app.command("list")
def org_list(data_dir: DataDir) -> None:
    """List organizations: id, name, tenant."""
    with admin(data_dir, write=False) as a:
        for org in a.orgs.list_orgs():
            typer.echo(f"{org.id}\t{org.name}\t{org.tenant_id}")


def _on_off(value: str, option: str) -> bool:
    choices = {"on": True, "true": True, "off": False, "false": False}
    if value.lower() not in choices:
        raise fail(f"{option} must be on or off, not '{value}'")
    return choices[value.lower()]


def _show_org_policy(ip_validation: bool) -> None:
    typer.echo(f"ip conditional access validation\t{'on' if ip_validation else 'off'}")


@org_policy_app.command("set")
def org_policy_set(
    data_dir: DataDir,
    org: OrgOpt,
    ip_ca_validation: Annotated[
        str,
        typer.Option(
            "--ip-ca-validation",
            help="on: PATs and Entra tokens used from outside the tenant's allowed locations get VS403463.",
        ),
    ],
) -> None:
    """Set "IP Conditional Access policy validation on non-interactive flows"; prints the policies."""
    from entryway.devops.orgs.policy import set_ip_conditional_access_validation

    enabled = _on_off(ip_ca_validation, "--ip-ca-validation")
    with admin_runtime(data_dir) as rt, rt.db.unit_of_work() as session:
        changed, _ = set_ip_conditional_access_validation(session, rt.clock, org, enabled, _cli_actor())
        _show_org_policy(changed.ip_conditional_access_validation)


@org_policy_app.command("show")
def org_policy_show(data_dir: DataDir, org: OrgOpt) -> None:
    """Print an organization's security policies."""
    with admin(data_dir, write=False) as a:
        _show_org_policy(a.orgs.get(org).ip_conditional_access_validation)


@member_app.command("add")
def member_add(
    data_dir: DataDir,
    org: OrgOpt,
    app_ref: Annotated[
        str | None, typer.Option("--app", help="Client id or name of an app in the org's tenant.")
    ] = None,
    user: Annotated[str | None, typer.Option(help="UPN of a user in the org's tenant.")] = None,
    managed_identity: Annotated[
        str | None, typer.Option("--managed-identity", help="Name or client id of a managed identity.")
    ] = None,
    access: Annotated[str, typer.Option(help="stakeholder, basic or basicPlusTest.")] = "basic",
    admin_flag: Annotated[
        bool | None,
        typer.Option(
            "--admin/--no-admin",
            help="Make it an organization administrator (Project Collection Administrators), or not.",
        ),
    ] = None,
) -> None:
    """Add a service principal, a user or a managed identity to an organization (or change its access)."""
    from entryway.config.members import add_member
    from entryway.devops.orgs.service import AccessLevel

    if sum(ref is not None for ref in (app_ref, user, managed_identity)) != 1:
        raise fail("give exactly one of --app, --user or --managed-identity")
    with admin(data_dir) as a:
        m, _changed = add_member(
            a.directory,
            a.orgs,
            a.orgs.get(org),
            app_ref=app_ref,
            upn=user,
            managed_identity=managed_identity,
            access=AccessLevel.parse(access),
            organization_admin=admin_flag,
        )
        typer.echo(f"{m.object_id}\t{m.kind}\t{m.access_level}" + ("\tadmin" if m.organization_admin else ""))


@member_app.command("remove")
def member_remove(
    data_dir: DataDir, org: OrgOpt, object_id: Annotated[str, typer.Option(help="Object id.")]
) -> None:
    """Remove a member from an organization."""
    with admin(data_dir) as a:
        a.orgs.remove_member(a.orgs.get(org), object_id)


@member_app.command("list")
def member_list(data_dir: DataDir, org: OrgOpt) -> None:
    """List an organization's members: object id, kind, access level, name."""
    with admin(data_dir, write=False) as a:
        for m in a.orgs.list_members(a.orgs.get(org)):
            admin_mark = "\tadmin" if m.organization_admin else ""
            typer.echo(
                f"{m.object_id}\t{m.kind}\t{m.access_level}\t{m.principal_name}\t{m.display_name}{admin_mark}"
            )


# --- projects and repositories ------------------------------------------------------------------


ProjectOpt = Annotated[str, typer.Option("--project", help="Project name or id.")]
NameOpt = Annotated[str, typer.Option("--name", help="Name.")]


def _cli_actor() -> Actor:
    from entryway.devops.audit.recorder import Actor

    return Actor.local("cli")


@project_app.command("create")
def project_create(
    data_dir: DataDir,
    org: OrgOpt,
    name: NameOpt,
    description: Annotated[str, typer.Option(help="Description.")] = "",
) -> None:
    """Create a project (private, Git)."""
    with admin(data_dir) as a:
        project = a.projects.create(a.orgs.get(org), name, _cli_actor(), description=description)
        typer.echo(f"{project.id}\t{project.name}")


@project_app.command("list")
def project_list(data_dir: DataDir, org: OrgOpt) -> None:
    """List an organization's projects: id, name, description."""
    with admin(data_dir, write=False) as a:
        for project in a.projects.list_projects(a.orgs.get(org)):
            typer.echo(f"{project.id}\t{project.name}\t{project.description}")


@project_app.command("delete")
def project_delete(data_dir: DataDir, org: OrgOpt, name: NameOpt) -> None:
    """Delete a project, its repositories (from disk too) and its roles."""
    from entryway.devops.git.storage import delete_bare_repository

    with admin(data_dir) as a:
        repo_ids = a.projects.delete(a.orgs.get(org), name, _cli_actor())
        git_root = str(a.runtime.settings.data_dir / "git")
    for repo_id in repo_ids:  # once the deletion has committed
        delete_bare_repository(git_root, repo_id)


@project_member_app.command("add")
def project_member_add(
    data_dir: DataDir,
    org: OrgOpt,
    project: ProjectOpt,
    role: Annotated[str, typer.Option(help="readers, contributors or project_administrators.")],
    app_ref: Annotated[str | None, typer.Option("--app", help="Client id or name of an app.")] = None,
    user: Annotated[str | None, typer.Option(help="UPN of a user.")] = None,
    managed_identity: Annotated[
        str | None, typer.Option("--managed-identity", help="Name or client id of a managed identity.")
    ] = None,
) -> None:
    """Give an organization member a role in a project (replacing the role it had)."""
    from entryway.config.members import find_member
    from entryway.devops.projects.permissions import ProjectRole

    if sum(ref is not None for ref in (app_ref, user, managed_identity)) != 1:
        raise fail("give exactly one of --app, --user or --managed-identity")
    try:
        parsed = ProjectRole.parse(role)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    with admin(data_dir) as a:
        organization = a.orgs.get(org)
        member = find_member(
            a.directory, a.orgs, organization, app_ref=app_ref, upn=user, managed_identity=managed_identity
        )
        service = a.projects
        service.set_role(organization, service.get(organization, project), member, parsed, _cli_actor())
        typer.echo(f"{member.object_id}\t{member.principal_name}\t{parsed.value}")


@project_member_app.command("remove")
def project_member_remove(
    data_dir: DataDir,
    org: OrgOpt,
    project: ProjectOpt,
    app_ref: Annotated[str | None, typer.Option("--app", help="Client id or name of an app.")] = None,
    user: Annotated[str | None, typer.Option(help="UPN of a user.")] = None,
    managed_identity: Annotated[
        str | None, typer.Option("--managed-identity", help="Name or client id of a managed identity.")
    ] = None,
) -> None:
    """Take a member's role in a project away."""
    from entryway.config.members import find_member

    if sum(ref is not None for ref in (app_ref, user, managed_identity)) != 1:
        raise fail("give exactly one of --app, --user or --managed-identity")
    with admin(data_dir) as a:
        organization = a.orgs.get(org)
        member = find_member(
            a.directory, a.orgs, organization, app_ref=app_ref, upn=user, managed_identity=managed_identity
        )
        service = a.projects
        service.remove_role(organization, service.get(organization, project), member, _cli_actor())


@project_member_app.command("list")
def project_member_list(data_dir: DataDir, org: OrgOpt, project: ProjectOpt) -> None:
    """List a project's members: object id, role, name."""
    with admin(data_dir, write=False) as a:
        organization = a.orgs.get(org)
        service = a.projects
        for pm in service.list_roles(service.get(organization, project)):
            typer.echo(f"{pm.member.object_id}\t{pm.role.value}\t{pm.member.principal_name}")


@repo_app.command("create")
def repo_create(data_dir: DataDir, org: OrgOpt, project: ProjectOpt, name: NameOpt) -> None:
    """Create a Git repository (and its bare repository on disk); prints its id and clone URL."""
    with admin(data_dir) as a:
        organization = a.orgs.get(org)
        service = a.projects
        repo = service.create_repository(organization, service.get(organization, project), name, _cli_actor())
        from urllib.parse import quote

        origin = a.runtime.settings.devops_origin
        typer.echo(
            f"{repo.id}\t{origin}/{quote(organization.name)}/{quote(repo.project.name)}/_git/{quote(repo.name)}"
        )


@repo_app.command("list")
def repo_list(data_dir: DataDir, org: OrgOpt, project: ProjectOpt) -> None:
    """List a project's repositories: id, name."""
    with admin(data_dir, write=False) as a:
        organization = a.orgs.get(org)
        service = a.projects
        for repo in service.list_repositories(organization, project=service.get(organization, project)):
            typer.echo(f"{repo.id}\t{repo.name}")


# --- keys ----------------------------------------------------------------------------------------


PurposeOpt = Annotated[
    str,
    typer.Option(
        "--purpose",
        help="Whose keys: 'identity' (the identity platform's tokens) or 'devops-oidc' (the DevOps "
        "service's pipeline OIDC tokens).",
    ),
]


def _key_service(rt: Runtime, purpose: str) -> KeyService:
    from entryway.keys.keyring import DEVOPS_OIDC, IDENTITY

    if purpose == IDENTITY:
        return rt.keys
    if purpose == DEVOPS_OIDC:
        return rt.devops_keys
    raise fail(f"unknown purpose '{purpose}' (identity or devops-oidc)")


@keys_app.command("rotate")
def keys_rotate(
    data_dir: DataDir,
    expect: Annotated[
        str | None, typer.Option(help="Rotate only if this kid is still the active key.")
    ] = None,
    purpose: PurposeOpt = "identity",
) -> None:
    """Make a new signing key active; the old one stays published until its tokens have expired."""
    from entryway.keys.keyring import RotationConflict

    with admin_runtime(data_dir) as rt:
        try:
            kid = _key_service(rt, purpose).rotate(expect)
        except RotationConflict as exc:
            raise fail(f"the active key is now {exc}; nothing rotated") from exc
        typer.echo(kid)


@keys_app.command("list")
def keys_list(data_dir: DataDir, purpose: PurposeOpt = "identity") -> None:
    """List signing keys: kid, state, created, published until."""
    with admin_runtime(data_dir) as rt:
        for k in _key_service(rt, purpose).list_keys():
            until = k.publish_until.isoformat() if k.publish_until else "-"
            typer.echo(f"{k.kid}\t{k.state}\t{k.created_at.isoformat()}\t{until}")


import entryway.cli.audit  # noqa: E402, F401  (registers `entryway audit` on `app`)
from entryway.cli import conditional_access as _conditional_access  # noqa: E402, F401  (registers `entryway ca`)
from entryway.cli import connections as _connections  # noqa: E402, F401  (registers `entryway serviceconnection`)
from entryway.cli import git_setup as _git_setup  # noqa: E402, F401  (registers `entryway git setup`)
from entryway.cli import groups as _groups  # noqa: E402, F401  (registers `entryway group`, `entryway user role`)
from entryway.cli import leaks as _leaks  # noqa: E402, F401  (registers `entryway leaks`)
from entryway.cli import login as _login  # noqa: E402, F401  (registers `entryway login`, `token`, `logout`, `account`)
from entryway.cli import notifications as _notifications  # noqa: E402, F401  (registers `entryway notifications`)
from entryway.cli import pat_policies as _pat_policies  # noqa: E402, F401  (registers `entryway pats policy`)
from entryway.cli import pats  # noqa: E402, F401  (registers `entryway pats` on `app`)
from entryway.cli import pipelines as _pipelines  # noqa: E402, F401  (registers `entryway pipelines`)
from entryway.cli import signins as _signins  # noqa: E402, F401  (registers `entryway signins`)


def main() -> None:
    app()
