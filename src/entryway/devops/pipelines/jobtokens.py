"""Job tokens: the System.AccessToken a pipeline job holds while it runs.

A job token is a minted secret (`JOB_TOKEN`, prefix `ewjt_`); the database keeps only its keyed digest in
devops_job_tokens. It is valid in its run's project from issue until the job's timeout and is revoked when the
job ends, whatever its result, so it stops working on the very next request (in any server process: the check
reads the row). Never commits: the caller's unit of work does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from entryway.kit.clock import Clock, as_utc
from entryway.kit.secrets import JOB_TOKEN, SecretDigester
from entryway.store.models import JobTokenRow, PipelineRunRow

# Azure DevOps' default job timeout; a run may ask for another.
DEFAULT_JOB_TIMEOUT = timedelta(minutes=60)


@dataclass(frozen=True)
class JobIdentity:
    """Who a valid job token speaks for: one job of one run of one pipeline, in one project."""

    run_id: int
    organization_id: str
    project_id: str
    pipeline_id: int
    plan_id: str
    job_id: str


class JobTokens:
    def __init__(self, session: Session, clock: Clock, digester: SecretDigester) -> None:
        self._session = session
        self._clock = clock
        self._digester = digester

    def issue(
        self, run: PipelineRunRow, organization_id: str, lifetime: timedelta = DEFAULT_JOB_TIMEOUT
    ) -> str:
        """A new token for `run`, expiring `lifetime` from now; returns the value, the only copy."""
        if lifetime <= timedelta(0):
            raise ValueError("a job token's lifetime must be positive")
        value = JOB_TOKEN.mint()
        now = self._clock.now()
        self._session.add(
            JobTokenRow(
                digest=self._digester.digest(value),
                run_id=run.id,
                organization_id=organization_id,
                project_id=run.project_id,
                pipeline_id=run.pipeline_id,
                created_at=now,
                expires_at=now + lifetime,
                revoked_at=None,
            )
        )
        self._session.flush()
        return value

    def verify(self, token: str) -> JobIdentity | None:
        """The job a token speaks for, or None when it is malformed, unknown, revoked or expired.

        The shape (prefix, length, checksum) is checked before any lookup, so a forged or mistyped value costs
        no query; the lookup is by keyed digest, so no comparison of secrets happens in Python at all."""
        if not token or not JOB_TOKEN.is_well_formed(token):
            return None
        found = self._session.execute(
            select(JobTokenRow, PipelineRunRow)
            .join(PipelineRunRow, PipelineRunRow.id == JobTokenRow.run_id)
            .where(JobTokenRow.digest == self._digester.digest(token))
        ).first()
        if found is None:
            return None
        row, run = found[0], found[1]
        if row.revoked_at is not None or as_utc(row.expires_at) <= self._clock.now():
            return None
        return JobIdentity(
            run_id=row.run_id,
            organization_id=row.organization_id,
            project_id=row.project_id,
            pipeline_id=row.pipeline_id,
            plan_id=run.plan_id,
            job_id=run.job_id,
        )

    def revoke_for_run(self, run_id: int) -> None:
        """End every token of a run (the job ended). Idempotent: an already revoked token keeps its time."""
        self._session.execute(
            update(JobTokenRow)
            .where(JobTokenRow.run_id == run_id, JobTokenRow.revoked_at.is_(None))
            .values(revoked_at=self._clock.now())
        )
        self._session.flush()
