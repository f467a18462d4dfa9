"""The REST surface the azure-devops SDK and scripts need for projects and repositories: the `_apis` location
list, ResourceAreas, projects and Git repositories, in Azure DevOps' shapes (devops-wire-contract 7)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from entryway.devops.audit.recorder import Actor
from entryway.devops.auth.principal import Anonymous, Principal
from entryway.devops.git.storage import delete_bare_repository, repository_path
from entryway.devops.orgs.service import Organization
from entryway.devops.projects.errors import (
    bad_request,
    create_projects_denied,
    git_permission_denied,
    project_error_response,
)
from entryway.devops.projects.service import (
    Project,
    ProjectError,
    ProjectErrorKind,
    ProjectService,
    Repository,
    Viewer,
)
from entryway.devops.web.routing import Access, DevOpsRouter
from entryway.devops.web.wire import wire_time
from entryway.kit.ids import new_guid
from entryway.kit.web import BodyTooLarge, JsonResponse, read_body

# The REST API versions this server speaks (the SDK negotiates down to `maxVersion`).
MAX_API_VERSION = 7.2
RELEASED_API_VERSION = "7.1"
DEFAULT_TOP = 100  # Azure DevOps' page size for projects when `$top` is absent
MAX_TOP = 1000

# OPTIONS /{org}/_apis: the resource locations the SDK looks up by id (location ids from the SDK's clients).
LOCATIONS: tuple[tuple[str, str, str, str, int], ...] = (
    # id, area, resourceName, routeTemplate, resourceVersion
    ("e81700f7-3be2-46de-8624-2eb35882fcaa", "Location", "ResourceAreas", "_apis/{resource}/{areaId}", 1),
    ("00d9565f-ed9c-4a06-9a50-00e7896ccab4", "Location", "ConnectionData", "_apis/{resource}", 1),
    ("603fe2ac-9723-48b9-88ad-09305aa6c6e1", "core", "projects", "_apis/{resource}/{*projectId}", 4),
    ("225f7195-f9c7-4d14-ab28-a83f7ff77e1f", "git", "repositories",
     "{project}/_apis/{area}/{resource}/{repositoryId}", 1),
)  # fmt: skip

_API_VERSION = re.compile(r"^(\d+)\.(\d+)(-preview(\.\d+)?)?$")
_WEBAPI = "Microsoft.VisualStudio.Services.WebApi"


def api_version_of(request: Request) -> str | None:
    """The api-version of a request: the query's, else the `Accept` header's parameter (the SDK's way)."""
    if "api-version" in request.query_params:
        return request.query_params["api-version"].strip()
    for part in request.headers.get("accept", "").replace(",", ";").split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "api-version":
            return value.strip()
    return None


def check_api_version(request: Request) -> Response | None:
    """Azure DevOps answers a GET without api-version with the latest version, and refuses a change without
    one (VssVersionNotSpecifiedException); a version it does not know is refused either way."""
    version = api_version_of(request)
    if version is None:
        if request.method in {"GET", "HEAD", "OPTIONS"}:
            return None
        return bad_request(
            f'No api-version was supplied for the "{request.method}" request. The version must be supplied '
            'either as part of the Accept header (e.g. "application/json; api-version=1.0") or as a query '
            'parameter (e.g. "?api-version=1.0").',
            type_name=f"{_WEBAPI}.VssVersionNotSpecifiedException, {_WEBAPI}",
            type_key="VssVersionNotSpecifiedException",
        )
    match = _API_VERSION.match(version)
    if match is None:
        return bad_request(
            f"The following api-version is not valid: {version}",
            type_name=f"{_WEBAPI}.VssInvalidApiVersionException, {_WEBAPI}",
            type_key="VssInvalidApiVersionException",
        )
    if float(f"{match.group(1)}.{match.group(2)}") > MAX_API_VERSION:
        return bad_request(
            f"The requested REST API version of {match.group(1)}.{match.group(2)} is out of range for this "
            f"server. The latest REST API version this server supports is {MAX_API_VERSION}.",
            type_name=f"{_WEBAPI}.VssVersionOutOfRangeException, {_WEBAPI}",
            type_key="VssVersionOutOfRangeException",
        )
    return None


def _collection(values: list[dict[str, Any]]) -> dict[str, Any]:
    return {"count": len(values), "value": values}


class _Shapes:
    """Azure DevOps' JSON for projects and repositories, with this server's URLs."""

    def __init__(self, devops_origin: str, git_root: str | None) -> None:
        self.origin = devops_origin.rstrip("/")
        self.git_root = git_root

    def project(self, org: Organization, project: Project) -> dict[str, Any]:
        """TeamProjectReference."""
        return {
            "id": project.id,
            "name": project.name,
            "description": project.description,
            "url": f"{self.origin}/{quote(org.name)}/_apis/projects/{project.id}",
            "state": "wellFormed",
            "revision": project.revision,
            "visibility": project.visibility,
            "lastUpdateTime": wire_time(project.last_update_time),
        }

    def full_project(self, org: Organization, project: Project) -> dict[str, Any]:
        """TeamProject: the reference plus its links."""
        body = self.project(org, project)
        body["_links"] = {
            "self": {"href": body["url"]},
            "collection": {"href": f"{self.origin}/_apis/projectCollections/{org.id}"},
            "web": {"href": f"{self.origin}/{quote(org.name)}/{quote(project.name)}"},
        }
        return body

    def repository(self, org: Organization, repo: Repository) -> dict[str, Any]:
        """GitRepository."""
        web = f"{self.origin}/{quote(org.name)}/{quote(repo.project.name)}/_git/{quote(repo.name)}"
        body: dict[str, Any] = {
            "id": repo.id,
            "name": repo.name,
            "url": f"{self.origin}/{quote(org.name)}/{repo.project.id}/_apis/git/repositories/{repo.id}",
            "project": self.project(org, repo.project),
            "size": self._size(repo.id),
            "remoteUrl": web,
            "webUrl": web,
            "isDisabled": False,
            "isInMaintenance": False,
        }
        if repo.default_branch:
            body["defaultBranch"] = repo.default_branch
        return body

    def _size(self, repo_id: str) -> int:
        """The packed size on disk, as Azure Repos reports it (loose objects are not counted)."""
        if self.git_root is None:
            return 0
        pack = repository_path(self.git_root, repo_id) / "objects" / "pack"
        try:
            return sum(p.stat().st_size for p in pack.iterdir() if p.suffix == ".pack")
        except OSError:
            return 0


class _ProjectsApi:
    """The handlers; each route declares its access in `projects_routes`."""

    def __init__(self, router: DevOpsRouter) -> None:
        self.router = router
        self.ctx = self.router.ctx
        self.shapes = _Shapes(self.router.ctx.devops_origin, self.router.ctx.git_root)

    def service(self, session: Any) -> ProjectService:
        return ProjectService(session, self.ctx.clock, self.ctx.git_root)

    def viewer_of(self, principal: Principal | Anonymous) -> Viewer:
        assert isinstance(principal, Principal), "a member route"
        return Viewer(principal.member, principal.job.project_id if principal.job is not None else None)

    def actor_of(self, request: Request, principal: Principal | Anonymous) -> Actor:
        assert isinstance(principal, Principal)
        return Actor.of(request, principal)

    async def json_body(self, request: Request) -> dict[str, Any] | Response:
        try:
            body = orjson.loads(await read_body(request))
        except (BodyTooLarge, orjson.JSONDecodeError):
            body = None
        if not isinstance(body, dict):
            return bad_request(
                "The request body must be a JSON object.",
                type_name="System.ArgumentException, mscorlib",
                type_key="ArgumentException",
            )
        return body

    # --- discovery -----------------------------------------------------------------------------------

    async def options_apis(
        self, _request: Request, _org: Organization, _p: Principal | Anonymous
    ) -> Response:
        value = [
            {
                "id": location_id,
                "area": area,
                "resourceName": resource,
                "routeTemplate": template,
                "resourceVersion": resource_version,
                "minVersion": "1.0",
                "maxVersion": str(MAX_API_VERSION),
                "releasedVersion": RELEASED_API_VERSION,
            }
            for location_id, area, resource, template, resource_version in LOCATIONS
        ]
        return JsonResponse(_collection(value))

    async def resource_areas(
        self, _request: Request, _org: Organization, _p: Principal | Anonymous
    ) -> Response:
        # Empty: the SDK then sends every client's calls to the base URL it was given (the on-premises
        # path). A non-empty list lacking an area would send it to Microsoft's servers.
        return JsonResponse(_collection([]))

    # --- projects ------------------------------------------------------------------------------------

    async def list_projects(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        if (refused := check_api_version(request)) is not None:
            return refused
        query = request.query_params
        try:
            top = int(query.get("$top", query.get("top", DEFAULT_TOP)))
            skip = int(query.get("$skip", query.get("skip", 0)))
            start = int(query.get("continuationToken", 0) or 0)
        except ValueError:
            return bad_request(
                "$top, $skip and continuationToken are numbers.",
                type_name="System.ArgumentException, mscorlib",
                type_key="ArgumentException",
            )
        if top < 1 or skip < 0 or start < 0:
            return bad_request(
                "$top must be positive; $skip and continuationToken must not be negative.",
                type_name="System.ArgumentException, mscorlib",
                type_key="ArgumentException",
            )
        top = min(top, MAX_TOP)
        state = query.get("stateFilter", "wellFormed")
        projects = await self.router.read(
            lambda s: self.service(s).list_projects(org, self.viewer_of(principal))
        )
        if state.lower() not in {"wellformed", "all"}:
            projects = []  # every project here is well formed
        first = start + skip
        page = projects[first : first + top]
        response = JsonResponse(_collection([self.shapes.project(org, p) for p in page]))
        if first + top < len(projects):
            response.headers["x-ms-continuationtoken"] = str(first + top)
        return response

    async def get_project(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        if (refused := check_api_version(request)) is not None:
            return refused
        key = request.path_params["project"]
        try:
            project = await self.router.read(
                lambda s: self.service(s).get(org, key, self.viewer_of(principal))
            )
        except ProjectError as error:
            return project_error_response(error)
        return JsonResponse(self.shapes.full_project(org, project))

    def operation(self, org: Organization) -> dict[str, Any]:
        """OperationReference: projects are created and deleted at once, so the operation has succeeded."""
        operation_id = new_guid()
        return {
            "id": operation_id,
            "status": "succeeded",
            "url": f"{self.shapes.origin}/{quote(org.name)}/_apis/operations/{operation_id}",
            "pluginId": None,
        }

    async def create_project(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        if (refused := check_api_version(request)) is not None:
            return refused
        viewer = self.viewer_of(principal)
        if not viewer.is_org_admin:
            return create_projects_denied(viewer.member.display_name)
        body = await self.json_body(request)
        if isinstance(body, Response):
            return body
        name = body.get("name")
        description = body.get("description") or ""
        visibility = body.get("visibility") or "private"
        if not isinstance(name, str) or not isinstance(description, str) or not isinstance(visibility, str):
            return project_error_response(
                ProjectError(ProjectErrorKind.INVALID, "name, description and visibility are strings")
            )
        actor = self.actor_of(request, principal)
        try:
            await self.router.write(
                lambda s: self.service(s).create(
                    org, name, actor, description=description, visibility=visibility.lower()
                )
            )
        except ProjectError as error:
            return project_error_response(error)
        return JsonResponse(self.operation(org), status_code=202)

    async def delete_project(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        if (refused := check_api_version(request)) is not None:
            return refused
        viewer = self.viewer_of(principal)
        key = request.path_params["project"]
        if not viewer.is_org_admin:
            # Who cannot see the project is told it does not exist; who can is told what is missing.
            try:
                await self.router.read(lambda s: self.service(s).get(org, key, viewer))
            except ProjectError as error:
                return project_error_response(error)
            return create_projects_denied(viewer.member.display_name)
        actor = self.actor_of(request, principal)
        try:
            repo_ids = await self.router.write(lambda s: self.service(s).delete(org, key, actor))
        except ProjectError as error:
            return project_error_response(error)
        if self.ctx.git_root is not None:
            for repo_id in repo_ids:
                delete_bare_repository(self.ctx.git_root, repo_id)
        return JsonResponse(self.operation(org), status_code=202)

    # --- repositories --------------------------------------------------------------------------------

    async def list_repositories(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        if (refused := check_api_version(request)) is not None:
            return refused
        viewer = self.viewer_of(principal)
        key = request.path_params.get("project")

        def read(session: Any) -> list[Repository]:
            svc = self.service(session)
            project = None if key is None else svc.get(org, key, viewer)
            return svc.list_repositories(org, viewer, project)

        try:
            repos = await self.router.read(read)
        except ProjectError as error:
            return project_error_response(error)
        return JsonResponse(_collection([self.shapes.repository(org, r) for r in repos]))

    async def get_repository(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        if (refused := check_api_version(request)) is not None:
            return refused
        viewer = self.viewer_of(principal)
        key = request.path_params.get("project")
        repo_key = request.path_params["repository"]

        def read(session: Any) -> Repository:
            svc = self.service(session)
            project = None if key is None else svc.get(org, key, viewer)
            return svc.get_repository(org, repo_key, viewer, project)

        try:
            repo = await self.router.read(read)
        except ProjectError as error:
            return project_error_response(error)
        return JsonResponse(self.shapes.repository(org, repo))

    async def create_repository(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        if (refused := check_api_version(request)) is not None:
            return refused
        viewer = self.viewer_of(principal)
        body = await self.json_body(request)
        if isinstance(body, Response):
            return body
        name = body.get("name")
        raw_project = body.get("project")
        body_project: dict[str, Any] = raw_project if isinstance(raw_project, dict) else {}
        key = request.path_params.get("project") or body_project.get("id") or body_project.get("name")
        if not isinstance(name, str) or not isinstance(key, str):
            return project_error_response(
                ProjectError(ProjectErrorKind.INVALID, "a repository needs a name and a project")
            )
        actor = self.actor_of(request, principal)

        def write(session: Any) -> Repository | None:
            svc = self.service(session)
            project = svc.get(org, key, viewer)
            if not svc.may_manage(project, viewer):
                return None
            return svc.create_repository(org, project, name, actor)

        try:
            repo = await self.router.write(write)
        except ProjectError as error:
            return project_error_response(error)
        if repo is None:
            return git_permission_denied("CreateRepository", viewer.member.principal_name, "project")
        return JsonResponse(self.shapes.repository(org, repo), status_code=201)


def projects_routes(router: DevOpsRouter) -> list[BaseRoute]:
    api = _ProjectsApi(router)
    member = Access.MEMBER
    # PAT scopes (PAT-AUTH), as Azure DevOps documents them per area (docs integrate/includes/scopes.md).
    read_projects, manage_projects = "vso.project", "vso.project_manage"
    read_code, manage_code = "vso.code", "vso.code_manage"
    read_only = True  # job_token: the build service reads; every route that changes something refuses it
    return [
        router.org_route("/{org}/_apis", api.options_apis, access=Access.ANYONE, methods=["OPTIONS"]),
        router.org_route("/{org}/_apis/", api.options_apis, access=Access.ANYONE, methods=["OPTIONS"]),
        router.org_route("/{org}/_apis/ResourceAreas", api.resource_areas, access=Access.ANYONE),
        # A job token (its project's build service) reads its own project and its repositories: the routes
        # below that say `job_token=read_only`; the viewer limits what it sees (ProjectService).
        router.org_route(
            "/{org}/_apis/projects",
            api.list_projects,
            access=member,
            scope=read_projects,
            job_token=read_only,
        ),
        router.org_route(
            "/{org}/_apis/projects",
            api.create_project,
            access=member,
            methods=["POST"],
            scope=manage_projects,
        ),
        router.org_route(
            "/{org}/_apis/projects/{project}",
            api.get_project,
            access=member,
            scope=read_projects,
            job_token=read_only,
        ),
        router.org_route(
            "/{org}/_apis/projects/{project}",
            api.delete_project,
            access=member,
            methods=["DELETE"],
            scope=manage_projects,
        ),
        router.org_route(
            "/{org}/_apis/git/repositories",
            api.list_repositories,
            access=member,
            scope=read_code,
            job_token=read_only,
        ),
        router.org_route(
            "/{org}/_apis/git/repositories",
            api.create_repository,
            access=member,
            methods=["POST"],
            scope=manage_code,
        ),
        router.org_route(
            "/{org}/_apis/git/repositories/{repository}",
            api.get_repository,
            access=member,
            scope=read_code,
            job_token=read_only,
        ),
        router.org_route(
            "/{org}/{project}/_apis/git/repositories",
            api.list_repositories,
            access=member,
            scope=read_code,
            job_token=read_only,
        ),
        router.org_route(
            "/{org}/{project}/_apis/git/repositories",
            api.create_repository,
            access=member,
            methods=["POST"],
            scope=manage_code,
        ),
        router.org_route(
            "/{org}/{project}/_apis/git/repositories/{repository}",
            api.get_repository,
            access=member,
            scope=read_code,
            job_token=read_only,
        ),
    ]
