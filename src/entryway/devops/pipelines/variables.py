"""Pipeline variables set outside the YAML (CLI, config file). A secret variable's value is AES-GCM encrypted
under a key derived from the master key (it must be handed back to the job, so it cannot be a digest), bound
to its pipeline and name as associated data, so a ciphertext copied onto another row does not decrypt."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# The master key's HKDF purpose for this key (runtime.py derives it).
PIPELINE_VARIABLES_PURPOSE = "entryway/pipeline-variables/v1"
_NONCE_BYTES = 12


class VariableCipher:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the pipeline variables key is 32 bytes")
        self._aead = AESGCM(key)

    @staticmethod
    def _aad(pipeline_id: int, name: str) -> bytes:
        return f"pipeline-variable:{pipeline_id}:{name.lower()}".encode()

    def encrypt(self, pipeline_id: int, name: str, value: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, value.encode("utf-8"), self._aad(pipeline_id, name))

    def decrypt(self, pipeline_id: int, name: str, blob: bytes) -> str:
        """The value; ValueError when the blob was not made for this pipeline and name under this key."""
        try:
            plain = self._aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], self._aad(pipeline_id, name))
        except InvalidTag as exc:
            raise ValueError(f"secret variable '{name}' cannot be decrypted (another master key?)") from exc
        return plain.decode("utf-8")
