"""Real git against the real DevOps service with nothing but `entryway git setup`'s configuration: the
credential helper answers Entra access tokens (a service principal from the environment, as CI runs it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import BUILD_BOT_ID, BUILD_BOT_SECRET, CONTOSO_TENANT
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
    assert f"run 'entryway login --tenant {CONTOSO_TENANT}'" in done.stderr
