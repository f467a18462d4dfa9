"""Leaked-PAT reports (issue 6, Leaks) over TLS, signed the way GitHub's secret scanning partner program signs
them (ECDSA P-256 / SHA-256 over the raw body, `cryptography` on both sides).

A tenant of its own (leaks.test, two organizations), so its leak policy never reaches the other tests' tenants.
PATs are made through the real lifecycle API with a user's Entra token and used with requests; the reporter is
registered with the real CLI; the owner's notification is read back with the CLI.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from click.testing import Result
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import func, select
from typer.testing import CliRunner

from entryway.cli.main import app as cli
from entryway.config.declarative import ConfigError, apply_config
from entryway.devops.leaks.service import LeakReporterService
from entryway.devops.leaks.signature import key_identifier_of
from entryway.devops.orgs.service import Organization, OrgService
from entryway.devops.pats.format import mint
from entryway.devops.pats.policy import PatPolicyService
from entryway.identity.directory.service import DirectoryService
from entryway.store.models import (
    AuditEventRow,
    LeakReportRow,
    NotificationRow,
    PersonalAccessTokenRow,
)
from tests.conftest import AZURE_CLI_ID, DEVOPS_SCOPE, Instance, form_post

TENANT_ID = "3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a98"
ORG_A, ORG_B = "leaks-a", "leaks-b"
LEE = ("lee@leaks.test", "Lee-Leaks-Tokens-0042")
PATH = "/_apis/secretscanning/leakedtokens"
TOKEN_TYPE = "azure_devops_personal_access_token"
LEAK_URL = "https://github.com/octocat/Hello-World/blob/12345600b9cbe38a219f39a9941c9319b600c002/ci.env"
CONFIG = f"""\
tenants:
  - id: {TENANT_ID}
    domains: [leaks.test]
    users:
      - upn: {LEE[0]}
        password: "{LEE[1]}"
        display_name: Lee Leaky
        mfa_required: false
organizations:
  - name: {ORG_A}
    tenant: leaks.test
    members:
      - user: {LEE[0]}
        access: basic
  - name: {ORG_B}
    tenant: leaks.test
    members:
      - user: {LEE[0]}
        access: basic
