"""Git smart HTTP routes: `/{org}/{project}/_git/{repo}/info/refs`, `…/git-upload-pack`, `…/git-receive-pack`,
and the same under `/{org}/_git/{repo}` for a repository whose name is unique in the organization.

Members only: an anonymous git gets the 401 challenge, which makes it ask its credential helper. Refusals
are `text/plain`, which git prints to the user as `remote: …`; a git client never gets a redirect or HTML.
A pipeline job token is accepted too (the checkout step); GitService limits it to its own project, read only.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from entryway.devops.audit.recorder import Actor, record_change_by
from entryway.devops.auth.principal import Anonymous, Principal
from entryway.devops.git.backend import BackendError, CgiRequest, run_http_backend
from entryway.devops.git.service import GitOperation, GitRefusal, GitService, GitTarget, tf401019
from entryway.devops.git.storage import repository_path
from entryway.devops.orgs.service import Organization
from entryway.devops.web.routing import ANY_SCOPE, Access, AuthDecision, DevOpsRouter, address_of

log = logging.getLogger("entryway.devops.git")

SERVICES = {"git-upload-pack": GitOperation.READ, "git-receive-pack": GitOperation.PUSH}
# Ref updates listed in one audit row at most (a mirror push may move thousands).
AUDITED_REFS = 100


def git_routes(router: DevOpsRouter) -> list[BaseRoute]:
    git = _GitHttp(router)
    routes: list[BaseRoute] = []
    # PAT scopes (PAT-AUTH): checked by GitService.authorize, where the operation is known.
    # Job tokens (the build service): checked by GitService.authorize too (its own project, no push).
    member, anyscope = Access.MEMBER, ANY_SCOPE
    for prefix in ("/{org}/_git/{repo}", "/{org}/{project}/_git/{repo}"):
        routes += [
            router.org_route(
                f"{prefix}/info/refs",
                git.info_refs,
                access=member,
                methods=["GET"],
                scope=anyscope,
                job_token=True,
            ),
            router.org_route(
                f"{prefix}/git-upload-pack",
                git.upload_pack,
                access=member,
                methods=["POST"],
                scope=anyscope,
                job_token=True,
            ),
            router.org_route(
                f"{prefix}/git-receive-pack",
                git.receive_pack,
                access=member,
                methods=["POST"],
                scope=anyscope,
                job_token=True,
            ),
        ]
    return routes


class _RelayResponse(StreamingResponse):
    """A streamed answer that never calls `receive()` itself. Starlette's StreamingResponse listens for the
    disconnect on servers older than ASGI 2.4, and each `receive()` it makes takes a piece of the request body
    away from `request.stream()`, which is still feeding git (a push is read while its answer is written)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.stream_response(send)
        except OSError as exc:
            raise ClientDisconnect from exc


def _text(status: int, message: str) -> Response:
    return Response(f"{message}\n", status_code=status, media_type="text/plain; charset=utf-8")


class _GitHttp:
    def __init__(self, router: DevOpsRouter) -> None:
        self._router = router

    async def info_refs(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        operation = SERVICES.get(request.query_params.get("service", ""))
        if operation is None:
            # Azure Repos speaks smart HTTP only; git would fall back to the dumb protocol otherwise.
            return _text(403, "Only the smart HTTP protocol is supported: use git 1.6.6 or later.")
        return await self._serve(request, org, principal, operation, "/info/refs", with_body=False)

    async def upload_pack(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        return await self._serve(
            request, org, principal, GitOperation.READ, "/git-upload-pack", with_body=True
        )

    async def receive_pack(
        self, request: Request, org: Organization, principal: Principal | Anonymous
    ) -> Response:
        return await self._serve(
            request, org, principal, GitOperation.PUSH, "/git-receive-pack", with_body=True
        )

    async def _serve(
        self,
        request: Request,
        org: Organization,
        principal: Principal | Anonymous,
        operation: GitOperation,
        suffix: str,
        *,
        with_body: bool,
    ) -> Response:
        assert isinstance(principal, Principal)  # Access.MEMBER
        git_root = self._router.ctx.git_root
        repo_name = request.path_params["repo"]
        project = request.path_params.get("project")
        if git_root is None:
            return _text(404, tf401019(repo_name))
        decided = await self._router.read(
            lambda session: GitService(session).authorize(
                org,
                principal.member,
                project,
                repo_name,
                operation,
                pat_scopes=principal.pat_scopes,
                job_project_id=principal.job.project_id if principal.job is not None else None,
            )
        )
        if isinstance(decided, GitRefusal):
            log.info("%s %s refused: %s", request.method, request.url.path, decided.reason)
            await self._router.record(
                AuthDecision(request, org, org.name, principal, False, decided.status, decided.reason)
            )
            return _text(decided.status, decided.message)
        target = decided
        path = repository_path(git_root, target.repository_id)
        pushing = operation is GitOperation.PUSH and suffix == "/git-receive-pack"
        refs_before = await _list_refs(path) if pushing else {}

        async def on_exit(returncode: int) -> None:
            if pushing and returncode == 0:
                await self._record_push(request, principal, target, refs_before, await _list_refs(path))

        cgi = CgiRequest(
            git_root=Path(git_root),
            repository_id=target.repository_id,
            suffix=suffix,
            method=request.method,
            query=request.url.query,
            content_type=request.headers.get("content-type", ""),
            content_encoding=request.headers.get("content-encoding", ""),
            git_protocol=request.headers.get("git-protocol", ""),
            remote_user=principal.member.principal_name,
            remote_addr=address_of(request),
        )
        try:
            answer = await run_http_backend(cgi, request.stream() if with_body else None, on_exit)
        except BackendError:
            log.exception("git http-backend failed for %s", request.url.path)
            return _text(500, "The Git service could not answer this request.")
        return _RelayResponse(answer.body, status_code=answer.status, headers=answer.headers)

    async def _record_push(
        self,
        request: Request,
        principal: Principal,
        target: GitTarget,
        before: dict[str, str],
        after: dict[str, str],
    ) -> None:
        updates = _ref_updates(before, after)
        if not updates:
            return
        details: dict[str, Any] = {
            "projectId": target.project_id,
            "projectName": target.project_name,
            "repositoryId": target.repository_id,
            "repositoryName": target.repository_name,
            "refUpdates": updates[:AUDITED_REFS],
            "refUpdateCount": len(updates),
        }
        actor = Actor.of(request, principal)
        clock = self._router.ctx.clock
        try:
            await self._router.write(
                lambda session: record_change_by(
                    session,
                    clock=clock,
                    organization=target.organization,
                    actor=actor,
                    action="Git.RefUpdate",
                    details=details,
                    status=200,
                )
            )
        except Exception:  # the push happened; a failed audit write must not turn it into an error
            log.exception("recording the push to %s failed", target.repository_id)


def _ref_updates(before: dict[str, str], after: dict[str, str]) -> list[dict[str, str]]:
    """Azure DevOps' `GitRefUpdate` shape; a deleted ref has the all-zero new object id."""
    zero = "0" * 40
    updates = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name, zero), after.get(name, zero)
        if old != new:
            updates.append({"name": name, "oldObjectId": old, "newObjectId": new})
    return updates


async def _list_refs(path: Path) -> dict[str, str]:
    process = await asyncio.create_subprocess_exec(
        "git",
        "--git-dir",
        str(path),
        "for-each-ref",
        "--format=%(objectname) %(refname)",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await process.communicate()
    refs: dict[str, str] = {}
    for line in out.decode("utf-8", "replace").splitlines():
        object_id, _, name = line.partition(" ")
        if name:
            refs[name] = object_id
    return refs
