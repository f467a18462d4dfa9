"""On-behalf-of (RFC 7523 JWT bearer grant with `requested_token_use=on_behalf_of`): a middle-tier API that
received a user's access token exchanges it for a token to another resource, for the same user.
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-on-behalf-of-flow"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

import jwt

from entryway.identity.protocol.claims import v1_issuer, v2_issuer
from entryway.identity.protocol.errors import (
    CLIENT_CREDENTIAL_MISSING,
    INVALID_GRANT,
    OBO_ASSERTION_EXPIRED,
    OBO_AUDIENCE_MISMATCH,
    OBO_NOT_A_USER,
    OBO_SIGNATURE_INVALID,
    Aadsts,
    OAuthError,
    format_timestamp,
)
from entryway.identity.protocol.grants.user import user_outcome
from entryway.identity.protocol.model import DirectoryPort
from entryway.identity.protocol.pipeline import GrantContext, GrantOutcome
from entryway.identity.protocol.requests import TokenRequest
from entryway.identity.protocol.sign_ins import SignIn, SignInPort

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class OwnTokenVerifier(Protocol):
    def verified_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a JWT this installation signed, or None."""
        ...


def _unverified_tenant(assertion: str) -> str | None:
    try:
        tid = jwt.decode(assertion.strip(), options={"verify_signature": False}).get("tid")
    except jwt.PyJWTError:
        return None
    return tid if isinstance(tid, str) else None


class OnBehalfOfGrant:
    grant_type: ClassVar[str] = GRANT_TYPE
    missing_credential: ClassVar[Aadsts] = CLIENT_CREDENTIAL_MISSING
    # Only the confidential middle tier may exchange a token; it holds no user's password.
    allows_public_clients: ClassVar[bool] = False
    issues_user_tokens: ClassVar[bool] = True

    def __init__(self, *, origin: str, verifier: OwnTokenVerifier) -> None:
        self._origin = origin
        self._verifier = verifier

    def tenant_hint(
        self, request: TokenRequest, sign_ins: SignInPort | None, directory: DirectoryPort
    ) -> str | None:
        """`common`/`organizations`: the tenant of the user's token (checked again once it is verified)."""
        return _unverified_tenant(request.require("assertion"))

    def authorize(self, ctx: GrantContext) -> GrantOutcome:
        request = ctx.request
        if request.require("requested_token_use") != "on_behalf_of":
            raise OAuthError(INVALID_GRANT, detail="requested_token_use is not on_behalf_of")
        scope = request.require("scope")
        claims = self._verifier.verified_claims(request.require("assertion").strip())
        if claims is None:
            raise OAuthError(OBO_SIGNATURE_INVALID, detail="not signed by a published key")
        self._check(ctx, claims)
        sign_in = SignIn(
            tenant_id=ctx.tenant.id,
            user_id=str(claims["oid"]),
            client_id=ctx.client.client.app_id,
            scope=scope,
            auth_time=datetime.fromtimestamp(int(ctx.now), UTC),
            amr=tuple(str(m) for m in claims.get("amr") or ()),
        )
        return user_outcome(ctx, sign_in, scope)

    def _check(self, ctx: GrantContext, claims: dict[str, Any]) -> None:
        """The user's token: ours, of this tenant, unexpired, about a user, and issued to the middle tier."""
        tenant_id = ctx.tenant.id
        issuers = {v1_issuer(self._origin, tenant_id), v2_issuer(self._origin, tenant_id)}
        if claims.get("iss") not in issuers or claims.get("tid") != tenant_id:
            raise OAuthError(
                OBO_SIGNATURE_INVALID, detail=f"issuer {claims.get('iss')!r} is not this tenant's"
            )
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= ctx.now:
            raise OAuthError(
                OBO_ASSERTION_EXPIRED,
                detail="user assertion expired",
                now=format_timestamp(datetime.fromtimestamp(int(ctx.now), UTC)),
                exp=format_timestamp(datetime.fromtimestamp(exp if isinstance(exp, int) else 0, UTC)),
            )
        if claims.get("idtyp") == "app" or not claims.get("scp") or not isinstance(claims.get("oid"), str):
            raise OAuthError(OBO_NOT_A_USER, detail="app-only assertion")
        client = ctx.client.client
        audience = str(claims.get("aud", ""))
        resource = ctx.directory.find_resource(tenant_id, audience)
        if resource is None or resource.app_id != client.app_id:
            raise OAuthError(
                OBO_AUDIENCE_MISMATCH,
                detail="assertion for another audience",
                audience=audience,
                expected=client.app_id,
            )
