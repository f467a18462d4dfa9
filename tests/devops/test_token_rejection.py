"""What the DevOps service refuses, and how: every refused credential gets the same 401 (the Entra challenge
Git Credential Manager and the pipelines agent read for tenant discovery, and the TF400813 body), never a 500
and never a hint of why (devops-wire-contract 1.4).

Forgeries are made the way an attacker would make them, from what the identity platform publishes. Claim
checks are tested with tokens signed by the real signing key (`runtime.keyring`), so the only thing wrong
with each token is the claim under test; a re-signed, untouched token is accepted, which proves it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from entryway.config.declarative import apply_config
from tests.conftest import (
    BUILD_BOT_ID,
    BUILD_BOT_SECRET,
    CONTOSO_TENANT,
    DEVOPS_RESOURCE,
    DEVOPS_SCOPE,
    NORTHWIND_BOT_ID,
    NORTHWIND_BOT_SECRET,
    NORTHWIND_TENANT,
    OUTSIDER_ID,
    OUTSIDER_SECRET,
    Instance,
    form_post,
)

ORG = "fabrikam"  # connected to contoso; build-bot is a Basic member, outsider is not a member
LEEWAY = 300  # Microsoft.IdentityModel's default clock skew, which the service allows

# An API in contoso that is not Azure DevOps, and a tenant whose tokens live ten minutes (the shortest
# lifetime Entra allows), so that expiry needs only a short move of the session's clock.
OTHER_API_URI = "api://entryway-token-rejection-other-api"
SHORT_TENANT = "6e1d2c3b-4a59-4687-9a8b-7c6d5e4f3a2b"
SHORT_BOT_ID = "2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901"
SHORT_BOT_SECRET = "short-lived-secret-0123456789abcdefghijkl"
SHORT_ORG = "short-lived"
REJECTION_CONFIG = f"""\
tenants:
  - id: {CONTOSO_TENANT}
    domains: [contoso.test]
    apps:
      - name: token-rejection-other-api
        identifier_uris: ["{OTHER_API_URI}"]
  - id: {SHORT_TENANT}
    domains: [short-lived.test]
    access_token_lifetime: 600
    apps:
      - name: short-lived-bot
        client_id: {SHORT_BOT_ID}
        secrets:
          - value: "{SHORT_BOT_SECRET}"
organizations:
  - name: {SHORT_ORG}
    tenant: short-lived.test
    members:
      - app: short-lived-bot
        access: basic
"""

TF400813_BODY = {
    "$id": "1",
    "innerException": None,
    "message": "TF400813: Resource not available for anonymous access. Client authentication required.",
    "typeName": "Microsoft.TeamFoundation.Framework.Server.UnauthorizedRequestException, "
    "Microsoft.TeamFoundation.Framework.Server",
    "typeKey": "UnauthorizedRequestException",
    "errorCode": 0,
    "eventId": 3000,
}


@pytest.fixture(scope="module")
def rejection_world(entryway: Instance) -> None:
    """Applied through the declarative config, which is idempotent: a rerun in one session is harmless."""
    apply_config(entryway.runtime, yaml.safe_load(REJECTION_CONFIG), source="test_token_rejection")


# --- helpers -------------------------------------------------------------------------------------------


def fresh_token(
    instance: Instance,
    tenant: str = CONTOSO_TENANT,
    client_id: str = BUILD_BOT_ID,
    secret: str = BUILD_BOT_SECRET,
    scope: str = DEVOPS_SCOPE,
) -> str:
    response = form_post(
        instance,
        f"/{tenant}/oauth2/v2.0/token",
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": scope},
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def devops(
    instance: Instance, path: str, authorization: str | None = None, *, method: str = "GET"
) -> requests.Response:
    headers = {"X-TFS-FedAuthRedirect": "Suppress"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return requests.request(
        method, f"{instance.devops}{path}", headers=headers, verify=instance.ca_bundle, timeout=30
    )


def connection_data(instance: Instance, authorization: str | None, org: str = ORG) -> requests.Response:
    return devops(instance, f"/{org}/_apis/connectionData", authorization)


def bearer(token: str) -> str:
    return f"Bearer {token}"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def assert_challenge(
    response: requests.Response, instance: Instance, tenant_id: str = CONTOSO_TENANT, *, body: bool = True
) -> None:
    """The 401 of Azure DevOps: the Entra authority to get a token from, the resource tenant, TF400813."""
    assert response.status_code == 401, response.text
    # One header line per challenge: git hands each line to credential helpers as one wwwauth[] value,
    # and Git Credential Manager reads the authority out of it with `authorization_uri="?(.+)"?`.
    challenges = response.raw.headers.getlist("WWW-Authenticate")
    assert f"Bearer authorization_uri={instance.identity}/{tenant_id}" in challenges
    assert any(c.startswith("Basic realm=") for c in challenges)
    assert response.headers["X-VSS-ResourceTenant"] == tenant_id
    if body:
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == TF400813_BODY
    else:
        assert response.content == b""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A JWS compact serialization put together by hand, for tokens PyJWT refuses to make."""
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{head}.{body}.{b64url(signature)}"


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    unsigned = compact(header, claims).rsplit(".", 1)[0]
    mac = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64url(mac)}"


