"""Every query on the pipeline, variable, run, step and log tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from entryway.store.models import (
    OrganizationRow,
    PipelineLogLineRow,
    PipelineRow,
    PipelineRunRow,
    PipelineStepRow,
    PipelineVariableRow,
    ProjectRow,
    RepositoryRow,
)


class PipelineRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: object) -> None:
        self._session.add(row)
        self._session.flush()

    # --- pipelines -----------------------------------------------------------------------------------

    def find_pipeline(self, project_id: str, id_or_name: str) -> PipelineRow | None:
        conditions = [PipelineRow.name_key == id_or_name.lower()]
        if id_or_name.isdigit():
            conditions.append(PipelineRow.id == int(id_or_name))
        return self._session.scalars(
            select(PipelineRow).where(PipelineRow.project_id == project_id, or_(*conditions))
        ).first()

    def find_pipelines_by_yaml_path(self, project_id: str, yaml_path: str) -> list[PipelineRow]:
        return list(
            self._session.scalars(
                select(PipelineRow).where(
                    PipelineRow.project_id == project_id, PipelineRow.yaml_path == yaml_path
                )
            )
        )

    def get_pipeline(self, pipeline_id: int) -> PipelineRow | None:
        return self._session.get(PipelineRow, pipeline_id)

    def list_pipelines(self, project_id: str) -> list[PipelineRow]:
        return list(
            self._session.scalars(
                select(PipelineRow).where(PipelineRow.project_id == project_id).order_by(PipelineRow.name_key)
            )
        )

    # --- variables -----------------------------------------------------------------------------------

    def find_variable(self, pipeline_id: int, name: str) -> PipelineVariableRow | None:
        return self._session.scalars(
            select(PipelineVariableRow).where(
                PipelineVariableRow.pipeline_id == pipeline_id,
                func.lower(PipelineVariableRow.name) == name.lower(),
            )
        ).first()

    def list_variables(self, pipeline_id: int) -> list[PipelineVariableRow]:
        return list(
            self._session.scalars(
                select(PipelineVariableRow)
                .where(PipelineVariableRow.pipeline_id == pipeline_id)
                .order_by(PipelineVariableRow.name)
            )
        )

    def delete_variable(self, row: PipelineVariableRow) -> None:
        self._session.delete(row)
        self._session.flush()

    # --- runs ----------------------------------------------------------------------------------------

    def get_run(self, run_id: int) -> PipelineRunRow | None:
        return self._session.get(PipelineRunRow, run_id)

    def list_runs(self, pipeline_id: int, limit: int = 50) -> list[PipelineRunRow]:
        return list(
            self._session.scalars(
                select(PipelineRunRow)
                .where(PipelineRunRow.pipeline_id == pipeline_id)
                .order_by(PipelineRunRow.id.desc())
                .limit(limit)
            )
        )

    def claim_run(self, run_id: int, started_at: datetime) -> bool:
        """Move a queued run to inProgress; False when it is not queued (another runner took it): a
        compare-and-swap, so two runners given the same run never both run it."""
        result = self._session.execute(
            update(PipelineRunRow)
            .where(PipelineRunRow.id == run_id, PipelineRunRow.state == "notStarted")
            .values(state="inProgress", started_at=started_at)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    def list_steps(self, run_id: int) -> list[PipelineStepRow]:
        return list(
            self._session.scalars(
                select(PipelineStepRow)
                .where(PipelineStepRow.run_id == run_id)
                .order_by(PipelineStepRow.index)
            )
        )

    def get_step(self, run_id: int, index: int) -> PipelineStepRow | None:
        return self._session.get(PipelineStepRow, (run_id, index))

    def list_log_lines(self, run_id: int, step_index: int | None = None) -> list[PipelineLogLineRow]:
        query = select(PipelineLogLineRow).where(PipelineLogLineRow.run_id == run_id)
        if step_index is not None:
            query = query.where(PipelineLogLineRow.step_index == step_index)
        return list(self._session.scalars(query.order_by(PipelineLogLineRow.line_no)))

    def count_log_lines(self, run_id: int) -> dict[int, int]:
        """step index -> number of lines."""
        rows = self._session.execute(
            select(PipelineLogLineRow.step_index, func.count())
            .where(PipelineLogLineRow.run_id == run_id)
            .group_by(PipelineLogLineRow.step_index)
        )
        return {int(index): int(count) for index, count in rows}

    def find_job_rows(
        self, run_id: int
    ) -> tuple[PipelineRunRow, PipelineRow, ProjectRow, OrganizationRow, RepositoryRow] | None:
        """What a job needs to know about itself: its run, pipeline, project, organization and repository."""
        run = self._session.get(PipelineRunRow, run_id)
        if run is None:
            return None
        pipeline = self._session.get(PipelineRow, run.pipeline_id)
        project = self._session.get(ProjectRow, run.project_id)
        repo = self._session.get(RepositoryRow, pipeline.repository_id) if pipeline else None
        org = self._session.get(OrganizationRow, project.organization_id) if project else None
        if pipeline is None or project is None or repo is None or org is None:
            return None
        return run, pipeline, project, org, repo

    def count_runs_queued_between(self, pipeline_id: int, start: datetime, end: datetime) -> int:
        return int(
            self._session.scalar(
                select(func.count()).where(
                    PipelineRunRow.pipeline_id == pipeline_id,
                    PipelineRunRow.queued_at >= start,
                    PipelineRunRow.queued_at <= end,
                )
            )
            or 0
        )

    def add_log_lines(self, rows: list[PipelineLogLineRow]) -> None:
        self._session.add_all(rows)
        self._session.flush()
