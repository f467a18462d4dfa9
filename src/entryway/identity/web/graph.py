"""The part of Microsoft Graph Entryway serves, on the identity origin under `/graph/v1.0` (and `/graph/beta`):
Conditional Access policies and named locations (`identity/conditionalAccess/...`), and the caller check every
Graph route shares (`graph_caller`, also used by the sign-in log's routes).

Graph's shapes: collections as `{"@odata.context", "value": [...]}`, errors as `{"error": {"code", "message",
"innerError": {"date", "request-id", "client-request-id"}}}` (https://learn.microsoft.com/graph/errors). The
caller is a bearer token this identity platform issued for Microsoft Graph (audience
`https://graph.microsoft.com` or its app id), in the tenant of its `tid`: delegated, with the permission in
`scp` AND a directory role that allows it (as Graph checks both), or app-only with the permission as an app
role (`roles`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from entryway.identity.directory.conditional_access import (
    ConditionalAccessError,
    ConditionalAccessService,
    location_to_graph,
    policy_to_graph,
)
from entryway.identity.directory.first_party import MICROSOFT_GRAPH
from entryway.identity.directory.groups import ROLE_TEMPLATES
from entryway.identity.directory.reads import SqlDirectory
from entryway.identity.protocol.claims import v1_issuer, v2_issuer
from entryway.identity.web.context import IdentityContext, log
from entryway.keys.signer import KeyringVerifier
from entryway.kit.ids import new_guid, parse_guid
from entryway.kit.web import BodyTooLarge, JsonResponse, read_body

GRAPH_APP_ID = MICROSOFT_GRAPH.app_id
GRAPH_AUDIENCES = frozenset({"https://graph.microsoft.com", "https://graph.microsoft.com/", GRAPH_APP_ID})
# Where `graph_caller` finds the identity context: the identity app's state (create_identity_app sets it).
STATE_KEY = "entryway_identity"
GRAPH_VERSIONS = ("v1.0", "beta")
# Clock skew accepted on `nbf` (the DevOps service's JWT checks use the same five minutes).
NOT_BEFORE_LEEWAY_SECONDS = 300

GLOBAL_ADMINISTRATOR = ROLE_TEMPLATES["Global Administrator"]
CONDITIONAL_ACCESS_ADMINISTRATOR = ROLE_TEMPLATES["Conditional Access Administrator"]
SECURITY_READER = ROLE_TEMPLATES["Security Reader"]

POLICY_READ = "Policy.Read.All"
POLICY_WRITE = "Policy.ReadWrite.ConditionalAccess"
AUDIT_LOG_READ = "AuditLog.Read.All"


@dataclass(frozen=True)
class _Permission:
    granted_by: frozenset[str]  # token permissions (scp values or app roles) that include it
    directory_roles: frozenset[str]  # a delegated caller also needs one of these roles


# Graph's permission reference and the Conditional Access / sign-in log role tables (least privilege first).
PERMISSIONS: dict[str, _Permission] = {
    POLICY_READ: _Permission(
        frozenset({POLICY_READ, POLICY_WRITE}),
        frozenset({GLOBAL_ADMINISTRATOR, CONDITIONAL_ACCESS_ADMINISTRATOR, SECURITY_READER}),
    ),
    POLICY_WRITE: _Permission(
        frozenset({POLICY_WRITE}), frozenset({GLOBAL_ADMINISTRATOR, CONDITIONAL_ACCESS_ADMINISTRATOR})
    ),
    AUDIT_LOG_READ: _Permission(
        frozenset({AUDIT_LOG_READ}), frozenset({GLOBAL_ADMINISTRATOR, SECURITY_READER})
    ),
}


@dataclass(frozen=True)
class GraphCaller:
    """Who called a Graph route, once `graph_caller` has let them in."""

    tenant_id: str
    kind: Literal["user", "app"]
    object_id: str  # the user's, or the client's service principal's
    client_app_id: str
    user_principal_name: str  # "" for an app
    permissions: tuple[str, ...]  # the token's scp values or app roles


def graph_error(request: Request, status: int, code: str, message: str) -> Response:
    """Graph's error body; `client-request-id` is echoed when the client sent one."""
    ctx: IdentityContext | None = getattr(request.app.state, STATE_KEY, None)
    now = ctx.clock.now() if ctx is not None else datetime.now(UTC)
    request_id = new_guid()
    client_request_id = parse_guid(request.headers.get("client-request-id", "")) or request_id
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": now.strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }
    headers = {"request-id": request_id, "client-request-id": client_request_id}
    if status == 401:
        headers["WWW-Authenticate"] = (
            'Bearer realm="", authorization_uri="", client_id="00000003-0000-0000-c000-000000000000"'
        )
    return JsonResponse(body, status_code=status, headers=headers)


