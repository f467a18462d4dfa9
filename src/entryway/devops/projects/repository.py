"""Every query on the project, project-role and repository tables."""

from __future__ import annotations

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from entryway.store.models import MemberRow, ProjectMemberRow, ProjectRow, RepositoryRow


class ProjectRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: object) -> None:
        self._session.add(row)
        self._session.flush()

    # --- projects ------------------------------------------------------------------------------------

    def find_project(self, organization_id: str, id_or_name: str) -> ProjectRow | None:
        return self._session.scalars(
            select(ProjectRow).where(
                ProjectRow.organization_id == organization_id,
                or_(ProjectRow.id == id_or_name.lower(), ProjectRow.name_key == id_or_name.lower()),
            )
        ).first()

    def list_projects(self, organization_id: str) -> list[ProjectRow]:
        """Ordered by name, so that paging with top/skip is stable."""
        return list(
            self._session.scalars(
                select(ProjectRow)
                .where(ProjectRow.organization_id == organization_id)
                .order_by(ProjectRow.name_key)
            )
        )

    def delete_project(self, project_id: str) -> None:
        # Child rows go explicitly: SQLite enforces ON DELETE CASCADE only with foreign keys switched on.
        self._session.execute(delete(RepositoryRow).where(RepositoryRow.project_id == project_id))
        self._session.execute(delete(ProjectMemberRow).where(ProjectMemberRow.project_id == project_id))
        self._session.execute(delete(ProjectRow).where(ProjectRow.id == project_id))

    # --- roles ---------------------------------------------------------------------------------------

    def find_role(self, project_id: str, member_id: str) -> ProjectMemberRow | None:
        return self._session.get(ProjectMemberRow, (project_id, member_id))

    def roles_of_member(self, member_id: str) -> dict[str, str]:
        """project id -> role, for every project the member has a role in."""
        rows = self._session.execute(
            select(ProjectMemberRow.project_id, ProjectMemberRow.role).where(
                ProjectMemberRow.member_id == member_id
            )
        )
        return {str(project_id): str(role) for project_id, role in rows}

    def list_roles(self, project_id: str) -> list[tuple[ProjectMemberRow, MemberRow]]:
        rows = self._session.execute(
            select(ProjectMemberRow, MemberRow)
            .join(MemberRow, MemberRow.id == ProjectMemberRow.member_id)
            .where(ProjectMemberRow.project_id == project_id)
            .order_by(MemberRow.principal_name)
        )
        return [(role, member) for role, member in rows]

    def delete_role(self, project_id: str, member_id: str) -> bool:
        result = self._session.execute(
            delete(ProjectMemberRow).where(
                ProjectMemberRow.project_id == project_id, ProjectMemberRow.member_id == member_id
            )
        )
        return bool(getattr(result, "rowcount", 0))

    # --- repositories --------------------------------------------------------------------------------

    def find_repository(self, project_id: str, id_or_name: str) -> RepositoryRow | None:
        return self._session.scalars(
            select(RepositoryRow).where(
                RepositoryRow.project_id == project_id,
                or_(RepositoryRow.id == id_or_name.lower(), RepositoryRow.name_key == id_or_name.lower()),
            )
        ).first()

    def find_repository_in_org(self, organization_id: str, id_or_name: str) -> list[RepositoryRow]:
        """Repositories of the organization with this id or name (names are unique per project only)."""
        return list(
            self._session.scalars(
                select(RepositoryRow)
                .join(ProjectRow, ProjectRow.id == RepositoryRow.project_id)
                .where(
                    ProjectRow.organization_id == organization_id,
                    or_(RepositoryRow.id == id_or_name.lower(), RepositoryRow.name_key == id_or_name.lower()),
                )
            )
        )

    def list_repositories(self, project_ids: list[str]) -> list[RepositoryRow]:
        if not project_ids:
            return []
        return list(
            self._session.scalars(
                select(RepositoryRow)
                .where(RepositoryRow.project_id.in_(project_ids))
                .order_by(RepositoryRow.name_key, RepositoryRow.id)
            )
        )
