"""Git over smart HTTP with the real git CLI against the shared server (issue 5)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import yaml
from sqlalchemy import select

from entryway.config.declarative import apply_config
from entryway.devops.audit.recorder import Actor
from entryway.devops.git.storage import delete_bare_repository, init_bare_repository, repository_path
from entryway.devops.orgs.service import OrgService
from entryway.devops.projects.permissions import ProjectRole
from entryway.devops.projects.service import ProjectService
from entryway.store.models import AuditEventRow
from tests.conftest import (
    ADA,
    AZURE_CLI_ID,
    BUILD_BOT_ID,
    BUILD_BOT_SECRET,
    CONTOSO_TENANT,
    DEVOPS_SCOPE,
    Instance,
    form_post,
)

GIT = shutil.which("git") or "/usr/bin/git"


def test_init_bare_repository_creates_a_bare_repo_on_main(tmp_path: Path) -> None:
    path = init_bare_repository(str(tmp_path), "0b7c3a7e-2f9f-4a55-9d7e-1f0d3f5b8a11")
    assert path == tmp_path / "0b7c3a7e-2f9f-4a55-9d7e-1f0d3f5b8a11.git"
    head = (path / "HEAD").read_text().strip()
    assert head == "ref: refs/heads/main"
    config = subprocess.run(
        [GIT, "--git-dir", str(path), "config", "--get", "http.receivepack"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert config.stdout.strip() == "true"
    assert init_bare_repository(str(tmp_path), "0b7c3a7e-2f9f-4a55-9d7e-1f0d3f5b8a11") == path
    delete_bare_repository(str(tmp_path), "0b7c3a7e-2f9f-4a55-9d7e-1f0d3f5b8a11")
    assert not path.exists()


@pytest.mark.parametrize("repo_id", ["../escape", "a/b", "", "x.git", ".hidden"])
def test_repository_path_refuses_what_is_not_an_id(tmp_path: Path, repo_id: str) -> None:
    with pytest.raises(ValueError, match="not a repository id"):
        repository_path(tmp_path, repo_id)


# --- smart HTTP with the real git CLI ----------------------------------------------------------------------

ORG = "fabrikam"
PROJECT = "Git Works"
REPO = "entryway-git-widgets"
PASSWORD = "Git-Tests-Password-0042"
GIT_USERS = {
    # upn: (access level, project role or None)
    "gitcon@contoso.test": ("basic", "contributors"),
    "gitread@contoso.test": ("basic", "readers"),
    "gitstake@contoso.test": ("stakeholder", "contributors"),
}
GIT_CONFIG = f"""\
tenants:
  - id: {CONTOSO_TENANT}
    domains: [contoso.test]
    users:
{
    "".join(
        f'''      - upn: {upn}
        password: "{PASSWORD}"
        mfa_required: false
'''
        for upn in GIT_USERS
    )
}\
  - id: {CONTOSO_TENANT}
    domains: [contoso.test]
    users:
      - upn: gitout@contoso.test
        password: "{PASSWORD}"
        mfa_required: false
