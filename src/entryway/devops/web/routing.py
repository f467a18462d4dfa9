"""What every DevOps route shares: the organization in the path, request authentication, the access the
route declares, the 401 challenge, database access, and a hook that records each authentication decision.

Domain packages (projects, git, audit) build their routes with `DevOpsRouter.org_route`; access is declared
on the route (STYLE habit 8), never decided ad hoc in a handler.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from entryway.devops.auth.authenticator import RequestAuthenticator
from entryway.devops.auth.challenge import TF400813, VS403463, tf400813_not_authorized, unauthorized
from entryway.devops.auth.jobtoken import JobTokenVerifier
from entryway.devops.auth.principal import Anonymous, Principal
from entryway.devops.cae.checks import ContinuousAccess
from entryway.devops.cae.feed import CaeFeed
from entryway.devops.orgs.service import Member, Organization, OrgService
from entryway.devops.pats.format import is_well_formed as is_well_formed_pat
from entryway.devops.pats.scopes import FULL_ACCESS
from entryway.devops.pats.verify import PatUse, PatVerifier, RouteKind
from entryway.devops.web.errors import wrapped_exception
from entryway.keys.keyring import Keyring
from entryway.kit.clock import Clock
from entryway.kit.secrets import SecretDigester
from entryway.kit.web import JsonResponse, client_address
from entryway.store.db import Database

log = logging.getLogger("entryway.devops")

T = TypeVar("T")

# How long a process trusts an organization it has looked up (id, name, tenant). Memberships are looked up
# on every request: removing a member takes effect at once.
ORG_CACHE_SECONDS = 5.0

# The PAT scope a member route needs (`org_route(scope=…)`). A route that names none needs full access
# (`app_token`): scope enforcement fails closed. `ANY_SCOPE`: any PAT (connectionData), or the handler
# checks the scope itself (Git, where the operation decides: vso.code to read, vso.code_write to push).
ANY_SCOPE = ""


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
    # Where the Git repositories live on disk (`<data dir>/git`); None: no Git service.
    git_root: str | None = None
    # Keyed digests of PATs; None: PATs are not accepted.
    digester: SecretDigester | None = None
    # The DevOps web client's secret at the identity platform (devops/portal); None: no web sign-in.
    web_client_secret: str | None = None
    # The pipeline OIDC issuer's keys (devops/oidc); None: no OIDC tokens for service connections.
    oidc_keyring: Keyring | None = None
    # The key secret pipeline variables are encrypted under (devops/pipelines/variables.py); None: no runs.
    pipeline_variables_key: bytes | None = None


Handler = Callable[[Request, Organization, Principal | Anonymous], Awaitable[Response]]


@dataclass(frozen=True)
class AuthDecision:
    """One authentication decision, as the audit log records it. Never the credential itself."""

    request: Request
    organization: Organization | None
    organization_name: str
    principal: Principal | Anonymous | None
    accepted: bool
    status: int | None
    reason: str


AuthListener = Callable[[AuthDecision], Awaitable[None]]


def not_found(message: str) -> Response:
    body = wrapped_exception(
        message,
        type_name="Microsoft.VisualStudio.Services.Common.VssServiceException, Microsoft.VisualStudio.Services.Common",
        type_key="VssServiceException",
    )
    return JsonResponse(body, status_code=404)


class DevOpsRouter:
    def __init__(self, ctx: DevOpsContext) -> None:
        self.ctx = ctx
        # Set in the application's lifespan, inside the event loop the HTTP client lives on.
        self.authenticator: RequestAuthenticator | None = None
        self.auth_listeners: list[AuthListener] = []
        # Awaited when the application shuts down (the audit recorder writes what it still holds).
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []
        # SQLite answers reads from a local file in microseconds, less than a hop to the thread pool and back
        # costs; a network database keeps the thread pool, so a slow query never stalls the event loop.
        self._reads_inline = ctx.db.engine.dialect.name == "sqlite"
        self._found_orgs: dict[str, tuple[float, Organization]] = {}
        # Continuous access evaluation: the identity platform's critical events, read by this process.
        self.cae = ContinuousAccess(CaeFeed(self.read, ctx.clock), ctx.clock)
        self.pat_verifier: PatVerifier | None = (
            PatVerifier(
                digester=ctx.digester,
                clock=ctx.clock,
                is_well_formed=is_well_formed_pat,
                read=self.read,
                write=self.write,
                find_member=self.find_member,
                cae=self.cae,
            )
            if ctx.digester is not None
            else None
        )
        # Pipeline job tokens (System.AccessToken): the project's build service, on routes that accept it.
        self.job_verifier: JobTokenVerifier | None = (
            JobTokenVerifier(digester=ctx.digester, clock=ctx.clock, read=self.read)
            if ctx.digester is not None
            else None
        )

    # --- database ------------------------------------------------------------------------------------

    async def read(self, fn: Callable[[Session], T]) -> T:
        """A read-only session: inline on SQLite, in the thread pool otherwise."""

        def run() -> T:
            with self.ctx.db.read() as session:
                return fn(session)

        return run() if self._reads_inline else await run_in_threadpool(run)

    async def write(self, fn: Callable[[Session], T]) -> T:
        """A unit of work, off the event loop (a busy database must not stall it)."""

        def run() -> T:
            with self.ctx.db.unit_of_work() as session:
                return fn(session)

        return await run_in_threadpool(run)

    async def find_org(self, name: str) -> Organization | None:
        """Every request names its organization. Organizations are never renamed nor moved to another tenant,
        so a process keeps those it found for `ORG_CACHE_SECONDS`; one not found is asked for again."""
        now = self.ctx.clock.timestamp()
        cached = self._found_orgs.get(name.lower())
        if cached is not None and now - cached[0] < ORG_CACHE_SECONDS:
            return cached[1]
        org = await self.read(lambda session: OrgService(session, self.ctx.clock).find(name))
        if org is not None:
            self._found_orgs[name.lower()] = (now, org)
        return org

    async def find_member(self, org: Organization, object_id: str) -> Member | None:
        return await self.read(
            lambda session: OrgService(session, self.ctx.clock).find_member(org, object_id)
        )

    # --- authentication --------------------------------------------------------------------------------

    def unauthorized(
        self, request: Request, org: Organization, principal: Anonymous | None = None
    ) -> Response:
        """The 401: TF400813, or for a credential continuous access evaluation refused, its claims challenge
        or VS403463."""
        return unauthorized(
            self.ctx.identity_origin,
            self.ctx.devops_origin,
            org.tenant_id,
            body=request.method != "HEAD",
            message=VS403463 if principal is not None and principal.conditional_access_failed else TF400813,
            claims=principal.claims_challenge if principal is not None else None,
        )

    async def shutdown(self) -> None:
        for hook in self.on_shutdown:
            try:
                await hook()
            except Exception:
                log.exception("a shutdown hook failed")

    async def record(self, decision: AuthDecision) -> None:
        for listener in self.auth_listeners:
            try:
                await listener(decision)
            except Exception:  # an audit failure must not turn a decision into a 500
                log.exception("recording an authentication decision failed")

    async def authenticate(self, request: Request, org: Organization) -> Principal | Anonymous:
        assert self.authenticator is not None, "authenticate() before the lifespan started"
        kind = RouteKind.GIT if "/_git/" in request.url.path else RouteKind.REST
        use = PatUse(address_of(request), request.headers.get("user-agent", ""), kind)
        return await self.authenticator.authenticate(request.headers.get("authorization"), org, use)

    def insufficient_scope(self, request: Request, org: Organization, principal: Principal) -> Response:
        """A PAT without the route's scope: Azure DevOps answers 401 TF400813 naming the user."""
        return unauthorized(
            self.ctx.identity_origin,
            self.ctx.devops_origin,
            org.tenant_id,
            body=request.method != "HEAD",
            message=tf400813_not_authorized(principal.member.object_id),
        )

    def org_route(
        self,
        path: str,
        handler: Handler,
        *,
        access: Access,
        methods: list[str] | None = None,
        scope: str = FULL_ACCESS,
        job_token: bool = False,
    ) -> Route:
        """A route under `/{org}`: the organization must exist, and the caller is authenticated (or refused
        with the 401 challenge when the route is for members); a PAT must hold `scope` on a member route.
        A pipeline job token (the project's build service) is accepted only where `job_token` says so; any
        other member route refuses it with 401 TF400813 naming the identity, an open route sees it as
        anonymous. Each decision goes to the listeners."""

        async def endpoint(request: Request) -> Response:
            name = request.path_params["org"]
            org = await self.find_org(name)
            if org is None:
                await self.record(AuthDecision(request, None, name, None, False, 404, "no such organization"))
                return not_found(f"The organization '{name}' does not exist.")
            principal = await self.authenticate(request, org)
            if isinstance(principal, Principal) and principal.job is not None and not job_token:
                reason = f"job token of run {principal.job.run_id}: this route does not accept job tokens"
                if access is Access.MEMBER:
                    log.info("%s %s refused: %s", request.method, request.url.path, reason)
                    await self.record(AuthDecision(request, org, org.name, principal, False, 401, reason))
                    return self.insufficient_scope(request, org, principal)
                principal = Anonymous(principal.credential, reason, principal.member.object_id)
            if access is Access.MEMBER and isinstance(principal, Anonymous):
                log.info("%s %s refused: %s", request.method, request.url.path, principal.reason)
                await self.record(
                    AuthDecision(request, org, org.name, principal, False, 401, principal.reason)
                )
                return self.unauthorized(request, org, principal)
            if (
                access is Access.MEMBER
                and isinstance(principal, Principal)
                and scope
                and not principal.allows(scope)
            ):
                held = " ".join(sorted(principal.pat_scopes or ()))
                reason = f"PAT {principal.pat_id} does not hold {scope} ({held})"
                log.info("%s %s refused: %s", request.method, request.url.path, reason)
                await self.record(AuthDecision(request, org, org.name, principal, False, 401, reason))
                return self.insufficient_scope(request, org, principal)
            if isinstance(principal, Principal) or principal.credential.value:
                # Anonymous requests without a credential on open routes (GCM's HEAD) are not decisions.
                accepted = isinstance(principal, Principal)
                reason = "" if accepted else getattr(principal, "reason", "")
                await self.record(AuthDecision(request, org, org.name, principal, accepted, None, reason))
            return await handler(request, org, principal)

        return Route(path, endpoint, methods=methods or ["GET"])


def address_of(request: Request) -> str:
    return client_address(request)
