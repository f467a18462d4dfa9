"""Git Credential Manager's PAT mode (devops-wire-contract 1.5): the location lookup and the legacy session-token
API it creates a PAT with.

GCM (`AzureDevOpsRestApi.CreatePersonalAccessTokenAsync`) makes two calls with the user's Entra token:

1. `GET /{org}/_apis/ServiceDefinitions/LocationService2/951917AC-A960-4999-8464-E3F0AA25B381?api-version=1.0`
   and takes the first JSON string field named `location` as the identity service's base URL. In Azure DevOps
   that is an SPS host; here it is `{devops origin}/{org}/`, so the next call lands on this organization.
2. `POST {location}_apis/token/sessiontokens?api-version=1.0&tokentype=compact` with
   `{ "scope" : "vso.code_write vso.packaging", "displayName" : "Git: {org url} on {MACHINE}" }`, and takes the
   first JSON string field named `token`. On any other status it prints `Failed to create PAT: <message>`,
   the first JSON string field named `message`.

The PAT is made by `PatService.create` (source `sessiontoken`), so it is the same PAT, audited the same way and
subject to the same policies as one made through the lifecycle API. Errors are Azure DevOps'
`SessionTokenCreateException` (400) whose message starts with the `SessionTokenError` name, as
`SessionTokenController.CheckSessionTokenResultError` throws it (`FailedToIssueAccessToken`: 503).

Only a user's Entra token may create one: a PAT or an app-only token gets the PAT API's 403.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from entryway.devops.audit.recorder import Actor
from entryway.devops.auth.credentials import CredentialKind
from entryway.devops.auth.principal import Anonymous, Principal
from entryway.devops.orgs.service import Organization
from entryway.devops.pats.policy import Requester
from entryway.devops.pats.routes import not_allowed
from entryway.devops.pats.service import Owner, Pat, PatError, PatErrorKind, PatService
from entryway.devops.projects.routes import check_api_version
from entryway.devops.web.errors import wrapped_exception
from entryway.devops.web.routing import ANY_SCOPE, Access, DevOpsRouter, not_found
from entryway.devops.web.wire import wire_time
from entryway.kit.ids import new_guid
from entryway.kit.web import BodyTooLarge, JsonResponse, read_body

log = logging.getLogger("entryway.devops.pats")

LOCATION_SERVICE_TYPE = "LocationService2"
# The SPS location service's identifier, as GCM asks for it (AzureDevOpsRestApi.GetIdentityServiceUriAsync).
LOCATION_SERVICE_ID = "951917ac-a960-4999-8464-e3f0aa25b381"
SERVICE_DEFINITION_PATH = "/{org}/_apis/ServiceDefinitions/{service_type}/{identifier}"
SESSION_TOKENS_PATH = "/{org}/_apis/token/sessiontokens"
PAT_SOURCE = "sessiontoken"  # devops_pats.source of the PATs made here
# SessionTokenType: Compact is an opaque PAT; SelfDescribing (the API's default) would be a JWT, which
# Entryway does not issue.
COMPACT = "compact"
MAX_BODY = 64 * 1024
EMPTY_GUID = "00000000-0000-0000-0000-000000000000"

_DELEGATED = "Microsoft.VisualStudio.Services.DelegatedAuthorization"
_WEBAPI = "Microsoft.VisualStudio.Services.WebApi"


def service_definition(location: str) -> dict[str, Any]:
    """The LocationService2 ServiceDefinition. Its only `location` is the organization's base URL: GCM takes
    the first `"location": "..."` in the text, so nothing before `locationMappings` may carry that name."""
    return {
        "serviceType": LOCATION_SERVICE_TYPE,
        "identifier": LOCATION_SERVICE_ID,
        "displayName": "SPS Location Service",
        "relativeToSetting": "fullyQualified",
        "relativePath": "",
        "description": "The organization's identity and token service.",
        "serviceOwner": LOCATION_SERVICE_ID,
        "locationMappings": [{"accessMappingMoniker": "HostGuidAccessMapping", "location": location}],
        "toolId": "Framework",
        "parentServiceType": "",
        "parentIdentifier": EMPTY_GUID,
        "status": "online",
        "properties": {},
        "resourceVersion": 1,
        "minVersion": "1.0",
        "maxVersion": "1.0",
        "releasedVersion": "1.0",
    }


def session_token(pat: Pat, org: Organization, user_id: str) -> dict[str, Any]:
    """The legacy SessionToken (devops-wire-contract 3). `token` carries the value, this once. `accessId` is
    not kept by Entryway: each answer has a fresh one."""
    return {
        "clientId": EMPTY_GUID,
        "accessId": new_guid(),
        "authorizationId": pat.authorization_id,
        "hostAuthorizationId": EMPTY_GUID,
        "userId": user_id,
        "validFrom": wire_time(pat.valid_from),
        "validTo": wire_time(pat.valid_to),
        "displayName": pat.display_name,
        "scope": pat.scope,
        "targetAccounts": [org.id] if pat.organization_id is not None else None,
        "token": pat.token,
        "alternateToken": None,
        "isValid": True,
        "isPublic": False,
        "publicData": None,
        "source": None,
        "claims": None,
    }


class SessionTokenRefusal(Exception):
    """A request this route refuses before it reaches `PatService` (the errors only the legacy API has)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name  # the SessionTokenError member name
        self.message = message  # for the person reading GCM's output


