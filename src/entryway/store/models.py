"""Every table Entryway keeps. Identity-platform and DevOps tables share a database file but never a
foreign key: the DevOps service knows identities only by the object ids that appear in tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


# --- identity platform -------------------------------------------------------------------------


class TenantRow(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(256))
    access_token_lifetime_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    created_at: Mapped[datetime]

    domains: Mapped[list[TenantDomainRow]] = relationship(lazy="raise", back_populates="tenant")


class TenantDomainRow(Base):
    __tablename__ = "tenant_domains"

    name: Mapped[str] = mapped_column(String(253), primary_key=True)  # lower-case
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    is_initial: Mapped[bool] = mapped_column(Boolean, default=False)

    tenant: Mapped[TenantRow] = relationship(lazy="raise", back_populates="domains")


class ApplicationRow(Base):
    """An app registration. First-party applications (the Azure DevOps resource) have no home tenant."""

    __tablename__ = "applications"

    object_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(36), unique=True)
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    display_name: Mapped[str] = mapped_column(String(256))
    # oauth2PermissionScopes values ("user_impersonation") and appRoles values, as Entra names them.
    delegated_scopes: Mapped[list[str]] = mapped_column(default=list)
    app_roles: Mapped[list[str]] = mapped_column(default=list)
    # accessTokenAcceptedVersion: 1 (Entra's default, and what Azure DevOps receives) or 2.
    access_token_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]


class IdentifierUriRow(Base):
    """An application's identifier URIs (`api://…`, `https://app.vssps.visualstudio.com`), unique."""

    __tablename__ = "identifier_uris"

    uri: Mapped[str] = mapped_column(String(512), primary_key=True)  # lower-case
    application_object_id: Mapped[str] = mapped_column(
        ForeignKey("applications.object_id", ondelete="CASCADE"), index=True
    )


class ClientSecretRow(Base):
    __tablename__ = "client_secrets"

    key_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    application_object_id: Mapped[str] = mapped_column(
        ForeignKey("applications.object_id", ondelete="CASCADE"), index=True
    )
    display_name: Mapped[str] = mapped_column(String(256), default="")
    hint: Mapped[str] = mapped_column(String(8))  # the first characters, as Entra shows them
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ServicePrincipalRow(Base):
    __tablename__ = "service_principals"
    __table_args__ = (UniqueConstraint("tenant_id", "app_id"),)

    object_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("applications.app_id", ondelete="CASCADE"))
    display_name: Mapped[str] = mapped_column(String(256))
    account_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class AppRoleAssignmentRow(Base):
    """An app role of a resource granted to a service principal (application permission)."""

    __tablename__ = "app_role_assignments"
    __table_args__ = (UniqueConstraint("principal_id", "resource_app_id", "role"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    principal_id: Mapped[str] = mapped_column(
        ForeignKey("service_principals.object_id", ondelete="CASCADE"), index=True
    )
    resource_app_id: Mapped[str] = mapped_column(ForeignKey("applications.app_id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime]


class UserRow(Base):
    __tablename__ = "users"

    object_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_principal_name: Mapped[str] = mapped_column(String(256), unique=True)  # lower-case
    display_name: Mapped[str] = mapped_column(String(256))
    password_hash: Mapped[str | None] = mapped_column(String(256))  # argon2id
    account_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class SigningKeyRow(Base):
    """Token signing keys. Exactly one is `active`; retired keys stay published until `publish_until`."""

    __tablename__ = "signing_keys"
    __table_args__ = (Index("ix_signing_keys_state", "state"),)

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16))  # active | retired
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]
    publish_until: Mapped[datetime | None]


# --- DevOps service ----------------------------------------------------------------------------


class OrganizationRow(Base):
    __tablename__ = "devops_organizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    name_key: Mapped[str] = mapped_column(
        String(50), unique=True
    )  # lower-case: org names are case-insensitive
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime]


class MemberRow(Base):
    """A user or service principal entitled in an organization, known by its Entra object id."""

    __tablename__ = "devops_members"
    __table_args__ = (UniqueConstraint("organization_id", "object_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the DevOps identity id (VSID)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("devops_organizations.id", ondelete="CASCADE"), index=True
    )
    object_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(32))  # user | servicePrincipal
    display_name: Mapped[str] = mapped_column(String(256))
    principal_name: Mapped[str] = mapped_column(String(256))  # UPN, or the app id of a service principal
    access_level: Mapped[str] = mapped_column(String(32))  # stakeholder | basic | basicPlusTest
    created_at: Mapped[datetime]


class SettingRow(Base):
    """Installation facts, such as whether the demo has been seeded."""

    __tablename__ = "settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(1024))
