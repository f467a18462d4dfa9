"""The identity platform's Starlette application."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from entryway.identity.directory.reads import SqlDirectory
from entryway.identity.policy.evaluate import device_platform
from entryway.identity.protocol.client_assertion import IssuerKeys, unverified_issuer, unverified_kid
from entryway.identity.protocol.conditional_access import IssuanceTrail
from entryway.identity.protocol.errors import (
    ENDPOINT_REQUIRES_POST,
    TENANT_NOT_FOUND_DISCOVERY,
    OAuthError,
)
from entryway.identity.protocol.grants.authorization_code import AuthorizationCodeGrant
from entryway.identity.protocol.grants.client_credentials import ClientCredentialsGrant
from entryway.identity.protocol.grants.device_code import DeviceCodeGrant
from entryway.identity.protocol.grants.on_behalf_of import OnBehalfOfGrant
from entryway.identity.protocol.grants.password import PasswordGrant
from entryway.identity.protocol.grants.refresh_token import RefreshTokenGrant
from entryway.identity.protocol.pipeline import (
    TENANT_INDEPENDENT,
    PolicyRefusal,
    TokenEndpoint,
    resolve_tenant,
)
from entryway.identity.protocol.requests import TokenRequest, UnreadableBody, parse_form
from entryway.identity.signin.accounts import Accounts
from entryway.identity.signin.ledger import Ledger
from entryway.identity.signin.log import SignInRecord
from entryway.identity.web import discovery
from entryway.identity.web.context import NO_STORE, Edge, IdentityContext, log
from entryway.identity.web.device_flow import device_flow_routes
from entryway.identity.web.external_issuers import ExternalIssuers, is_https_url, usable_keys
from entryway.identity.web.graph import STATE_KEY as GRAPH_STATE_KEY
from entryway.identity.web.graph import conditional_access_routes
from entryway.identity.web.graph_signins import sign_in_log_routes
from entryway.identity.web.signin import signin_routes
from entryway.keys.signer import KeyringSigner, KeyringVerifier
from entryway.kit.ids import parse_guid
from entryway.kit.web import BodyTooLarge, JsonResponse, client_address, read_body

__all__ = ["IdentityContext", "create_identity_app"]

T = TypeVar("T")


class _RolledBack(Exception):
    """Carries a `PolicyRefusal` out of the unit of work, which rolls back on any error but an `OAuthError`."""

    def __init__(self, error: PolicyRefusal) -> None:
        super().__init__(error.description)
        self.error = error


def _rolling_back(fn: Callable[[SqlDirectory, Ledger], T]) -> Callable[[SqlDirectory, Ledger], T]:
    """A refusal by Conditional Access or a claims challenge leaves the code, device code or refresh token the
    grant redeemed as it was: the client may present it again once it satisfies the policy."""

    def run(directory: SqlDirectory, ledger: Ledger) -> T:
        try:
            return fn(directory, ledger)
        except PolicyRefusal as refusal:
            raise _RolledBack(refusal) from refusal

    return run


# The request headers the pipeline reads: the device platform for Conditional Access (MSAL sends x-client-os),
# and the sign-in log's user agent.
_PIPELINE_HEADERS = ("user-agent", "x-client-os", "x-client-sku", "x-client-ver")
# Not sign-ins: a device polling before its user has approved (RFC 8628 section 3.5).
_NOT_LOGGED = frozenset({70016})


def sign_in_record(
    trail: IssuanceTrail, request: TokenRequest, error: OAuthError | None, correlation_id: str
) -> SignInRecord | None:
    """The sign-in log's entry for one token request, issued or refused; None for a request that never
    reached a tenant (an unknown tenant, an unreadable request: no directory's log to write to) and for a
    device's polls before approval."""
    if not trail.tenant_id or (error is not None and error.kind.code in _NOT_LOGGED):
        return None
    decision = trail.decision
    headers = request.headers
    platform = trail.platform or device_platform(headers.get("user-agent"), headers.get("x-client-os")).value
    return SignInRecord(
        tenant_id=trail.tenant_id,
        principal_kind=trail.principal_kind,
        is_interactive=trail.interactive,
        app_id=trail.client_app_id,
        ip_address=request.client_address,
        error_code=0 if error is None else error.kind.code,
        user_id=trail.user_id,
        user_principal_name=trail.user_principal_name,
        service_principal_id=trail.service_principal_id,
        app_display_name=trail.client_display_name,
        resource_id=trail.resource_app_id,
        resource_display_name=trail.resource_display_name,
        user_agent=headers.get("user-agent", ""),
        client_app_used=trail.client_app_type,
        device_platform=platform,
        authentication_protocol=trail.protocol,
        authentication_requirement=trail.authentication_requirement,
        failure_reason="" if error is None else error.description,
        conditional_access_status="notApplied" if decision is None else decision.status,
        applied_policies=() if decision is None else tuple(o.to_graph() for o in decision.outcomes),
        correlation_id=correlation_id,
    )


async def _handle_with_assertion(
    endpoint: TokenEndpoint, edge: Edge, issuers: ExternalIssuers, request: TokenRequest, trail: IssuanceTrail
) -> dict[str, Any]:
    """A client authenticating by assertion: its jti is recorded in a unit of work (and stays recorded when an
    error follows), and the keys of the external issuer a federated assertion names are fetched first, when a
    federated credential of the client trusts that issuer (no other URL is ever fetched): the pipeline does
    no I/O.

    A token this identity platform issued itself (`{origin}/{tenant}/v2.0`, e.g. the Entra-issued form of a
    pipeline service connection's token) is verified with its own published keys, read from the keyring, not
    fetched over HTTPS from itself."""
    assertion, client_id = request.params.get("client_assertion", ""), request.params.get("client_id", "")
    issuer = unverified_issuer(assertion)
    issuer_keys: IssuerKeys | None = None
    if issuer is not None and issuer != client_id and is_https_url(issuer):
        credentials = await edge.on_directory(lambda d: d.find_federated_credentials(client_id))
        if any(c.issuer == issuer for c in credentials):
            if _is_own_issuer(edge.ctx.origin, issuer):
                jwks = await run_in_threadpool(edge.ctx.keyring.jwks)
                issuer_keys = IssuerKeys(issuer, usable_keys(jwks))
            else:
                issuer_keys = await issuers.keys_for(issuer, unverified_kid(assertion))
    user_grant = endpoint.is_user_grant(request.params.get("grant_type"))
    return await edge.in_unit_of_work(
        _rolling_back(
            lambda d, ledger: endpoint.handle(
                request,
                d,
                ledger if user_grant else None,
                replay=ledger,
                issuer_keys=issuer_keys,
                trail=trail,
            )
        )
    )


def _is_own_issuer(origin: str, issuer: str) -> bool:
    """`{origin}/{tenant id}/v2.0` or `{origin}/{tenant id}/`: the v2 and v1 issuers of this platform."""
    prefix = origin.rstrip("/") + "/"
    if not issuer.startswith(prefix):
        return False
    tenant, sep, rest = issuer.removeprefix(prefix).partition("/")
    return bool(sep) and rest in {"v2.0", ""} and parse_guid(tenant) is not None


def _token_handler(
    ctx: IdentityContext, endpoint: TokenEndpoint, edge: Edge, external_issuers: ExternalIssuers
) -> Callable[[Request], Awaitable[Response]]:
    """The token route: the pipeline against the database, Entra's error shape, a sign-in log entry."""

    def record(
        trail: IssuanceTrail, token_request: TokenRequest, error: OAuthError | None, correlation_id: str
    ) -> None:
        if ctx.sign_in_log is None:
            return
        entry = sign_in_record(trail, token_request, error, correlation_id)
        if entry is not None:
            ctx.sign_in_log.record(entry)

    async def token(request: Request) -> Response:
        version: Any = 2 if request.url.path.endswith("/v2.0/token") else 1
        # Once: without the client's request id it is a new GUID, and the log entry must carry the one answered.
        correlation_id = edge.correlation_id(request)
        trail = IssuanceTrail()
        token_request = TokenRequest(
            endpoint_version=version, tenant_ref=request.path_params["tenant"], params={}
        )
        try:
            if request.method != "POST":
                raise OAuthError(ENDPOINT_REQUIRES_POST, method=request.method)
            try:
                params = parse_form(await read_body(request), request.headers.get("content-type"))
            except (UnreadableBody, BodyTooLarge) as exc:
                # Entra does not read such a body at all, and then finds no grant_type in it.
                log.info("unreadable token request body: %r", exc)
                params = {}
            token_request = TokenRequest(
                endpoint_version=version,
                tenant_ref=request.path_params["tenant"],
                params=params,
                authorization=request.headers.get("authorization"),
                client_address=client_address(request),
                headers={
                    name: request.headers[name] for name in _PIPELINE_HEADERS if name in request.headers
                },
            )
            if params.get("client_assertion"):
                result = await _handle_with_assertion(endpoint, edge, external_issuers, token_request, trail)
            elif endpoint.is_user_grant(params.get("grant_type")):
                result = await edge.in_unit_of_work(
                    _rolling_back(lambda d, ledger: endpoint.handle(token_request, d, ledger, trail=trail))
                )
            else:
                result = await edge.on_directory(lambda d: endpoint.handle(token_request, d, trail=trail))
        except _RolledBack as rolled_back:
            record(trail, token_request, rolled_back.error, correlation_id)
            return edge.oauth_error(request, rolled_back.error, correlation_id)
        except OAuthError as error:
            record(trail, token_request, error, correlation_id)
            return edge.oauth_error(request, error, correlation_id)
        record(trail, token_request, None, correlation_id)
        return JsonResponse(result, headers={**NO_STORE, "client-request-id": correlation_id})

    return token


def create_identity_app(ctx: IdentityContext) -> Starlette:
    endpoint = TokenEndpoint(
        origin=ctx.origin,
        grants=[
            ClientCredentialsGrant(),
            AuthorizationCodeGrant(),
            DeviceCodeGrant(),
            RefreshTokenGrant(),
            PasswordGrant(),
            OnBehalfOfGrant(origin=ctx.origin, verifier=KeyringVerifier(ctx.keyring)),
        ],
        signer=KeyringSigner(ctx.keyring),
        digester=ctx.digester,
        clock=ctx.clock,
    )

    # The password grant checks passwords under the same smart lockout as the sign-in pages.
    edge = Edge(
        ctx, password_checker=lambda session: Accounts(session, ctx.clock, ctx.totp_key).check_password
    )
    oauth_error = edge.oauth_error
    on_directory = edge.on_directory

    external_issuers = ExternalIssuers(ctx.clock, ca_bundle=ctx.ca_bundle)

    token = _token_handler(ctx, endpoint, edge, external_issuers)

    async def openid_configuration(request: Request) -> Response:
        ref = request.path_params["tenant"]
        version = 2 if "/v2.0/" in request.url.path else 1
        try:
            if ref.lower() in TENANT_INDEPENDENT:
                tenant_segment, tenant_id = ref.lower(), None
            else:
                tenant = await on_directory(lambda d: resolve_tenant(d, ref))
                tenant_segment, tenant_id = tenant.id, tenant.id
        except OAuthError as error:
            if error.kind.code == 90002:
                error = OAuthError(TENANT_NOT_FOUND_DISCOVERY, tenant=ref)
            return oauth_error(request, error)
        document = discovery.openid_configuration(ctx.origin, tenant_segment, tenant_id, version)
        return JsonResponse(document, headers={"Cache-Control": "max-age=86400, private"})

    async def keys(request: Request) -> Response:
        return JsonResponse(
            await run_in_threadpool(ctx.keyring.jwks), headers={"Cache-Control": "max-age=300"}
        )

    async def health(_request: Request) -> Response:
        return JsonResponse({"status": "ok", "service": "identity"})

    routes = [
        Route("/health", health),
        Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration),
        Route("/{tenant}/.well-known/openid-configuration", openid_configuration),
        Route("/{tenant}/discovery/v2.0/keys", keys),
        Route("/{tenant}/discovery/keys", keys),
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Route("/{tenant}/oauth2/token", token, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        *device_flow_routes(ctx, edge),
        *signin_routes(ctx),
        *conditional_access_routes(ctx),
        *sign_in_log_routes(ctx),
    ]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await external_issuers.aclose()

    identity_app = Starlette(routes=routes, lifespan=lifespan)
    setattr(identity_app.state, GRAPH_STATE_KEY, ctx)  # for graph.graph_caller, in every Graph route module
    return identity_app
