"""The audit log (issue 5): every authentication decision, refused or accepted, with who, from where and
which kind of credential; the REST audit log for organization administrators; `entryway audit list`; and no
token or secret in the audit table, the database files or the log output."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import yaml
from sqlalchemy import select, update
from typer.testing import CliRunner

from entryway.cli.main import app as cli
from entryway.config.declarative import apply_config
from entryway.store.models import AuditEventRow, MemberRow
from tests.conftest import (
    BUILD_BOT_SECRET,
    CONTOSO_TENANT,
    DEVOPS_RESOURCE,
    OUTSIDER_ID,
    OUTSIDER_SECRET,
    Instance,
)
from tests.devops.test_token_rejection import basic, bearer, fresh_token, sign_with_real_key

ORG = "fabrikam"
ADMIN_BOT_ID = "a1d17000-0000-4000-8000-00000000a001"
ADMIN_BOT_SECRET = "audit-admin-secret-0123456789abcdefghijk"
READER_BOT_ID = "a1d17000-0000-4000-8000-00000000a002"
READER_BOT_SECRET = "audit-reader-secret-0123456789abcdefghij"
FRESH_BOT_ID = "a1d17000-0000-4000-8000-00000000a003"
FRESH_BOT_SECRET = "audit-fresh-secret-0123456789abcdefghijkl"
AUDIT_CONFIG = f"""\
tenants:
  - id: {CONTOSO_TENANT}
    domains: [contoso.test]
    apps:
      - name: audit-admin-bot
        client_id: {ADMIN_BOT_ID}
        secrets:
          - value: "{ADMIN_BOT_SECRET}"
      - name: audit-reader-bot
        client_id: {READER_BOT_ID}
        secrets:
          - value: "{READER_BOT_SECRET}"
      - name: audit-fresh-bot
        client_id: {FRESH_BOT_ID}
        secrets:
          - value: "{FRESH_BOT_SECRET}"
organizations:
  - name: {ORG}
    tenant: contoso.test
    members:
      - app: audit-admin-bot
        access: basic
      - app: audit-reader-bot
        access: basic
      - app: audit-fresh-bot
        access: basic