def sign_with_real_key(instance: Instance, claims: dict[str, Any], **header: Any) -> str:
    """What only the identity platform can make: a token signed with its current signing key."""
    key = instance.runtime.keyring.signing_key()
    algorithm = header.pop("alg", "RS256")
    headers = {"kid": key.kid, **header}
    return jwt.encode(claims, key.private_key, algorithm=algorithm, headers=headers)


def published_jwks(instance: Instance, tenant: str = CONTOSO_TENANT) -> dict[str, dict[str, Any]]:
    """The keys as anyone can read them: discovery, then jwks_uri."""
    discovery = requests.get(
        f"{instance.identity}/{tenant}/v2.0/.well-known/openid-configuration",
        verify=instance.ca_bundle,
        timeout=30,
    ).json()
    keys = requests.get(discovery["jwks_uri"], verify=instance.ca_bundle, timeout=30).json()["keys"]
    return {key["kid"]: key for key in keys}


# --- no or unusable credentials ------------------------------------------------------------------------


@pytest.mark.parametrize("suppress", [True, False], ids=["fedauth-suppressed", "plain"])
def test_no_credential(entryway: Instance, suppress: bool) -> None:
    headers = {"X-TFS-FedAuthRedirect": "Suppress"} if suppress else {}
    response = requests.get(
        f"{entryway.devops}/{ORG}/_apis/connectionData",
        headers=headers,
        verify=entryway.ca_bundle,
        timeout=30,
    )
    assert_challenge(response, entryway)


