"""Groups and directory roles: made with the CLI, carried as `groups` and `wids` in real msal tokens.

A tenant of its own (groups.test). Users sign in with msal's device code flow under the Azure CLI's client id
(the device login page walked over HTTP), against the shared server over TLS; the CLI runs on the same data
directory.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import jwt
import msal
import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from entryway.cli.main import app as cli
from entryway.config.declarative import apply_config
from entryway.identity.directory.groups import (
    DEFAULT_USER_ROLE,
    MAX_GROUPS_IN_TOKEN,
    ROLE_TEMPLATES,
    GroupService,
)
from entryway.identity.directory.service import DirectoryService
from tests.conftest import AZURE_CLI_ID, DEVOPS_SCOPE, Instance, SignInUser, complete_device_login

TENANT_ID = "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d"
DOMAIN = "groups.test"
GINA = ("gina@groups.test", "Gina-Groups-Tests-0042")  # in groups, holds roles
HAL = ("hal@groups.test", "Hal-Groups-Tests-0042")  # in no group, holds no role
OLGA = ("olga@groups.test", "Olga-Groups-Tests-0042")  # in more groups than a token carries
DEVOPS_ADMIN = ROLE_TEMPLATES["Azure DevOps Administrator"]
GLOBAL_ADMIN = ROLE_TEMPLATES["Global Administrator"]
CONFIG = f"""\
tenants:
  - id: {TENANT_ID}
    domains: [{DOMAIN}]
    users:
      - upn: {GINA[0]}
        password: "{GINA[1]}"
        mfa_required: false
      - upn: {HAL[0]}
        password: "{HAL[1]}"
        mfa_required: false
      - upn: {OLGA[0]}
        password: "{OLGA[1]}"
        mfa_required: false
    apps:
      - name: groups-bot
        client_id: 7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e
"""


def run(instance: Instance, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--data-dir", str(instance.settings.data_dir)])


def ok(instance: Instance, *args: str) -> str:
    result = run(instance, *args)
    assert result.exit_code == 0, result.output
    return result.output


def refused(instance: Instance, *args: str) -> str:
    result = run(instance, *args)
    assert result.exit_code == 2, result.output
    return result.output


def tokens(instance: Instance, user: tuple[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The claims of the access token and the ID token msal gets for the user."""
    app = msal.PublicClientApplication(
        AZURE_CLI_ID, authority=instance.authority(TENANT_ID), instance_discovery=False
    )
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    assert "user_code" in flow, flow
    person = SignInUser(user[0], user[1], user[0], mfa=False)
    complete_device_login(instance, flow["user_code"], person, verification_uri=flow["verification_uri"])
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    options = {"verify_signature": False}
    return jwt.decode(result["access_token"], options=options), jwt.decode(
        result["id_token"], options=options
    )


@pytest.fixture(scope="module")
def groups(entryway: Instance) -> dict[str, str]:
    """Builders (gina, the bot, and Platform) and Platform (nested in Builders; Release nested in it)."""
    apply_config(entryway.runtime, yaml.safe_load(CONFIG), source="test_groups")
    ids = {}
    for name in ("Builders", "Platform", "Release", "Empty"):
        ids[name] = ok(entryway, "group", "create", name, "--tenant", DOMAIN).split("\t")[0]
    ok(entryway, "group", "add-member", "Builders", "--tenant", DOMAIN, "--user", GINA[0])
    ok(entryway, "group", "add-member", "Builders", "--tenant", DOMAIN, "--app", "groups-bot")
    ok(entryway, "group", "add-member", "Builders", "--tenant", DOMAIN, "--group", "Platform")
    ok(entryway, "group", "add-member", "Platform", "--tenant", DOMAIN, "--group", "Release")
    ok(entryway, "group", "add-member", "Release", "--tenant", DOMAIN, "--user", GINA[0])
    return ids


def test_a_token_carries_the_transitive_groups(entryway: Instance, groups: dict[str, str]) -> None:
    access, id_token = tokens(entryway, GINA)
    # gina is in Builders and Release directly, and in Platform and Builders through Release.
    expected = sorted([groups["Builders"], groups["Platform"], groups["Release"]])
    assert sorted(access["groups"]) == expected
    assert sorted(id_token["groups"]) == expected
    assert "hasgroups" not in access


def test_no_groups_no_claim_and_the_default_user_role(entryway: Instance, groups: dict[str, str]) -> None:
    access, id_token = tokens(entryway, HAL)
    assert "groups" not in access
    assert "groups" not in id_token
    assert access["wids"] == [DEFAULT_USER_ROLE]


