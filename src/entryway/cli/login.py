"""`entryway login`, `entryway token`, `entryway logout`, `entryway account`: Entra sign-in on the user's
machine, for Entryway and for Microsoft's identity platform alike (docs/client-tools.md)."""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from entryway.cli.main import app

account_app = typer.Typer(no_args_is_help=True, help="Accounts signed in with `entryway login`.")
app.add_typer(account_app, name="account")

Authority = Annotated[
    str | None,
    typer.Option(
        "--authority", help="The authority host, e.g. https://localhost:8443 (env ENTRYWAY_AUTHORITY)."
    ),
]
Tenant = Annotated[
    str | None, typer.Option("--tenant", "-t", help="Tenant ID or domain (env ENTRYWAY_TENANT).")
]


def _client(authority: str | None, tenant: str | None) -> Any:
    from entryway.client import ClientSettings, TokenClient

    return TokenClient(ClientSettings.from_env(authority_host=authority, tenant=tenant))


def _exit_with(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


@app.command("login")
def login(
    authority: Authority = None,
    tenant: Tenant = None,
    device_code: Annotated[
        bool,
        typer.Option(
            "--device-code", "--use-device-code", help="Sign in on another device: prints a code to enter."
        ),
    ] = False,
    claims_challenge: Annotated[
        str | None,
        typer.Option(
            "--claims-challenge",
            help="A resource's claims challenge (base64) that `entryway token` says needs a fresh sign-in.",
        ),
    ] = None,
    scope: Annotated[
        str | None,
        typer.Option(
            "--scope", help="Sign in for this scope (consent is asked for it); default Azure DevOps'."
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=1, help="Seconds to wait for the browser sign-in to finish."),
    ] = 300,
    service_principal: Annotated[
        bool,
        typer.Option("--service-principal", help="Sign in as an app: -u CLIENT_ID --secret S --tenant T."),
    ] = False,
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="The service principal's client ID.")
    ] = None,
    secret: Annotated[
        str | None, typer.Option("--secret", "-p", help="The service principal's client secret.")
    ] = None,
    certificate: Annotated[
        Path | None,
        typer.Option(
            "--certificate",
            help="The service principal's certificate: PEM with its private key, or PKCS#12 (.pfx).",
        ),
    ] = None,
    password_env: Annotated[
        str | None,
        typer.Option(
            "--password-env",
            help="The environment variable holding the certificate's password (read at every use).",
        ),
    ] = None,
    federated_token: Annotated[
        str | None,
        typer.Option(
            "--federated-token", help="A federated token (workload identity): TOKEN, or @FILE to re-read."
        ),
    ] = None,
    identity: Annotated[
        bool, typer.Option("--identity", help="Sign in with this machine's managed identity.")
    ] = False,
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="With --identity: a user-assigned identity's client ID.")
    ] = None,
    object_id: Annotated[
        str | None, typer.Option("--object-id", help="With --identity: a user-assigned identity's object ID.")
    ] = None,
    resource_id: Annotated[
        str | None,
        typer.Option("--resource-id", help="With --identity: a user-assigned identity's resource ID."),
    ] = None,
) -> None:
    """Sign in and cache the account and its tokens (a file only you can read): with the browser (the
    default), --device-code, --service-principal (secret, certificate or federated token) or --identity."""
    from entryway.client import DEVOPS_SCOPE, NeedsLogin, describe_error

    selectors = {
        name: value
        for name, value in (("client_id", client_id), ("object_id", object_id), ("resource_id", resource_id))
        if value
    }
    problem = _login_options_problem(
        service_principal=service_principal,
        identity=identity,
        device_code=device_code,
        username=username,
        tenant=tenant,
        credentials={"--secret": secret, "--certificate": certificate, "--federated-token": federated_token},
        password_env=password_env,
        selectors=selectors,
    )
    if problem is None and claims_challenge is not None and (identity or service_principal):
        problem = "--claims-challenge goes with a person's sign-in (the browser or --device-code)"
    if problem:
        raise _exit_with(problem)
    claims = _claims_option(claims_challenge)
    scopes = [scope.strip() if scope and scope.strip() else DEVOPS_SCOPE]
    try:
        client = _client(authority, tenant)
        if identity:
            selector, value = next(iter(selectors.items()), ("system", ""))
            token = client.login_managed_identity(scopes, selector=selector, identity=value)
            _print_json(
                {
                    "managedIdentity": value or "systemAssignedIdentity",
                    "tenantId": token.tenant_id,
                    "authority": client.settings.authority_host,
                }
            )
            return
        if service_principal:
            assert username
            assert tenant
            token = client.login_service_principal(
                username,
                tenant,
                secret,
                scopes,
                certificate=certificate,
                password_env=password_env,
                federated_token=federated_token,
            )
            _print_json(
                {
                    "servicePrincipal": username,
                    "tenantId": token.tenant_id,
                    "authority": client.settings.authority_host,
                }
            )
            return
    except NeedsLogin as exc:
        raise _exit_with(str(exc)) from exc
    if not device_code:
        _browser_login(client, tenant, timeout, claims, scopes)
        return
    msal_app = client.app()
    flow = msal_app.initiate_device_flow(scopes=scopes, claims_challenge=claims)
    if "user_code" not in flow:
        raise _exit_with(
            f"the identity platform refused to start the device code flow ({describe_error(flow)})"
        )
    # msal's own message ("To sign in, use a web browser to open ... and enter the code ..."), on stderr:
    # stdout carries only the account.
    typer.echo(flow["message"], err=True)
    sys.stderr.flush()
    result = msal_app.acquire_token_by_device_flow(flow)
    client.save()
    _print_signed_in(client, result)


