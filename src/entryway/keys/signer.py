"""Signing JWTs with the keyring's active key (RS256, `kid` = RFC 7638 thumbprint)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

from entryway.keys.keyring import Keyring


class KeyringSigner:
    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    def sign(self, claims: Mapping[str, Any]) -> str:
        key = self._keyring.signing_key()
        return jwt.encode(dict(claims), key.private_key, algorithm=key.algorithm, headers={"kid": key.kid})


class KeyringVerifier:
    """Checks that a JWT was signed by one of this installation's published keys (RS256 only). Claims are
    not checked here: the caller's checks name the error Entra gives for each."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    def verified_claims(self, token: str) -> dict[str, Any] | None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        if header.get("alg") != "RS256":
            return None
        keys = {k["kid"]: k for k in self._keyring.jwks()["keys"]}
        jwk = keys.get(header.get("kid", ""))
        if jwk is None:
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                jwt.PyJWK(jwk).key,
                algorithms=["RS256"],
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            return None
        return claims
