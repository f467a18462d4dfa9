"""Leaked-PAT reports (issue 6, Leaks): the reporters allowed to send them, and what a report does.

A report is the JSON array a secret-scanning partner posts (GitHub's partner program shape:
`[{"token", "type", "url", "source"}]`). Each token is checked like a presented PAT — its shape and checksum
first (no lookup for a value that is not an Entryway PAT), then its keyed digest. A PAT found and active is
revoked when its owner's tenant policy says so (`auto_revoke_leaked`, on by default), and otherwise left
working; either way the event is recorded (a leak report row, never the token), audited (Token.LeakRevoked or
Token.LeakDetected, in the PAT's organization, or in every organization of the owner's tenant for a global
PAT) and the owner is told (the notification outbox). A PAT already revoked or expired is recorded and audited
but its owner is not told again: a token GitHub finds in ten places is revoked once and notified once.

`LeakReportService.process` never commits: the route runs one report in one unit of work, so a report is
recorded whole or not at all.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from entryway.devops.audit.recorder import Actor, record_change_by
from entryway.devops.leaks.repository import LeakedPat, LeakRepository
from entryway.devops.leaks.signature import (
    ReporterKeyError,
    canonical_pem,
    key_identifier_of,
    verify_signature,
)
from entryway.devops.notifications.service import NotificationKind, NotificationService
from entryway.devops.orgs.service import Organization
from entryway.devops.pats import format as pat_format
from entryway.devops.pats.policy import PatPolicyService
from entryway.kit.clock import Clock, as_utc
from entryway.kit.ids import new_guid
from entryway.kit.secrets import SecretDigester
from entryway.store.models import LeakReporterRow, LeakReportRow

# A report's limits: GitHub batches matches, but a report of more tokens than this is not one we take.
MAX_TOKENS_PER_REPORT = 1000
MAX_TOKEN_LENGTH = 1024
# Column widths (devops_leak_reports, devops_leak_reporters).
TYPE_WIDTH = 64
URL_WIDTH = 2048
SOURCE_WIDTH = 64
NAME_WIDTH = 128
KEY_ID_WIDTH = 128
MAX_PEM_LENGTH = 4096

REVOKED_ACTION = "Token.LeakRevoked"
DETECTED_ACTION = "Token.LeakDetected"
FEEDBACK_TRUE = "true_positive"
FEEDBACK_FALSE = "false_positive"


class Outcome(enum.StrEnum):
    REVOKED = "revoked"  # found active; the tenant policy revoked it
    NOTIFIED = "notified"  # found active; the tenant policy keeps it working; the owner is told
    ALREADY_INACTIVE = "alreadyInactive"  # found, already revoked or expired
    NOT_FOUND = "notFound"  # not an Entryway PAT, or none with that digest


class MalformedReport(ValueError):
    """The body is not a report; the message (for the reporter) says where."""


class LeakReporterError(ValueError):
    """A reporter registration refused; the message is for the administrator."""


@dataclass(frozen=True)
class ReportedToken:
    token: str
    type: str
    url: str
    source: str


@dataclass(frozen=True)
class Reporter:
    key_identifier: str
    name: str
    public_key_pem: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: LeakReporterRow) -> Reporter:
        return cls(row.key_identifier, row.name, row.public_key_pem, as_utc(row.created_at))

    def verifies(self, body: bytes, signature_b64: str) -> bool:
        return verify_signature(self.public_key_pem, body, signature_b64)


@dataclass(frozen=True)
class TokenOutcome:
    """What was done about one reported token, and the feedback GitHub's partner API takes for it."""

    reported: ReportedToken
    outcome: Outcome
    authorization_id: str | None

    def feedback(self) -> dict[str, str]:
        """GitHub's feedback item. Entryway answers the token's SHA-256 (`token_hash`), never `token_raw`: a
        report's answer must not carry a secret back, not even to the party that sent it."""
        return {
            "token_hash": hashlib.sha256(self.reported.token.encode("utf-8")).hexdigest(),
            "token_type": self.reported.type,
            "label": FEEDBACK_FALSE if self.outcome is Outcome.NOT_FOUND else FEEDBACK_TRUE,
        }


@dataclass(frozen=True)
class LeakReport:
    """One reported token as recorded, for `entryway leaks list`."""

    id: str
    received_at: datetime
    reporter: str
    token_type: str
    url: str
    source: str
    authorization_id: str | None
    outcome: str
    owner: str = ""
    display_name: str = ""

    def as_json(self) -> dict[str, str | None]:
        return {
            "id": self.id,
            "receivedAt": self.received_at.isoformat(),
            "reporter": self.reporter,
            "tokenType": self.token_type,
            "url": self.url,
            "source": self.source,
            "authorizationId": self.authorization_id,
            "outcome": self.outcome,
            "owner": self.owner,
            "displayName": self.display_name,
        }


