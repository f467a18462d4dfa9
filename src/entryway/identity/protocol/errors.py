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
    # Entra's `suberror` (e.g. `message_only`: MSAL shows the message and offers no interactive retry).
    suberror: str | None = None

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


# Authorization requests (the sign-in pages show these, or send them to the redirect URI)
REDIRECT_URI_MISMATCH = Aadsts(
    50011,
    "invalid_request",
    400,
    "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for "
    "the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your "
    "application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about "
    "how to fix this.",
)
UNSUPPORTED_RESPONSE_TYPE = Aadsts(
    70005,
    "unsupported_response_type",
    400,
    "response_type '{response_type}' is not enabled for the application.",
)
UNSUPPORTED_RESPONSE_MODE = Aadsts(
    900144, "invalid_request", 400, "The provided value for the input parameter 'response_mode' is not valid."
)
PKCE_REQUIRED = Aadsts(
    9002325,
    "invalid_request",
    400,
    "Proof Key for Code Exchange is required for cross-origin authorization code redemption.",
)
PKCE_METHOD_UNSUPPORTED = Aadsts(
    501491, "invalid_request", 400, "Invalid size or method of code_challenge parameter."
)
LOGIN_REQUIRED = Aadsts(
    50058, "login_required", 400, "A silent sign-in request was sent but no user is signed in."
)
# prompt=none with several accounts signed in to the browser and no login_hint choosing one of them.
ACCOUNT_SELECTION_REQUIRED = Aadsts(
    16000,
    "interaction_required",
    400,
    "Either multiple user identities are available for the current request or selected account is not supported "
    "for the scenario.",
)
INTERACTION_REQUIRED_MFA = Aadsts(
    50076,
    "interaction_required",
    400,
    "Due to a configuration change made by your administrator, or because you moved to a new location, you must "
    "use multi-factor authentication to access '{resource}'.",
)
CONSENT_REQUIRED = Aadsts(
    65001,
    "consent_required",
    400,
    "The user or administrator has not consented to use the application with ID '{client_id}' named '{name}'. "
    "Send an interactive authorization request for this user and resource.",
)
CONSENT_DECLINED = Aadsts(65004, "access_denied", 400, "User declined to consent to access the app.")
USER_NOT_FOUND = Aadsts(
    50034,
    "invalid_grant",
    400,
    "The user account {user} does not exist in the {directory} directory. To sign into this application, the "
    "account must be added to the directory.",
)
USER_IN_OTHER_TENANT = Aadsts(
    50020,
    "invalid_grant",
    400,
    "User account '{user}' from identity provider '{idp}' does not exist in tenant '{directory}' and cannot "
    "access the application '{client_id}'({name}) in that tenant.",
)
USER_DISABLED = Aadsts(50057, "invalid_grant", 400, "The user account is disabled.")
INVALID_CREDENTIALS = Aadsts(
    50126, "invalid_grant", 400, "Error validating credentials due to invalid username or password."
)
ACCOUNT_LOCKED = Aadsts(
    50053,
    "invalid_grant",
    400,
    "Your account is locked because you've tried to sign in too many times with an incorrect user ID or "
    "password.",
)
MFA_CODE_INVALID = Aadsts(
    500121, "invalid_grant", 400, "Authentication failed during strong authentication request."
)
MFA_ENROLLMENT_REQUIRED = Aadsts(
    50072, "interaction_required", 400, "User needs to enroll for second factor authentication."
)

