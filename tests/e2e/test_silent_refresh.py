"""Silent acquisition after the access token expires, by moving the shared clock, not by sleeping.

msal decides that a cached access token has expired with `time.time()`; the server dates tokens with the
shared ManualClock. So that both sides see the same hour pass, msal's modules read the ManualClock here
(`time` in msal.application and msal.token_cache is swapped for a view of the shared clock); nothing else
in msal changes, and the refresh it then sends is a real refresh_token grant.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

import msal.application
import msal.token_cache
import pytest

from tests.conftest import ADA, DEVOPS_SCOPE, Instance, complete_device_login
from tests.devops.test_token_rejection import LEEWAY, assert_challenge
from tests.e2e.flows import assert_delegated_devops_token, claims_of, connection_data, public_client


class SharedClockTime(ModuleType):
    """The `time` module, except that time() is the shared clock's."""

    def __init__(self, instance: Instance) -> None:
        super().__init__("time")
        self._instance = instance

    def time(self) -> float:
        return self._instance.clock.timestamp()

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def msal_on_the_shared_clock(entryway: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    shim = SharedClockTime(entryway)
    monkeypatch.setattr(msal.application, "time", shim)
    monkeypatch.setattr(msal.token_cache, "time", shim)


@pytest.mark.usefixtures("msal_on_the_shared_clock")
def test_silent_acquisition_after_the_access_token_expires(entryway: Instance) -> None:
    app = public_client(entryway)
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    complete_device_login(entryway, flow["user_code"], ADA)
    first = app.acquire_token_by_device_flow(flow)
    assert "access_token" in first, first
    [account] = app.get_accounts(username=ADA.upn)

    cached = app.acquire_token_silent([DEVOPS_SCOPE], account)
    assert cached is not None
    assert cached["access_token"] == first["access_token"]
    assert cached["token_source"] == "cache"

    entryway.clock.advance(first["expires_in"] + LEEWAY + 60)
    assert_challenge(connection_data(entryway, first["access_token"]), entryway)  # expired at the server too

    renewed = app.acquire_token_silent([DEVOPS_SCOPE], account)
    assert renewed is not None
    assert "access_token" in renewed, renewed
    assert renewed["token_source"] == "identity_provider", "a refresh_token grant, not the cache"
    assert renewed["access_token"] != first["access_token"]
    claims = assert_delegated_devops_token(renewed["access_token"], ADA)
    assert abs(claims["exp"] - (entryway.clock.timestamp() + renewed["expires_in"])) < 30
    assert claims["exp"] > claims_of(first["access_token"])["exp"] + first["expires_in"]
    response = connection_data(entryway, renewed["access_token"])
    assert response.status_code == 200, response.text

    # The refresh token was rotated: the cache holds the new one, and the old one is spent.
    [refresh_entry] = app.token_cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN)
    assert refresh_entry["secret"] != first["refresh_token"]
