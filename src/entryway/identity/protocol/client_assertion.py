"""Client authentication by assertion (RFC 7521 section 4.2, RFC 7523 sections 2.2 and 3), as Entra runs it:
a JWT signed with the key of a certificate registered on the app (private_key_jwt), or a token of an external
issuer that a federated identity credential of the app trusts (workload identity federation).

https://learn.microsoft.com/entra/identity-platform/certificate-credentials
https://learn.microsoft.com/entra/workload-id/workload-identity-federation

No I/O here: the external issuer's keys are fetched by the web layer before the pipeline runs and arrive as
`IssuerKeys`; the replay store is a port (`mark_assertion_used`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from entryway.identity.directory.first_party import AZURE_AD_TOKEN_EXCHANGE
from entryway.identity.protocol.errors import (
    CLIENT_ASSERTION_BAD_SIGNATURE,
    CLIENT_ASSERTION_KEY_EXPIRED,
    CLIENT_ASSERTION_KEY_NOT_FOUND,
    CLIENT_ASSERTION_MALFORMED,
    CLIENT_ASSERTION_NO_THUMBPRINT,
    CLIENT_ASSERTION_REPLAYED,
    CLIENT_ASSERTION_TIME_RANGE,
    CLIENT_ASSERTION_TYPE_UNSUPPORTED,
    CLIENT_ASSERTION_WRONG_AUDIENCE,
    CLIENT_ASSERTION_WRONG_CLIENT,
    FEDERATED_AUDIENCE_MISMATCH,
    FEDERATED_BAD_SIGNATURE,
    FEDERATED_ISSUER_MISMATCH,
    FEDERATED_KEY_NOT_FOUND,
    FEDERATED_NO_MATCH,
    FEDERATED_SUBJECT_MISMATCH,
    NO_FEDERATED_CREDENTIALS,
    OAuthError,
)
from entryway.identity.protocol.model import Certificate, Client, DirectoryPort, FederatedCredential

log = logging.getLogger("entryway.identity")

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# What msal signs with: RS256 with `x5t`, PS256 with `x5t#S256`. Pinned; never `none` nor a shared secret.
CERTIFICATE_ALGORITHMS = ("RS256", "PS256")
# External issuers sign with asymmetric keys they publish; these are the ones their JWKS can hold.
FEDERATED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
# Clock skew tolerated on exp, nbf and iat: Entra tolerates five minutes.
ASSERTION_LEEWAY_SECONDS = 300
# The longest validity an assertion may claim (exp minus nbf or iat). msal signs for 10 minutes, Kubernetes
# projects service-account tokens for 1 hour by default and at most 24 hours; anything longer is a credential
# that should have been a secret, and is refused.
MAX_ASSERTION_LIFETIME_SECONDS = 24 * 3600
DEFAULT_FEDERATED_AUDIENCE = "api://AzureADTokenExchange"
MAX_ASSERTION_CHARS = 16 * 1024


class AssertionReplayPort(Protocol):
    def mark_assertion_used(
        self, *, client_id: str, issuer: str, jti: str, expires_at: datetime, assertion: str
    ) -> bool:
        """Record `jti` until `expires_at`; False when another assertion already used it."""
        ...


@dataclass(frozen=True)
class IssuerKeys:
    """An external issuer's signing keys, as the web layer found them (discovery, then `jwks_uri`) just
    before the pipeline ran. `keys` maps kid to the public key; `problem` says, for the log, why it is empty."""

    issuer: str
    keys: Mapping[str, Any] = field(default_factory=dict)
    problem: str = ""


@dataclass(frozen=True)
class AssertionContext:
    """What verifying an assertion needs besides the assertion itself."""

    directory: DirectoryPort
    # The token endpoint URLs a certificate assertion may name as `aud` (v1 and v2; tenant as written and id).
    audiences: frozenset[str]
    replay: AssertionReplayPort | None
    issuer_keys: IssuerKeys | None
    now: float


def token_endpoint_audiences(origin: str, tenant_segments: tuple[str, ...]) -> frozenset[str]:
    """`{origin}/{tenant}/oauth2/v2.0/token` and `{origin}/{tenant}/oauth2/token` for each way of naming the
    tenant (MSAL uses the token endpoint from discovery; a hand-made assertion often names the v1 URL)."""
    return frozenset(
        url
        for tenant in tenant_segments
        for url in (f"{origin}/{tenant}/oauth2/v2.0/token", f"{origin}/{tenant}/oauth2/token")
    )


def unverified_issuer(assertion: str) -> str | None:
    """The `iss` an assertion claims, unverified: the web layer decides from it which keys to fetch."""
    try:
        iss = jwt.decode(assertion.strip(), options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return None
    return iss if isinstance(iss, str) else None


def unverified_kid(assertion: str) -> str | None:
    """The `kid` an assertion's header names, unverified: an unknown one makes the web layer refetch keys."""
    try:
        kid = jwt.get_unverified_header(assertion.strip()).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def verify_client_assertion(
    client: Client, assertion: str, assertion_type: str | None, ctx: AssertionContext
) -> None:
    """Authenticate `client` by `assertion`, or raise `OAuthError` with Entra's code."""
    if assertion_type != JWT_BEARER:
        raise OAuthError(
            CLIENT_ASSERTION_TYPE_UNSUPPORTED, detail=f"client_assertion_type {assertion_type!r}"
        )
    # A token file read verbatim ends with a newline (azure-identity WorkloadIdentityCredential).
    token = assertion.strip()
    if len(token) > MAX_ASSERTION_CHARS:
        raise OAuthError(CLIENT_ASSERTION_MALFORMED, detail="assertion too long")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise OAuthError(CLIENT_ASSERTION_MALFORMED, detail=f"not a JWT: {exc}") from exc
    if claims.get("iss") == client.app_id:
        _verify_certificate_assertion(client, token, header, claims, ctx)
    else:
        _verify_federated_assertion(client, token, header, claims, ctx)


