"""Signing keys and their rotation, by purpose.

One key signs; retired keys stay published for verification until every token they signed has expired
(dex `server/signer/rotation.go`). The key id is the RFC 7638 JWK thumbprint. Each purpose (the identity
platform's tokens, the DevOps service's pipeline OIDC tokens) has its own active key, rotation and key set:
a key of one never signs or verifies for the other.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from entryway.kit.clock import Clock, as_utc
from entryway.kit.secrets import MasterKey
from entryway.store.db import Database
from entryway.store.models import SigningKeyRow

ALGORITHM = "RS256"
RSA_KEY_SIZE = 2048
# The longest access-token lifetime any tenant may configure (Entra: 1 day), plus clock-skew leeway.
LONGEST_TOKEN_LIFETIME = timedelta(days=1)
PUBLISH_MARGIN = timedelta(minutes=10)
# Whose keys. The identity platform's were the only ones before purposes existed (migration 0008 gives old
# rows this purpose).
IDENTITY = "identity"
DEVOPS_OIDC = "devops-oidc"
PURPOSES = (IDENTITY, DEVOPS_OIDC)
# How long a process keeps its view of the key set before it reads the database again.
REFRESH_INTERVAL = timedelta(seconds=5)


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def rfc7638_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 section 3: SHA-256 over the required members, lexicographically ordered, no white space."""
    required = {"e": jwk["e"], "kty": jwk["kty"], "n": jwk["n"]}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def public_jwk(key: rsa.RSAPublicKey) -> dict[str, Any]:
    numbers = key.public_numbers()
    jwk: dict[str, Any] = {
        "kty": "RSA",
        "use": "sig",
        "n": _b64url_uint(numbers.n),
        "e": _b64url_uint(numbers.e),
    }
    jwk["kid"] = rfc7638_thumbprint(jwk)
    jwk["alg"] = ALGORITHM
    return jwk


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: rsa.RSAPrivateKey


class KeyEncryptor:
    """AES-256-GCM encryption of private keys at rest, the key id bound as associated data."""

    PURPOSE = "entryway/signing-key-encryption/v1"

    def __init__(self, master_key: MasterKey) -> None:
        self._aead = AESGCM(master_key.derive(self.PURPOSE))

    def encrypt(self, kid: str, private_key: rsa.RSAPrivateKey) -> bytes:
        der = private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, der, kid.encode())

    def decrypt(self, kid: str, blob: bytes) -> rsa.RSAPrivateKey:
        der = self._aead.decrypt(blob[:12], blob[12:], kid.encode())
        key = serialization.load_der_private_key(der, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"signing key {kid} is not an RSA key")
        return key


def check_purpose(purpose: str) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown signing key purpose '{purpose}' (one of {', '.join(PURPOSES)})")
    return purpose


class KeyRepository:
    """Every query on the signing_keys table, for the keys of one purpose."""

    def __init__(self, session: Session, purpose: str = IDENTITY) -> None:
        self._session = session
        self._purpose = check_purpose(purpose)

    def find_active(self) -> SigningKeyRow | None:
        return self._session.scalars(
            select(SigningKeyRow).where(
                SigningKeyRow.purpose == self._purpose, SigningKeyRow.state == "active"
            )
        ).first()

    def list_all(self) -> list[SigningKeyRow]:
        return list(
            self._session.scalars(
                select(SigningKeyRow)
                .where(SigningKeyRow.purpose == self._purpose)
                .order_by(SigningKeyRow.created_at)
            )
        )

    def list_published(self, now: datetime) -> list[SigningKeyRow]:
        rows = self._session.scalars(
            select(SigningKeyRow)
            .where(SigningKeyRow.purpose == self._purpose)
            .order_by(SigningKeyRow.created_at.desc())
        )
        return [r for r in rows if r.state == "active" or (r.publish_until and as_utc(r.publish_until) > now)]

    def add(self, row: SigningKeyRow) -> None:
        self._session.add(row)

    def retire_if_active(self, kid: str, now: datetime, publish_until: datetime) -> bool:
        """The compare half of compare-and-swap: only one rotation can retire a given active key."""
        result = self._session.execute(
            update(SigningKeyRow)
            .where(
                SigningKeyRow.kid == kid,
                SigningKeyRow.purpose == self._purpose,
                SigningKeyRow.state == "active",
            )
            .values(state="retired", retired_at=now, publish_until=publish_until)
        )
        return bool(getattr(result, "rowcount", 0) == 1)


class MasterKeyMismatch(Exception):
    """The signing keys cannot be decrypted with the configured master key."""


