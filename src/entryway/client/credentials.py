"""An app's own credentials as the Azure tools take them: a certificate file (PEM with its private key, or
PKCS#12 / PFX; the key optionally password-protected) turned into what msal signs a client assertion with,
and a federated token given inline or as `@FILE`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

MAX_CREDENTIAL_FILE_BYTES = 1024 * 1024  # a certificate chain or a JWT is a few kilobytes


class CredentialError(ValueError):
    """The credential cannot be used; the message names the file and what is wrong with it."""


def _read(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CREDENTIAL_FILE_BYTES + 1)
    except OSError as exc:
        raise CredentialError(f"{what} {path} cannot be read ({exc.strerror or exc})") from exc
    if len(data) > MAX_CREDENTIAL_FILE_BYTES:
        raise CredentialError(f"{what} {path} is larger than {MAX_CREDENTIAL_FILE_BYTES} bytes")
    return data


def load_certificate_credential(path: Path, password: str | None = None) -> dict[str, str]:
    """msal's certificate credential (`private_key`, `thumbprint` = SHA-1 of the certificate, as x5t is, and
    `public_certificate` so the assertion carries x5c) from a PEM file holding the private key and its
    certificate, or a PKCS#12 (.pfx/.p12) file; `password` decrypts the key (or the PFX)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    data = _read(path, "the certificate file")
    secret = password.encode() if password is not None else None
    key: Any
    certificate: x509.Certificate | None
    try:
        if b"-----BEGIN" in data:
            certificate = x509.load_pem_x509_certificate(data)
            key = serialization.load_pem_private_key(data, password=secret)
        else:
            key, certificate, _ = pkcs12.load_key_and_certificates(data, secret)
    except TypeError as exc:
        # cryptography: "Password was not given but private key is encrypted" / "…given but … not encrypted".
        hint = (
            "its private key is encrypted: give the password (--password-env VAR)"
            if secret is None
            else "its private key is not encrypted: give no password"
        )
        raise CredentialError(f"the certificate file {path} cannot be used: {hint}") from exc
    except ValueError as exc:
        if b"-----BEGIN" not in data:
            raise CredentialError(
                f"the certificate file {path} is not a PEM file, and not a PKCS#12 (.pfx) file this password "
                f"({'none given' if secret is None else 'the one given'}) opens"
            ) from exc
        if secret is not None and "decrypt" in str(exc).lower():
            raise CredentialError(
                f"the certificate file {path} cannot be used: the password does not decrypt its private key"
            ) from exc
        raise CredentialError(
            f"the certificate file {path} is not a PEM file with a private key and its certificate"
        ) from exc
    if key is None or certificate is None:
        raise CredentialError(
            f"the certificate file {path} must hold both the private key and its certificate"
        )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "private_key": key_pem.decode(),
        "thumbprint": certificate.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - x5t is SHA-1
        "public_certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
    }


def read_federated_token(value: str) -> str:
    """`--federated-token TOKEN` or `--federated-token @FILE` (read now, whitespace trimmed)."""
    if value.startswith("@"):
        token = _read(Path(value[1:]), "the federated token file").decode("utf-8", "replace").strip()
        if not token:
            raise CredentialError(f"the federated token file {value[1:]} is empty")
        return token
    if not value.strip():
        raise CredentialError("the federated token is empty")
    return value.strip()


_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TRUE = ("1", "true", "yes", "system")


def parse_managed_identity(value: str, azure_client_id: str | None = None) -> tuple[str, str]:
    """ENTRYWAY_GIT_MANAGED_IDENTITY -> (selector, identity) for msal: `true`/`1`/`system` is the
    system-assigned identity (or the user-assigned one AZURE_CLIENT_ID names, as DefaultAzureCredential takes
    it), a GUID a client ID, `/subscriptions/…` a resource ID, `client_id=`/`object_id=`/`resource_id=` spelled
    out."""
    text = value.strip()
    if text.lower() in _TRUE:
        return ("client_id", azure_client_id) if azure_client_id else ("system", "")
    name, sep, given = text.partition("=")
    if sep and name in ("client_id", "object_id", "resource_id") and given.strip():
        return name, given.strip()
    if _GUID.match(text):
        return "client_id", text
    if text.lower().startswith("/subscriptions/"):
        return "resource_id", text
    raise CredentialError(
        f"ENTRYWAY_GIT_MANAGED_IDENTITY='{value}' is not true, system, a client ID (GUID), a resource ID "
        "(/subscriptions/…), or client_id=/object_id=/resource_id=…"
    )
