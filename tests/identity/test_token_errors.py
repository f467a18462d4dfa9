"""Every error the token endpoint and the discovery documents answer, in Entra's words and shape, and the
successes that sit next to them (client_secret_basic, the v1 endpoint, discovery, keys).

The texts are Entra's own (notes/entra-errors.md): clients and people search for the AADSTS code and the
sentence, so both are part of the wire contract. Every request runs against the real servers over TLS.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import jwt
import msal
import pytest
import requests

from entryway.identity.directory.service import DirectoryService
from tests.conftest import (
    BUILD_BOT_ID,
    BUILD_BOT_SECRET,
    CONTOSO_TENANT,
    DEVOPS_RESOURCE,
    DEVOPS_SCOPE,
    Instance,
)

CONTOSO_DOMAIN = "contoso.test"
# The tenant's display name, which Entra names in 700016 and 500011 (the config gives none: the domain).
CONTOSO_DISPLAY_NAME = "contoso.test"
DEVOPS_URI = "https://app.vssps.visualstudio.com"
UNKNOWN_TENANT = "11111111-2222-3333-4444-555555555555"
UNKNOWN_DOMAIN = "no-such-tenant.example"
UNKNOWN_CLIENT = "0f0e0d0c-0b0a-4998-8776-655443322110"

ENTRA_ERROR_KEYS = [
    "error",
    "error_description",
    "error_codes",
    "timestamp",
    "trace_id",
    "correlation_id",
    "error_uri",
]
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z")

TENANT_NOT_FOUND = (
    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the "
    "correct cloud. Check with your subscription administrator, this may happen if there are no active "
    "subscriptions for the tenant."
)
RESOURCE_NOT_FOUND = (
    "The resource principal named {resource} was not found in the tenant named {directory}. This can happen if "
    "the application has not been installed by the administrator of the tenant or consented to by any user in "
    "the tenant. You might have sent your authentication request to the wrong tenant."
)
MISSING_PARAMETER = "The request body must contain the following parameter: '{name}'."


def token_path(tenant: str, version: int = 2) -> str:
    return f"/{tenant}/oauth2/v2.0/token" if version == 2 else f"/{tenant}/oauth2/token"


def client_credentials(**overrides: str | None) -> dict[str, str]:
    """A valid v2 client-credentials body for build-bot; an override of None drops the parameter."""
    body: dict[str, str | None] = {
        "grant_type": "client_credentials",
        "client_id": BUILD_BOT_ID,
        "client_secret": BUILD_BOT_SECRET,
        "scope": DEVOPS_SCOPE,
    }
    body.update(overrides)
    return {name: value for name, value in body.items() if value is not None}


def v1_client_credentials(**overrides: str | None) -> dict[str, str]:
    return client_credentials(**{"scope": None, "resource": DEVOPS_RESOURCE, **overrides})


class Call:
    """One request to the identity platform, sent with a fresh `client-request-id`, as MSAL sends it."""

    def __init__(
        self,
        instance: Instance,
        path: str,
        *,
        method: str = "POST",
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.instance = instance
        self.correlation_id = str(uuid.uuid4())
        self.response = requests.request(
            method,
            f"{instance.identity}{path}",
            data=data,
            headers={"client-request-id": self.correlation_id, **(headers or {})},
            verify=instance.ca_bundle,
            timeout=30,
        )

    def expect_error(self, *, status: int, error: str, code: int, message: str) -> dict[str, Any]:
        """The response is Entra's error body, key for key, with `message` as the sentence after the code."""
        response = self.response
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        assert "no-store" in response.headers["cache-control"]
        body: dict[str, Any] = response.json()
        assert list(body) == ENTRA_ERROR_KEYS
        assert body["error"] == error
        assert body["error_codes"] == [code]

        assert TIMESTAMP.fullmatch(body["timestamp"]), body["timestamp"]
        at = datetime.strptime(body["timestamp"], "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=UTC)
        # Written by the injectable clock, which the session moves ahead of the wall clock.
        assert abs(at - self.instance.clock.now()) < timedelta(minutes=1)

        assert GUID.fullmatch(body["trace_id"])
        assert body["trace_id"] == response.headers["x-ms-request-id"]
        assert body["correlation_id"] == self.correlation_id
        assert body["error_uri"] == f"{self.instance.identity}/error?code={code}"
        assert body["error_description"] == (
            f"AADSTS{code}: {message} Trace ID: {body['trace_id']} "
            f"Correlation ID: {self.correlation_id} Timestamp: {body['timestamp']}"
        )
        return body

    def expect_token(self) -> dict[str, Any]:
        assert self.response.status_code == 200, self.response.text
        body: dict[str, Any] = self.response.json()
        assert body["token_type"] == "Bearer"
        assert self.response.headers["client-request-id"] == self.correlation_id
        return body


def post(
    instance: Instance,
    tenant: str,
    data: Any,
    *,
    version: int = 2,
    headers: dict[str, str] | None = None,
) -> Call:
    return Call(instance, token_path(tenant, version), data=data, headers=headers)


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def get_json(instance: Instance, path: str) -> dict[str, Any]:
    response = requests.get(f"{instance.identity}{path}", verify=instance.ca_bundle, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body: dict[str, Any] = response.json()
    return body


# --- tenants -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 1])
@pytest.mark.parametrize("tenant", [UNKNOWN_TENANT, UNKNOWN_DOMAIN])
def test_unknown_tenant_at_the_token_endpoint(entryway: Instance, tenant: str, version: int) -> None:
    body = client_credentials() if version == 2 else v1_client_credentials()
    post(entryway, tenant, body, version=version).expect_error(
        status=400, error="invalid_request", code=90002, message=TENANT_NOT_FOUND.format(tenant=tenant)
    )


@pytest.mark.parametrize(
    "path", ["/{tenant}/v2.0/.well-known/openid-configuration", "/{tenant}/.well-known/openid-configuration"]
)
@pytest.mark.parametrize("tenant", [UNKNOWN_TENANT, UNKNOWN_DOMAIN])
def test_unknown_tenant_at_discovery_is_invalid_tenant(entryway: Instance, tenant: str, path: str) -> None:
    Call(entryway, path.format(tenant=tenant), method="GET").expect_error(
        status=400, error="invalid_tenant", code=90002, message=TENANT_NOT_FOUND.format(tenant=tenant)
    )


@pytest.mark.parametrize("tenant", ["invalid_tenant", "contoso_test.example"])
@pytest.mark.parametrize("version", [2, 1])
def test_tenant_segment_that_is_neither_guid_nor_dns_name(
    entryway: Instance, tenant: str, version: int
) -> None:
    body = client_credentials() if version == 2 else v1_client_credentials()
    post(entryway, tenant, body, version=version).expect_error(
        status=400,
        error="invalid_request",
        code=900023,
        message=f"Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid external domain.",
    )


def test_tenant_segment_that_is_neither_guid_nor_dns_name_at_discovery(entryway: Instance) -> None:
    Call(entryway, "/invalid_tenant/v2.0/.well-known/openid-configuration", method="GET").expect_error(
        status=400,
        error="invalid_request",
        code=900023,
        message="Specified tenant identifier 'invalid_tenant' is neither a valid DNS name, nor a valid external "
        "domain.",
    )


def test_tenant_by_domain_issues_tokens_of_the_tenant(entryway: Instance) -> None:
    token = post(entryway, CONTOSO_DOMAIN, client_credentials()).expect_token()["access_token"]
    assert claims_of(token)["tid"] == CONTOSO_TENANT


# --- clients -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 1])
def test_unknown_client_names_the_tenant_display_name(entryway: Instance, version: int) -> None:
    body = client_credentials(client_id=UNKNOWN_CLIENT)
    if version == 1:
        body = v1_client_credentials(client_id=UNKNOWN_CLIENT)
    post(entryway, CONTOSO_TENANT, body, version=version).expect_error(
        status=400,
        error="unauthorized_client",
        code=700016,
        message=(
            f"Application with identifier '{UNKNOWN_CLIENT}' was not found in the directory "
            f"'{CONTOSO_DISPLAY_NAME}'. This can happen if the application has not been installed by the "
            "administrator of the tenant or consented to by any user in the tenant. You may have sent your "
            "authentication request to the wrong tenant."
        ),
    )


def test_client_of_another_tenant_is_not_found_in_this_one(entryway: Instance) -> None:
    """build-bot lives in contoso; asked for at northwind it does not exist."""
    northwind = "northwind.test"
    post(entryway, northwind, client_credentials()).expect_error(
        status=400,
        error="unauthorized_client",
        code=700016,
        message=(
            f"Application with identifier '{BUILD_BOT_ID}' was not found in the directory 'northwind.test'. "
            "This can happen if the application has not been installed by the administrator of the tenant or "
            "consented to by any user in the tenant. You may have sent your authentication request to the "
            "wrong tenant."
        ),
    )


@pytest.mark.parametrize("client_id", ["build-bot", "not-a-guid-at-all"])
def test_client_id_that_is_not_a_guid(entryway: Instance, client_id: str) -> None:
    post(entryway, CONTOSO_TENANT, client_credentials(client_id=client_id)).expect_error(
        status=400,
        error="unauthorized_client",
        code=700038,
        message=f"{client_id} is not a valid application identifier.",
    )


def test_wrong_secret(entryway: Instance) -> None:
    post(entryway, CONTOSO_TENANT, client_credentials(client_secret="not-the-secret")).expect_error(
        status=401,
        error="invalid_client",
        code=7000215,
        message=(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
            f"value, not the client secret ID, for a secret added to app '{BUILD_BOT_ID}'."
        ),
    )


def test_wrong_secret_through_msal(entryway: Instance) -> None:
    app = msal.ConfidentialClientApplication(
        BUILD_BOT_ID,
        client_credential="not-the-secret",
        authority=entryway.authority(CONTOSO_TENANT),
        instance_discovery=False,
    )
    result = app.acquire_token_for_client([DEVOPS_SCOPE])
    assert "access_token" not in result
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert GUID.fullmatch(result["correlation_id"])


def test_expired_secret(entryway: Instance) -> None:
    """A secret that worked a minute ago is refused once its expiry passes, with 7000222, not 7000215."""
    runtime = entryway.runtime
    with runtime.db.unit_of_work() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        tenant = directory.find_tenant(CONTOSO_TENANT)
        app, _sp = directory.create_application(tenant, f"short-lived-secret-{uuid.uuid4()}")
        secret = directory.add_client_secret(app, expires_at=runtime.clock.now() + timedelta(seconds=60))
        client_id = app.app_id
    assert secret.value is not None
    body = client_credentials(client_id=client_id, client_secret=secret.value)

    token = post(entryway, CONTOSO_TENANT, body).expect_token()["access_token"]
    assert claims_of(token)["appid"] == client_id

    # Forward only, and only just past the expiry: the clock is the whole session's.
    entryway.clock.advance(timedelta(seconds=61))
    post(entryway, CONTOSO_TENANT, body).expect_error(
        status=401,
        error="invalid_client",
        code=7000222,
        message=(
            f"The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to "
            "create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate "
            "credentials for added security: https://aka.ms/certCreds."
        ),
    )


@pytest.mark.parametrize("secret", [None, ""])
@pytest.mark.parametrize("version", [2, 1])
def test_missing_secret(entryway: Instance, secret: str | None, version: int) -> None:
    body = client_credentials(client_secret=secret)
    if version == 1:
        body = v1_client_credentials(client_secret=secret)
    post(entryway, CONTOSO_TENANT, body, version=version).expect_error(
        status=401,
        error="invalid_client",
        code=7000216,
        message="'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' "
        "grant type.",
    )


def test_client_secret_basic(entryway: Instance) -> None:
    """RFC 6749 section 2.3.1: the client id and secret, form-urlencoded, in an HTTP Basic header."""
    pair = f"{quote(BUILD_BOT_ID, safe='')}:{quote(BUILD_BOT_SECRET, safe='')}"
    headers = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    body = client_credentials(client_id=None, client_secret=None)
    result = post(entryway, CONTOSO_TENANT, body, headers=headers).expect_token()
    claims = claims_of(result["access_token"])
    assert claims["appid"] == BUILD_BOT_ID
    assert claims["appidacr"] == "1"
    assert claims["aud"] == DEVOPS_RESOURCE


def test_client_secret_basic_with_a_wrong_secret(entryway: Instance) -> None:
    pair = f"{BUILD_BOT_ID}:not-the-secret"
    headers = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    body = client_credentials(client_id=None, client_secret=None)
    post(entryway, CONTOSO_TENANT, body, headers=headers).expect_error(
        status=401,
        error="invalid_client",
        code=7000215,
        message=(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
            f"value, not the client secret ID, for a secret added to app '{BUILD_BOT_ID}'."
        ),
    )


# --- resources and scopes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "resource"),
    [
        # Key Vault: a Microsoft resource Entryway does not have (Microsoft Graph it has: identity/web/graph.py).
        ("https://vault.azure.net/.default", "https://vault.azure.net"),
        ("cfa8b339-82a2-471a-a3c9-0fc0be7a4093/.default", "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"),
        ("api://no-such-api/.default", "api://no-such-api"),
    ],
)
def test_unknown_resource_in_v2_scope(entryway: Instance, scope: str, resource: str) -> None:
    post(entryway, CONTOSO_TENANT, client_credentials(scope=scope)).expect_error(
        status=400,
        error="invalid_resource",
        code=500011,
        message=RESOURCE_NOT_FOUND.format(resource=resource, directory=CONTOSO_DISPLAY_NAME),
    )


@pytest.mark.parametrize("resource", ["https://vault.azure.net", "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"])
def test_unknown_resource_at_v1(entryway: Instance, resource: str) -> None:
    post(entryway, CONTOSO_TENANT, v1_client_credentials(resource=resource), version=1).expect_error(
        status=400,
        error="invalid_resource",
        code=500011,
        message=RESOURCE_NOT_FOUND.format(resource=resource, directory=CONTOSO_DISPLAY_NAME),
    )


@pytest.mark.parametrize(
    "scope",
    [
        f"{DEVOPS_RESOURCE}/user_impersonation",
        f"{DEVOPS_URI}/user_impersonation",
        DEVOPS_RESOURCE,
        f"{DEVOPS_SCOPE} {DEVOPS_RESOURCE}/user_impersonation",
    ],
)
def test_client_credentials_scope_without_default(entryway: Instance, scope: str) -> None:
    post(entryway, CONTOSO_TENANT, client_credentials(scope=scope)).expect_error(
        status=400,
        error="invalid_scope",
        code=1002012,
        message=(
            f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
            "value with /.default suffixed to the resource identifier (application ID URI)."
        ),
    )


def test_two_resources_in_one_scope(entryway: Instance) -> None:
    scope = f"{DEVOPS_SCOPE} https://graph.microsoft.com/.default"
    post(entryway, CONTOSO_TENANT, client_credentials(scope=scope)).expect_error(
        status=400,
        error="invalid_scope",
        code=28000,
        message=(
            "Provided value for the input parameter scope is not valid because it contains more than one "
            f"resource. Scope {scope} is not valid."
        ),
    )


# --- grant types and parameters ------------------------------------------------------------------------


@pytest.mark.parametrize("grant_type", ["password2", "implicit", "urn:example:grant"])
def test_unsupported_grant_type_v2(entryway: Instance, grant_type: str) -> None:
    post(entryway, CONTOSO_TENANT, client_credentials(grant_type=grant_type)).expect_error(
        status=400,
        error="unsupported_grant_type",
        code=70003,
        message=f"The app requested an unsupported grant type '{grant_type}'.",
    )


def test_unsupported_grant_type_v1_words_it_differently(entryway: Instance) -> None:
    body = v1_client_credentials(grant_type="client_credentials1")
    post(entryway, CONTOSO_TENANT, body, version=1).expect_error(
        status=400,
        error="unsupported_grant_type",
        code=70003,
        message="The access grant 'client_credentials1' is not supported.",
    )


@pytest.mark.parametrize(
    ("version", "missing"),
    [(2, "grant_type"), (2, "client_id"), (2, "scope"), (1, "grant_type"), (1, "client_id"), (1, "resource")],
)
@pytest.mark.parametrize("empty", [False, True], ids=["absent", "empty"])
def test_missing_parameter(entryway: Instance, version: int, missing: str, empty: bool) -> None:
    value = "" if empty else None
    body = client_credentials(**{missing: value})
    if version == 1:
        body = v1_client_credentials(**{missing: value})
    post(entryway, CONTOSO_TENANT, body, version=version).expect_error(
        status=400, error="invalid_request", code=900144, message=MISSING_PARAMETER.format(name=missing)
    )


@pytest.mark.parametrize("name", ["client_id", "scope", "grant_type", "client_secret"])
def test_duplicated_parameter(entryway: Instance, name: str) -> None:
    pairs = list(client_credentials().items())
    pairs.append((name, dict(pairs)[name]))
    post(entryway, CONTOSO_TENANT, pairs).expect_error(
        status=400,
        error="invalid_request",
        code=9000411,
        message=f"The request is not properly formatted. The parameter '{name}' is duplicated.",
    )


_FORM = "application/x-www-form-urlencoded"
_VALID_FORM = "&".join(f"{k}={quote(v, safe='')}" for k, v in client_credentials().items())


@pytest.mark.parametrize(
    ("content_type", "payload"),
    [
        pytest.param("application/json", json.dumps(client_credentials()).encode(), id="json"),
        pytest.param("text/plain", _VALID_FORM.encode(), id="form-as-text-plain"),
        pytest.param(None, _VALID_FORM.encode(), id="no-content-type"),
        pytest.param(_FORM, _VALID_FORM.encode() + b"&note=\xff\xfe", id="invalid-utf8"),
        pytest.param(_FORM, _VALID_FORM.encode() + b"&note=%ff%fe", id="invalid-utf8-percent-encoded"),
        pytest.param(_FORM, _VALID_FORM.encode() + b"&pad=" + b"x" * 300_000, id="oversized-form"),
        pytest.param(_FORM, _VALID_FORM.encode() + b"&pad=" + b"x" * 2_000_000, id="oversized-request"),
    ],
)
def test_body_entra_does_not_read_is_missing_grant_type(
    entryway: Instance, content_type: str | None, payload: bytes
) -> None:
    """Entra does not parse such a body at all, and then finds no grant_type in it (notes section 7)."""
    headers = {"Content-Type": content_type} if content_type else {}
    call = post(entryway, CONTOSO_TENANT, payload, headers=headers)
    if content_type is None:
        # requests sends bytes without a Content-Type; make sure the case is the one meant.
        assert "Content-Type" not in call.response.request.headers
    call.expect_error(
        status=400, error="invalid_request", code=900144, message=MISSING_PARAMETER.format(name="grant_type")
    )


def test_parameters_in_the_query_string_are_ignored(entryway: Instance) -> None:
    query = _VALID_FORM
    call = Call(entryway, f"{token_path(CONTOSO_TENANT)}?{query}", data={"note": "x"})
    call.expect_error(
        status=400, error="invalid_request", code=900144, message=MISSING_PARAMETER.format(name="grant_type")
    )


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("version", [2, 1])
def test_token_endpoint_only_accepts_post(entryway: Instance, method: str, version: int) -> None:
    Call(entryway, token_path(CONTOSO_TENANT, version), method=method).expect_error(
        status=400,
        error="invalid_request",
        code=900561,
        message=f"The endpoint only accepts POST, OPTIONS requests. Received a {method} request.",
    )


@pytest.mark.parametrize(
    "header", ["not-a-guid", "", "3F9C2A71-0D4B-4E8A-B1C6-5E7F8A9B0C1D-extra"], ids=["word", "empty", "long"]
)
def test_correlation_id_is_a_fresh_guid_when_the_client_sends_none_usable(
    entryway: Instance, header: str
) -> None:
    response = requests.post(
        f"{entryway.identity}{token_path(UNKNOWN_TENANT)}",
        data=client_credentials(),
        headers={"client-request-id": header},
        verify=entryway.ca_bundle,
        timeout=30,
    )
    assert response.status_code == 400
    body = response.json()
    assert GUID.fullmatch(body["correlation_id"])
    assert body["correlation_id"] != body["trace_id"]


def test_correlation_id_from_x_ms_client_request_id(entryway: Instance) -> None:
    correlation_id = str(uuid.uuid4())
    response = requests.post(
        f"{entryway.identity}{token_path(UNKNOWN_TENANT)}",
        data=client_credentials(),
        headers={"x-ms-client-request-id": correlation_id},
        verify=entryway.ca_bundle,
        timeout=30,
    )
    assert response.json()["correlation_id"] == correlation_id


# --- nothing is ever a 500 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"&",
        b"=",
        b"&&&===",
        b"grant_type",
        b"grant_type=client_credentials&&client_id=x",
        b"%",
        b"%zz=%zz",
        b"grant_type=%00&client_id=%00&client_secret=%00&scope=%00",
        b"\x00\x01\x02\xff",
        b"grant_type=client_credentials&client_id=" + b"a" * 5000,
        b"grant_type=client_credentials&client_id=" + quote(BUILD_BOT_ID).encode() + b"&scope=%20%20%20",
        b"grant_type=client_credentials&client_id=" + quote(BUILD_BOT_ID).encode() + b"&scope=/.default",
        b"grant_type=client_credentials&client_id=" + quote(BUILD_BOT_ID).encode() + b"&scope=//.default",
        "grant_type=client_credentials&client_id=ünïcødé&scope=☃/.default".encode(),
        b"a=" + b"&b=".join([b"x"] * 5000),
    ],
)
@pytest.mark.parametrize("version", [2, 1])
def test_garbage_is_answered_with_an_entra_error_never_a_500(
    entryway: Instance, payload: bytes, version: int
) -> None:
    call = post(entryway, CONTOSO_TENANT, payload, version=version, headers={"Content-Type": _FORM})
    response = call.response
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert list(body) == ENTRA_ERROR_KEYS
    assert body["error_description"].startswith(f"AADSTS{body['error_codes'][0]}: ")
    assert body["correlation_id"] == call.correlation_id


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + base64.b64encode(b":").decode(),
        "Basic " + base64.b64encode(f"{BUILD_BOT_ID}:%zz%".encode()).decode(),
        "Bearer abc",
        "x" * 8000,
    ],
)
def test_garbage_authorization_header_is_never_a_500(entryway: Instance, authorization: str) -> None:
    body = client_credentials(client_id=None, client_secret=None)
    response = post(entryway, CONTOSO_TENANT, body, headers={"Authorization": authorization}).response
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error_codes"][0] in {900144, 7000215, 7000216, 700038}


