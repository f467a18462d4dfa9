"""Client authentication at the token endpoint (RFC 6749 section 2.3.1): client_secret_post and
client_secret_basic. Certificate assertions (private_key_jwt) plug in here in a later change."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

from entryway.identity.protocol.claims import CLIENT_AUTH_SECRET
from entryway.identity.protocol.errors import (
    CLIENT_SECRET_EXPIRED,
    INVALID_CLIENT_SECRET,
    Aadsts,
    OAuthError,
)
from entryway.identity.protocol.model import Client
from entryway.identity.protocol.requests import TokenRequest
from entryway.kit.secrets import SecretDigester, constant_time_equals


@dataclass(frozen=True)
class PresentedCredential:
    client_id: str | None
    secret: str | None


def read_client_credential(request: TokenRequest) -> PresentedCredential:
    """The client id and secret from the body, or from an HTTP Basic header (form-urlencoded parts)."""
    client_id = request.get("client_id")
    secret = request.get("client_secret")
    header = request.authorization
    if secret is None and header and header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return PresentedCredential(client_id, None)
        user, sep, password = decoded.partition(":")
        if sep:
            client_id = client_id or unquote(user)
            secret = unquote(password) or None
    return PresentedCredential(client_id, secret)


@dataclass(frozen=True)
class AuthenticatedClient:
    client: Client
    method: str  # the appidacr / azpacr value


def authenticate_client(
    client: Client,
    credential: PresentedCredential,
    *,
    digester: SecretDigester,
    now: datetime,
    missing: Aadsts,
) -> AuthenticatedClient:
    """Check the presented secret against every secret of the app, in constant time per comparison."""
    if credential.secret is None:
        raise OAuthError(missing, detail="no client credential presented")
    presented = digester.digest(credential.secret)
    matched = None
    for stored in client.secrets:
        # Compare against all of them: the time taken does not depend on which one matches.
        if constant_time_equals(presented, stored.digest):
            matched = stored
    if matched is None:
        raise OAuthError(INVALID_CLIENT_SECRET, detail="no secret matched", client_id=client.app_id)
    if matched.expires_at <= now:
        raise OAuthError(
            CLIENT_SECRET_EXPIRED, detail=f"secret {matched.key_id} expired", client_id=client.app_id
        )
    return AuthenticatedClient(client, CLIENT_AUTH_SECRET)