# --- certificate assertions ----------------------------------------------------------------------------------


def _verify_certificate_assertion(
    client: Client, token: str, header: dict[str, Any], claims: dict[str, Any], ctx: AssertionContext
) -> None:
    alg = header.get("alg")
    if alg not in CERTIFICATE_ALGORITHMS:
        raise OAuthError(CLIENT_ASSERTION_MALFORMED, detail=f"certificate assertion signed with {alg!r}")
    presented = _presented_thumbprint(header)
    certificate = _find_certificate(ctx.directory.find_certificates(client.app_id), header)
    if certificate is None:
        raise OAuthError(
            CLIENT_ASSERTION_KEY_NOT_FOUND,
            detail="no registered certificate has the presented thumbprint",
            thumbprint=presented,
            client_id=client.app_id,
        )
    key_params = {
        "thumbprint": certificate.thumbprint_sha1,
        "start": _key_date(certificate.not_before),
        "end": _key_date(certificate.not_after),
    }
    now = datetime.fromtimestamp(ctx.now, UTC)
    if not certificate.not_before <= now < certificate.not_after:
        raise OAuthError(
            CLIENT_ASSERTION_KEY_EXPIRED,
            detail=f"certificate {certificate.key_id} not valid now",
            **key_params,
        )
    public_key = x509.load_der_x509_certificate(certificate.certificate_der).public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):  # RS256 and PS256 need an RSA key
        raise OAuthError(CLIENT_ASSERTION_BAD_SIGNATURE, detail="certificate key is not RSA", **key_params)
    try:
        jwt.decode(token, public_key, algorithms=[alg], options=_SIGNATURE_ONLY)
    except jwt.PyJWTError as exc:
        raise OAuthError(CLIENT_ASSERTION_BAD_SIGNATURE, detail=f"signature: {exc}", **key_params) from exc

    _check_claims(claims, _certificate_claim_checks(client, ctx))
    expires_at = _number(claims["exp"])
    _check_time_range(claims, ctx.now)
    if ctx.replay is None:
        raise RuntimeError("certificate assertions need replay storage; run the request in a unit of work")
    fresh = ctx.replay.mark_assertion_used(
        client_id=client.app_id,
        issuer=client.app_id,
        jti=str(claims["jti"]),
        expires_at=datetime.fromtimestamp(expires_at + ASSERTION_LEEWAY_SECONDS, UTC),
        assertion=token,
    )
    if not fresh:
        raise OAuthError(CLIENT_ASSERTION_REPLAYED, detail=f"jti {claims['jti']!r} used by another assertion")


_SIGNATURE_ONLY: Any = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
}

ClaimCheck = tuple[str, Callable[[Any], bool], Callable[[], OAuthError]]


def _certificate_claim_checks(client: Client, ctx: AssertionContext) -> list[ClaimCheck]:
    """RFC 7523 section 3, claim by claim, with the error Entra gives for each."""

    def wrong_client() -> OAuthError:
        return OAuthError(CLIENT_ASSERTION_WRONG_CLIENT, detail="iss or sub is not the client id")

    def wrong_audience() -> OAuthError:
        return OAuthError(CLIENT_ASSERTION_WRONG_AUDIENCE, detail="aud is not this token endpoint")

    def malformed(name: str) -> Callable[[], OAuthError]:
        return lambda: OAuthError(CLIENT_ASSERTION_MALFORMED, detail=f"claim {name} missing or malformed")

    return [
        ("iss", lambda v: v == client.app_id, wrong_client),
        ("sub", lambda v: v == client.app_id, wrong_client),
        ("aud", lambda v: _audiences(v) & ctx.audiences != set(), wrong_audience),
        ("exp", _is_number, malformed("exp")),
        ("jti", lambda v: isinstance(v, str) and 0 < len(v) <= 256, malformed("jti")),
    ]