def _unauthorized(request: Request, message: str) -> Response:
    return graph_error(request, 401, "InvalidAuthenticationToken", message)


def _verified(ctx: IdentityContext, token: str) -> tuple[dict[str, Any] | None, str]:
    """The token's claims if it is a live Graph token of this platform, else None and Graph's message."""
    claims = KeyringVerifier(ctx.keyring).verified_claims(token)
    if claims is None:
        return None, "Access token validation failure. Invalid signature or token format."
    tid = claims.get("tid")
    if not isinstance(tid, str) or claims.get("iss") not in {
        v1_issuer(ctx.origin, tid),
        v2_issuer(ctx.origin, tid),
    }:
        return None, "Access token validation failure. Invalid issuer."
    if claims.get("aud") not in GRAPH_AUDIENCES:
        return None, "Access token validation failure. Invalid audience."
    now = ctx.clock.timestamp()
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if not isinstance(exp, int) or exp <= now:
        return None, "Lifetime validation failed, the token is expired."
    if not isinstance(nbf, int) or nbf > now + NOT_BEFORE_LEEWAY_SECONDS:
        return None, "Lifetime validation failed, the token is not yet valid."
    return claims, ""


async def graph_caller(request: Request, permission: str) -> GraphCaller | Response:
    """The caller of a Graph route if they hold `permission` (one of PERMISSIONS), else the Graph error to
    answer with: 401 for a missing or unusable token, 403 for a token or user without the permission. The
    directory (user enabled, roles) is read now, not taken from the token: a removed administrator loses
    access at once."""
    ctx: IdentityContext = getattr(request.app.state, STATE_KEY)
    rule = PERMISSIONS[permission]
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized(request, "Access token is empty.")
    claims, message = _verified(ctx, token.strip())
    if claims is None:
        return _unauthorized(request, message)
    tenant_id = str(claims["tid"])
    client_app_id = str(claims.get("appid") or claims.get("azp") or "")
    object_id = str(claims.get("oid", ""))
    app_only = claims.get("idtyp") == "app" or not claims.get("scp")
    granted = tuple(claims.get("roles") or ()) if app_only else tuple(str(claims.get("scp", "")).split())

    def check(session: Session) -> tuple[bool, bool, str]:
        """(the principal is usable, it holds a role allowing the permission, its UPN)."""
        directory = SqlDirectory(session.connection())
        if directory.find_tenant(tenant_id) is None:
            return False, False, ""
        if app_only:
            client = directory.find_client(tenant_id, client_app_id)
            usable = client is not None and client.service_principal_enabled
            return usable, True, ""
        user = directory.find_user(tenant_id, object_id)
        if user is None or not user.account_enabled:
            return False, False, ""
        roles = set(directory.find_memberships(tenant_id, object_id).roles)
        return True, bool(roles & rule.directory_roles), user.user_principal_name

    def run() -> tuple[bool, bool, str]:
        with ctx.db.read() as session:
            return check(session)

    usable, has_role, upn = await run_in_threadpool(run)
    if not usable:
        return _unauthorized(
            request, "Access token validation failure. The principal is disabled or deleted."
        )
    if not set(granted) & rule.granted_by:
        return graph_error(
            request,
            403,
            "AccessDenied",
            "You cannot perform the requested operation, required scopes are missing in the token.",
        )
    if not has_role:
        return graph_error(
            request, 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        )
    return GraphCaller(
        tenant_id,
        "app" if app_only else "user",
        object_id,
        client_app_id,
        upn,
        tuple(str(g) for g in granted),
    )


# --- Conditional Access routes ---------------------------------------------------------------------------

_Handler = Callable[[ConditionalAccessService, GraphCaller], Any]