def _text(item: dict[str, Any], key: str, index: int, width: int, *, required: bool) -> str:
    value = item.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise MalformedReport(f"[{index}].{key}: expected a string")
    if len(value) > width:
        raise MalformedReport(f"[{index}].{key}: longer than {width} characters")
    return value


def parse_report(data: Any) -> list[ReportedToken]:
    """The report's tokens, or `MalformedReport`: a non-empty JSON array of objects, each with a string
    `token` and `type`, and optionally a string `url` and `source`. Other keys are ignored."""
    if not isinstance(data, list) or not data:
        raise MalformedReport("expected a non-empty JSON array")
    if len(data) > MAX_TOKENS_PER_REPORT:
        raise MalformedReport(f"more than {MAX_TOKENS_PER_REPORT} tokens in one report")
    tokens = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise MalformedReport(f"[{index}]: expected an object")
        token = _text(item, "token", index, MAX_TOKEN_LENGTH, required=True)
        if not token:
            raise MalformedReport(f"[{index}].token: empty")
        tokens.append(
            ReportedToken(
                token,
                _text(item, "type", index, TYPE_WIDTH, required=True),
                _text(item, "url", index, URL_WIDTH, required=False),
                _text(item, "source", index, SOURCE_WIDTH, required=False),
            )
        )
    return tokens


class LeakReporterService:
    """The reporters allowed to post leak reports, each known by its key identifier. Never commits."""

    def __init__(self, session: Session, clock: Clock) -> None:
        self._clock = clock
        self._repo = LeakRepository(session)

    def add(self, name: str, public_key_pem: str, key_identifier: str | None = None) -> tuple[Reporter, bool]:
        """Register a reporter's key; (the reporter, whether it was created). Registering the same name and key
        under the same identifier again changes nothing; the identifier with another key or name is refused."""
        name = name.strip()
        if not name or len(name) > NAME_WIDTH:
            raise LeakReporterError(f"a reporter's name is 1 to {NAME_WIDTH} characters")
        if len(public_key_pem) > MAX_PEM_LENGTH:
            raise LeakReporterError("the public key is too long for an EC P-256 key")
        try:
            pem = canonical_pem(public_key_pem)
            key_id = (key_identifier or key_identifier_of(pem)).strip()
        except ReporterKeyError as exc:
            raise LeakReporterError(f"the public key is {exc}") from exc
        if not key_id or len(key_id) > KEY_ID_WIDTH or not key_id.isprintable() or " " in key_id:
            raise LeakReporterError(
                f"a key identifier is 1 to {KEY_ID_WIDTH} printable characters, no spaces"
            )
        existing = self._repo.find_reporter(key_id)
        if existing is not None:
            if existing.public_key_pem != pem or existing.name != name:
                raise LeakReporterError(
                    f"key identifier {key_id} is registered for '{existing.name}' with another key; "
                    "remove it first"
                )
            return Reporter.from_row(existing), False
        row = LeakReporterRow(
            key_identifier=key_id, name=name, public_key_pem=pem, created_at=self._clock.now()
        )
        self._repo.add_reporter(row)
        return Reporter.from_row(row), True

    def find(self, key_identifier: str) -> Reporter | None:
        if not key_identifier or len(key_identifier) > KEY_ID_WIDTH:
            return None
        row = self._repo.find_reporter(key_identifier)
        return None if row is None else Reporter.from_row(row)

    def list_reporters(self) -> list[Reporter]:
        return [Reporter.from_row(r) for r in self._repo.list_reporters()]

    def remove(self, key_identifier: str) -> Reporter:
        row = self._repo.find_reporter(key_identifier)
        if row is None:
            raise LeakReporterError(f"no reporter with key identifier {key_identifier}")
        reporter = Reporter.from_row(row)
        self._repo.delete_reporter(row)
        return reporter


