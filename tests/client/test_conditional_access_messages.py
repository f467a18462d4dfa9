"""What the client tools say when the identity platform's Conditional Access refuses a token (issue 8's
messages, issue 9's enforcement at the token endpoint), with real `entryway` and git-credential-entryway
subprocesses, on clienttools.test only: each policy is added (through the config file's `conditional_access:`)
after its user or app signed in, so the refusal comes at the next refresh, as it does when an administrator
adds a policy."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from entryway.config.declarative import apply_config
from tests.client.clienttools import (
    CT_BLOCKED_BOT_ID,
    CT_BLOCKED_BOT_SECRET,
    CT_ORG,
    CT_TENANT,
    DALE,
    EVE,
    FAY,
    with_clienttools,
)
from tests.client.test_git_credential_git import BIN
from tests.client.test_login_cli import client_env, device_login, run
from tests.conftest import Instance

DEVOPS = "499b84ac-1321-427f-aa17-267ca6975798"


@pytest.fixture(scope="module")
def clienttools(entryway: Instance) -> Instance:
    return with_clienttools(entryway)


def add_policy(instance: Instance, **policy: object) -> None:
    config = {
        "tenants": [
            {"id": CT_TENANT, "domains": ["clienttools.test"], "conditional_access": {"policies": [policy]}}
        ]
    }
    apply_config(instance.runtime, yaml.safe_load(yaml.safe_dump(config)), source="clienttools-ca")


def helper_get(instance: Instance, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "git-credential-entryway"), "get"],
        input=f"url={instance.devops}/{CT_ORG}/Tools/_git/tools\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_user_blocked_by_conditional_access_is_told_to_ask_the_administrator(
    clienttools: Instance, tmp_path: Path
) -> None:
    env = client_env(clienttools, tmp_path / "cache")
    assert device_login(clienttools, env, "--tenant", CT_TENANT, user=DALE).returncode == 0
    assert run(env, "token").returncode == 0
    add_policy(
        clienttools, name="clienttools: block Dale", users=[DALE.upn], applications=[DEVOPS], grant="block"
    )
    refused = run(env, "token", "--min-remaining", "999999")  # the cached token will not do: refresh
    assert refused.returncode == 1
    assert "AADSTS53003" in refused.stderr
    assert "blocked by Conditional Access: ask your administrator (signing in again will not help)" in (
        refused.stderr
    )
    assert refused.stdout == ""
    # The helper forces a refresh after git's erase (a 401 from the service): the same message.
    erase = subprocess.run(
        [str(BIN / "git-credential-entryway"), "erase"],
        input=f"url={clienttools.devops}/{CT_ORG}/Tools/_git/tools\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert erase.returncode == 0, erase.stderr
    answer = helper_get(clienttools, env)
    assert (answer.returncode, answer.stdout) == (1, "")
    assert "AADSTS53003" in answer.stderr
    assert "blocked by Conditional Access: ask your administrator" in answer.stderr


def test_mfa_required_by_a_policy_for_a_user_without_an_authenticator(
    clienttools: Instance, tmp_path: Path
) -> None:
    env = client_env(clienttools, tmp_path / "cache")
    assert device_login(clienttools, env, "--tenant", CT_TENANT, user=EVE).returncode == 0
    add_policy(
        clienttools, name="clienttools: MFA for Eve", users=[EVE.upn], applications=[DEVOPS], grant="mfa"
    )
    refused = run(env, "token", "--min-remaining", "999999")
    assert refused.returncode == 1
    assert "AADSTS50079" in refused.stderr
    assert (
        "you must enroll in multi-factor authentication: run `entryway login` again and follow the pages"
        in (refused.stderr)
    )


def test_a_service_principal_blocked_by_a_workload_identity_policy(
    clienttools: Instance, tmp_path: Path
) -> None:
    env = client_env(clienttools, tmp_path / "cache")
    login = run(
        env,
        "login",
        "--service-principal",
        "-u",
        CT_BLOCKED_BOT_ID,
        "--secret",
        CT_BLOCKED_BOT_SECRET,
        "--tenant",
        CT_TENANT,
    )
    assert login.returncode == 0, login.stderr
    add_policy(
        clienttools,
        name="clienttools: block the blocked bot",
        service_principals=[CT_BLOCKED_BOT_ID],
        applications=["All"],
        locations=["All"],
        grant="block",
    )
    refused = run(env, "token", "--min-remaining", "999999")
    assert refused.returncode == 1
    assert "AADSTS53003" in refused.stderr
    assert f"The service principal {CT_BLOCKED_BOT_ID} could not get a token" in refused.stderr
    assert "blocked by Conditional Access: ask your administrator" in refused.stderr
    # The same app from the environment, as CI runs the git helper.
    ci = {
        **env,
        "AZURE_CLIENT_ID": CT_BLOCKED_BOT_ID,
        "AZURE_TENANT_ID": CT_TENANT,
        "AZURE_CLIENT_SECRET": CT_BLOCKED_BOT_SECRET,
    }
    answer = helper_get(clienttools, ci)
    assert (answer.returncode, answer.stdout) == (1, "")
    assert "AADSTS53003" in answer.stderr


def test_a_sign_in_older_than_the_sign_in_frequency_needs_a_new_login(
    clienttools: Instance, tmp_path: Path
) -> None:
    env = client_env(clienttools, tmp_path / "cache")
    assert device_login(clienttools, env, "--tenant", CT_TENANT, user=FAY).returncode == 0
    add_policy(
        clienttools,
        name="clienttools: Fay signs in every hour",
        users=[FAY.upn],
        applications=[DEVOPS],
        sign_in_frequency="1h",
    )
    passed = timedelta(hours=2)
    clienttools.clock.advance(passed)
    try:
        refused = run(env, "token", "--min-remaining", "999999")
        again = device_login(clienttools, env, "--tenant", CT_TENANT, user=FAY)
        after = run(env, "token", "--min-remaining", "999999")
    finally:
        clienttools.clock.advance(-passed)  # the session's other tests keep the clock they had
    assert refused.returncode == 1
    assert "AADSTS70043" in refused.stderr
    assert "your organization's sign-in frequency: run `entryway login` again" in refused.stderr
    assert again.returncode == 0, again.stderr
    assert after.returncode == 0, after.stderr
