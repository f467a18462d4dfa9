"""Client authentication by assertion at the token endpoint, raw HTTP against the real server: certificate
assertions (private_key_jwt as msal builds them) and federated tokens of an external OIDC issuer served over
TLS, each refusal with Entra's code. The real clients drive the same paths in tests/e2e."""

from __future__ import annotations

import base64
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests
import yaml

from entryway.config.declarative import apply_config
from tests.conftest import (
    CONTOSO_TENANT,
    DEVOPS_RESOURCE,
    DEVOPS_SCOPE,
    WORKLOAD_BOT_ID,
    WORKLOAD_CONFIG,
    WORKLOAD_NOFIC_ID,
    WORKLOAD_OUTSIDER_ID,
    Instance,
    OidcIssuer,
    WorkloadCertificate,
    form_post,
    make_certificate,
    register_certificate,
    register_federated_credential,
)

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_PATH = f"/{CONTOSO_TENANT}/oauth2/v2.0/token"
SUBJECT = "system:serviceaccount:ci:builder"


class Kit:
    def __init__(self, instance: Instance, cert: WorkloadCertificate, expired: WorkloadCertificate) -> None:
        self.instance = instance
        self.cert = cert
        self.expired = expired

    @property
    def endpoint(self) -> str:
        return f"{self.instance.identity}{TOKEN_PATH}"

    def assertion(
        self,
        *,
        cert: WorkloadCertificate | None = None,
        alg: str = "RS256",
        headers: dict[str, Any] | None = None,
        key: Any = None,
        **claims: Any,
    ) -> str:
        cert = cert or self.cert
        now = self.instance.clock.timestamp()
        payload: dict[str, Any] = {
            "aud": self.endpoint,
            "iss": WORKLOAD_BOT_ID,
            "sub": WORKLOAD_BOT_ID,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + 600,
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        if headers is None:
            headers = {"x5t": base64.urlsafe_b64encode(cert.sha1).decode()}
        return jwt.encode(payload, key or cert.key, algorithm=alg, headers=headers)


def token_request(
    instance: Instance,
    assertion: str,
    *,
    client_id: str = WORKLOAD_BOT_ID,
    path: str = TOKEN_PATH,
    assertion_type: str = JWT_BEARER,
    **extra: str,
) -> requests.Response:
    data = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_assertion_type": assertion_type,
        "client_assertion": assertion,
        "scope": DEVOPS_SCOPE,
        **extra,
    }
    return form_post(instance, path, data)


def assert_refused(response: requests.Response, code: int, status: int = 401) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert response.status_code == status, body
    assert body["error_codes"] == [code], body
    assert body["error_description"].startswith(f"AADSTS{code}: "), body
    return body


@pytest.fixture(scope="module")
def kit(entryway: Instance, oidc_issuer: OidcIssuer) -> Kit:
    apply_config(entryway.runtime, yaml.safe_load(WORKLOAD_CONFIG))
    cert = make_certificate("workload-bot")
    expired = make_certificate(
        "workload-bot-old",
        not_before=datetime.now(UTC) - timedelta(days=400),
        not_after=datetime.now(UTC) - timedelta(days=1),
    )
    register_certificate(entryway, WORKLOAD_BOT_ID, cert)
    register_certificate(entryway, WORKLOAD_BOT_ID, expired)
    register_federated_credential(
        entryway, WORKLOAD_BOT_ID, name="ci-builder", issuer=oidc_issuer.url, subject=SUBJECT
    )
    register_federated_credential(
        entryway,
        WORKLOAD_OUTSIDER_ID,
        name="prod-deploys",
        issuer=oidc_issuer.url,
        expression="claims['sub'] startswith 'repo:contoso/app:' and claims['environment'] eq 'prod'",
    )
    return Kit(entryway, cert, expired)


# --- certificate assertions ----------------------------------------------------------------------------------


