"""Pipelines with workload identity federation: service connections, pipelines and their variables, runs,
steps and log lines, job tokens, and signing keys by purpose (the DevOps OIDC issuer has its own).

Existing signing keys are the identity platform's.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 00:49:36.926738
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devops_service_connections",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("name_key", sa.String(length=256), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("scheme", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("issuer_mode", sa.String(length=16), nullable=False),
        sa.Column("all_pipelines", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["devops_projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name_key"),
    )
    with op.batch_alter_table("devops_service_connections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_devops_service_connections_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "devops_pipelines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("name_key", sa.String(length=256), nullable=False),
        sa.Column("repository_id", sa.String(length=36), nullable=False),
        sa.Column("yaml_path", sa.String(length=1024), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["devops_projects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["repository_id"], ["devops_repositories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name_key"),
    )
    with op.batch_alter_table("devops_pipelines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devops_pipelines_project_id"), ["project_id"], unique=False)

    op.create_table(
        "devops_pipeline_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("plan_id", sa.String(length=36), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=True),
        sa.Column("source_branch", sa.String(length=256), nullable=False),
        sa.Column("source_version", sa.String(length=64), nullable=True),
        sa.Column("requested_by_object_id", sa.String(length=36), nullable=True),
        sa.Column("requested_by_name", sa.String(length=256), nullable=False),
        sa.Column("error", sa.String(length=2048), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["pipeline_id"], ["devops_pipelines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("devops_pipeline_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_devops_pipeline_runs_pipeline_id"), ["pipeline_id"], unique=False
        )

    op.create_table(
        "devops_pipeline_variables",
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("is_secret", sa.Boolean(), nullable=False),
        sa.Column("value", sa.String(length=4096), nullable=True),
        sa.Column("value_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["pipeline_id"], ["devops_pipelines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pipeline_id", "name"),
    )
    op.create_table(
        "devops_service_connection_pipelines",
        sa.Column("connection_id", sa.String(length=36), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["connection_id"], ["devops_service_connections.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["pipeline_id"], ["devops_pipelines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("connection_id", "pipeline_id"),
    )
    op.create_table(
        "devops_job_tokens",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["devops_pipeline_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("digest"),
    )
    with op.batch_alter_table("devops_job_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devops_job_tokens_run_id"), ["run_id"], unique=False)

    op.create_table(
        "devops_pipeline_log_lines",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.String(length=8192), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["devops_pipeline_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "line_no"),
    )
    op.create_table(
        "devops_pipeline_steps",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["devops_pipeline_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "index"),
    )
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purpose", sa.String(length=32), server_default="identity", nullable=False)
        )
        batch_op.create_index(batch_op.f("ix_signing_keys_purpose"), ["purpose"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signing_keys_purpose"))
        batch_op.drop_column("purpose")

    op.drop_table("devops_pipeline_steps")
    op.drop_table("devops_pipeline_log_lines")
    with op.batch_alter_table("devops_job_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devops_job_tokens_run_id"))

    op.drop_table("devops_job_tokens")
    op.drop_table("devops_service_connection_pipelines")
    op.drop_table("devops_pipeline_variables")
    with op.batch_alter_table("devops_pipeline_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devops_pipeline_runs_pipeline_id"))

    op.drop_table("devops_pipeline_runs")
    with op.batch_alter_table("devops_pipelines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devops_pipelines_project_id"))

    op.drop_table("devops_pipelines")
    with op.batch_alter_table("devops_service_connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devops_service_connections_project_id"))

    op.drop_table("devops_service_connections")