def test_a_browser_gets_the_401_too_never_a_redirect_or_a_page(entryway: Instance) -> None:
    """Azure DevOps sends browsers to sign in; Entryway has no web UI there, and an API or git client that
    forgets `X-TFS-FedAuthRedirect: Suppress` must not get a 302 or an HTML page."""
    response = requests.get(
        f"{entryway.devops}/{ORG}/_apis/connectionData",
        headers={"Accept": "text/html,application/xhtml+xml"},
        allow_redirects=False,
        verify=entryway.ca_bundle,
        timeout=30,
    )
    assert "location" not in response.headers
    assert_challenge(response, entryway)


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Bearer", id="bearer-without-token"),
        pytest.param("Bearer ", id="bearer-blank"),
        pytest.param("Bearer garbage", id="bearer-garbage"),
        pytest.param("Bearer not a token at all", id="bearer-words"),
        pytest.param("Bearer aa.bb.cc", id="bearer-jwt-shaped-garbage"),
        pytest.param("Bearer " + b64url(b"[]") + "." + b64url(b"{}") + ".", id="bearer-header-not-an-object"),
        pytest.param(
            "Bearer " + b64url(b"{not json") + "." + b64url(b"{}") + ".", id="bearer-header-not-json"
        ),
        pytest.param("Bearer " + compact({"alg": "RS256"}, {"aud": DEVOPS_RESOURCE}), id="bearer-no-kid"),
        pytest.param("Bearer " + compact({"alg": "RS256", "kid": 7}, {}), id="bearer-kid-not-a-string"),
        pytest.param("Bearer " + compact({"alg": "RS256", "kid": "k" * 4000}, {}), id="bearer-huge-kid"),
        pytest.param("Bearer " + "a" * 20_000, id="bearer-oversized"),
        pytest.param("bearer   ", id="bearer-lowercase-blank"),
        pytest.param("Basic", id="basic-without-value"),
        pytest.param("Basic " + base64.b64encode(b"no-colon-here").decode(), id="basic-without-colon"),
        pytest.param("Basic %%%not-base64%%%", id="basic-not-base64"),
        pytest.param("Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), id="basic-not-utf8"),
        pytest.param(basic("", ""), id="basic-empty-pair"),
        pytest.param(basic("user", "not a jwt!"), id="basic-garbage-password"),
        pytest.param(basic("user", "abc123"), id="basic-pat-shaped-unknown"),
        pytest.param("Bearer " + "a1b2c3" * 14, id="bearer-pat-shaped-unknown"),
        pytest.param(basic("user", "aa.bb.cc"), id="basic-jwt-shaped-garbage"),
        pytest.param(
            "Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnagMDAuBgkqhkiC9xIBAgIGCSqGSIb3EgECAgYKKwYBBAGCNwICHgYKKwYB",
            id="negotiate",
        ),
        pytest.param("Digest username=x", id="digest"),
        pytest.param("garbage", id="no-scheme"),
    ],
)
def test_malformed_authorization_is_a_401_not_a_500(entryway: Instance, authorization: str) -> None:
    assert_challenge(connection_data(entryway, authorization), entryway)


# --- forged tokens -------------------------------------------------------------------------------------


def test_token_signed_by_a_key_entryway_does_not_publish(entryway: Instance) -> None:
    real = fresh_token(entryway)
    claims = claims_of(real)
    real_kid = jwt.get_unverified_header(real)["kid"]
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    own_kid = jwt.encode(claims, attacker, algorithm="RS256", headers={"kid": "attacker-key"})
    borrowed_kid = jwt.encode(claims, attacker, algorithm="RS256", headers={"kid": real_kid})
    assert_challenge(connection_data(entryway, bearer(own_kid)), entryway)
    assert_challenge(connection_data(entryway, bearer(borrowed_kid)), entryway)
    # The claims themselves were fine: the real token passes.
    assert connection_data(entryway, bearer(real)).status_code == 200


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
@pytest.mark.parametrize("signature", [b"", b"x"], ids=["empty-signature", "some-signature"])
def test_unsigned_token(entryway: Instance, alg: str, signature: bytes) -> None:
    real = fresh_token(entryway)
    header = {"typ": "JWT", "alg": alg, "kid": jwt.get_unverified_header(real)["kid"]}
    token = compact(header, claims_of(real), signature)
    assert_challenge(connection_data(entryway, bearer(token)), entryway)


def _hmac_secrets_from(jwk: dict[str, Any]) -> dict[str, bytes]:
    """Every way a confused verifier might turn the published RSA key into an HMAC secret."""
    public = jwt.PyJWK(jwk, algorithm="RS256").key
    assert isinstance(public, rsa.RSAPublicKey)
    n = base64.urlsafe_b64decode(jwk["n"] + "=" * (-len(jwk["n"]) % 4))
    return {
        "spki-pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "pkcs1-pem": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        "spki-der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk-json": json.dumps(jwk).encode(),
        "jwk-json-compact": json.dumps(jwk, separators=(",", ":")).encode(),
        "jwk-n-text": jwk["n"].encode(),
        "jwk-n-bytes": n,
    }