"""


def run(*args: str, data_dir: Path) -> Result:
    return CliRunner().invoke(cli, [*args, "--data-dir", str(data_dir)])


def pem_of(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass
class Reporter:
    key_id: str
    key: ec.EllipticCurvePrivateKey

    def sign(self, body: bytes) -> str:
        return base64.b64encode(self.key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


@dataclass(frozen=True)
class World:
    instance: Instance
    lee: str  # Lee's Entra token
    a: Organization
    b: Organization
    github: Reporter  # registered
    stranger: Reporter  # never registered


@pytest.fixture(scope="module")
def world(entryway: Instance, tmp_path_factory: pytest.TempPathFactory) -> World:
    apply_config(entryway.runtime, yaml.safe_load(CONFIG), source="test_pat_leaks")
    response = form_post(
        entryway,
        f"/{TENANT_ID}/oauth2/v2.0/token",
        {
            "grant_type": "password",
            "client_id": AZURE_CLI_ID,
            "username": LEE[0],
            "password": LEE[1],
            "scope": DEVOPS_SCOPE,
        },
    )
    assert response.status_code == 200, response.text
    with entryway.runtime.db.read() as session:
        orgs = OrgService(session, entryway.clock)
        a, b = orgs.get(ORG_A), orgs.get(ORG_B)
    key = ec.generate_private_key(ec.SECP256R1())
    pem_file = tmp_path_factory.mktemp("leak-keys") / "github.pem"
    pem_file.write_text(pem_of(key))
    github_id = uuid.uuid4().hex * 2  # 64 hex characters, the shape of GitHub's identifiers
    added = run(
        "leaks", "reporter", "add", "--name", "GitHub secret scanning", "--public-key", str(pem_file),
        "--key-id", github_id, data_dir=entryway.settings.data_dir,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert added.output.split("\t")[0] == github_id
    stranger = Reporter(uuid.uuid4().hex, ec.generate_private_key(ec.SECP256R1()))
    return World(entryway, response.json()["access_token"], a, b, Reporter(github_id, key), stranger)


@pytest.fixture(autouse=True)
def default_policy(world: World) -> Iterator[None]:
    """Each test starts (and leaves) the tenant with automatic revocation on, its default."""
    yield
    with world.instance.runtime.db.unit_of_work() as session:
        PatPolicyService(session, world.instance.clock).set_tenant_policy(
            TENANT_ID, None, auto_revoke_leaked=True
        )


def create_pat(world: World, org: str = ORG_A, **body: Any) -> dict[str, Any]:
    body = {"displayName": f"leaky {uuid.uuid4().hex[:6]}", "scope": "vso.code", **body}
    response = requests.post(
        f"{world.instance.devops}/{org}/_apis/tokens/pats",
        params={"api-version": "7.1-preview.1"},
        json=body,
        headers={"Authorization": f"Bearer {world.lee}"},
        verify=world.instance.ca_bundle,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["patTokenError"] == "none", response.text
    return dict(response.json()["patToken"])


def use(world: World, pat: str, org: str = ORG_A) -> int:
    basic = base64.b64encode(f":{pat}".encode()).decode()
    response = requests.get(
        f"{world.instance.devops}/{org}/_apis/connectionData",
        headers={"Authorization": f"Basic {basic}"},
        verify=world.instance.ca_bundle,
        timeout=30,
    )
    return response.status_code


def entry(token: str, *, source: str = "content", url: str = LEAK_URL) -> dict[str, str]:
    return {"token": token, "type": TOKEN_TYPE, "url": url, "source": source}


def post(
    world: World,
    body: bytes,
    *,
    reporter: Reporter | None = None,
    signature: str | None = None,
    key_id: str | None = None,
) -> requests.Response:
    signer = reporter or world.github
    headers = {
        "Content-Type": "application/json",
        "Github-Public-Key-Identifier": key_id if key_id is not None else signer.key_id,
        "Github-Public-Key-Signature": signature if signature is not None else signer.sign(body),
    }
    return requests.post(
        f"{world.instance.devops}{PATH}",
        data=body,
        headers=headers,
        verify=world.instance.ca_bundle,
        timeout=30,
    )


def report(world: World, *entries: dict[str, str]) -> list[dict[str, str]]:
    response = post(world, json.dumps(list(entries)).encode())
    assert response.status_code == 200, response.text
    feedback: list[dict[str, str]] = response.json()
    return feedback


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def pat_row(world: World, authorization_id: str) -> PersonalAccessTokenRow:
    with world.instance.runtime.db.read() as session:
        row = session.get(PersonalAccessTokenRow, authorization_id)
        assert row is not None
        session.expunge(row)
        return row


def reports_of(world: World, authorization_id: str) -> list[LeakReportRow]:
    with world.instance.runtime.db.read() as session:
        rows = session.scalars(
            select(LeakReportRow)
            .where(LeakReportRow.authorization_id == authorization_id)
            .order_by(LeakReportRow.received_at)
        ).all()
        session.expunge_all()
        return list(rows)


def audits_of(world: World, authorization_id: str) -> list[AuditEventRow]:
    with world.instance.runtime.db.read() as session:
        rows = session.scalars(
            select(AuditEventRow).where(AuditEventRow.action.in_(["Token.LeakRevoked", "Token.LeakDetected"]))
        ).all()
        found = [r for r in rows if r.details.get("authorizationId") == authorization_id]
        session.expunge_all()
        return found


def notifications_of(world: World, authorization_id: str) -> list[NotificationRow]:
    with world.instance.runtime.db.read() as session:
        rows = session.scalars(
            select(NotificationRow).where(NotificationRow.body.contains(authorization_id))
        ).all()
        session.expunge_all()
        return list(rows)


def counts(world: World) -> tuple[int, int, int, int]:
    """Rows a report writes (leak reports, notifications, leak audit rows) and the revoked PATs: a refused
    report changes none of them."""
    with world.instance.runtime.db.read() as session:
        return (
            int(session.scalar(select(func.count()).select_from(LeakReportRow)) or 0),
            int(session.scalar(select(func.count()).select_from(NotificationRow)) or 0),
            # Only the leak actions: authentication decisions of earlier requests are written in the background.
            int(
                session.scalar(
                    select(func.count())
                    .select_from(AuditEventRow)
                    .where(AuditEventRow.action.in_(["Token.LeakRevoked", "Token.LeakDetected"]))
                )
                or 0
            ),
            int(
                session.scalar(
                    select(func.count())
                    .select_from(PersonalAccessTokenRow)
                    .where(PersonalAccessTokenRow.revoked_at.is_not(None))
                )
                or 0
            ),
        )


# --- a signed report -------------------------------------------------------------------------------------


def test_a_signed_report_revokes_the_pat_records_audits_and_notifies(world: World) -> None:
    pat = create_pat(world)
    assert use(world, pat["token"]) == 200

    feedback = report(world, entry(pat["token"]))
    assert feedback == [
        {"token_hash": sha256(pat["token"]), "token_type": TOKEN_TYPE, "label": "true_positive"}
    ]
    assert use(world, pat["token"]) == 401  # revoked at once
    assert pat_row(world, pat["authorizationId"]).revoked_at is not None

    (recorded,) = reports_of(world, pat["authorizationId"])
    assert (recorded.outcome, recorded.reporter, recorded.url, recorded.source) == (
        "revoked",
        "GitHub secret scanning",
        LEAK_URL,
        "content",
    )
    (audit,) = audits_of(world, pat["authorizationId"])
    assert (audit.action, audit.organization_id, audit.credential_kind) == (
        "Token.LeakRevoked",
        world.a.id,
        "signature",
    )
    assert audit.actor_name == "GitHub secret scanning (leak reporter)"
    assert audit.details["url"] == LEAK_URL
    assert audit.details["outcome"] == "revoked"
    (note,) = notifications_of(world, pat["authorizationId"])
    assert note.kind == "patLeakRevoked"
    assert note.recipient_name == LEE[0]
    assert pat["displayName"] in note.subject
    assert LEAK_URL in note.body
    assert "(content)" in note.body
    assert "workload identity federation" in note.body

    # The token is nowhere in what was written.
    for row in (recorded, audit, note):
        assert pat["token"] not in json.dumps({k: str(v) for k, v in vars(row).items()})


def test_the_owner_and_the_administrator_see_it_with_the_cli(world: World) -> None:
    pat = create_pat(world)
    report(world, entry(pat["token"], source="commit"))
    data_dir = world.instance.settings.data_dir
    notes = run("notifications", "list", "--user", LEE[0], "--json", data_dir=data_dir)
    assert notes.exit_code == 0, notes.output
    assert any(
        pat["authorizationId"] in n["body"] and n["kind"] == "patLeakRevoked"
        for n in json.loads(notes.output)
    )
    text = run("notifications", "list", "--user", LEE[0], data_dir=data_dir)
    assert f"Your personal access token '{pat['displayName']}' was leaked and has been revoked" in text.output

    listed = run("leaks", "list", "--json", data_dir=data_dir)
    assert listed.exit_code == 0, listed.output
    mine = [r for r in json.loads(listed.output) if r["authorizationId"] == pat["authorizationId"]]
    assert mine == [
        {
            **mine[0],
            "outcome": "revoked",
            "owner": LEE[0],
            "displayName": pat["displayName"],
            "source": "commit",
            "url": LEAK_URL,
            "tokenType": TOKEN_TYPE,
            "reporter": "GitHub secret scanning",
        }
    ]
    table = run("leaks", "list", data_dir=data_dir)
    assert f"revoked\tGitHub secret scanning\t{TOKEN_TYPE}\t{LEE[0]} '{pat['displayName']}'" in table.output
    assert pat["token"] not in listed.output + table.output


def test_with_automatic_revocation_off_the_owner_is_told_and_the_pat_keeps_working(world: World) -> None:
    with world.instance.runtime.db.unit_of_work() as session:
        PatPolicyService(session, world.instance.clock).set_tenant_policy(
            TENANT_ID, None, auto_revoke_leaked=False
        )
    pat = create_pat(world)
    feedback = report(world, entry(pat["token"]))
    assert feedback[0]["label"] == "true_positive"
    assert use(world, pat["token"]) == 200
    assert pat_row(world, pat["authorizationId"]).revoked_at is None
    (recorded,) = reports_of(world, pat["authorizationId"])
    assert recorded.outcome == "notified"
    (audit,) = audits_of(world, pat["authorizationId"])
    assert audit.action == "Token.LeakDetected"
    (note,) = notifications_of(world, pat["authorizationId"])
    assert note.kind == "patLeakDetected"
    assert "STILL WORKS" in note.body


def test_a_global_pat_is_audited_in_every_organization_of_the_tenant(world: World) -> None:
    pat = create_pat(world, allOrgs=True)
    assert use(world, pat["token"], ORG_B) == 200
    report(world, entry(pat["token"]))
    assert use(world, pat["token"], ORG_B) == 401
    audits = audits_of(world, pat["authorizationId"])
    assert sorted(a.organization_id for a in audits) == sorted([world.a.id, world.b.id])
    assert {a.details["allOrgs"] for a in audits} == {True}
    (note,) = notifications_of(world, pat["authorizationId"])
    assert note.organization_id is None


def test_a_token_reported_twice_is_revoked_once_and_notified_once(world: World) -> None:
    pat = create_pat(world)
    feedback = report(world, entry(pat["token"]), entry(pat["token"], url=LEAK_URL + "#2"))
    assert [f["label"] for f in feedback] == ["true_positive", "true_positive"]
    assert [r.outcome for r in reports_of(world, pat["authorizationId"])] == ["revoked", "alreadyInactive"]
    again = report(world, entry(pat["token"], url=LEAK_URL + "#3"))
    assert again[0]["label"] == "true_positive"
    assert len(reports_of(world, pat["authorizationId"])) == 3
    assert len(notifications_of(world, pat["authorizationId"])) == 1
    assert len(audits_of(world, pat["authorizationId"])) == 3


def test_concurrent_reports_of_one_token_revoke_it_once_and_notify_once(world: World) -> None:
    pat = create_pat(world)
    reports = [json.dumps([entry(pat["token"], url=f"{LEAK_URL}#{i}")]).encode() for i in range(6)]
    start = threading.Barrier(len(reports))

    def send(body: bytes) -> int:
        start.wait()
        return post(world, body).status_code

    with ThreadPoolExecutor(len(reports)) as pool:
        statuses = list(pool.map(send, reports))
    assert statuses == [200] * len(reports)
    outcomes = sorted(r.outcome for r in reports_of(world, pat["authorizationId"]))
    assert outcomes == ["alreadyInactive"] * (len(reports) - 1) + ["revoked"]
    assert len(notifications_of(world, pat["authorizationId"])) == 1
    assert use(world, pat["token"]) == 401


def test_tokens_that_are_not_ours_are_false_positives_and_touch_nothing(world: World) -> None:
    unknown = mint(world.instance.clock.now())  # well formed, never issued
    legacy = "a" * 52  # Azure DevOps' legacy shape: not an Entryway PAT
    garbage = "ghp_" + "x" * 36
    reports, notifications, audits, revoked = counts(world)
    feedback = report(world, entry(unknown), entry(legacy), entry(garbage))
    assert [f["label"] for f in feedback] == ["false_positive"] * 3
    assert [f["token_hash"] for f in feedback] == [sha256(unknown), sha256(legacy), sha256(garbage)]
    # Each is recorded (a reporter's traffic is worth knowing), with no PAT, no audit row and no notification.
    assert counts(world) == (reports + 3, notifications, audits, revoked)
    with world.instance.runtime.db.read() as session:
        latest = session.scalars(
            select(LeakReportRow).order_by(LeakReportRow.received_at.desc()).limit(3)
        ).all()
        assert {(r.outcome, r.authorization_id) for r in latest} == {("notFound", None)}


def test_a_mixed_report_acts_on_each_token(world: World) -> None:
    pat = create_pat(world)
    feedback = report(world, entry(mint(world.instance.clock.now())), entry(pat["token"]))
    assert [f["label"] for f in feedback] == ["false_positive", "true_positive"]
    assert use(world, pat["token"]) == 401


# --- refused reports write nothing ---------------------------------------------------------------------------


def _refusals(world: World, pat: str) -> dict[str, requests.Response]:
    body = json.dumps([entry(pat)]).encode()
    other_body = json.dumps([entry(pat, url="https://example.test/elsewhere")]).encode()
    good = world.github.sign(body)
    return {
        "unsigned": requests.post(
            f"{world.instance.devops}{PATH}", data=body, verify=world.instance.ca_bundle, timeout=30
        ),
        "no signature": post(world, body, signature=""),
        "no key id": post(world, body, key_id=""),
        "unknown key id": post(
            world, body, key_id=world.stranger.key_id, signature=world.stranger.sign(body)
        ),
        "signed by another key": post(world, body, signature=world.stranger.sign(body)),
        "tampered body": post(world, other_body, signature=good),
        "signature of another body": post(world, body, signature=world.github.sign(other_body)),
        "signature not base64": post(world, body, signature="not base64 at all!"),
        "signature truncated": post(world, body, signature=good[:20]),
        "signature far too long": post(world, body, signature="A" * 5000),
        "key id far too long": post(world, body, key_id="k" * 5000),
    }


def test_unsigned_wrongly_signed_and_tampered_reports_are_refused_with_nothing_written(world: World) -> None:
    pat = create_pat(world)
    before = counts(world)
    for case, response in _refusals(world, pat["token"]).items():
        assert response.status_code == 401, (case, response.text)
        assert response.json()["message"] == "The report is not signed by a registered leak reporter.", case
        assert "Github-Public-Key-Signature" in response.headers["WWW-Authenticate"], case
    assert counts(world) == before
    assert use(world, pat["token"]) == 200


_MALFORMED: dict[str, bytes] = {
    "not json": b"token=abc",
    "an object": b'{"token": "abc", "type": "t"}',
    "an empty array": b"[]",
    "an item that is not an object": b'["abc"]',
    "no token": b'[{"type": "t"}]',
    "an empty token": b'[{"token": "", "type": "t"}]',
    "a token that is not a string": b'[{"token": 12345, "type": "t"}]',
    "no type": b'[{"token": "abc"}]',
    "a url that is not a string": b'[{"token": "abc", "type": "t", "url": 7}]',
    "a source that is too long": b'[{"token": "abc", "type": "t", "source": "' + b"s" * 65 + b'"}]',
    "a token that is too long": b'[{"token": "' + b"t" * 1025 + b'", "type": "t"}]',
    "too many tokens": json.dumps([{"token": f"t{i}", "type": "t"} for i in range(1001)]).encode(),
    "invalid utf-8": b'[{"token": "\xff\xfe", "type": "t"}]',
}


@pytest.mark.parametrize("case", sorted(_MALFORMED))
def test_malformed_reports_are_refused_with_nothing_written(world: World, case: str) -> None:
    before = counts(world)
    response = post(world, _MALFORMED[case])
    assert response.status_code == 400, response.text
    assert response.json()["typeKey"] == "VssServiceException"
    assert counts(world) == before


def test_a_report_larger_than_a_mebibyte_is_refused(world: World) -> None:
    before = counts(world)
    body = json.dumps([{"token": "t", "type": "t", "url": "u" * 2000}] * 600).encode()
    assert len(body) > 1024 * 1024
    response = post(world, body)
    assert response.status_code == 400, response.text
    assert "larger than" in response.json()["message"]
    assert counts(world) == before


def test_a_get_is_not_a_report(world: World) -> None:
    response = requests.get(f"{world.instance.devops}{PATH}", verify=world.instance.ca_bundle, timeout=30)
    assert response.status_code == 405


# --- GitHub's own published sample ----------------------------------------------------------------------------

# The example of GitHub's partner program documentation (docs.github.com, "Secret scanning partner program",
# validation sample): its public key, key identifier, payload and signature, as GitHub published them.
GITHUB_SAMPLE_KEY = """\
-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9MJJHnMfn2+H4xL4YaPDA4RpJqUq
kCmRCBnYERxZanmcpzQSXs1X/AljlKkbJ8qpVIW4clayyef9gWhFbNHWAA==
-----END PUBLIC KEY-----
"""
GITHUB_SAMPLE_KEY_ID = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a"
GITHUB_SAMPLE_PAYLOAD = b'[{"token":"some_token","type":"some_type","url":"some_url"}]'
GITHUB_SAMPLE_SIGNATURE = (
    "MEUCIQDKZokqnCjrRtw0tni+2Ltvl/uiMJ1EGumEsp1BsNr32AIgQY1YXD2nlj+XNfGK4rBfkMJ1JDOQcYXxa2sY8FNkrKc="
)


def test_a_report_signed_by_github_itself_is_accepted(world: World, tmp_path: Path) -> None:
    """GitHub's sample key registered without --key-id gets GitHub's own identifier, and GitHub's sample
    request (signed by GitHub, not by us) verifies: the scheme is GitHub's, byte for byte."""
    data_dir = world.instance.settings.data_dir
    pem_file = tmp_path / "github-sample.pem"
    pem_file.write_text(GITHUB_SAMPLE_KEY)
    added = run(
        "leaks",
        "reporter",
        "add",
        "--name",
        "GitHub (sample)",
        "--public-key",
        str(pem_file),
        data_dir=data_dir,
    )
    assert added.exit_code == 0, added.output
    assert added.output.split("\t")[0] == GITHUB_SAMPLE_KEY_ID
    try:
        sample = post(
            world, GITHUB_SAMPLE_PAYLOAD, key_id=GITHUB_SAMPLE_KEY_ID, signature=GITHUB_SAMPLE_SIGNATURE
        )
        assert sample.status_code == 200, sample.text
        assert sample.json() == [
            {"token_hash": sha256("some_token"), "token_type": "some_type", "label": "false_positive"}
        ]
        tampered = post(
            world, GITHUB_SAMPLE_PAYLOAD.replace(b"some_url", b"some_uri"), key_id=GITHUB_SAMPLE_KEY_ID,
            signature=GITHUB_SAMPLE_SIGNATURE,
        )  # fmt: skip
        assert tampered.status_code == 401
    finally:
        assert run("leaks", "reporter", "remove", GITHUB_SAMPLE_KEY_ID, data_dir=data_dir).exit_code == 0


