"""`entryway git setup <org url>`: makes `git-credential-entryway` the only credential helper for one Azure
DevOps organization (and for nothing else), in the user's global git config or the repository's."""

from __future__ import annotations

import shutil
import subprocess
from typing import Annotated
from urllib.parse import urlsplit

import typer

from entryway.cli.main import app, fail

HELPER = "entryway"  # git runs `git-credential-entryway`

git_app = typer.Typer(no_args_is_help=True, help="Git: the credential helper for Azure DevOps organizations.")
app.add_typer(git_app, name="git")


def organization_url(value: str) -> str:
    """`https://dev.azure.com/{org}` or `https://{org}.visualstudio.com` (or an Entryway DevOps origin and
    organization), without a trailing slash, query, fragment or credentials."""
    parts = urlsplit(value.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(
            f"'{value}' is not an https URL of an organization, e.g. https://dev.azure.com/fabrikam"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(
            f"'{value}' holds credentials, a query or a fragment; give the organization URL alone"
        )
    path = parts.path.strip("/")
    if not path and not parts.hostname.lower().endswith(".visualstudio.com"):
        raise ValueError(f"'{value}' names no organization; e.g. https://dev.azure.com/fabrikam")
    if "/" in path:
        raise ValueError(f"'{value}' is more than an organization URL; give https://host/{{org}} only")
    return f"https://{parts.netloc.lower()}" + (f"/{path}" if path else "")


@git_app.command("setup")
def git_setup(
    org_url: Annotated[str, typer.Argument(help="The organization, e.g. https://dev.azure.com/fabrikam.")],
    local: Annotated[
        bool, typer.Option("--local", help="Write the repository's config (.git/config), not ~/.gitconfig.")
    ] = False,
) -> None:
    """Use git-credential-entryway (Entra access tokens, never PATs) for this organization's remotes only."""
    try:
        url = organization_url(org_url)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    git = shutil.which("git")
    if git is None:
        raise fail("git is not on PATH")
    scope = "--local" if local else "--global"
    helper_key = f"credential.{url}.helper"
    commands = [
        # An empty helper first clears helpers configured for every host, so none of them stores our tokens.
        [git, "config", scope, "--replace-all", helper_key, ""],
        [git, "config", scope, "--add", helper_key, HELPER],
        [git, "config", scope, f"credential.{url}.useHttpPath", "true"],
    ]
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise fail(f"git config failed: {done.stderr.strip() or done.returncode}")
    if shutil.which("git-credential-entryway") is None:
        typer.echo("warning: git-credential-entryway is not on PATH; git will not find the helper", err=True)
    typer.echo(
        f"git uses git-credential-entryway for {url} ({scope[2:]} config); sign in with 'entryway login'"
    )
