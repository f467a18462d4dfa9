"""What survives a restart, key rotation, and what never reaches the disk in clear."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import jwt
import msal
import pytest
import requests

from entryway.config.settings import Settings
from entryway.keys.keyring import REFRESH_INTERVAL, RotationConflict
from entryway.kit.clock import ManualClock
from tests.conftest import (
    BUILD_BOT_SECRET,
    DEVOPS_SCOPE,
    NORTHWIND_BOT_SECRET,
    OUTSIDER_SECRET,
    Instance,
    start_entryway,
)


def client_token(instance: Instance, tenant: str, client_id: str, secret: str) -> str:
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=instance.authority(tenant),
        instance_discovery=False,
    )
    result = app.acquire_token_for_client([DEVOPS_SCOPE])
    assert "access_token" in result, result
    return str(result["access_token"])


def connection_status(instance: Instance, org: str, token: str) -> int:
    response = requests.get(
        f"{instance.devops}/{org}/_apis/connectionData",
        headers={"Authorization": f"Bearer {token}"},
        verify=instance.ca_bundle,
        timeout=30,
    )
    return response.status_code


@pytest.fixture
def own_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Instance]:
    instance = start_entryway(tmp_path / "data", ManualClock())
    # This instance has a CA of its own; requests (under msal) reads the trust store from here.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", instance.ca_bundle)
    yield instance
    instance.server.stop()


def test_restart_keeps_tenants_apps_and_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock()
    data_dir = tmp_path / "data"
    first = start_entryway(data_dir, clock)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", first.ca_bundle)
    demo = first.demo
    token = client_token(first, demo.tenant_id, demo.client_id, demo.client_secret)
    ports = first.settings.identity_port, first.settings.devops_port
    first.server.stop()

    from entryway.server import EntrywayServer

    server = EntrywayServer(Settings(data_dir=data_dir, identity_port=ports[0], devops_port=ports[1]), clock)
    server.prepare()
    server.start_in_thread()
    try:
        second = Instance(server, server.runtime, clock, demo)  # type: ignore[arg-type]
        # The token issued before the restart still validates: same key, same issuer.
        assert connection_status(second, demo.organization, token) == 200
        # The app and its secret still work, and the key is the same one.
        again = client_token(second, demo.tenant_id, demo.client_id, demo.client_secret)
        assert jwt.get_unverified_header(again)["kid"] == jwt.get_unverified_header(token)["kid"]
    finally:
        server.stop()


def test_key_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    own_instance: Instance,
) -> None:
    demo = own_instance.demo
    runtime = own_instance.runtime
    old_token = client_token(own_instance, demo.tenant_id, demo.client_id, demo.client_secret)
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    with pytest.raises(RotationConflict):
        runtime.keys.rotate(expected_kid="not-the-active-key")
    new_kid = runtime.keys.rotate(expected_kid=old_kid)
    assert new_kid != old_kid
    # A second rotation that expected the old key loses the race and changes nothing.
    with pytest.raises(RotationConflict):
        runtime.keys.rotate(expected_kid=old_kid)

    own_instance.clock.advance(REFRESH_INTERVAL + timedelta(seconds=1))
    published = requests.get(
        f"{own_instance.identity}/{demo.tenant_id}/discovery/v2.0/keys",
        verify=own_instance.ca_bundle,
        timeout=30,
    ).json()
    assert {k["kid"] for k in published["keys"]} == {old_kid, new_kid}

    new_token = client_token(own_instance, demo.tenant_id, demo.client_id, demo.client_secret)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert connection_status(own_instance, demo.organization, new_token) == 200
    assert connection_status(own_instance, demo.organization, old_token) == 200

    # A day and a bit later the retired key is no longer published (its tokens have all expired).
    own_instance.clock.advance(timedelta(days=1, minutes=11))
    published = requests.get(
        f"{own_instance.identity}/common/discovery/keys", verify=own_instance.ca_bundle, timeout=30
    ).json()
    assert {k["kid"] for k in published["keys"]} == {new_kid}


def test_no_secret_is_stored_in_clear(entryway: Instance) -> None:
    """Scan every byte the database keeps (main file and write-ahead log) for every secret we know."""
    data_dir = entryway.settings.data_dir
    stored = b"".join(p.read_bytes() for p in data_dir.glob("entryway.db*"))
    secrets = [entryway.demo.client_secret, BUILD_BOT_SECRET, OUTSIDER_SECRET, NORTHWIND_BOT_SECRET]
    secrets.append("Correct-Horse-42")  # alice's password, from the config file
    for secret in secrets:
        assert secret.encode() not in stored
        assert secret[5:30].encode() not in stored
    # Signing keys are encrypted at rest.
    assert b"PRIVATE KEY" not in stored
