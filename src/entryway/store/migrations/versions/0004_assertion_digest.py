"""assertion digest

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 22:22:56.270518
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("used_assertions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assertion_digest", sa.String(length=64), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("used_assertions", schema=None) as batch_op:
        batch_op.drop_column("assertion_digest")
