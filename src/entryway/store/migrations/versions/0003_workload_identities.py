"""workload identities

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 22:07:11.349856
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "used_assertions",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    with op.batch_alter_table("used_assertions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_used_assertions_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "certificates",
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("application_object_id", sa.String(length=36), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("thumbprint_sha1", sa.String(length=40), nullable=False),
        sa.Column("thumbprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["application_object_id"], ["applications.object_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("key_id"),
        sa.UniqueConstraint("application_object_id", "thumbprint_sha1"),
    )
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_certificates_application_object_id"), ["application_object_id"], unique=False
        )

    op.create_table(
        "federated_identity_credentials",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_app_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("issuer", sa.String(length=600), nullable=False),
        sa.Column("subject", sa.String(length=600), nullable=True),
        sa.Column("claims_matching_expression", sa.String(length=2048), nullable=True),
        sa.Column("audiences", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=600), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_app_id"], ["applications.app_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_app_id", "name"),
    )
    with op.batch_alter_table("federated_identity_credentials", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_federated_identity_credentials_owner_app_id"), ["owner_app_id"], unique=False
        )

    op.create_table(
        "managed_identities",
        sa.Column("object_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("resource_id", sa.String(length=512), nullable=False),
        sa.Column("on_host", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["object_id"], ["service_principals.object_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("object_id"),
        sa.UniqueConstraint("app_id"),
        sa.UniqueConstraint("resource_id"),
    )
    with op.batch_alter_table("managed_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_managed_identities_tenant_id"), ["tenant_id"], unique=False)

    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("managed_identity", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_column("managed_identity")

    with op.batch_alter_table("managed_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_managed_identities_tenant_id"))

    op.drop_table("managed_identities")
    with op.batch_alter_table("federated_identity_credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_federated_identity_credentials_owner_app_id"))

    op.drop_table("federated_identity_credentials")
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certificates_application_object_id"))

    op.drop_table("certificates")
    with op.batch_alter_table("used_assertions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_used_assertions_expires_at"))

    op.drop_table("used_assertions")