# --- reporters: CLI ------------------------------------------------------------------------------------------


def test_reporter_registration_through_the_cli(world: World, tmp_path: Path) -> None:
    data_dir = world.instance.settings.data_dir
    key = ec.generate_private_key(ec.SECP256R1())
    pem_file = tmp_path / "partner.pem"
    pem_file.write_text("\n\n" + pem_of(key) + "\n")
    added = run(
        "leaks", "reporter", "add", "--name", "Partner", "--public-key", str(pem_file), data_dir=data_dir
    )
    assert added.exit_code == 0, added.output
    key_id = added.output.split("\t")[0]
    assert key_id == key_identifier_of(pem_of(key))
    assert len(key_id) == 64
    again = run(
        "leaks", "reporter", "add", "--name", "Partner", "--public-key", str(pem_file), data_dir=data_dir
    )
    assert again.exit_code == 0
    assert "(already registered)" in again.output
    listed = run("leaks", "reporter", "list", data_dir=data_dir)
    assert f"{key_id}\tPartner\t" in listed.output
    assert f"{world.github.key_id}\tGitHub secret scanning\t" in listed.output

    partner = Reporter(key_id, key)
    pat = create_pat(world)
    assert post(world, json.dumps([entry(pat["token"])]).encode(), reporter=partner).status_code == 200

    removed = run("leaks", "reporter", "remove", key_id, data_dir=data_dir)
    assert removed.exit_code == 0, removed.output
    second = create_pat(world)
    refused = post(world, json.dumps([entry(second["token"])]).encode(), reporter=partner)
    assert refused.status_code == 401
    assert use(world, second["token"]) == 200


