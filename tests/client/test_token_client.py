"""entryway.client: settings, the persistent 0600 token cache, silent acquisition and NeedsLogin (issue 8)."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from entryway.client import (
    AZURE_CLI_CLIENT_ID,
    DEVOPS_SCOPE,
    ClientSettings,
    NeedsLogin,
    TokenClient,
)
from tests.conftest import ADA, CONTOSO_TENANT, Instance, complete_device_login


def settings_for(entryway: Instance, cache_dir: Path, **overrides: str) -> ClientSettings:
    return ClientSettings.from_env(
        {"ENTRYWAY_AUTHORITY": entryway.identity, "ENTRYWAY_CA_BUNDLE": entryway.ca_bundle},
        cache_dir=cache_dir,
        **overrides,
    )


def test_settings_defaults_and_environment(tmp_path: Path) -> None:
    default = ClientSettings.from_env({"HOME": str(tmp_path)})
    assert default.authority_host == "https://login.microsoftonline.com"
    assert default.tenant == "organizations"
    assert default.client_id == AZURE_CLI_CLIENT_ID
    assert default.ca_bundle is None
    assert default.cache_dir == tmp_path / ".cache" / "entryway"
    assert ClientSettings.from_env({"XDG_CACHE_HOME": str(tmp_path)}).cache_dir == tmp_path / "entryway"
    given = ClientSettings.from_env(
        {
            "ENTRYWAY_AUTHORITY": "https://localhost:8443/",
            "ENTRYWAY_TENANT": CONTOSO_TENANT,
            "ENTRYWAY_CLIENT_ID": "client",
            "REQUESTS_CA_BUNDLE": "/ca.pem",
            "ENTRYWAY_CACHE_DIR": str(tmp_path / "c"),
        },
        tenant="other",
        client_id=None,
    )
    assert given.authority_host == "https://localhost:8443"
    assert given.authority() == "https://localhost:8443/other"
    assert given.client_id == "client"
    assert given.ca_bundle == "/ca.pem"
    assert given.cache_dir == tmp_path / "c"
    assert ClientSettings.from_env({"ENTRYWAY_CA_BUNDLE": "/a", "REQUESTS_CA_BUNDLE": "/b"}).ca_bundle == "/a"


def test_no_account_needs_login(entryway: Instance, tmp_path: Path) -> None:
    client = TokenClient(settings_for(entryway, tmp_path))
    assert client.accounts() == []
    with pytest.raises(NeedsLogin, match=r"No account is signed in.*Run `entryway login`"):
        client.acquire_silent([DEVOPS_SCOPE])
    with pytest.raises(NeedsLogin, match=rf"for tenant {CONTOSO_TENANT}.*--tenant {CONTOSO_TENANT}"):
        client.acquire_silent([DEVOPS_SCOPE], tenant=CONTOSO_TENANT)


def test_unreadable_cache_needs_login(entryway: Instance, tmp_path: Path) -> None:
    (tmp_path / "msal_token_cache.json").write_text("not json")
    with pytest.raises(NeedsLogin, match=r"not readable.*delete it"):
        TokenClient(settings_for(entryway, tmp_path))


def test_device_login_cached_0600_then_silent_and_forced_refresh(entryway: Instance, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    client = TokenClient(settings_for(entryway, cache_dir, tenant=CONTOSO_TENANT))
    app = client.app()
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    with ThreadPoolExecutor(1) as person:
        signed_in = person.submit(complete_device_login, entryway, flow["user_code"], ADA)
        result = app.acquire_token_by_device_flow(
            flow, exit_condition=lambda _: signed_in.done() and signed_in.exception() is not None
        )
        signed_in.result()
    assert "access_token" in result, result
    client.save()
    cache = cache_dir / "msal_token_cache.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700

    # A new process (a new client on the same file) finds the account and the token.
    again = TokenClient(settings_for(entryway, cache_dir))
    [account] = again.accounts()
    assert account.username == ADA.upn
    assert account.tenant_id == CONTOSO_TENANT
    token = again.acquire_silent([DEVOPS_SCOPE])
    assert token.token == result["access_token"]
    assert token.username == ADA.upn
    assert token.tenant_id == CONTOSO_TENANT
    # Less than min_remaining left (here: always): refreshed with the refresh token.
    # (A CP1 client's token lives 24 h, entra-wire-contract 5: 25 h is more than any token has.)
    fresh = again.acquire_silent([DEVOPS_SCOPE], min_remaining=timedelta(hours=25))
    assert fresh.token != result["access_token"]
    assert fresh.username == ADA.upn
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
