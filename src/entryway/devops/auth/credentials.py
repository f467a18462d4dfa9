"""What a request presents, told apart by its shape (devops-wire-contract 1, 9):
`Bearer <JWT>`, Basic with any user name and a JWT as the password (Git Credential Manager's oauth mode),
PATs and pipeline job tokens as Basic password or Bearer (the agent sends System.AccessToken both ways:
`http.extraheader: AUTHORIZATION: bearer …` for checkout, Basic in many scripts). PATs and job tokens are
recognised here by shape and verified by a later layer."""

from __future__ import annotations

import base64
import binascii
import enum
import re
from dataclasses import dataclass

from entryway.kit.secrets import JOB_TOKEN

# Strict base64url alphabet: a JWT with any other character is refused before any decoding
# (plain urlsafe_b64decode silently drops bad characters).
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
MAX_CREDENTIAL_LENGTH = 16 * 1024


class CredentialKind(enum.Enum):
    NONE = "none"
    JWT = "jwt"  # an Entra access token
    PAT = "pat"
    JOB_TOKEN = "jobtoken"  # noqa: S105 - a kind of credential, not one: System.AccessToken, `ewjt_…`
    MALFORMED = "malformed"


class Scheme(enum.Enum):
    BEARER = "bearer"
    BASIC = "basic"
    NONE = "none"


@dataclass(frozen=True)
class PresentedCredential:
    kind: CredentialKind
    scheme: Scheme
    value: str = ""

    @property
    def label(self) -> str:
        """How the audit log and the sign-in log name it: never the credential itself."""
        return f"{self.scheme.value}:{self.kind.value}"


NO_CREDENTIAL = PresentedCredential(CredentialKind.NONE, Scheme.NONE)


def looks_like_jwt(value: str) -> bool:
    return _JWT_SHAPE.fullmatch(value) is not None


def _classify(value: str, scheme: Scheme) -> PresentedCredential:
    if not value or len(value) > MAX_CREDENTIAL_LENGTH:
        return PresentedCredential(CredentialKind.MALFORMED, scheme)
    if looks_like_jwt(value):
        return PresentedCredential(CredentialKind.JWT, scheme, value)
    if value.startswith(JOB_TOKEN.prefix):
        return PresentedCredential(CredentialKind.JOB_TOKEN, scheme, value)
    if value.isalnum():
        return PresentedCredential(CredentialKind.PAT, scheme, value)
    return PresentedCredential(CredentialKind.MALFORMED, scheme)


def parse_authorization(header: str | None) -> PresentedCredential:
    if not header:
        return NO_CREDENTIAL
    scheme, _, rest = header.strip().partition(" ")
    rest = rest.strip()
    if scheme.lower() == "bearer":
        return _classify(rest, Scheme.BEARER)
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return PresentedCredential(CredentialKind.MALFORMED, Scheme.BASIC)
        _user, sep, password = decoded.partition(":")
        if not sep:
            # base64 of a PAT without the colon: Azure DevOps treats it as no credential (vsts-rest-api-specs#97).
            return PresentedCredential(CredentialKind.MALFORMED, Scheme.BASIC)
        return _classify(password, Scheme.BASIC)
    return PresentedCredential(CredentialKind.MALFORMED, Scheme.NONE)
