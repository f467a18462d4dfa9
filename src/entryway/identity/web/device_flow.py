"""The device authorization endpoint (RFC 8628 section 3.1) and MSAL's user-realm pre-flight."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from entryway.identity.directory.reads import SqlDirectory
from entryway.identity.protocol.claims_request import parse_claims_request
from entryway.identity.protocol.delegation import parse_user_scope
from entryway.identity.protocol.errors import (
    CLIENT_NOT_FOUND,
    ENDPOINT_REQUIRES_POST,
    INVALID_CLIENT_ID,
    MISSING_PARAMETER,
    OAuthError,
)
from entryway.identity.protocol.pipeline import TENANT_INDEPENDENT, resolve_tenant, validate_tenant_ref
from entryway.identity.protocol.requests import UnreadableBody, parse_form
from entryway.identity.signin.ledger import Ledger
from entryway.identity.web.context import NO_STORE, Edge, IdentityContext, log
from entryway.kit.ids import parse_guid
from entryway.kit.web import BodyTooLarge, JsonResponse, read_body

DEVICE_LOGIN_PATH = "/devicelogin"


def _start_device_flow(
    origin: str, params: dict[str, str], tenant_ref: str, d: SqlDirectory, ledger: Ledger
) -> dict[str, Any]:
    normalized = validate_tenant_ref(tenant_ref)
    tenant = None if normalized in TENANT_INDEPENDENT else resolve_tenant(d, tenant_ref)
    raw_client_id = params.get("client_id")
    if not raw_client_id:
        raise OAuthError(MISSING_PARAMETER, name="client_id")
    client_id = parse_guid(raw_client_id)
    if client_id is None:
        raise OAuthError(INVALID_CLIENT_ID, client_id=raw_client_id)
    known = d.find_client(tenant.id, client_id) is not None if tenant else d.application_exists(client_id)
    if not known:
        directory_name = tenant.display_name if tenant else normalized
        raise OAuthError(CLIENT_NOT_FOUND, client_id=client_id, directory=directory_name)
    scope = params.get("scope")
    if not scope:
        raise OAuthError(MISSING_PARAMETER, name="scope")
    parse_user_scope(scope)
    # A claims request is read now (AADSTS50117 when malformed); the device page honours its nbf.
    parse_claims_request(params.get("claims"))
    new = ledger.start_device_authorization(
        tenant_ref=tenant.id if tenant else normalized,
        client_id=client_id,
        scope=scope,
        claims=params.get("claims") or None,
    )
    verification_uri = f"{origin}{DEVICE_LOGIN_PATH}"
    return {
        "user_code": new.user_code,
        "device_code": new.device_code,
        "verification_uri": verification_uri,
        "expires_in": new.expires_in,
        "interval": new.interval,
        # Clients print this as it is (az, DeviceCodeCredential without a callback).
        "message": (
            f"To sign in, use a web browser to open the page {verification_uri} and enter the code "
            f"{new.user_code} to authenticate."
        ),
    }


def device_flow_routes(ctx: IdentityContext, edge: Edge) -> list[BaseRoute]:
    async def devicecode(request: Request) -> Response:
        """`POST /{tenant}/oauth2/v2.0/devicecode`."""
        try:
            if request.method != "POST":
                raise OAuthError(ENDPOINT_REQUIRES_POST, method=request.method)
            try:
                params = parse_form(await read_body(request), request.headers.get("content-type"))
            except (UnreadableBody, BodyTooLarge) as exc:
                log.info("unreadable devicecode request body: %r", exc)
                params = {}
            tenant_ref = request.path_params["tenant"]
            result = await edge.in_unit_of_work(
                lambda d, ledger: _start_device_flow(ctx.origin, params, tenant_ref, d, ledger)
            )
        except OAuthError as error:
            return edge.oauth_error(request, error)
        return JsonResponse(result, headers={**NO_STORE, "client-request-id": edge.correlation_id(request)})

    async def user_realm(request: Request) -> Response:
        """`GET /common/userrealm/{upn}`: is the user's domain managed here, or unknown? MSAL asks before a
        password grant (and would go to ADFS for a federated domain)."""
        domain = request.path_params["upn"].rpartition("@")[2].lower()
        known = False
        if domain:
            try:
                known = await edge.on_directory(
                    lambda d: d.find_tenant(validate_tenant_ref(domain)) is not None
                )
            except OAuthError:
                known = False
        body = {
            "ver": "1.0",
            "account_type": "Managed" if known else "Unknown",
            "domain_name": domain,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_audience_urn": "urn:federation:MicrosoftOnline",
        }
        return JsonResponse(body)

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    return [
        Route("/{tenant}/oauth2/v2.0/devicecode", devicecode, methods=methods),
        Route("/common/userrealm/{upn}", user_realm),
    ]