@pytest.mark.parametrize("alg", ["HS256", "HS512"])
def test_hmac_signed_with_the_published_public_key(entryway: Instance, alg: str) -> None:
    """The RS256/HS256 confusion: the attacker MACs with the public key, hoping it is used as the secret."""
    real = fresh_token(entryway)
    kid = jwt.get_unverified_header(real)["kid"]
    claims = claims_of(real)
    jwk = published_jwks(entryway)[kid]
    digest = hashlib.sha256 if alg == "HS256" else hashlib.sha512
    for name, secret in _hmac_secrets_from(jwk).items():
        header = {"typ": "JWT", "alg": alg, "kid": kid}
        if alg == "HS256":
            token = hs256(header, claims, secret)
        else:
            unsigned = compact(header, claims).rsplit(".", 1)[0]
            token = f"{unsigned}.{b64url(hmac.new(secret, unsigned.encode(), digest).digest())}"
        response = connection_data(entryway, bearer(token))
        assert response.status_code == 401, name
        assert_challenge(response, entryway)


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256"])
def test_real_key_with_another_algorithm(entryway: Instance, alg: str) -> None:
    """Only RS256 is accepted, even from the real key: the algorithm is pinned, not read from the token."""
    token = sign_with_real_key(entryway, claims_of(fresh_token(entryway)), alg=alg)
    assert_challenge(connection_data(entryway, bearer(token)), entryway)


def test_tampered_payload_under_a_real_signature(entryway: Instance) -> None:
    real = fresh_token(entryway)
    head, _payload, signature = real.split(".")
    claims = claims_of(real)
    claims["oid"] = str(uuid.uuid4())
    token = f"{head}.{b64url(json.dumps(claims).encode())}.{signature}"
    assert_challenge(connection_data(entryway, bearer(token)), entryway)


# --- claim checks, with the real signing key -----------------------------------------------------------

Tamper = Callable[[Instance, dict[str, Any], float], dict[str, Any]]


def _without(*names: str) -> Tamper:
    return lambda _i, claims, _now: {k: v for k, v in claims.items() if k not in names}


def _with(**changes: Any) -> Tamper:
    return lambda _i, claims, _now: {**claims, **changes}


ACCEPTED: list[Any] = [
    pytest.param(lambda _i, claims, _now: claims, id="untouched"),
    pytest.param(_with(aud="https://app.vssps.visualstudio.com"), id="audience-uri-form"),
    pytest.param(_with(aud="https://app.vssps.visualstudio.com/"), id="audience-uri-form-trailing-slash"),
    pytest.param(_with(aud=[DEVOPS_RESOURCE]), id="audience-a-list"),
    pytest.param(
        lambda i, claims, _now: {**claims, "iss": f"{i.identity}/{CONTOSO_TENANT}/v2.0", "ver": "2.0"},
        id="v2-issuer",
    ),
    pytest.param(lambda _i, claims, now: {**claims, "nbf": int(now) + LEEWAY - 60}, id="nbf-within-leeway"),
    pytest.param(lambda _i, claims, now: {**claims, "iat": int(now) + LEEWAY - 60}, id="iat-within-leeway"),
    pytest.param(lambda _i, claims, now: {**claims, "exp": int(now) - LEEWAY + 60}, id="exp-within-leeway"),
    pytest.param(
        _without("idtyp", "appid", "appidacr", "idp", "uti", "rh", "aio"), id="only-required-claims"
    ),
]

