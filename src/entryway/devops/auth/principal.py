"""Who a request is: an organization member reached through a verified credential, or anonymous."""

from __future__ import annotations

from dataclasses import dataclass

from entryway.devops.auth.credentials import PresentedCredential
from entryway.devops.orgs.service import Member

ANONYMOUS_ID = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"


@dataclass(frozen=True)
class Principal:
    member: Member
    tenant_id: str
    credential: PresentedCredential
    is_app_only: bool


@dataclass(frozen=True)
class Anonymous:
    """No credential, or one we refused. `reason` is for the log; callers only learn 'anonymous'."""

    credential: PresentedCredential
    reason: str
    # Who a verified credential named, when it is not a member (the audit log records it).
    object_id: str | None = None