def test_roles_are_carried_as_wids_and_taken_away(entryway: Instance, groups: dict[str, str]) -> None:
    ok(entryway, "user", "role", "add", GINA[0], "--role", "Azure DevOps Administrator")
    assert "already held" in ok(
        entryway, "user", "role", "add", GINA[0], "--role", "azure devops administrator"
    )
    ok(entryway, "user", "role", "add", GINA[0], "--role", GLOBAL_ADMIN)
    listed = ok(entryway, "user", "role", "list", GINA[0])
    assert "Azure DevOps Administrator" in listed
    assert "Global Administrator" in listed
    access, id_token = tokens(entryway, GINA)
    assert sorted(access["wids"]) == sorted([DEVOPS_ADMIN, GLOBAL_ADMIN, DEFAULT_USER_ROLE])
    assert sorted(id_token["wids"]) == sorted(access["wids"])
    ok(entryway, "user", "role", "remove", GINA[0], "--role", "Global Administrator")
    access, _ = tokens(entryway, GINA)
    assert sorted(access["wids"]) == sorted([DEVOPS_ADMIN, DEFAULT_USER_ROLE])
    ok(entryway, "user", "role", "remove", GINA[0], "--role", "Azure DevOps Administrator")


def test_more_groups_than_a_token_holds_is_marked_as_overage(
    entryway: Instance, groups: dict[str, str]
) -> None:
    with entryway.runtime.db.unit_of_work() as session:
        directory = DirectoryService(session, entryway.clock, entryway.runtime.digester)
        service = GroupService(session, entryway.clock)
        tenant = directory.find_tenant(DOMAIN)
        olga = service.resolve_member(tenant, user=OLGA[0])
        for i in range(MAX_GROUPS_IN_TOKEN + 1):
            service.create_group(tenant, f"overage-{i:03d}")
            service.add_member(tenant, f"overage-{i:03d}", olga)
    access, id_token = tokens(entryway, OLGA)
    assert "groups" not in access
    assert access["hasgroups"] is True
    assert id_token["hasgroups"] is True


def test_group_list_shows_members(entryway: Instance, groups: dict[str, str]) -> None:
    listing = yaml.safe_load(ok(entryway, "group", "list", "--tenant", DOMAIN, "--json"))
    builders = next(g for g in listing if g["displayName"] == "Builders")
    assert {(m["kind"], m["name"]) for m in builders["members"]} == {
        ("user", GINA[0]),
        ("servicePrincipal", "7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e"),
        ("group", "Platform"),
    }
    assert "Empty\t-" in ok(entryway, "group", "list", "--tenant", DOMAIN)


def test_removing_a_member_and_deleting_a_group(entryway: Instance, groups: dict[str, str]) -> None:
    ok(entryway, "group", "create", "Temporary", "--tenant", DOMAIN)
    ok(entryway, "group", "add-member", "Temporary", "--tenant", DOMAIN, "--user", HAL[0])
    ok(entryway, "group", "add-member", "Builders", "--tenant", DOMAIN, "--group", "Temporary")
    access, _ = tokens(entryway, HAL)
    assert groups["Builders"] in access["groups"]
    ok(entryway, "group", "remove-member", "Temporary", "--tenant", DOMAIN, "--user", HAL[0])
    assert "groups" not in tokens(entryway, HAL)[0]
    ok(entryway, "group", "add-member", "Temporary", "--tenant", DOMAIN, "--user", HAL[0])
    ok(entryway, "group", "delete", "Temporary", "--tenant", DOMAIN)
    assert "groups" not in tokens(entryway, HAL)[0]  # its membership of Builders went with it
    assert "Temporary" not in ok(entryway, "group", "list", "--tenant", DOMAIN)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("group", "create", "Builders"), "already exists"),
        (("group", "create", " "), "1 to 256"),
        (("group", "delete", "Nobody"), "no group 'Nobody'"),
        (("group", "add-member", "Builders", "--user", "nobody@groups.test"), "no user"),
        (("group", "add-member", "Builders", "--user", "ada@contoso.test"), "no user"),  # another tenant
        (("group", "add-member", "Builders", "--app", str(uuid.UUID(int=7))), "no service principal"),
        (("group", "add-member", "Builders", "--group", "Builders"), "cycle"),
        (("group", "add-member", "Release", "--group", "Builders"), "cycle"),  # Builders > Platform > Release
        (("group", "add-member", "Builders"), "exactly one member"),
        (("group", "add-member", "Builders", "--user", GINA[0], "--group", "Empty"), "exactly one member"),
        (("group", "remove-member", "Empty", "--user", GINA[0]), "not a direct member"),
    ],
)
def test_bad_group_commands_are_refused(
    entryway: Instance, groups: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    assert message in refused(entryway, *args, "--tenant", DOMAIN)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("user", "role", "add", GINA[0], "--role", "Printer Operator"), "unknown directory role"),
        (("user", "role", "add", "nobody@groups.test", "--role", "Global Administrator"), "not found"),
        (("user", "role", "remove", HAL[0], "--role", "Global Administrator"), "does not hold"),
    ],
)
def test_bad_role_commands_are_refused(
    entryway: Instance, groups: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    assert message in refused(entryway, *args)


def test_group_names_are_per_tenant(entryway: Instance, groups: dict[str, str], tmp_path: Path) -> None:
    # contoso.test may have its own "Builders".
    output = ok(entryway, "group", "create", "Builders", "--tenant", "contoso.test")
    assert output.split("\t")[0] != groups["Builders"]
    ok(entryway, "group", "delete", "Builders", "--tenant", "contoso.test")
