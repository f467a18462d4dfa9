"""`entryway login --service-principal` with a certificate (PEM or PFX, with or without a password) and with
a federated token (inline or @FILE), as subprocesses against the shared server, on this module's own tenant
clienttools.test; and every bad combination of options refused with nothing written."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from entryway.client import jwt_claims
from tests.client.clienttools import CT_BOT_ID, CT_TENANT, with_clienttools
from tests.client.test_login_cli import client_env, run
from tests.conftest import (
    Instance,
    OidcIssuer,
    WorkloadCertificate,
    make_certificate,
    register_certificate,
    register_federated_credential,
)

PASSWORD = "Pfx-And-Pem-Password-0042"


@pytest.fixture(scope="module")
def clienttools(entryway: Instance) -> Instance:
    return with_clienttools(entryway)


@pytest.fixture(scope="module")
def certificate(clienttools: Instance) -> WorkloadCertificate:
    made = make_certificate("clienttools-bot")
    register_certificate(clienttools, CT_BOT_ID, made)
    return made


@contextmanager
def server_clock_at_real_time(instance: Instance) -> Iterator[None]:
    """msal signs the client assertion with this machine's clock: the server's must agree with it meanwhile
    (earlier tests of the session may have moved it ahead)."""
    ahead = instance.clock.timestamp() - time.time()
    instance.clock.advance(-ahead)
    try:
        yield
    finally:
        instance.clock.advance(ahead)


def written(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.iterdir()) if cache_dir.exists() else []


def sp_login(env: dict[str, str], *args: str) -> list[str]:
    return ["login", "--service-principal", "-u", CT_BOT_ID, "--tenant", CT_TENANT, *args]


def assert_bot_token(env: dict[str, str]) -> None:
    token = run(env, "token", "--query", "accessToken", "-o", "tsv")
    assert token.returncode == 0, token.stderr
    claims = jwt_claims(token.stdout.strip())
    assert (claims["appid"], claims["tid"], claims["idtyp"]) == (CT_BOT_ID, CT_TENANT, "app")


def test_certificate_pem_unencrypted(
    clienttools: Instance, certificate: WorkloadCertificate, tmp_path: Path
) -> None:
    pem = tmp_path / "bot.pem"
    pem.write_text(certificate.key_pem + certificate.cert_pem)
    env = client_env(clienttools, tmp_path / "cache")
    with server_clock_at_real_time(clienttools):
        login = run(env, *sp_login(env, "--certificate", str(pem)))
        assert login.returncode == 0, login.stderr
        assert json.loads(login.stdout) == {
            "servicePrincipal": CT_BOT_ID,
            "tenantId": CT_TENANT,
            "authority": clienttools.identity,
        }
        assert_bot_token(env)
    entries = json.loads((tmp_path / "cache" / "service_principals.json").read_text())
    assert entries == [
        {
            "authority": clienttools.identity,
            "client_id": CT_BOT_ID,
            "tenant": CT_TENANT,
            "kind": "certificate",
            "certificate": str(pem.resolve()),
        }
    ], "the certificate's path, as the Azure CLI keeps it; never the key"
    assert stat.S_IMODE((tmp_path / "cache" / "service_principals.json").stat().st_mode) == 0o600


def test_certificate_pem_with_a_password_from_the_environment(
    clienttools: Instance, certificate: WorkloadCertificate, tmp_path: Path
) -> None:
    key = certificate.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSWORD.encode()),
    ).decode()
    pem = tmp_path / "bot-encrypted.pem"
    pem.write_text(key + certificate.cert_pem)
    cache_dir = tmp_path / "cache"
    env = client_env(clienttools, cache_dir)

    no_password = run(env, *sp_login(env, "--certificate", str(pem)))
    assert no_password.returncode == 1
    assert "its private key is encrypted: give the password (--password-env VAR)" in no_password.stderr
    wrong = run(
        {**env, "BOT_CERT_PASSWORD": "not-it"},
        *sp_login(env, "--certificate", str(pem), "--password-env", "BOT_CERT_PASSWORD"),
    )
    assert wrong.returncode == 1
    assert "the password does not decrypt its private key" in wrong.stderr
    assert written(cache_dir) == [], "nothing remembered"

    with_password = {**env, "BOT_CERT_PASSWORD": PASSWORD}
    with server_clock_at_real_time(clienttools):
        login = run(
            with_password, *sp_login(env, "--certificate", str(pem), "--password-env", "BOT_CERT_PASSWORD")
        )
        assert login.returncode == 0, login.stderr
        assert_bot_token(with_password)
        # The password itself is never written down: only the variable's name.
        kept = (cache_dir / "service_principals.json").read_text()
        assert PASSWORD not in kept
        assert json.loads(kept)[0]["password_env"] == "BOT_CERT_PASSWORD"
        missing = run(env, "token", "--min-remaining", "999999")
        assert missing.returncode == 1
        assert "is password-protected and BOT_CERT_PASSWORD is not set" in missing.stderr
        assert missing.stdout == ""


def test_certificate_pfx_with_a_password(
    clienttools: Instance, certificate: WorkloadCertificate, tmp_path: Path
) -> None:
    pfx = tmp_path / "bot.pfx"
    pfx.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"clienttools-bot",
            certificate.key,
            certificate.cert,
            None,
            serialization.BestAvailableEncryption(PASSWORD.encode()),
        )
    )
    env = {**client_env(clienttools, tmp_path / "cache"), "PFX_PASSWORD": PASSWORD}
    with server_clock_at_real_time(clienttools):
        login = run(env, *sp_login(env, "--certificate", str(pfx), "--password-env", "PFX_PASSWORD"))
        assert login.returncode == 0, login.stderr
        assert_bot_token(env)
    wrong = run(
        {**env, "PFX_PASSWORD": "nope"},
        *sp_login(env, "--certificate", str(pfx), "--password-env", "PFX_PASSWORD"),
    )
    assert wrong.returncode == 1
    assert "not a PKCS#12 (.pfx) file this password (the one given) opens" in wrong.stderr


def test_a_certificate_the_app_does_not_have_is_refused_with_its_code(
    clienttools: Instance, tmp_path: Path
) -> None:
    stranger = make_certificate("not-registered")
    pem = tmp_path / "stranger.pem"
    pem.write_text(stranger.key_pem + stranger.cert_pem)
    cache_dir = tmp_path / "cache"
    env = client_env(clienttools, cache_dir)
    with server_clock_at_real_time(clienttools):
        login = run(env, *sp_login(env, "--certificate", str(pem)))
    assert login.returncode == 1
    assert "AADSTS700027" in login.stderr
    assert "check its certificate" in login.stderr
    assert "service_principals.json" not in written(cache_dir)


def test_federated_token_inline_and_from_a_file(
    clienttools: Instance, oidc_issuer: OidcIssuer, tmp_path: Path
) -> None:
    subject = "repo:clienttools/entryway:ref:refs/heads/main"
    register_federated_credential(
        clienttools, CT_BOT_ID, name="clienttools-ci", issuer=oidc_issuer.url, subject=subject
    )
    now = clienttools.clock.timestamp()
    env = client_env(clienttools, tmp_path / "inline")
    inline = run(env, *sp_login(env, "--federated-token", oidc_issuer.token(subject, now=now)))
    assert inline.returncode == 0, inline.stderr
    assert_bot_token(env)

    token_file = tmp_path / "federated-token"
    token_file.write_text(oidc_issuer.token(subject, now=now) + "\n")
    file_env = client_env(clienttools, tmp_path / "file")
    login = run(file_env, *sp_login(file_env, "--federated-token", f"@{token_file}"))
    assert login.returncode == 0, login.stderr
    kept = json.loads((tmp_path / "file" / "service_principals.json").read_text())[0]
    assert kept["federated_token_file"] == str(token_file.resolve())
    assert "federated_token" not in kept, "a file is re-read at every use (the platform rotates it)"
    token_file.write_text(oidc_issuer.token(subject, now=now + 60))
    fresh = run(file_env, "token", "--min-remaining", "999999")  # asks the token endpoint again
    assert fresh.returncode == 0, fresh.stderr
    token_file.write_text("")
    emptied = run(file_env, "token", "--min-remaining", "999999")
    assert emptied.returncode == 1
    assert f"the federated token file {token_file.resolve()} is empty" in emptied.stderr

    other = client_env(clienttools, tmp_path / "refused")
    refused = run(other, *sp_login(other, "--federated-token", oidc_issuer.token("someone-else", now=now)))
    assert refused.returncode == 1
    assert "AADSTS700213" in refused.stderr or "AADSTS70021" in refused.stderr
    assert "check its federated token" in refused.stderr
    assert "service_principals.json" not in written(tmp_path / "refused")


def test_bad_login_options_are_refused_and_nothing_is_written(clienttools: Instance, tmp_path: Path) -> None:
    pem = tmp_path / "garbage.pem"
    pem.write_text("not a certificate\n")
    empty = tmp_path / "empty-token"
    empty.write_text("  \n")
    sp = ["login", "--service-principal", "-u", CT_BOT_ID]
    cases: list[tuple[list[str], str]] = [
        ([*sp, "--tenant", CT_TENANT], "one of --secret SECRET, --certificate FILE or --federated-token"),
        ([*sp, "--tenant", CT_TENANT, "--secret", "s", "--certificate", str(pem)], "one of --secret"),
        ([*sp, "--certificate", str(pem)], "--tenant TENANT"),
        ([*sp, "--tenant", CT_TENANT, "--secret", "s", "--password-env", "X"], "--password-env goes with"),
        ([*sp, "--tenant", CT_TENANT, "--certificate", str(pem), "--password-env", "1-BAD"], "name of an"),
        (
            [*sp, "--tenant", CT_TENANT, "--certificate", str(pem), "--password-env", "NOT_SET_ANYWHERE_X"],
            "the environment variable NOT_SET_ANYWHERE_X is not set",
        ),
        (
            [*sp, "--tenant", CT_TENANT, "--certificate", str(tmp_path / "missing.pem")],
            "--certificate: no file",
        ),
        ([*sp, "--tenant", CT_TENANT, "--certificate", str(pem)], "is not a PEM file"),
        ([*sp, "--tenant", CT_TENANT, "--federated-token", f"@{tmp_path / 'missing'}"], "cannot be read"),
        ([*sp, "--tenant", CT_TENANT, "--federated-token", f"@{empty}"], "is empty"),
        ([*sp, "--tenant", CT_TENANT, "--federated-token", "not-a-jwt"], "check its federated token"),
        ([*sp, "--tenant", "organizations", "--secret", "s"], "signs in to one tenant"),
        ([*sp, "--tenant", CT_TENANT, "--secret", "s", "--device-code"], "--device-code is for people"),
        (["login", "--identity", "--service-principal"], "--identity goes alone"),
        (["login", "--identity", "-u", CT_BOT_ID], "--identity goes alone"),
        (["login", "--identity", "--client-id", "a", "--object-id", "b"], "at most one of"),
        (["login", "--client-id", CT_BOT_ID], "go with --identity"),
        (["login", "--certificate", str(pem)], "go with --service-principal"),
        (["login", "--federated-token", "x"], "go with --service-principal"),
    ]
    cache_dir = tmp_path / "cache"
    env = client_env(clienttools, cache_dir)
    for args, message in cases:
        done = run(env, *args)
        assert done.returncode == 1, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert done.stdout == "", args
        assert "Traceback" not in done.stderr, args
        assert written(cache_dir) == [], args
