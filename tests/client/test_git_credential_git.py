"""Real git against the real DevOps service with nothing but `entryway git setup`'s configuration: the
credential helper answers Entra access tokens (a service principal from the environment, as CI runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from tests.client.test_login_cli import device_login
from tests.conftest import (
    ADA,
    BUILD_BOT_ID,
    BUILD_BOT_SECRET,
    CONTOSO_TENANT,
    OidcIssuer,
    make_certificate,
    register_certificate,
    register_federated_credential,
)
from tests.devops.test_git import GIT, ORG, GitWorld, commit_file, git_world  # noqa: F401  (the fixture)

BIN = Path(sys.executable).parent


def _env(world: GitWorld, home: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
        "GIT_SSL_CAINFO": world.instance.ca_bundle,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Entryway Tests",
        "GIT_AUTHOR_EMAIL": "tests@contoso.test",
        "GIT_COMMITTER_NAME": "Entryway Tests",
        "GIT_COMMITTER_EMAIL": "tests@contoso.test",
        "ENTRYWAY_AUTHORITY": world.instance.identity,
        "ENTRYWAY_CA_BUNDLE": world.instance.ca_bundle,
        "ENTRYWAY_CACHE_DIR": str(home / "cache"),
        **extra,
    }


def _run(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_git_clones_and_pushes_as_a_service_principal_from_the_environment(
    git_world: GitWorld,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = _env(
        git_world,
        home,
        AZURE_CLIENT_ID=BUILD_BOT_ID,
        AZURE_TENANT_ID=CONTOSO_TENANT,
        AZURE_CLIENT_SECRET=BUILD_BOT_SECRET,
    )
    setup = _run([str(BIN / "entryway"), "git", "setup", f"{git_world.instance.devops}/{ORG}"], env)
    assert setup.returncode == 0, setup.stderr
    work = tmp_path / "work"
    clone = _run([GIT, "clone", git_world.url, str(work)], env)
    assert clone.returncode == 0, clone.stderr
    (work / "sp.txt").write_text("pushed by the build bot through git-credential-entryway\n")
    assert _run([GIT, "add", "sp.txt"], env, cwd=work).returncode == 0
    assert _run([GIT, "commit", "-q", "-m", "sp"], env, cwd=work).returncode == 0
    push = _run([GIT, "push", "-q", "origin", "HEAD:refs/heads/sp-helper"], env, cwd=work)
    assert push.returncode == 0, push.stderr
    # Nothing but the helper's name reached git's config; no token sits in it, in the clone's or in the cache.
    config = (home / "gitconfig").read_text() + (work / ".git" / "config").read_text()
    assert "eyJ" not in config
    assert "password" not in config
    assert not (home / "cache").exists() or all(
        "eyJ" not in p.read_text() for p in (home / "cache").iterdir()
    )


def test_the_service_principal_mode_says_what_is_missing(git_world: GitWorld, tmp_path: Path) -> None:  # noqa: F811
    env = _env(git_world, tmp_path, AZURE_CLIENT_SECRET=BUILD_BOT_SECRET)
    done = subprocess.run(
        [str(BIN / "git-credential-entryway"), "get"],
        input=f"url={git_world.url}\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "AZURE_CLIENT_ID or AZURE_TENANT_ID is not" in done.stderr


def test_a_refused_service_principal_secret_is_reported_with_its_aadsts_code(
    git_world: GitWorld,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = _env(
        git_world,
        tmp_path,
        AZURE_CLIENT_ID=BUILD_BOT_ID,
        AZURE_TENANT_ID=CONTOSO_TENANT,
        AZURE_CLIENT_SECRET="not-the-secret",
    )
    done = subprocess.run(
        [str(BIN / "git-credential-entryway"), "get"],
        input=f"url={git_world.url}\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"the service principal {BUILD_BOT_ID} could not get a token: AADSTS7000215" in done.stderr


def test_without_a_signed_in_account_the_helper_says_to_run_entryway_login(
    git_world: GitWorld,  # noqa: F811
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [str(BIN / "git-credential-entryway"), "get"],
        input=f"url={git_world.url}\n\n",
        env=_env(git_world, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"entryway login --tenant {CONTOSO_TENANT}" in done.stderr
    assert "service principal" in done.stderr


def _device_code_login(world: GitWorld, env: dict[str, str]) -> None:
    """`entryway login --device-code` as the user runs it (a subprocess), the person's part done by the test."""
    login = device_login(world.instance, env, "--tenant", CONTOSO_TENANT)
    assert login.returncode == 0, login.stderr
    assert json.loads(login.stdout)["user"] == ADA.upn


