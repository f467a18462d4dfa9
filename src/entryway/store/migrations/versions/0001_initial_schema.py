"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 18:40:12.612107
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "devops_organizations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("name_key", sa.String(length=50), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name_key"),
    )
    with op.batch_alter_table("devops_organizations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devops_organizations_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=1024), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("private_key_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("publish_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid"),
    )
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.create_index("ix_signing_keys_state", ["state"], unique=False)

    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("access_token_lifetime_seconds", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "applications",
        sa.Column("object_id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=True),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("delegated_scopes", sa.JSON(), nullable=False),
        sa.Column("app_roles", sa.JSON(), nullable=False),
        sa.Column("access_token_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("object_id"),
        sa.UniqueConstraint("app_id"),
    )
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_applications_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "devops_members",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("object_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("principal_name", sa.String(length=256), nullable=False),
        sa.Column("access_level", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["devops_organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_id", "object_id"),
    )
    with op.batch_alter_table("devops_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_devops_members_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "tenant_domains",
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("is_initial", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("tenant_domains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tenant_domains_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "users",
        sa.Column("object_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("user_principal_name", sa.String(length=256), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=True),
        sa.Column("account_enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("object_id"),
        sa.UniqueConstraint("user_principal_name"),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "client_secrets",
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("application_object_id", sa.String(length=36), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("hint", sa.String(length=8), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["application_object_id"], ["applications.object_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("key_id"),
        sa.UniqueConstraint("digest"),
    )
    with op.batch_alter_table("client_secrets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_client_secrets_application_object_id"), ["application_object_id"], unique=False
        )

    op.create_table(
        "identifier_uris",
        sa.Column("uri", sa.String(length=512), nullable=False),
        sa.Column("application_object_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["application_object_id"], ["applications.object_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("uri"),
    )
    with op.batch_alter_table("identifier_uris", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identifier_uris_application_object_id"), ["application_object_id"], unique=False
        )

    op.create_table(
        "service_principals",
        sa.Column("object_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("account_enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["applications.app_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("object_id"),
        sa.UniqueConstraint("tenant_id", "app_id"),
    )
    with op.batch_alter_table("service_principals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_principals_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "app_role_assignments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("principal_id", sa.String(length=36), nullable=False),
        sa.Column("resource_app_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["principal_id"], ["service_principals.object_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["resource_app_id"], ["applications.app_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("principal_id", "resource_app_id", "role"),
    )
    with op.batch_alter_table("app_role_assignments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_app_role_assignments_principal_id"), ["principal_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_app_role_assignments_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("app_role_assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_app_role_assignments_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_app_role_assignments_principal_id"))

    op.drop_table("app_role_assignments")
    with op.batch_alter_table("service_principals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_principals_tenant_id"))

    op.drop_table("service_principals")
    with op.batch_alter_table("identifier_uris", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identifier_uris_application_object_id"))

    op.drop_table("identifier_uris")
    with op.batch_alter_table("client_secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_client_secrets_application_object_id"))

    op.drop_table("client_secrets")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_tenant_id"))

    op.drop_table("users")
    with op.batch_alter_table("tenant_domains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tenant_domains_tenant_id"))

    op.drop_table("tenant_domains")
    with op.batch_alter_table("devops_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devops_members_organization_id"))

    op.drop_table("devops_members")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_applications_tenant_id"))

    op.drop_table("applications")
    op.drop_table("tenants")
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_signing_keys_state")

    op.drop_table("signing_keys")
    op.drop_table("settings")
    with op.batch_alter_table("devops_organizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devops_organizations_tenant_id"))

    op.drop_table("devops_organizations")
