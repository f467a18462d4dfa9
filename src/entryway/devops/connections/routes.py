"""Service connections over REST (Azure DevOps' ServiceEndpoint shape, members of the project only) and the
pipeline OIDC token endpoint a job calls with its System.AccessToken (azure-identity's
AzurePipelinesCredential, devops-wire-contract 6).

`POST /{org}/{projectId}/_apis/distributedtask/hubs/build/plans/{planId}/jobs/{jobId}/oidctoken
?api-version=7.1&serviceConnectionId=…` answers 200 `{"oidcToken": jwt}`. Refusals:
- no job token, or one that is malformed, unknown, expired, revoked (the job ended) or of another
  organization: 401, the challenge any unauthenticated request gets;
- a valid job token whose project, plan or job is not the one in the path: 404, as for a plan that does not
  exist (a job sees only its own plan);
- a service connection that does not exist, is in another project, or is not authorized for the job's
  pipeline: 404, the same answer for all three (a job cannot probe another project's connections);
- a bad or missing api-version: 400 with Azure DevOps' WrappedException.
Without `serviceConnectionId` the token's subject is the pipeline's, `p://{org}/{project}/{pipeline}`, as Azure
DevOps issues it. For a connection of the Entra-issued form the identity platform issues the token
(devops/oidc/entra.py); its refusal is a 400, an identity platform out of reach a 503.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from entryway.devops.auth.principal import Anonymous, Principal
from entryway.devops.connections.repository import ConnectionRepository
from entryway.devops.connections.service import (
    ConnectionService,
    IssuerMode,
    ServiceConnection,
    federation_of,
)
from entryway.devops.oidc.entra import EntraTokenUnavailable, request_entra_token
from entryway.devops.oidc.issuer import JobContext, OidcTokenIssuer
from entryway.devops.orgs.service import Organization
from entryway.devops.pipelines.jobtokens import JobIdentity
from entryway.devops.projects.errors import bad_request, project_error_response
from entryway.devops.projects.routes import check_api_version
from entryway.devops.projects.service import Project, ProjectError, ProjectService, Viewer
from entryway.devops.web.errors import wrapped_exception
from entryway.devops.web.routing import Access, DevOpsRouter, not_found
from entryway.keys.signer import KeyringSigner
from entryway.kit.web import BodyTooLarge, JsonResponse, read_body

log = logging.getLogger("entryway.devops.connections")

# The PAT scope that reads service connections (Azure DevOps: "Service Connections (read)").
READ_ENDPOINTS_SCOPE = "vso.serviceendpoint"
# The request body of the OIDC endpoint is empty or a small JSON object of strings.
MAX_OIDC_BODY = 16 * 1024
_SERVICE_ENDPOINT_TYPE = (
    "Microsoft.VisualStudio.Services.ServiceEndpoints.WebApi.ServiceEndpointNotFoundException, "
    "Microsoft.VisualStudio.Services.ServiceEndpoints.WebApi"
)


@dataclass(frozen=True)
class _Minting:
    subject: str
    job: JobContext


@dataclass(frozen=True)
class _EntraMinting:
    """The Entra-issued form: the identity platform issues the token (devops/oidc/entra.py)."""

    tenant_id: str
    connection_id: str


def _endpoint_not_found(connection_id: str) -> Response:
    body = wrapped_exception(
        f"Service connection {connection_id} could not be found, or the pipeline is not authorized to use it.",
        type_name=_SERVICE_ENDPOINT_TYPE,
        type_key="ServiceEndpointNotFoundException",
    )
    return JsonResponse(body, status_code=404)


def _entra_unavailable(message: str, status: int) -> Response:
    body = wrapped_exception(
        message,
        type_name=(
            "Microsoft.VisualStudio.Services.ServiceEndpoints.WebApi.ServiceEndpointException, "
            "Microsoft.VisualStudio.Services.ServiceEndpoints.WebApi"
        ),
        type_key="ServiceEndpointException",
    )
    return JsonResponse(body, status_code=status)


class _ConnectionsApi:
    def __init__(self, router: DevOpsRouter) -> None:
        self.router = router
        self.ctx = router.ctx
        self.origin = self.ctx.devops_origin.rstrip("/")
        self.issuer = (
            OidcTokenIssuer(self.ctx.devops_origin, KeyringSigner(self.ctx.oidc_keyring), self.ctx.clock)
            if self.ctx.oidc_keyring is not None
            else None
        )

    # --- GET {org}/{project}/_apis/serviceendpoint/endpoints -----------------------------------------

    def endpoint(self, org: Organization, project: Project, connection: ServiceConnection) -> dict[str, Any]:
        """ServiceEndpoint (REST 7.1), an Azure Resource Manager connection with workload identity federation."""
        federation = federation_of(
            connection,
            organization_id=org.id,
            organization=org.name,
            project=project.name,
            devops_origin=self.ctx.devops_origin,
            identity_origin=self.ctx.identity_origin,
        )
        issuer_type = "EntraID" if connection.issuer_mode is IssuerMode.ENTRA else "AzureDevOps"
        return {
            "data": {
                "environment": "AzureCloud",
                "scopeLevel": "Subscription",
                "creationMode": "Manual",
                "identityType": "AppRegistrationManual",
            },
            "id": connection.id,
            "name": connection.name,
            "type": "azurerm",
            "url": "https://management.azure.com/",
            "description": "",
            "authorization": {
                "parameters": {
                    "tenantid": connection.tenant_id,
                    "serviceprincipalid": connection.client_id,
                    "workloadIdentityFederationIssuer": federation.issuer,
                    "workloadIdentityFederationSubject": federation.subject,
                    "workloadIdentityFederationIssuerType": issuer_type,
                },
                "scheme": "WorkloadIdentityFederation",
            },
            "isShared": False,
            "isReady": True,
            "isOutdated": False,
            "operationStatus": {"state": "Ready", "statusMessage": ""},
            "owner": "Library",
            "serviceEndpointProjectReferences": [
                {
                    "projectReference": {"id": project.id, "name": project.name},
                    "name": connection.name,
                    "description": "",
                }
            ],
        }

    async def list_endpoints(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        if (refused := check_api_version(request)) is not None:
            return refused
        assert isinstance(principal, Principal), "a member route"
        viewer = Viewer(principal.member)
        key = request.path_params["project"]
        names = {
            n.strip().lower() for n in request.query_params.get("endpointNames", "").split(",") if n.strip()
        }
        wanted_type = request.query_params.get("type", "").strip().lower()

        def read(session: Session) -> tuple[Project, list[ServiceConnection]]:
            project = ProjectService(session, self.ctx.clock, self.ctx.git_root).get(org, key, viewer)
            return project, ConnectionService(session, self.ctx.clock).list_connections(project.id)

        try:
            project, connections = await self.router.read(read)
        except ProjectError as error:
            return project_error_response(error)
        value = [
            self.endpoint(org, project, c)
            for c in connections
            if (not names or c.name.lower() in names) and wanted_type in ("", "azurerm")
        ]
        return JsonResponse({"count": len(value), "value": value})

    async def get_endpoint(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        if (refused := check_api_version(request)) is not None:
            return refused
        assert isinstance(principal, Principal), "a member route"
        viewer = Viewer(principal.member)
        key, endpoint_id = request.path_params["project"], request.path_params["endpoint"]

        def read(session: Session) -> tuple[Project, ServiceConnection | None]:
            project = ProjectService(session, self.ctx.clock, self.ctx.git_root).get(org, key, viewer)
            found = ConnectionService(session, self.ctx.clock).find(project.id, endpoint_id)
            return project, (found if found is not None and found.id == endpoint_id.lower() else None)

        try:
            project, connection = await self.router.read(read)
        except ProjectError as error:
            return project_error_response(error)
        if connection is None:
            # Azure DevOps answers an unknown endpoint id with 200 and an empty body; a 404 is clearer and what
            # the SDK turns into None as well.
            return _endpoint_not_found(endpoint_id)
        return JsonResponse(self.endpoint(org, project, connection))

    # --- POST …/oidctoken ----------------------------------------------------------------------------

    async def oidc_token(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        if (refused := check_api_version(request)) is not None:
            return refused
        # The router has verified a job token already (the route takes one); anything else is no credential here.
        verified = principal.job if isinstance(principal, Principal) else None
        if verified is None or self.issuer is None:
            log.info("oidctoken refused: no valid job token")
            return self.router.unauthorized(request, org)
        try:
            raw = await read_body(request, MAX_OIDC_BODY)
        except BodyTooLarge:
            raw = b"too large"
        if raw.strip():
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = None
            if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
                return bad_request(
                    "The request body must be empty or a JSON object of strings.",
                    type_name="System.ArgumentException, mscorlib",
                    type_key="ArgumentException",
                )
        connection_id = request.query_params.get("serviceConnectionId", "").strip()
        path = request.path_params

        def read(session: Session) -> JobIdentity | _Minting | _EntraMinting | Response | None:
            job = verified
            if job.organization_id != org.id:
                return None  # the job of another organization: unauthenticated here
            repo = ConnectionRepository(session)
            project = repo.find_project_by_id_or_name(org.id, path["project"])
            if (
                project is None
                or project.id != job.project_id
                or path["plan"].lower() != job.plan_id.lower()
                or path["job"].lower() != job.job_id.lower()
            ):
                return not_found(f"The plan {path['plan']} or its job {path['job']} could not be found.")
            pipeline = repo.find_pipeline_by_id(job.pipeline_id)
            run = repo.find_run(job.run_id)
            if pipeline is None or run is None:
                return not_found(f"The plan {path['plan']} could not be found.")
            repository = repo.find_repository(pipeline.repository_id)
            context = JobContext(
                organization_id=org.id,
                project_id=project.id,
                pipeline_id=pipeline.id,
                repository_id=pipeline.repository_id,
                repository_uri=(
                    None
                    if repository is None
                    else f"{self.origin}/{quote(org.name)}/{quote(project.name)}/_git/{quote(repository.name)}"
                ),
                repository_version=run.source_version,
                repository_ref=run.source_branch,
                run_id=run.id,
            )
            if not connection_id:
                return _Minting(f"p://{org.name}/{project.name}/{pipeline.name}", context)
            connection = ConnectionService(session, self.ctx.clock).find_for_pipeline(
                project.id, connection_id, pipeline.id
            )
            if connection is None:
                log.info(
                    "oidctoken refused: connection %s unknown, in another project, or not authorized for "
                    "pipeline %s",
                    connection_id,
                    pipeline.id,
                )
                return _endpoint_not_found(connection_id)
            if connection.issuer_mode is IssuerMode.ENTRA:
                minting: _Minting | _EntraMinting = _EntraMinting(connection.tenant_id, connection.id)
            else:
                federation = federation_of(
                    connection,
                    organization_id=org.id,
                    organization=org.name,
                    project=project.name,
                    devops_origin=self.ctx.devops_origin,
                )
                minting = _Minting(federation.subject, context)
            return minting

        outcome = await self.router.read(read)
        if outcome is None or isinstance(outcome, JobIdentity):
            log.info("oidctoken refused: job token invalid, expired, revoked or of another organization")
            return self.router.unauthorized(request, org)
        if isinstance(outcome, _EntraMinting):
            return await self._entra_token(org, outcome)
        return outcome if isinstance(outcome, Response) else self._mint(outcome)

    def _mint(self, minting: _Minting) -> Response:
        """The DevOps form: the DevOps service's own issuer signs."""
        assert self.issuer is not None, "checked before the job token was read"
        return JsonResponse({"oidcToken": self.issuer.mint(minting.subject, minting.job)})

    async def _entra_token(self, org: Organization, minting: _EntraMinting) -> Response:
        """The identity platform's answer, or a clear refusal: 400 when it refused (a configuration problem,
        e.g. the connection's tenant is gone; retrying does not help), 503 when it could not be reached."""
        if self.ctx.http is None or self.ctx.web_client_secret is None:
            return _entra_unavailable(
                "This server does not reach the identity platform; the Entra-issued form is unavailable.", 503
            )
        try:
            token = await request_entra_token(
                self.ctx.http,
                identity_origin=self.ctx.identity_origin,
                client_secret=self.ctx.web_client_secret,
                tenant_id=minting.tenant_id,
                organization_id=org.id,
                connection_id=minting.connection_id,
            )
        except EntraTokenUnavailable as exc:
            return _entra_unavailable(
                f"Service connection {minting.connection_id}: {exc.message}", 400 if exc.refused else 503
            )
        return JsonResponse({"oidcToken": token})


OIDC_REQUEST_PATH = "/{org}/{project}/_apis/distributedtask/hubs/build/plans/{plan}/jobs/{job}/oidctoken"


def connections_routes(router: DevOpsRouter) -> list[BaseRoute]:
    api = _ConnectionsApi(router)
    member = Access.MEMBER
    return [
        router.org_route(
            "/{org}/{project}/_apis/serviceendpoint/endpoints",
            api.list_endpoints,
            access=member,
            scope=READ_ENDPOINTS_SCOPE,
        ),
        router.org_route(
            "/{org}/{project}/_apis/serviceendpoint/endpoints/{endpoint}",
            api.get_endpoint,
            access=member,
            scope=READ_ENDPOINTS_SCOPE,
        ),
        # The handler checks the job token itself (JobTokens.verify) and answers 401 without one; the router
        # only records the decision (job_token: a job token is this route's credential, not a refusal).
        router.org_route(
            OIDC_REQUEST_PATH, api.oidc_token, access=Access.ANYONE, methods=["POST"], job_token=True
        ),
    ]
