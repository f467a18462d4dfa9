"""The `entryway` command as a user runs it: `serve` in a subprocess, its banner, `env`, admin commands."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from azure.identity import ClientSecretCredential
from click.testing import Result
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from entryway.cli.main import app as cli
from tests.conftest import DEVOPS_SCOPE
from tests.directory.certificates import make_certificate, pem, sha1_thumbprint

SERVE_TIMEOUT = 60


def entryway_cmd(
    *args: str, data_dir: Path, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "entryway", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=SERVE_TIMEOUT,
        input=input_text,
        check=False,
    )


def serve_with_config(data_dir: Path, config: Path) -> subprocess.CompletedProcess[str]:
    """`serve --config` for a file it must refuse: it exits before serving."""
    return entryway_cmd(
        "serve", "--identity-port", "0", "--devops-port", "0", "--config", str(config), data_dir=data_dir
    )


class Served:
    def __init__(self, process: subprocess.Popen[str], banner: str) -> None:
        self.process = process
        self.banner = banner

    def field(self, label: str) -> str:
        match = re.search(rf"^\s*{label}\s+(\S+)", self.banner, re.MULTILINE)
        assert match, f"no {label!r} in banner:\n{self.banner}"
        return match.group(1)


def start_serve(data_dir: Path, *extra: str) -> Served:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "entryway",
            "serve",
            "--data-dir",
            str(data_dir),
            "--identity-port",
            "0",
            "--devops-port",
            "0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A hung server dumps every thread's stack on SIGABRT (see stop_serve).
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "Press Ctrl+C to stop." in line:
            break
    else:
        process.wait(timeout=SERVE_TIMEOUT)
        pytest.fail("serve exited:\n" + "".join(lines))
    return Served(process, "".join(lines))


def stop_serve(served: Served) -> None:
    process = served.process
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        # Say where it hung: faulthandler prints each thread's stack on SIGABRT.
        process.send_signal(signal.SIGABRT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        rest = process.stdout.read() if process.stdout else ""
        pytest.fail(f"serve did not stop within 20 s of SIGINT; what it printed after the banner:\n{rest}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def served(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    s = start_serve(data_dir)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", s.field("CA bundle"))
    yield s
    stop_serve(s)


def test_serve_prints_what_a_user_needs_and_it_works(served: Served, data_dir: Path) -> None:
    tenant_id = served.field("tenant id")
    client_id = served.field("client id")
    secret = served.field("client secret")
    identity = served.field("identity platform")
    devops = served.field("DevOps service")
    assert Path(served.field("CA bundle")).is_file()
    assert f"export AZURE_CLIENT_SECRET={secret}" in served.banner
    assert "disable_instance_discovery=True" in served.banner
    # The demo user, and how to sign in as it with the Azure CLI's client id.
    assert served.field("user") == "alex@demo.entryway.test"
    assert len(served.field("password")) == 19
    assert served.field("device login") == f"{identity}/devicelogin"
    assert '"04b07795-8ddb-461a-bbee-02f9e1bf7b46"' in served.banner
    assert "instance_discovery=False" in served.banner
    members = entryway_cmd("org", "member", "list", "--org", "demo", data_dir=data_dir)
    assert "user\tbasic\talex@demo.entryway.test" in members.stdout

    credential = ClientSecretCredential(
        tenant_id, client_id, secret, authority=identity, disable_instance_discovery=True
    )
    token = credential.get_token(DEVOPS_SCOPE).token
    response = requests.get(
        f"{devops}/demo/_apis/connectionData", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    # The PAT page sends a visitor without a session to sign in.
    assert served.field("PAT page") == f"{devops}/demo/_usersSettings/tokens"
    page = requests.get(served.field("PAT page"), allow_redirects=False, timeout=30)
    assert page.status_code in {302, 303}, page.text
    assert "/_signin" in page.headers["location"]

    env = entryway_cmd("env", data_dir=data_dir)
    assert env.returncode == 0, env.stderr
    assert f"export AZURE_TENANT_ID={tenant_id}" in env.stdout
    assert f"export AZURE_CLIENT_ID={client_id}" in env.stdout
    assert secret not in env.stdout
    # The managed identity endpoints the running server listens on, and the header it checks.
    for name in ("AZURE_POD_IDENTITY_AUTHORITY_HOST", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
        exported = re.search(rf"^export {name}=(\S+)$", env.stdout, re.MULTILINE)
        assert exported, env.stdout
        assert f"export {name}={exported.group(1)}" in served.banner

    # A new secret made while the server runs works at once; removing it stops it at once.
    added = entryway_cmd(
        "app", "secret", "add", "--tenant", tenant_id, "--app", "entryway-demo", data_dir=data_dir
    )
    assert added.returncode == 0, added.stderr
    new_secret = re.search(r"^secret\s+(\S+)", added.stdout, re.MULTILINE).group(1)  # type: ignore[union-attr]
    key_id = re.search(r"^key id\s+(\S+)", added.stdout, re.MULTILINE).group(1)  # type: ignore[union-attr]
    fresh = ClientSecretCredential(
        tenant_id, client_id, new_secret, authority=identity, disable_instance_discovery=True
    )
    assert fresh.get_token(DEVOPS_SCOPE).token
    listed = entryway_cmd(
        "app", "secret", "list", "--tenant", tenant_id, "--app", client_id, data_dir=data_dir
    )
    assert key_id in listed.stdout
    assert new_secret not in listed.stdout
    removed = entryway_cmd(
        "app",
        "secret",
        "remove",
        "--tenant",
        tenant_id,
        "--app",
        client_id,
        "--key-id",
        key_id,
        data_dir=data_dir,
    )
    assert removed.returncode == 0, removed.stderr
    gone = requests.post(
        f"{identity}/{tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": new_secret,
            "scope": DEVOPS_SCOPE,
        },
        timeout=30,
    )
    assert gone.status_code == 401
    assert gone.json()["error_codes"] == [7000215]


def test_second_start_does_not_reseed_or_show_a_secret(data_dir: Path) -> None:
    first = start_serve(data_dir)
    secret = first.field("client secret")
    stop_serve(first)
    assert first.process.returncode == 0
    password = first.field("password")
    second = start_serve(data_dir)
    try:
        assert secret not in second.banner
        assert password not in second.banner
        assert "client secret  " not in second.banner
        assert "entryway env" in second.banner
    finally:
        stop_serve(second)
    tenants = entryway_cmd("tenant", "list", data_dir=data_dir)
    assert tenants.stdout.count("demo.entryway.test") == 1


def test_admin_commands_build_a_world(data_dir: Path) -> None:
    tenant = entryway_cmd("tenant", "create", "--domain", "adatum.test", data_dir=data_dir)
    assert tenant.returncode == 0, tenant.stderr
    tenant_id = tenant.stdout.strip()
    app = entryway_cmd("app", "create", "--tenant", "adatum.test", "--name", "deployer", data_dir=data_dir)
    assert app.returncode == 0, app.stderr
    assert "client secret" in app.stdout
    user = subprocess.run(
        [
            sys.executable,
            "-m",
            "entryway",
            "user",
            "create",
            "--data-dir",
            str(data_dir),
            "--tenant",
            tenant_id,
            "--upn",
            "dana@adatum.test",
        ],
        capture_output=True,
        text=True,
        timeout=SERVE_TIMEOUT,
        check=False,
        env={**os.environ, "ENTRYWAY_USER_PASSWORD": "Long-enough-password-1"},
    )
    assert user.returncode == 0, user.stderr
    org = entryway_cmd("org", "create", "--name", "adatum", "--tenant", "adatum.test", data_dir=data_dir)
    assert org.returncode == 0, org.stderr
    for args in (["--app", "deployer"], ["--user", "dana@adatum.test", "--access", "stakeholder"]):
        added = entryway_cmd("org", "member", "add", "--org", "adatum", *args, data_dir=data_dir)
        assert added.returncode == 0, added.stderr
    members = entryway_cmd("org", "member", "list", "--org", "adatum", data_dir=data_dir)
    assert "servicePrincipal\tbasic" in members.stdout
    assert "user\tstakeholder\tdana@adatum.test" in members.stdout

    keys = entryway_cmd("keys", "list", data_dir=data_dir)
    rotated = entryway_cmd("keys", "rotate", data_dir=data_dir)
    assert rotated.returncode == 0, rotated.stderr
    after = entryway_cmd("keys", "list", data_dir=data_dir)
    assert rotated.stdout.strip() in after.stdout
    assert after.stdout.count("\tretired\t") == keys.stdout.count("\tactive\t")


def test_sign_in_administration(data_dir: Path) -> None:
    assert entryway_cmd("tenant", "create", "--domain", "tailspin.test", data_dir=data_dir).returncode == 0
    settings = entryway_cmd(
        "tenant", "set", "--tenant", "tailspin.test", "--mfa-default", "--refresh-inactivity", "86400",
        "--sign-in-frequency", "43200", data_dir=data_dir,
    )  # fmt: skip
    assert settings.returncode == 0, settings.stderr
    assert re.search(r"^mfa required by default\s+yes$", settings.stdout, re.MULTILINE)
    assert re.search(r"^refresh token inactivity\s+86400$", settings.stdout, re.MULTILINE)
    assert re.search(r"^sign-in frequency\s+43200$", settings.stdout, re.MULTILINE)
    off = entryway_cmd(
        "tenant", "set", "--tenant", "tailspin.test", "--sign-in-frequency", "0", data_dir=data_dir
    )
    assert re.search(r"^sign-in frequency\s+never$", off.stdout, re.MULTILINE)

    user = subprocess.run(
        [sys.executable, "-m", "entryway", "user", "create", "--data-dir", str(data_dir),
         "--tenant", "tailspin.test", "--upn", "lee@tailspin.test", "--no-mfa"],
        capture_output=True, text=True, timeout=SERVE_TIMEOUT, check=False,
        env={**os.environ, "ENTRYWAY_USER_PASSWORD": "Long-enough-password-1"},
    )  # fmt: skip
    assert user.returncode == 0, user.stderr
    upn = ["--upn", "lee@tailspin.test"]
    assert entryway_cmd("user", "mfa", "show", *upn, data_dir=data_dir).stdout.split("\t")[1:3] == [
        "off",
        "no-mfa",
    ]
    for command, setting, applies in (("require", "required", "mfa"), ("default", "default", "mfa")):
        shown = entryway_cmd("user", "mfa", command, *upn, data_dir=data_dir)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.split("\t")[1:3] == [setting, applies]
    reset = entryway_cmd("user", "mfa", "reset", *upn, data_dir=data_dir)
    assert reset.stdout.strip().endswith("not-enrolled")

    app = entryway_cmd(
        "app", "create", "--tenant", "tailspin.test", "--name", "desk", "--public-client",
        "--redirect-uri", "http://localhost", "--redirect-uri", "msaldesk://auth", data_dir=data_dir,
    )  # fmt: skip
    assert app.returncode == 0, app.stderr
    assert "client secret" not in app.stdout  # a public client needs none
    consent = entryway_cmd(
        "app", "consent", "--tenant", "tailspin.test", "--app", "desk", "--resource", "Azure DevOps",
        "--scope", "user_impersonation", data_dir=data_dir,
    )  # fmt: skip
    assert consent.returncode == 0, consent.stderr
    assert consent.stdout == f"{DEVOPS_SCOPE.split('/')[0]}\tuser_impersonation\n"
    updated = entryway_cmd(
        "app", "update", "--tenant", "tailspin.test", "--app", "desk", "--no-public-client",
        "--redirect-uri", "https://desk.tailspin.test/cb", data_dir=data_dir,
    )  # fmt: skip
    assert updated.stdout.splitlines() == [
        "public client  no",
        "redirect uri   https://desk.tailspin.test/cb",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tenant", "set", "--tenant", "nowhere.test"], "tenant 'nowhere.test' not found"),
        (
            ["tenant", "set", "--tenant", "t.test", "--refresh-inactivity", "60"],
            "refresh token inactivity must be",
        ),
        (["tenant", "set", "--tenant", "t.test", "--sign-in-frequency", "-1"], "sign-in frequency must be"),
        (["user", "mfa", "require", "--upn", "nobody@t.test"], "user 'nobody@t.test' not found"),
        (["user", "mfa", "reset", "--upn", "nobody@t.test"], "user 'nobody@t.test' not found"),
        (
            ["app", "create", "--tenant", "t.test", "--name", "w", "--redirect-uri", "http://w.t.test/cb"],
            "http is allowed only for localhost",
        ),
        (
            ["app", "create", "--tenant", "t.test", "--name", "w", "--redirect-uri", "https://w/#f"],
            "fragment",
        ),
        (
            [
                "app",
                "consent",
                "--tenant",
                "t.test",
                "--app",
                "x",
                "--resource",
                "Azure DevOps",
                "--scope",
                "s",
            ],
            "application 'x' not found",
        ),
        (
            [
                "app",
                "consent",
                "--tenant",
                "t.test",
                "--app",
                "Visual Studio",
                "--resource",
                "Azure DevOps",
                "--scope",
                "vso.code",
            ],
            "defines no delegated permission 'vso.code'",
        ),
        (
            ["app", "update", "--tenant", "t.test", "--app", "Microsoft Azure CLI", "--no-public-client"],
            "application 'Microsoft Azure CLI' not found",
        ),
    ],
)
def test_sign_in_administration_refuses_bad_input_clearly(
    data_dir: Path, args: list[str], message: str
) -> None:
    assert entryway_cmd("tenant", "create", "--domain", "t.test", data_dir=data_dir).returncode == 0
    result = entryway_cmd(*args, data_dir=data_dir)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tenant", "create", "--domain", "not a domain"], "not a valid domain"),
        (["app", "create", "--tenant", "nowhere.test", "--name", "x"], "tenant 'nowhere.test' not found"),
        (
            ["org", "member", "add", "--org", "missing"],
            "give exactly one of --app, --user or --managed-identity",
        ),
        (["org", "member", "add", "--org", "missing", "--app", "x"], "organization 'missing' not found"),
        (["keys", "rotate", "--expect", "someone-else"], "nothing rotated"),
    ],
)
def test_admin_commands_refuse_bad_input_clearly(data_dir: Path, args: list[str], message: str) -> None:
    result = entryway_cmd(*args, data_dir=data_dir)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_bad_config_file(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("tenants:\n  - domains: [ok.test]\n    colour: blue\n")
    result = serve_with_config(data_dir, config)
    assert result.returncode == 2
    assert "unknown key(s) colour" in result.stderr


def test_serve_refuses_a_master_key_that_is_not_the_data_directorys(data_dir: Path) -> None:
    created = entryway_cmd("keys", "rotate", data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    other_key = base64.b64encode(b"k" * 32).decode()
    result = subprocess.run(
        [sys.executable, "-m", "entryway", "keys", "list", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=SERVE_TIMEOUT,
        check=False,
        env={**os.environ, "ENTRYWAY_MASTER_KEY": other_key},
    )
    assert result.returncode == 2
    assert "the master key does not match" in result.stderr


def test_a_config_that_fails_on_first_start_leaves_the_first_start_to_come(
    data_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("tenants:\n  - domains: [not a domain]\n")
    failed = serve_with_config(data_dir, config)
    assert failed.returncode == 2
    assert "config.tenants[0]: 'not a domain' is not a valid domain name" in failed.stderr.replace(
        str(config), "config"
    )
    served = start_serve(data_dir)
    try:
        assert "client secret  " in served.banner
    finally:
        stop_serve(served)


def test_reserved_organization_names_are_refused(data_dir: Path) -> None:
    entryway_cmd("tenant", "create", "--domain", "r.test", data_dir=data_dir)
    result = entryway_cmd("org", "create", "--name", "health", "--tenant", "r.test", data_dir=data_dir)
    assert result.returncode == 2
    assert "'health' is reserved" in result.stderr


# --- workload identities (in process: these commands need no server, and a subprocess costs a second) ----


def run(*args: str, data_dir: Path) -> Result:
    """An admin command in this process, as `entryway ... --data-dir DIR` runs it."""
    return CliRunner().invoke(cli, [*args, "--data-dir", str(data_dir)])


def field(output: str, label: str) -> str:
    match = re.search(rf"^{label}\s+(\S+)", output, re.MULTILINE)
    assert match, f"no {label!r} in:\n{output}"
    return match.group(1)


def test_workload_identity_commands(data_dir: Path, tmp_path: Path) -> None:
    assert run("tenant", "create", "--domain", "w.test", data_dir=data_dir).exit_code == 0
    assert run("app", "create", "--tenant", "w.test", "--name", "deployer", data_dir=data_dir).exit_code == 0
    cert = make_certificate()
    cert_file = tmp_path / "deployer.cer"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    app = ["--tenant", "w.test", "--app", "deployer"]

    added = run("app", "cert", "add", *app, "--file", str(cert_file), "--name", "ci", data_dir=data_dir)
    assert added.exit_code == 0, added.output
    assert field(added.stdout, "thumbprint") == sha1_thumbprint(cert)
    listed = run("app", "cert", "list", *app, data_dir=data_dir)
    assert listed.stdout.split("\t")[1] == sha1_thumbprint(cert)
    assert listed.stdout.strip().endswith("\tci")
    removed = run("app", "cert", "remove", *app, "--cert", sha1_thumbprint(cert).lower(), data_dir=data_dir)
    assert removed.exit_code == 0, removed.output
    assert run("app", "cert", "list", *app, data_dir=data_dir).stdout == ""

    fic = run(
        "app", "fic", "add", *app, "--name", "main", "--issuer", "https://token.actions.githubusercontent.com",
        "--subject", "repo:contoso/app:ref:refs/heads/main", data_dir=data_dir,
    )  # fmt: skip
    assert fic.exit_code == 0, fic.output
    assert run("app", "fic", "list", *app, data_dir=data_dir).stdout == (
        "main\thttps://token.actions.githubusercontent.com\trepo:contoso/app:ref:refs/heads/main"
        "\tapi://AzureADTokenExchange\n"
    )

    created = run(
        "mi",
        "create",
        "--tenant",
        "w.test",
        "--name",
        "agent",
        "--kind",
        "user",
        "--on-host",
        data_dir=data_dir,
    )
    assert created.exit_code == 0, created.output
    client_id, object_id = field(created.stdout, "client id"), field(created.stdout, "object id")
    assert field(created.stdout, "on host") == "yes"
    mi = ["--tenant", "w.test", "--managed-identity", "agent"]
    on_mi = run(
        "app", "fic", "add", *mi, "--name", "aks", "--issuer", "https://oidc.w.test",
        "--subject", "system:serviceaccount:ci:builder", "--audience", "api://Custom", data_dir=data_dir,
    )  # fmt: skip
    assert on_mi.exit_code == 0, on_mi.output
    assert field(on_mi.stdout, "owner") == client_id
    assert run("app", "fic", "list", *mi, data_dir=data_dir).stdout.startswith("aks\thttps://oidc.w.test\t")
    assert run("app", "fic", "remove", *mi, "--name", "aks", data_dir=data_dir).exit_code == 0
    assert run("app", "fic", "list", *mi, data_dir=data_dir).stdout == ""

    off = run("mi", "host", "--name", "agent", "--off", data_dir=data_dir)  # the one tenant that has it
    assert off.exit_code == 0, off.output
    assert field(off.stdout, "on host") == "no"
    assert run("mi", "list", data_dir=data_dir).stdout.split("\t")[:4] == [client_id, object_id, "user", "-"]
    # Not an app registration.
    assert "agent" not in run("app", "list", "--tenant", "w.test", data_dir=data_dir).stdout

    assert run("org", "create", "--name", "w", "--tenant", "w.test", data_dir=data_dir).exit_code == 0
    member = run("org", "member", "add", "--org", "w", "--managed-identity", "agent", data_dir=data_dir)
    assert member.exit_code == 0, member.output
    assert member.stdout == f"{object_id}\tservicePrincipal\tbasic\n"

    assert run("mi", "delete", "--tenant", "w.test", "--name", client_id, data_dir=data_dir).exit_code == 0
    assert run("mi", "list", "--tenant", "w.test", data_dir=data_dir).stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["app", "cert", "add", "--tenant", "w.test", "--app", "x", "--file", "missing.pem"], "cannot read"),
        (["app", "cert", "add", "--tenant", "w.test", "--app", "x", "--file", "{garbage}"],
         "not an X.509 certificate"),
        (["app", "cert", "add", "--tenant", "w.test", "--app", "x", "--file", "{cert}", "--end-date", "soon"],
         "--end-date: expected an ISO 8601 date"),
        (["app", "cert", "remove", "--tenant", "w.test", "--app", "x", "--cert", "AB"], "has no certificate 'AB'"),
        (["app", "fic", "add", "--tenant", "w.test", "--name", "main", "--issuer", "https://i.test",
          "--subject", "s"], "give exactly one of --app or --managed-identity"),
        (["app", "fic", "add", "--tenant", "w.test", "--app", "x", "--name", "main", "--issuer", "http://i.test",
          "--subject", "s"], "must be an https URL"),
        (["app", "fic", "add", "--tenant", "w.test", "--managed-identity", "host", "--name", "main",
          "--issuer", "https://i.test", "--subject", "s"], "'host' is a system-assigned managed identity"),
        (["app", "fic", "remove", "--tenant", "w.test", "--app", "x", "--name", "nope"],
         "has no federated credential named 'nope'"),
        (["mi", "create", "--tenant", "w.test", "--name", "a b", "--kind", "user"],
         "not a valid managed identity name"),
        (["mi", "create", "--tenant", "w.test", "--name", "agent", "--kind", "group"], "'system' or 'user'"),
        (["mi", "create", "--tenant", "w.test", "--name", "other", "--kind", "system", "--on-host"],
         "already carries the system-assigned identity 'host'"),
        (["mi", "host", "--name", "ghost", "--on"], "managed identity 'ghost' is in no tenant"),
        (["mi", "delete", "--tenant", "w.test", "--name", "ghost"], "managed identity 'ghost' not found"),
        (["org", "member", "add", "--org", "w", "--app", "x", "--managed-identity", "host"],
         "give exactly one of --app, --user or --managed-identity"),
        (["org", "member", "add", "--org", "w", "--managed-identity", "ghost"], "managed identity 'ghost' not found"),
    ],
)  # fmt: skip
def test_workload_identity_commands_refuse_bad_input_clearly(
    data_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    for setup in (
        ["tenant", "create", "--domain", "w.test"],
        ["app", "create", "--tenant", "w.test", "--name", "x"],
        ["mi", "create", "--tenant", "w.test", "--name", "host", "--kind", "system", "--on-host"],
        ["org", "create", "--name", "w", "--tenant", "w.test"],
    ):
        assert run(*setup, data_dir=data_dir).exit_code == 0
    (tmp_path / "garbage.cer").write_bytes(b"not a certificate")
    (tmp_path / "cert.pem").write_bytes(pem(make_certificate()))
    args = [a.format(garbage=tmp_path / "garbage.cer", cert=tmp_path / "cert.pem") for a in args]
    result = run(*args, data_dir=data_dir)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert isinstance(result.exception, SystemExit)  # no traceback: a message and exit code 2


def test_serve_managed_identity_options(tmp_path: Path) -> None:
    served = start_serve(tmp_path / "mi", "--imds-port", "0", "--app-service-port", "0", "--no-demo")
    try:
        match = re.search(r"AZURE_POD_IDENTITY_AUTHORITY_HOST=(http://127\.0\.0\.1:\d+)", served.banner)
        assert match, served.banner
        # A request without `Metadata: true` is answered as IMDS answers it.
        response = requests.get(
            f"{match.group(1)}/metadata/identity/oauth2/token",
            params={"api-version": "2018-02-01", "resource": "499b84ac-1321-427f-aa17-267ca6975798"},
            timeout=10,
        )
        assert response.status_code == 400
    finally:
        stop_serve(served)
    off = start_serve(tmp_path / "off", "--no-managed-identity", "--no-demo")
    try:
        assert "AZURE_POD_IDENTITY_AUTHORITY_HOST" not in off.banner
        assert "IDENTITY_ENDPOINT" not in off.banner
    finally:
        stop_serve(off)


def test_app_create_exposes_an_api(tmp_path: Path) -> None:
    data_dir = tmp_path / "api"
    assert run("tenant", "create", "--domain", "api.test", data_dir=data_dir).exit_code == 0
    created = run(
        "app", "create", "--tenant", "api.test", "--name", "tasks-api",
        "--identifier-uri", "api://tasks", "--scope", "access_as_user", "--scope", "Tasks.Read",
        data_dir=data_dir,
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    refused = run(
        "app", "create", "--tenant", "api.test", "--name", "bad-api", "--scope", "openid", data_dir=data_dir
    )
    assert refused.exit_code == 2
    assert "OpenID Connect scope" in refused.output
    assert "Traceback" not in refused.output


# --- projects, repositories and roles (issue 5) --------------------------------------------------


def test_project_repo_and_role_commands(data_dir: Path) -> None:
    assert run("tenant", "create", "--domain", "p.test", data_dir=data_dir).exit_code == 0
    assert run("org", "create", "--name", "prj", "--tenant", "p.test", data_dir=data_dir).exit_code == 0
    assert run("app", "create", "--tenant", "p.test", "--name", "ci", data_dir=data_dir).exit_code == 0
    added = run("org", "member", "add", "--org", "prj", "--app", "ci", "--admin", data_dir=data_dir)
    assert added.exit_code == 0, added.output
    assert added.output.rstrip().endswith("admin")
    assert "\tadmin" in run("org", "member", "list", "--org", "prj", data_dir=data_dir).output

    created = run("project", "create", "--org", "prj", "--name", "Web Site", data_dir=data_dir)
    assert created.exit_code == 0, created.output
    assert "Web Site" in run("project", "list", "--org", "prj", data_dir=data_dir).output
    repo = run("repo", "create", "--org", "prj", "--project", "web site", "--name", "app", data_dir=data_dir)
    assert repo.exit_code == 0, repo.output
    repo_id, clone_url = repo.output.split()
    assert clone_url.endswith("/prj/Web%20Site/_git/app")
    assert (data_dir / "git" / f"{repo_id}.git" / "HEAD").is_file()
    assert repo_id in run("repo", "list", "--org", "prj", "--project", "Web Site", data_dir=data_dir).output

    role = run(
        "project", "member", "add", "--org", "prj", "--project", "Web Site", "--app", "ci",
        "--role", "contributors", data_dir=data_dir,
    )  # fmt: skip
    assert role.exit_code == 0, role.output
    listed = run("project", "member", "list", "--org", "prj", "--project", "Web Site", data_dir=data_dir)
    assert "\tcontributors\t" in listed.output
    removed = run(
        "project",
        "member",
        "remove",
        "--org",
        "prj",
        "--project",
        "Web Site",
        "--app",
        "ci",
        data_dir=data_dir,
    )
    assert removed.exit_code == 0, removed.output

    assert run("project", "delete", "--org", "prj", "--name", "Web Site", data_dir=data_dir).exit_code == 0
    assert not (data_dir / "git" / f"{repo_id}.git").exists()
    assert "Web Site" not in run("project", "list", "--org", "prj", data_dir=data_dir).output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["project", "create", "--org", "prj", "--name", "_x"], "cannot start with an underscore"),
        (["project", "create", "--org", "prj", "--name", "a/b"], "cannot contain /"),
        (["project", "create", "--org", "prj", "--name", "App_Browsers"], "is a reserved name"),
        (["project", "create", "--org", "prj", "--name", "P"], "project 'P' already exists"),
        (["project", "delete", "--org", "prj", "--name", "nope"], "project 'nope' not found"),
        (["repo", "create", "--org", "prj", "--project", "nope", "--name", "r"], "project 'nope' not found"),
        (
            ["project", "member", "add", "--org", "prj", "--project", "P", "--app", "ci", "--role", "owners"],
            "unknown project role 'owners'",
        ),
        (
            ["project", "member", "add", "--org", "prj", "--project", "P", "--app", "ci", "--user", "u@p.test",
             "--role", "readers"],
            "give exactly one of --app, --user or --managed-identity",
        ),
        (
            ["project", "member", "add", "--org", "prj", "--project", "P", "--app", "ci", "--role", "readers"],
            "is not a member of organization prj",
        ),
    ],
)  # fmt: skip
def test_project_commands_refuse_bad_input_clearly(data_dir: Path, args: list[str], message: str) -> None:
    run("tenant", "create", "--domain", "p.test", data_dir=data_dir)
    run("org", "create", "--name", "prj", "--tenant", "p.test", data_dir=data_dir)
    run("app", "create", "--tenant", "p.test", "--name", "ci", data_dir=data_dir)
    run("project", "create", "--org", "prj", "--name", "P", data_dir=data_dir)
    result = run(*args, data_dir=data_dir)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--sign-in-log-retention-days", "-1"], {}),
        (["--sign-in-log-retention-days", "thirty"], {}),
        ([], {"ENTRYWAY_SIGN_IN_LOG_RETENTION_DAYS": "a month"}),
        ([], {"ENTRYWAY_SIGN_IN_LOG_RETENTION_DAYS": "40000"}),
    ],
    ids=["negative", "not-a-number", "env-not-a-number", "env-too-long"],
)
def test_serve_refuses_a_bad_sign_in_log_retention_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    data_dir = tmp_path / "never"
    result = CliRunner().invoke(cli, ["serve", "--data-dir", str(data_dir), *args])
    assert result.exit_code == 2
    assert "--sign-in-log-retention-days" in result.output
    assert not data_dir.exists()