def test_rs256_assertion_with_sha1_thumbprint_authenticates_the_app(kit: Kit) -> None:
    response = token_request(kit.instance, kit.assertion())
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == DEVOPS_RESOURCE
    assert claims["appid"] == WORKLOAD_BOT_ID
    assert claims["appidacr"] == "2"


def test_ps256_with_unpadded_sha256_thumbprint_x5c_line_breaks_float_times_on_the_v1_endpoint(
    kit: Kit,
) -> None:
    """What msal sends with a public certificate, here to the v1 endpoint named by the tenant's domain."""
    now = kit.instance.clock.timestamp() + 0.26
    chain = "\n".join(textwrap.wrap(base64.b64encode(kit.cert.der).decode(), 64))
    headers = {"x5t#S256": base64.urlsafe_b64encode(kit.cert.sha256).decode().rstrip("="), "x5c": [chain]}
    path = "/contoso.test/oauth2/token"
    assertion = kit.assertion(
        alg="PS256", headers=headers, aud=f"{kit.instance.identity}{path}", iat=now, exp=now + 600.5
    )
    response = form_post(
        kit.instance,
        path,
        {
            "grant_type": "client_credentials",
            "client_id": WORKLOAD_BOT_ID,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion,
            "resource": DEVOPS_RESOURCE,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["resource"] == DEVOPS_RESOURCE


def test_audience_may_name_the_tenant_by_id_when_the_url_names_its_domain(kit: Kit) -> None:
    assertion = kit.assertion(aud=f"{kit.instance.identity}/{CONTOSO_TENANT}/oauth2/v2.0/token")
    response = token_request(kit.instance, assertion, path="/contoso.test/oauth2/v2.0/token")
    assert response.status_code == 200, response.text


def test_unknown_thumbprint_is_refused(kit: Kit) -> None:
    stranger = make_certificate("stranger")
    body = assert_refused(token_request(kit.instance, kit.assertion(cert=stranger)), 700027)
    assert stranger.sha1.hex().upper() in body["error_description"]
    assert "not registered" in body["error_description"]


def test_x5c_that_is_not_the_registered_certificate_is_refused(kit: Kit) -> None:
    stranger = make_certificate("stranger")
    headers = {
        "x5t": base64.urlsafe_b64encode(kit.cert.sha1).decode(),
        "x5c": [base64.b64encode(stranger.der).decode()],
    }
    assert_refused(token_request(kit.instance, kit.assertion(headers=headers, key=stranger.key)), 700027)


def test_signature_by_another_key_is_refused(kit: Kit) -> None:
    other_key = make_certificate("other").key
    body = assert_refused(token_request(kit.instance, kit.assertion(key=other_key)), 700027)
    assert "invalid signature" in body["error_description"]


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_unsigned_and_shared_secret_assertions_are_refused(kit: Kit, alg: str) -> None:
    header = {"x5t": base64.urlsafe_b64encode(kit.cert.sha1).decode()}
    now = kit.instance.clock.timestamp()
    payload = {
        "aud": kit.endpoint,
        "iss": WORKLOAD_BOT_ID,
        "sub": WORKLOAD_BOT_ID,
        "jti": "x",
        "exp": now + 600,
    }
    key = None if alg == "none" else kit.cert.cert_pem.encode()  # the public certificate as an HMAC secret
    if alg == "none":
        assertion = jwt.encode(payload, None, algorithm="none", headers=header)
    else:
        # PyJWT refuses to use a PEM as an HMAC key; forge the token by hand as an attacker would.
        import hashlib
        import hmac
        import json

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        signing_input = (
            b64(json.dumps({"alg": "HS256", "typ": "JWT", **header}).encode())
            + "."
            + b64(json.dumps(payload).encode())
        )
        signature = hmac.new(key or b"", signing_input.encode(), hashlib.sha256).digest()
        assertion = f"{signing_input}.{b64(signature)}"
    assert_refused(token_request(kit.instance, assertion), 50027, status=400)


def test_wrong_audience_is_refused(kit: Kit) -> None:
    wrong = f"{kit.instance.identity}/{CONTOSO_TENANT}/oauth2/v2.0/authorize"
    assert_refused(token_request(kit.instance, kit.assertion(aud=wrong)), 700023)


def test_subject_other_than_the_client_is_refused(kit: Kit) -> None:
    assert_refused(token_request(kit.instance, kit.assertion(sub=str(uuid.uuid4()))), 700021)


def test_expired_assertion_is_refused(kit: Kit) -> None:
    now = kit.instance.clock.timestamp()
    body = assert_refused(token_request(kit.instance, kit.assertion(iat=now - 1500, exp=now - 900)), 700024)
    assert "not within its valid time range" in body["error_description"]


def test_assertion_not_yet_valid_is_refused(kit: Kit) -> None:
    now = kit.instance.clock.timestamp()
    assertion = kit.assertion(iat=now + 900, nbf=now + 900, exp=now + 1500)
    assert_refused(token_request(kit.instance, assertion), 700024)


def test_assertion_valid_for_more_than_a_day_is_refused(kit: Kit) -> None:
    now = kit.instance.clock.timestamp()
    assert_refused(token_request(kit.instance, kit.assertion(exp=now + 2 * 86400)), 700024)


def test_the_same_assertion_may_be_presented_again_until_it_expires(kit: Kit) -> None:
    """msal signs one assertion and sends it for nine minutes (CertificateCredential asking for two resources
    does), so Entra cannot be spending a jti on first use."""
    assertion = kit.assertion()
    assert token_request(kit.instance, assertion).status_code == 200
    assert token_request(kit.instance, assertion).status_code == 200


def test_another_assertion_reusing_a_jti_is_refused(kit: Kit) -> None:
    assert token_request(kit.instance, kit.assertion(jti="reused-jti-1")).status_code == 200
    assert_refused(token_request(kit.instance, kit.assertion(jti="reused-jti-1")), 70002)


def test_jti_stays_recorded_when_the_grant_then_fails(kit: Kit) -> None:
    """The assertion authenticated the client before the grant refused the scope: its jti is taken all the same."""
    first = kit.assertion(jti="reused-jti-2")
    assert_refused(token_request(kit.instance, first, scope="api://nowhere/.default"), 500011, status=400)
    assert_refused(token_request(kit.instance, kit.assertion(jti="reused-jti-2")), 70002)


def test_assertion_without_jti_is_refused(kit: Kit) -> None:
    assert_refused(token_request(kit.instance, kit.assertion(jti=None)), 50027, status=400)


def test_expired_certificate_is_refused(kit: Kit) -> None:
    body = assert_refused(token_request(kit.instance, kit.assertion(cert=kit.expired)), 700027)
    assert "expired" in body["error_description"]


def test_unsupported_assertion_type_is_refused(kit: Kit) -> None:
    response = token_request(
        kit.instance, kit.assertion(), assertion_type="urn:ietf:params:oauth:saml2-bearer"
    )
    assert_refused(response, 90011, status=400)


# --- federated assertions ------------------------------------------------------------------------------------


def test_federated_token_with_trailing_newline_authenticates_the_app_and_may_be_reused(
    kit: Kit, oidc_issuer: OidcIssuer
) -> None:
    """azure-identity sends the token file as read, newline included, for up to 10 minutes."""
    token = oidc_issuer.token(SUBJECT, now=kit.instance.clock.timestamp(), jti=str(uuid.uuid4())) + "\n"
    for _ in range(2):
        response = token_request(kit.instance, token)
        assert response.status_code == 200, response.text
        claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
        assert (claims["appid"], claims["appidacr"]) == (WORKLOAD_BOT_ID, "2")


def test_claims_matching_expression(kit: Kit, oidc_issuer: OidcIssuer) -> None:
    now = kit.instance.clock.timestamp()
    good = oidc_issuer.token("repo:contoso/app:environment:prod", now=now, environment="prod")
    assert token_request(kit.instance, good, client_id=WORKLOAD_OUTSIDER_ID).status_code == 200
    staging = oidc_issuer.token("repo:contoso/app:environment:staging", now=now, environment="staging")
    assert_refused(token_request(kit.instance, staging, client_id=WORKLOAD_OUTSIDER_ID), 70021, status=400)


def test_app_without_federated_credentials(kit: Kit, oidc_issuer: OidcIssuer) -> None:
    token = oidc_issuer.token(SUBJECT, now=kit.instance.clock.timestamp())
    body = assert_refused(token_request(kit.instance, token, client_id=WORKLOAD_NOFIC_ID), 70025)
    assert "has no configured federated identity credentials" in body["error_description"]


def test_issuer_mismatch(kit: Kit, oidc_issuer: OidcIssuer) -> None:
    """An issuer no credential trusts is never contacted."""
    token = oidc_issuer.token(SUBJECT, now=kit.instance.clock.timestamp(), issuer="https://issuer.invalid")
    body = assert_refused(token_request(kit.instance, token), 700211)
    assert "'https://issuer.invalid'" in body["error_description"]


def test_subject_mismatch_is_case_sensitive(kit: Kit, oidc_issuer: OidcIssuer) -> None:
    token = oidc_issuer.token(SUBJECT.upper(), now=kit.instance.clock.timestamp())
    body = assert_refused(token_request(kit.instance, token), 700213)
    assert SUBJECT.upper() in body["error_description"]


def test_audience_mismatch(kit: Kit, oidc_issuer: OidcIssuer) -> None:
    token = oidc_issuer.token(SUBJECT, now=kit.instance.clock.timestamp(), audience="api://SomethingElse")
    assert_refused(token_request(kit.instance, token), 700212)


def test_unknown_signing_key_at_the_issuer(kit: Kit, oidc_issuer: OidcIssuer) -> None:
    rogue = make_certificate("rogue").key
    token = oidc_issuer.token(SUBJECT, now=kit.instance.clock.timestamp(), key=rogue, kid="rogue-key")
    body = assert_refused(token_request(kit.instance, token), 7000272)
    assert "rogue-key" in body["error_description"]


def test_known_kid_with_a_forged_signature(kit: Kit, oidc_issuer: OidcIssuer) -> None:
    rogue = make_certificate("rogue").key
    token = oidc_issuer.token(SUBJECT, now=kit.instance.clock.timestamp(), key=rogue)
    assert_refused(token_request(kit.instance, token), 50027)


def test_expired_external_token(kit: Kit, oidc_issuer: OidcIssuer) -> None:
    token = oidc_issuer.token(SUBJECT, now=kit.instance.clock.timestamp() - 7200, lifetime=3600)
    assert_refused(token_request(kit.instance, token), 700024)


def test_keys_are_cached(kit: Kit, oidc_issuer: OidcIssuer) -> None:
    now = kit.instance.clock.timestamp()
    assert token_request(kit.instance, oidc_issuer.token(SUBJECT, now=now)).status_code == 200
    fetches = oidc_issuer.jwks_fetches
    assert token_request(kit.instance, oidc_issuer.token(SUBJECT, now=now)).status_code == 200
    assert oidc_issuer.jwks_fetches == fetches


def test_issuer_whose_tls_certificate_is_not_trusted_yields_no_keys(
    kit: Kit, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Entryway trusts the system's roots, its own CA and ENTRYWAY_TRUSTED_CA; this issuer's CA is none."""
    untrusted = OidcIssuer(tmp_path_factory.mktemp("untrusted-issuer"))
    try:
        register_federated_credential(
            kit.instance, WORKLOAD_OUTSIDER_ID, name="untrusted", issuer=untrusted.url, subject=SUBJECT
        )
        token = untrusted.token(SUBJECT, now=kit.instance.clock.timestamp())
        assert_refused(token_request(kit.instance, token, client_id=WORKLOAD_OUTSIDER_ID), 7000272)
        assert untrusted.jwks_fetches == 0
    finally:
        untrusted.stop()