REFUSED: list[Any] = [
    pytest.param(_with(aud="https://graph.microsoft.com"), id="audience-graph"),
    pytest.param(_with(aud=OTHER_API_URI), id="audience-another-api"),
    pytest.param(_with(aud=str(uuid.uuid4())), id="audience-random-guid"),
    pytest.param(_with(aud=DEVOPS_RESOURCE.upper()), id="audience-upper-case"),
    pytest.param(_with(aud=""), id="audience-empty"),
    pytest.param(
        lambda i, claims, _now: {**claims, "iss": f"{i.identity}/{NORTHWIND_TENANT}/"},
        id="issuer-other-tenant",
    ),
    pytest.param(
        lambda i, claims, _now: {**claims, "iss": f"{i.identity}/{NORTHWIND_TENANT}/v2.0"},
        id="v2-issuer-other-tenant",
    ),
    pytest.param(_with(iss=f"https://sts.windows.net/{CONTOSO_TENANT}/"), id="issuer-another-authority"),
    pytest.param(
        lambda i, claims, _now: {**claims, "iss": f"{i.identity}/{CONTOSO_TENANT}"}, id="issuer-without-slash"
    ),
    pytest.param(
        lambda i, claims, _now: {**claims, "iss": f"{i.identity}/common/"}, id="issuer-tenant-independent"
    ),
    pytest.param(_with(tid=NORTHWIND_TENANT), id="tid-other-tenant"),
    pytest.param(_with(tid=CONTOSO_TENANT.upper()), id="tid-upper-case"),
    pytest.param(
        lambda i, claims, _now: {
            **claims,
            "tid": NORTHWIND_TENANT,
            "iss": f"{i.identity}/{NORTHWIND_TENANT}/",
            "idp": f"{i.identity}/{NORTHWIND_TENANT}/",
        },
        id="consistently-other-tenant",
    ),
    pytest.param(_with(oid=str(uuid.uuid4())), id="oid-of-no-member"),
    pytest.param(_without("oid"), id="no-oid"),
    pytest.param(_without("tid"), id="no-tid"),
    pytest.param(_without("aud"), id="no-aud"),
    pytest.param(_without("iss"), id="no-iss"),
    pytest.param(_without("exp"), id="no-exp"),
    pytest.param(_without("nbf"), id="no-nbf"),
    pytest.param(_without("iat"), id="no-iat"),
    pytest.param(lambda _i, claims, now: {**claims, "nbf": int(now) + LEEWAY + 60}, id="nbf-in-future"),
    pytest.param(lambda _i, claims, now: {**claims, "iat": int(now) + LEEWAY + 60}, id="iat-in-future"),
    pytest.param(lambda _i, claims, now: {**claims, "exp": int(now) - LEEWAY - 60}, id="exp-past-leeway"),
    pytest.param(_with(exp=str(2**33)), id="exp-a-string"),
    pytest.param(_with(nbf=True), id="nbf-a-boolean"),
    pytest.param(_with(exp=None), id="exp-null"),
    pytest.param(_with(tid=None), id="tid-null"),
    pytest.param(_with(aud=[]), id="audience-empty-list"),
    pytest.param(_with(aud=["https://graph.microsoft.com"]), id="audience-list-without-devops"),
]


@pytest.mark.parametrize("tamper", ACCEPTED)
def test_real_key_claims_that_are_accepted(entryway: Instance, tamper: Tamper) -> None:
    claims = tamper(entryway, claims_of(fresh_token(entryway)), entryway.clock.timestamp())
    response = connection_data(entryway, bearer(sign_with_real_key(entryway, claims)))
    assert response.status_code == 200, response.text
    assert response.json()["authenticatedUser"]["properties"]["Account"]["$value"] == BUILD_BOT_ID


@pytest.mark.parametrize("tamper", REFUSED)
def test_real_key_claims_that_are_refused(entryway: Instance, tamper: Tamper) -> None:
    claims = tamper(entryway, claims_of(fresh_token(entryway)), entryway.clock.timestamp())
    assert_challenge(connection_data(entryway, bearer(sign_with_real_key(entryway, claims))), entryway)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"[]", id="array"),
        pytest.param(b'"a string"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b'{"exp": NaN, "nbf": NaN, "iat": NaN}', id="nan-times"),
        pytest.param(b'{"exp": 1e400}', id="infinite-exp"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
    ],
)
def test_real_key_over_a_payload_that_is_not_claims(entryway: Instance, payload: bytes) -> None:
    key = entryway.runtime.keyring.signing_key()
    token = jwt.api_jws.encode(payload, key.private_key, algorithm="RS256", headers={"kid": key.kid})
    assert_challenge(connection_data(entryway, bearer(token)), entryway)


# --- real tokens that are not for this organization ----------------------------------------------------


