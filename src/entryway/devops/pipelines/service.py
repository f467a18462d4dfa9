"""Pipeline definitions, their variables and their runs' records. Never commits: the caller's unit of work
does. Changes are audited in the same unit of work; a secret variable's value never reaches the audit log."""

from __future__ import annotations

import enum
import posixpath
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from entryway.devops.audit.recorder import Actor, record_change_by
from entryway.devops.orgs.service import Organization
from entryway.devops.pipelines.repository import PipelineRepository
from entryway.devops.pipelines.variables import VariableCipher
from entryway.devops.pipelines.yamlspec import RESERVED_PREFIXES
from entryway.devops.projects.service import (
    Project,
    ProjectError,
    ProjectErrorKind,
    ProjectService,
    check_name,
)
from entryway.kit.clock import Clock, as_utc
from entryway.kit.ids import new_guid
from entryway.store.models import PipelineRow, PipelineRunRow, PipelineVariableRow

_VARIABLE_NAME = re.compile(r"^[A-Za-z0-9_.]+$")
MAX_VARIABLE_LENGTH = 4096
# Azure DevOps' branch names: a ref under refs/heads; we accept the short form too.
_BRANCH = re.compile(r"^[A-Za-z0-9._/\-]+$")


class PipelineErrorKind(enum.Enum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    EXISTS = "exists"
    RUN_NOT_FOUND = "run_not_found"


class PipelineError(ValueError):
    def __init__(self, kind: PipelineErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Pipeline:
    id: int
    name: str
    project_id: str
    repository_id: str
    yaml_path: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: PipelineRow) -> Pipeline:
        return cls(row.id, row.name, row.project_id, row.repository_id, row.yaml_path, as_utc(row.created_at))


@dataclass(frozen=True)
class Variable:
    name: str
    is_secret: bool
    value: str | None  # None for a secret: it is shown to no one


@dataclass(frozen=True)
class Step:
    index: int
    display_name: str
    state: str
    result: str | None
    exit_code: int | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class Run:
    id: int
    pipeline_id: int
    pipeline_name: str
    project_id: str
    plan_id: str
    job_id: str
    state: str
    result: str | None
    source_branch: str
    source_version: str | None
    requested_by: str
    error: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    steps: tuple[Step, ...]


def normalize_yaml_path(path: str) -> str:
    """A path inside the repository, as Azure DevOps shows it without the leading '/'; never outside it."""
    cleaned = path.strip().replace("\\", "/").lstrip("/")
    if not cleaned or any(part in {"", ".", ".."} for part in cleaned.split("/")):
        raise PipelineError(PipelineErrorKind.INVALID, f"'{path}' is not a path of a file in the repository")
    return posixpath.normpath(cleaned)


def normalize_branch(branch: str) -> str:
    """`main` or `refs/heads/main` -> `refs/heads/main`."""
    name = branch.strip()
    if name.startswith("refs/heads/"):
        name = name[len("refs/heads/") :]
    if (
        not name
        or not _BRANCH.match(name)
        or ".." in name
        or name.startswith(("-", "/"))
        or name.endswith("/")
    ):
        raise PipelineError(PipelineErrorKind.INVALID, f"'{branch}' is not a branch name")
    return f"refs/heads/{name}"


def check_variable_name(name: str) -> str:
    if not name or not _VARIABLE_NAME.match(name) or len(name) > 256:
        raise PipelineError(
            PipelineErrorKind.INVALID, f"'{name}': a variable name has letters, digits, '.' and '_' only"
        )
    if name.lower().startswith(RESERVED_PREFIXES):
        raise PipelineError(PipelineErrorKind.INVALID, f"'{name}' is a predefined variable's name")
    return name


class PipelineService:
    def __init__(self, session: Session, clock: Clock, cipher: VariableCipher | None = None) -> None:
        self._session = session
        self._repo = PipelineRepository(session)
        self._clock = clock
        self._cipher = cipher

    def _audit(self, org: Organization, actor: Actor, action: str, details: dict[str, object]) -> None:
        record_change_by(
            self._session, clock=self._clock, organization=org, actor=actor, action=action, details=details
        )

    # --- definitions ---------------------------------------------------------------------------------

    def create(
        self, org: Organization, project: Project, name: str, actor: Actor, *, repository: str, yaml_path: str
    ) -> Pipeline:
        try:
            check_name(name, "pipeline")
            repo = ProjectService(self._session, self._clock).get_repository(org, repository, project=project)
        except ProjectError as exc:
            missing = exc.kind in {ProjectErrorKind.PROJECT_NOT_FOUND, ProjectErrorKind.REPOSITORY_NOT_FOUND}
            kind = PipelineErrorKind.NOT_FOUND if missing else PipelineErrorKind.INVALID
            raise PipelineError(kind, str(exc)) from None
        path = normalize_yaml_path(yaml_path)
        if self._repo.find_pipeline(project.id, name) is not None:
            raise PipelineError(
                PipelineErrorKind.EXISTS, f"pipeline '{name}' already exists in {project.name}"
            )
        row = PipelineRow(
            project_id=project.id,
            name=name,
            name_key=name.lower(),
            repository_id=repo.id,
            yaml_path=path,
            created_at=self._clock.now(),
        )
        self._repo.add(row)
        self._audit(
            org,
            actor,
            "Pipelines.PipelineCreated",
            {"projectId": project.id, "projectName": project.name, "pipelineId": row.id, "pipelineName": name,
             "repoId": repo.id, "repoName": repo.name, "yamlPath": path},
        )  # fmt: skip
        return Pipeline.from_row(row)

    def find(self, project: Project, id_or_name: str) -> Pipeline | None:
        row = self._repo.find_pipeline(project.id, id_or_name)
        return None if row is None else Pipeline.from_row(row)

    def get(self, project: Project, id_or_name: str) -> Pipeline:
        found = self.find(project, id_or_name)
        if found is None:
            raise PipelineError(
                PipelineErrorKind.NOT_FOUND, f"pipeline '{id_or_name}' not found in {project.name}"
            )
        return found

    def get_by_id(self, pipeline_id: int) -> Pipeline:
        row = self._repo.get_pipeline(pipeline_id)
        if row is None:
            raise PipelineError(PipelineErrorKind.NOT_FOUND, f"pipeline {pipeline_id} not found")
        return Pipeline.from_row(row)

    def resolve(self, project: Project, name_or_path: str) -> Pipeline | None:
        """A pipeline by id or name, else the one pipeline whose YAML is at that path (None when none is;
        PipelineError when several pipelines use the path: the name must be given)."""
        found = self.find(project, name_or_path)
        if found is not None:
            return found
        try:
            path = normalize_yaml_path(name_or_path)
        except PipelineError:
            return None
        rows = self._repo.find_pipelines_by_yaml_path(project.id, path)
        if len(rows) > 1:
            names = ", ".join(sorted(r.name for r in rows))
            raise PipelineError(
                PipelineErrorKind.INVALID, f"several pipelines use '{path}' ({names}): name the pipeline"
            )
        return Pipeline.from_row(rows[0]) if rows else None

    def list_pipelines(self, project: Project) -> list[Pipeline]:
        return [Pipeline.from_row(r) for r in self._repo.list_pipelines(project.id)]

    # --- variables -----------------------------------------------------------------------------------

    def set_variable(
        self,
        org: Organization,
        pipeline: Pipeline,
        name: str,
        value: str,
        actor: Actor,
        *,
        secret: bool = False,
    ) -> bool:
        """Set (or replace) a variable; False when nothing changed (a plain variable with the same value; a
        secret is always rewritten, since its value cannot be compared without decrypting it)."""
        check_variable_name(name)
        if len(value) > MAX_VARIABLE_LENGTH:
            raise PipelineError(
                PipelineErrorKind.INVALID, f"'{name}': a value has at most {MAX_VARIABLE_LENGTH} characters"
            )
        if "\x00" in value:
            raise PipelineError(
                PipelineErrorKind.INVALID, f"'{name}': a value cannot contain a NUL character"
            )
        if secret and self._cipher is None:
            raise PipelineError(PipelineErrorKind.INVALID, "secret variables need the master key")
        row = self._repo.find_variable(pipeline.id, name)
        if row is not None and not secret and not row.is_secret and row.value == value and row.name == name:
            return False
        if row is not None:
            self._repo.delete_variable(row)
        encrypted = self._cipher.encrypt(pipeline.id, name, value) if secret and self._cipher else None
        self._repo.add(
            PipelineVariableRow(
                pipeline_id=pipeline.id,
                name=name,
                is_secret=secret,
                value=None if secret else value,
                value_encrypted=encrypted,
                created_at=self._clock.now(),
            )
        )
        self._audit(
            org,
            actor,
            "Pipelines.VariableSet",
            {"pipelineId": pipeline.id, "pipelineName": pipeline.name, "variable": name, "isSecret": secret},
        )
        return True

    def delete_variable(self, org: Organization, pipeline: Pipeline, name: str, actor: Actor) -> None:
        row = self._repo.find_variable(pipeline.id, name)
        if row is None:
            raise PipelineError(
                PipelineErrorKind.NOT_FOUND, f"variable '{name}' not found on {pipeline.name}"
            )
        self._repo.delete_variable(row)
        self._audit(
            org,
            actor,
            "Pipelines.VariableDeleted",
            {"pipelineId": pipeline.id, "pipelineName": pipeline.name, "variable": row.name},
        )

    def list_variables(self, pipeline: Pipeline) -> list[Variable]:
        return [
            Variable(r.name, r.is_secret, None if r.is_secret else r.value)
            for r in self._repo.list_variables(pipeline.id)
        ]

    def unsafe_variable_values(self, pipeline: Pipeline) -> dict[str, tuple[str, bool]]:
        """name -> (value, is_secret), secrets decrypted: only for the job that needs them."""
        values: dict[str, tuple[str, bool]] = {}
        for row in self._repo.list_variables(pipeline.id):
            if row.is_secret:
                if self._cipher is None or row.value_encrypted is None:
                    raise PipelineError(
                        PipelineErrorKind.INVALID, f"secret variable '{row.name}' cannot be read"
                    )
                values[row.name] = (self._cipher.decrypt(pipeline.id, row.name, row.value_encrypted), True)
            else:
                values[row.name] = (row.value or "", False)
        return values

    # --- runs ----------------------------------------------------------------------------------------

    def queue_run(self, org: Organization, pipeline: Pipeline, branch: str, actor: Actor) -> Run:
        ref = normalize_branch(branch)
        row = PipelineRunRow(
            pipeline_id=pipeline.id,
            project_id=pipeline.project_id,
            plan_id=new_guid(),
            job_id=new_guid(),
            state="notStarted",
            result=None,
            source_branch=ref,
            source_version=None,
            requested_by_object_id=actor.actor_id,
            requested_by_name=actor.actor_name[:256],
            error=None,
            queued_at=self._clock.now(),
        )
        self._repo.add(row)
        self._audit(
            org,
            actor,
            "Pipelines.RunQueued",
            {"pipelineId": pipeline.id, "pipelineName": pipeline.name, "runId": row.id, "sourceBranch": ref},
        )
        return self._run(row, pipeline.name)

    def _run(self, row: PipelineRunRow, pipeline_name: str) -> Run:
        steps = tuple(
            Step(
                s.index,
                s.display_name,
                s.state,
                s.result,
                s.exit_code,
                None if s.started_at is None else as_utc(s.started_at),
                None if s.finished_at is None else as_utc(s.finished_at),
            )
            for s in self._repo.list_steps(row.id)
        )
        return Run(
            id=row.id,
            pipeline_id=row.pipeline_id,
            pipeline_name=pipeline_name,
            project_id=row.project_id,
            plan_id=row.plan_id,
            job_id=row.job_id,
            state=row.state,
            result=row.result,
            source_branch=row.source_branch,
            source_version=row.source_version,
            requested_by=row.requested_by_name,
            error=row.error,
            queued_at=as_utc(row.queued_at),
            started_at=None if row.started_at is None else as_utc(row.started_at),
            finished_at=None if row.finished_at is None else as_utc(row.finished_at),
            steps=steps,
        )

    def find_run(self, run_id: int, project: Project | None = None) -> Run | None:
        """A run by id; in `project` only, when given (another project's run is no run)."""
        row = self._repo.get_run(run_id)
        if row is None or (project is not None and row.project_id != project.id):
            return None
        pipeline = self._repo.get_pipeline(row.pipeline_id)
        return self._run(row, pipeline.name if pipeline else "")

    def get_run(self, run_id: int, project: Project | None = None) -> Run:
        found = self.find_run(run_id, project)
        if found is None:
            raise PipelineError(PipelineErrorKind.RUN_NOT_FOUND, f"run {run_id} not found")
        return found

    def list_runs(self, pipeline: Pipeline, limit: int = 50) -> list[Run]:
        return [self._run(r, pipeline.name) for r in self._repo.list_runs(pipeline.id, limit)]

    def log_lines(self, run_id: int, step_index: int | None = None) -> list[tuple[int, datetime, str]]:
        """(step index, timestamp, masked text) of each stored line, in order."""
        return [
            (r.step_index, as_utc(r.timestamp), r.text) for r in self._repo.list_log_lines(run_id, step_index)
        ]

    def log_line_counts(self, run_id: int) -> dict[int, int]:
        return self._repo.count_log_lines(run_id)
