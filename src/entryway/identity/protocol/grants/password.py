"""RFC 6749 section 4.3, resource owner password credentials, as Entra allows it: only for apps that allow
public client flows (or that authenticate), never past MFA, under the same smart lockout as the pages.
https://learn.microsoft.com/entra/identity-platform/v2-oauth-ropc"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from entryway.identity.protocol.errors import (
    ACCOUNT_LOCKED,
    CLIENT_CREDENTIAL_MISSING,
    INTERACTION_REQUIRED_MFA,
    INVALID_CREDENTIALS,
    USER_DISABLED,
    USER_NOT_FOUND,
    Aadsts,
    OAuthError,
)
from entryway.identity.protocol.grants.user import require_sign_ins, user_outcome
from entryway.identity.protocol.model import DirectoryPort
from entryway.identity.protocol.pipeline import GrantContext, GrantOutcome
from entryway.identity.protocol.requests import TokenRequest
from entryway.identity.protocol.sign_ins import PasswordCheck, SignIn, SignInPort

_REFUSALS = {
    PasswordCheck.WRONG: INVALID_CREDENTIALS,
    PasswordCheck.LOCKED: ACCOUNT_LOCKED,
    PasswordCheck.DISABLED: USER_DISABLED,
}


def _scope(request: TokenRequest) -> str:
    """v2 asks with `scope`; v1 (ADAL) names a `resource`, for which Entra also returns an ID token."""
    if request.endpoint_version == 1 and request.get("scope") is None:
        return f"{request.require('resource')}/.default openid"
    return request.require("scope")


class PasswordGrant:
    grant_type: ClassVar[str] = "password"
    missing_credential: ClassVar[Aadsts] = CLIENT_CREDENTIAL_MISSING
    allows_public_clients: ClassVar[bool] = True
    issues_user_tokens: ClassVar[bool] = True

    def tenant_hint(
        self, request: TokenRequest, sign_ins: SignInPort | None, directory: DirectoryPort
    ) -> str | None:
        """`common`/`organizations`: the user's home tenant, found from the user name."""
        user = directory.find_user_by_upn(request.require("username"))
        return None if user is None else user.tenant_id

    def authorize(self, ctx: GrantContext) -> GrantOutcome:
        request = ctx.request
        username = request.require("username")
        password = request.require("password")
        scope = _scope(request)
        user = ctx.directory.find_user_by_upn(username)
        if user is None or user.tenant_id != ctx.tenant.id:
            ctx.trail.user_principal_name = username  # Entra logs the name that was tried
            raise OAuthError(USER_NOT_FOUND, user=username, directory=ctx.tenant.display_name)
        ctx.trail.user_id, ctx.trail.user_principal_name = user.object_id, user.user_principal_name
        check = require_sign_ins(ctx).check_password(user, password, request.client_address)
        refusal = _REFUSALS.get(check)
        if refusal is not None:
            raise OAuthError(refusal, detail=f"password check for {user.object_id}: {check.value}")
        if user.mfa_required:
            # ROPC cannot carry a second factor: Entra answers that interaction is needed.
            raise OAuthError(INTERACTION_REQUIRED_MFA, resource=scope)
        sign_in = SignIn(
            tenant_id=ctx.tenant.id,
            user_id=user.object_id,
            client_id=ctx.client.client.app_id,
            scope=scope,
            auth_time=datetime.fromtimestamp(int(ctx.now), UTC),
            amr=("pwd",),
        )
        return user_outcome(ctx, sign_in, scope)
