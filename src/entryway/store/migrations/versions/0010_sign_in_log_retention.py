"""The sign-in log's retention: an index on its time, which the pruning deletes by.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 12:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sign_in_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sign_in_log_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sign_in_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sign_in_log_created_at"))
