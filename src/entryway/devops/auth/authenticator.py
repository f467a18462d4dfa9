"""Request authentication as one layer: credential -> verified identity -> organization member.

Later credential kinds (PATs, pipeline job tokens) plug in by kind; a credential of a kind nobody verifies
yet, or one that fails verification, leaves the request anonymous.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from entryway.devops.auth.credentials import CredentialKind, PresentedCredential, parse_authorization
from entryway.devops.auth.principal import Anonymous, Principal
from entryway.devops.auth.verifier import EntraTokenVerifier, TokenRejected
from entryway.devops.orgs.service import Member, Organization

log = logging.getLogger("entryway.devops.auth")

MemberLookup = Callable[[Organization, str], Awaitable[Member | None]]


class RequestAuthenticator:
    def __init__(self, verifier: EntraTokenVerifier, find_member: MemberLookup) -> None:
        self._verifier = verifier
        self._find_member = find_member

    async def authenticate(self, authorization: str | None, org: Organization) -> Principal | Anonymous:
        credential = parse_authorization(authorization)
        if credential.kind is CredentialKind.JWT:
            return await self._entra_token(credential, org)
        if credential.kind is CredentialKind.NONE:
            return Anonymous(credential, "no credential")
        return Anonymous(credential, f"{credential.label} is not accepted")

    async def _entra_token(self, credential: PresentedCredential, org: Organization) -> Principal | Anonymous:
        try:
            token = await self._verifier.verify(credential.value, org.tenant_id)
        except TokenRejected as exc:
            log.info("token refused for org %s: %s", org.name, exc)
            return Anonymous(credential, str(exc))
        member = await self._find_member(org, token.object_id)
        if member is None:
            # Azure DevOps treats a valid token of a non-member as anonymous (TF400813).
            return Anonymous(credential, f"{token.object_id} is not a member of {org.name}", token.object_id)
        return Principal(member, token.tenant_id, credential, token.is_app_only)
