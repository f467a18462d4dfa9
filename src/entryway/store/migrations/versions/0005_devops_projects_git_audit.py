"""devops projects git audit

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 22:46:49.398819
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devops_audit_events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=True),
        sa.Column("organization_name", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=36), nullable=True),
        sa.Column("actor_name", sa.String(length=256), nullable=False),
        sa.Column("credential_kind", sa.String(length=32), nullable=False),
        sa.Column("client_address", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("devops_audit_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_devops_audit_events_org_time", ["organization_id", "timestamp"], unique=False
        )

    op.create_table(
        "devops_projects",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_key", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_update_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["devops_organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_id", "name_key"),
    )
    with op.batch_alter_table("devops_projects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_devops_projects_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "devops_project_members",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["devops_members.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["devops_projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "member_id"),
    )
    op.create_table(
        "devops_repositories",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_key", sa.String(length=64), nullable=False),
        sa.Column("default_branch", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["devops_projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name_key"),
    )
    with op.batch_alter_table("devops_repositories", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devops_repositories_project_id"), ["project_id"], unique=False)

    with op.batch_alter_table("devops_members", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("organization_admin", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("devops_members", schema=None) as batch_op:
        batch_op.drop_column("organization_admin")

    with op.batch_alter_table("devops_repositories", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devops_repositories_project_id"))

    op.drop_table("devops_repositories")
    op.drop_table("devops_project_members")
    with op.batch_alter_table("devops_projects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devops_projects_organization_id"))

    op.drop_table("devops_projects")
    with op.batch_alter_table("devops_audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_devops_audit_events_org_time")

    op.drop_table("devops_audit_events")
