"""The identity platform's Starlette application."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from entryway.identity.directory.reads import SqlDirectory
from entryway.identity.protocol.errors import (
    ENDPOINT_REQUIRES_POST,
    TENANT_NOT_FOUND_DISCOVERY,
    OAuthError,
    error_body,
)
from entryway.identity.protocol.grants.client_credentials import ClientCredentialsGrant
from entryway.identity.protocol.pipeline import TENANT_INDEPENDENT, TokenEndpoint, resolve_tenant
from entryway.identity.protocol.requests import TokenRequest, UnreadableBody, parse_form
from entryway.identity.web import discovery
from entryway.keys.keyring import Keyring
from entryway.keys.signer import KeyringSigner
from entryway.kit.clock import Clock
from entryway.kit.ids import new_guid, parse_guid
from entryway.kit.secrets import SecretDigester
from entryway.kit.web import BodyTooLarge, JsonResponse, client_address, read_body
from entryway.store.db import Database

log = logging.getLogger("entryway.identity")

T = TypeVar("T")

_NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


@dataclass(frozen=True)
class IdentityContext:
    origin: str
    db: Database
    keyring: Keyring
    digester: SecretDigester
    clock: Clock


def _correlation_id(request: Request) -> str:
    """Entra echoes the client's request id as the correlation id (MSAL: client-request-id)."""
    for name in ("client-request-id", "x-ms-client-request-id"):
        value = parse_guid(request.headers.get(name, ""))
        if value:
            return value
    return new_guid()


def create_identity_app(ctx: IdentityContext) -> Starlette:
    endpoint = TokenEndpoint(
        origin=ctx.origin,
        grants=[ClientCredentialsGrant()],
        signer=KeyringSigner(ctx.keyring),
        digester=ctx.digester,
        clock=ctx.clock,
    )

    def oauth_error(request: Request, error: OAuthError) -> Response:
        trace_id = new_guid()
        correlation_id = _correlation_id(request)
        log.info(
            "AADSTS%s %s %s trace_id=%s reason=%s",
            error.kind.code,
            request.method,
            request.url.path,
            trace_id,
            error.detail or "-",
        )
        body = error_body(
            error,
            trace_id=trace_id,
            correlation_id=correlation_id,
            at=ctx.clock.now(),
            error_uri_base=ctx.origin,
        )
        headers = {**_NO_STORE, "x-ms-request-id": trace_id, "client-request-id": correlation_id}
        return JsonResponse(body, status_code=error.kind.status, headers=headers)

    # SQLite answers these reads from a local file in microseconds, less than a hop to the thread pool and
    # back costs; a network database keeps the thread pool, so a slow query never stalls the event loop.
    reads_inline = ctx.db.engine.dialect.name == "sqlite"

    async def on_directory(fn: Callable[[SqlDirectory], T]) -> T:
        def run() -> T:
            with ctx.db.read() as session:
                return fn(SqlDirectory(session.connection()))

        return run() if reads_inline else await run_in_threadpool(run)

    async def token(request: Request) -> Response:
        version: Any = 2 if request.url.path.endswith("/v2.0/token") else 1
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
            )
            result = await on_directory(lambda d: endpoint.handle(token_request, d))
        except OAuthError as error:
            return oauth_error(request, error)
        return JsonResponse(result, headers={**_NO_STORE, "client-request-id": _correlation_id(request)})

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
    ]
    return Starlette(routes=routes)
