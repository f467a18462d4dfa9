"""`/{org}/_apis/tokens/pats`: the PAT Lifecycle Management API in Azure DevOps' shapes (devops-wire-contract 3).

Errors are in-band, as Azure DevOps answers them: status 200 and `{"patToken": null, "patTokenError": "<value>",
"patTokenErrorMessage": "<for a person>"}` (the message field is 7.2's; earlier clients ignore it).
Only a user's Entra token may call it: an app-only token or a PAT gets 403 with Azure DevOps' refusal,
`InvalidAccessException` "The requested operation is not allowed." (vsts-rest-api-specs#571). A missing or
malformed api-version gets the WrappedException of every other route.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from entryway.devops.audit.recorder import Actor
from entryway.devops.auth.credentials import CredentialKind
from entryway.devops.auth.principal import Anonymous, Principal
from entryway.devops.orgs.service import Organization
from entryway.devops.pats.policy import Requester
from entryway.devops.pats.service import (
    MAX_TOP,
    DisplayFilter,
    Owner,
    Pat,
    PatError,
    PatErrorKind,
    PatService,
    SortBy,
)
from entryway.devops.projects.routes import check_api_version
from entryway.devops.web.errors import wrapped_exception
from entryway.devops.web.routing import Access, DevOpsRouter
from entryway.devops.web.wire import wire_time
from entryway.kit.web import BodyTooLarge, JsonResponse, read_body

log = logging.getLogger("entryway.devops.pats")

PATS_PATH = "/{org}/_apis/tokens/pats"
_COMMON = "Microsoft.VisualStudio.Services.Common"
NOT_ALLOWED = "The requested operation is not allowed."


def pat_token(pat: Pat) -> dict[str, Any]:
    """PatToken; `token` is the value only in the answer to a create."""
    return {
        "displayName": pat.display_name,
        "validTo": wire_time(pat.valid_to),
        "scope": pat.scope,
        "targetAccounts": None if pat.organization_id is None else [pat.organization_id],
        "validFrom": wire_time(pat.valid_from),
        "authorizationId": pat.authorization_id,
        "token": pat.token,
    }


def _result(pat: Pat | None) -> Response:
    return JsonResponse({"patToken": None if pat is None else pat_token(pat), "patTokenError": "none"})


def _in_band(error: PatError) -> Response:
    log.info("PAT API refused: %s (%s)", error.kind.value, error)
    return JsonResponse(
        {"patToken": None, "patTokenError": error.kind.value, "patTokenErrorMessage": error.message}
    )


def not_allowed() -> Response:
    body = wrapped_exception(
        NOT_ALLOWED,
        type_name=f"{_COMMON}.InvalidAccessException, {_COMMON}",
        type_key="InvalidAccessException",
    )
    return JsonResponse(body, status_code=403)


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise PatError(PatErrorKind.INVALID_VALID_TO, "validTo is not a string")
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise PatError(PatErrorKind.INVALID_VALID_TO, "validTo is not ISO 8601") from exc


def _parse_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    raise PatError(PatErrorKind.INVALID_TARGET_ACCOUNTS, f"{what} is not a boolean")


class _PatsApi:
    def __init__(self, router: DevOpsRouter) -> None:
        self.router = router
        self.ctx = router.ctx

    def service(self, session: Any) -> PatService:
        return PatService(session, self.ctx.clock, self.ctx.digester)

    @staticmethod
    def owner_of(principal: Principal) -> Owner:
        return Owner(principal.member.object_id, principal.tenant_id, principal.member.principal_name)

    @staticmethod
    def requester_of(principal: Principal) -> Requester:
        """The caller and the groups their Entra token carries, for the policies' allowlists."""
        return Requester(principal.member.object_id, principal.groups)

    @staticmethod
    def actor_of(request: Request, principal: Principal) -> Actor:
        return Actor.of(request, principal)

    @staticmethod
    def user_of(principal: Principal | Anonymous) -> Principal | None:
        """The caller when it is a user with an Entra token; None for app-only tokens and PATs."""
        assert isinstance(principal, Principal), "a member route"
        if principal.is_app_only or principal.credential.kind is not CredentialKind.JWT:
            return None
        return principal

    @staticmethod
    async def json_body(request: Request) -> dict[str, Any] | None:
        try:
            body = orjson.loads(await read_body(request))
        except (BodyTooLarge, orjson.JSONDecodeError):
            return None
        return body if isinstance(body, dict) else None

    async def refused(self, request: Request, principal: Principal | Anonymous) -> Response | Principal:
        if (bad_version := check_api_version(request)) is not None:
            return bad_version
        user = self.user_of(principal)
        if user is None:
            log.info("PAT API refused to %s: not a user's Entra token", request.url.path)
            return not_allowed()
        return user

    # --- handlers ----------------------------------------------------------------------------------------

    async def get(self, request: Request, org: Organization, principal: Principal | Anonymous) -> Response:
        user = await self.refused(request, principal)
        if isinstance(user, Response):
            return user
        owner = self.owner_of(user)
        query = request.query_params
        if "authorizationId" in query:
            try:
                pat = await self.router.read(
                    lambda s: self.service(s).get(owner, org, query["authorizationId"])
                )
            except PatError as error:
                return _in_band(error)
            return _result(pat)
        try:
            display_filter = DisplayFilter(query.get("displayFilterOption", "active").strip().lower())
        except ValueError:
            display_filter = DisplayFilter.ACTIVE
        sort_names = {s.value.lower(): s for s in SortBy}
        sort_by = sort_names.get(query.get("sortByOption", "").strip().lower(), SortBy.DISPLAY_NAME)
        ascending = query.get("isSortAscending", "true").strip().lower() != "false"
        raw_top = query.get("$top", "")
        top = int(raw_top) if raw_top.isdigit() else MAX_TOP
        continuation = query.get("continuationToken", "")
        page = await self.router.read(
            lambda s: self.service(s).list_pats(
                owner,
                org,
                display_filter=display_filter,
                sort_by=sort_by,
                ascending=ascending,
                top=top,
                continuation_token=continuation,
            )
        )
        return JsonResponse(
            {"continuationToken": page.continuation_token, "patTokens": [pat_token(p) for p in page.pats]}
        )

    async def create(self, request: Request, org: Organization, principal: Principal | Anonymous) -> Response:
        user = await self.refused(request, principal)
        if isinstance(user, Response):
            return user
        owner, actor = self.owner_of(user), self.actor_of(request, user)
        requester = self.requester_of(user)
        body = await self.json_body(request)
        try:
            if body is None:
                raise PatError(PatErrorKind.DISPLAY_NAME_REQUIRED, "no JSON object in the body")
            valid_to = None if body.get("validTo") is None else _parse_time(body["validTo"])
            all_orgs = _parse_bool(body.get("allOrgs", False), "allOrgs")
            pat = await self.router.write(
                lambda s: self.service(s).create(
                    owner,
                    org,
                    actor,
                    display_name=body.get("displayName"),
                    scope=body.get("scope"),
                    valid_to=valid_to,
                    all_orgs=all_orgs,
                    requester=requester,
                    source="api",
                )
            )
        except PatError as error:
            return _in_band(error)
        return _result(pat)

    async def update(self, request: Request, org: Organization, principal: Principal | Anonymous) -> Response:
        user = await self.refused(request, principal)
        if isinstance(user, Response):
            return user
        owner, actor = self.owner_of(user), self.actor_of(request, user)
        requester = self.requester_of(user)
        body = await self.json_body(request)
        try:
            if body is None:
                raise PatError(PatErrorKind.INVALID_AUTHORIZATION_ID, "no JSON object in the body")
            valid_to = None if body.get("validTo") is None else _parse_time(body["validTo"])
            all_orgs = None if body.get("allOrgs") is None else _parse_bool(body["allOrgs"], "allOrgs")
            pat = await self.router.write(
                lambda s: self.service(s).update(
                    owner,
                    org,
                    actor,
                    body.get("authorizationId"),
                    display_name=body.get("displayName"),
                    scope=body.get("scope"),
                    valid_to=valid_to,
                    all_orgs=all_orgs,
                    requester=requester,
                )
            )
        except PatError as error:
            return _in_band(error)
        return _result(pat)

    async def revoke(self, request: Request, org: Organization, principal: Principal | Anonymous) -> Response:
        """204 with an empty body, as Azure DevOps' example shows; a failure is in-band like the others."""
        user = await self.refused(request, principal)
        if isinstance(user, Response):
            return user
        owner, actor = self.owner_of(user), self.actor_of(request, user)
        key = request.query_params.get("authorizationId")
        try:
            await self.router.write(lambda s: self.service(s).revoke(owner, org, actor, key))
        except PatError as error:
            return _in_band(error)
        return Response(status_code=204)


def pats_routes(router: DevOpsRouter) -> list[BaseRoute]:
    api = _PatsApi(router)
    member = Access.MEMBER
    return [
        router.org_route(PATS_PATH, api.get, access=member),
        router.org_route(PATS_PATH, api.create, access=member, methods=["POST"]),
        router.org_route(PATS_PATH, api.update, access=member, methods=["PUT"]),
        router.org_route(PATS_PATH, api.revoke, access=member, methods=["DELETE"]),
    ]
