"""The real azure-devops SDK (`BasicTokenAuthentication` with an Entra token) against `{devops}/fabrikam`:
its bootstrap (OPTIONS _apis, ResourceAreas), then projects and repositories (devops-wire-contract 7)."""

from __future__ import annotations

import pytest
from azure.devops.connection import Connection
from azure.devops.exceptions import AzureDevOpsServiceError
from msrest.authentication import BasicTokenAuthentication

from tests.conftest import Instance
from tests.devops.test_projects import (
    ADMIN_ID,
    ADMIN_SECRET,
    HIDDEN_PROJECT,
    ORG,
    READER_ID,
    READER_PROJECTS,
    READER_SECRET,
    projects_world,
)
from tests.devops.test_token_rejection import fresh_token

__all__ = ["projects_world"]  # the fixture, shared with test_projects


def connect(instance: Instance, client_id: str, secret: str) -> Connection:
    token = fresh_token(instance, client_id=client_id, secret=secret)
    return Connection(
        base_url=f"{instance.devops}/{ORG}", creds=BasicTokenAuthentication({"access_token": token})
    )


def test_sdk_lists_projects_and_repositories(entryway: Instance, projects_world: None) -> None:
    connection = connect(entryway, READER_ID, READER_SECRET)
    core = connection.clients.get_core_client()
    projects = core.get_projects()
    assert [p.name for p in projects] == READER_PROJECTS
    assert all(p.state == "wellFormed" for p in projects)
    project = core.get_project("proj-charlie")
    assert project.name == "proj-charlie"

    git = connection.clients.get_git_client()
    repos = git.get_repositories()
    assert sorted(r.name for r in repos) == READER_PROJECTS
    in_project = git.get_repositories(project="proj-delta")
    assert [r.name for r in in_project] == ["proj-delta"]
    assert in_project[0].remote_url == f"{entryway.devops}/{ORG}/proj-delta/_git/proj-delta"
    assert git.get_repository("proj-delta", project="proj-delta").id == in_project[0].id


def test_sdk_errors_are_wrapped_exceptions(entryway: Instance, projects_world: None) -> None:
    core = connect(entryway, READER_ID, READER_SECRET).clients.get_core_client()
    with pytest.raises(AzureDevOpsServiceError, match="TF200016"):
        core.get_project(HIDDEN_PROJECT)
    git = connect(entryway, READER_ID, READER_SECRET).clients.get_git_client()
    with pytest.raises(AzureDevOpsServiceError, match="TF401019"):
        git.get_repository("secret-repo")


def test_sdk_queue_create_project(entryway: Instance, projects_world: None) -> None:
    from azure.devops.v7_1.core.models import TeamProject

    core = connect(entryway, ADMIN_ID, ADMIN_SECRET).clients.get_core_client()
    operation = core.queue_create_project(
        TeamProject(name="proj-by-sdk", description="from the SDK", visibility="private")
    )
    assert operation.status == "succeeded"
    assert core.get_project("proj-by-sdk").description == "from the SDK"