# Conditional Access at the token endpoint (identity/protocol/conditional_access.py) and the `claims`
# parameter (identity/protocol/claims_request.py).
BLOCKED_BY_CONDITIONAL_ACCESS = Aadsts(
    53003,
    "interaction_required",
    400,
    "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
    suberror="message_only",
)
# A workload identity (client credentials, federated assertion) or a middle tier (on-behalf-of) cannot interact:
# Entra answers the same code as invalid_grant there.
BLOCKED_BY_CONDITIONAL_ACCESS_GRANT = Aadsts(
    53003, "invalid_grant", 400, BLOCKED_BY_CONDITIONAL_ACCESS.template
)
MFA_ENROLLMENT_REQUIRED_BY_POLICY = Aadsts(
    50079,
    "interaction_required",
    400,
    "Due to a configuration change made by your administrator, or because you moved to a new location, you must "
    "enroll in multi-factor authentication to access '{resource}'.",
)
SIGN_IN_FREQUENCY_INTERACTIVE = Aadsts(
    50076,
    "interaction_required",
    400,
    "Due to a configuration change made by your administrator, or because you moved to a new location, you must "
    "sign in again to access '{resource}'.",
)
# Entra's code for a claims parameter it cannot read (its message: "Failed to deserialize policy specified in
# the request's claim parameter").
CLAIMS_MALFORMED = Aadsts(
    50117,
    "invalid_request",
    400,
    "Failed to deserialize the claims parameter: it must be a JSON object of claim requests "
    "(https://openid.net/specs/openid-connect-core-1_0.html#ClaimsParameter).",
)
# A claims challenge asks for a sign-in at or after `nbf`; the grant carries an older one. No public record of
# Entra's exact answer: the code of a grant that needs a fresh authentication, as interaction_required.
CLAIMS_NEED_FRESH_SIGN_IN = Aadsts(
    50173,
    "interaction_required",
    400,
    "The provided grant cannot satisfy the claims challenge, a fresh auth token is needed. The grant's sign-in "
    "was at '{auth_time}', the challenge requires a sign-in at or after '{not_before}'.",
)

# What the sign-in pages (identity/web/signin.py, signin_policy.py) answer and log for Conditional Access.
# The redirect form of 53003 is `access_denied` (what a browser app receives).
BLOCKED_BY_CONDITIONAL_ACCESS_REDIRECT = Aadsts(
    53003, "access_denied", 400, BLOCKED_BY_CONDITIONAL_ACCESS.template
)
# The interrupt Entra logs when a sign-in continues to the second factor.
STRONG_AUTH_REQUIRED = Aadsts(50074, "interaction_required", 400, "Strong Authentication is required.")
# Sign-in frequency: the session's credentials are too old for a policy (also a silent request's answer).
SIGN_IN_FREQUENCY_EXPIRED = Aadsts(
    70044,
    "login_required",
    400,
    "The session has expired or is invalid due to sign-in frequency checks by conditional access.",
)
# A claims challenge asks for a sign-in newer than the browser session's (silent request's answer, log entry).
CLAIMS_NEED_FRESH_SIGN_IN_PAGE = Aadsts(
    50173,
    "interaction_required",
    400,
    "The provided grant cannot satisfy the claims challenge, a fresh auth token is needed.",
)

# Grants redeemed at the token endpoint
MALFORMED_GRANT = Aadsts(9002313, "invalid_grant", 400, "Invalid request. Request is malformed or invalid.")
INVALID_GRANT = Aadsts(70000, "invalid_grant", 400, "Provided grant is invalid or malformed.")
GRANT_EXPIRED = Aadsts(
    70008,
    "invalid_grant",
    400,
    "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive "
    "authorization request for this user and resource.",
)
CODE_ALREADY_REDEEMED = Aadsts(
    54005,
    "invalid_grant",
    400,
    "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing "
    "refresh token.",
)
PKCE_MISMATCH = Aadsts(
    501481,
    "invalid_grant",
    400,
    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
)
REDIRECT_URI_CHANGED = Aadsts(
    70000,
    "invalid_grant",
    400,
    "The request was denied because the redirect_uri does not match the one of the authorization request.",
)
REFRESH_TOKEN_INACTIVE = Aadsts(
    700082,
    "invalid_grant",
    400,
    "The refresh token has expired due to inactivity. The token was issued on {issued} and was inactive for "
    "{inactive}.",
)
REFRESH_TOKEN_REVOKED = Aadsts(
    50173,
    "invalid_grant",
    400,
    "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have "
    "changed or reset their password. The grant was issued on '{issued}'.",
)
SIGN_IN_FREQUENCY = Aadsts(
    70043,
    "invalid_grant",
    400,
    "The refresh token has expired or is invalid due to sign-in frequency checks by conditional access. The "
    "token was issued on {issued} and the maximum allowed lifetime for this request is {lifetime}.",
)
PUBLIC_CLIENT_WITH_SECRET = Aadsts(
    700025,
    "invalid_client",
    401,
    "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
)

