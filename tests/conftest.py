"""One Entryway for the whole session: real servers on ephemeral ports over TLS, one controllable clock.

Tests that need a server of their own (restarts, the CLI) start one with `start_entryway`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from entryway.config.declarative import apply_config
from entryway.config.seed import DemoSeed, ensure_installation, seed_demo
from entryway.config.settings import Settings
from entryway.kit.clock import ManualClock
from entryway.runtime import Runtime
from entryway.server import EntrywayServer

DEVOPS_RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
DEVOPS_SCOPE = f"{DEVOPS_RESOURCE}/.default"

# The example from the foundation issue, loaded unchanged, plus a second tenant and a non-member app.
ISSUE_EXAMPLE_CONFIG = """\
tenants:
  - id: 7d3a1f52-5b8e-4c1e-9f4a-2b6c8d0e1f23
    domains: [contoso.test]
    users:
      - upn: alice@contoso.test
        password: "Correct-Horse-42"
        display_name: Alice Example
    apps:
      - name: build-bot
        client_id: 3f9c2a71-0d4b-4e8a-b1c6-5e7f8a9b0c1d
        secrets:
          - value: "bot-secret-0123456789abcdefghijklmnopqrstuv"
organizations:
  - name: fabrikam
    tenant: contoso.test
    members:
      - app: build-bot
        access: basic
      - user: alice@contoso.test
        access: basic
"""

EXTRA_CONFIG = """\
tenants:
  - id: 0b5e3c1d-2a4f-4e6b-8c7d-9e0f1a2b3c4d
    domains: [northwind.test]
    apps:
      - name: northwind-bot
        client_id: 5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d
        secrets:
          - value: "northwind-secret-0123456789abcdefghijklmn"
  - id: 7d3a1f52-5b8e-4c1e-9f4a-2b6c8d0e1f23
    domains: [contoso.test]
    apps:
      - name: outsider
        client_id: 9c8b7a6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d
        secrets:
          - value: "outsider-secret-0123456789abcdefghijklmn"
organizations:
  - name: northwind
    tenant: northwind.test
    members:
      - app: northwind-bot
        access: basic
"""

CONTOSO_TENANT = "7d3a1f52-5b8e-4c1e-9f4a-2b6c8d0e1f23"
BUILD_BOT_ID = "3f9c2a71-0d4b-4e8a-b1c6-5e7f8a9b0c1d"
BUILD_BOT_SECRET = "bot-secret-0123456789abcdefghijklmnopqrstuv"
OUTSIDER_ID = "9c8b7a6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
OUTSIDER_SECRET = "outsider-secret-0123456789abcdefghijklmn"
NORTHWIND_TENANT = "0b5e3c1d-2a4f-4e6b-8c7d-9e0f1a2b3c4d"
NORTHWIND_BOT_ID = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"
NORTHWIND_BOT_SECRET = "northwind-secret-0123456789abcdefghijklmn"


@dataclass
class Instance:
    server: EntrywayServer
    runtime: Runtime
    clock: ManualClock
    demo: DemoSeed

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def identity(self) -> str:
        return self.settings.identity_origin

    @property
    def devops(self) -> str:
        return self.settings.devops_origin

    @property
    def ca_bundle(self) -> str:
        return str(self.settings.ca_bundle)

    def authority(self, tenant: str) -> str:
        return f"{self.identity}/{tenant}"


def start_entryway(data_dir: Path, clock: ManualClock, *, configs: tuple[str, ...] = ()) -> Instance:
    """Start a real Entryway on ephemeral ports; seed the demo on first start and apply `configs`."""
    server = EntrywayServer(Settings(data_dir=data_dir, identity_port=0, devops_port=0), clock)
    runtime = server.prepare()
    first = ensure_installation(runtime)
    demo = seed_demo(runtime) if first else DemoSeed("", "", "", "", "")
    for text in configs:
        apply_config(runtime, yaml.safe_load(text))
    server.start_in_thread()
    return Instance(server, runtime, clock, demo)


@pytest.fixture(scope="session")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def entryway(tmp_path_factory: pytest.TempPathFactory, clock: ManualClock) -> Iterator[Instance]:
    instance = start_entryway(
        tmp_path_factory.mktemp("entryway"), clock, configs=(ISSUE_EXAMPLE_CONFIG, EXTRA_CONFIG)
    )
    previous = {
        name: os.environ.get(name) for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
    }
    # requests-based clients (msal, azure-identity, the azure-devops SDK) trust the CA through this.
    os.environ["REQUESTS_CA_BUNDLE"] = instance.ca_bundle
    os.environ["SSL_CERT_FILE"] = instance.ca_bundle
    os.environ.pop("CURL_CA_BUNDLE", None)
    yield instance
    instance.server.stop()
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def form_post(instance: Instance, path: str, data: dict[str, Any] | str, **kwargs: Any) -> Any:
    """A raw POST to the identity platform, for requests real clients would never send."""
    import requests

    return requests.post(
        f"{instance.identity}{path}", data=data, verify=instance.ca_bundle, timeout=30, **kwargs
    )
