"""The client address behind reverse proxies: X-Forwarded-For only from configured trusted proxies.

An instance of its own, trusting 127.0.0.3 as its proxy: requests sent from 127.0.0.3 stand for the proxy's,
from 127.0.0.1 for a client talking to the server directly. The address shows in the access token's `ipaddr`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from typer.testing import CliRunner

from entryway.cli.main import app as cli
from entryway.config.seed import DEMO_DOMAIN, ensure_installation, seed_demo
from entryway.config.settings import Settings
from entryway.identity.directory.first_party import AZURE_CLI
from entryway.kit.clock import ManualClock
from entryway.kit.web import forwarded_client, parse_networks
from entryway.server import EntrywayServer
from tests.conftest import DEVOPS_SCOPE
from tests.identity.test_conditional_access_enforcement import session_from

PROXY = "127.0.0.3"


class Proxied:
    def __init__(self, server: EntrywayServer, password: str, upn: str) -> None:
        self.server = server
        self.password = password
        self.upn = upn

    @property
    def settings(self) -> Settings:
        return self.server.settings

    def ipaddr_seen(self, source: str | None, forwarded_for: str | None) -> str:
        ca_bundle = str(self.settings.ca_bundle)
        http = session_from(ca_bundle, source)
        headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
        response = http.post(
            f"{self.settings.identity_origin}/{DEMO_DOMAIN}/oauth2/v2.0/token",
            data={
                "grant_type": "password",
                "client_id": AZURE_CLI.app_id,
                "username": self.upn,
                "password": self.password,
                "scope": f"{DEVOPS_SCOPE} openid profile",
            },
            headers=headers,
            verify=ca_bundle,  # requests prefers REQUESTS_CA_BUNDLE (the shared server's) to a session's
            timeout=30,
        )
        assert response.status_code == 200, response.text
        claims: dict[str, Any] = jwt.decode(
            response.json()["access_token"], options={"verify_signature": False}
        )
        return str(claims["ipaddr"])


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("proxied"),
        identity_port=0,
        devops_port=0,
        managed_identity=False,
        trusted_proxies=(f"{PROXY}/32", "10.200.0.0/16"),
    )
    server = EntrywayServer(settings, ManualClock())
    runtime = server.prepare()
    ensure_installation(runtime)
    seed = seed_demo(runtime)
    server.start_in_thread()
    assert seed.user_password is not None
    yield Proxied(server, seed.user_password, seed.user_upn)
    server.stop()


def test_a_trusted_proxy_forwards_the_client_address(proxied: Proxied) -> None:
    assert proxied.ipaddr_seen(PROXY, "198.51.100.7") == "198.51.100.7"
    # Each proxy appends the address it saw: the right-most one that is not a trusted proxy is the client;
    # what lies left of it is the client's own say.
    assert proxied.ipaddr_seen(PROXY, "1.2.3.4, 198.51.100.7, 10.200.1.1") == "198.51.100.7"
    assert proxied.ipaddr_seen(PROXY, "2001:db8::7") == "2001:db8::7"
    assert proxied.ipaddr_seen(PROXY, None) == PROXY


def test_forwarded_for_from_an_untrusted_peer_is_ignored(proxied: Proxied) -> None:
    assert proxied.ipaddr_seen("127.0.0.1", "198.51.100.7") == "127.0.0.1"
    assert proxied.ipaddr_seen("127.0.0.2", "10.200.1.1") == "127.0.0.2"


@pytest.mark.parametrize("header", ["not-an-address", "198.51.100.7, ", "198.51.100.7;evil", "unknown", ""])
def test_a_malformed_forwarded_for_is_ignored(proxied: Proxied, header: str) -> None:
    assert proxied.ipaddr_seen(PROXY, header) == PROXY


def test_forwarded_client_rules() -> None:
    trusted = parse_networks(["10.0.0.0/8", "::ffff:192.0.2.0/120", "fd00::/8"])
    assert forwarded_client("10.0.0.1", ["203.0.113.5"], trusted) == "203.0.113.5"
    assert forwarded_client("::ffff:10.0.0.1", ["203.0.113.5"], trusted) == "203.0.113.5"
    assert forwarded_client("fd00::1", ["203.0.113.5", "10.1.1.1"], trusted) == "203.0.113.5"
    assert forwarded_client("10.0.0.1", ["10.1.1.1", "10.2.2.2"], trusted) == "10.1.1.1"
    assert forwarded_client("10.0.0.1", ["203.0.113.5", "bad"], trusted) == "10.0.0.1"
    assert forwarded_client("203.0.113.9", ["198.51.100.1"], trusted) == "203.0.113.9"
    assert forwarded_client("10.0.0.1", [], trusted) == "10.0.0.1"
    assert forwarded_client("10.0.0.1", ["203.0.113.5"], ()) == "10.0.0.1"


@pytest.mark.parametrize("value", ["10.0.0.0/33", "proxy.example", "10.0.0.1,", "::1/200"])
def test_serve_refuses_a_bad_trusted_proxy_and_creates_nothing(tmp_path: Path, value: str) -> None:
    data_dir = tmp_path / "never"
    result = CliRunner().invoke(cli, ["serve", "--data-dir", str(data_dir), "--trusted-proxy", value])
    assert result.exit_code != 0
    assert "--trusted-proxy" in result.output
    assert not data_dir.exists()


def test_serve_reads_trusted_proxies_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENTRYWAY_TRUSTED_PROXIES", "10.0.0.0/8, nonsense")
    data_dir = tmp_path / "never"
    result = CliRunner().invoke(cli, ["serve", "--data-dir", str(data_dir)])
    assert result.exit_code != 0
    assert "'nonsense' is not an IP address or a CIDR range" in result.output
    assert not data_dir.exists()
