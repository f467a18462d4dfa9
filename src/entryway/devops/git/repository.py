"""Every query the Git service makes: a repository by project and name (or id), and a member's project role."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from entryway.kit.ids import parse_guid
from entryway.store.models import ProjectMemberRow, ProjectRow, RepositoryRow


class GitRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def find_in_project(
        self, organization_id: str, project: str, repository: str
    ) -> tuple[ProjectRow, RepositoryRow] | None:
        """`project` and `repository` are names (case-insensitive) or ids, as Azure DevOps accepts both."""
        project_id = parse_guid(project)
        repository_id = parse_guid(repository)
        found = self._session.execute(
            select(ProjectRow, RepositoryRow)
            .join(RepositoryRow, RepositoryRow.project_id == ProjectRow.id)
            .where(
                ProjectRow.organization_id == organization_id,
                or_(ProjectRow.name_key == project.lower(), ProjectRow.id == (project_id or "")),
                or_(RepositoryRow.name_key == repository.lower(), RepositoryRow.id == (repository_id or "")),
            )
        ).first()
        return (found[0], found[1]) if found is not None else None

    def find_in_organization(
        self, organization_id: str, repository: str
    ) -> list[tuple[ProjectRow, RepositoryRow]]:
        """Every repository of the organization with this name (or id); the caller wants exactly one."""
        repository_id = parse_guid(repository)
        rows = self._session.execute(
            select(ProjectRow, RepositoryRow)
            .join(RepositoryRow, RepositoryRow.project_id == ProjectRow.id)
            .where(
                ProjectRow.organization_id == organization_id,
                or_(RepositoryRow.name_key == repository.lower(), RepositoryRow.id == (repository_id or "")),
            )
            .limit(2)
        ).all()
        return [(row[0], row[1]) for row in rows]

    def find_role(self, project_id: str, member_id: str) -> str | None:
        return self._session.scalars(
            select(ProjectMemberRow.role).where(
                ProjectMemberRow.project_id == project_id, ProjectMemberRow.member_id == member_id
            )
        ).first()