class RotationConflict(Exception):
    """Another process rotated the key first."""


class KeyService:
    """Creates and rotates the keys of one purpose."""

    def __init__(self, db: Database, encryptor: KeyEncryptor, clock: Clock, purpose: str = IDENTITY) -> None:
        self._db = db
        self._encryptor = encryptor
        self._clock = clock
        self.purpose = check_purpose(purpose)

    def _repo(self, session: Session) -> KeyRepository:
        return KeyRepository(session, self.purpose)

    def _new_row(self) -> SigningKeyRow:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)
        jwk = public_jwk(private_key.public_key())
        return SigningKeyRow(
            kid=jwk["kid"],
            algorithm=ALGORITHM,
            private_key_encrypted=self._encryptor.encrypt(jwk["kid"], private_key),
            public_jwk=jwk,
            purpose=self.purpose,
            state="active",
            created_at=self._clock.now(),
        )

    def check_master_key(self) -> None:
        """Refuse a master key other than the one the keys were encrypted with, at start, not at first use."""
        with self._db.read() as session:
            active = self._repo(session).find_active()
        if active is None:
            return
        try:
            self._encryptor.decrypt(active.kid, active.private_key_encrypted)
        except InvalidTag as exc:
            raise MasterKeyMismatch(
                "the master key does not match the one this data directory was created with "
                "(check ENTRYWAY_MASTER_KEY and <data dir>/master.key)"
            ) from exc

    def ensure_active_key(self) -> str:
        with self._db.unit_of_work() as session:
            repo = self._repo(session)
            active = repo.find_active()
            if active is not None:
                return active.kid
            row = self._new_row()
            repo.add(row)
            return row.kid

    def rotate(self, expected_kid: str | None = None) -> str:
        """Retire the active key (if it is still `expected_kid`) and make a new one active."""
        with self._db.unit_of_work() as session:
            repo = self._repo(session)
            active = repo.find_active()
            if active is None and expected_kid is not None:
                raise RotationConflict("no active key")
            if active is not None:
                if expected_kid is not None and active.kid != expected_kid:
                    raise RotationConflict(active.kid)
                now = self._clock.now()
                if not repo.retire_if_active(active.kid, now, now + LONGEST_TOKEN_LIFETIME + PUBLISH_MARGIN):
                    raise RotationConflict(active.kid)
            row = self._new_row()
            repo.add(row)
            return row.kid

    def list_keys(self) -> list[SigningKeyRow]:
        with self._db.read() as session:
            return self._repo(session).list_all()


class Keyring:
    """A process's cached view of one purpose's key set: the signing key and the published public keys."""

    def __init__(self, db: Database, encryptor: KeyEncryptor, clock: Clock, purpose: str = IDENTITY) -> None:
        self._db = db
        self._encryptor = encryptor
        self._clock = clock
        self.purpose = check_purpose(purpose)
        self._lock = threading.Lock()
        self._loaded_at: float | None = None
        self._signing: SigningKey | None = None
        self._jwks: dict[str, Any] = {"keys": []}
        self._decrypted: dict[str, SigningKey] = {}

    def _refresh_if_stale(self) -> None:
        now = self._clock.timestamp()
        if self._loaded_at is not None and now - self._loaded_at < REFRESH_INTERVAL.total_seconds():
            return
        with self._lock:
            if self._loaded_at is not None and now - self._loaded_at < REFRESH_INTERVAL.total_seconds():
                return
            with self._db.read() as session:
                rows = KeyRepository(session, self.purpose).list_published(self._clock.now())
            active = next((r for r in rows if r.state == "active"), None)
            if active is None:
                raise RuntimeError(
                    f"no active {self.purpose} signing key; run `entryway keys rotate --purpose {self.purpose}`"
                )
            if active.kid not in self._decrypted:
                # Decrypt (and parse) once per key: a key parsed per call signs ~27 tokens a second.
                private_key = self._encryptor.decrypt(active.kid, active.private_key_encrypted)
                self._decrypted[active.kid] = SigningKey(active.kid, active.algorithm, private_key)
            self._signing = self._decrypted[active.kid]
            self._jwks = {"keys": [dict(r.public_jwk) for r in rows]}
            self._loaded_at = now

    def signing_key(self) -> SigningKey:
        self._refresh_if_stale()
        assert self._signing is not None
        return self._signing

    def jwks(self) -> dict[str, Any]:
        self._refresh_if_stale()
        return self._jwks

    def invalidate(self) -> None:
        self._loaded_at = None
