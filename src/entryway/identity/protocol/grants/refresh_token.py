"""RFC 6749 section 6: a refresh token buys a new access token and is rotated; presenting a rotated one
revokes its whole family (OAuth 2.0 Security BCP, RFC 9700 section 4.14.2)."""

from __future__ import annotations

from typing import ClassVar

from entryway.identity.protocol.errors import CLIENT_CREDENTIAL_MISSING, Aadsts
from entryway.identity.protocol.grants.user import require_sign_ins, user_outcome
from entryway.identity.protocol.model import DirectoryPort
from entryway.identity.protocol.pipeline import GrantContext, GrantOutcome
from entryway.identity.protocol.requests import TokenRequest
from entryway.identity.protocol.sign_ins import SignInPort


class RefreshTokenGrant:
    grant_type: ClassVar[str] = "refresh_token"
    missing_credential: ClassVar[Aadsts] = CLIENT_CREDENTIAL_MISSING
    allows_public_clients: ClassVar[bool] = True
    issues_user_tokens: ClassVar[bool] = True

    def tenant_hint(
        self, request: TokenRequest, sign_ins: SignInPort | None, directory: DirectoryPort
    ) -> str | None:
        token = request.require("refresh_token")
        return None if sign_ins is None else sign_ins.tenant_of_refresh_token(token)

    def authorize(self, ctx: GrantContext) -> GrantOutcome:
        sign_in = require_sign_ins(ctx).redeem_refresh_token(
            ctx.request.require("refresh_token"), client_id=ctx.client.client.app_id, tenant=ctx.tenant
        )
        return user_outcome(ctx, sign_in, ctx.request.get("scope") or sign_in.scope)
