"""The reporter's signature, as GitHub's secret scanning partner program signs a report: ECDSA on P-256 over
SHA-256 of the raw request body, DER-encoded, base64 in `Github-Public-Key-Signature`; the key is named by
`Github-Public-Key-Identifier` (GitHub publishes its keys at api.github.com/meta/public_keys/secret_scanning).

Only `cryptography` does the mathematics; nothing here is hand-rolled.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

# A DER ECDSA P-256 signature is at most 72 bytes; base64 of it at most 96 characters. Anything far longer is
# not worth decoding.
MAX_SIGNATURE_TEXT = 256


class ReporterKeyError(ValueError):
    """A reporter's public key that is not an EC P-256 public key in PEM; the message says which."""


def load_public_key(pem: str) -> ec.EllipticCurvePublicKey:
    """The reporter's key: a PEM SubjectPublicKeyInfo of an EC P-256 key (what GitHub publishes)."""
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm) as exc:
        raise ReporterKeyError("not a PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ReporterKeyError("not an EC P-256 public key (GitHub signs with ECDSA on P-256)")
    return key


def canonical_pem(pem: str) -> str:
    """The key re-serialised, so that one key has one stored form whatever whitespace it came with."""
    key = load_public_key(pem)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def key_identifier_of(pem: str) -> str:
    """The key's identifier as GitHub computes it: the hex SHA-256 of the PEM text (SubjectPublicKeyInfo,
    64-character lines, final newline). GitHub's published sample key has identifier 90a42116…555f4a, which
    this reproduces (tests/devops/test_pat_leaks.py). A reporter that names its keys otherwise registers them
    with its own identifiers."""
    return hashlib.sha256(canonical_pem(pem).encode("ascii")).hexdigest()


def verify_signature(public_key_pem: str, body: bytes, signature_b64: str) -> bool:
    """True when `signature_b64` is the key's ECDSA P-256 / SHA-256 signature of exactly `body`."""
    if not signature_b64 or len(signature_b64) > MAX_SIGNATURE_TEXT:
        return False
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        load_public_key(public_key_pem).verify(signature, body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ReporterKeyError):
        return False
    return True
