"""`entryway login --identity` and git-credential-entryway's managed identity mode, against an Entryway of this
module's own whose IMDS-compatible endpoint is "this machine's" (which identities a host carries decides what a
request naming none gets, so the shared server gets none). msal finds the endpoint as on Azure, from
AZURE_POD_IDENTITY_AUTHORITY_HOST; real `entryway` and real git subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select

from entryway.client import jwt_claims
from entryway.devops.audit.recorder import Actor
from entryway.devops.orgs.service import OrgService
from entryway.devops.projects.permissions import ProjectRole
from entryway.devops.projects.service import ProjectService
from entryway.kit.clock import ManualClock
from entryway.store.models import ManagedIdentityRow
from tests.client.test_git_credential_git import BIN
from tests.client.test_login_cli import ENTRYWAY
from tests.conftest import Instance, start_entryway
from tests.devops.test_git import GIT

MI_TENANT = "c1e70015-1d00-4a1b-9e2f-3a4b5c6d7e90"
MI_ORG = "clienttools-mi"
PROJECT = "Client Tools"
REPO = "mi-widgets"


def resource_id(name: str) -> str:
    provider = "Microsoft.ManagedIdentity/userAssignedIdentities"
    return f"/subscriptions/{MI_TENANT}/resourceGroups/ClientTools/providers/{provider}/{name}"


VM_PROVIDER = "Microsoft.Compute/virtualMachines"
MI_CONFIG = f"""\
tenants:
  - id: {MI_TENANT}
    domains: [mi.clienttools.test]
    managed_identities:
      - name: tools-vm
        kind: system
        resource_id: /subscriptions/{MI_TENANT}/resourceGroups/ClientTools/providers/{VM_PROVIDER}/tools-vm
        on_host: true
      - name: tools-identity
        kind: user
        resource_id: {resource_id("tools-identity")}
        on_host: true
      - name: detached-identity
        kind: user
        resource_id: {resource_id("detached-identity")}
organizations:
  - name: {MI_ORG}
    tenant: mi.clienttools.test
    members:
      - managed_identity: tools-vm
        access: basic
      - managed_identity: tools-identity
        access: basic