def _claims_option(value: str | None) -> str | None:
    from entryway.client import decode_claims_challenge

    if value is None:
        return None
    try:
        return decode_claims_challenge(value)
    except ValueError as exc:
        raise _exit_with(f"--claims-challenge: {exc}") from exc


def _login_options_problem(
    *,
    service_principal: bool,
    identity: bool,
    device_code: bool,
    username: str | None,
    tenant: str | None,
    credentials: dict[str, Any],
    password_env: str | None,
    selectors: dict[str, str],
) -> str | None:
    """What is wrong with the combination of login options, if anything (checked before anything is read
    or written)."""
    given = [name for name, value in credentials.items() if value is not None]
    certificate = credentials.get("--certificate")
    alone = service_principal or device_code or username or given or password_env
    rules: list[tuple[bool, str]] = [
        (
            identity and bool(alone),
            "--identity goes alone (with at most one of --client-id, --object-id, --resource-id)",
        ),
        (identity and len(selectors) > 1, "give at most one of --client-id, --object-id, --resource-id"),
        (not identity and bool(selectors), "--client-id, --object-id and --resource-id go with --identity"),
        (
            not identity and not service_principal and bool(username or given or password_env),
            "-u, --secret, --certificate, --password-env and --federated-token go with --service-principal",
        ),
        (
            service_principal and device_code,
            "--device-code is for people; a service principal signs in with a credential",
        ),
        (
            service_principal and (not username or not tenant or len(given) != 1),
            "--service-principal needs -u CLIENT_ID, --tenant TENANT and one of --secret SECRET, "
            "--certificate FILE or --federated-token TOKEN|@FILE",
        ),
        (password_env is not None and "--certificate" not in given, "--password-env goes with --certificate"),
        (
            password_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", password_env),
            f"--password-env takes the name of an environment variable, not '{password_env}'",
        ),
        (
            password_env is not None and password_env not in os.environ,
            f"--password-env: the environment variable {password_env} is not set",
        ),
        (
            certificate is not None and not Path(certificate).is_file(),
            f"--certificate: no file {certificate}",
        ),
    ]
    return next((message for broken, message in rules if broken), None)


def _print_json(value: dict[str, Any]) -> None:
    typer.echo(json.dumps(value, indent=2))


def _browser_login(
    client: Any, tenant: str | None, timeout: float, claims: str | None, scopes: list[str]
) -> None:
    """`az login`'s default: the browser opens the sign-in page; msal's loopback listener takes the answer."""

    authorize = f"{client.settings.authority(tenant)}/oauth2/v2.0/authorize"

    def opening() -> None:
        typer.echo(
            f"A web browser has been opened at {authorize}. Please continue the login in the web browser. "
            "If no web browser is available or if the web browser fails to open, use device code flow with "
            "`entryway login --device-code`.",
            err=True,
        )

    def no_browser(url: str) -> None:
        typer.echo(f"No web browser could be opened; open this address on this machine: {url}", err=True)

    result = client.login_interactive(
        scopes,
        tenant=tenant,
        claims=claims,
        timeout=timeout,
        on_browser=opening,
        on_no_browser=no_browser,
    )
    _print_signed_in(client, result)


def _print_signed_in(client: Any, result: dict[str, Any]) -> None:
    from entryway.client import describe_error

    if "access_token" not in result:
        raise _exit_with(f"sign-in failed ({describe_error(result)}); run `entryway login` again")
    claims = result.get("id_token_claims") or {}
    typer.echo(
        json.dumps(
            {
                "user": claims.get("preferred_username", ""),
                "tenantId": claims.get("tid", ""),
                "authority": client.settings.authority_host,
            },
            indent=2,
        )
    )