# --- successes next to the errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "audience"),
    [
        (DEVOPS_RESOURCE, DEVOPS_RESOURCE),
        (DEVOPS_RESOURCE.upper(), DEVOPS_RESOURCE),
        (DEVOPS_URI, DEVOPS_URI),
        (f"{DEVOPS_URI}/", f"{DEVOPS_URI}/"),
    ],
)
def test_v1_endpoint_success(entryway: Instance, resource: str, audience: str) -> None:
    """The v1 endpoint echoes `resource`, writes expires_on / not_before as strings, and the token's aud is
    the resource as asked for: the URI form as written, a GUID as the app id."""
    result = post(
        entryway, CONTOSO_TENANT, v1_client_credentials(resource=resource), version=1
    ).expect_token()
    assert result["resource"] == audience
    assert "scope" not in result
    assert isinstance(result["expires_on"], str)
    assert isinstance(result["not_before"], str)
    claims = claims_of(result["access_token"])
    assert claims["aud"] == audience
    assert claims["ver"] == "1.0"
    assert claims["iss"] == f"{entryway.identity}/{CONTOSO_TENANT}/"
    assert int(result["expires_on"]) == claims["exp"]
    assert int(result["not_before"]) == claims["nbf"]
    assert abs(claims["exp"] - entryway.clock.timestamp() - int(result["expires_in"])) < 60