def test_real_token_for_another_audience(entryway: Instance, rejection_world: None) -> None:
    """A genuine token of build-bot, a member of fabrikam, but minted for another API in the same tenant."""
    token = fresh_token(entryway, scope=f"{OTHER_API_URI}/.default")
    claims = claims_of(token)
    assert claims["aud"] == OTHER_API_URI
    assert claims["tid"] == CONTOSO_TENANT
    assert_challenge(connection_data(entryway, bearer(token)), entryway)


def test_real_token_of_another_tenant(entryway: Instance) -> None:
    token = fresh_token(entryway, NORTHWIND_TENANT, NORTHWIND_BOT_ID, NORTHWIND_BOT_SECRET)
    # At fabrikam (contoso) it is refused, and the challenge names contoso, the org's tenant.
    assert_challenge(connection_data(entryway, bearer(token)), entryway, CONTOSO_TENANT)
    assert_challenge(connection_data(entryway, basic("", token)), entryway, CONTOSO_TENANT)
    # At its own organization the same token is good.
    response = connection_data(entryway, bearer(token), org="northwind")
    assert response.status_code == 200, response.text


def test_real_token_of_an_app_that_is_not_a_member(entryway: Instance) -> None:
    token = fresh_token(entryway, CONTOSO_TENANT, OUTSIDER_ID, OUTSIDER_SECRET)
    claims = claims_of(token)
    assert claims["aud"] == DEVOPS_RESOURCE
    assert claims["tid"] == CONTOSO_TENANT
    assert_challenge(connection_data(entryway, bearer(token)), entryway)


def test_expired_token(entryway: Instance, rejection_world: None) -> None:
    """Issued, accepted, still accepted inside the leeway after exp, refused once exp + leeway passes.
    The token comes from a tenant with ten-minute tokens, so the session clock moves only ~16 minutes."""
    token = fresh_token(entryway, SHORT_TENANT, SHORT_BOT_ID, SHORT_BOT_SECRET)
    exp = claims_of(token)["exp"]
    assert exp - entryway.clock.timestamp() <= 600
    assert connection_data(entryway, bearer(token), org=SHORT_ORG).status_code == 200

    entryway.clock.advance(exp + LEEWAY - 60 - entryway.clock.timestamp())
    response = connection_data(entryway, bearer(token), org=SHORT_ORG)
    assert response.status_code == 200, "inside the clock-skew leeway the token still counts"

    entryway.clock.advance(120)
    assert_challenge(connection_data(entryway, bearer(token), org=SHORT_ORG), entryway, SHORT_TENANT)
    assert_challenge(connection_data(entryway, basic("x", token), org=SHORT_ORG), entryway, SHORT_TENANT)
    # A fresh token works again at once.
    fresh = fresh_token(entryway, SHORT_TENANT, SHORT_BOT_ID, SHORT_BOT_SECRET)
    assert connection_data(entryway, bearer(fresh), org=SHORT_ORG).status_code == 200