# Device authorization grant (RFC 8628 section 3.5)
AUTHORIZATION_PENDING = Aadsts(
    70016,
    "authorization_pending",
    400,
    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
)
SLOW_DOWN = Aadsts(70016, "slow_down", 400, "OAuth 2.0 device flow error. Polling too often. Slow down.")
DEVICE_CODE_EXPIRED = Aadsts(
    70019, "expired_token", 400, "Verification code expired. Have the user retry the sign-in."
)
AUTHORIZATION_DECLINED = Aadsts(
    70000, "authorization_declined", 400, "The user declined the sign-in request. Start a new sign-in."
)
BAD_VERIFICATION_CODE = Aadsts(
    70018, "bad_verification_code", 400, "Invalid verification code. Please retry."
)


# On-behalf-of (the user's token presented as `assertion`)
OBO_SIGNATURE_INVALID = Aadsts(50013, "invalid_grant", 400, "Assertion failed signature validation.")
OBO_AUDIENCE_MISMATCH = Aadsts(
    50013,
    "invalid_grant",
    400,
    "Assertion audience does not match the Client app presenting the assertion. The audience in the assertion "
    "was '{audience}' and the expected audience is '{expected}' or one of the Application Ids of the Client app.",
)
OBO_NOT_A_USER = Aadsts(
    50013,
    "invalid_grant",
    400,
    "Assertion contains no user: the on-behalf-of flow needs a user's access token.",
)
OBO_ASSERTION_EXPIRED = Aadsts(
    500133,
    "invalid_grant",
    400,
    "Assertion is not within its valid time range. Ensure that the access token is not expired before using it "
    "for user assertion, or request a new token. Current time: {now}, expiry time of assertion {exp}.",
)


