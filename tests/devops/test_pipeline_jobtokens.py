"""Job tokens (System.AccessToken): issued per run, found by digest, refused when forged, expired or revoked."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from entryway.devops.pipelines.jobtokens import JobIdentity, JobTokens
from entryway.kit.clock import ManualClock
from entryway.kit.secrets import JOB_TOKEN, SecretDigester
from entryway.store.db import Database, sqlite_url
from entryway.store.models import (
    JobTokenRow,
    OrganizationRow,
    PipelineRow,
    PipelineRunRow,
    ProjectRow,
    RepositoryRow,
)

DIGESTER = SecretDigester(b"k" * 32)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(sqlite_url(tmp_path))
    yield database
    database.dispose()


def _run(db: Database, clock: ManualClock) -> tuple[int, str]:
    now = clock.now()
    org_id, project_id, repo_id = (str(uuid.uuid4()) for _ in range(3))
    with db.unit_of_work() as session:
        session.add(
            OrganizationRow(id=org_id, name="jt", name_key="jt", tenant_id=str(uuid.uuid4()), created_at=now)
        )
        session.flush()
        session.add(
            ProjectRow(
                id=project_id,
                organization_id=org_id,
                name="P",
                name_key="p",
                created_at=now,
                last_update_time=now,
            )
        )
        session.flush()
        session.add(RepositoryRow(id=repo_id, project_id=project_id, name="r", name_key="r", created_at=now))
        session.flush()
        pipeline = PipelineRow(
            project_id=project_id,
            name="ci",
            name_key="ci",
            repository_id=repo_id,
            yaml_path="a.yml",
            created_at=now,
        )
        session.add(pipeline)
        session.flush()
        run = PipelineRunRow(
            pipeline_id=pipeline.id,
            project_id=project_id,
            plan_id=str(uuid.uuid4()),
            job_id=str(uuid.uuid4()),
            state="inProgress",
            queued_at=now,
        )
        session.add(run)
        session.flush()
        return run.id, org_id


def test_a_job_token_speaks_for_its_job_until_revoked(db: Database) -> None:
    clock = ManualClock()
    run_id, org_id = _run(db, clock)
    with db.unit_of_work() as session:
        run = session.get(PipelineRunRow, run_id)
        assert run is not None
        token = JobTokens(session, clock, DIGESTER).issue(run, org_id, timedelta(minutes=60))
        plan_id, job_id, project_id, pipeline_id = run.plan_id, run.job_id, run.project_id, run.pipeline_id
    assert token.startswith("ewjt_")
    assert JOB_TOKEN.is_well_formed(token)
    with db.read() as session:
        stored = session.scalars(select(JobTokenRow)).all()
        assert [r.digest for r in stored] == [DIGESTER.digest(token)]  # only the digest is kept
        assert JobTokens(session, clock, DIGESTER).verify(token) == JobIdentity(
            run_id=run_id,
            organization_id=org_id,
            project_id=project_id,
            pipeline_id=pipeline_id,
            plan_id=plan_id,
            job_id=job_id,
        )
    with db.unit_of_work() as session:
        JobTokens(session, clock, DIGESTER).revoke_for_run(run_id)
    with db.read() as session:
        assert JobTokens(session, clock, DIGESTER).verify(token) is None


def test_a_job_token_expires_with_the_job_timeout(db: Database) -> None:
    clock = ManualClock()
    run_id, org_id = _run(db, clock)
    with db.unit_of_work() as session:
        run = session.get(PipelineRunRow, run_id)
        assert run is not None
        token = JobTokens(session, clock, DIGESTER).issue(run, org_id, timedelta(minutes=5))
    clock.advance(timedelta(minutes=4, seconds=50))
    with db.read() as session:
        assert JobTokens(session, clock, DIGESTER).verify(token) is not None
    clock.advance(timedelta(seconds=11))
    with db.read() as session:
        assert JobTokens(session, clock, DIGESTER).verify(token) is None


@pytest.mark.parametrize(
    "value",
    ["", "ewjt_", "ewpat_" + "a" * 46, JOB_TOKEN.mint()[:-1] + "x", JOB_TOKEN.mint()],
    ids=["empty", "prefix-only", "other-kind", "bad-checksum", "unknown"],
)
def test_forged_or_unknown_job_tokens_are_nobody(db: Database, value: str) -> None:
    with db.read() as session:
        assert JobTokens(session, ManualClock(), DIGESTER).verify(value) is None


def test_a_token_from_another_digest_key_is_unknown(db: Database) -> None:
    clock = ManualClock()
    run_id, org_id = _run(db, clock)
    with db.unit_of_work() as session:
        run = session.get(PipelineRunRow, run_id)
        assert run is not None
        token = JobTokens(session, clock, DIGESTER).issue(run, org_id, timedelta(minutes=5))
    with db.read() as session:
        assert JobTokens(session, clock, SecretDigester(b"o" * 32)).verify(token) is None


def test_issue_refuses_a_lifetime_that_is_not_positive(db: Database) -> None:
    clock = ManualClock()
    run_id, org_id = _run(db, clock)
    with db.unit_of_work() as session:
        run = session.get(PipelineRunRow, run_id)
        assert run is not None
        with pytest.raises(ValueError, match="positive"):
            JobTokens(session, clock, DIGESTER).issue(run, org_id, timedelta(0))
