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
    # Security defaults: whether users without a per-user setting must do MFA at sign-in.
    mfa_required_default: Mapped[bool] = mapped_column(Boolean, default=False)
    # Refresh tokens expire after this long unused (Entra: 90 days of inactivity).
    refresh_token_inactivity_seconds: Mapped[int] = mapped_column(Integer, default=90 * 86400)
    # Conditional Access "sign-in frequency": a user must sign in again this long after signing in.
    sign_in_frequency_seconds: Mapped[int | None] = mapped_column(Integer)
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
    # isFallbackPublicClient ("Allow public client flows"): ROPC and device code without a credential.
    public_client: Mapped[bool] = mapped_column(Boolean, default=False)
    # Redirect URIs of every platform (web, public client / native, SPA), compared exactly.
    redirect_uris: Mapped[list[str]] = mapped_column(default=list)
    # The hidden application behind a managed identity's service principal (Entra shows no registration).
    managed_identity: Mapped[bool] = mapped_column(Boolean, default=False)
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


class CertificateRow(Base):
    """A public certificate on an app registration (keyCredential): client assertions signed with its key
    authenticate the app. Found by thumbprint, as the assertion's `x5t` / `x5t#S256` header names it."""

    __tablename__ = "certificates"
    __table_args__ = (UniqueConstraint("application_object_id", "thumbprint_sha1"),)

    key_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    application_object_id: Mapped[str] = mapped_column(
        ForeignKey("applications.object_id", ondelete="CASCADE"), index=True
    )
    display_name: Mapped[str] = mapped_column(String(256), default="")
    thumbprint_sha1: Mapped[str] = mapped_column(String(40))  # upper-case hex, as Entra shows it
    thumbprint_sha256: Mapped[str] = mapped_column(String(64))  # lower-case hex
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    created_at: Mapped[datetime]


