"""The Pipelines REST API in Azure DevOps' shapes (learn: rest/api/azure/devops/pipelines): pipelines, runs
(`POST …/_apis/pipelines/{id}/runs` queues a run that this server executes in the background with the same
runner as `entryway pipelines run`), and a run's logs — one log per step, with a plain-text `…/content`
endpoint of our own for the masked lines.

Who may do what, as Azure DevOps' default project groups: any member who sees the project reads pipelines,
runs and logs ("View builds"); Contributors and above queue runs ("Queue builds"). PAT scopes: vso.build to
read, vso.build_execute to queue. A job token is refused here (the route is not declared for it).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute

from entryway.devops.audit.recorder import Actor
from entryway.devops.auth.principal import Anonymous, Principal
from entryway.devops.orgs.service import Organization
from entryway.devops.pipelines.runner import JobRunner, RunnerSettings, wire_log_time
from entryway.devops.pipelines.service import (
    Pipeline,
    PipelineError,
    PipelineService,
    Run,
)
from entryway.devops.pipelines.variables import VariableCipher
from entryway.devops.projects.errors import bad_request, project_error_response
from entryway.devops.projects.permissions import ProjectRole
from entryway.devops.projects.routes import check_api_version
from entryway.devops.projects.service import Project, ProjectError, ProjectService, Viewer
from entryway.devops.web.errors import wrapped_exception
from entryway.devops.web.routing import Access, DevOpsRouter
from entryway.devops.web.wire import wire_time
from entryway.kit.web import BodyTooLarge, JsonResponse, read_body

log = logging.getLogger("entryway.devops.pipelines")

_BUILD = "Microsoft.TeamFoundation.Build.WebApi"
_ARGUMENT = ("System.ArgumentException, mscorlib", "ArgumentException")
# RunPipelineParameters members this server does not support: a non-empty value is refused, never ignored.
_UNSUPPORTED_RUN_PARAMETERS = (
    "variables",
    "templateParameters",
    "stagesToSkip",
    "yamlOverride",
    "previewRun",
)


def _pipeline_not_found(key: str) -> Response:
    body = wrapped_exception(
        f"Pipeline with id {key} not found.",
        type_name=f"{_BUILD}.DefinitionNotFoundException, {_BUILD}",
        type_key="DefinitionNotFoundException",
    )
    return JsonResponse(body, status_code=404)


def _run_not_found(key: str) -> Response:
    body = wrapped_exception(
        f"Run with id {key} not found.",
        type_name=f"{_BUILD}.BuildNotFoundException, {_BUILD}",
        type_key="BuildNotFoundException",
    )
    return JsonResponse(body, status_code=404)


def _queue_denied(project: Project, who: str) -> Response:
    body = wrapped_exception(
        f"TF215106: Access denied. {who} needs Queue builds permissions for build pipeline in team project "
        f"{project.name} to perform the action.",
        type_name=f"{_BUILD}.AccessDeniedException, {_BUILD}",
        type_key="AccessDeniedException",
    )
    return JsonResponse(body, status_code=403)


def _argument(message: str) -> Response:
    return bad_request(message, type_name=_ARGUMENT[0], type_key=_ARGUMENT[1])


def _wire_state(state: str) -> str:
    """The Runs API knows inProgress, completed, canceling and unknown: a queued run is in progress."""
    return "completed" if state == "completed" else "inProgress"


class _PipelinesApi:
    def __init__(self, router: DevOpsRouter) -> None:
        self.router = router
        self.ctx = router.ctx
        self.origin = self.ctx.devops_origin.rstrip("/")
        self._running: set[threading.Thread] = set()

    # --- shapes --------------------------------------------------------------------------------------

    def _base(self, org: Organization, project: Project) -> str:
        return f"{self.origin}/{quote(org.name)}/{project.id}/_apis/pipelines"

    def pipeline_json(self, org: Organization, project: Project, pipeline: Pipeline) -> dict[str, Any]:
        url = f"{self._base(org, project)}/{pipeline.id}?revision=1"
        web = f"{self.origin}/{quote(org.name)}/{quote(project.name)}/_build/definition?definitionId={pipeline.id}"
        return {
            "_links": {"self": {"href": url}, "web": {"href": web}},
            "configuration": {
                "path": pipeline.yaml_path,
                "repository": {"id": pipeline.repository_id, "type": "azureReposGit"},
                "type": "yaml",
            },
            "url": url,
            "id": pipeline.id,
            "revision": 1,
            "name": pipeline.name,
            "folder": "\\",
        }

    def run_json(self, org: Organization, project: Project, pipeline: Pipeline, run: Run) -> dict[str, Any]:
        base = self._base(org, project)
        url = f"{base}/{pipeline.id}/runs/{run.id}"
        web = f"{self.origin}/{quote(org.name)}/{quote(project.name)}/_build/results?buildId={run.id}"
        body: dict[str, Any] = {
            "_links": {
                "self": {"href": url},
                "web": {"href": web},
                "pipeline.web": {
                    "href": f"{self.origin}/{quote(org.name)}/{quote(project.name)}/_build/definition?"
                    f"definitionId={pipeline.id}"
                },
                "pipeline": {"href": f"{base}/{pipeline.id}?revision=1"},
            },
            "pipeline": {
                "url": f"{base}/{pipeline.id}?revision=1",
                "id": pipeline.id,
                "revision": 1,
                "name": pipeline.name,
                "folder": "\\",
            },
            "state": _wire_state(run.state),
            "createdDate": wire_time(run.queued_at),
            "url": url,
            "resources": {
                "repositories": {
                    "self": {
                        "repository": {"id": pipeline.repository_id, "type": "azureReposGit"},
                        "refName": run.source_branch,
                        "version": run.source_version,
                    }
                }
            },
            "id": run.id,
            "name": str(run.id),
        }
        if run.state == "completed":
            body["result"] = run.result or "failed"
            if run.finished_at is not None:
                body["finishedDate"] = wire_time(run.finished_at)
        return body

    # --- access --------------------------------------------------------------------------------------

    def _project(
        self, session: Any, org: Organization, key: str, principal: Principal | Anonymous
    ) -> Project:
        assert isinstance(principal, Principal), "a member route"
        return ProjectService(session, self.ctx.clock).get(org, key, Viewer(principal.member))

    def _may_queue(self, session: Any, project: Project, principal: Principal) -> bool:
        if principal.member.organization_admin:
            return True
        role = ProjectService(session, self.ctx.clock).role_of(project, principal.member)
        return role is not None and role.rank >= ProjectRole.CONTRIBUTORS.rank

    def _service(self, session: Any) -> PipelineService:
        key = self.ctx.pipeline_variables_key
        return PipelineService(session, self.ctx.clock, VariableCipher(key) if key else None)

    @staticmethod
    def _pipeline_id(request: Request) -> int | None:
        value = request.path_params["pipeline_id"]
        return int(value) if value.isdigit() else None

    async def _lookup(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> tuple[Project, Pipeline] | Response:
        if (refused := check_api_version(request)) is not None:
            return refused
        key = request.path_params["pipeline_id"]
        pipeline_id = self._pipeline_id(request)

        def read(session: Any) -> tuple[Project, Pipeline | None]:
            project = self._project(session, org, request.path_params["project"], principal)
            found = (
                self._service(session).find(project, str(pipeline_id)) if pipeline_id is not None else None
            )
            return project, found if found is not None and found.id == pipeline_id else None

        try:
            project, pipeline = await self.router.read(read)
        except ProjectError as error:
            return project_error_response(error)
        if pipeline is None:
            return _pipeline_not_found(key)
        return project, pipeline

    # --- handlers ------------------------------------------------------------------------------------

    async def list_pipelines(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        if (refused := check_api_version(request)) is not None:
            return refused

        def read(session: Any) -> tuple[Project, list[Pipeline]]:
            project = self._project(session, org, request.path_params["project"], principal)
            return project, self._service(session).list_pipelines(project)

        try:
            project, pipelines = await self.router.read(read)
        except ProjectError as error:
            return project_error_response(error)
        value = [self.pipeline_json(org, project, p) for p in pipelines]
        return JsonResponse({"count": len(value), "value": value})

    async def get_pipeline(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        found = await self._lookup(request, org, principal)
        if isinstance(found, Response):
            return found
        project, pipeline = found
        return JsonResponse(self.pipeline_json(org, project, pipeline))

    async def list_runs(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        found = await self._lookup(request, org, principal)
        if isinstance(found, Response):
            return found
        project, pipeline = found
        runs = await self.router.read(lambda s: self._service(s).list_runs(pipeline, limit=10_000))
        value = [self.run_json(org, project, pipeline, r) for r in runs]
        return JsonResponse({"count": len(value), "value": value})

    async def _find_run(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> tuple[Project, Pipeline, Run] | Response:
        found = await self._lookup(request, org, principal)
        if isinstance(found, Response):
            return found
        project, pipeline = found
        key = request.path_params["run_id"]
        run = (
            await self.router.read(lambda s: self._service(s).find_run(int(key), project))
            if key.isdigit()
            else None
        )
        if run is None or run.pipeline_id != pipeline.id:
            return _run_not_found(key)
        return project, pipeline, run

    async def get_run(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        found = await self._find_run(request, org, principal)
        if isinstance(found, Response):
            return found
        return JsonResponse(self.run_json(org, *found))

    async def queue_run(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        assert isinstance(principal, Principal)
        found = await self._lookup(request, org, principal)
        if isinstance(found, Response):
            return found
        project, pipeline = found
        if not await self.router.read(lambda s: self._may_queue(s, project, principal)):
            return _queue_denied(project, principal.member.display_name)
        if self.ctx.digester is None or self.ctx.git_root is None:
            return _argument("This server runs no pipelines (no Git service or no secret digests).")
        actor = Actor.of(request, principal)
        try:
            requested = _branch_of(await read_body(request))

            def write(session: Any) -> Run:
                branch = requested
                if branch is None:
                    repo = ProjectService(session, self.ctx.clock).get_repository(
                        org, pipeline.repository_id, project=project
                    )
                    branch = repo.default_branch or "main"
                return self._service(session).queue_run(org, pipeline, branch, actor)

            run = await self.router.write(write)
        except BodyTooLarge:
            return _argument("The request body is too large.")
        except (_BadRunParameters, PipelineError) as error:
            return _argument(str(error))
        self._start(run.id)
        return JsonResponse(self.run_json(org, project, pipeline, run))

    def _start(self, run_id: int) -> None:
        """Execute the run on a thread of its own: the request returns at once, as Azure DevOps' does."""
        assert self.ctx.digester is not None
        assert self.ctx.git_root is not None
        key = self.ctx.pipeline_variables_key
        runner = JobRunner(
            self.ctx.db,
            self.ctx.clock,
            self.ctx.digester,
            VariableCipher(key) if key else None,
            RunnerSettings(
                devops_origin=self.ctx.devops_origin, git_root=self.ctx.git_root, ca_bundle=self.ctx.ca_bundle
            ),
        )

        def work() -> None:
            try:
                runner.run(run_id)
            finally:
                self._running.discard(thread)

        thread = threading.Thread(target=work, name=f"pipeline-run-{run_id}", daemon=True)
        self._running.add(thread)
        thread.start()

    async def list_logs(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        found = await self._find_run(request, org, principal)
        if isinstance(found, Response):
            return found
        project, pipeline, run = found
        counts = await self.router.read(lambda s: self._service(s).log_line_counts(run.id))
        base = f"{self._base(org, project)}/{pipeline.id}/runs/{run.id}/logs"
        logs = [
            self._log_json(
                base,
                step.index,
                counts.get(step.index, 0),
                run,
                started=step.started_at,
                finished=step.finished_at,
            )
            for step in run.steps
        ]
        if not run.steps and counts:  # refused before any step: its one log holds the reason
            logs.append(
                self._log_json(
                    base, 0, counts.get(0, 0), run, started=run.queued_at, finished=run.finished_at
                )
            )
        return JsonResponse({"logs": logs, "url": base})

    @staticmethod
    def _log_json(
        base: str, index: int, lines: int, run: Run, *, started: datetime | None, finished: datetime | None
    ) -> dict[str, Any]:
        created = started or run.queued_at
        return {
            "id": index + 1,
            "createdOn": wire_time(created),
            "lastChangedOn": wire_time(finished or created),
            "lineCount": lines,
            "url": f"{base}/{index + 1}",
        }

    async def _log_lines(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> tuple[str, list[tuple[int, datetime, str]], Run] | Response:
        found = await self._find_run(request, org, principal)
        if isinstance(found, Response):
            return found
        project, pipeline, run = found
        key = request.path_params["log_id"]
        index = int(key) - 1 if key.isdigit() else -1
        known = {s.index for s in run.steps} or {0}
        if index not in known:
            body = wrapped_exception(
                f"Log with id {key} not found.",
                type_name=f"{_BUILD}.LogNotFoundException, {_BUILD}",
                type_key="LogNotFoundException",
            )
            return JsonResponse(body, status_code=404)
        lines = await self.router.read(lambda s: self._service(s).log_lines(run.id, index))
        base = f"{self._base(org, project)}/{pipeline.id}/runs/{run.id}/logs/{key}"
        return base, lines, run

    async def get_log(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        found = await self._log_lines(request, org, principal)
        if isinstance(found, Response):
            return found
        base, lines, run = found
        index = int(request.path_params["log_id"]) - 1
        step = next((s for s in run.steps if s.index == index), None)
        body = self._log_json(
            base.rsplit("/", 1)[0],
            index,
            len(lines),
            run,
            started=step.started_at if step else run.queued_at,
            finished=step.finished_at if step else run.finished_at,
        )
        # Not Azure DevOps' signed URL (which works without a credential): the same route with /content, which
        # needs the caller's credential like every other.
        body["signedContent"] = {"url": f"{base}/content", "signatureExpires": None}
        return JsonResponse(body)

    async def get_log_content(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        found = await self._log_lines(request, org, principal)
        if isinstance(found, Response):
            return found
        _, lines, _ = found
        text = "".join(f"{wire_log_time(ts)} {line}\n" for _, ts, line in lines)
        return PlainTextResponse(text, headers={"Cache-Control": "no-store"})


class _BadRunParameters(ValueError):
    """A RunPipelineParameters body this server does not accept."""


def _branch_of(raw: bytes) -> str | None:
    """The branch a RunPipelineParameters body asks for (resources.repositories.self.refName), None for the
    default; _BadRunParameters for a body that is not one, or that asks for what this server does not do."""
    if not raw.strip():
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise _BadRunParameters("The request body must be a JSON object.")
    for name in _UNSUPPORTED_RUN_PARAMETERS:
        if body.get(name):
            raise _BadRunParameters(f"'{name}' is not supported by this server; queue the run without it.")
    resources = body.get("resources") or {}
    repositories = resources.get("repositories") if isinstance(resources, dict) else None
    if not repositories:
        return None
    own = repositories.get("self") if isinstance(repositories, dict) else None
    if not isinstance(own, dict) or set(repositories) != {"self"}:
        raise _BadRunParameters(
            "Only the pipeline's own repository ('self') can be given in resources.repositories."
        )
    ref = own.get("refName")
    if ref is not None and not isinstance(ref, str):
        raise _BadRunParameters("resources.repositories.self.refName is a string.")
    return ref


def pipelines_routes(router: DevOpsRouter) -> list[BaseRoute]:
    api = _PipelinesApi(router)
    member = Access.MEMBER
    base = "/{org}/{project}/_apis/pipelines"
    run = base + "/{pipeline_id}/runs/{run_id}"
    return [
        router.org_route(base, api.list_pipelines, access=member, scope="vso.build"),
        router.org_route(base + "/{pipeline_id}", api.get_pipeline, access=member, scope="vso.build"),
        router.org_route(base + "/{pipeline_id}/runs", api.list_runs, access=member, scope="vso.build"),
        router.org_route(
            base + "/{pipeline_id}/runs",
            api.queue_run,
            access=member,
            scope="vso.build_execute",
            methods=["POST"],
        ),
        router.org_route(run, api.get_run, access=member, scope="vso.build"),
        router.org_route(run + "/logs", api.list_logs, access=member, scope="vso.build"),
        router.org_route(run + "/logs/{log_id}", api.get_log, access=member, scope="vso.build"),
        router.org_route(
            run + "/logs/{log_id}/content", api.get_log_content, access=member, scope="vso.build"
        ),
    ]
