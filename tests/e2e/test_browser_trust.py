"""The browser trusts the shared server's key, and only through the flag the browser fixture passes."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.conftest import CONTOSO_TENANT, Instance


def test_chromium_opens_the_identity_origin_over_tls(entryway: Instance, page: Page) -> None:
    response = page.goto(f"{entryway.identity}/{CONTOSO_TENANT}/v2.0/.well-known/openid-configuration")
    assert response is not None
    assert response.status == 200
    assert response.url.startswith("https://")
    assert CONTOSO_TENANT in page.content()
