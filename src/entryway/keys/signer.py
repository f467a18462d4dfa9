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