def _check_claims(claims: Mapping[str, Any], checks: list[ClaimCheck]) -> None:
    for name, accept, error in checks:
        if name not in claims or not accept(claims[name]):
            raise error()


def _presented_thumbprint(header: Mapping[str, Any]) -> str:
    """The thumbprint to show in an error: the SHA-1 one as upper-case hex when the client sent it."""
    for name in ("x5t", "x5t#S256"):
        raw = _b64url(header.get(name))
        if raw is not None:
            return raw.hex().upper()
    return ""


def _find_certificate(certificates: tuple[Certificate, ...], header: Mapping[str, Any]) -> Certificate | None:
    """The registered certificate the header names: `x5t#S256`, `x5t` (base64url, padded or not), or the
    first certificate of `x5c` (base64 DER, line breaks allowed). When `x5c` is sent, its first certificate
    must be the registered one whatever the thumbprints say."""
    sha256 = _b64url(header.get("x5t#S256"))
    sha1 = _b64url(header.get("x5t"))
    chain_der = _x5c_first(header.get("x5c"))
    if sha256 is None and sha1 is None and chain_der is None:
        raise OAuthError(CLIENT_ASSERTION_NO_THUMBPRINT, detail="no x5t, x5t#S256 or x5c")
    for certificate in certificates:
        if sha256 is not None and not hmac.compare_digest(
            sha256.hex(), certificate.thumbprint_sha256.lower()
        ):
            continue
        if sha1 is not None and not hmac.compare_digest(
            sha1.hex().upper(), certificate.thumbprint_sha1.upper()
        ):
            continue
        if chain_der is not None and chain_der != certificate.certificate_der:
            continue
        return certificate
    return None


