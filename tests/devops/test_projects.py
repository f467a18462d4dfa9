"""Projects and repositories: the authorization rules, then the REST surface over TLS."""

from __future__ import annotations

import pytest

from entryway.devops.orgs.service import AccessLevel, Member, MemberKind
from entryway.devops.projects.permissions import (
    ProjectRole,
    can_manage_project,
    can_push,
    can_read_code,
    can_see_project,
)


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