"""

# Every token and secret this module sends: none of them may appear in any log.
SECRETS: set[str] = {
    BUILD_BOT_SECRET,
    OUTSIDER_SECRET,
    ADMIN_BOT_SECRET,
    READER_BOT_SECRET,
    FRESH_BOT_SECRET,
}


@pytest.fixture(scope="module")
def audit_world(entryway: Instance) -> None:
    """Three apps of our own in fabrikam; audit-admin-bot is a Project Collection Administrator."""
    apply_config(entryway.runtime, yaml.safe_load(AUDIT_CONFIG), source="test_audit")
    with entryway.runtime.db.unit_of_work() as session:
        session.execute(
            update(MemberRow).where(MemberRow.principal_name == ADMIN_BOT_ID).values(organization_admin=True)
        )


def token(instance: Instance, client_id: str, secret: str) -> str:
    value = fresh_token(instance, client_id=client_id, secret=secret)
    SECRETS.add(value)
    return value


def call(
    instance: Instance,
    path: str,
    authorization: str | None = None,
    *,
    marker: str | None = None,
    **params: str,
) -> tuple[requests.Response, str]:
    """A request whose User-Agent is a marker of its own, so that its audit entry can be told apart."""
    marker = marker or f"audit-test/{uuid.uuid4()}"
    headers = {"X-TFS-FedAuthRedirect": "Suppress", "User-Agent": marker}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = requests.get(
        f"{instance.devops}{path}", headers=headers, params=params, verify=instance.ca_bundle, timeout=30
    )
    return response, marker


def entries_of(
    instance: Instance, marker: str, *, expected: int = 1, timeout: float = 5.0
) -> list[AuditEventRow]:
    """The audit rows of the requests marked `marker` (the writer runs in the background: wait for it)."""
    deadline = time.monotonic() + timeout
    while True:
        with instance.runtime.db.read() as session:
            rows = [
                row
                for row in session.scalars(select(AuditEventRow).order_by(AuditEventRow.timestamp))
                if row.details.get("userAgent") == marker
            ]
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def only_entry(instance: Instance, marker: str) -> AuditEventRow:
    rows = entries_of(instance, marker)
    assert len(rows) == 1, [(r.action, r.path) for r in rows]
    return rows[0]


def object_id_of(instance: Instance, client_id: str) -> str:
    with instance.runtime.db.read() as session:
        return (
            session.scalars(select(MemberRow.object_id).where(MemberRow.principal_name == client_id)).first()
            or ""
        )


# --- refusals --------------------------------------------------------------------------------------------


def test_no_credential_on_a_member_route_is_refused_and_recorded(
    entryway: Instance, audit_world: None
) -> None:
    response, marker = call(entryway, f"/{ORG}/_apis/connectionData")
    assert response.status_code == 401
    row = only_entry(entryway, marker)
    assert (row.action, row.outcome, row.status) == ("Authentication.Refused", "failure", 401)
    assert row.credential_kind == "none:none"
    assert row.actor_id is None
    assert row.organization_name == ORG
    assert row.organization_id
    assert (row.method, row.path) == ("GET", f"/{ORG}/_apis/connectionData")
    assert row.client_address == "127.0.0.1"
    assert row.details["reason"] == "no credential"


@pytest.mark.parametrize(
    ("authorization", "kind"),
    [
        ("Bearer", "bearer:malformed"),
        ("Bearer not a token at all!", "bearer:malformed"),
        ("Basic !!!not-base64!!!", "basic:malformed"),
        ("Negotiate abc", "none:malformed"),
    ],
    ids=["empty-bearer", "garbage-bearer", "bad-basic", "unknown-scheme"],
)
def test_malformed_header_is_refused_and_recorded(
    entryway: Instance, audit_world: None, authorization: str, kind: str
) -> None:
    response, marker = call(entryway, f"/{ORG}/_apis/connectionData", authorization)
    assert response.status_code == 401
    row = only_entry(entryway, marker)
    assert (row.action, row.outcome, row.credential_kind) == ("Authentication.Refused", "failure", kind)


def test_expired_and_forged_tokens_are_refused_and_recorded(entryway: Instance, audit_world: None) -> None:
    now = int(entryway.clock.timestamp())
    claims: dict[str, Any] = {
        "aud": DEVOPS_RESOURCE,
        "iss": f"https://sts.windows.net/{CONTOSO_TENANT}/",
        "tid": CONTOSO_TENANT,
        "oid": object_id_of(entryway, READER_BOT_ID),
        "appid": READER_BOT_ID,
        "iat": now - 7200,
        "nbf": now - 7200,
        "exp": now - 3600,
        "ver": "1.0",
    }
    expired = sign_with_real_key(entryway, claims)
    forged = sign_with_real_key(entryway, {**claims, "exp": now + 3600})
    forged = forged[: forged.rindex(".") + 1] + "A" * 342  # a signature that is not the platform's
    for value, form in ((expired, bearer(expired)), (forged, basic("anyone", forged))):
        SECRETS.add(value)
        response, marker = call(entryway, f"/{ORG}/_apis/connectionData", form)
        assert response.status_code == 401
        row = only_entry(entryway, marker)
        assert (row.action, row.outcome) == ("Authentication.Refused", "failure")
        assert row.credential_kind == ("bearer:jwt" if value is expired else "basic:jwt")
        assert row.details["reason"]


def test_a_non_members_valid_token_is_refused_and_names_the_caller(
    entryway: Instance, audit_world: None
) -> None:
    outsider = token(entryway, OUTSIDER_ID, OUTSIDER_SECRET)
    response, marker = call(entryway, f"/{ORG}/_apis/connectionData", bearer(outsider))
    assert response.status_code == 401
    row = only_entry(entryway, marker)
    assert (row.action, row.outcome, row.credential_kind) == (
        "Authentication.Refused",
        "failure",
        "bearer:jwt",
    )
    claims = json.loads(_b64(outsider.split(".")[1]))
    assert row.actor_id == claims["oid"]  # verified, so known; the token itself is not kept


def test_an_unknown_organization_is_refused_and_recorded(entryway: Instance, audit_world: None) -> None:
    reader = token(entryway, READER_BOT_ID, READER_BOT_SECRET)
    response, marker = call(entryway, "/no-such-org-audit/_apis/connectionData", basic("x", reader))
    assert response.status_code == 404
    row = only_entry(entryway, marker)
    assert (row.action, row.outcome, row.status) == ("Authentication.Refused", "failure", 404)
    assert row.organization_id is None
    assert row.organization_name == "no-such-org-audit"
    assert row.credential_kind == "basic:jwt"


# --- accepted --------------------------------------------------------------------------------------------


def test_an_accepted_request_is_recorded_once_per_minute(entryway: Instance, audit_world: None) -> None:
    fresh = token(entryway, FRESH_BOT_ID, FRESH_BOT_SECRET)
    marker = f"audit-test/{uuid.uuid4()}"
    for _ in range(3):
        response, _ = call(entryway, f"/{ORG}/_apis/connectionData", basic("", fresh), marker=marker)
        assert response.status_code == 200
    rows = entries_of(entryway, marker, expected=2, timeout=1.0)
    assert len(rows) == 1  # the first of the minute only
    row = rows[0]
    assert (row.action, row.outcome, row.credential_kind) == (
        "Authentication.Accepted",
        "success",
        "basic:jwt",
    )
    assert row.actor_id == object_id_of(entryway, FRESH_BOT_ID)
    assert row.actor_name == "audit-fresh-bot"


# --- REST ------------------------------------------------------------------------------------------------


def test_the_rest_audit_log_for_an_organization_admin(entryway: Instance, audit_world: None) -> None:
    refused, marker = call(entryway, f"/{ORG}/_apis/connectionData", "Bearer nope!")
    assert refused.status_code == 401
    only_entry(entryway, marker)
    admin = bearer(token(entryway, ADMIN_BOT_ID, ADMIN_BOT_SECRET))
    response, _ = call(entryway, f"/{ORG}/_apis/audit/auditlog", admin, batchSize="3")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"decoratedAuditLogEntries", "continuationToken", "hasMore"}
    page = body["decoratedAuditLogEntries"]
    assert len(page) == 3
    assert body["hasMore"] is True
    assert body["continuationToken"]
    stamps = [entry["timestamp"] for entry in page]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    assert set(page[0]) >= {
        "id", "correlationId", "activityId", "actorCUID", "actorUserId", "actorUPN", "authenticationMechanism",
        "timestamp", "scopeType", "scopeDisplayName", "scopeId", "projectId", "projectName", "ipAddress",
        "userAgent", "actionId", "data", "details", "area", "category", "categoryDisplayName", "actorDisplayName",
    }  # fmt: skip
    # Walk every page; the refusal above is there, with its kind of credential and its address.
    seen: list[dict[str, Any]] = list(page)
    continuation = body["continuationToken"]
    while continuation:
        more, _ = call(
            entryway, f"/{ORG}/_apis/audit/auditlog", admin, batchSize="1000", continuationToken=continuation
        )
        assert more.status_code == 200, more.text
        seen += more.json()["decoratedAuditLogEntries"]
        continuation = more.json()["continuationToken"]
    assert len({entry["id"] for entry in seen}) == len(seen)
    mine = [entry for entry in seen if entry["userAgent"] == marker]
    assert len(mine) == 1
    assert mine[0]["actionId"] == "Authentication.Refused"
    assert mine[0]["authenticationMechanism"] == "bearer:malformed"
    assert mine[0]["ipAddress"] == "127.0.0.1"
    assert mine[0]["data"]["outcome"] == "failure"
    assert mine[0]["scopeDisplayName"] == f"{ORG} (Organization)"
    # A time window in the future is empty; a bad time or token is a 400 in the WrappedException shape.
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    empty, _ = call(entryway, f"/{ORG}/_apis/audit/auditlog", admin, startTime=later)
    assert empty.json() == {"decoratedAuditLogEntries": [], "continuationToken": None, "hasMore": False}
    for params in ({"startTime": "yesterday"}, {"continuationToken": "bm90LWEtdG9rZW4"}, {"batchSize": "0"}):
        bad, _ = call(entryway, f"/{ORG}/_apis/audit/auditlog", admin, **params)
        assert bad.status_code == 400, params
        assert bad.json()["typeKey"] == "ArgumentException", params


def test_the_rest_audit_log_refuses_others(entryway: Instance, audit_world: None) -> None:
    reader = bearer(token(entryway, READER_BOT_ID, READER_BOT_SECRET))
    response, _ = call(entryway, f"/{ORG}/_apis/audit/auditlog", reader)
    assert response.status_code == 403
    body = response.json()
    assert body["typeKey"] == "AccessCheckException"
    assert "View audit log" in body["message"]
    anonymous, _ = call(entryway, f"/{ORG}/_apis/audit/auditlog")
    assert anonymous.status_code == 401


# --- CLI -------------------------------------------------------------------------------------------------


def audit_cli(instance: Instance, *args: str) -> Any:
    return CliRunner().invoke(cli, ["audit", "list", *args, "--data-dir", str(instance.settings.data_dir)])


def test_the_cli_lists_and_filters(entryway: Instance, audit_world: None) -> None:
    reader = token(entryway, READER_BOT_ID, READER_BOT_SECRET)
    start = datetime.now(UTC) - timedelta(seconds=1)
    _, refused = call(entryway, f"/{ORG}/_apis/audit/auditlog")  # anonymous: refused
    # Accepted (perhaps not the first of this minute, so perhaps not written again).
    call(entryway, f"/{ORG}/_apis/connectionData", bearer(reader))
    only_entry(entryway, refused)

    result = audit_cli(entryway, "--org", ORG, "--outcome", "failure", "--since", start.isoformat(), "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert lines
    assert all(line["outcome"] == "failure" and line["organization"] == ORG for line in lines)
    assert any(line["details"].get("userAgent") == refused for line in lines)

    by_principal = audit_cli(entryway, "--principal", READER_BOT_ID, "--json", "--limit", "1000")
    assert by_principal.exit_code == 0, by_principal.output
    rows = [json.loads(line) for line in by_principal.output.splitlines()]
    assert rows
    assert {row["actorId"] for row in rows} == {object_id_of(entryway, READER_BOT_ID)}
    assert all(row["actorUpn"] == READER_BOT_ID for row in rows)

    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert audit_cli(entryway, "--since", future).output == ""
    text = audit_cli(entryway, "--org", ORG, "--limit", "5")
    assert text.exit_code == 0
    assert len(text.output.splitlines()) == 5

    for bad in (
        ["--outcome", "maybe"],
        ["--since", "last tuesday"],
        ["--limit", "0"],
        ["--principal", "nobody@x"],
    ):
        result = audit_cli(entryway, *bad)
        assert result.exit_code == 2, (bad, result.output)
        assert "error:" in result.output
        assert "Traceback" not in result.output


# --- no token in any log ---------------------------------------------------------------------------------


@pytest.fixture
def entryway_debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="entryway")
    return caplog


def test_no_token_appears_in_any_log(
    entryway: Instance, audit_world: None, entryway_debug_log: pytest.LogCaptureFixture
) -> None:
    """Every credential form once more with the log captured at DEBUG, then every token and secret this
    module used is looked for in the audit table, the database file and its WAL, and the log output."""
    outsider = token(entryway, OUTSIDER_ID, OUTSIDER_SECRET)
    reader = token(entryway, READER_BOT_ID, READER_BOT_SECRET)
    tampered = reader[:-4] + ("AAAA" if not reader.endswith("AAAA") else "BBBB")
    pat_like = "q" * 52
    SECRETS.update({tampered, pat_like})
    markers = []
    for path, authorization in [
        (f"/{ORG}/_apis/connectionData", bearer(reader)),
        (f"/{ORG}/_apis/connectionData", basic("git", reader)),
        (f"/{ORG}/_apis/connectionData", bearer(outsider)),
        (f"/{ORG}/_apis/connectionData", bearer(tampered)),
        (f"/{ORG}/_apis/connectionData", basic("", pat_like)),
        (f"/{ORG}/_apis/connectionData", bearer(pat_like)),
        ("/no-such-org-audit/_apis/connectionData", bearer(reader)),
        (f"/{ORG}/_apis/audit/auditlog", bearer(reader)),
    ]:
        _, marker = call(entryway, path, authorization)
        markers.append(marker)
    for marker in markers[2:]:  # the refusals are always written; wait for them
        entries_of(entryway, marker)

    wanted = {value for value in SECRETS if value}
    # Tokens: the whole token and its signature, the part that makes it usable.
    needles = wanted | {value.rsplit(".", 1)[1] for value in wanted if value.count(".") == 2}
    needles = {needle for needle in needles if len(needle) >= 16}

    with entryway.runtime.db.read() as session:
        table = [
            json.dumps(
                [
                    row.actor_id,
                    row.actor_name,
                    row.credential_kind,
                    row.path,
                    row.details,
                    row.organization_name,
                ]
            )
            for row in session.scalars(select(AuditEventRow))
        ]
    assert table
    data_dir = entryway.settings.data_dir
    files = {path.name: path.read_bytes() for path in data_dir.glob("entryway.db*")}
    assert "entryway.db" in files
    logged = "\n".join(record.getMessage() for record in entryway_debug_log.records) + entryway_debug_log.text
    assert entryway_debug_log.records  # the log was captured (refusals are logged at INFO)

    for needle in needles:
        assert not any(needle in row for row in table), "a token in the audit table"
        for name, content in files.items():
            assert needle.encode() not in content, f"a token in {name}"
        assert needle not in logged, "a token in the log output"


def _b64(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
