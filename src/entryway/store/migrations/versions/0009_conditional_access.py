"""Conditional Access and continuous access evaluation: named locations, policies, the sign-in log, the
critical-event outbox, and the organization policy "IP Conditional Access policy validation on
non-interactive flows" (off for existing organizations).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 03:23:26.753495
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cae_events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("cae_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cae_events_occurred_at"), ["occurred_at"], unique=False)
        batch_op.create_index("ix_cae_events_subject", ["tenant_id", "subject_id"], unique=False)

    op.create_table(
        "sign_in_log",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal_kind", sa.String(length=32), nullable=False),
        sa.Column("is_interactive", sa.Boolean(), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("user_principal_name", sa.String(length=256), nullable=False),
        sa.Column("service_principal_id", sa.String(length=36), nullable=True),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("app_display_name", sa.String(length=256), nullable=False),
        sa.Column("resource_id", sa.String(length=36), nullable=False),
        sa.Column("resource_display_name", sa.String(length=256), nullable=False),
        sa.Column("ip_address", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=512), nullable=False),
        sa.Column("client_app_used", sa.String(length=48), nullable=False),
        sa.Column("device_platform", sa.String(length=32), nullable=False),
        sa.Column("authentication_protocol", sa.String(length=48), nullable=False),
        sa.Column("authentication_requirement", sa.String(length=48), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=False),
        sa.Column("failure_reason", sa.String(length=1024), nullable=False),
        sa.Column("conditional_access_status", sa.String(length=16), nullable=False),
        sa.Column("applied_policies", sa.JSON(), nullable=False),
        sa.Column("correlation_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sign_in_log", schema=None) as batch_op:
        batch_op.create_index("ix_sign_in_log_tenant_time", ["tenant_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sign_in_log_user_id"), ["user_id"], unique=False)

    op.create_table(
        "ca_named_locations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("display_name_key", sa.String(length=256), nullable=False),
        sa.Column("is_trusted", sa.Boolean(), nullable=False),
        sa.Column("ip_ranges", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "display_name_key"),
    )
    with op.batch_alter_table("ca_named_locations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ca_named_locations_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "ca_policies",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("display_name_key", sa.String(length=256), nullable=False),
        sa.Column("state", sa.String(length=48), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("grant_controls", sa.JSON(), nullable=True),
        sa.Column("session_controls", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "display_name_key"),
    )
    with op.batch_alter_table("ca_policies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ca_policies_tenant_id"), ["tenant_id"], unique=False)

    with op.batch_alter_table("devops_organizations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "ip_conditional_access_validation", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("devops_organizations", schema=None) as batch_op:
        batch_op.drop_column("ip_conditional_access_validation")

    with op.batch_alter_table("ca_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ca_policies_tenant_id"))

    op.drop_table("ca_policies")
    with op.batch_alter_table("ca_named_locations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ca_named_locations_tenant_id"))

    op.drop_table("ca_named_locations")
    with op.batch_alter_table("sign_in_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sign_in_log_user_id"))
        batch_op.drop_index("ix_sign_in_log_tenant_time")

    op.drop_table("sign_in_log")
    with op.batch_alter_table("cae_events", schema=None) as batch_op:
        batch_op.drop_index("ix_cae_events_subject")
        batch_op.drop_index(batch_op.f("ix_cae_events_occurred_at"))

    op.drop_table("cae_events")