@pytest.mark.parametrize(
    ("scope", "audience"),
    [
        (DEVOPS_SCOPE, DEVOPS_RESOURCE),
        (f"{DEVOPS_RESOURCE.upper()}/.default", DEVOPS_RESOURCE),
        (f"{DEVOPS_URI}/.default", DEVOPS_URI),
        # az appends /.default to the resource as given; the slash stays in aud, as for ARM's
        # `https://management.core.windows.net//.default`.
        (f"{DEVOPS_URI}//.default", f"{DEVOPS_URI}/"),
    ],
)
def test_v2_scope_decides_the_audience_form(entryway: Instance, scope: str, audience: str) -> None:
    """Azure DevOps accepts v1 tokens, so its aud is the resource as named in the scope."""
    result = post(entryway, CONTOSO_TENANT, client_credentials(scope=scope)).expect_token()
    assert isinstance(result["expires_in"], int)
    claims = claims_of(result["access_token"])
    assert claims["aud"] == audience
    assert claims["ver"] == "1.0"


# --- discovery and keys --------------------------------------------------------------------------------


@pytest.mark.parametrize("tenant", [CONTOSO_TENANT, CONTOSO_DOMAIN, CONTOSO_DOMAIN.upper()])
def test_v2_discovery_for_a_tenant(entryway: Instance, tenant: str) -> None:
    document = get_json(entryway, f"/{tenant}/v2.0/.well-known/openid-configuration")
    base = f"{entryway.identity}/{CONTOSO_TENANT}"
    assert document["issuer"] == f"{base}/v2.0"
    assert document["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert document["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert document["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert document["device_authorization_endpoint"] == f"{base}/oauth2/v2.0/devicecode"
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert "client_secret_basic" in document["token_endpoint_auth_methods_supported"]
    assert document["tenant_region_scope"] is not None


@pytest.mark.parametrize("tenant", [CONTOSO_TENANT, CONTOSO_DOMAIN])
def test_v1_discovery_for_a_tenant(entryway: Instance, tenant: str) -> None:
    document = get_json(entryway, f"/{tenant}/.well-known/openid-configuration")
    base = f"{entryway.identity}/{CONTOSO_TENANT}"
    assert document["issuer"] == f"{base}/"
    assert document["token_endpoint"] == f"{base}/oauth2/token"
    assert document["jwks_uri"] == f"{base}/discovery/keys"
    assert document["authorization_endpoint"] == f"{base}/oauth2/authorize"


@pytest.mark.parametrize("segment", ["common", "organizations"])
def test_tenant_independent_discovery(entryway: Instance, segment: str) -> None:
    v2 = get_json(entryway, f"/{segment}/v2.0/.well-known/openid-configuration")
    assert v2["issuer"] == f"{entryway.identity}/{{tenantid}}/v2.0"
    assert v2["token_endpoint"] == f"{entryway.identity}/{segment}/oauth2/v2.0/token"
    assert v2["jwks_uri"] == f"{entryway.identity}/{segment}/discovery/v2.0/keys"
    assert v2["tenant_region_scope"] is None

    v1 = get_json(entryway, f"/{segment}/.well-known/openid-configuration")
    assert v1["issuer"] == f"{entryway.identity}/{{tenantid}}/"
    assert v1["token_endpoint"] == f"{entryway.identity}/{segment}/oauth2/token"


def test_discovered_keys_verify_a_freshly_issued_token(entryway: Instance) -> None:
    """Follow discovery like a resource server: the jwks_uri publishes the kid in the token's header, and
    that key verifies the signature."""
    token = post(entryway, CONTOSO_TENANT, client_credentials()).expect_token()["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"

    for discovery in (
        f"/{CONTOSO_TENANT}/v2.0/.well-known/openid-configuration",
        f"/{CONTOSO_TENANT}/.well-known/openid-configuration",
        "/common/v2.0/.well-known/openid-configuration",
    ):
        jwks_uri = get_json(entryway, discovery)["jwks_uri"]
        response = requests.get(jwks_uri, verify=entryway.ca_bundle, timeout=30)
        assert response.status_code == 200
        keys = {key["kid"]: key for key in response.json()["keys"]}
        assert header["kid"] in keys, (jwks_uri, list(keys))
        published = keys[header["kid"]]
        assert published["kty"] == "RSA"
        assert published["use"] == "sig"
        assert "d" not in published
        claims = jwt.decode(
            token,
            key=jwt.PyJWK(published, algorithm="RS256"),
            algorithms=["RS256"],
            audience=DEVOPS_RESOURCE,
            issuer=f"{entryway.identity}/{CONTOSO_TENANT}/",
            # The session clock may run ahead of the wall clock PyJWT reads.
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
        assert claims["tid"] == CONTOSO_TENANT


@pytest.mark.parametrize("segment", ["common", "organizations"])
def test_client_credentials_at_a_tenant_independent_authority_names_no_tenant(
    entryway: Instance, segment: str
) -> None:
    post(entryway, segment, client_credentials()).expect_error(
        status=400,
        error="invalid_request",
        code=50059,
        message="No tenant-identifying information found in either the request or implied by any provided "
        "credentials.",
    )
