"""The audit package's place on the DevOps router: the recorder of authentication decisions, and
`GET /{org}/_apis/audit/auditlog` (Audit - Audit Log - Query) for organization administrators."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from entryway.devops.audit.recorder import AuditRecorder
from entryway.devops.audit.repository import AuditQuery
from entryway.devops.audit.service import (
    DEFAULT_BATCH_SIZE,
    AuditPage,
    AuditQueryError,
    decorated_entry,
    parse_time,
    query_page,
)
from entryway.devops.auth.principal import Anonymous, Principal
from entryway.devops.orgs.service import Organization
from entryway.devops.web.errors import wrapped_exception
from entryway.devops.web.routing import Access, DevOpsRouter
from entryway.kit.web import JsonResponse

VIEW_AUDIT_LOG = "View audit log"


def audit_routes(router: DevOpsRouter) -> list[BaseRoute]:
    """Register the recorder of every authentication decision on `router` and return the audit routes."""
    recorder = AuditRecorder(router.write, router.ctx.clock)
    router.auth_listeners.append(recorder)
    router.on_shutdown.append(recorder.close)

    async def audit_log(request: Request, org: Organization, principal: Principal | Anonymous) -> Response:
        assert isinstance(principal, Principal)  # Access.MEMBER
        if not principal.member.organization_admin:
            return access_denied(principal, org)
        params = request.query_params
        try:
            size = params.get("batchSize", "") or str(DEFAULT_BATCH_SIZE)
            if not size.isdigit():
                raise AuditQueryError("batchSize must be a number")
            query = AuditQuery(
                organization_id=org.id,
                since=parse_time(params["startTime"], "startTime") if params.get("startTime") else None,
                until=parse_time(params["endTime"], "endTime") if params.get("endTime") else None,
                limit=int(size),
            )
            token = params.get("continuationToken") or None
            page: AuditPage = await router.read(
                lambda session: query_page(session, query, continuation=token)
            )
        except AuditQueryError as exc:
            return bad_request(str(exc))
        return JsonResponse(
            {
                "decoratedAuditLogEntries": [
                    decorated_entry(row, page.principal_names) for row in page.entries
                ],
                "continuationToken": page.continuation_token,
                "hasMore": page.has_more,
            }
        )

    return [
        router.org_route("/{org}/_apis/audit/auditlog", audit_log, access=Access.MEMBER, scope="vso.auditlog")
    ]


def access_denied(principal: Principal, org: Organization) -> Response:
    message = (
        f"Access Denied: {principal.member.display_name} needs the following permission(s) on the resource "
        f"{org.name} to perform this action: {VIEW_AUDIT_LOG}"
    )
    body = wrapped_exception(
        message,
        type_name="Microsoft.VisualStudio.Services.Security.AccessCheckException, "
        "Microsoft.VisualStudio.Services.WebApi",
        type_key="AccessCheckException",
    )
    return JsonResponse(body, status_code=403)


def bad_request(message: str) -> Response:
    body = wrapped_exception(
        message,
        type_name="System.ArgumentException, mscorlib",
        type_key="ArgumentException",
    )
    return JsonResponse(body, status_code=400)