"""


@dataclass(frozen=True)
class Host:
    instance: Instance
    vm_client_id: str
    user_client_id: str
    user_object_id: str
    detached_client_id: str
    url: str  # the repository's clone URL

    @property
    def imds(self) -> str:
        assert self.instance.server.imds_url is not None
        return self.instance.server.imds_url


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    instance = start_entryway(tmp_path_factory.mktemp("clienttools-mi"), ManualClock(), configs=(MI_CONFIG,))
    runtime = instance.runtime
    with runtime.db.read() as session:
        rows = {row.name: row for row in session.scalars(select(ManagedIdentityRow))}
    git_root = runtime.settings.data_dir / "git"
    with runtime.db.unit_of_work() as session:
        orgs = OrgService(session, runtime.clock)
        org = orgs.get(MI_ORG)
        projects = ProjectService(session, runtime.clock, str(git_root))
        actor = Actor.local("test_managed_identity_client")
        project = projects.create(org, PROJECT, actor)
        projects.create_repository(org, project, REPO, actor)
        for member in orgs.list_members(org):
            projects.set_role(org, project, member, ProjectRole.parse("contributors"), actor)
    yield Host(
        instance,
        vm_client_id=rows["tools-vm"].app_id,
        user_client_id=rows["tools-identity"].app_id,
        user_object_id=rows["tools-identity"].object_id,
        detached_client_id=rows["detached-identity"].app_id,
        url=f"{instance.devops}/{MI_ORG}/{quote(PROJECT)}/_git/{REPO}",
    )
    instance.server.stop()


def env_for(host: Host, home: Path, **extra: str) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ENTRYWAY_", "AZURE_", "IDENTITY_", "MSI_", "IMDS_", "GIT_"))
    }
    return {
        **base,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "HOME": str(home),
        "ENTRYWAY_AUTHORITY": host.instance.identity,
        "ENTRYWAY_CA_BUNDLE": host.instance.ca_bundle,
        "ENTRYWAY_CACHE_DIR": str(home / "cache"),
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": host.imds,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
        "GIT_SSL_CAINFO": host.instance.ca_bundle,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Entryway Tests",
        "GIT_AUTHOR_EMAIL": "tests@clienttools.test",
        "GIT_COMMITTER_NAME": "Entryway Tests",
        "GIT_COMMITTER_EMAIL": "tests@clienttools.test",
        **extra,
    }


def run(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def helper_get(host: Host, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "git-credential-entryway"), "get"],
        input=f"url={host.url}\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_login_with_the_system_assigned_identity_then_token(host: Host, tmp_path: Path) -> None:
    env = env_for(host, tmp_path)
    login = run(env, *ENTRYWAY, "login", "--identity")
    assert login.returncode == 0, login.stderr
    assert json.loads(login.stdout) == {
        "managedIdentity": "systemAssignedIdentity",
        "tenantId": MI_TENANT,
        "authority": host.instance.identity,
    }
    token = run(env, *ENTRYWAY, "token", "--query", "accessToken", "-o", "tsv")
    assert token.returncode == 0, token.stderr
    claims = jwt_claims(token.stdout.strip())
    assert (claims["appid"], claims["tid"], claims["idtyp"]) == (host.vm_client_id, MI_TENANT, "app")
    listed = json.loads(run(env, *ENTRYWAY, "account", "list").stdout)
    assert listed == [{"managedIdentity": "systemAssignedIdentity", "tenantId": MI_TENANT}]
    assert "eyJ" not in (tmp_path / "cache" / "service_principals.json").read_text()
    out = run(env, *ENTRYWAY, "logout")
    assert out.returncode == 0, out.stderr
    assert run(env, *ENTRYWAY, "token").returncode == 1


@pytest.mark.parametrize("selector", ["--client-id", "--object-id", "--resource-id"])
def test_login_with_a_user_assigned_identity_by_each_selector(
    host: Host, tmp_path: Path, selector: str
) -> None:
    value = {
        "--client-id": host.user_client_id,
        "--object-id": host.user_object_id,
        "--resource-id": resource_id("tools-identity"),
    }[selector]
    env = env_for(host, tmp_path)
    login = run(env, *ENTRYWAY, "login", "--identity", selector, value)
    assert login.returncode == 0, login.stderr
    assert json.loads(login.stdout)["managedIdentity"] == value
    token = run(env, *ENTRYWAY, "token", "--query", "accessToken", "-o", "tsv")
    assert token.returncode == 0, token.stderr
    assert jwt_claims(token.stdout.strip())["appid"] == host.user_client_id


def test_identity_not_on_this_host_or_no_endpoint_says_what_to_check(host: Host, tmp_path: Path) -> None:
    env = env_for(host, tmp_path)
    detached = run(env, *ENTRYWAY, "login", "--identity", "--client-id", host.detached_client_id)
    assert detached.returncode == 1
    assert f"The managed identity ({host.detached_client_id}) could not get a token" in detached.stderr
    assert "is the identity attached to it?" in detached.stderr
    nowhere = run(
        {**env, "AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9"}, *ENTRYWAY, "login", "--identity"
    )
    assert nowhere.returncode == 1
    assert "AZURE_POD_IDENTITY_AUTHORITY_HOST" in nowhere.stderr
    assert "Traceback" not in detached.stderr + nowhere.stderr
    assert not (tmp_path / "cache" / "service_principals.json").exists()


def test_git_clones_and_pushes_with_the_managed_identity(host: Host, tmp_path: Path) -> None:
    env = env_for(host, tmp_path, ENTRYWAY_GIT_MANAGED_IDENTITY="true")
    setup = run(env, str(BIN / "entryway"), "git", "setup", f"{host.instance.devops}/{MI_ORG}")
    assert setup.returncode == 0, setup.stderr
    work = tmp_path / "work"
    clone = run(env, GIT, "clone", host.url, str(work))
    assert clone.returncode == 0, clone.stderr
    (work / "mi.txt").write_text("pushed by the VM's managed identity through git-credential-entryway\n")
    assert run(env, GIT, "add", "mi.txt", cwd=work).returncode == 0
    assert run(env, GIT, "commit", "-q", "-m", "mi", cwd=work).returncode == 0
    push = run(env, GIT, "push", "-q", "origin", "HEAD:refs/heads/mi", cwd=work)
    assert push.returncode == 0, push.stderr
    config = (tmp_path / "gitconfig").read_text() + (work / ".git" / "config").read_text()
    assert "eyJ" not in config

    answer = helper_get(host, env)
    assert (answer.returncode, answer.stderr) == (0, "")
    fields = dict(line.split("=", 1) for line in answer.stdout.splitlines())
    assert sorted(fields) == ["password", "password_expiry_utc", "username"]
    assert fields["username"] == "systemAssignedIdentity"
    assert jwt_claims(fields["password"])["appid"] == host.vm_client_id

    # A user-assigned identity: by client ID, or `true` with AZURE_CLIENT_ID as DefaultAzureCredential takes it.
    for extra in (
        {"ENTRYWAY_GIT_MANAGED_IDENTITY": host.user_client_id},
        {"ENTRYWAY_GIT_MANAGED_IDENTITY": "true", "AZURE_CLIENT_ID": host.user_client_id},
        {"ENTRYWAY_GIT_MANAGED_IDENTITY": f"object_id={host.user_object_id}"},
        {"ENTRYWAY_GIT_MANAGED_IDENTITY": resource_id("tools-identity")},
    ):
        answer = helper_get(host, {**env, **extra})
        assert answer.returncode == 0, (extra, answer.stderr)
        password = dict(line.split("=", 1) for line in answer.stdout.splitlines())["password"]
        assert jwt_claims(password)["appid"] == host.user_client_id, extra


def test_the_helpers_managed_identity_mode_refuses_bad_settings(host: Host, tmp_path: Path) -> None:
    env = env_for(host, tmp_path)
    cases = [
        ({"ENTRYWAY_GIT_MANAGED_IDENTITY": "maybe"}, "is not true, system, a client ID"),
        (
            {"ENTRYWAY_GIT_MANAGED_IDENTITY": "true", "AZURE_CLIENT_SECRET": "s"},
            "ENTRYWAY_GIT_MANAGED_IDENTITY and AZURE_CLIENT_SECRET are both set",
        ),
        ({"ENTRYWAY_GIT_MANAGED_IDENTITY": host.detached_client_id}, "is the identity attached to it?"),
        (
            {
                "ENTRYWAY_GIT_MANAGED_IDENTITY": "true",
                "AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9",
            },
            "could not get a token",
        ),
    ]
    for extra, message in cases:
        done = helper_get(host, {**env, **extra})
        assert (done.returncode, done.stdout) == (1, ""), extra
        assert message in done.stderr, (extra, done.stderr)
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "cache").exists(), "the helper keeps nothing"
