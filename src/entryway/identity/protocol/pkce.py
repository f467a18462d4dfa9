"""Proof Key for Code Exchange, S256 only (RFC 7636). `plain` gives no protection against a stolen code,
and Entra's public clients (msal, azure-identity) all send S256."""

from __future__ import annotations

import base64
import hashlib
import re

from entryway.kit.secrets import constant_time_equals

S256 = "S256"
# RFC 7636 section 4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# A S256 challenge is the base64url of a SHA-256: exactly 43 characters, no padding.
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def is_valid_challenge(challenge: str, method: str | None) -> bool:
    return (method or "plain") == S256 and bool(_CHALLENGE.match(challenge))


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verifier_matches(verifier: str | None, challenge: str) -> bool:
    """RFC 7636 section 4.6, compared in constant time."""
    if verifier is None or not _VERIFIER.match(verifier):
        return False
    return constant_time_equals(s256(verifier), challenge)