@pytest.mark.parametrize(
    "case", ["rsa key", "p-384 key", "not pem", "same id other key", "empty name", "missing"]
)
def test_bad_reporter_registrations_are_refused(world: World, tmp_path: Path, case: str) -> None:
    data_dir = world.instance.settings.data_dir
    pem_file = tmp_path / "key.pem"
    name, key_id = "Bad", None
    if case == "rsa key":
        pem_file.write_text(pem_of(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    elif case == "p-384 key":
        pem_file.write_text(pem_of(ec.generate_private_key(ec.SECP384R1())))
    elif case == "not pem":
        pem_file.write_text("-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n")
    elif case == "same id other key":
        pem_file.write_text(pem_of(ec.generate_private_key(ec.SECP256R1())))
        name, key_id = "GitHub secret scanning", world.github.key_id
    elif case == "empty name":
        pem_file.write_text(pem_of(ec.generate_private_key(ec.SECP256R1())))
        name = "  "
    else:
        pem_file = tmp_path / "absent.pem"
    args = ["leaks", "reporter", "add", "--name", name, "--public-key", str(pem_file)]
    result = run(*args, *(["--key-id", key_id] if key_id else []), data_dir=data_dir)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ")
    listed = run("leaks", "reporter", "list", data_dir=data_dir).output
    assert "\tBad\t" not in listed


def test_removing_an_unknown_reporter_is_an_error(world: World) -> None:
    result = run("leaks", "reporter", "remove", "nope", data_dir=world.instance.settings.data_dir)
    assert result.exit_code == 2
    assert "no reporter with key identifier nope" in result.output


# --- reporters: the config file ------------------------------------------------------------------------------


def _reporter_keys(world: World) -> dict[str, str]:
    with world.instance.runtime.db.read() as session:
        return {
            r.key_identifier: r.name
            for r in LeakReporterService(session, world.instance.clock).list_reporters()
        }


def test_the_config_file_registers_reporters_idempotently(world: World, tmp_path: Path) -> None:
    inline = ec.generate_private_key(ec.SECP256R1())
    from_file = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "partner.pem").write_text(pem_of(from_file))
    named_id = f"partner-{uuid.uuid4().hex[:8]}"
    config = {
        "leak_reporters": [
            {"name": "Inline partner", "public_key": pem_of(inline)},
            {"name": "File partner", "public_key_path": "keys/partner.pem", "key_identifier": named_id},
        ]
    }
    first = apply_config(world.instance.runtime, config, source="leaks-config", base_dir=tmp_path)
    assert len([c for c in first.created if c.startswith("leak reporter")]) == 2
    keys = _reporter_keys(world)
    assert keys[key_identifier_of(pem_of(inline))] == "Inline partner"
    assert keys[named_id] == "File partner"
    again = apply_config(world.instance.runtime, config, source="leaks-config", base_dir=tmp_path)
    assert again.created == []

    pat = create_pat(world)
    signed_by_file = Reporter(named_id, from_file)
    assert post(world, json.dumps([entry(pat["token"])]).encode(), reporter=signed_by_file).status_code == 200


@pytest.mark.parametrize(
    ("case", "reporter", "message"),
    [
        ("both keys", {"name": "x", "public_key": "k", "public_key_path": "k.pem"}, "give exactly one of"),
        ("no key", {"name": "x"}, "give exactly one of"),
        ("no name", {"public_key": "PEM"}, ".name: required"),
        ("unknown key", {"name": "x", "public_key": "k", "colour": "red"}, "unknown key(s) colour"),
        ("not a key", {"name": "x", "public_key": "not a pem"}, "the public key is not a PEM public key"),
        ("missing file", {"name": "x", "public_key_path": "absent.pem"}, ".public_key_path: cannot read"),
    ],
)
def test_a_bad_reporter_in_the_config_file_changes_nothing(
    world: World, tmp_path: Path, case: str, reporter: dict[str, str], message: str
) -> None:
    tenant = {"id": str(uuid.uuid4()), "domains": [f"{uuid.uuid4().hex[:8]}.test"]}
    config = {"tenants": [tenant], "leak_reporters": [reporter]}
    before = _reporter_keys(world)
    with pytest.raises(ConfigError) as raised:
        apply_config(world.instance.runtime, config, source="bad-leaks", base_dir=tmp_path)
    assert str(raised.value).startswith("bad-leaks.leak_reporters[0]"), case
    assert message in str(raised.value), case
    assert _reporter_keys(world) == before
    with world.instance.runtime.db.read() as session:
        assert (
            DirectoryService(
                session, world.instance.clock, world.instance.runtime.digester
            ).find_tenant_or_none(tenant["id"])
            is None
        )  # all or nothing: the tenant declared beside it was not created either
