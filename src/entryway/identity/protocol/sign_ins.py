"""What a user's sign-in hands to the token endpoint, and the port through which the user grants redeem
authorization codes, device codes and refresh tokens. Implemented by `identity.signin.ledger`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from entryway.identity.protocol.model import Tenant, User


@dataclass(frozen=True)
class SignIn:
    """A user's authentication as a code, a device code or a refresh-token family carries it."""

    tenant_id: str
    user_id: str
    client_id: str
    scope: str  # as the client asked for it at sign-in
    auth_time: datetime
    amr: tuple[str, ...]
    nonce: str | None = None
    # The refresh-token family this sign-in continues; None starts a new one.
    family_id: str | None = None
    # The code it came from, so that a replayed code can revoke what its redemption issued.
    code_digest: str | None = None


class PasswordCheck(Enum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"
    DISABLED = "disabled"


class SignInPort(Protocol):
    """Every method raises `OAuthError` with Entra's code when the artefact cannot be redeemed. Writes made
    before such an error (a revoked family, a poll's timestamp) are meant to last."""

    def tenant_of_code(self, code: str) -> str | None: ...

    def redeem_authorization_code(
        self, code: str, *, client_id: str, redirect_uri: str | None, code_verifier: str | None
    ) -> SignIn: ...

    def tenant_of_device_code(self, device_code: str, *, client_id: str | None) -> str:
        """Record the poll and return the tenant of an approved code; raise `authorization_pending`,
        `slow_down`, `expired_token` or `authorization_declined` otherwise (RFC 8628 section 3.5)."""
        ...

    def redeem_device_code(self, device_code: str, *, client_id: str) -> SignIn: ...

    def tenant_of_refresh_token(self, token: str) -> str | None: ...

    def redeem_refresh_token(self, token: str, *, client_id: str, tenant: Tenant) -> SignIn: ...

    def check_password(self, user: User, password: str, source: str) -> PasswordCheck: ...

    def consented_scopes(
        self, *, tenant_id: str, client_id: str, user_id: str, resource_app_id: str
    ) -> frozenset[str]: ...

    def issue_refresh_token(self, sign_in: SignIn, *, inactivity_seconds: int) -> str:
        """Mint a refresh token in the sign-in's family, starting the family if it has none."""
        ...