class LeakReportService:
    """What a report does. Never commits."""

    def __init__(self, session: Session, clock: Clock, digester: SecretDigester | None) -> None:
        self._session = session
        self._clock = clock
        self._digester = digester
        self._repo = LeakRepository(session)
        self._policies = PatPolicyService(session, clock)
        self._notifications = NotificationService(session, clock)

    def process(self, reporter: Reporter, tokens: list[ReportedToken], actor: Actor) -> list[TokenOutcome]:
        """Record, and act on, each reported token in order (a token reported twice in one report is revoked
        by the first and `alreadyInactive` for the second)."""
        now = self._clock.now()
        return [self._process_one(reporter, reported, actor, now) for reported in tokens]

    def _process_one(
        self, reporter: Reporter, reported: ReportedToken, actor: Actor, now: datetime
    ) -> TokenOutcome:
        pat = self._find(reported.token)
        if pat is None:
            outcome = Outcome.NOT_FOUND
        elif pat.revoked_at is not None or as_utc(pat.valid_to) <= now:
            outcome = Outcome.ALREADY_INACTIVE
        elif not self._policies.tenant_policy(pat.owner_tenant_id).auto_revoke_leaked:
            outcome = Outcome.NOTIFIED
        elif self._repo.revoke_if_active(pat.authorization_id, now):
            outcome = Outcome.REVOKED
        else:  # revoked by a concurrent report since we read it
            outcome = Outcome.ALREADY_INACTIVE
        self._repo.add_report(
            LeakReportRow(
                id=new_guid(),
                received_at=now,
                reporter=reporter.name[:NAME_WIDTH],
                token_type=reported.type[:TYPE_WIDTH],
                url=reported.url[:URL_WIDTH],
                source=reported.source[:SOURCE_WIDTH],
                authorization_id=None if pat is None else pat.authorization_id,
                outcome=outcome.value,
            )
        )
        if pat is not None:
            self._audit(pat, reported, reporter, outcome, actor)
            if outcome in (Outcome.REVOKED, Outcome.NOTIFIED):
                self._notify(pat, reported, outcome)
        return TokenOutcome(reported, outcome, None if pat is None else pat.authorization_id)

    def _find(self, token: str) -> LeakedPat | None:
        # The checksum before any lookup, as for a presented PAT: a value that is not ours costs no query.
        if self._digester is None or not pat_format.is_well_formed(token):
            return None
        return self._repo.find_pat_by_digest(self._digester.digest(token))

    def _organizations(self, pat: LeakedPat) -> list[Organization]:
        """Where the event is audited: the PAT's organization; for a global PAT, every organization of the
        owner's tenant (it worked in each of them)."""
        if pat.organization_id is not None:
            row = self._repo.find_organization(pat.organization_id)
            return [] if row is None else [Organization.from_row(row)]
        return [Organization.from_row(r) for r in self._repo.organizations_of_tenant(pat.owner_tenant_id)]

    def _audit(
        self, pat: LeakedPat, reported: ReportedToken, reporter: Reporter, outcome: Outcome, actor: Actor
    ) -> None:
        details = {
            "authorizationId": pat.authorization_id,
            "displayName": pat.display_name,
            "owner": pat.owner_name,
            "ownerId": pat.owner_object_id,
            "allOrgs": pat.organization_id is None,
            "reporter": reporter.name,
            "tokenType": reported.type,
            "url": reported.url,
            "source": reported.source,
            "outcome": outcome.value,
        }
        action = REVOKED_ACTION if outcome is Outcome.REVOKED else DETECTED_ACTION
        for org in self._organizations(pat):
            record_change_by(
                self._session,
                clock=self._clock,
                organization=org,
                actor=actor,
                action=action,
                details=details,
            )

    def _notify(self, pat: LeakedPat, reported: ReportedToken, outcome: Outcome) -> None:
        where = reported.url or "a public location"
        found_in = f" ({reported.source})" if reported.source else ""
        if outcome is Outcome.REVOKED:
            kind = NotificationKind.PAT_LEAK_REVOKED
            subject = f"Your personal access token '{pat.display_name}' was leaked and has been revoked"
            done = (
                "Your organization's policy revokes leaked personal access tokens automatically, so it no longer "
                "works. Anything that used it (scripts, pipelines, git remotes) will fail until it gets a new "
                "credential."
            )
        else:
            kind = NotificationKind.PAT_LEAK_DETECTED
            subject = f"Your personal access token '{pat.display_name}' was leaked"
            done = (
                "Your tenant's policy does not revoke leaked tokens automatically, so it STILL WORKS: anyone who "
                "found it can use it. Revoke it now (the PAT page, or DELETE _apis/tokens/pats)."
            )
        body = "\n".join(
            [
                f"A secret scanner found your personal access token '{pat.display_name}' "
                f"(scopes: {pat.scope}; authorization id {pat.authorization_id}) in public:",
                f"  {where}{found_in}",
                "",
                done,
                "",
                "What to do: remove the token from where it was published (and from its history), then move off "
                "personal access tokens: use Microsoft Entra tokens instead — for git, a credential helper "
                "that answers Entra tokens (Git Credential Manager with credential.azreposCredentialType=oauth); "
                "for pipelines, a service connection with workload identity federation; for scripts, a one-off "
                "token from the CLI (`az account get-access-token`). If you still need a PAT, create a new one "
                "with the narrowest scopes and the shortest lifetime that work.",
            ]
        )
        self._notifications.notify(
            recipient_object_id=pat.owner_object_id,
            tenant_id=pat.owner_tenant_id,
            recipient_name=pat.owner_name,
            organization_id=pat.organization_id,
            kind=kind,
            subject=subject,
            body=body,
        )

    def list_reports(self, *, limit: int = 100) -> list[LeakReport]:
        rows = self._repo.list_reports(limit=max(limit, 1))
        names = self._repo.find_pat_names([r.authorization_id for r in rows if r.authorization_id])
        return [
            LeakReport(
                r.id,
                as_utc(r.received_at),
                r.reporter,
                r.token_type,
                r.url,
                r.source,
                r.authorization_id,
                r.outcome,
                *names.get(r.authorization_id or "", ("", "")),
            )
            for r in rows
        ]