def _age_cached_tokens(cache_dir: Path, delta: timedelta) -> None:
    """What the user's clock sees when `delta` has passed: the cached access tokens' times move back by it
    (msal reads its own clock; the server's ManualClock is moved by the same amount)."""
    path = cache_dir / "msal_token_cache.json"
    cache = json.loads(path.read_text())
    for entry in cache.get("AccessToken", {}).values():
        for key in ("cached_at", "expires_on", "extended_expires_on"):
            if key in entry:
                entry[key] = str(int(entry[key]) - int(delta.total_seconds()))
    path.write_text(json.dumps(cache))


def _cached_access_tokens(cache_dir: Path) -> set[str]:
    cache = json.loads((cache_dir / "msal_token_cache.json").read_text())
    return {str(entry["secret"]) for entry in cache.get("AccessToken", {}).values()}


def test_a_signed_in_user_clones_pushes_and_fetches_after_the_token_expired(
    git_world: GitWorld,  # noqa: F811
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # Without CP1 the access token lives as long as the tenant says (an hour), not a CAE token's 24 h, so two
    # hours pass it without leaving the session's audit rows a day ahead (test_cae_client covers CP1 with git).
    env = _env(git_world, home, ENTRYWAY_DISABLE_CP1="1")
    _device_code_login(git_world, env)
    setup = _run([str(BIN / "entryway"), "git", "setup", f"{git_world.instance.devops}/{ORG}"], env)
    assert setup.returncode == 0, setup.stderr
    assert "eyJ" not in setup.stdout

    work = tmp_path / "work"
    clone = _run([GIT, "clone", git_world.url, str(work)], env)
    assert clone.returncode == 0, clone.stderr
    (work / "ada.txt").write_text("pushed by ada through git-credential-entryway\n")
    assert _run([GIT, "add", "ada.txt"], env, cwd=work).returncode == 0
    assert _run([GIT, "commit", "-q", "-m", "ada"], env, cwd=work).returncode == 0
    push = _run([GIT, "push", "-q", "origin", "HEAD:refs/heads/ada-helper"], env, cwd=work)
    assert push.returncode == 0, push.stderr

    # The access token expires: the server's clock and the user's both pass it; the refresh token is still good.
    passed = timedelta(hours=2)
    git_world.instance.clock.advance(passed)
    try:
        _age_cached_tokens(home / "cache", passed)
        before = _cached_access_tokens(home / "cache")
        fetch = _run([GIT, "fetch", "-q", "origin"], env, cwd=work)
    finally:
        git_world.instance.clock.advance(-passed)  # the session's other tests keep the clock they had
    assert fetch.returncode == 0, fetch.stderr
    assert _run([GIT, "rev-parse", "origin/ada-helper"], env, cwd=work).returncode == 0
    assert _cached_access_tokens(home / "cache") - before, "the helper refreshed the token"

    config = (home / "gitconfig").read_text() + (work / ".git" / "config").read_text()
    assert "eyJ" not in config
    assert "password" not in config
    # What git reads from the helper is its answer and nothing else.
    answer = subprocess.run(
        [str(BIN / "git-credential-entryway"), "get"],
        input=f"url={git_world.url}\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (answer.returncode, answer.stderr) == (0, "")
    fields = dict(line.split("=", 1) for line in answer.stdout.splitlines())
    assert sorted(fields) == ["password", "password_expiry_utc", "username"]
    assert fields["username"] == ADA.upn
    assert fields["password"].startswith("eyJ")
    assert int(fields["password_expiry_utc"]) > time.time() + 300
    authorities = json.loads((home / "cache" / "git-authorities.json").read_text())
    assert authorities == {
        f"{git_world.instance.devops}/{ORG}".lower(): f"{git_world.instance.identity}/{CONTOSO_TENANT}"
    }


def test_git_clones_with_workload_identity_from_a_federated_token_file(
    git_world: GitWorld,  # noqa: F811
    oidc_issuer: OidcIssuer,
    tmp_path: Path,
) -> None:
    subject = "system:serviceaccount:ci:git-credential-entryway"
    register_federated_credential(
        git_world.instance,
        BUILD_BOT_ID,
        name="git-credential-helper",
        issuer=oidc_issuer.url,
        subject=subject,
    )
    token_file = tmp_path / "federated-token"
    token_file.write_text(oidc_issuer.token(subject, now=git_world.instance.clock.now().timestamp()))
    home = tmp_path / "home"
    home.mkdir()
    env = _env(
        git_world,
        home,
        AZURE_CLIENT_ID=BUILD_BOT_ID,
        AZURE_TENANT_ID=CONTOSO_TENANT,
        AZURE_FEDERATED_TOKEN_FILE=str(token_file),
    )
    setup = _run([str(BIN / "entryway"), "git", "setup", f"{git_world.instance.devops}/{ORG}"], env)
    assert setup.returncode == 0, setup.stderr
    clone = _run([GIT, "clone", git_world.url, str(tmp_path / "work")], env)
    assert clone.returncode == 0, clone.stderr

    token_file.write_text("")
    done = subprocess.run(
        [str(BIN / "git-credential-entryway"), "get"],
        input=f"url={git_world.url}\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert f"AZURE_FEDERATED_TOKEN_FILE {token_file} is empty" in done.stderr
    token_file.unlink()
    done = subprocess.run(
        [str(BIN / "git-credential-entryway"), "get"],
        input=f"url={git_world.url}\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert "cannot be read (No such file or directory)" in done.stderr


def test_git_clones_as_a_service_principal_with_a_certificate(
    git_world: GitWorld,  # noqa: F811
    tmp_path: Path,
) -> None:
    certificate = make_certificate("git-credential-entryway")
    register_certificate(git_world.instance, BUILD_BOT_ID, certificate)
    pem = tmp_path / "bot.pem"
    pem.write_text(certificate.key_pem + certificate.cert_pem)
    home = tmp_path / "home"
    home.mkdir()
    env = _env(
        git_world,
        home,
        AZURE_CLIENT_ID=BUILD_BOT_ID,
        AZURE_TENANT_ID=CONTOSO_TENANT,
        AZURE_CLIENT_CERTIFICATE_PATH=str(pem),
    )
    setup = _run([str(BIN / "entryway"), "git", "setup", f"{git_world.instance.devops}/{ORG}"], env)
    assert setup.returncode == 0, setup.stderr
    # msal signs the client assertion with this machine's clock: the server's must agree with it for now
    # (earlier tests of the session may have moved it ahead).
    ahead = git_world.instance.clock.timestamp() - time.time()
    git_world.instance.clock.advance(-ahead)
    try:
        clone = _run([GIT, "clone", git_world.url, str(tmp_path / "work")], env)
    finally:
        git_world.instance.clock.advance(ahead)
    assert clone.returncode == 0, clone.stderr

    pem.write_text(certificate.cert_pem)  # no key
    done = subprocess.run(
        [str(BIN / "git-credential-entryway"), "get"],
        input=f"url={git_world.url}\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert "is not a PEM file with a private key and its certificate" in done.stderr
