"""Microsoft Graph's sign-in log: `GET /graph/{v1.0,beta}/auditLogs/signIns[/{id}]`
(https://learn.microsoft.com/graph/api/signin-list), the caller's tenant only, newest first.

Allowed: delegated `AuditLog.Read.All` with Global Administrator or Security Reader, or the app role of that
name (`graph_caller`). Query options: `$top` (1-1000), `$skiptoken` from `@odata.nextLink`, and a `$filter`
of `and`-joined clauses among `userPrincipalName eq '…'`, `appId eq '…'`, `createdDateTime ge|gt <time>`,
`status/errorCode eq|ne N`, `isInteractive eq true|false` and `conditionalAccessStatus eq '…'`; anything
else is Graph's 400, never silently ignored (an ignored filter would show more than was asked).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from entryway.identity.signin.log_reads import (
    MAX_PAGE_SIZE,
    SignInQuery,
    find_sign_in,
    find_sign_ins,
    sign_in_to_graph,
)
from entryway.identity.web.context import IdentityContext
from entryway.identity.web.graph import AUDIT_LOG_READ, GRAPH_VERSIONS, graph_caller, graph_error
from entryway.kit.ids import parse_guid
from entryway.kit.web import JsonResponse

DEFAULT_PAGE_SIZE = MAX_PAGE_SIZE
_CA_STATUSES = frozenset({"success", "failure", "notApplied"})
# One clause: a property (status/errorCode has a path), an operator, a value (quoted string, '' escapes ').
_CLAUSE = re.compile(
    r"\s*(?P<field>[A-Za-z]+(?:/[A-Za-z]+)?)\s+(?P<op>eq|ne|ge|gt)\s+(?P<value>'(?:[^']|'')*'|[^\s']+)\s*",
    re.IGNORECASE,
)
_AND = re.compile(r"and\b", re.IGNORECASE)


class FilterInvalid(ValueError):
    pass


def _string(value: str) -> str:
    if len(value) < 2 or not (value.startswith("'") and value.endswith("'")):
        raise FilterInvalid(f"'{value}' is not a string literal")
    return value[1:-1].replace("''", "'")


def _time(value: str) -> datetime:
    text = value[1:-1] if value.startswith("'") and value.endswith("'") else value
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise FilterInvalid(f"'{value}' is not a DateTimeOffset") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _integer(value: str) -> int:
    if not re.fullmatch(r"-?\d{1,9}", value):
        raise FilterInvalid(f"'{value}' is not an integer")
    return int(value)


def _user(query: SignInQuery, value: str) -> SignInQuery:
    return replace(query, user_principal_name=_string(value).strip().lower())


def _app(query: SignInQuery, value: str) -> SignInQuery:
    app_id = parse_guid(_string(value).strip())
    if app_id is None:
        raise FilterInvalid("appId is a GUID")
    return replace(query, app_id=app_id)


def _error_code(query: SignInQuery, value: str) -> SignInQuery:
    return replace(query, error_code=_integer(value))


def _failures(query: SignInQuery, value: str) -> SignInQuery:
    if _integer(value) != 0:
        raise FilterInvalid("status/errorCode ne is supported with 0 only")
    return replace(query, failures_only=True)


def _interactive(query: SignInQuery, value: str) -> SignInQuery:
    if value.lower() not in {"true", "false"}:
        raise FilterInvalid("isInteractive is true or false")
    return replace(query, is_interactive=value.lower() == "true")


def _ca_status(query: SignInQuery, value: str) -> SignInQuery:
    status = _string(value)
    if status not in _CA_STATUSES:
        raise FilterInvalid(f"conditionalAccessStatus is one of {', '.join(sorted(_CA_STATUSES))}")
    return replace(query, conditional_access_status=status)


# (property, operator) -> how it narrows the query.
_CLAUSES: dict[tuple[str, str], Callable[[SignInQuery, str], SignInQuery]] = {
    ("userprincipalname", "eq"): _user,
    ("appid", "eq"): _app,
    ("createddatetime", "ge"): lambda q, v: replace(q, since=_time(v)),
    ("createddatetime", "gt"): lambda q, v: replace(q, since=_time(v) + timedelta(microseconds=1)),
    ("status/errorcode", "eq"): _error_code,
    ("status/errorcode", "ne"): _failures,
    ("isinteractive", "eq"): _interactive,
    ("conditionalaccessstatus", "eq"): _ca_status,
}


def _apply_clause(query: SignInQuery, field: str, op: str, value: str) -> SignInQuery:
    handler = _CLAUSES.get((field.lower(), op.lower()))
    if handler is None:
        raise FilterInvalid(f"'{field} {op}' is not supported on signIns")
    return handler(query, value)


def parse_filter(text: str, query: SignInQuery) -> SignInQuery:
    """Apply an OData `$filter` of `and`-joined clauses; raises FilterInvalid."""
    position, first = 0, True
    text = text.strip()
    if not text:
        raise FilterInvalid("empty filter")
    while position < len(text):
        if not first:
            joined = _AND.match(text, position)
            if joined is None:
                raise FilterInvalid(f"expected 'and' at position {position}")
            position = joined.end()
        clause = _CLAUSE.match(text, position)
        if clause is None:
            raise FilterInvalid(f"cannot read a clause at position {position}")
        query = _apply_clause(query, clause["field"], clause["op"], clause["value"])
        position, first = clause.end(), False
    return query


def _page_query(request: Request, tenant_id: str) -> SignInQuery | str:
    """The query the options ask for, or Graph's message for the ones it cannot read."""
    params = request.query_params
    known = {"$top", "$filter", "$skiptoken"}
    unknown = sorted(k for k in params if k.startswith("$") and k not in known)
    if unknown:
        return f"Query option '{unknown[0]}' is not supported on signIns."
    top = params.get("$top", str(DEFAULT_PAGE_SIZE))
    if not top.isdigit() or not 1 <= int(top) <= MAX_PAGE_SIZE:
        return f"Invalid page size specified: '{top}'. Must be between 1 and {MAX_PAGE_SIZE}."
    skip = params.get("$skiptoken", "0")
    if not skip.isdigit() or len(skip) > 9:
        return "Invalid $skiptoken."
    query = SignInQuery(tenant_id=tenant_id, limit=int(top), offset=int(skip))
    if "$filter" in params:
        try:
            query = parse_filter(params["$filter"], query)
        except FilterInvalid as exc:
            return f"Invalid filter clause: {exc}."
    return query


