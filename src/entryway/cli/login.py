"""`entryway login`, `entryway token`, `entryway logout`, `entryway account`: Entra sign-in on the user's
machine, for Entryway and for Microsoft's identity platform alike (docs/client-tools.md)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
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
) -> None:
    """Sign in and cache the account and its tokens (a file only you can read)."""
    from entryway.client import DEVOPS_SCOPE, NeedsLogin, describe_error

    try:
        client = _client(authority, tenant)
    except NeedsLogin as exc:
        raise _exit_with(str(exc)) from exc
    if service_principal:
        if not username or not secret or not tenant:
            raise _exit_with("--service-principal needs -u CLIENT_ID, --secret SECRET and --tenant TENANT")
        try:
            token = client.login_service_principal(username, tenant, secret, [DEVOPS_SCOPE])
        except NeedsLogin as exc:
            raise _exit_with(str(exc)) from exc
        typer.echo(
            json.dumps(
                {
                    "servicePrincipal": username,
                    "tenantId": token.tenant_id,
                    "authority": client.settings.authority_host,
                },
                indent=2,
            )
        )
        return
    if username or secret:
        raise _exit_with("-u and --secret go with --service-principal")
    if not device_code:
        _browser_login(client, tenant, timeout)
        return
    msal_app = client.app()
    flow = msal_app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
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


def _browser_login(client: Any, tenant: str | None, timeout: float) -> None:
    """`az login`'s default: the browser opens the sign-in page; msal's loopback listener takes the answer."""
    from entryway.client import DEVOPS_SCOPE

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
        [DEVOPS_SCOPE], tenant=tenant, timeout=timeout, on_browser=opening, on_no_browser=no_browser
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
    try:
        access = _client(authority, None).acquire_silent(
            scopes, tenant=tenant, min_remaining=timedelta(seconds=min_remaining)
        )
    except NeedsLogin as exc:
        raise _exit_with(str(exc)) from exc
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
        {"servicePrincipal": e["client_id"], "tenantId": e["tenant"]} for e in client.service_principals()
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
