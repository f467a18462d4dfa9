"""Client authentication at the token endpoint: client_secret_post and client_secret_basic (RFC 6749 section
2.3.1), and client assertions (RFC 7523 section 2.2: a certificate's private_key_jwt or a federated token,
verified in `client_assertion`)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

from entryway.identity.protocol.claims import CLIENT_AUTH_CERTIFICATE, CLIENT_AUTH_SECRET
from entryway.identity.protocol.client_assertion import AssertionContext, verify_client_assertion
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
    assertion: str | None = None
    assertion_type: str | None = None

    @property
    def presented(self) -> bool:
        """The client presented a credential of some kind (a secret or an assertion)."""
        return self.secret is not None or self.assertion is not None


def read_client_credential(request: TokenRequest) -> PresentedCredential:
    """The client id and secret from the body, or from an HTTP Basic header (form-urlencoded parts); a client
    assertion and its type from the body."""
    client_id = request.get("client_id")
    secret = request.get("client_secret")
    assertion = request.get("client_assertion")
    assertion_type = request.get("client_assertion_type")
    if assertion is not None or assertion_type is not None:
        return PresentedCredential(client_id, secret, assertion, assertion_type)
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
    assertions: AssertionContext | None = None,
) -> AuthenticatedClient:
    """A client assertion is verified as such (appidacr "2"); a secret is checked against every secret of the
    app, in constant time per comparison (appidacr "1")."""
    if credential.assertion is not None or credential.assertion_type is not None:
        if credential.assertion is None:
            raise OAuthError(missing, detail="client_assertion_type without client_assertion")
        if assertions is None:
            raise RuntimeError("client assertions need an AssertionContext")
        verify_client_assertion(client, credential.assertion, credential.assertion_type, assertions)
        return AuthenticatedClient(client, CLIENT_AUTH_CERTIFICATE)
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
