"""CP1 and claims challenges with the real clients against the shared server, on clienttools.test:
`entryway token` tokens carry xms_cc (unless ENTRYWAY_DISABLE_CP1), `entryway token --claims-challenge` refreshes
with a resource's challenge or says to sign in again with it, `entryway login --claims-challenge` does, and
git-credential-entryway answers a `wwwauth[]` insufficient_claims challenge and refreshes after git's `erase`."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from entryway.client import jwt_claims
from tests.client.clienttools import CASEY, CT_API_URI, CT_CLI_ID, CT_ORG, CT_TENANT, with_clienttools
from tests.client.test_git_credential_git import BIN
from tests.client.test_login_cli import client_env, device_login, run
from tests.conftest import Instance


@pytest.fixture(scope="module")
def clienttools(entryway: Instance) -> Instance:
    return with_clienttools(entryway)


def challenge(not_before: float) -> str:
    """What a resource sends when a token predates an event (continuous access evaluation), base64 as in
    `WWW-Authenticate: Bearer … claims="…"`."""
    claims = {"access_token": {"nbf": {"essential": True, "value": str(int(not_before))}}}
    return base64.b64encode(json.dumps(claims).encode()).decode()


def token_of(env: dict[str, str], *args: str) -> str:
    done = run(env, "token", "--query", "accessToken", "-o", "tsv", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def signed_in(clienttools: Instance, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**client_env(clienttools, tmp_path / "cache"), **extra}
    login = device_login(clienttools, env, "--tenant", CT_TENANT, user=CASEY)
    assert login.returncode == 0, login.stderr
    return env


def test_tokens_declare_cp1_unless_disabled(clienttools: Instance, tmp_path: Path) -> None:
    claims = jwt_claims(token_of(signed_in(clienttools, tmp_path / "cp1")))
    assert claims["xms_cc"] == ["CP1"]
    assert claims["exp"] - claims["iat"] >= 24 * 3600 - 600, "a CAE-capable token lives about 24 h"
    off = signed_in(clienttools, tmp_path / "off", ENTRYWAY_DISABLE_CP1="1")
    assert "xms_cc" not in jwt_claims(token_of(off))


def test_token_claims_challenge_refreshes_or_asks_for_a_fresh_sign_in(
    clienttools: Instance, tmp_path: Path
) -> None:
    env = signed_in(clienttools, tmp_path)
    first = token_of(env)
    signed_in_at = int(jwt_claims(first)["iat"])

    # A challenge the sign-in already satisfies (an event before it): a refresh with the claims does it.
    satisfied = token_of(env, "--claims-challenge", challenge(signed_in_at - 60))
    assert satisfied != first

    # An event after the sign-in: the refresh token cannot satisfy it; the user is told what to run.
    clienttools.clock.advance(timedelta(seconds=120))
    later = challenge(clienttools.clock.timestamp())
    refused = run(env, "token", "--claims-challenge", later)
    assert refused.returncode == 1
    assert "AADSTS50173" in refused.stderr
    assert "a fresh sign-in is needed" in refused.stderr
    assert f"entryway login --claims-challenge {later}" in refused.stderr
    assert refused.stdout == ""

    # Signing in again with the challenge satisfies it; the refresh with the claims now works.
    clienttools.clock.advance(timedelta(seconds=5))
    again = device_login(clienttools, env, "--tenant", CT_TENANT, "--claims-challenge", later, user=CASEY)
    assert again.returncode == 0, again.stderr
    fresh = token_of(env, "--claims-challenge", later)
    assert int(jwt_claims(fresh)["iat"]) >= signed_in_at + 120, "issued after the clock moved on"


@pytest.mark.parametrize(
    "value",
    ["%%%not-base64%%%", base64.b64encode(b"not json").decode(), base64.b64encode(b"[1]").decode(), "{}"],
)
def test_a_malformed_claims_challenge_is_refused_before_anything_is_asked(
    clienttools: Instance, tmp_path: Path, value: str
) -> None:
    env = client_env(clienttools, tmp_path / "cache")
    for args in (
        ["token", "--claims-challenge", value],
        ["login", "--device-code", "--claims-challenge", value],
    ):
        done = run(env, *args)
        assert done.returncode == 1, args
        assert "--claims-challenge: the claims challenge is not" in done.stderr
        assert done.stdout == ""
        assert not (tmp_path / "cache").exists(), "nothing written"
    sp = run(env, "login", "--identity", "--claims-challenge", challenge(0))
    assert sp.returncode == 1
    assert "--claims-challenge goes with a person's sign-in" in sp.stderr


def helper(
    clienttools: Instance, env: dict[str, str], operation: str, *lines: str
) -> subprocess.CompletedProcess[str]:
    url = f"{clienttools.devops}/{CT_ORG}/Tools/_git/tools"
    return subprocess.run(
        [str(BIN / "git-credential-entryway"), operation],
        input="".join(f"{line}\n" for line in (f"url={url}", *lines)) + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def password_of(done: subprocess.CompletedProcess[str]) -> str:
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines())["password"]


def test_git_helper_answers_a_claims_challenge_and_refreshes_after_erase(
    clienttools: Instance, tmp_path: Path
) -> None:
    env = signed_in(clienttools, tmp_path)
    cache_dir = tmp_path / "cache"
    first = password_of(helper(clienttools, env, "get"))
    assert password_of(helper(clienttools, env, "get")) == first, "cached while it has time left"

    # git rejects the credential after a 401 (git 2.39 sends no wwwauth[]): erase, then the next get refreshes.
    erased = helper(clienttools, env, "erase", "username=casey@clienttools.test", f"password={first}")
    assert (erased.returncode, erased.stdout, erased.stderr) == (0, "", "")
    assert (cache_dir / "git-refresh.json").exists()
    second = password_of(helper(clienttools, env, "get"))
    assert second != first
    assert not json.loads((cache_dir / "git-refresh.json").read_text()), "one forced refresh, then the cache"
    assert password_of(helper(clienttools, env, "get")) == second

    # A newer git passes the service's challenge on in wwwauth[]: refreshed with its claims.
    authority = f"{clienttools.identity}/{CT_TENANT}/oauth2/authorize"
    satisfiable = challenge(int(jwt_claims(first)["iat"]) - 60)
    wwwauth = f'wwwauth[]=Bearer authorization_uri="{authority}", error="insufficient_claims", claims="{satisfiable}"'
    third = password_of(helper(clienttools, env, "get", wwwauth))
    assert third not in (first, second)

    clienttools.clock.advance(timedelta(seconds=120))
    later = challenge(clienttools.clock.timestamp())
    wwwauth = (
        f'wwwauth[]=Bearer authorization_uri="{authority}", error="insufficient_claims", claims="{later}"'
    )
    refused = helper(clienttools, env, "get", wwwauth)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert "AADSTS50173" in refused.stderr
    assert "a fresh sign-in is needed: run `entryway login --tenant" in refused.stderr


def test_consent_required_says_what_to_run_and_that_login_asks_for_it(
    clienttools: Instance, tmp_path: Path
) -> None:
    """A public client of the organization's own (ENTRYWAY_CLIENT_ID) consented for Azure DevOps only: a token
    for another API needs consent (AADSTS65001); `entryway login --scope` asks for it on the sign-in pages."""
    scope = f"{CT_API_URI}/Tools.Read"
    env = signed_in(clienttools, tmp_path, ENTRYWAY_CLIENT_ID=CT_CLI_ID)
    refused = run(env, "token", "--scope", scope)
    assert refused.returncode == 1
    assert "AADSTS65001" in refused.stderr
    assert (
        f"consent is required: run `entryway login --scope {scope}` (the browser asks for it) or ask an "
        "administrator to grant consent for the app"
    ) in refused.stderr
    assert refused.stdout == ""

    login = device_login(clienttools, env, "--tenant", CT_TENANT, "--scope", scope, user=CASEY)
    assert login.returncode == 0, (
        login.stderr
    )  # the device pages showed the consent page; the person accepted
    claims = jwt_claims(token_of(env, "--scope", scope))
    assert (claims["aud"], claims["appid"], claims["scp"]) == (CT_API_URI, CT_CLI_ID, "Tools.Read")