organizations:
  - name: {ORG}
    tenant: contoso.test
    members:
{
    "".join(
        f'''      - user: {upn}
        access: {access}
'''
        for upn, (access, _) in GIT_USERS.items()
    )
}\
"""
# How much more this process (which runs the server) may hold at its peak while a big push goes through.
BIG_PUSH_BYTES = 30 * 1024 * 1024
MAX_SERVER_GROWTH = 15 * 1024 * 1024


@dataclass(frozen=True)
class GitWorld:
    instance: Instance
    url: str  # https://…/fabrikam/Git%20Works/_git/entryway-git-widgets
    repository_id: str
    bare: Path
    tokens: dict[str, str]  # upn or "build-bot" -> access token
    home: Path


def _user_token(instance: Instance, upn: str, password: str = PASSWORD) -> str:
    response = form_post(
        instance,
        f"/{CONTOSO_TENANT}/oauth2/v2.0/token",
        {
            "grant_type": "password",
            "client_id": AZURE_CLI_ID,
            "username": upn,
            "password": password,
            "scope": DEVOPS_SCOPE,
        },
    )
    assert response.status_code == 200, response.text
    value: str = response.json()["access_token"]
    return value


def _app_token(instance: Instance) -> str:
    response = form_post(
        instance,
        f"/{CONTOSO_TENANT}/oauth2/v2.0/token",
        {
            "grant_type": "client_credentials",
            "client_id": BUILD_BOT_ID,
            "client_secret": BUILD_BOT_SECRET,
            "scope": DEVOPS_SCOPE,
        },
    )
    assert response.status_code == 200, response.text
    value: str = response.json()["access_token"]
    return value


@pytest.fixture(scope="module")
def git_world(entryway: Instance, tmp_path_factory: pytest.TempPathFactory) -> GitWorld:
    runtime = entryway.runtime
    apply_config(runtime, yaml.safe_load(GIT_CONFIG), source="test_git")
    git_root = runtime.settings.data_dir / "git"
    with runtime.db.unit_of_work() as session:
        orgs = OrgService(session, runtime.clock)
        org = orgs.get(ORG)
        members = {m.principal_name.lower(): m for m in orgs.list_members(org)}
        projects = ProjectService(session, runtime.clock, str(git_root))
        actor = Actor.local("test_git")
        project = projects.find(org, PROJECT)
        if project is None:
            project = projects.create(org, PROJECT, actor)
            projects.create_repository(org, project, REPO, actor)
        roles = {upn: role for upn, (_, role) in GIT_USERS.items()}
        roles[ADA.upn] = "contributors"
        roles[BUILD_BOT_ID] = "contributors"
        for name, role in roles.items():
            projects.set_role(org, project, members[name], ProjectRole.parse(role), actor)
        repository_id = projects.get_repository(org, REPO, project=project).id
    bare = repository_path(git_root, repository_id)  # created with the record (ProjectService)
    tokens = {upn: _user_token(entryway, upn) for upn in [*GIT_USERS, "gitout@contoso.test"]}
    tokens[ADA.upn] = _user_token(entryway, ADA.upn, ADA.password)
    tokens["build-bot"] = _app_token(entryway)
    home = tmp_path_factory.mktemp("git-home")
    helper = home / "token-helper.sh"
    # A credential helper as the docs show one: any user name, the access token as the password.
    helper.write_text(
        '#!/bin/sh\nif [ "$1" = get ]; then echo username=entryway; echo "password=$GIT_TEST_TOKEN"; fi\n'
    )
    helper.chmod(0o700)
    url = f"{entryway.devops}/{ORG}/{quote(PROJECT)}/_git/{REPO}"
    return GitWorld(entryway, url, repository_id, bare, tokens, home)


def git(
    world: GitWorld, *args: str, cwd: Path | None = None, token: str | None = None, helper: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GIT, *_auth(world, token, helper), *args],
        cwd=cwd,
        env=_env(world, token),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _auth(world: GitWorld, token: str | None, helper: bool) -> list[str]:
    if token is None:
        return []
    if helper:
        return ["-c", f"credential.helper={world.home / 'token-helper.sh'}"]
    return ["-c", f"http.extraHeader=Authorization: Bearer {token}"]


def _env(world: GitWorld, token: str | None) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(world.home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_SSL_CAINFO": world.instance.ca_bundle,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Entryway Tests",
        "GIT_AUTHOR_EMAIL": "tests@contoso.test",
        "GIT_COMMITTER_NAME": "Entryway Tests",
        "GIT_COMMITTER_EMAIL": "tests@contoso.test",
        "GIT_TEST_TOKEN": token or "",
    }


def commit_file(world: GitWorld, work: Path, name: str, content: bytes) -> None:
    (work / name).write_bytes(content)
    assert git(world, "add", name, cwd=work).returncode == 0
    done = git(world, "commit", "-q", "-m", f"add {name}", cwd=work)
    assert done.returncode == 0, done.stderr


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def test_clone_and_push_with_a_bearer_header(git_world: GitWorld, tmp_path: Path) -> None:
    token = git_world.tokens["ada@contoso.test"]
    work = tmp_path / "ada"
    ok(git(git_world, "clone", "-q", git_world.url, str(work), token=token))
    commit_file(git_world, work, "README.md", b"# widgets\n")
    ok(git(git_world, "push", "-q", "origin", "HEAD:refs/heads/main", cwd=work, token=token))
    listed = ok(git(git_world, "ls-remote", git_world.url, token=token)).stdout
    head = ok(git(git_world, "rev-parse", "HEAD", cwd=work)).stdout.strip()
    assert f"{head}\trefs/heads/main" in listed
    # Protocol v0 as well as v2 (git's default), through the organization-level URL too.
    org_url = f"{git_world.instance.devops}/{ORG}/_git/{REPO.upper()}"
    v0 = ok(git(git_world, "-c", "protocol.version=0", "ls-remote", org_url, token=token)).stdout
    assert f"{head}\trefs/heads/main" in v0
    # The push is in the audit log with the ref it moved.
    with git_world.instance.runtime.db.read() as session:
        rows = session.scalars(select(AuditEventRow).where(AuditEventRow.action == "Git.RefUpdate")).all()
        updates = [u for row in rows for u in row.details["refUpdates"] if u["newObjectId"] == head]
    assert updates
    assert updates[0]["name"] == "refs/heads/main"


def test_protocol_v2_is_spoken_when_asked(git_world: GitWorld) -> None:
    answer = requests.get(
        f"{git_world.url}/info/refs",
        params={"service": "git-upload-pack"},
        headers={"Authorization": f"Bearer {git_world.tokens[ADA.upn]}", "Git-Protocol": "version=2"},
        verify=git_world.instance.ca_bundle,
        allow_redirects=False,
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-git-upload-pack-advertisement"
    assert b"version 2\n" in answer.content
    assert b"ls-refs" in answer.content


def test_clone_and_push_with_a_credential_helper_answering_the_token(
    git_world: GitWorld, tmp_path: Path
) -> None:
    token = git_world.tokens["build-bot"]
    work = tmp_path / "bot"
    ok(git(git_world, "clone", "-q", git_world.url, str(work), token=token, helper=True))
    commit_file(git_world, work, "bot.txt", b"built\n")
    ok(git(git_world, "push", "-q", "origin", "HEAD:refs/heads/bot", cwd=work, token=token, helper=True))
    fetched = ok(git(git_world, "ls-remote", git_world.url, "refs/heads/bot", token=token, helper=True))
    assert fetched.stdout.endswith("\trefs/heads/bot\n")


def test_a_reader_clones_and_is_refused_the_push(git_world: GitWorld, tmp_path: Path) -> None:
    token = git_world.tokens["gitread@contoso.test"]
    work = tmp_path / "reader"
    ok(git(git_world, "clone", "-q", git_world.url, str(work), token=token))
    commit_file(git_world, work, "nope.txt", b"nope\n")
    refused = git(git_world, "push", "origin", "HEAD:refs/heads/reader", cwd=work, token=token)
    assert refused.returncode != 0
    assert (
        "remote: TF401027: You need the Git 'GenericContribute' permission to perform this action. "
        "Details: identity 'gitread@contoso.test', scope 'repository'." in refused.stderr
    )
    assert "The requested URL returned error: 403" in refused.stderr
    # The refusal is in the audit log (written off the request path: wait for it briefly).
    deadline = time.monotonic() + 5
    while True:
        with git_world.instance.runtime.db.read() as session:
            refusals = session.scalars(
                select(AuditEventRow).where(
                    AuditEventRow.action == "Authentication.Refused",
                    AuditEventRow.status == 403,
                    AuditEventRow.path.contains(REPO),
                )
            ).all()
        if refusals or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert refusals
    assert refusals[0].actor_id is not None
    assert refusals[0].credential_kind == "bearer:jwt"


def test_a_stakeholder_cannot_clone(git_world: GitWorld, tmp_path: Path) -> None:
    refused = git(
        git_world,
        "clone",
        git_world.url,
        str(tmp_path / "s"),
        token=git_world.tokens["gitstake@contoso.test"],
    )
    assert refused.returncode != 0
    assert (
        f"remote: TF401019: The Git repository with name or identifier {REPO} does not exist"
        in refused.stderr
    )
    assert "not found" in refused.stderr


def test_a_repository_that_does_not_exist_reads_like_one_that_is_hidden(
    git_world: GitWorld, tmp_path: Path
) -> None:
    url = f"{git_world.instance.devops}/{ORG}/{quote(PROJECT)}/_git/nothing-here"
    refused = git(git_world, "ls-remote", url, token=git_world.tokens["ada@contoso.test"])
    assert refused.returncode != 0
    assert "remote: TF401019: The Git repository with name or identifier nothing-here" in refused.stderr


def test_a_non_member_and_an_anonymous_git_are_refused(git_world: GitWorld, tmp_path: Path) -> None:
    outsider = git(
        git_world, "ls-remote", git_world.url, token=git_world.tokens["gitout@contoso.test"], helper=True
    )
    assert outsider.returncode != 0
    assert "Authentication failed" in outsider.stderr
    # Without credentials git gets the 401 challenge, and (no helper, no terminal) cannot ask for any.
    anonymous = requests.get(
        f"{git_world.url}/info/refs",
        params={"service": "git-upload-pack"},
        verify=git_world.instance.ca_bundle,
        allow_redirects=False,
    )
    assert anonymous.status_code == 401
    assert any(v.startswith("Basic realm=") for v in anonymous.headers["WWW-Authenticate"].split(", "))


def _vm(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(field_name)


def test_a_big_push_streams_through_with_flat_server_memory(git_world: GitWorld, tmp_path: Path) -> None:
    token = git_world.tokens["ada@contoso.test"]
    work = tmp_path / "big"
    ok(git(git_world, "clone", "-q", git_world.url, str(work), token=token))
    commit_file(git_world, work, "blob.bin", os.urandom(BIG_PUSH_BYTES))
    peak_before, rss_before = _vm("VmHWM"), _vm("VmRSS")
    sampled = [rss_before]
    pushing = subprocess.Popen(
        [GIT, *_auth(git_world, token, False), "push", "-q", "origin", "HEAD:refs/heads/big"],
        cwd=work,
        env=_env(git_world, token),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while pushing.poll() is None:
        sampled.append(_vm("VmRSS"))
        time.sleep(0.02)
    _, stderr = pushing.communicate(timeout=60)
    assert pushing.returncode == 0, stderr
    peak_after, rss_max = _vm("VmHWM"), max(sampled)
    print(
        f"\nbig push: {BIG_PUSH_BYTES / 2**20:.0f} MiB of random data; server process RSS "
        f"before {rss_before / 2**20:.1f} MiB, highest during the push {rss_max / 2**20:.1f} MiB "
        f"(+{(rss_max - rss_before) / 2**20:.1f} MiB); peak RSS (VmHWM) before {peak_before / 2**20:.1f} MiB, "
        f"after {peak_after / 2**20:.1f} MiB"
    )
    assert rss_max - rss_before < MAX_SERVER_GROWTH
    assert peak_after - peak_before < MAX_SERVER_GROWTH
    listed = ok(git(git_world, "ls-remote", git_world.url, "refs/heads/big", token=token)).stdout
    assert ok(git(git_world, "rev-parse", "HEAD", cwd=work)).stdout.strip() in listed


def test_two_concurrent_pushes_to_one_branch_one_wins_and_the_repository_stays_sound(
    git_world: GitWorld, tmp_path: Path
) -> None:
    token = git_world.tokens["ada@contoso.test"]
    works = [tmp_path / "first", tmp_path / "second"]
    for index, work in enumerate(works):
        ok(git(git_world, "clone", "-q", "--branch", "main", git_world.url, str(work), token=token))
        commit_file(git_world, work, f"race-{index}.txt", f"{index}\n".encode())
    pushes = [
        subprocess.Popen(
            [GIT, *_auth(git_world, token, False), "push", "origin", "HEAD:refs/heads/main"],
            cwd=work,
            env=_env(git_world, token),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for work in works
    ]
    outcomes = [(push.wait(timeout=60), push.communicate()[1]) for push in pushes]
    assert sorted(code == 0 for code, _ in outcomes) == [False, True], outcomes
    loser = next(err for code, err in outcomes if code != 0)
    assert "rejected" in loser, loser
    assert "fetch first" in loser or "failed to update ref" in loser or "cannot lock ref" in loser, loser
    winner = works[next(i for i, (code, _) in enumerate(outcomes) if code == 0)]
    listed = ok(git(git_world, "ls-remote", git_world.url, "refs/heads/main", token=token)).stdout
    assert ok(git(git_world, "rev-parse", "HEAD", cwd=winner)).stdout.strip() in listed
    fsck = subprocess.run(
        [GIT, "--git-dir", str(git_world.bare), "fsck", "--strict"],
        capture_output=True,
        text=True,
        check=False,
        env=_env(git_world, None),
    )
    assert fsck.returncode == 0, fsck.stderr


def test_a_push_cut_off_midway_changes_nothing(git_world: GitWorld) -> None:
    token = git_world.tokens[ADA.upn]
    zero = "0" * 40
    command = f"{zero} {'1' * 40} refs/heads/cut-off\0 report-status\n".encode()

    class CutOffError(Exception):
        pass

    def body() -> Iterator[bytes]:
        yield f"{len(command) + 4:04x}".encode() + command + b"0000"
        yield b"PACK\0\0\0\2\0\0\0\1" + os.urandom(256 * 1024)
        raise CutOffError

    with pytest.raises((CutOffError, requests.ConnectionError)):
        requests.post(
            f"{git_world.url}/git-receive-pack",
            data=body(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/x-git-receive-pack-request",
            },
            verify=git_world.instance.ca_bundle,
            timeout=30,
        )
    listed = ok(git(git_world, "ls-remote", git_world.url, token=token)).stdout
    assert "refs/heads/cut-off" not in listed
