"""git-credential-entryway's protocol, tenant discovery (git's wwwauth[], the cache, an unauthenticated HEAD
against the real DevOps service) and `entryway git setup`, with real git where git is the caller."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from entryway.client.discovery import (
    Authority,
    AuthorityCache,
    DiscoveryError,
    Organization,
    authority_from_resource_tenant,
    authority_from_wwwauth,
    claims_from_wwwauth,
    discover_authority,
    organization_of,
)
from entryway.client.git_credential import (
    ProtocolError,
    find_authority,
    parse_request,
    run,
)
from tests.conftest import CONTOSO_TENANT, Instance

GIT = shutil.which("git") or "/usr/bin/git"
BIN = Path(sys.executable).parent
HELPER = str(BIN / "git-credential-entryway")
ORG = "fabrikam"
MS = "https://login.microsoftonline.com"


def _helper(
    operation: str, stdin: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HELPER, operation],
        input=stdin,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], **(env or {})},
        timeout=60,
        check=False,
    )


# --- the protocol -----------------------------------------------------------------------------------------


def test_a_request_is_parsed_with_repeated_wwwauth_and_capabilities() -> None:
    request = parse_request(
        io.StringIO(
            "capability[]=authtype\nprotocol=https\nhost=dev.azure.com\npath=fabrikam/web/_git/web\n"
            "wwwauth[]=Bearer authorization_uri=https://login.microsoftonline.com/t1\n"
            'wwwauth[]=Basic realm="https://dev.azure.com/"\nwwwauth[]=TFS-Federated\n\nignored=after blank\n'
        )
    )
    assert (request.protocol, request.host, request.path) == (
        "https",
        "dev.azure.com",
        "fabrikam/web/_git/web",
    )
    assert len(request.wwwauth) == 3
    assert request.capabilities == ("authtype",)
    assert "ignored" not in request.other


def test_a_url_line_is_split_as_git_splits_it() -> None:
    request = parse_request(["url=https://fabrikam@dev.azure.com:443/fabrikam/p/_git/r\n"])
    assert (request.protocol, request.host, request.username, request.path) == (
        "https",
        "dev.azure.com:443",
        "fabrikam",
        "fabrikam/p/_git/r",
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("protocol=https\nnot a pair\n", "not key=value"),
        ("=value\n", "not key=value"),
        ("host=a\0b\n", "NUL"),
        ("url=no-scheme\n", "no scheme"),
        ("path=" + "x" * 70_000 + "\n", "longer than"),
    ],
)
def test_what_is_not_a_credential_request_is_refused(text: str, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        parse_request(io.StringIO(text))


def test_the_helper_refuses_bad_input_on_stderr_with_nothing_on_stdout(tmp_path: Path) -> None:
    done = _helper("get", "protocol=https\ngarbage\n", {"ENTRYWAY_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 1
    assert done.stdout == ""
    assert "not key=value" in done.stderr


@pytest.mark.parametrize("argv", [[], ["fill"], ["get", "extra"]])
def test_an_unknown_operation_prints_usage_and_exits_2(argv: list[str]) -> None:
    err = io.StringIO()
    out = io.StringIO()
    assert run(argv, io.StringIO(""), out, err, {}) == 2
    assert out.getvalue() == ""
    assert "usage: git-credential-entryway get|store|erase" in err.getvalue()


def test_a_remote_that_names_no_organization_gets_no_answer(tmp_path: Path) -> None:
    for stdin in ["protocol=https\nhost=dev.azure.com\n\n", "protocol=ssh\nhost=ssh.dev.azure.com\n\n"]:
        done = _helper("get", stdin, {"ENTRYWAY_CACHE_DIR": str(tmp_path)})
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_store_keeps_nothing(tmp_path: Path) -> None:
    done = _helper(
        "store",
        "protocol=https\nhost=dev.azure.com\npath=fabrikam\nusername=u\npassword=eyJ.secret.token\n\n",
        {"ENTRYWAY_CACHE_DIR": str(tmp_path)},
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert list(tmp_path.iterdir()) == []


# --- organizations and authorities -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "host", "path", "username", "expected"),
    [
        ("https", "dev.azure.com", "fabrikam/p/_git/r", None, ("fabrikam", "https://dev.azure.com/fabrikam")),
        ("https", "dev.azure.com", None, "fabrikam", ("fabrikam", "https://dev.azure.com/fabrikam")),
        (
            "https",
            "Fabrikam.visualstudio.com",
            "p/_git/r",
            None,
            ("fabrikam", "https://Fabrikam.visualstudio.com"),
        ),
        ("https", "localhost:8444", "contoso/_git/r", None, ("contoso", "https://localhost:8444/contoso")),
        ("https", "dev.azure.com", None, None, None),
        ("ssh", "ssh.dev.azure.com", "v3/fabrikam", None, None),
        ("https", "a.b.visualstudio.com", None, None, None),
    ],
)
def test_the_organization_of_a_remote(
    protocol: str, host: str, path: str | None, username: str | None, expected: tuple[str, str] | None
) -> None:
    organization = organization_of(protocol, host, path, username)
    assert (None if organization is None else (organization.name, organization.url)) == expected


def test_the_authority_comes_from_the_bearer_challenge() -> None:
    challenges = ['Basic realm="https://dev.azure.com/"', f'Bearer authorization_uri="{MS}/{CONTOSO_TENANT}"']
    assert authority_from_wwwauth(challenges) == Authority(MS, CONTOSO_TENANT)
    assert authority_from_wwwauth(["Bearer", "TFS-Federated"]) is None  # an MSA-backed organization
    assert authority_from_wwwauth(["Bearer authorization_uri=http://evil.test/t"]) is None  # not https
    assert authority_from_wwwauth(["Bearer authorization_uri=https://x.test/t?q=1"]) is None


def test_the_claims_of_a_claims_challenge_are_decoded() -> None:
    claims = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}'
    encoded = base64.b64encode(claims.encode()).decode()
    challenge = f'Bearer authorization_uri="{MS}/t", error="insufficient_claims", claims="{encoded}"'
    assert claims_from_wwwauth(['Basic realm="x"', challenge]) == claims
    assert claims_from_wwwauth([f'Bearer claims="{encoded.rstrip("=")}"']) == claims
    assert claims_from_wwwauth(['Bearer claims="bm90IGpzb24="']) is None  # "not json"
    assert claims_from_wwwauth(['Bearer claims="%%%"']) is None
    assert claims_from_wwwauth([f'Basic claims="{encoded}"']) is None


def test_the_resource_tenant_header_is_read_as_gcm_reads_it() -> None:
    zero = "00000000-0000-0000-0000-000000000000"
    assert authority_from_resource_tenant(f"{zero}, {CONTOSO_TENANT}", MS) == Authority(MS, CONTOSO_TENANT)
    assert authority_from_resource_tenant(zero, MS) == Authority(MS, "organizations")
    assert authority_from_resource_tenant("not-a-guid", MS) is None
    assert authority_from_resource_tenant(None, MS) is None


def test_the_authority_cache_is_a_private_file_and_survives_damage(tmp_path: Path) -> None:
    cache = AuthorityCache(tmp_path / "cache")
    organization = Organization(ORG, "https://dev.azure.com/fabrikam")
    assert cache.get(organization) is None
    cache.put(organization, Authority(MS, CONTOSO_TENANT))
    assert cache.get(organization) == Authority(MS, CONTOSO_TENANT)
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.path.parent.stat().st_mode) == 0o700
    assert cache.drop(organization) is True
    assert cache.drop(organization) is False
    cache.path.write_text("{not json")
    assert cache.get(organization) is None
    cache.put(organization, Authority(MS, CONTOSO_TENANT))
    assert json.loads(cache.path.read_text()) == {"https://dev.azure.com/fabrikam": f"{MS}/{CONTOSO_TENANT}"}


def test_tenant_discovery_from_an_unauthenticated_head_against_the_devops_service(entryway: Instance) -> None:
    organization = Organization(ORG, f"{entryway.devops}/{ORG}")
    authority = discover_authority(organization, default_host=MS, verify=entryway.ca_bundle)
    assert authority == Authority(entryway.identity.lower(), CONTOSO_TENANT)


def test_tenant_discovery_says_what_it_tried_when_the_server_is_out_of_reach(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    organization = Organization(ORG, f"https://127.0.0.1:{port}/{ORG}")
    with pytest.raises(DiscoveryError, match=rf"HEAD https://127.0.0.1:{port}/fabrikam failed"):
        discover_authority(organization, default_host=MS)


def test_tenant_discovery_fails_clearly_for_an_organization_that_does_not_answer_a_tenant(
    entryway: Instance,
) -> None:
    organization = Organization("no-such-org", f"{entryway.devops}/no-such-org")
    with pytest.raises(DiscoveryError, match="neither 'WWW-Authenticate: Bearer authorization_uri"):
        discover_authority(organization, default_host=MS, verify=entryway.ca_bundle)


def test_find_authority_caches_what_the_head_found_and_refuses_another_host(
    entryway: Instance, tmp_path: Path
) -> None:
    organization = Organization(ORG, f"{entryway.devops}/{ORG}")
    cache = AuthorityCache(tmp_path)
    request = parse_request(["protocol=https\n"])
    found = find_authority(
        request, organization, cache, authority_host=entryway.identity, verify=entryway.ca_bundle
    )
    assert found.tenant == CONTOSO_TENANT
    assert cache.get(organization) == found
    from entryway.client.git_credential import HelperError

    with pytest.raises(HelperError, match="set ENTRYWAY_AUTHORITY="):
        find_authority(
            request,
            organization,
            AuthorityCache(tmp_path / "x"),
            authority_host=MS,
            verify=entryway.ca_bundle,
        )
    challenge = parse_request(["wwwauth[]=Bearer authorization_uri=https://attacker.test/t\n"])
    with pytest.raises(HelperError, match=r"https://attacker\.test/t"):
        find_authority(
            challenge, organization, cache, authority_host=entryway.identity, verify=entryway.ca_bundle
        )


def test_git_reject_makes_the_helper_drop_the_cached_authority(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache = AuthorityCache(cache_dir)
    organization = Organization(ORG, "https://dev.azure.com/fabrikam")
    other = Organization("other", "https://dev.azure.com/other")
    cache.put(organization, Authority(MS, CONTOSO_TENANT))
    cache.put(other, Authority(MS, CONTOSO_TENANT))
    done = subprocess.run(
        [
            GIT,
            "-c",
            f"credential.helper={HELPER}",
            "-c",
            "credential.useHttpPath=true",
            "credential",
            "reject",
        ],
        input="url=https://dev.azure.com/fabrikam/p/_git/r\nusername=ada\npassword=x\n\n",
        capture_output=True,
        text=True,
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "ENTRYWAY_CACHE_DIR": str(cache_dir),
        },
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert cache.get(organization) is None
    assert cache.get(other) is not None


# --- entryway git setup ------------------------------------------------------------------------------------


def _setup(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    config = tmp_path / "gitconfig"
    done = subprocess.run(
        [str(BIN / "entryway"), "git", "setup", *args],
        capture_output=True,
        text=True,
        env={"PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(tmp_path), "GIT_CONFIG_GLOBAL": str(config)},
        timeout=60,
        check=False,
    )
    return done, config


def _config(config: Path) -> list[str]:
    done = subprocess.run(
        [GIT, "config", "--file", str(config), "--list"], capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


def test_git_setup_writes_the_helper_for_that_organization_only(tmp_path: Path) -> None:
    done, config = _setup(tmp_path, "https://dev.azure.com/fabrikam/")
    assert done.returncode == 0, done.stderr
    assert _config(config) == [
        "credential.https://dev.azure.com/fabrikam.helper=",
        "credential.https://dev.azure.com/fabrikam.helper=entryway",
        "credential.https://dev.azure.com/fabrikam.usehttppath=true",
    ]
    again, _ = _setup(tmp_path, "https://dev.azure.com/fabrikam")  # idempotent
    assert again.returncode == 0, again.stderr
    assert len(_config(config)) == 3


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://dev.azure.com/fabrikam", "is not an https URL"),
        ("https://dev.azure.com", "names no organization"),
        ("https://user:pw@dev.azure.com/fabrikam", "holds credentials"),
        ("https://dev.azure.com/fabrikam/project/_git/r", "more than an organization URL"),
    ],
)
def test_git_setup_refuses_what_is_not_an_organization_url(tmp_path: Path, url: str, message: str) -> None:
    done, config = _setup(tmp_path, url)
    assert done.returncode == 2
    assert message in done.stderr
    assert not config.exists()
