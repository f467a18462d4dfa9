"""Continuous access evaluation end to end with the client tools (issue 8's "a claims challenge from the
service", issue 9's CAE): a CP1 token from `entryway token` and git through git-credential-entryway work; the
administrator revokes the user's sessions; the DevOps service answers the still-unexpired token with the
insufficient_claims challenge; `entryway token --claims-challenge` and the helper (after git's `erase`) say to
sign in again; `entryway login --claims-challenge` does, and git works again. Real `entryway`, real git, the
shared server, the tests' own tenant clienttools.test."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from entryway.client import jwt_claims
from entryway.devops.audit.recorder import Actor
from entryway.devops.orgs.service import OrgService
from entryway.devops.projects.permissions import ProjectRole
from entryway.devops.projects.service import ProjectService
from entryway.identity.directory.service import DirectoryService
from tests.client.clienttools import CT_ORG, CT_TENANT, GUS, with_clienttools
from tests.client.test_git_credential_git import BIN, _env, _run
from tests.client.test_login_cli import ENTRYWAY, device_login
from tests.conftest import Instance
from tests.devops.test_git import GIT, GitWorld

PROJECT = "Client Tools"
REPO = "cae-widgets"
POLL_SECONDS = 10  # the DevOps service reads the event feed at most once a second


@pytest.fixture(scope="module")
def world(entryway: Instance, tmp_path_factory: pytest.TempPathFactory) -> GitWorld:
    with_clienttools(entryway)
    runtime = entryway.runtime
    with runtime.db.unit_of_work() as session:
        orgs = OrgService(session, runtime.clock)
        org = orgs.get(CT_ORG)
        projects = ProjectService(session, runtime.clock, str(runtime.settings.data_dir / "git"))
        actor = Actor.local("test_cae_client")
        project = projects.find(org, PROJECT) or projects.create(org, PROJECT, actor)
        repository = projects.create_repository(org, project, REPO, actor)
        member = next(m for m in orgs.list_members(org) if m.principal_name.lower() == GUS.upn)
        projects.set_role(org, project, member, ProjectRole.parse("contributors"), actor)
    url = f"{entryway.devops}/{CT_ORG}/{quote(PROJECT)}/_git/{REPO}"
    return GitWorld(entryway, url, repository.id, Path(), {}, tmp_path_factory.mktemp("cae-home"))


def connection_data(instance: Instance, token: str) -> requests.Response:
    return requests.get(
        f"{instance.devops}/{CT_ORG}/_apis/connectionData",
        headers={"Authorization": f"Bearer {token}"},
        verify=instance.ca_bundle,
        timeout=30,
    )


def until(check: Callable[[], requests.Response], wanted: int) -> requests.Response:
    end = time.monotonic() + POLL_SECONDS
    while True:
        response = check()
        if response.status_code == wanted or time.monotonic() > end:
            return response
        time.sleep(0.2)


def test_revoked_sessions_reach_entryway_token_and_git_then_login_again(
    world: GitWorld, tmp_path: Path
) -> None:
    instance = world.instance
    home = tmp_path / "home"
    home.mkdir()
    env = _env(world, home)
    login = device_login(instance, env, "--tenant", CT_TENANT, user=GUS)
    assert login.returncode == 0, login.stderr
    assert _run([str(BIN / "entryway"), "git", "setup", f"{instance.devops}/{CT_ORG}"], env).returncode == 0
    work = tmp_path / "work"
    clone = _run([GIT, "clone", world.url, str(work)], env)
    assert clone.returncode == 0, clone.stderr
    token = _run([*ENTRYWAY, "token", "--query", "accessToken", "-o", "tsv"], env).stdout.strip()
    assert jwt_claims(token)["xms_cc"] == ["CP1"], "a CAE token: the service may challenge it"
    assert connection_data(instance, token).status_code == 200

    # The administrator revokes Gus's sessions (refresh tokens and browser sessions, and a CAE event).
    instance.clock.advance(1.5)  # events refuse tokens issued in an earlier second
    with instance.runtime.db.unit_of_work() as session:
        directory = DirectoryService(session, instance.runtime.clock, instance.runtime.digester)
        user = directory.find_user(GUS.upn)
        assert user is not None
        directory.revoke_sessions(user)
    refused = until(lambda: connection_data(instance, token), 401)
    assert refused.status_code == 401, refused.text
    header = next(h for h in refused.raw.headers.getlist("WWW-Authenticate") if h.startswith("Bearer "))
    assert 'error="insufficient_claims"' in header
    match = re.search(r'claims="([^"]+)"', header)
    assert match
    challenge = match.group(1)
    assert "nbf" in json.loads(base64.b64decode(challenge))["access_token"]

    # `entryway token` with the challenge: the refresh token is revoked, so a new sign-in is needed.
    asked = _run([*ENTRYWAY, "token", "--claims-challenge", challenge], env)
    assert asked.returncode == 1
    assert asked.stdout == ""
    assert "entryway login" in asked.stderr
    assert f"`entryway login --claims-challenge {challenge}`" in asked.stderr

    # git: the cached token is refused (401), git erases it; the next get forces a refresh, which is refused,
    # and the helper says to sign in again.
    first = _run([GIT, "fetch", "-q", "origin"], env, cwd=work)
    assert first.returncode != 0
    assert (home / "cache" / "git-refresh.json").exists()
    second = _run([GIT, "fetch", "-q", "origin"], env, cwd=work)
    assert second.returncode != 0
    assert "git-credential-entryway: Could not refresh the token for gus@clienttools.test" in second.stderr
    assert "entryway login" in second.stderr

    # A fresh sign-in satisfies the challenge; git works again (the forced refresh, then the cache).
    again = device_login(instance, env, "--tenant", CT_TENANT, "--claims-challenge", challenge, user=GUS)
    assert again.returncode == 0, again.stderr
    fetched = _run([GIT, "fetch", "-q", "origin"], env, cwd=work)
    assert fetched.returncode == 0, fetched.stderr
    fresh = _run(
        [*ENTRYWAY, "token", "--claims-challenge", challenge, "--query", "accessToken", "-o", "tsv"], env
    )
    assert fresh.returncode == 0, fresh.stderr
    assert connection_data(instance, fresh.stdout.strip()).status_code == 200