class ManagedIdentityRow(Base):
    """A managed identity: a service principal (object id shared) whose credentials the platform holds.
    System-assigned ones belong to one host resource; user-assigned ones stand alone and may be attached to
    many. `on_host`: this Entryway's own host carries it (its IMDS and App Service endpoints issue for it)."""

    __tablename__ = "managed_identities"

    object_id: Mapped[str] = mapped_column(
        ForeignKey("service_principals.object_id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    app_id: Mapped[str] = mapped_column(String(36), unique=True)  # the client id
    kind: Mapped[str] = mapped_column(String(16))  # system | user
    name: Mapped[str] = mapped_column(String(128))
    # The Azure resource id (msi_res_id / mi_res_id), lower-case, e.g.
    # /subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.managedidentity/userassignedidentities/{name}
    resource_id: Mapped[str] = mapped_column(String(512), unique=True)
    on_host: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class FederatedCredentialRow(Base):
    """A federated identity credential: tokens of an external issuer, for a subject (or matching a claims
    expression), authenticate the app registration or user-assigned managed identity that owns it."""

    __tablename__ = "federated_identity_credentials"
    __table_args__ = (UniqueConstraint("owner_app_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The client id of the owner: an app registration's app id or a managed identity's client id.
    owner_app_id: Mapped[str] = mapped_column(
        ForeignKey("applications.app_id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    issuer: Mapped[str] = mapped_column(String(600))
    subject: Mapped[str | None] = mapped_column(String(600))  # case-sensitive
    claims_matching_expression: Mapped[str | None] = mapped_column(String(2048))
    audiences: Mapped[list[str]] = mapped_column(default=list)
    description: Mapped[str] = mapped_column(String(600), default="")
    created_at: Mapped[datetime]


class UsedAssertionRow(Base):
    """A client assertion's `jti`, kept until the assertion expires, so that no other assertion uses it."""

    __tablename__ = "used_assertions"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # of (client id, issuer, jti)
    # Of the whole assertion: the identical assertion may be presented again (msal does, for 9 minutes).
    assertion_digest: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(index=True)


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
    # None: the tenant's default decides.
    mfa_required: Mapped[bool | None] = mapped_column(Boolean)
    # The TOTP shared secret, AES-GCM encrypted under a key derived from the master key.
    totp_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_enrolled_at: Mapped[datetime | None]
    # The last accepted TOTP time step: a code is never accepted twice (RFC 6238 section 5.2).
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]


class GroupRow(Base):
    """A security group. Its members are users, service principals or other groups, by object id."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("tenant_id", "display_name_key"),)

    object_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    display_name: Mapped[str] = mapped_column(String(256))
    display_name_key: Mapped[str] = mapped_column(String(256))  # lower-case: names are unique per tenant here
    created_at: Mapped[datetime]


class GroupMemberRow(Base):
    __tablename__ = "group_members"

    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.object_id", ondelete="CASCADE"), primary_key=True
    )
    member_object_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    member_kind: Mapped[str] = mapped_column(String(32))  # user | servicePrincipal | group
    created_at: Mapped[datetime]


class DirectoryRoleAssignmentRow(Base):
    """A directory role held by a user or service principal; tokens carry the template ids as `wids`."""

    __tablename__ = "directory_role_assignments"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    role_template_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    principal_object_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    created_at: Mapped[datetime]


class PermissionGrantRow(Base):
    """oauth2PermissionGrant: delegated scopes of a resource a client may use on behalf of one user, or of
    every user in the tenant (`principal_id` None: admin consent, and first-party pre-consent)."""

    __tablename__ = "oauth2_permission_grants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    client_app_id: Mapped[str] = mapped_column(String(36))
    principal_id: Mapped[str | None] = mapped_column(ForeignKey("users.object_id", ondelete="CASCADE"))
    resource_app_id: Mapped[str] = mapped_column(String(36))
    scopes: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime]


class SignInFailureRow(Base):
    """Smart lockout: wrong passwords counted per account and source, with a cool-down."""

    __tablename__ = "sign_in_failures"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.object_id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]


class BrowserSessionRow(Base):
    """A browser's sign-in session on the identity origin; the cookie holds the secret, we its digest."""

    __tablename__ = "browser_sessions"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class SessionAccountRow(Base):
    """An account signed in within a browser session (the account picker lists them)."""

    __tablename__ = "session_accounts"

    session_digest: Mapped[str] = mapped_column(
        ForeignKey("browser_sessions.digest", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.object_id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    auth_time: Mapped[datetime]
    amr: Mapped[list[str]] = mapped_column(default=list)  # "pwd", "mfa"


class RefreshTokenFamilyRow(Base):
    """Every refresh token descended from one sign-in. Reusing a rotated token revokes the family."""

    __tablename__ = "refresh_token_families"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.object_id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(2048))  # what the sign-in granted, space-separated
    auth_time: Mapped[datetime]
    amr: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(64))


class RefreshTokenRow(Base):
    __tablename__ = "refresh_tokens"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(
        ForeignKey("refresh_token_families.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class AuthorizationCodeRow(Base):
    """RFC 6749 section 4.1.2: single use, short-lived; only the digest is kept."""

    __tablename__ = "authorization_codes"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.object_id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    scope: Mapped[str] = mapped_column(String(2048))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    nonce: Mapped[str | None] = mapped_column(String(512))
    claims: Mapped[str | None] = mapped_column(String(4096))
    auth_time: Mapped[datetime]
    amr: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    consumed_at: Mapped[datetime | None]
    # The refresh-token family the redemption started: revoked if the code is replayed.
    family_id: Mapped[str | None] = mapped_column(String(36))


class DeviceCodeRow(Base):
    """RFC 8628: the device code (digest) the client polls with, and the user code a person types."""

    __tablename__ = "device_codes"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_ref: Mapped[str] = mapped_column(
        String(253)
    )  # as the client named it: GUID, domain, organizations
    client_id: Mapped[str] = mapped_column(String(36))
    scope: Mapped[str] = mapped_column(String(2048))  # remembered: polls carry no scope
    claims: Mapped[str | None] = mapped_column(String(4096))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    interval: Mapped[int] = mapped_column(Integer, default=5)
    last_polled_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))  # pending | approved | declined | consumed
    tenant_id: Mapped[str | None] = mapped_column(String(36))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.object_id", ondelete="CASCADE"))
    auth_time: Mapped[datetime | None]
    amr: Mapped[list[str]] = mapped_column(default=list)


class SigningKeyRow(Base):
    """Token signing keys. Exactly one is `active`; retired keys stay published until `publish_until`."""

    __tablename__ = "signing_keys"
    __table_args__ = (Index("ix_signing_keys_state", "state"),)

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Whose keys: the identity platform's ("identity") or the DevOps service's pipeline OIDC issuer
    # ("devops-oidc"). Each purpose has its own active key and rotation.
    purpose: Mapped[str] = mapped_column(
        String(32), default="identity", server_default="identity", index=True
    )
    algorithm: Mapped[str] = mapped_column(String(16))
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16))  # active | retired
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]
    publish_until: Mapped[datetime | None]


# --- Conditional Access, sign-in log, continuous access evaluation ------------------------------


class NamedLocationRow(Base):
    """An IP named location (Graph `ipNamedLocation`): CIDR ranges, IPv4 or IPv6, trusted or not."""

    __tablename__ = "ca_named_locations"
    __table_args__ = (UniqueConstraint("tenant_id", "display_name_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    display_name: Mapped[str] = mapped_column(String(256))
    display_name_key: Mapped[str] = mapped_column(String(256))  # lower-case: names are unique per tenant here
    is_trusted: Mapped[bool] = mapped_column(Boolean, default=False)
    ip_ranges: Mapped[list[str]] = mapped_column(default=list)  # CIDR strings, normalised
    created_at: Mapped[datetime]
    modified_at: Mapped[datetime]


class ConditionalAccessPolicyRow(Base):
    """A Conditional Access policy in Graph's `conditionalAccessPolicy` shape: `conditions`,
    `grant_controls` and `session_controls` hold Graph's JSON objects as validated by `identity.policy`."""

    __tablename__ = "ca_policies"
    __table_args__ = (UniqueConstraint("tenant_id", "display_name_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    display_name: Mapped[str] = mapped_column(String(256))
    display_name_key: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(48))  # enabled | enabledForReportingButNotEnforced | disabled
    conditions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    grant_controls: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    session_controls: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    modified_at: Mapped[datetime]


class SignInLogRow(Base):
    """One sign-in or token issuance, as Entra's sign-in log keeps it (Graph `signIn`), with each
    Conditional Access policy's result. Kept after the user or app is gone, so no foreign keys."""

    __tablename__ = "sign_in_log"
    __table_args__ = (Index("ix_sign_in_log_tenant_time", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))  # "" when no tenant could be resolved
    # Retention deletes by time (identity/signin/log.py), across tenants.
    created_at: Mapped[datetime] = mapped_column(index=True)
    # user | servicePrincipal | managedIdentity
    principal_kind: Mapped[str] = mapped_column(String(32))
    is_interactive: Mapped[bool] = mapped_column(Boolean, default=False)
    user_id: Mapped[str | None] = mapped_column(String(36), index=True)
    user_principal_name: Mapped[str] = mapped_column(String(256), default="")
    service_principal_id: Mapped[str | None] = mapped_column(String(36))
    app_id: Mapped[str] = mapped_column(String(36), default="")  # the client
    app_display_name: Mapped[str] = mapped_column(String(256), default="")
    resource_id: Mapped[str] = mapped_column(String(36), default="")
    resource_display_name: Mapped[str] = mapped_column(String(256), default="")
    ip_address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    client_app_used: Mapped[str] = mapped_column(
        String(48), default=""
    )  # browser | mobileAppsAndDesktopClients …
    device_platform: Mapped[str] = mapped_column(String(32), default="")
    # authorizationCode, refreshToken, deviceCode, ropc, clientCredentials, federatedAssertion, onBehalfOf,
    # interactive (a sign-in page), managedIdentity
    authentication_protocol: Mapped[str] = mapped_column(String(48), default="")
    authentication_requirement: Mapped[str] = mapped_column(String(48), default="")
    error_code: Mapped[int] = mapped_column(Integer, default=0)  # 0: success; else the AADSTS number
    failure_reason: Mapped[str] = mapped_column(String(1024), default="")
    conditional_access_status: Mapped[str] = mapped_column(String(16), default="notApplied")
    # [{id, displayName, result, enforcedGrantControls, enforcedSessionControls}]
    applied_policies: Mapped[list[Any]] = mapped_column(JSON, default=list)
    correlation_id: Mapped[str] = mapped_column(String(36), default="")


class ContinuousAccessEventRow(Base):
    """The identity platform's outbox of critical events for continuous access evaluation: a user
    disabled, deleted, re-enabled, their password reset, refresh tokens revoked, MFA newly required, or a
    tenant's Conditional Access policies changed (the payload then holds the tenant's policy set). Resource
    services read it, in every process sharing the database; written in the same transaction as the change."""

    __tablename__ = "cae_events"
    __table_args__ = (Index("ix_cae_events_subject", "tenant_id", "subject_id"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    # userDisabled | userEnabled | userDeleted | passwordReset | refreshTokensRevoked | mfaRequired |
    # policiesChanged
    kind: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(36))  # the user's object id; None for tenant events
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)


# --- DevOps service ----------------------------------------------------------------------------


class OrganizationRow(Base):
    __tablename__ = "devops_organizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    name_key: Mapped[str] = mapped_column(
        String(50), unique=True
    )  # lower-case: org names are case-insensitive
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    # "IP Conditional Access policy validation on non-interactive flows": PATs and Entra tokens used from
    # outside the tenant's allowed locations are refused (VS403463).
    ip_conditional_access_validation: Mapped[bool] = mapped_column(Boolean, default=False)
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
    # Project Collection Administrators: may manage projects and read the organization's audit log.
    organization_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class ProjectRow(Base):
    __tablename__ = "devops_projects"
    __table_args__ = (UniqueConstraint("organization_id", "name_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("devops_organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    name_key: Mapped[str] = mapped_column(String(64))  # lower-case: project names are case-insensitive
    description: Mapped[str] = mapped_column(String(1024), default="")
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    last_update_time: Mapped[datetime]


class ProjectMemberRow(Base):
    """A member's role in a project: readers, contributors or projectAdministrators (the default groups)."""

    __tablename__ = "devops_project_members"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("devops_projects.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[str] = mapped_column(
        ForeignKey("devops_members.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


class RepositoryRow(Base):
    """A Git repository; its objects live on disk under `<data dir>/git/<id>.git`, never in the database."""

    __tablename__ = "devops_repositories"
    __table_args__ = (UniqueConstraint("project_id", "name_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("devops_projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    name_key: Mapped[str] = mapped_column(String(64))
    default_branch: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime]


class PersonalAccessTokenRow(Base):
    """A PAT: only its keyed digest is kept; the value is shown once at creation."""

    __tablename__ = "devops_pats"

    authorization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    owner_object_id: Mapped[str] = mapped_column(String(36), index=True)  # the user's Entra object id
    owner_tenant_id: Mapped[str] = mapped_column(String(36))
    owner_name: Mapped[str] = mapped_column(String(256), default="")  # UPN, for reports
    display_name: Mapped[str] = mapped_column(String(256))
    scope: Mapped[str] = mapped_column(String(2048))  # space-separated, as Azure DevOps writes it
    # The organization it is for; None: all accessible organizations (a global PAT).
    organization_id: Mapped[str | None] = mapped_column(String(36), index=True)
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # Use, for the way off PATs: when, from where, by what, for which kind of route, how often.
    last_used_at: Mapped[datetime | None]
    last_used_address: Mapped[str | None] = mapped_column(String(64))
    last_used_user_agent: Mapped[str | None] = mapped_column(String(256))
    last_used_route_kind: Mapped[str | None] = mapped_column(String(16))  # rest | git
    rest_uses: Mapped[int] = mapped_column(Integer, default=0)
    git_uses: Mapped[int] = mapped_column(Integer, default=0)
    # The owner's group ids from the token that created it: PAT policy allowlists are checked against them
    # when the PAT is used, since a PAT request carries no groups claim.
    owner_groups: Mapped[list[str]] = mapped_column(default=list)
    # Where it was made: api (the lifecycle API), sessiontoken (GCM's path) or web (the PAT page).
    source: Mapped[str] = mapped_column(String(16), default="api")


class PatTenantPolicyRow(Base):
    """The tenant's PAT policies (Azure DevOps: Organization settings -> Microsoft Entra); no row: defaults."""

    __tablename__ = "devops_pat_tenant_policies"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    restrict_global: Mapped[bool] = mapped_column(Boolean, default=False)
    restrict_full_scope: Mapped[bool] = mapped_column(Boolean, default=False)
    max_lifespan_days: Mapped[int | None] = mapped_column(Integer)  # None: not enforced
    auto_revoke_leaked: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime]


class PatOrganizationPolicyRow(Base):
    """The organization's "Restrict personal access token (PAT) creation" policy; no row: off."""

    __tablename__ = "devops_pat_org_policies"

    organization_id: Mapped[str] = mapped_column(
        ForeignKey("devops_organizations.id", ondelete="CASCADE"), primary_key=True
    )
    restrict_creation: Mapped[bool] = mapped_column(Boolean, default=False)
    packaging_only: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime]


class PatPolicyAllowlistRow(Base):
    """A user or group exempt from one PAT policy of a tenant or an organization."""

    __tablename__ = "devops_pat_policy_allowlist"
    __table_args__ = (UniqueConstraint("owner_kind", "owner_id", "policy", "principal_object_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_kind: Mapped[str] = mapped_column(String(16))  # tenant | organization
    owner_id: Mapped[str] = mapped_column(String(36), index=True)  # the tenant or organization id
    policy: Mapped[str] = mapped_column(
        String(32)
    )  # restrictGlobal | restrictFullScope | maxLifespan | restrictCreation
    principal_object_id: Mapped[str] = mapped_column(String(36))
    principal_kind: Mapped[str] = mapped_column(String(16))  # user | group
    display_name: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime]


class LeakReporterRow(Base):
    """A secret-scanning partner allowed to report leaked PATs, known by the public key it signs with."""

    __tablename__ = "devops_leak_reporters"

    key_identifier: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    public_key_pem: Mapped[str] = mapped_column(String(4096))
    created_at: Mapped[datetime]


class LeakReportRow(Base):
    """One reported token and what was done about it. Never the token."""

    __tablename__ = "devops_leak_reports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    received_at: Mapped[datetime]
    reporter: Mapped[str] = mapped_column(String(128))
    token_type: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2048), default="")
    source: Mapped[str] = mapped_column(String(64), default="")
    authorization_id: Mapped[str | None] = mapped_column(String(36), index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # revoked | notified | alreadyInactive | notFound


class NotificationRow(Base):
    """The notification outbox: what the service would mail a user (the CLI and the PAT page show it)."""

    __tablename__ = "devops_notifications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    recipient_object_id: Mapped[str] = mapped_column(String(36), index=True)
    recipient_tenant_id: Mapped[str] = mapped_column(String(36))
    recipient_name: Mapped[str] = mapped_column(String(256), default="")
    organization_id: Mapped[str | None] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(32))  # e.g. patLeakRevoked, patLeakDetected
    subject: Mapped[str] = mapped_column(String(256))
    body: Mapped[str] = mapped_column(String(4096))
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None]


class WebSessionRow(Base):
    """A browser session on the DevOps origin, made from an OIDC sign-in; only the cookie's digest is kept."""

    __tablename__ = "devops_web_sessions"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    object_id: Mapped[str] = mapped_column(String(36), index=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(256), default="")
    principal_name: Mapped[str] = mapped_column(String(256), default="")
    claims: Mapped[dict[str, Any]] = mapped_column(default=dict)  # groups, wids, amr of the sign-in
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ServiceConnectionRow(Base):
    """An Azure Resource Manager service connection using workload identity federation: no secret, only the
    app registration or user-assigned managed identity (tenant and client id) it federates with."""

    __tablename__ = "devops_service_connections"
    __table_args__ = (UniqueConstraint("project_id", "name_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("devops_projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(256))
    name_key: Mapped[str] = mapped_column(String(256))  # lower-case
    type: Mapped[str] = mapped_column(String(32), default="azurerm")
    scheme: Mapped[str] = mapped_column(String(64), default="WorkloadIdentityFederation")
    tenant_id: Mapped[str] = mapped_column(String(36))
    client_id: Mapped[str] = mapped_column(String(36))
    issuer_mode: Mapped[str] = mapped_column(String(16), default="devops")  # devops | entra
    all_pipelines: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PipelineRow(Base):
    """A YAML pipeline: a file in one of the project's repositories. Ids are numbers, as Azure DevOps'."""

    __tablename__ = "devops_pipelines"
    __table_args__ = (UniqueConstraint("project_id", "name_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("devops_projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(256))
    name_key: Mapped[str] = mapped_column(String(256))
    repository_id: Mapped[str] = mapped_column(ForeignKey("devops_repositories.id", ondelete="CASCADE"))
    yaml_path: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime]


class ServiceConnectionPipelineRow(Base):
    """A pipeline authorized to use a service connection (unless the connection is open to all)."""

    __tablename__ = "devops_service_connection_pipelines"

    connection_id: Mapped[str] = mapped_column(
        ForeignKey("devops_service_connections.id", ondelete="CASCADE"), primary_key=True
    )
    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("devops_pipelines.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime]


class PipelineVariableRow(Base):
    """A variable set on a pipeline outside its YAML. A secret's value is AES-GCM encrypted under a key derived
    from the master key (it must be given back to the job) and is masked in every log."""

    __tablename__ = "devops_pipeline_variables"

    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("devops_pipelines.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    is_secret: Mapped[bool] = mapped_column(Boolean, default=False)
    value: Mapped[str | None] = mapped_column(String(4096))  # None when secret
    value_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class PipelineRunRow(Base):
    """One run of a pipeline (its id is BUILD_BUILDID): one job, its steps, its result."""

    __tablename__ = "devops_pipeline_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("devops_pipelines.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str] = mapped_column(String(36))
    plan_id: Mapped[str] = mapped_column(String(36))
    job_id: Mapped[str] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(16))  # notStarted | inProgress | completed
    result: Mapped[str | None] = mapped_column(String(16))  # succeeded | failed | canceled
    source_branch: Mapped[str] = mapped_column(String(256), default="")
    source_version: Mapped[str | None] = mapped_column(String(64))
    requested_by_object_id: Mapped[str | None] = mapped_column(String(36))
    requested_by_name: Mapped[str] = mapped_column(String(256), default="")
    error: Mapped[str | None] = mapped_column(String(2048))  # why it failed before any step, e.g. bad YAML
    queued_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class PipelineStepRow(Base):
    __tablename__ = "devops_pipeline_steps"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("devops_pipeline_runs.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0: checkout, then the YAML's steps
    display_name: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(16))  # pending | inProgress | completed | skipped
    result: Mapped[str | None] = mapped_column(String(16))  # succeeded | failed | skipped
    exit_code: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class PipelineLogLineRow(Base):
    """A line of a run's log, already masked: secrets never reach the database."""

    __tablename__ = "devops_pipeline_log_lines"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("devops_pipeline_runs.id", ondelete="CASCADE"), primary_key=True
    )
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    step_index: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[datetime]
    text: Mapped[str] = mapped_column(String(8192))


class JobTokenRow(Base):
    """A job's access token (System.AccessToken): valid in its project while the job runs; only its keyed digest
    is kept."""

    __tablename__ = "devops_job_tokens"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("devops_pipeline_runs.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    project_id: Mapped[str] = mapped_column(String(36))
    pipeline_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AuditEventRow(Base):
    """One authentication decision or change: who, what, when, from where, with which kind of credential.
    Never the credential itself."""

    __tablename__ = "devops_audit_events"
    __table_args__ = (Index("ix_devops_audit_events_org_time", "organization_id", "timestamp"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    timestamp: Mapped[datetime]
    organization_id: Mapped[str | None] = mapped_column(String(36))  # None: no such organization
    organization_name: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(64))  # e.g. Authentication.Accepted, Project.Create, Git.Push
    outcome: Mapped[str] = mapped_column(String(16))  # success | failure
    actor_id: Mapped[str | None] = mapped_column(String(36))  # Entra object id, when known
    actor_name: Mapped[str] = mapped_column(String(256), default="")
    credential_kind: Mapped[str] = mapped_column(String(32), default="")  # entra | pat | none | malformed
    client_address: Mapped[str] = mapped_column(String(64), default="")
    method: Mapped[str] = mapped_column(String(16), default="")
    path: Mapped[str] = mapped_column(String(1024), default="")
    status: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SettingRow(Base):
    """Installation facts, such as whether the demo has been seeded."""

    __tablename__ = "settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(1024))
