"""The managed identity token endpoints of this host, as Azure's are: plain HTTP on loopback.

- IMDS (https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token):
  `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=...[&client_id|object_id|msi_res_id]`
  with `Metadata: true`. Clients find it through `AZURE_POD_IDENTITY_AUTHORITY_HOST`. Every value of the
  answer is a string. The `Metadata` header is what keeps a browser (or a server-side request forgery) from
  fetching tokens: a page cannot add it without a CORS preflight, which is never answered.
- App Service (https://learn.microsoft.com/azure/app-service/overview-managed-identity#rest-endpoint-reference):
  `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=...[&client_id|mi_res_id|object_id|principal_id]`
  with `X-IDENTITY-HEADER: {IDENTITY_HEADER}`, compared in constant time; `expires_on` in epoch seconds.

Errors are written as each service writes them: IMDS `{"error", "error_description"}` (Entra's own error body
when Entra refuses, e.g. AADSTS500011 for an unknown resource), App Service `{"statusCode", "message",
"correlationId"}`. The reason goes to the log.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from entryway.config.settings import MANAGED_IDENTITY_BIND
from entryway.identity.directory.reads import SqlDirectory
from entryway.identity.managed.issuance import IssuedToken, ManagedIdentityIssuer
from entryway.identity.managed.reads import SqlHostIdentities
from entryway.identity.managed.selection import AmbiguousIdentity, IdentityNotFound, Selector
from entryway.identity.protocol.errors import OAuthError
from entryway.identity.signin.log import SignInRecord
from entryway.identity.web.context import NO_STORE, Edge, IdentityContext, log
from entryway.keys.signer import KeyringSigner
from entryway.kit.ids import new_guid
from entryway.kit.secrets import constant_time_equals
from entryway.kit.web import JsonResponse

IMDS_TOKEN_PATH = "/metadata/identity/oauth2/token"  # noqa: S105 - a URL path, not a secret
APP_SERVICE_TOKEN_PATH = "/msi/token"  # noqa: S105 - a URL path, not a secret

# IMDS dates its API versions; the identity endpoint exists since 2018-02-01 and answers every later one.
IMDS_FIRST_API_VERSION = "2018-02-01"
# 2019-08-01 is the App Service protocol with X-IDENTITY-HEADER and epoch `expires_on` (the older 2017-09-01
# one, with a `secret` header and a date, is not offered).
APP_SERVICE_API_VERSIONS = frozenset({"2019-08-01"})
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# IMDS's words, as it writes them.
IMDS_NO_METADATA_HEADER = "Required metadata header not specified"
IMDS_IDENTITY_NOT_FOUND = "Identity not found"
IMDS_MULTIPLE_USER_ASSIGNED = (
    "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the "
    "token request"
)
# App Service's words for a request that names no identity it carries, and for any token error of Entra's.
APP_SERVICE_IDENTITY_NOT_FOUND = "Unable to load the proper Managed Identity."
# sic ("occured"); S105: a message, not a secret
APP_SERVICE_TOKEN_FAILED = "An unexpected error occured while fetching the AAD Token."  # noqa: S105


class _Refusal(Exception):
    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


def _issuer_call(ctx: IdentityContext) -> Callable[[str, Selector], IssuedToken]:
    issuer = ManagedIdentityIssuer(origin=ctx.origin, signer=KeyringSigner(ctx.keyring), clock=ctx.clock)

    def issue(resource: str, selector: Selector) -> IssuedToken:
        with ctx.db.read() as session:
            connection = session.connection()
            issued = issuer.issue(SqlDirectory(connection), SqlHostIdentities(connection), resource, selector)
        if ctx.sign_in_log is not None:
            identity = issued.identity
            ctx.sign_in_log.record(
                SignInRecord(
                    tenant_id=identity.tenant_id,
                    principal_kind="managedIdentity",
                    is_interactive=False,
                    app_id=identity.client_id,
                    # The endpoint listens on loopback only: the caller is on this host.
                    ip_address=MANAGED_IDENTITY_BIND,
                    service_principal_id=identity.object_id,
                    app_display_name=identity.display_name,
                    resource_id=issued.resource_app_id,
                    resource_display_name=issued.resource_display_name,
                    authentication_protocol="managedIdentity",
                )
            )
        return issued

    return issue


def _selected(
    request: Request, *, resource_id_params: tuple[str, ...], object_id_params: tuple[str, ...]
) -> Selector:
    query = request.query_params

    def first(names: tuple[str, ...]) -> str | None:
        return next((query[name] for name in names if query.get(name)), None)

    return Selector(
        client_id=query.get("client_id") or None,
        object_id=first(object_id_params),
        resource_id=first(resource_id_params),
    )


# --- IMDS ------------------------------------------------------------------------------------------------------


def create_imds_app(ctx: IdentityContext) -> Starlette:
    issue = _issuer_call(ctx)
    edge = Edge(ctx)

    def check(request: Request) -> tuple[str, Selector]:
        # DefaultAzureCredential probes with a request without the header; any answer tells it IMDS is there.
        if request.headers.get("metadata", "").lower() != "true":
            raise _Refusal(400, IMDS_NO_METADATA_HEADER, "no Metadata: true")
        query = request.query_params
        version = query.get("api-version")
        if not version:
            raise _Refusal(400, "Required query variable 'api-version' is missing", "no api-version")
        if not _API_VERSION.match(version) or version < IMDS_FIRST_API_VERSION:
            raise _Refusal(400, "Invalid 'api-version' requested", f"api-version {version!r}")
        resource = query.get("resource", "").strip()
        if not resource:
            raise _Refusal(400, "Required query variable 'resource' is missing", "no resource")
        selector = _selected(
            request, resource_id_params=("msi_res_id", "mi_res_id"), object_id_params=("object_id",)
        )
        return resource, selector

    async def token(request: Request) -> Response:
        try:
            resource, selector = check(request)
            try:
                issued = await run_in_threadpool(issue, resource, selector)
            except IdentityNotFound as exc:
                raise _Refusal(400, IMDS_IDENTITY_NOT_FOUND, f"no identity {selector}") from exc
            except AmbiguousIdentity as exc:
                raise _Refusal(400, IMDS_MULTIPLE_USER_ASSIGNED, "several user-assigned identities") from exc
        except _Refusal as refusal:
            log.info("IMDS %s %s: %s", refusal.status, request.url.path, refusal.reason)
            body = {"error": "invalid_request", "error_description": refusal.message}
            return JsonResponse(body, status_code=refusal.status)
        except OAuthError as error:
            # IMDS hands Entra's refusal through, body and all.
            return edge.oauth_error(request, error)
        body = {
            "access_token": issued.access_token,
            "client_id": issued.identity.client_id,
            "expires_in": str(issued.expires_in),
            "expires_on": str(issued.expires_on),
            "ext_expires_in": str(issued.expires_in),
            "not_before": str(issued.not_before),
            "resource": issued.resource,
            "token_type": "Bearer",
        }
        return JsonResponse(body, headers=NO_STORE)

    return Starlette(routes=[Route(IMDS_TOKEN_PATH, token, methods=["GET"])])


# --- App Service -----------------------------------------------------------------------------------------------


def create_app_service_app(ctx: IdentityContext, identity_header: str) -> Starlette:
    issue = _issuer_call(ctx)

    def app_service_error(request: Request, refusal: _Refusal) -> Response:
        correlation_id = new_guid()
        log.info(
            "App Service identity endpoint %s %s: %s correlation_id=%s",
            refusal.status,
            request.url.path,
            refusal.reason,
            correlation_id,
        )
        return JsonResponse(
            {"statusCode": refusal.status, "message": refusal.message, "correlationId": correlation_id},
            status_code=refusal.status,
            headers={"X-CORRELATION-ID": correlation_id},
        )

    def check(request: Request) -> tuple[str, Selector]:
        supplied = request.headers.get("x-identity-header")
        if supplied is None or not constant_time_equals(supplied, identity_header):
            raise _Refusal(401, "Unauthorized.", "missing or wrong X-IDENTITY-HEADER")
        query = request.query_params
        version = query.get("api-version")
        if version not in APP_SERVICE_API_VERSIONS:
            raise _Refusal(400, "Invalid api-version.", f"api-version {version!r}")
        resource = query.get("resource", "").strip()
        if not resource:
            raise _Refusal(400, "The resource parameter is required.", "no resource")
        selector = _selected(
            request, resource_id_params=("mi_res_id",), object_id_params=("object_id", "principal_id")
        )
        return resource, selector

    async def token(request: Request) -> Response:
        try:
            resource, selector = check(request)
            try:
                issued = await run_in_threadpool(issue, resource, selector)
            except (IdentityNotFound, AmbiguousIdentity) as exc:
                raise _Refusal(
                    400, APP_SERVICE_IDENTITY_NOT_FOUND, f"{type(exc).__name__} {selector}"
                ) from exc
            except OAuthError as error:
                reason = f"AADSTS{error.kind.code} {error.detail or ''}".strip()
                raise _Refusal(500, APP_SERVICE_TOKEN_FAILED, reason) from error
        except _Refusal as refusal:
            return app_service_error(request, refusal)
        body = {
            "access_token": issued.access_token,
            "expires_on": str(issued.expires_on),
            "resource": issued.resource,
            "token_type": "Bearer",
            "client_id": issued.identity.client_id,
        }
        return JsonResponse(body, headers=NO_STORE)

    paths = (APP_SERVICE_TOKEN_PATH, APP_SERVICE_TOKEN_PATH + "/")
    return Starlette(routes=[Route(path, token, methods=["GET"]) for path in paths])
