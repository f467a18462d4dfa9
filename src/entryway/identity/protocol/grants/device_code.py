"""RFC 8628 section 3.4: the device polls with its device code; the scope is the one it asked for at
`/devicecode`, because MSAL's polls carry none. https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code"""

from __future__ import annotations

from typing import ClassVar

from entryway.identity.protocol.errors import CLIENT_CREDENTIAL_MISSING, Aadsts
from entryway.identity.protocol.grants.user import require_sign_ins, user_outcome
from entryway.identity.protocol.model import DirectoryPort
from entryway.identity.protocol.pipeline import GrantContext, GrantOutcome
from entryway.identity.protocol.requests import TokenRequest
from entryway.identity.protocol.sign_ins import SignInPort

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


def _device_code(request: TokenRequest) -> str:
    # MSAL sends the code twice, as `device_code` and `code` (its "2018-10-4 Hack").
    return request.get("device_code") or request.get("code") or request.require("device_code")


class DeviceCodeGrant:
    grant_type: ClassVar[str] = GRANT_TYPE
    missing_credential: ClassVar[Aadsts] = CLIENT_CREDENTIAL_MISSING
    allows_public_clients: ClassVar[bool] = True
    issues_user_tokens: ClassVar[bool] = True

    def tenant_hint(
        self, request: TokenRequest, sign_ins: SignInPort | None, directory: DirectoryPort
    ) -> str | None:
        if sign_ins is None:
            return None
        return sign_ins.tenant_of_device_code(_device_code(request), client_id=request.get("client_id"))

    def authorize(self, ctx: GrantContext) -> GrantOutcome:
        sign_in = require_sign_ins(ctx).redeem_device_code(
            _device_code(ctx.request), client_id=ctx.client.client.app_id
        )
        return user_outcome(ctx, sign_in, sign_in.scope)