def sign_in_log_routes(ctx: IdentityContext) -> list[Route]:
    def version_of(request: Request) -> str:
        return "beta" if request.url.path.startswith("/graph/beta/") else "v1.0"

    async def sign_ins(request: Request) -> Response:
        caller = await graph_caller(request, AUDIT_LOG_READ)
        if isinstance(caller, Response):
            return caller
        query = _page_query(request, caller.tenant_id)
        if isinstance(query, str):
            return graph_error(request, 400, "BadRequest", query)
        page_query = replace(query, limit=query.limit + 1)  # one more: is there a next page?

        def run() -> list[dict[str, object]]:
            if ctx.sign_in_log is not None:
                ctx.sign_in_log.flush()  # what was recorded before this request is listed
            with ctx.db.read() as session:
                return [sign_in_to_graph(r) for r in find_sign_ins(session, page_query)]

        values = await run_in_threadpool(run)
        version = version_of(request)
        body: dict[str, object] = {
            "@odata.context": f"{ctx.origin}/graph/{version}/$metadata#auditLogs/signIns"
        }
        if len(values) > query.limit:
            values = values[: query.limit]
            next_params = {k: v for k, v in request.query_params.items() if k != "$skiptoken"}
            next_params["$skiptoken"] = str(query.offset + query.limit)
            body["@odata.nextLink"] = (
                f"{ctx.origin}/graph/{version}/auditLogs/signIns?{urlencode(next_params)}"
            )
        body["value"] = values
        return JsonResponse(body)

    async def sign_in(request: Request) -> Response:
        caller = await graph_caller(request, AUDIT_LOG_READ)
        if isinstance(caller, Response):
            return caller
        entry_id = parse_guid(request.path_params["id"])

        def run() -> dict[str, object] | None:
            if entry_id is None:
                return None
            if ctx.sign_in_log is not None:
                ctx.sign_in_log.flush()
            with ctx.db.read() as session:
                row = find_sign_in(session, entry_id, caller.tenant_id)
                return None if row is None else sign_in_to_graph(row)

        found = await run_in_threadpool(run)
        if found is None:
            return graph_error(
                request, 404, "ResourceNotFound", f"Resource '{request.path_params['id']}' does not exist."
            )
        version = version_of(request)
        context = f"{ctx.origin}/graph/{version}/$metadata#auditLogs/signIns/$entity"
        return JsonResponse({"@odata.context": context, **found})

    routes = []
    for version in GRAPH_VERSIONS:
        routes += [
            Route(f"/graph/{version}/auditLogs/signIns", sign_ins, methods=["GET"]),
            Route(f"/graph/{version}/auditLogs/signIns/{{id}}", sign_in, methods=["GET"]),
        ]
    return routes
