"""Request authentication as one layer: credential -> verified identity -> organization member.

Credential kinds (Entra tokens, PATs, pipeline job tokens) plug in by kind; a credential of a kind nobody
verifies, or one that fails verification, leaves the request anonymous.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from entryway.devops.auth.credentials import CredentialKind, PresentedCredential, parse_authorization
from entryway.devops.auth.jobtoken import JobTokenRefusal, JobTokenVerifier
from entryway.devops.auth.principal import Anonymous, Principal
from entryway.devops.auth.verifier import EntraTokenVerifier, TokenRejected
from entryway.devops.cae.checks import ContinuousAccess
from entryway.devops.orgs.service import Member, Organization
from entryway.devops.pats.verify import PatRefusal, PatUse, PatVerifier

log = logging.getLogger("entryway.devops.auth")

MemberLookup = Callable[[Organization, str], Awaitable[Member | None]]


class RequestAuthenticator:
    def __init__(
        self,
        verifier: EntraTokenVerifier,
        find_member: MemberLookup,
        pats: PatVerifier | None = None,
        jobs: JobTokenVerifier | None = None,
        cae: ContinuousAccess | None = None,
    ) -> None:
        self._verifier = verifier
        # None: no continuous access evaluation (the identity platform's critical events are not read).
        self._cae = cae
        self._find_member = find_member
        # None: no PAT digest key configured, PATs are not accepted.
        self.pats = pats
        # None: no digest key configured, job tokens are not accepted.
        self.jobs = jobs

    async def authenticate(
        self, authorization: str | None, org: Organization, use: PatUse | None = None
    ) -> Principal | Anonymous:
        """`use` says where the request came from: PATs record it, and continuous access evaluation checks
        the address against the tenant's location policies."""
        credential = parse_authorization(authorization)
        if credential.kind is CredentialKind.JWT:
            return await self._entra_token(credential, org, use.address if use is not None else "")
        if credential.kind is CredentialKind.PAT and self.pats is not None:
            return await self._pat(credential, org, use)
        if credential.kind is CredentialKind.JOB_TOKEN and self.jobs is not None:
            return await self._job_token(credential, org)
        if credential.kind is CredentialKind.NONE:
            return Anonymous(credential, "no credential")
        return Anonymous(credential, f"{credential.label} is not accepted")

    async def _entra_token(
        self, credential: PresentedCredential, org: Organization, address: str
    ) -> Principal | Anonymous:
        try:
            token = await self._verifier.verify(credential.value, org.tenant_id)
        except TokenRejected as exc:
            log.info("token refused for org %s: %s", org.name, exc)
            return Anonymous(credential, str(exc))
        if self._cae is not None:
            refused = await self._cae.check_entra_token(
                org,
                token.claims,
                address,
                is_app_only=token.is_app_only,
                groups=token.groups,
                roles=token.roles,
            )
            if refused is not None:
                log.info("token refused for org %s: %s", org.name, refused.reason)
                return Anonymous(
                    credential,
                    refused.reason,
                    token.object_id,
                    claims_challenge=refused.claims,
                    conditional_access_failed=refused.conditional_access_failed,
                )
        member = await self._find_member(org, token.object_id)
        if member is None:
            # Azure DevOps treats a valid token of a non-member as anonymous (TF400813).
            return Anonymous(credential, f"{token.object_id} is not a member of {org.name}", token.object_id)
        return Principal(
            member, token.tenant_id, credential, token.is_app_only, groups=token.groups, roles=token.roles
        )

    async def _pat(
        self, credential: PresentedCredential, org: Organization, use: PatUse | None
    ) -> Principal | Anonymous:
        assert self.pats is not None
        verified = await self.pats.verify(credential.value, org, use)
        if isinstance(verified, PatRefusal):
            # Azure DevOps answers a bad, expired or revoked PAT as it answers no credential: 401 TF400813.
            log.info("PAT refused for org %s: %s", org.name, verified.reason)
            return Anonymous(
                credential,
                verified.reason,
                verified.owner_object_id,
                conditional_access_failed=verified.conditional_access_failed,
            )
        return Principal(
            verified.member,
            org.tenant_id,
            credential,
            is_app_only=False,  # only users hold PATs
            pat_scopes=verified.scopes,
            pat_id=verified.authorization_id,
            groups=verified.owner_groups,
        )

    async def _job_token(self, credential: PresentedCredential, org: Organization) -> Principal | Anonymous:
        assert self.jobs is not None
        verified = await self.jobs.verify(credential.value, org)
        if isinstance(verified, JobTokenRefusal):
            # Like a bad PAT: answered as no credential (401 TF400813), the reason goes to the log only.
            log.info("job token refused for org %s: %s", org.name, verified.reason)
            return Anonymous(credential, verified.reason)
        return Principal(
            verified.member,
            org.tenant_id,
            credential,
            is_app_only=True,  # a service identity, no person behind it
            job=verified.job,
        )