# Client assertions (RFC 7523 section 3: private_key_jwt with a registered certificate, or a federated
# identity credential's external token). Wording from Entra's answers quoted in msal, azure-sdk and
# azure-workload-identity issues; where no public record of Entra's answer exists, the entry says so.
CLIENT_ASSERTION_TYPE_UNSUPPORTED = Aadsts(90011, "invalid_request", 400, "Unexpected client assertion type.")
CLIENT_ASSERTION_MALFORMED = Aadsts(50027, "invalid_request", 400, "JWT token is invalid or malformed.")
CLIENT_ASSERTION_NO_THUMBPRINT = Aadsts(
    50027, "invalid_request", 400, "Invalid JWT token. No certificate thumbprint specified in token header."
)
CLIENT_ASSERTION_KEY_NOT_FOUND = Aadsts(
    700027,
    "invalid_client",
    401,
    "The certificate with identifier used to sign the client assertion is not registered on application. "
    "[Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the Azure "
    "Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'. Review the "
    "documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials.]",
)
CLIENT_ASSERTION_KEY_EXPIRED = Aadsts(
    700027,
    "invalid_client",
    401,
    "The certificate with identifier used to sign the client assertion is expired on application. [Reason - The "
    "key used is expired., Thumbprint of key used by client: '{thumbprint}', Found key 'Start={start}, "
    "End={end}']",
)
CLIENT_ASSERTION_BAD_SIGNATURE = Aadsts(
    700027,
    "invalid_client",
    401,
    "Client assertion contains an invalid signature. [Reason - The provided signature value did not match the "
    "expected signature value., Thumbprint of key used by client: '{thumbprint}', Found key 'Start={start}, "
    "End={end}']",
)
CLIENT_ASSERTION_WRONG_CLIENT = Aadsts(
    700021,
    "invalid_client",
    401,
    "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at "
    "https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
)
CLIENT_ASSERTION_WRONG_AUDIENCE = Aadsts(
    700023,
    "invalid_client",
    401,
    "Client assertion audience claim does not match Realm issuer. Review the documentation at "
    "https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
)
CLIENT_ASSERTION_TIME_RANGE = Aadsts(
    700024,
    "invalid_client",
    401,
    "Client assertion is not within its valid time range. Current time: {now}, assertion valid from {start}, "
    "expiry time of assertion {exp}. Review the documentation at "
    "https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
)
# No public record of Entra's answer to a replayed jti: Entryway answers with its generic invalid-client code.
CLIENT_ASSERTION_REPLAYED = Aadsts(
    70002,
    "invalid_client",
    401,
    "Error validating credentials. Another client assertion already used this 'jti'; give each assertion a "
    "'jti' of its own.",
)
NO_FEDERATED_CREDENTIALS = Aadsts(
    70025,
    "invalid_client",
    401,
    "The client '{client_id}'({name}) has no configured federated identity credentials.",
)
FEDERATED_NO_MATCH = Aadsts(
    70021,
    "invalid_request",
    400,
    "No matching federated identity record found for presented assertion. Assertion Issuer: '{issuer}'. "
    "Assertion Subject: '{subject}'. Assertion Audience: '{audience}'. "
    "https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
)
FEDERATED_ISSUER_MISMATCH = Aadsts(
    700211,
    "invalid_client",
    401,
    "No matching federated identity record found for presented assertion issuer '{issuer}'. Please check your "
    "federated identity credential Subject, Audience and Issuer against the presented assertion. "
    "https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
)
FEDERATED_AUDIENCE_MISMATCH = Aadsts(
    700212,
    "invalid_client",
    401,
    "No matching federated identity record found for presented assertion audience '{audience}'. Please check "
    "your federated identity credential Subject, Audience and Issuer against the presented assertion. "
    "https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
)
FEDERATED_SUBJECT_MISMATCH = Aadsts(
    700213,
    "invalid_client",
    401,
    "No matching federated identity record found for presented assertion subject '{subject}'. Check your "
    "federated identity credential Subject, Audience and Issuer against the presented assertion. "
    "https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
)
FEDERATED_KEY_NOT_FOUND = Aadsts(
    7000272,
    "invalid_client",
    401,
    "The certificate with identifier {kid} used to sign the federated credential could not be found in the "
    "metadata of identity provider {issuer}. Please validate that your Identity Provider's metadata exposes the "
    "key used to sign the incoming token.",
)
FEDERATED_BAD_SIGNATURE = Aadsts(
    50027,
    "invalid_client",
    401,
    "Invalid JWT token. External ID token from issuer failed signature verification.",
)


# The Entra-issued form of a pipeline service connection's token (protocol/service_connections.py).
SERVICE_CONNECTION_CLIENT_REFUSED = Aadsts(
    9002313,
    "invalid_request",
    400,
    "Invalid request. The parameter 'service_connection' is accepted only from the Azure DevOps service, for "
    "the token-exchange resource (fb60f99c-7a34-4190-8149-302f77469936).",
)
SERVICE_CONNECTION_MALFORMED = Aadsts(
    9002313,
    "invalid_request",
    400,
    "Invalid request. The parameter 'service_connection' must be '{{organizationId}}/{{serviceConnectionId}}'.",
)


class OAuthError(Exception):
    """An error the token service answers with. `detail` is for the log only."""

    def __init__(self, kind: Aadsts, detail: str = "", **params: str) -> None:
        super().__init__(kind.format(**params))
        self.kind = kind
        self.detail = detail
        self.description = kind.format(**params)
        # A claims challenge for the client to send back (Entra's `claims` error member), if any.
        self.claims: str | None = None


def format_timestamp(at: datetime) -> str:
    """Entra's error timestamps: `2026-11-27 18:36:13Z`."""
    return at.strftime("%Y-%m-%d %H:%M:%SZ")


def error_body(
    error: OAuthError, *, trace_id: str, correlation_id: str, at: datetime, error_uri_base: str
) -> dict[str, Any]:
    """The JSON body Entra returns for a failed request."""
    timestamp = format_timestamp(at)
    body: dict[str, Any] = {
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
    if error.kind.suberror is not None:
        body["suberror"] = error.kind.suberror
    if error.claims is not None:
        body["claims"] = error.claims
    return body