def error_name(kind: PatErrorKind) -> str:
    """`SessionTokenError`'s member name: the camel-case `patTokenError` value with a capital first letter."""
    return kind.value[:1].upper() + kind.value[1:]


def session_token_error(error: PatError | SessionTokenRefusal) -> Response:
    """SessionTokenCreateException (400), or FailedToIssueAccessTokenException (503), with a message that names
    the error and says what it means, so GCM prints `Failed to create PAT: <Name>: <explanation>`."""
    if isinstance(error, SessionTokenRefusal):
        name, explanation = error.name, error.message
    else:
        name, explanation = error_name(error.kind), error.message
    message = f"{name}: {explanation}" if explanation else name
    if isinstance(error, PatError) and error.kind is PatErrorKind.FAILED_TO_ISSUE:
        body = wrapped_exception(
            message,
            type_name=f"{_DELEGATED}.FailedToIssueAccessTokenException, {_WEBAPI}",
            type_key="FailedToIssueAccessTokenException",
        )
        return JsonResponse(body, status_code=503)
    body = wrapped_exception(
        message,
        type_name=f"{_DELEGATED}.SessionTokenCreateException, {_WEBAPI}",
        type_key="SessionTokenCreateException",
    )
    return JsonResponse(body, status_code=400)


def _parse_valid_to(value: Any) -> datetime | None:
    """Absent, null or .NET's `DateTime.MinValue` (what a SessionToken without a validTo serialises): the
    default lifetime."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise PatError(PatErrorKind.INVALID_VALID_TO, "validTo is not a string")
    text = value.strip()
    if text.startswith("0001-01-01"):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise PatError(PatErrorKind.INVALID_VALID_TO, "validTo is not ISO 8601") from exc


_TARGET_ACCOUNTS_MESSAGE = (
    "targetAccounts may only name this organization: the PAT is for the organization the request is sent to."
)
# No double quotes in messages: GCM reads the message up to the first one (`"message"\s*:\s*"([^"]+)"`).
_BODY_MESSAGE = "Send a JSON object with the scope and the displayName of the token."


def _check_target_accounts(value: Any, org: Organization) -> None:
    """The PAT is for the organization asked. `targetAccounts`, when given, may only name that one."""
    if value is None or value == []:
        return
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PatError(
            PatErrorKind.INVALID_TARGET_ACCOUNTS,
            "targetAccounts is not a list of GUIDs",
            _TARGET_ACCOUNTS_MESSAGE,
        )
    try:
        named = {str(uuid.UUID(v)) for v in value}
    except ValueError as exc:
        raise PatError(
            PatErrorKind.INVALID_TARGET_ACCOUNTS, "targetAccounts holds a non-GUID", _TARGET_ACCOUNTS_MESSAGE
        ) from exc
    if named != {org.id}:
        raise PatError(
            PatErrorKind.INVALID_TARGET_ACCOUNTS,
            "targetAccounts names another organization",
            _TARGET_ACCOUNTS_MESSAGE,
        )


def _check_creation_only(body: dict[str, Any]) -> None:
    """The legacy API also updates a PAT when `authorizationId` is set; Entryway updates through the lifecycle
    API only (`_apis/tokens/pats` PUT)."""
    value = body.get("authorizationId")
    if value in (None, "", EMPTY_GUID):
        return
    raise SessionTokenRefusal(
        "SourceNotSupported",
        "Entryway creates PATs through sessiontokens but does not update them; use the PAT lifecycle API "
        "(_apis/tokens/pats) or the PAT page.",
    )


class _SessionTokensApi:
    def __init__(self, router: DevOpsRouter) -> None:
        self.router = router
        self.ctx = router.ctx

    async def location_service(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        if (bad_version := check_api_version(request)) is not None:
            return bad_version
        service_type = request.path_params["service_type"]
        identifier = request.path_params["identifier"]
        if service_type.lower() != LOCATION_SERVICE_TYPE.lower() or identifier.lower() != LOCATION_SERVICE_ID:
            return not_found(f"The service definition {service_type}/{identifier} does not exist.")
        location = f"{self.ctx.devops_origin}/{quote(org.name)}/"
        return JsonResponse(service_definition(location))

    async def create(self, request: Request, org: Organization, principal: Principal | Anonymous) -> Response:
        if (bad_version := check_api_version(request)) is not None:
            return bad_version
        assert isinstance(principal, Principal), "a member route"
        if principal.is_app_only or principal.credential.kind is not CredentialKind.JWT:
            log.info("sessiontokens refused to %s: not a user's Entra token", principal.member.object_id)
            return not_allowed()
        member = principal.member
        owner = Owner(member.object_id, principal.tenant_id, member.principal_name)
        actor = Actor.of(request, principal)
        # The policies' allowlists are checked against the caller and the groups their Entra token carries.
        requester = Requester(member.object_id, principal.groups)
        token_type = request.query_params.get("tokentype", request.query_params.get("tokenType", ""))
        try:
            if token_type.strip().lower() != COMPACT:
                raise SessionTokenRefusal(
                    "InvalidTokenType",
                    "Entryway issues compact PATs only: add tokentype=compact (self-describing tokens are JWTs, "
                    "which Entryway does not issue as PATs).",
                )
            body = await self._json_body(request)
            _check_creation_only(body)
            _check_target_accounts(body.get("targetAccounts"), org)
            valid_to = _parse_valid_to(body.get("validTo"))
            pat = await self.router.write(
                lambda s: PatService(s, self.ctx.clock, self.ctx.digester).create(
                    owner,
                    org,
                    actor,
                    display_name=body.get("displayName"),
                    scope=body.get("scope"),
                    valid_to=valid_to,
                    all_orgs=False,
                    requester=requester,
                    source=PAT_SOURCE,
                )
            )
        except (PatError, SessionTokenRefusal) as error:
            log.info("sessiontokens refused for %s: %s", member.object_id, error)
            return session_token_error(error)
        return JsonResponse(session_token(pat, org, member.id))

    @staticmethod
    async def _json_body(request: Request) -> dict[str, Any]:
        try:
            body = orjson.loads(await read_body(request, MAX_BODY))
        except BodyTooLarge as exc:
            raise PatError(
                PatErrorKind.INVALID_DISPLAY_NAME,
                "the body is too large",
                f"The request body is over {MAX_BODY} bytes.",
            ) from exc
        except orjson.JSONDecodeError as exc:
            raise PatError(PatErrorKind.DISPLAY_NAME_REQUIRED, "the body is not JSON", _BODY_MESSAGE) from exc
        if not isinstance(body, dict):
            raise PatError(PatErrorKind.DISPLAY_NAME_REQUIRED, "the body is not a JSON object", _BODY_MESSAGE)
        return body


def sessiontokens_routes(router: DevOpsRouter) -> list[BaseRoute]:
    api = _SessionTokensApi(router)
    return [
        # Where GCM finds the token service: any member may ask (like connectionData, it reveals only a URL).
        router.org_route(
            SERVICE_DEFINITION_PATH, api.location_service, access=Access.MEMBER, scope=ANY_SCOPE
        ),
        router.org_route(SESSION_TOKENS_PATH, api.create, access=Access.MEMBER, methods=["POST"]),
    ]
