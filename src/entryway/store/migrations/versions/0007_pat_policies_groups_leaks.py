"""PAT policies, groups and directory roles, leak reports, notifications, DevOps web sessions

Existing PATs get `owner_groups` [] and `source` "api".

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 23:56:48.904566
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devops_leak_reporters",
        sa.Column("key_identifier", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("public_key_pem", sa.String(length=4096), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_identifier"),
    )
    op.create_table(
        "devops_leak_reports",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reporter", sa.String(length=128), nullable=False),
        sa.Column("token_type", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("authorization_id", sa.String(length=36), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("devops_leak_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_devops_leak_reports_authorization_id"), ["authorization_id"], unique=False
        )

    op.create_table(
        "devops_notifications",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("recipient_object_id", sa.String(length=36), nullable=False),
        sa.Column("recipient_tenant_id", sa.String(length=36), nullable=False),
        sa.Column("recipient_name", sa.String(length=256), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("body", sa.String(length=4096), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("devops_notifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_devops_notifications_recipient_object_id"), ["recipient_object_id"], unique=False
        )

    op.create_table(
        "devops_pat_policy_allowlist",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_kind", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("policy", sa.String(length=32), nullable=False),
        sa.Column("principal_object_id", sa.String(length=36), nullable=False),
        sa.Column("principal_kind", sa.String(length=16), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_kind", "owner_id", "policy", "principal_object_id"),
    )
    with op.batch_alter_table("devops_pat_policy_allowlist", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_devops_pat_policy_allowlist_owner_id"), ["owner_id"], unique=False
        )

    op.create_table(
        "devops_pat_tenant_policies",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("restrict_global", sa.Boolean(), nullable=False),
        sa.Column("restrict_full_scope", sa.Boolean(), nullable=False),
        sa.Column("max_lifespan_days", sa.Integer(), nullable=True),
        sa.Column("auto_revoke_leaked", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "devops_web_sessions",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("principal_name", sa.String(length=256), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    with op.batch_alter_table("devops_web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devops_web_sessions_object_id"), ["object_id"], unique=False)

    op.create_table(
        "devops_pat_org_policies",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("restrict_creation", sa.Boolean(), nullable=False),
        sa.Column("packaging_only", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["devops_organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("organization_id"),
    )
    op.create_table(
        "directory_role_assignments",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("role_template_id", sa.String(length=36), nullable=False),
        sa.Column("principal_object_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "role_template_id", "principal_object_id"),
    )
    with op.batch_alter_table("directory_role_assignments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_directory_role_assignments_principal_object_id"),
            ["principal_object_id"],
            unique=False,
        )

    op.create_table(
        "groups",
        sa.Column("object_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("display_name_key", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("object_id"),
        sa.UniqueConstraint("tenant_id", "display_name_key"),
    )
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_groups_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("member_object_id", sa.String(length=36), nullable=False),
        sa.Column("member_kind", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["groups.object_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "member_object_id"),
    )
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_group_members_member_object_id"), ["member_object_id"], unique=False
        )

    with op.batch_alter_table("devops_pats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_groups", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("source", sa.String(length=16), nullable=False, server_default="api"))


def downgrade() -> None:
    with op.batch_alter_table("devops_pats", schema=None) as batch_op:
        batch_op.drop_column("source")
        batch_op.drop_column("owner_groups")

    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_members_member_object_id"))

    op.drop_table("group_members")
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_groups_tenant_id"))

    op.drop_table("groups")
    with op.batch_alter_table("directory_role_assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directory_role_assignments_principal_object_id"))

    op.drop_table("directory_role_assignments")
    op.drop_table("devops_pat_org_policies")
    with op.batch_alter_table("devops_web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devops_web_sessions_object_id"))

    op.drop_table("devops_web_sessions")
    op.drop_table("devops_pat_tenant_policies")
    with op.batch_alter_table("devops_pat_policy_allowlist", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devops_pat_policy_allowlist_owner_id"))

    op.drop_table("devops_pat_policy_allowlist")
    with op.batch_alter_table("devops_notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devops_notifications_recipient_object_id"))

    op.drop_table("devops_notifications")
    with op.batch_alter_table("devops_leak_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devops_leak_reports_authorization_id"))

    op.drop_table("devops_leak_reports")
    op.drop_table("devops_leak_reporters")
