"""Critical events reach DevOps services in other processes: two `entryway serve` processes on one data
directory, a CP1 token from each, a password reset by `entryway user password` (a third process), and both
DevOps services answer the claims challenge within seconds; the identity platform then wants a fresh sign-in."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msal
import pytest
import requests

from entryway.identity.directory.first_party import AZURE_CLI
from entryway.kit.clock import ManualClock
from tests.conftest import DEVOPS_SCOPE, SignInUser, walk_sign_in
from tests.test_cli import SERVE_TIMEOUT, Served, start_serve, stop_serve

PASSWORD = "Sam-Before-Reset-0042"
SAM = SignInUser("sam@cae.test", PASSWORD, "Sam", mfa=False)
CONFIG = f"""\
tenants:
  - id: c4e0a1b2-3c4d-4e5f-8a6b-7c8d9e0f1a2c
    domains: [cae.test]
    users:
      - {{upn: sam@cae.test, password: "{PASSWORD}", mfa_required: false}}
organizations:
  - name: caeorg
    tenant: cae.test
    members:
      - {{user: sam@cae.test, access: basic}}
"""
DEADLINE = 10.0


@pytest.fixture
def servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Served, Served]]:
    data_dir = tmp_path / "data"
    config = tmp_path / "cae.yaml"
    config.write_text(CONFIG)
    first = start_serve(data_dir, "--config", str(config), "--no-demo", "--no-managed-identity")
    try:
        second = start_serve(data_dir, "--no-demo", "--no-managed-identity")
        # requests prefers REQUESTS_CA_BUNDLE to a session's own `verify`: point it at this data dir's CA.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", first.field("CA bundle"))
        monkeypatch.setenv("SSL_CERT_FILE", first.field("CA bundle"))
        try:
            yield first, second
        finally:
            stop_serve(second)
    finally:
        stop_serve(first)


def cae_token(served: Served) -> tuple[msal.PublicClientApplication, str]:
    """Sam signs in with the device code flow at this process's identity platform, from a CP1 client."""
    ca_bundle = served.field("CA bundle")
    http = requests.Session()
    http.verify = ca_bundle
    app = msal.PublicClientApplication(
        AZURE_CLI.app_id,
        authority=f"{served.field('identity platform')}/cae.test",
        instance_discovery=False,
        client_capabilities=["CP1"],
        http_client=http,
    )
    flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
    browser = requests.Session()
    browser.verify = ca_bundle
    page = browser.get(f"{served.field('identity platform')}/devicelogin", timeout=30)
    done = walk_sign_in(browser, page, user=SAM, user_code=flow["user_code"], clock=ManualClock())
    assert "AADSTS" not in done.html, done.html
    result: dict[str, Any] = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    return app, result["access_token"]


def projects(served: Served, token: str) -> requests.Response:
    return requests.get(
        f"{served.field('DevOps service')}/caeorg/_apis/projects",
        headers={"Authorization": f"Bearer {token}", "X-TFS-FedAuthRedirect": "Suppress"},
        verify=served.field("CA bundle"),
        timeout=30,
    )


def challenged(served: Served, token: str) -> dict[str, Any] | None:
    response = projects(served, token)
    if response.status_code != 401:
        return None
    (bearer,) = [h for h in response.raw.headers.getlist("WWW-Authenticate") if h.startswith("Bearer ")]
    assert 'error="insufficient_claims"' in bearer, bearer
    decoded: dict[str, Any] = json.loads(base64.b64decode(bearer.split('claims="', 1)[1].rstrip('"')))
    return decoded


def test_a_password_reset_reaches_every_devops_process_within_seconds(
    servers: tuple[Served, Served], tmp_path: Path
) -> None:
    tokens = [cae_token(served) for served in servers]
    for served, (_, token) in zip(servers, tokens, strict=True):
        assert projects(served, token).status_code == 200
    time.sleep(1.1)  # the reset in a later second than the tokens' issuance

    reset = subprocess.run(
        [sys.executable, "-m", "entryway", "user", "password", "--upn", SAM.upn, "--data-dir",
         str(tmp_path / "data")],
        capture_output=True, text=True, timeout=SERVE_TIMEOUT, check=False,
        env={**os.environ, "ENTRYWAY_USER_PASSWORD": "Sam-After-Reset-0042"},
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    reset_at = time.monotonic()

    for served, (app, token) in zip(servers, tokens, strict=True):
        claims = challenged(served, token)
        while claims is None and time.monotonic() - reset_at < DEADLINE:
            time.sleep(0.2)
            claims = challenged(served, token)
        assert claims is not None, "the DevOps service still accepts the token 10 s after the reset"
        assert set(claims["access_token"]) == {"nbf"}
        # The refresh token was revoked with the reset: the identity platform wants a fresh sign-in.
        (account,) = app.get_accounts()
        again = app.acquire_token_silent_with_error(
            [DEVOPS_SCOPE], account, claims_challenge=json.dumps(claims)
        )
        assert again is not None
        assert again.get("error") in ("interaction_required", "invalid_grant"), again
    assert time.monotonic() - reset_at < DEADLINE
