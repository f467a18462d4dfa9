"""RFC 6749 section 4.1.3 with PKCE (RFC 7636): redeem the code the sign-in pages issued.
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow"""

from __future__ import annotations

from typing import ClassVar

from entryway.identity.protocol.errors import CLIENT_CREDENTIAL_MISSING, Aadsts
from entryway.identity.protocol.grants.user import require_sign_ins, user_outcome
from entryway.identity.protocol.model import DirectoryPort
from entryway.identity.protocol.pipeline import GrantContext, GrantOutcome
from entryway.identity.protocol.requests import TokenRequest
from entryway.identity.protocol.sign_ins import SignInPort


class AuthorizationCodeGrant:
    grant_type: ClassVar[str] = "authorization_code"
    missing_credential: ClassVar[Aadsts] = CLIENT_CREDENTIAL_MISSING
    allows_public_clients: ClassVar[bool] = True
    issues_user_tokens: ClassVar[bool] = True

    def tenant_hint(
        self, request: TokenRequest, sign_ins: SignInPort | None, directory: DirectoryPort
    ) -> str | None:
        code = request.require("code")
        return None if sign_ins is None else sign_ins.tenant_of_code(code)

    def authorize(self, ctx: GrantContext) -> GrantOutcome:
        request = ctx.request
        sign_in = require_sign_ins(ctx).redeem_authorization_code(
            request.require("code"),
            client_id=ctx.client.client.app_id,
            redirect_uri=request.get("redirect_uri"),
            code_verifier=request.get("code_verifier"),
        )
        return user_outcome(ctx, sign_in, request.get("scope") or sign_in.scope)
