"""Minted secrets, keyed digests and constant-time comparison.

Every secret Entryway mints is `<typed prefix><entropy><checksum>`: the prefix tells a secret scanner (and
a person) what it is, the checksum lets us refuse a mistyped or forged value before any database lookup.
Only a keyed digest (HMAC-SHA256) is stored; high-entropy secrets need no slow hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_CHECKSUM_LEN = 6  # 62**6 > 2**32: a CRC32 always fits


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(_BASE62[rem])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(binascii.crc32(body.encode("ascii")), _CHECKSUM_LEN)


@dataclass(frozen=True)
class SecretKind:
    """A kind of minted secret: its prefix and how many random base62 characters it carries."""

    prefix: str
    entropy_chars: int

    @property
    def length(self) -> int:
        return len(self.prefix) + self.entropy_chars + _CHECKSUM_LEN

    def mint(self) -> str:
        body = self.prefix + "".join(secrets.choice(_BASE62) for _ in range(self.entropy_chars))
        return body + _checksum(body)

    def derive(self, material: bytes) -> str:
        """A secret of this kind computed from key material (say, an HKDF output of the master key) rather
        than drawn at random: the same material always gives the same secret, so a process can recompute
        a credential it never stored."""
        if len(material) < 32:
            raise ValueError("derive a secret from at least 32 bytes of key material")
        number = int.from_bytes(hashlib.sha256(material).digest() + material, "big")
        body = self.prefix + _base62(number, self.entropy_chars)
        return body + _checksum(body)

    def is_well_formed(self, value: str) -> bool:
        """True when `value` has this kind's prefix, length, alphabet and a valid checksum."""
        if len(value) != self.length or not value.startswith(self.prefix):
            return False
        body, check = value[:-_CHECKSUM_LEN], value[-_CHECKSUM_LEN:]
        if any(c not in _BASE62 for c in body[len(self.prefix) :]):
            return False
        return hmac.compare_digest(_checksum(body), check)


# 40 base62 characters carry ~238 bits.
CLIENT_SECRET = SecretKind(prefix="ewcs_", entropy_chars=40)
# What user sign-in mints: each shown once to the client, kept as a digest.
AUTHORIZATION_CODE = SecretKind(prefix="ewac_", entropy_chars=40)
DEVICE_CODE = SecretKind(prefix="ewdc_", entropy_chars=40)
REFRESH_TOKEN = SecretKind(prefix="ewrt_", entropy_chars=40)
# A pipeline job's System.AccessToken (devops/pipelines/jobtokens.py): valid while its job runs.
JOB_TOKEN = SecretKind(prefix="ewjt_", entropy_chars=40)


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


class SecretDigester:
    """Keyed digests of secrets: what the database stores instead of the secret."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("digest key must be at least 32 bytes")
        self._key = key

    def digest(self, secret: str) -> str:
        return hmac.new(self._key, secret.encode("utf-8"), hashlib.sha256).hexdigest()

    def matches(self, secret: str, digest: str) -> bool:
        return hmac.compare_digest(self.digest(secret), digest)


class MasterKey:
    """The root key of an installation; purpose-specific keys are derived from it with HKDF."""

    ENV_VAR = "ENTRYWAY_MASTER_KEY"
    FILE_NAME = "master.key"

    def __init__(self, material: bytes) -> None:
        if len(material) < 32:
            raise ValueError("the master key must be at least 32 bytes")
        self._material = material

    def derive(self, purpose: str) -> bytes:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
        return hkdf.derive(self._material)

    @classmethod
    def from_base64(cls, text: str) -> MasterKey:
        try:
            material = base64.b64decode(text.strip(), validate=True)
        except binascii.Error as exc:
            raise ValueError("the master key must be base64") from exc
        return cls(material)

    @classmethod
    def load_or_create(cls, data_dir: Path, configured: str | None = None) -> MasterKey:
        """Use the configured key (config or environment) or the data directory's key file, creating it once."""
        configured = configured or os.environ.get(cls.ENV_VAR)
        if configured:
            return cls.from_base64(configured)
        path = data_dir / cls.FILE_NAME
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            material = base64.b64encode(secrets.token_bytes(32))
            # O_EXCL: two processes starting at once must not both write a key.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(material)
        return cls.from_base64(path.read_text())
