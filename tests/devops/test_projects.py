"""Projects and repositories: the authorization rules, then the REST surface over TLS with requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from entryway.config.declarative import apply_config
from entryway.devops.audit.recorder import Actor
from entryway.devops.orgs.service import AccessLevel, Member, MemberKind, OrgService
from entryway.devops.projects.permissions import (
    ProjectRole,
    can_manage_project,
    can_push,
    can_read_code,
    can_see_project,
)
from entryway.devops.projects.service import ProjectService
from entryway.store.models import MemberRow
from tests.conftest import CONTOSO_TENANT, Instance
from tests.devops.test_token_rejection import bearer, fresh_token


def _member(level: AccessLevel) -> Member:
    return Member("m", "o", "oid", MemberKind.USER, "M", "m@contoso", level)


@pytest.mark.parametrize(
    ("level", "role", "admin", "expected"),
    [
        (AccessLevel.BASIC, None, False, (False, False, False, False)),
        (AccessLevel.BASIC, ProjectRole.READERS, False, (True, True, False, False)),
        (AccessLevel.BASIC, ProjectRole.CONTRIBUTORS, False, (True, True, True, False)),
        (AccessLevel.BASIC, ProjectRole.PROJECT_ADMINISTRATORS, False, (True, True, True, True)),
        (AccessLevel.BASIC_PLUS_TEST, ProjectRole.CONTRIBUTORS, False, (True, True, True, False)),
        (AccessLevel.STAKEHOLDER, ProjectRole.CONTRIBUTORS, False, (True, False, False, False)),
        (AccessLevel.STAKEHOLDER, ProjectRole.PROJECT_ADMINISTRATORS, False, (True, False, False, True)),
        (AccessLevel.BASIC, None, True, (True, True, True, True)),
        (AccessLevel.STAKEHOLDER, None, True, (True, False, False, True)),
    ],
)
def test_permissions(
    level: AccessLevel,
    role: ProjectRole | None,
    admin: bool,
    expected: tuple[bool, bool, bool, bool],
) -> None:
    """Expected: (see the project, read code, push, manage the project)."""
    member = _member(level)
    checks = (can_see_project, can_read_code, can_push, can_manage_project)
    assert tuple(check(member, role, admin) for check in checks) == expected


def test_role_spellings() -> None:
    assert ProjectRole.parse("project_administrators") is ProjectRole.PROJECT_ADMINISTRATORS
    assert ProjectRole.parse("projectAdministrators") is ProjectRole.PROJECT_ADMINISTRATORS
    assert ProjectRole.parse("Readers") is ProjectRole.READERS
    with pytest.raises(ValueError, match="unknown project role"):
        ProjectRole.parse("owners")


# --- the REST surface --------------------------------------------------------------------------------

ORG = "fabrikam"
ADMIN_ID = "b0b0c0de-0000-4000-8000-00000000b001"
ADMIN_SECRET = "projects-admin-secret-0123456789abcdefghi"
READER_ID = "b0b0c0de-0000-4000-8000-00000000b002"
READER_SECRET = "projects-reader-secret-0123456789abcdefgh"
LONER_ID = "b0b0c0de-0000-4000-8000-00000000b003"
LONER_SECRET = "projects-loner-secret-0123456789abcdefghi"
PROJECTS_CONFIG = f"""\
tenants:
  - id: {CONTOSO_TENANT}
    domains: [contoso.test]
    apps:
      - name: projects-admin-bot
        client_id: {ADMIN_ID}
        secrets:
          - value: "{ADMIN_SECRET}"
      - name: projects-reader-bot
        client_id: {READER_ID}
        secrets:
          - value: "{READER_SECRET}"
      - name: projects-loner-bot
        client_id: {LONER_ID}
        secrets:
          - value: "{LONER_SECRET}"
organizations:
  - name: {ORG}
    tenant: contoso.test
    members:
      - app: projects-admin-bot
        access: basic
        organization_admin: true
      - app: projects-reader-bot
        access: basic
      - app: projects-loner-bot
        access: basic
