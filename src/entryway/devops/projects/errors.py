"""The wire half of the project service's errors: Azure DevOps' WrappedException, with its TF codes."""

from __future__ import annotations

from starlette.responses import Response

from entryway.devops.projects.service import ProjectError, ProjectErrorKind
from entryway.devops.web.errors import wrapped_exception
from entryway.kit.web import JsonResponse

_GIT = "Microsoft.TeamFoundation.Git.Server"
_CORE = "Microsoft.TeamFoundation.Core.WebApi"

# kind -> (status, type name, type key, message template on the `subject`)
_CATALOGUE: dict[ProjectErrorKind, tuple[int, str, str, str]] = {
    ProjectErrorKind.PROJECT_NOT_FOUND: (
        404,
        f"{_CORE}.ProjectDoesNotExistWithNameException, {_CORE}",
        "ProjectDoesNotExistWithNameException",
        "TF200016: The following project does not exist: {subject}. Verify that the name of the project is "
        "correct and that the project exists on the specified Azure DevOps Server.",
    ),
    ProjectErrorKind.REPOSITORY_NOT_FOUND: (
        404,
        f"{_GIT}.GitRepositoryNotFoundException, {_GIT}",
        "GitRepositoryNotFoundException",
        "TF401019: The Git repository with name or identifier {subject} does not exist or you do not have "
        "permissions for the operation you are attempting.",
    ),
    ProjectErrorKind.PROJECT_EXISTS: (
        409,
        "Microsoft.TeamFoundation.Common.ProjectAlreadyExistsException, Microsoft.TeamFoundation.Common",
        "ProjectAlreadyExistsException",
        "TF200019: The following project already exists on the Azure DevOps Server: {subject}. You cannot "
        "create a new project with the same name as an existing project. Provide a different name.",
    ),
    ProjectErrorKind.REPOSITORY_EXISTS: (
        409,
        f"{_GIT}.GitRepositoryNameAlreadyExistsException, {_GIT}",
        "GitRepositoryNameAlreadyExistsException",
        "TF400948: A Git repository with the name {subject} already exists.",
    ),
}


def project_error_response(error: ProjectError) -> Response:
    entry = _CATALOGUE.get(error.kind)
    if entry is None:  # an invalid name or request: the message says which rule, as ADO's does
        body = wrapped_exception(
            str(error), type_name="System.ArgumentException, mscorlib", type_key="ArgumentException"
        )
        return JsonResponse(body, status_code=400)
    status, type_name, type_key, template = entry
    body = wrapped_exception(template.format(subject=error.subject), type_name=type_name, type_key=type_key)
    return JsonResponse(body, status_code=status)


def bad_request(message: str, *, type_name: str, type_key: str) -> Response:
    return JsonResponse(wrapped_exception(message, type_name=type_name, type_key=type_key), status_code=400)


def create_projects_denied(display_name: str) -> Response:
    """Creating and deleting projects needs Project Collection Administrators (ADO: TF50309)."""
    message = (
        f"TF50309: The following account does not have sufficient permissions to complete the operation: "
        f"{display_name}. The following permissions are needed to perform this operation: Create new projects."
    )
    body = wrapped_exception(
        message,
        type_name="Microsoft.TeamFoundation.Framework.Server.AccessCheckException, "
        "Microsoft.TeamFoundation.Framework.Server",
        type_key="AccessCheckException",
    )
    return JsonResponse(body, status_code=403)


def git_permission_denied(permission: str, identity: str, scope: str) -> Response:
    """TF401027, as Azure Repos words it."""
    message = (
        f"TF401027: You need the Git '{permission}' permission to perform this action. "
        f"Details: identity '{identity}', scope '{scope}'."
    )
    body = wrapped_exception(
        message,
        type_name=f"{_GIT}.GitNeedsPermissionException, {_GIT}",
        type_key="GitNeedsPermissionException",
    )
    return JsonResponse(body, status_code=403)
