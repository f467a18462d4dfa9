"""`entryway login` with no flag, as `az login` does it: msal's acquire_token_interactive opens the system
browser ($BROWSER) on the authorize page and listens on http://localhost:{port} for the form-posted answer.
Here $BROWSER is a script that hands the address to the test, which opens it in the shared headless Chromium
and signs in as a person does; the `entryway login` subprocess gets the code, redeems it and caches the account.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from entryway.client import jwt_claims
from tests.client.test_login_cli import ENTRYWAY, client_env, projects, run
from tests.conftest import ADA, CHROMIUM_FLAGS, CONTOSO_TENANT, Instance, server_spki_sha256
from tests.e2e.test_browser_signin import sign_in


@pytest.fixture(scope="module")
def page(entryway: Instance) -> Iterator[Page]:
    """The same Debian Chromium, flags and pinned server key as conftest's session `browser`, but started and
    stopped by this module: Playwright's sync API keeps an asyncio loop running in the main thread while it is
    open, and tests that run later in the session (tests/devops) call asyncio.run() there."""
    executable = os.environ.get("ENTRYWAY_CHROMIUM", "/usr/bin/chromium")
    if not Path(executable).exists():
        pytest.fail(f"no Chromium at {executable}: run scripts/test.sh, or apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[*CHROMIUM_FLAGS, f"--ignore-certificate-errors-spki-list={server_spki_sha256(entryway)}"],
        )
        context = browser.new_context(ignore_https_errors=False, viewport={"width": 1100, "height": 800})
        context.set_default_timeout(15_000)
        yield context.new_page()
        browser.close()


def browser_script(tmp_path: Path) -> tuple[Path, Path]:
    """A $BROWSER that writes the address it is given to a file (python's webbrowser runs `$BROWSER url`)."""
    opened = tmp_path / "opened-url"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s" "$1" > "{opened}"\n')
    script.chmod(0o700)
    return script, opened


def wait_for(path: Path, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"nothing was written to {path} in {seconds} s")


def test_browser_login_in_chromium_then_token_and_account(
    entryway: Instance, page: Page, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    script, opened = browser_script(tmp_path)
    env = {**client_env(entryway, cache_dir), "BROWSER": str(script)}
    process = subprocess.Popen(
        [*ENTRYWAY, "login", "--tenant", CONTOSO_TENANT, "--timeout", "120"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = wait_for(opened)
        assert url.startswith(f"{entryway.identity}/{CONTOSO_TENANT}/oauth2/v2.0/authorize?")
        assert "response_mode=form_post" in url
        assert "code_challenge_method=S256" in url
        assert "redirect_uri=http%3A%2F%2Flocalhost%3A" in url
        page.goto(url)
        sign_in(page, entryway, ADA)
        page.get_by_text("You can close this tab").wait_for()
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "A web browser has been opened at" in stderr
    assert f"{entryway.identity}/{CONTOSO_TENANT}/oauth2/v2.0/authorize" in stderr
    assert json.loads(stdout) == {"user": ADA.upn, "tenantId": CONTOSO_TENANT, "authority": entryway.identity}
    assert "eyJ" not in stdout + stderr, "login prints no token"
    assert stat.S_IMODE((cache_dir / "msal_token_cache.json").stat().st_mode) == 0o600

    shown = run(env, "account", "show")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {
        "user": ADA.upn,
        "tenantId": CONTOSO_TENANT,
        "environment": "localhost",
    }
    token = run(env, "token", "--query", "accessToken", "-o", "tsv")
    assert token.returncode == 0, token.stderr
    claims = jwt_claims(token.stdout.strip())
    assert claims["upn"] == ADA.upn
    assert claims["amr"] == ["pwd"]
    assert projects(entryway, token.stdout.strip()).status_code == 200


def test_browser_login_without_a_browser_prints_the_address_and_gives_up_in_time(
    entryway: Instance, tmp_path: Path
) -> None:
    env = {**client_env(entryway, tmp_path / "cache"), "BROWSER": "/bin/false"}
    done = run(env, "login", "--tenant", CONTOSO_TENANT, "--timeout", "2")
    assert done.returncode == 1
    assert "No web browser could be opened; open this address on this machine: " in done.stderr
    assert f"{entryway.identity}/{CONTOSO_TENANT}/oauth2/v2.0/authorize?" in done.stderr
    assert "sign-in failed" in done.stderr
    assert "run `entryway login` again" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "cache" / "msal_token_cache.json").exists(), "nothing cached"