def _b64url(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        return b""  # named, but unreadable: matches no certificate


def _x5c_first(value: Any) -> bytes | None:
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        return None
    try:
        return base64.b64decode("".join(value[0].split()), validate=True)
    except (binascii.Error, ValueError):
        return b""


def _key_date(at: datetime) -> str:
    """Entra shows key validity as `MM/DD/YYYY HH:MM:SS`."""
    return at.strftime("%m/%d/%Y %H:%M:%S")


# --- time ----------------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    # msal writes exp and iat as floats (1795801344.26); bool is an int subclass and is not a time.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> float:
    return float(value)


def _check_time_range(claims: Mapping[str, Any], now: float) -> None:
    """exp in the future, nbf and iat not in the future (each within the leeway), and a bounded lifetime."""
    if not _is_number(claims.get("exp")):
        raise OAuthError(CLIENT_ASSERTION_MALFORMED, detail="exp missing or not a number")
    exp = _number(claims["exp"])
    for name in ("nbf", "iat"):
        if name in claims and not _is_number(claims[name]):
            raise OAuthError(CLIENT_ASSERTION_MALFORMED, detail=f"{name} is not a number")
    start = (
        _number(claims["nbf"]) if "nbf" in claims else (_number(claims["iat"]) if "iat" in claims else None)
    )
    problems = [
        (exp + ASSERTION_LEEWAY_SECONDS <= now, "expired"),
        (start is not None and start - ASSERTION_LEEWAY_SECONDS > now, "not yet valid"),
        ("iat" in claims and _number(claims["iat"]) - ASSERTION_LEEWAY_SECONDS > now, "issued in the future"),
        (start is not None and exp - start > MAX_ASSERTION_LIFETIME_SECONDS, "lifetime too long"),
    ]
    for failed, reason in problems:
        if failed:
            raise OAuthError(
                CLIENT_ASSERTION_TIME_RANGE,
                detail=reason,
                now=_iso(now),
                start=_iso(start if start is not None else 0.0),
                exp=_iso(exp),
            )


def _iso(value: float) -> str:
    """Entra's times in this message: `2024-10-02T22:05:03.6755165Z` (seven fractional digits)."""
    at = datetime.fromtimestamp(value, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond:06d}0Z"


# --- federated assertions ------------------------------------------------------------------------------------


def _verify_federated_assertion(
    client: Client, token: str, header: dict[str, Any], claims: dict[str, Any], ctx: AssertionContext
) -> None:
    """Entra's order: the app's credentials, the issuer, the signature, the time, the audience, the subject.
    External tokens are not single-use: azure-identity sends the same token file for up to 10 minutes."""
    credentials = ctx.directory.find_federated_credentials(client.app_id)
    if not credentials:
        raise OAuthError(NO_FEDERATED_CREDENTIALS, client_id=client.app_id, name=client.display_name)
    issuer = claims.get("iss")
    issuer_text = issuer if isinstance(issuer, str) else ""
    candidates = [c for c in credentials if c.issuer == issuer_text]
    if not candidates:
        raise OAuthError(FEDERATED_ISSUER_MISMATCH, issuer=issuer_text)

    alg = header.get("alg")
    if alg not in FEDERATED_ALGORITHMS:
        raise OAuthError(FEDERATED_BAD_SIGNATURE, detail=f"external token signed with {alg!r}")
    kid = header.get("kid")
    kid_text = kid if isinstance(kid, str) else ""
    keys = (
        ctx.issuer_keys.keys if ctx.issuer_keys is not None and ctx.issuer_keys.issuer == issuer_text else {}
    )
    # A JWKS with a single key may be used by tokens that name no kid (some issuers omit it).
    key = keys.get(kid_text) if kid_text else (next(iter(keys.values())) if len(keys) == 1 else None)
    if key is None:
        problem = ctx.issuer_keys.problem if ctx.issuer_keys is not None else "keys not fetched"
        raise OAuthError(
            FEDERATED_KEY_NOT_FOUND, detail=problem or "kid not in JWKS", kid=kid_text, issuer=issuer_text
        )
    try:
        jwt.decode(token, key, algorithms=[alg], options=_SIGNATURE_ONLY)
    except jwt.PyJWTError as exc:
        raise OAuthError(FEDERATED_BAD_SIGNATURE, detail=f"signature: {exc}") from exc

    _check_time_range(claims, ctx.now)
    presented_audiences = _audiences(claims.get("aud"))
    # A v2 token issued for Entra's token-exchange app carries its app id as `aud`: it matches a credential
    # whose audience is the app's identifier URI.
    if AZURE_AD_TOKEN_EXCHANGE.app_id in presented_audiences:
        presented_audiences.add(DEFAULT_FEDERATED_AUDIENCE)
    candidates = [
        c for c in candidates if set(c.audiences or (DEFAULT_FEDERATED_AUDIENCE,)) & presented_audiences
    ]
    if not candidates:
        raise OAuthError(FEDERATED_AUDIENCE_MISMATCH, audience=", ".join(sorted(presented_audiences)))
    subject = claims.get("sub")
    if any(_federated_match(c, claims) for c in candidates):
        return
    # Only subjects to compare with: Entra names the subject; with expressions, the whole assertion.
    if all(c.subject is not None for c in candidates):
        raise OAuthError(FEDERATED_SUBJECT_MISMATCH, subject=subject if isinstance(subject, str) else "")
    raise OAuthError(
        FEDERATED_NO_MATCH,
        detail="no subject or claims-matching expression matched",
        issuer=issuer_text,
        subject=subject if isinstance(subject, str) else "",
        audience=", ".join(sorted(presented_audiences)),
    )


def _audiences(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {v for v in value if isinstance(v, str)}
    return set()


def _federated_match(credential: FederatedCredential, claims: Mapping[str, Any]) -> bool:
    """Subjects compare exactly and case-sensitively; otherwise the claims-matching expression decides."""
    if credential.subject is not None:
        return claims.get("sub") == credential.subject
    if credential.claims_matching_expression:
        return matches_claims_expression(credential.claims_matching_expression, claims)
    return False


# Entra's flexible federated identity credentials (languageVersion 1), the part Entryway implements:
# `claims['name'] eq 'value'`, `claims['name'] matches 'pat*tern'` (`*` matches any run of characters),
# and `claims['name'] startswith 'value'`, joined by `and`. A quote inside a value is doubled ('').
# https://learn.microsoft.com/entra/workload-id/workload-identities-flexible-federated-identity-credentials
_TERM = re.compile(r"\s*claims\['([^']+)'\]\s+(eq|matches|startswith)\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)


def matches_claims_expression(expression: str, claims: Mapping[str, Any]) -> bool:
    """True when every term holds; an expression Entryway cannot read matches nothing."""
    terms = re.split(r"\s+and\s+", expression.strip(), flags=re.IGNORECASE)
    for term in terms:
        parsed = _TERM.fullmatch(term)
        if parsed is None:
            log.warning("unreadable claims-matching expression term %r", term)
            return False
        name, operator, raw = parsed.group(1), parsed.group(2).lower(), parsed.group(3).replace("''", "'")
        value = claims.get(name)
        if not isinstance(value, str):
            return False
        if operator == "eq":
            ok = value == raw
        elif operator == "startswith":
            ok = value.startswith(raw)
        else:
            ok = re.fullmatch(".*".join(re.escape(part) for part in raw.split("*")), value) is not None
        if not ok:
            return False
    return True


def certificate_thumbprints(der: bytes) -> tuple[str, str]:
    """(SHA-1 upper-case hex, SHA-256 lower-case hex), as `certificates` rows keep them."""
    return hashlib.sha1(der).hexdigest().upper(), hashlib.sha256(der).hexdigest()  # noqa: S324 - x5t is SHA-1
