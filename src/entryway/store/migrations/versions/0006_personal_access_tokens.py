"""personal access tokens

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 23:23:24.132707
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "devops_pats",
        sa.Column("authorization_id", sa.String(length=36), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("owner_object_id", sa.String(length=36), nullable=False),
        sa.Column("owner_tenant_id", sa.String(length=36), nullable=False),
        sa.Column("owner_name", sa.String(length=256), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("scope", sa.String(length=2048), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_address", sa.String(length=64), nullable=True),
        sa.Column("last_used_user_agent", sa.String(length=256), nullable=True),
        sa.Column("last_used_route_kind", sa.String(length=16), nullable=True),
        sa.Column("rest_uses", sa.Integer(), nullable=False),
        sa.Column("git_uses", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("authorization_id"),
        sa.UniqueConstraint("digest"),
    )
    with op.batch_alter_table("devops_pats", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devops_pats_organization_id"), ["organization_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_devops_pats_owner_object_id"), ["owner_object_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("devops_pats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devops_pats_owner_object_id"))
        batch_op.drop_index(batch_op.f("ix_devops_pats_organization_id"))

    op.drop_table("devops_pats")
