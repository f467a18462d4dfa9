"""`entryway login --device-code`, `entryway token`, `logout`, `account` as subprocesses against the shared
server (issue 8): the device code completed by the test, the token used by a plain HTTP client."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import requests

from entryway.client import jwt_claims
from tests.conftest import (
    ADA,
    BUILD_BOT_ID,
    BUILD_BOT_SECRET,
    CONTOSO_TENANT,
    NORTHWIND_TENANT,
    Instance,
    SignInUser,
    complete_device_login,
)

ENTRYWAY = [sys.executable, "-m", "entryway"]


def client_env(entryway: Instance, cache_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENTRYWAY_", "AZURE_"))}
    env.update(
        ENTRYWAY_AUTHORITY=entryway.identity,
        ENTRYWAY_CA_BUNDLE=entryway.ca_bundle,
        ENTRYWAY_CACHE_DIR=str(cache_dir),
    )
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENTRYWAY, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def device_login(
    entryway: Instance, env: dict[str, str], *args: str, user: SignInUser = ADA
) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen(
        [*ENTRYWAY, "login", "--device-code", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    message = process.stderr.readline()
    match = re.search(r"enter the code (\S+)", message)
    assert match, message
    assert f"{entryway.identity}/devicelogin" in message
    complete_device_login(entryway, match.group(1), user)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, message + stderr)


def projects(entryway: Instance, token: str) -> requests.Response:
    return requests.get(
        f"{entryway.devops}/fabrikam/_apis/projects?api-version=7.1",
        headers={"Authorization": f"Bearer {token}"},
        verify=entryway.ca_bundle,
        timeout=30,
    )


def test_device_login_then_token_lists_projects_and_refreshes(entryway: Instance, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    # Without CP1 the token lives the tenant's lifetime (an hour), not a CAE token's 24 h: passing its expiry
    # below then moves the session's clock an hour, not a day (test_claims_challenge covers CP1).
    env = {**client_env(entryway, cache_dir), "ENTRYWAY_DISABLE_CP1": "1"}
    login = device_login(entryway, env, "--tenant", CONTOSO_TENANT)
    assert login.returncode == 0, login.stderr
    assert json.loads(login.stdout) == {
        "user": ADA.upn,
        "tenantId": CONTOSO_TENANT,
        "authority": entryway.identity,
    }
    cache = cache_dir / "msal_token_cache.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    assert "eyJ" not in login.stdout + login.stderr, "login prints no token"

    shown = run(env, "token", "--resource", "499b84ac-1321-427f-aa17-267ca6975798")
    assert shown.returncode == 0, shown.stderr
    fields = json.loads(shown.stdout)
    assert set(fields) == {"accessToken", "expiresOn", "expires_on", "tenant", "tokenType"}
    assert fields["tokenType"] == "Bearer"
    assert fields["tenant"] == CONTOSO_TENANT
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", fields["expiresOn"])
    assert isinstance(fields["expires_on"], int)
    first = fields["accessToken"]
    listed = projects(entryway, first)
    assert listed.status_code == 200, listed.text
    assert listed.json()["count"] == len(listed.json()["value"])

    tsv = run(env, "token", "--query", "accessToken", "-o", "tsv")
    assert tsv.returncode == 0, tsv.stderr
    assert tsv.stdout.strip() == first, "the cached token, not a new one"

    # The server's clock passes the token's expiry: the old token is refused; `entryway token` refreshes it
    # silently (the client judges by its own clock: --min-remaining asks for a token good for its whole lifetime).
    claims = jwt_claims(first)
    lifetime = int(claims["exp"]) - int(claims["iat"])
    entryway.clock.advance(timedelta(seconds=lifetime + 60))
    assert projects(entryway, first).status_code == 401
    fresh = run(env, "token", "--query", "accessToken", "-o", "tsv", "--min-remaining", str(lifetime))
    assert fresh.returncode == 0, fresh.stderr
    second = fresh.stdout.strip()
    assert second != first
    assert projects(entryway, second).status_code == 200

    accounts = run(env, "account", "list")
    assert json.loads(accounts.stdout) == [
        {"user": ADA.upn, "tenantId": CONTOSO_TENANT, "environment": "localhost"}
    ]
    shown_account = run(env, "account", "show")
    assert json.loads(shown_account.stdout)["user"] == ADA.upn
    assert "eyJ" not in accounts.stdout + shown_account.stdout

    unknown = run(env, "token", "--query", "password")
    assert unknown.returncode == 1
    assert "no field 'password'" in unknown.stderr
    assert unknown.stdout == ""
    elsewhere = run(env, "token", "--tenant", NORTHWIND_TENANT)
    assert elsewhere.returncode == 1
    assert f"for tenant {NORTHWIND_TENANT}" in elsewhere.stderr
    assert f"entryway login --tenant {NORTHWIND_TENANT}" in elsewhere.stderr

    nobody = run(env, "logout", "--username", "nobody@contoso.test")
    assert nobody.returncode == 1
    assert "no account nobody@contoso.test" in nobody.stderr
    out = run(env, "logout")
    assert out.returncode == 0, out.stderr
    after = run(env, "token")
    assert after.returncode == 1
    assert "Run `entryway login`" in after.stderr
    assert after.stdout == ""


def test_token_without_account_and_bad_options(entryway: Instance, tmp_path: Path) -> None:
    env = client_env(entryway, tmp_path / "empty")
    none = run(env, "token")
    assert none.returncode == 1
    assert "No account is signed in" in none.stderr
    assert "Run `entryway login`" in none.stderr
    assert none.stdout == ""
    both = run(env, "token", "--resource", "r", "--scope", "s/.default")
    assert both.returncode == 1
    assert "not both" in both.stderr
    bad = run(env, "token", "-o", "yaml")
    assert bad.returncode == 1
    assert "json or tsv" in bad.stderr
    shown = run(env, "account", "show")
    assert shown.returncode == 1
    assert "run `entryway login`" in shown.stderr
    assert json.loads(run(env, "account", "list").stdout) == []


def test_service_principal_login_with_a_secret(entryway: Instance, tmp_path: Path) -> None:
    cache_dir = tmp_path / "sp"
    env = client_env(entryway, cache_dir)
    login = run(
        env,
        "login",
        "--service-principal",
        "-u",
        BUILD_BOT_ID,
        "--secret",
        BUILD_BOT_SECRET,
        "--tenant",
        CONTOSO_TENANT,
    )
    assert login.returncode == 0, login.stderr
    assert json.loads(login.stdout)["servicePrincipal"] == BUILD_BOT_ID
    assert "eyJ" not in login.stdout + login.stderr
    token = run(env, "token", "--query", "accessToken", "-o", "tsv")
    assert token.returncode == 0, token.stderr
    assert jwt_claims(token.stdout.strip())["appid"] == BUILD_BOT_ID
    for name in ("service_principals.json", "msal_token_cache.json"):
        assert stat.S_IMODE((cache_dir / name).stat().st_mode) == 0o600
    assert json.loads(run(env, "account", "list").stdout) == [
        {"servicePrincipal": BUILD_BOT_ID, "tenantId": CONTOSO_TENANT}
    ]

    wrong = run(
        env,
        "login",
        "--service-principal",
        "-u",
        BUILD_BOT_ID,
        "--secret",
        "wrong",
        "--tenant",
        CONTOSO_TENANT,
    )
    assert wrong.returncode == 1
    assert "AADSTS7000215" in wrong.stderr
    assert "check its secret" in wrong.stderr
    missing = run(env, "login", "--service-principal", "-u", BUILD_BOT_ID, "--secret", "s")
    assert missing.returncode == 1
    assert "--tenant TENANT" in missing.stderr
    stray = run(env, "login", "--device-code", "--secret", "s")
    assert stray.returncode == 1
    assert "go with --service-principal" in stray.stderr

    out = run(env, "logout", "-u", BUILD_BOT_ID)
    assert out.returncode == 0, out.stderr
    assert run(env, "token").returncode == 1
