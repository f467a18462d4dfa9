"""The pipeline OIDC issuer's discovery document and keys, on the DevOps origin, anonymous (as
vstoken.dev.azure.com's are): the identity platform fetches them to verify a pipeline's federated assertion."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from entryway.devops.connections.repository import ConnectionRepository
from entryway.devops.oidc.issuer import ISSUER_PATH, JWKS_PATH, discovery_document
from entryway.devops.web.routing import DevOpsRouter, not_found
from entryway.kit.ids import parse_guid
from entryway.kit.web import JsonResponse

# The keys change only with a rotation, whose old key stays published for a day: five minutes of caching lets
# a verifier see a new key long before any token it signed could arrive.
JWKS_MAX_AGE = 300
DISCOVERY_MAX_AGE = 86400


def oidc_routes(router: DevOpsRouter) -> list[BaseRoute]:
    ctx = router.ctx

    async def discovery(request: Request) -> Response:
        organization_id = parse_guid(request.path_params["organization_id"])
        if organization_id is None:
            return not_found("No such OpenID Connect issuer.")
        found = await router.read(lambda s: ConnectionRepository(s).find_organization(organization_id))
        if found is None:
            return not_found("No such OpenID Connect issuer.")
        return JsonResponse(
            discovery_document(ctx.devops_origin, found.id),
            headers={"Cache-Control": f"max-age={DISCOVERY_MAX_AGE}, public"},
        )

    async def jwks(_request: Request) -> Response:
        if ctx.oidc_keyring is None:
            return not_found("This server issues no pipeline OIDC tokens.")
        return JsonResponse(
            await run_in_threadpool(ctx.oidc_keyring.jwks),
            headers={"Cache-Control": f"max-age={JWKS_MAX_AGE}, public"},
        )

    return [
        Route(JWKS_PATH, jwks),
        Route(f"{ISSUER_PATH}/{{organization_id}}/.well-known/openid-configuration", discovery),
    ]