def conditional_access_routes(ctx: IdentityContext) -> list[Route]:
    """`/graph/{v1.0,beta}/identity/conditionalAccess/{policies,namedLocations}[/{id}]`."""

    def context_url(request: Request, collection: str, entity: bool = False) -> str:
        version = "beta" if request.url.path.startswith("/graph/beta/") else "v1.0"
        suffix = "/$entity" if entity else ""
        return f"{ctx.origin}/graph/{version}/$metadata#identity/conditionalAccess/{collection}{suffix}"

    async def unit(request: Request, permission: str, fn: _Handler) -> Any:
        caller = await graph_caller(request, permission)
        if isinstance(caller, Response):
            return caller

        def run() -> Any:
            with ctx.db.unit_of_work() as session:
                return fn(ConditionalAccessService(session, ctx.clock), caller)

        try:
            return await run_in_threadpool(run)
        except ConditionalAccessError as exc:
            code = {404: "ResourceNotFound", 409: "Conflict"}.get(exc.status, "BadRequest")
            log.info("graph %s %s refused: %s", request.method, request.url.path, exc)
            return graph_error(request, exc.status, code, str(exc))

    async def body(request: Request) -> dict[str, Any] | Response:
        try:
            data = orjson.loads(await read_body(request))
        except (orjson.JSONDecodeError, BodyTooLarge):
            return graph_error(
                request,
                400,
                "BadRequest",
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload "
                "is of valid JSON format.",
            )
        if not isinstance(data, dict):
            return graph_error(request, 400, "BadRequest", "The request body must be a JSON object.")
        return data

    def one_id(request: Request) -> str:
        return parse_guid(request.path_params["id"]) or "00000000-0000-0000-0000-000000000000"

    def collection_endpoint(
        name: str,
        list_rows: Callable[[ConditionalAccessService, str], list[Any]],
        render: Callable[[Any], dict[str, Any]],
        create: Callable[[ConditionalAccessService, str, dict[str, Any]], Any],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if request.method == "GET":
                values = await unit(
                    request, POLICY_READ, lambda s, c: [render(r) for r in list_rows(s, c.tenant_id)]
                )
                if isinstance(values, Response):
                    return values
                return JsonResponse({"@odata.context": context_url(request, name), "value": values})
            data = await body(request)
            if isinstance(data, Response):
                # Authentication first, as Graph does: a caller without access learns nothing from a 400.
                caller = await graph_caller(request, POLICY_WRITE)
                return caller if isinstance(caller, Response) else data
            created = await unit(request, POLICY_WRITE, lambda s, c: render(create(s, c.tenant_id, data)))
            if isinstance(created, Response):
                return created
            return JsonResponse(
                {"@odata.context": context_url(request, name, entity=True), **created}, status_code=201
            )

        return endpoint

    def item_endpoint(
        name: str,
        find: Callable[[ConditionalAccessService, str, str], Any],
        render: Callable[[Any], dict[str, Any]],
        update: Callable[[ConditionalAccessService, str, str, dict[str, Any]], Any],
        remove: Callable[[ConditionalAccessService, str, str], None],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            ref = one_id(request)
            if request.method == "GET":
                found = await unit(request, POLICY_READ, lambda s, c: render(find(s, c.tenant_id, ref)))
                if isinstance(found, Response):
                    return found
                return JsonResponse({"@odata.context": context_url(request, name, entity=True), **found})
            if request.method == "DELETE":
                done = await unit(request, POLICY_WRITE, lambda s, c: remove(s, c.tenant_id, ref))
                return done if isinstance(done, Response) else Response(status_code=204)
            data = await body(request)
            if isinstance(data, Response):
                caller = await graph_caller(request, POLICY_WRITE)
                return caller if isinstance(caller, Response) else data
            done = await unit(request, POLICY_WRITE, lambda s, c: update(s, c.tenant_id, ref, data))
            return done if isinstance(done, Response) else Response(status_code=204)

        return endpoint

    policies = collection_endpoint(
        "policies",
        lambda s, t: s.list_policies(t),
        policy_to_graph,
        lambda s, t, d: s.create_policy(t, d),
    )
    policy = item_endpoint(
        "policies",
        lambda s, t, ref: s.find_policy(t, ref),
        policy_to_graph,
        lambda s, t, ref, d: s.update_policy(t, ref, d),
        lambda s, t, ref: s.delete_policy(t, ref),
    )
    locations = collection_endpoint(
        "namedLocations",
        lambda s, t: s.list_locations(t),
        location_to_graph,
        lambda s, t, d: s.create_location(t, d),
    )
    location = item_endpoint(
        "namedLocations",
        lambda s, t, ref: s.find_location(t, ref),
        location_to_graph,
        lambda s, t, ref, d: s.update_location(t, ref, d),
        lambda s, t, ref: s.delete_location(t, ref),
    )
    routes = []
    for version in GRAPH_VERSIONS:
        base = f"/graph/{version}/identity/conditionalAccess"
        routes += [
            Route(f"{base}/policies", policies, methods=["GET", "POST"]),
            Route(f"{base}/policies/{{id}}", policy, methods=["GET", "PATCH", "DELETE"]),
            Route(f"{base}/namedLocations", locations, methods=["GET", "POST"]),
            Route(f"{base}/namedLocations/{{id}}", location, methods=["GET", "PATCH", "DELETE"]),
        ]
    return routes