# --- accepted shapes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "parameter", "value"),
    [
        ("oauth2/v2.0/token", "scope", DEVOPS_SCOPE),
        ("oauth2/v2.0/token", "scope", "https://app.vssps.visualstudio.com/.default"),
        # az appends `/.default` to the resource it is given, slash or not; Entra keeps the slash in aud.
        ("oauth2/v2.0/token", "scope", "https://app.vssps.visualstudio.com//.default"),
        ("oauth2/token", "resource", DEVOPS_RESOURCE),
        ("oauth2/token", "resource", "https://app.vssps.visualstudio.com"),
        ("oauth2/token", "resource", "https://app.vssps.visualstudio.com/"),
        # A GUID in capitals still names the app id, which the token carries in lower case.
        ("oauth2/v2.0/token", "scope", f"{DEVOPS_RESOURCE.upper()}/.default"),
        ("oauth2/token", "resource", DEVOPS_RESOURCE.upper()),
    ],
)
def test_every_devops_token_the_identity_platform_issues_is_accepted(
    entryway: Instance, path: str, parameter: str, value: str
) -> None:
    response = form_post(
        entryway,
        f"/{CONTOSO_TENANT}/{path}",
        {
            "grant_type": "client_credentials",
            "client_id": BUILD_BOT_ID,
            "client_secret": BUILD_BOT_SECRET,
            parameter: value,
        },
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    response = connection_data(entryway, bearer(token))
    assert response.status_code == 200, (claims_of(token)["aud"], response.text)


@pytest.mark.parametrize("user", ["", "anything", "build-bot", "alice@contoso.test", "fabrikam"])
def test_basic_with_any_user_name_and_a_jwt_password_is_accepted(entryway: Instance, user: str) -> None:
    """Git Credential Manager's oauth mode and `az account get-access-token` helpers send the token as the
    Basic password, with whatever user name."""
    response = connection_data(entryway, basic(user, fresh_token(entryway)))
    assert response.status_code == 200, response.text
    assert response.json()["authenticatedUser"]["properties"]["Account"]["$value"] == BUILD_BOT_ID


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_scheme_is_case_insensitive(entryway: Instance, scheme: str) -> None:
    """`git -c http.extraheader="AUTHORIZATION: bearer <jwt>"` is how the docs show it."""
    response = connection_data(entryway, f"{scheme} {fresh_token(entryway)}")
    assert response.status_code == 200, response.text


# --- organizations and the unauthenticated probes ------------------------------------------------------


@pytest.mark.parametrize("authenticated", [False, True])
def test_unknown_organization_is_a_404_wrapped_exception(entryway: Instance, authenticated: bool) -> None:
    authorization = bearer(fresh_token(entryway)) if authenticated else None
    response = connection_data(entryway, authorization, org="no-such-org")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["$id", "innerException", "message", "typeName", "typeKey", "errorCode", "eventId"]
    assert body["$id"] == "1"
    assert body["innerException"] is None
    assert "no-such-org" in body["message"]
    assert body["typeKey"] == "VssServiceException"
    assert "WWW-Authenticate" not in response.headers


@pytest.mark.parametrize(
    ("org", "tenant"),
    [("fabrikam", CONTOSO_TENANT), ("FABRIKAM", CONTOSO_TENANT), ("northwind", NORTHWIND_TENANT)],
)
@pytest.mark.parametrize("path", ["/{org}", "/{org}/"])
def test_head_on_the_organization_discovers_its_tenant(
    entryway: Instance, org: str, tenant: str, path: str
) -> None:
    """Git Credential Manager's tenant discovery: an unauthenticated HEAD, read for the challenge."""
    response = devops(entryway, path.format(org=org), method="HEAD")
    assert_challenge(response, entryway, tenant, body=False)


def test_get_on_the_organization_unauthenticated(entryway: Instance) -> None:
    assert_challenge(devops(entryway, f"/{ORG}"), entryway)


def test_get_on_the_organization_authenticated(entryway: Instance) -> None:
    response = devops(entryway, f"/{ORG}", bearer(fresh_token(entryway)))
    assert response.status_code == 200, response.text
    assert response.json()["name"] == ORG


@pytest.mark.parametrize("origin", ["identity", "devops"])
def test_health(entryway: Instance, origin: str) -> None:
    base = entryway.identity if origin == "identity" else entryway.devops
    response = requests.get(f"{base}/health", verify=entryway.ca_bundle, timeout=30)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": origin}


def test_resource_uri_in_capitals_gives_a_token_the_devops_service_accepts(entryway: Instance) -> None:
    """Scheme and host are case-insensitive: the token's audience is written in lower case."""
    response = requests.post(
        f"{entryway.identity}/{entryway.demo.tenant_id}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": entryway.demo.client_id,
            "client_secret": entryway.demo.client_secret,
            "resource": "HTTPS://APP.VSSPS.VISUALSTUDIO.COM",
        },
        verify=entryway.ca_bundle,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert (
        jwt.decode(token, options={"verify_signature": False})["aud"] == "https://app.vssps.visualstudio.com"
    )
    accepted = requests.get(
        f"{entryway.devops}/{entryway.demo.organization}/_apis/connectionData",
        headers={"Authorization": f"Bearer {token}"},
        verify=entryway.ca_bundle,
        timeout=30,
    )
    assert accepted.status_code == 200, accepted.text
