"""The AADSTS error catalogue and Entra's error response body.

Each entry is the public half of an error: the OAuth `error`, the HTTP status and the message Entra
writes (https://learn.microsoft.com/entra/identity-platform/reference-error-codes). The private half, the
specific reason, goes to the log through `OAuthError.detail` and never to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Aadsts:
    code: int
    error: str
    status: int
    template: str

    def format(self, **params: str) -> str:
        return f"AADSTS{self.code}: " + self.template.format(**params)


# Request shape
ENDPOINT_REQUIRES_POST = Aadsts(
    900561,
    "invalid_request",
    400,
    "The endpoint only accepts POST, OPTIONS requests. Received a {method} request.",
)
MISSING_PARAMETER = Aadsts(
    900144, "invalid_request", 400, "The request body must contain the following parameter: '{name}'."
)
DUPLICATE_PARAMETER = Aadsts(
    9000411,
    "invalid_request",
    400,
    "The request is not properly formatted. The parameter '{name}' is duplicated.",
)
UNSUPPORTED_GRANT_TYPE = Aadsts(
    70003, "unsupported_grant_type", 400, "The app requested an unsupported grant type '{grant_type}'."
)
# The v1 endpoint words the same error differently.
UNSUPPORTED_GRANT_TYPE_V1 = Aadsts(
    70003, "unsupported_grant_type", 400, "The access grant '{grant_type}' is not supported."
)

# Tenant
TENANT_NOT_FOUND = Aadsts(
    90002,
    "invalid_request",
    400,
    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the "
    "correct cloud. Check with your subscription administrator, this may happen if there are no active "
    "subscriptions for the tenant.",
)
NO_TENANT_IDENTIFYING_INFORMATION = Aadsts(
    50059,
    "invalid_request",
    400,
    "No tenant-identifying information found in either the request or implied by any provided credentials.",
)
# Discovery documents answer the same code with error `invalid_tenant`.
TENANT_NOT_FOUND_DISCOVERY = Aadsts(90002, "invalid_tenant", 400, TENANT_NOT_FOUND.template)
INVALID_TENANT_NAME = Aadsts(
    900023,
    "invalid_request",
    400,
    "Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid external domain.",
)

# Client
CLIENT_NOT_FOUND = Aadsts(
    700016,
    "unauthorized_client",
    400,
    "Application with identifier '{client_id}' was not found in the directory '{directory}'. This can happen if "
    "the application has not been installed by the administrator of the tenant or consented to by any user in "
    "the tenant. You may have sent your authentication request to the wrong tenant.",
)
INVALID_CLIENT_ID = Aadsts(
    700038, "unauthorized_client", 400, "{client_id} is not a valid application identifier."
)
CLIENT_CREDENTIAL_MISSING_CLIENT_CREDENTIALS = Aadsts(
    7000216,
    "invalid_client",
    401,
    "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
)
CLIENT_CREDENTIAL_MISSING = Aadsts(
    7000218,
    "invalid_client",
    401,
    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
)
INVALID_CLIENT_SECRET = Aadsts(
    7000215,
    "invalid_client",
    401,
    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
    "not the client secret ID, for a secret added to app '{client_id}'.",
)
CLIENT_SECRET_EXPIRED = Aadsts(
    7000222,
    "invalid_client",
    401,
    "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new "
    "keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added "
    "security: https://aka.ms/certCreds.",
)
SERVICE_PRINCIPAL_DISABLED = Aadsts(
    7000112, "unauthorized_client", 400, "Application '{client_id}'({name}) is disabled."
)

# Scope and resource
RESOURCE_NOT_FOUND = Aadsts(
    500011,
    "invalid_resource",
    400,
    "The resource principal named {resource} was not found in the tenant named {directory}. This can happen if the "
    "application has not been installed by the administrator of the tenant or consented to by any user in the "
    "tenant. You might have sent your authentication request to the wrong tenant.",
)
SCOPE_NEEDS_DEFAULT = Aadsts(
    1002012,
    "invalid_scope",
    400,
    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with "
    "/.default suffixed to the resource identifier (application ID URI).",
)
SCOPE_MULTIPLE_RESOURCES = Aadsts(
    28000,
    "invalid_scope",
    400,
    "Provided value for the input parameter scope is not valid because it contains more than one resource. "
    "Scope {scope} is not valid.",
)
INVALID_SCOPE = Aadsts(
    70011,
    "invalid_scope",
    400,
    "The provided request must include a 'scope' input parameter. The provided value for the input parameter "
    "'scope' is not valid. The scope {scope} is not valid.",
)


class OAuthError(Exception):
    """An error the token service answers with. `detail` is for the log only."""

    def __init__(self, kind: Aadsts, detail: str = "", **params: str) -> None:
        super().__init__(kind.format(**params))
        self.kind = kind
        self.detail = detail
        self.description = kind.format(**params)


def format_timestamp(at: datetime) -> str:
    """Entra's error timestamps: `2026-11-27 18:36:13Z`."""
    return at.strftime("%Y-%m-%d %H:%M:%SZ")


def error_body(
    error: OAuthError, *, trace_id: str, correlation_id: str, at: datetime, error_uri_base: str
) -> dict[str, Any]:
    """The JSON body Entra returns for a failed request."""
    timestamp = format_timestamp(at)
    return {
        "error": error.kind.error,
        "error_description": (
            f"{error.description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"
        ),
        "error_codes": [error.kind.code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{error_uri_base}/error?code={error.kind.code}",
    }
