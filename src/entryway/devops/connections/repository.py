"""Every query on the service connection tables (and the pipeline and organization lookups they need)."""

from __future__ import annotations

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from entryway.store.models import (
    OrganizationRow,
    PipelineRow,
    PipelineRunRow,
    ProjectRow,
    RepositoryRow,
    ServiceConnectionPipelineRow,
    ServiceConnectionRow,
)


class ConnectionRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: object) -> None:
        self._session.add(row)
        self._session.flush()

    def flush(self) -> None:
        self._session.flush()

    # --- service connections ------------------------------------------------------------------------

    def find(self, project_id: str, id_or_name: str) -> ServiceConnectionRow | None:
        key = id_or_name.strip().lower()
        return self._session.scalars(
            select(ServiceConnectionRow).where(
                ServiceConnectionRow.project_id == project_id,
                or_(ServiceConnectionRow.id == key, ServiceConnectionRow.name_key == key),
            )
        ).first()

    def find_by_id(self, connection_id: str) -> ServiceConnectionRow | None:
        return self._session.get(ServiceConnectionRow, connection_id.strip().lower())

    def list_for_project(self, project_id: str) -> list[ServiceConnectionRow]:
        return list(
            self._session.scalars(
                select(ServiceConnectionRow)
                .where(ServiceConnectionRow.project_id == project_id)
                .order_by(ServiceConnectionRow.name_key)
            )
        )

    def delete(self, connection_id: str) -> None:
        # Child rows go explicitly: SQLite enforces ON DELETE CASCADE only with foreign keys switched on.
        self._session.execute(
            delete(ServiceConnectionPipelineRow).where(
                ServiceConnectionPipelineRow.connection_id == connection_id
            )
        )
        self._session.execute(delete(ServiceConnectionRow).where(ServiceConnectionRow.id == connection_id))

    # --- authorized pipelines -----------------------------------------------------------------------

    def pipeline_ids(self, connection_id: str) -> list[int]:
        return list(
            self._session.scalars(
                select(ServiceConnectionPipelineRow.pipeline_id)
                .where(ServiceConnectionPipelineRow.connection_id == connection_id)
                .order_by(ServiceConnectionPipelineRow.pipeline_id)
            )
        )

    def is_authorized(self, connection_id: str, pipeline_id: int) -> bool:
        return self._session.get(ServiceConnectionPipelineRow, (connection_id, pipeline_id)) is not None

    # --- what a connection refers to ----------------------------------------------------------------

    def find_pipeline(self, project_id: str, id_or_name: str) -> PipelineRow | None:
        key = id_or_name.strip()
        condition = PipelineRow.name_key == key.lower()
        if key.isdigit():
            condition = or_(condition, PipelineRow.id == int(key))
        return self._session.scalars(
            select(PipelineRow).where(PipelineRow.project_id == project_id, condition)
        ).first()

    def pipeline_names(self, pipeline_ids: list[int]) -> dict[int, str]:
        if not pipeline_ids:
            return {}
        rows = self._session.execute(
            select(PipelineRow.id, PipelineRow.name).where(PipelineRow.id.in_(pipeline_ids))
        )
        return {int(pid): str(name) for pid, name in rows}

    def find_organization(self, organization_id: str) -> OrganizationRow | None:
        return self._session.get(OrganizationRow, organization_id.strip().lower())

    def find_project(self, project_id: str) -> ProjectRow | None:
        return self._session.get(ProjectRow, project_id)

    def find_repository(self, repository_id: str) -> RepositoryRow | None:
        return self._session.get(RepositoryRow, repository_id)

    def find_run(self, run_id: int) -> PipelineRunRow | None:
        return self._session.get(PipelineRunRow, run_id)

    def find_pipeline_by_id(self, pipeline_id: int) -> PipelineRow | None:
        return self._session.get(PipelineRow, pipeline_id)

    def find_project_by_id_or_name(self, organization_id: str, id_or_name: str) -> ProjectRow | None:
        key = id_or_name.strip().lower()
        return self._session.scalars(
            select(ProjectRow).where(
                ProjectRow.organization_id == organization_id,
                or_(ProjectRow.id == key, ProjectRow.name_key == key),
            )
        ).first()