@app.command("token")
def token(
    resource: Annotated[
        str | None, typer.Option("--resource", help="Resource (app ID URI or app ID).")
    ] = None,
    scope: Annotated[str | None, typer.Option("--scope", help="A scope, e.g. {resource}/.default.")] = None,
    authority: Authority = None,
    tenant: Tenant = None,
    query: Annotated[
        str | None, typer.Option("--query", help="One field of the output, e.g. accessToken.")
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="json or tsv.")] = "json",
    claims_challenge: Annotated[
        str | None,
        typer.Option(
            "--claims-challenge",
            help="The claims of a resource's challenge (base64, as in WWW-Authenticate): refreshes with them.",
        ),
    ] = None,
    min_remaining: Annotated[
        int,
        typer.Option(
            "--min-remaining", min=0, help="Refresh when fewer seconds than this are left (for long jobs)."
        ),
    ] = 300,
) -> None:
    """An access token from the cache (refreshed silently), as `az account get-access-token` prints it."""
    from entryway.client import DEVOPS_RESOURCE, NeedsLogin

    if resource and scope:
        raise _exit_with("give --resource or --scope, not both")
    scopes = [scope or f"{(resource or DEVOPS_RESOURCE).rstrip('/')}/.default"]
    if output not in ("json", "tsv"):
        raise _exit_with(f"--output must be json or tsv, not '{output}'")
    claims = _claims_option(claims_challenge)
    try:
        access = _client(authority, None).acquire_silent(
            scopes, tenant=tenant, claims=claims, min_remaining=timedelta(seconds=min_remaining)
        )
    except NeedsLogin as exc:
        message = str(exc)
        if claims_challenge is not None and "entryway login" in message:
            message += (
                f" Pass the challenge on: `entryway login --claims-challenge {claims_challenge.strip()}`."
            )
        raise _exit_with(message) from exc
    fields: dict[str, Any] = {
        "accessToken": access.token,
        "expiresOn": datetime.fromtimestamp(access.expires_on, UTC)
        .astimezone()
        .strftime("%Y-%m-%d %H:%M:%S.%f"),
        "expires_on": access.expires_on,
        "tenant": access.tenant_id,
        "tokenType": "Bearer",
    }
    if query is not None:
        if query not in fields:
            raise _exit_with(f"--query: no field '{query}' (one of {', '.join(fields)})")
        value = fields[query]
        typer.echo(value if output == "tsv" else json.dumps(value))
        return
    if output == "tsv":
        typer.echo("\t".join(str(value) for value in fields.values()))
        return
    typer.echo(json.dumps(fields, indent=2))


@app.command("logout")
def logout(
    username: Annotated[str | None, typer.Option("--username", "-u", help="Only this account.")] = None,
    authority: Authority = None,
) -> None:
    """Remove signed-in accounts (all of them, or --username) and their tokens from the cache."""
    client = _client(authority, None)
    removed = 0
    for account in client.app().get_accounts(username=username) if username else client.app().get_accounts():
        client.app().remove_account(account)
        removed += 1
    client.save()
    removed += client.remove_service_principals(username)
    if username and not removed:
        raise _exit_with(f"no account {username} is signed in at {client.settings.authority_host}")
    typer.echo(f"Signed out {removed} account(s).", err=True)


def _account_json(account: Any) -> dict[str, str]:
    return {"user": account.username, "tenantId": account.tenant_id, "environment": account.environment}


@account_app.command("list")
def account_list(authority: Authority = None) -> None:
    """The accounts signed in at the authority."""
    client = _client(authority, None)
    listed = [_account_json(a) for a in client.accounts()]
    listed += [
        {
            "managedIdentity" if e.get("kind") == "managedIdentity" else "servicePrincipal": e["client_id"],
            "tenantId": e["tenant"],
        }
        for e in client.service_principals()
    ]
    typer.echo(json.dumps(listed, indent=2))


@account_app.command("show")
def account_show(
    authority: Authority = None,
    tenant: Tenant = None,
    username: Annotated[str | None, typer.Option("--username", "-u")] = None,
) -> None:
    """The account `entryway token` uses (the first signed in, or the one for --tenant / --username)."""
    client = _client(authority, tenant)
    accounts = [
        a
        for a in client.accounts()
        if (username is None or a.username.lower() == username.lower())
        and (tenant is None or a.tenant_id == tenant)
    ]
    if not accounts:
        raise _exit_with(f"no account is signed in at {client.settings.authority_host}; run `entryway login`")
    typer.echo(json.dumps(_account_json(accounts[0]), indent=2))
