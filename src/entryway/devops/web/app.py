"""The DevOps service's Starlette application. Access is declared on each route (`routing.DevOpsRouter`)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from entryway.devops.audit.routes import audit_routes
from entryway.devops.auth.authenticator import RequestAuthenticator
from entryway.devops.auth.jwks import IdentityKeySource
from entryway.devops.auth.principal import Anonymous, Principal
from entryway.devops.auth.verifier import EntraTokenVerifier
from entryway.devops.connections.routes import connections_routes
from entryway.devops.git.routes import git_routes
from entryway.devops.leaks.routes import leaks_routes
from entryway.devops.oidc.routes import oidc_routes
from entryway.devops.orgs.connection_data import connection_data
from entryway.devops.orgs.repository import OrgRepository
from entryway.devops.orgs.service import Organization
from entryway.devops.pats.routes import pats_routes
from entryway.devops.pats.sessiontokens import sessiontokens_routes
from entryway.devops.pipelines.routes import pipelines_routes
from entryway.devops.portal.routes import portal_routes
from entryway.devops.projects.routes import projects_routes
from entryway.devops.web.routing import (
    ANY_SCOPE,
    ORG_CACHE_SECONDS,
    Access,
    DevOpsContext,
    DevOpsRouter,
    not_found,
)
from entryway.kit.web import JsonResponse

__all__ = ["ORG_CACHE_SECONDS", "Access", "DevOpsContext", "create_devops_app", "not_found"]

DEPLOYMENT_ID_SETTING = "deployment_id"


def create_devops_app(ctx: DevOpsContext) -> Starlette:
    router = DevOpsRouter(ctx)
    deployment_id: list[str] = []

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ctx.ca_bundle) if ctx.ca_bundle else True
        )
        ctx.http = httpx.AsyncClient(verify=verify, follow_redirects=False)
        key_source = IdentityKeySource(ctx.identity_origin, ctx.http, ctx.clock)
        verifier = EntraTokenVerifier(ctx.identity_origin, key_source, ctx.clock)
        router.authenticator = RequestAuthenticator(
            verifier, router.find_member, router.pat_verifier, router.job_verifier, router.cae
        )
        await router.cae.feed.refresh()  # the critical events of the last 28 h, before the first request
        yield
        await router.shutdown()
        await ctx.http.aclose()

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
            return router.unauthorized(request, org, principal)
        return JsonResponse({"id": org.id, "name": org.name})

    async def health(_request: Request) -> Response:
        return JsonResponse({"status": "ok", "service": "devops"})

    routes: list[BaseRoute] = [
        Route("/health", health),
        router.org_route(
            "/{org}/_apis/connectionData",
            connection_data_endpoint,
            access=Access.MEMBER,
            scope=ANY_SCOPE,
            job_token=True,  # the agent's first call with System.AccessToken: who am I
        ),
        *domain_routes_of(router),
        router.org_route("/{org}", org_root, access=Access.ANYONE, methods=["GET", "HEAD"]),
        router.org_route("/{org}/", org_root, access=Access.ANYONE, methods=["GET", "HEAD"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def domain_routes_of(router: DevOpsRouter) -> list[BaseRoute]:
    """The routes of the domain packages (projects, git, audit). Each package adds itself here."""
    return [
        *audit_routes(router),  # and the recorder of every authentication decision
        *oidc_routes(router),  # the pipeline OIDC issuer (not under an organization)
        *connections_routes(router),  # service connections and the pipeline oidctoken endpoint
        *projects_routes(router),
        *git_routes(router),
        *pipelines_routes(router),  # pipelines, runs (executed in the background) and their logs
        *pats_routes(router),
        *sessiontokens_routes(router),  # Git Credential Manager's PAT mode
        *leaks_routes(router),  # leaked-token reports (not under an organization)
        *portal_routes(router),  # the web pages (sign-in, PATs); before `/{org}`, which would take `/_signin`
    ]