"""
# Projects the reader is a Reader of (more than one page of two); the loner has no role anywhere.
READER_PROJECTS = ["proj-alpha", "proj-bravo", "proj-charlie", "proj-delta", "proj-echo"]
HIDDEN_PROJECT = "proj-hidden"


@pytest.fixture(scope="module")
def projects_world(entryway: Instance) -> None:
    """Three apps in fabrikam: an organization admin, a Reader of READER_PROJECTS, and a member of no project.
    Each of READER_PROJECTS has a repository named after it; HIDDEN_PROJECT has `secret-repo`."""
    apply_config(entryway.runtime, yaml.safe_load(PROJECTS_CONFIG), source="test_projects")
    runtime = entryway.runtime
    with runtime.db.unit_of_work() as session:
        orgs = OrgService(session, entryway.clock)
        org = orgs.get(ORG)
        reader = orgs.find_member(org, _object_id(entryway, READER_ID))
        assert reader is not None
        service = ProjectService(session, entryway.clock, str(runtime.settings.data_dir / "git"))
        actor = Actor.local("test_projects")
        for name in [*READER_PROJECTS, HIDDEN_PROJECT]:
            project = service.find(org, name) or service.create(
                org, name, actor, description=f"{name} things"
            )
            if service.list_repositories(org, project=project) == []:
                service.create_repository(
                    org, project, "secret-repo" if name == HIDDEN_PROJECT else name, actor
                )
            if name != HIDDEN_PROJECT:
                service.set_role(org, project, reader, ProjectRole.READERS, actor)


def _object_id(instance: Instance, app_id: str) -> str:
    with instance.runtime.db.read() as session:
        member = session.query(MemberRow).filter(MemberRow.principal_name == app_id).one()
        return member.object_id


def call(
    instance: Instance,
    path: str,
    token: str | None,
    *,
    method: str = "GET",
    api_version: str | None = "7.1",
    **kwargs: Any,
) -> requests.Response:
    headers = {"X-TFS-FedAuthRedirect": "Suppress"}
    headers["Accept"] = "application/json" + (f";api-version={api_version}" if api_version else "")
    if token is not None:
        headers["Authorization"] = bearer(token)
    return requests.request(method, f"{instance.devops}{path}", headers=headers, timeout=30, **kwargs)


def test_locations_and_resource_areas(entryway: Instance) -> None:
    """What the SDK asks first: OPTIONS _apis lists the locations it looks up by id; ResourceAreas is empty
    (so the SDK keeps to our base URL)."""
    locations = requests.options(f"{entryway.devops}/{ORG}/_apis", headers={"Accept": "application/json"})
    assert locations.status_code == 200
    ids = {item["id"] for item in locations.json()["value"]}
    assert {
        "e81700f7-3be2-46de-8624-2eb35882fcaa",  # ResourceAreas
        "603fe2ac-9723-48b9-88ad-09305aa6c6e1",  # projects
        "225f7195-f9c7-4d14-ab28-a83f7ff77e1f",  # repositories
        "00d9565f-ed9c-4a06-9a50-00e7896ccab4",  # connectionData
    } <= ids
    areas = requests.get(f"{entryway.devops}/{ORG}/_apis/ResourceAreas")
    assert areas.json() == {"count": 0, "value": []}


def test_listing_with_continuation_shows_only_visible_projects(
    entryway: Instance, projects_world: None
) -> None:
    reader = fresh_token(entryway, client_id=READER_ID, secret=READER_SECRET)
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        params = {"$top": "2"} | ({"continuationToken": token} if token else {})
        response = call(entryway, f"/{ORG}/_apis/projects", reader, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == len(body["value"]) <= 2
        seen += [p["name"] for p in body["value"]]
        pages += 1
        token = response.headers.get("x-ms-continuationtoken")
        if token is None:
            break
    assert seen == READER_PROJECTS  # ordered by name, each once, the hidden one never
    assert pages == 3
    first = call(entryway, f"/{ORG}/_apis/projects", reader).json()["value"][0]
    assert set(first) >= {
        "id",
        "name",
        "description",
        "url",
        "state",
        "revision",
        "visibility",
        "lastUpdateTime",
    }
    assert first["state"] == "wellFormed"
    assert first["url"] == f"{entryway.devops}/{ORG}/_apis/projects/{first['id']}"

    loner = fresh_token(entryway, client_id=LONER_ID, secret=LONER_SECRET)
    assert call(entryway, f"/{ORG}/_apis/projects", loner).json() == {"count": 0, "value": []}
    admin = fresh_token(entryway, client_id=ADMIN_ID, secret=ADMIN_SECRET)
    names = [p["name"] for p in call(entryway, f"/{ORG}/_apis/projects", admin).json()["value"]]
    assert set(names) >= {*READER_PROJECTS, HIDDEN_PROJECT}


def test_a_project_the_caller_cannot_see_does_not_exist(entryway: Instance, projects_world: None) -> None:
    reader = fresh_token(entryway, client_id=READER_ID, secret=READER_SECRET)
    admin = fresh_token(entryway, client_id=ADMIN_ID, secret=ADMIN_SECRET)
    hidden = call(entryway, f"/{ORG}/_apis/projects/{HIDDEN_PROJECT}", admin)
    assert hidden.status_code == 200
    by_id = call(entryway, f"/{ORG}/_apis/projects/{hidden.json()['id']}", admin)
    assert by_id.json()["name"] == HIDDEN_PROJECT

    for key in (HIDDEN_PROJECT, "no-such-project"):
        response = call(entryway, f"/{ORG}/_apis/projects/{key}", reader)
        assert response.status_code == 404
        body = response.json()
        assert body["message"].startswith(f"TF200016: The following project does not exist: {key}.")
        assert body["typeKey"] == "ProjectDoesNotExistWithNameException"
    repos = call(entryway, f"/{ORG}/{HIDDEN_PROJECT}/_apis/git/repositories", reader)
    assert repos.status_code == 404
    assert repos.json()["message"].startswith("TF200016:")
    repo = call(entryway, f"/{ORG}/_apis/git/repositories/secret-repo", reader)
    assert repo.status_code == 404
    assert repo.json()["message"] == (
        "TF401019: The Git repository with name or identifier secret-repo does not exist or you do not have "
        "permissions for the operation you are attempting."
    )
    assert repo.json()["typeKey"] == "GitRepositoryNotFoundException"


def test_repositories_in_azure_devops_shape(entryway: Instance, projects_world: None) -> None:
    reader = fresh_token(entryway, client_id=READER_ID, secret=READER_SECRET)
    everywhere = call(entryway, f"/{ORG}/_apis/git/repositories", reader).json()
    assert sorted(r["name"] for r in everywhere["value"]) == READER_PROJECTS
    in_project = call(entryway, f"/{ORG}/proj-bravo/_apis/git/repositories", reader).json()
    assert [r["name"] for r in in_project["value"]] == ["proj-bravo"]
    repo = in_project["value"][0]
    assert repo["remoteUrl"] == f"{entryway.devops}/{ORG}/proj-bravo/_git/proj-bravo"
    assert repo["project"]["name"] == "proj-bravo"
    assert repo["size"] == 0
    assert repo["url"].endswith(f"/_apis/git/repositories/{repo['id']}")
    by_id = call(entryway, f"/{ORG}/proj-bravo/_apis/git/repositories/{repo['id']}", reader).json()
    assert by_id["name"] == "proj-bravo"
    by_name = call(entryway, f"/{ORG}/_apis/git/repositories/PROJ-BRAVO", reader).json()
    assert by_name["id"] == repo["id"]


def test_create_project_and_repository(entryway: Instance, projects_world: None) -> None:
    admin = fresh_token(entryway, client_id=ADMIN_ID, secret=ADMIN_SECRET)
    reader = fresh_token(entryway, client_id=READER_ID, secret=READER_SECRET)
    body = {"name": "proj-created", "description": "made over REST", "visibility": "private",
            "capabilities": {"versioncontrol": {"sourceControlType": "Git"}}}  # fmt: skip
    denied = call(entryway, f"/{ORG}/_apis/projects", reader, method="POST", json=body)
    assert denied.status_code == 403
    assert denied.json()["message"].startswith("TF50309:")

    created = call(entryway, f"/{ORG}/_apis/projects", admin, method="POST", json=body)
    assert created.status_code == 202, created.text
    assert created.json()["status"] == "succeeded"
    project = call(entryway, f"/{ORG}/_apis/projects/proj-created", admin).json()
    assert project["description"] == "made over REST"

    again = call(entryway, f"/{ORG}/_apis/projects", admin, method="POST", json=body)
    assert again.status_code == 409
    assert again.json()["message"].startswith("TF200019: The following project already exists")
    bad = call(entryway, f"/{ORG}/_apis/projects", admin, method="POST", json={"name": "_bad"})
    assert bad.status_code == 400
    unversioned = call(entryway, f"/{ORG}/_apis/projects", admin, method="POST", json=body, api_version=None)
    assert unversioned.status_code == 400
    assert unversioned.json()["typeKey"] == "VssVersionNotSpecifiedException"
    too_new = call(entryway, f"/{ORG}/_apis/projects", admin, api_version="9.0")
    assert too_new.status_code == 400
    assert too_new.json()["typeKey"] == "VssVersionOutOfRangeException"
    assert call(entryway, f"/{ORG}/_apis/projects", admin, api_version=None).status_code == 200

    repo = call(
        entryway, f"/{ORG}/proj-created/_apis/git/repositories", admin, method="POST", json={"name": "tools"}
    )
    assert repo.status_code == 201, repo.text
    repo_id = repo.json()["id"]
    assert (Path(entryway.runtime.settings.data_dir) / "git" / f"{repo_id}.git" / "HEAD").is_file()
    dup = call(
        entryway, f"/{ORG}/proj-created/_apis/git/repositories", admin, method="POST", json={"name": "TOOLS"}
    )
    assert dup.status_code == 409
    assert dup.json()["message"] == "TF400948: A Git repository with the name TOOLS already exists."
    by_reader = call(
        entryway, f"/{ORG}/proj-alpha/_apis/git/repositories", reader, method="POST", json={"name": "mine"}
    )
    assert by_reader.status_code == 403
    assert by_reader.json()["message"].startswith("TF401027: You need the Git 'CreateRepository' permission")


def test_members_only(entryway: Instance) -> None:
    response = call(entryway, f"/{ORG}/_apis/projects", None)
    assert response.status_code == 401
    assert "Bearer authorization_uri=" in response.headers["WWW-Authenticate"]
