"""The DevOps service's Starlette application. Access is declared on each route."""

from __future__ import annotations

import enum
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from entryway.devops.auth.authenticator import RequestAuthenticator
from entryway.devops.auth.challenge import unauthorized
from entryway.devops.auth.jwks import IdentityKeySource
from entryway.devops.auth.principal import Anonymous, Principal
from entryway.devops.auth.verifier import EntraTokenVerifier
from entryway.devops.orgs.connection_data import connection_data
from entryway.devops.orgs.repository import OrgRepository
from entryway.devops.orgs.service import Member, Organization, OrgService
from entryway.devops.web.errors import wrapped_exception
from entryway.kit.clock import Clock
from entryway.kit.web import JsonResponse
from entryway.store.db import Database

log = logging.getLogger("entryway.devops")

DEPLOYMENT_ID_SETTING = "deployment_id"

# How long a process trusts an organization it has looked up (id, name, tenant). Memberships are looked up
# on every request: removing a member takes effect at once.
ORG_CACHE_SECONDS = 5.0

T = TypeVar("T")


class Access(enum.Enum):
    ANYONE = "anyone"  # the handler decides; anonymous callers still reach it
    MEMBER = "member"  # an authenticated organization member


@dataclass
class DevOpsContext:
    identity_origin: str
    devops_origin: str
    db: Database
    clock: Clock
    ca_bundle: str | None
    http: httpx.AsyncClient | None = field(default=None)


Handler = Callable[[Request, Organization, Principal | Anonymous], Awaitable[Response]]


def not_found(message: str) -> Response:
    body = wrapped_exception(
        message,
        type_name="Microsoft.VisualStudio.Services.Common.VssServiceException, Microsoft.VisualStudio.Services.Common",
        type_key="VssServiceException",
    )
    return JsonResponse(body, status_code=404)


def create_devops_app(ctx: DevOpsContext) -> Starlette:
    # Built in the lifespan, inside the event loop the HTTP client will live on.
    authenticators: list[RequestAuthenticator] = []
    deployment_id: list[str] = []

    # SQLite answers these reads from a local file in microseconds, less than a hop to the thread pool and
    # back costs; a network database keeps the thread pool, so a slow query never stalls the event loop.
    reads_inline = ctx.db.engine.dialect.name == "sqlite"

    async def on_db(fn: Callable[[OrgService], T]) -> T:
        def run() -> T:
            with ctx.db.read() as session:
                return fn(OrgService(session, ctx.clock))

        return run() if reads_inline else await run_in_threadpool(run)

    found_orgs: dict[str, tuple[float, Organization]] = {}

    async def find_org(name: str) -> Organization | None:
        """Every request names its organization. Organizations are never renamed nor moved to another tenant,
        so a process keeps those it found for `ORG_CACHE_SECONDS`; one not found is asked for again."""
        now = ctx.clock.timestamp()
        cached = found_orgs.get(name.lower())
        if cached is not None and now - cached[0] < ORG_CACHE_SECONDS:
            return cached[1]
        org = await on_db(lambda s: s.find(name))
        if org is not None:
            found_orgs[name.lower()] = (now, org)
        return org

    async def find_member(org: Organization, object_id: str) -> Member | None:
        return await on_db(lambda s: s.find_member(org, object_id))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ctx.ca_bundle) if ctx.ca_bundle else True
        )
        ctx.http = httpx.AsyncClient(verify=verify, follow_redirects=False)
        key_source = IdentityKeySource(ctx.identity_origin, ctx.http, ctx.clock)
        verifier = EntraTokenVerifier(ctx.identity_origin, key_source, ctx.clock)
        authenticators[:] = [RequestAuthenticator(verifier, find_member)]
        yield
        await ctx.http.aclose()

    def org_route(path: str, handler: Handler, *, access: Access, methods: list[str] | None = None) -> Route:
        async def endpoint(request: Request) -> Response:
            org = await find_org(request.path_params["org"])
            if org is None:
                return not_found(f"The organization '{request.path_params['org']}' does not exist.")
            principal = await authenticators[0].authenticate(request.headers.get("authorization"), org)
            if access is Access.MEMBER and isinstance(principal, Anonymous):
                log.info("%s %s refused: %s", request.method, request.url.path, principal.reason)
                return unauthorized(
                    ctx.identity_origin, ctx.devops_origin, org.tenant_id, body=request.method != "HEAD"
                )
            return await handler(request, org, principal)

        return Route(path, endpoint, methods=methods or ["GET"])

    async def get_deployment_id() -> str:
        if not deployment_id:

            def read() -> str:
                with ctx.db.read() as session:
                    return OrgRepository(session).find_setting(DEPLOYMENT_ID_SETTING) or ""

            deployment_id.append(await run_in_threadpool(read))
        return deployment_id[0]

    async def connection_data_endpoint(
        _request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        assert isinstance(principal, Principal)
        body = connection_data(
            org, principal.member, devops_origin=ctx.devops_origin, deployment_id=await get_deployment_id()
        )
        return JsonResponse(body)

    async def org_root(request: Request, org: Organization, principal: Principal | Anonymous) -> Response:
        """Git Credential Manager's tenant discovery sends an unauthenticated HEAD here."""
        if isinstance(principal, Anonymous):
            return unauthorized(
                ctx.identity_origin, ctx.devops_origin, org.tenant_id, body=request.method != "HEAD"
            )
        return JsonResponse({"id": org.id, "name": org.name})

    async def health(_request: Request) -> Response:
        return JsonResponse({"status": "ok", "service": "devops"})

    routes = [
        Route("/health", health),
        org_route("/{org}/_apis/connectionData", connection_data_endpoint, access=Access.MEMBER),
        org_route("/{org}", org_root, access=Access.ANYONE, methods=["GET", "HEAD"]),
        org_route("/{org}/", org_root, access=Access.ANYONE, methods=["GET", "HEAD"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
