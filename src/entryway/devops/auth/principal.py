"""Who a request is: an organization member reached through a verified credential, or anonymous."""

from __future__ import annotations

from dataclasses import dataclass

from entryway.devops.auth.credentials import PresentedCredential
from entryway.devops.orgs.service import Member
from entryway.devops.pats import scopes as pat_scopes
from entryway.devops.pipelines.jobtokens import JobIdentity

ANONYMOUS_ID = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"


@dataclass(frozen=True)
class Principal:
    member: Member
    tenant_id: str
    credential: PresentedCredential
    is_app_only: bool
    # A PAT's scopes; None: an Entra token (user_impersonation, full access as far as scopes go).
    pat_scopes: frozenset[str] | None = None
    pat_id: str | None = None  # the PAT's authorization id
    # Group object ids: the Entra token's `groups` claim; for a PAT, the owner's groups when it was made
    # (devops_pats.owner_groups). Empty when the token has none, or only the overage marker.
    groups: frozenset[str] = frozenset()
    # Directory role template ids: the Entra token's `wids` claim (none for a PAT).
    roles: frozenset[str] = frozenset()
    # A pipeline job token: `member` is the project's build service identity, and only the routes declared
    # with `org_route(job_token=True)` accept it (devops/auth/jobtoken.py).
    job: JobIdentity | None = None

    def allows(self, needed: str) -> bool:
        """True when the credential's scopes cover `needed` (always, for an Entra token)."""
        if self.pat_scopes is None:
            return True
        return any(pat_scopes.includes(granted, needed) for granted in self.pat_scopes)


@dataclass(frozen=True)
class Anonymous:
    """No credential, or one we refused. `reason` is for the log; callers only learn 'anonymous'."""

    credential: PresentedCredential
    reason: str
    # Who a verified credential named, when it is not a member (the audit log records it).
    object_id: str | None = None
    # How the 401 says it when continuous access evaluation refused the credential (devops/cae): the claims of
    # an `insufficient_claims` challenge, or VS403463. Neither: the plain TF400813 401.
    claims_challenge: str | None = None
    conditional_access_failed: bool = False
