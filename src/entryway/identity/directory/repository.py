"""Every query on the directory's tables."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from entryway.store.models import (
    ApplicationRow,
    AppRoleAssignmentRow,
    CertificateRow,
    ClientSecretRow,
    DirectoryRoleAssignmentRow,
    FederatedCredentialRow,
    GroupMemberRow,
    IdentifierUriRow,
    ManagedIdentityRow,
    PermissionGrantRow,
    ServicePrincipalRow,
    SessionAccountRow,
    TenantDomainRow,
    TenantRow,
    UserRow,
)


class DirectoryRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: object) -> None:
        self._session.add(row)

    def flush(self) -> None:
        self._session.flush()

    # tenants
    def find_tenant(self, tenant_id: str) -> TenantRow | None:
        return self._session.get(TenantRow, tenant_id)

    def find_tenant_by_domain(self, domain: str) -> TenantRow | None:
        row = self._session.get(TenantDomainRow, domain.lower())
        return None if row is None else self._session.get(TenantRow, row.tenant_id)

    def find_domain(self, domain: str) -> TenantDomainRow | None:
        return self._session.get(TenantDomainRow, domain.lower())

    def list_tenants(self) -> list[TenantRow]:
        return list(self._session.scalars(select(TenantRow).order_by(TenantRow.created_at)))

    def list_domains(self, tenant_id: str) -> list[str]:
        return list(
            self._session.scalars(
                select(TenantDomainRow.name)
                .where(TenantDomainRow.tenant_id == tenant_id)
                .order_by(TenantDomainRow.is_initial.desc(), TenantDomainRow.name)
            )
        )

    # applications and service principals
    def find_application(self, app_id: str) -> ApplicationRow | None:
        return self._session.scalars(select(ApplicationRow).where(ApplicationRow.app_id == app_id)).first()

    def find_application_by_uri(self, uri: str) -> ApplicationRow | None:
        row = self._session.get(IdentifierUriRow, uri.lower())
        return None if row is None else self._session.get(ApplicationRow, row.application_object_id)

    def find_application_by_name(self, tenant_id: str, display_name: str) -> ApplicationRow | None:
        """An app registration by name; the hidden applications of managed identities are not found."""
        return self._session.scalars(
            select(ApplicationRow).where(
                ApplicationRow.tenant_id == tenant_id,
                ApplicationRow.display_name == display_name,
                ApplicationRow.managed_identity.is_(False),
            )
        ).first()

    def list_applications(self, tenant_id: str) -> list[ApplicationRow]:
        """The tenant's app registrations, without the hidden applications of managed identities."""
        return list(
            self._session.scalars(
                select(ApplicationRow)
                .where(ApplicationRow.tenant_id == tenant_id, ApplicationRow.managed_identity.is_(False))
                .order_by(ApplicationRow.created_at)
            )
        )

    def list_first_party_applications(self) -> list[ApplicationRow]:
        return list(self._session.scalars(select(ApplicationRow).where(ApplicationRow.tenant_id.is_(None))))

    def find_service_principal(self, tenant_id: str, app_id: str) -> ServicePrincipalRow | None:
        return self._session.scalars(
            select(ServicePrincipalRow).where(
                ServicePrincipalRow.tenant_id == tenant_id, ServicePrincipalRow.app_id == app_id
            )
        ).first()

    def list_secrets(self, application_object_id: str) -> list[ClientSecretRow]:
        return list(
            self._session.scalars(
                select(ClientSecretRow)
                .where(ClientSecretRow.application_object_id == application_object_id)
                .order_by(ClientSecretRow.created_at)
            )
        )

    def find_secret_by_digest(self, digest: str) -> ClientSecretRow | None:
        return self._session.scalars(select(ClientSecretRow).where(ClientSecretRow.digest == digest)).first()

    def delete_secret(self, application_object_id: str, key_id: str) -> bool:
        result = self._session.execute(
            delete(ClientSecretRow).where(
                ClientSecretRow.application_object_id == application_object_id,
                ClientSecretRow.key_id == key_id,
            )
        )
        return bool(getattr(result, "rowcount", 0))

    # certificates
    def list_certificates(self, application_object_id: str) -> list[CertificateRow]:
        return list(
            self._session.scalars(
                select(CertificateRow)
                .where(CertificateRow.application_object_id == application_object_id)
                .order_by(CertificateRow.created_at)
            )
        )

    def delete_certificate(self, key_id: str) -> None:
        self._session.execute(delete(CertificateRow).where(CertificateRow.key_id == key_id))

    # federated identity credentials
    def list_federated_credentials(self, owner_app_id: str) -> list[FederatedCredentialRow]:
        return list(
            self._session.scalars(
                select(FederatedCredentialRow)
                .where(FederatedCredentialRow.owner_app_id == owner_app_id)
                .order_by(FederatedCredentialRow.created_at)
            )
        )

    def delete_federated_credential(self, credential_id: str) -> None:
        self._session.execute(
            delete(FederatedCredentialRow).where(FederatedCredentialRow.id == credential_id)
        )

    # managed identities
    def find_managed_identity(self, object_id: str) -> ManagedIdentityRow | None:
        return self._session.get(ManagedIdentityRow, object_id)

    def find_managed_identity_by_app_id(self, app_id: str) -> ManagedIdentityRow | None:
        return self._session.scalars(
            select(ManagedIdentityRow).where(ManagedIdentityRow.app_id == app_id)
        ).first()

    def find_managed_identity_by_resource_id(self, resource_id: str) -> ManagedIdentityRow | None:
        return self._session.scalars(
            select(ManagedIdentityRow).where(ManagedIdentityRow.resource_id == resource_id.lower())
        ).first()

    def find_managed_identity_by_name(self, tenant_id: str, name: str) -> ManagedIdentityRow | None:
        return self._session.scalars(
            select(ManagedIdentityRow).where(
                ManagedIdentityRow.tenant_id == tenant_id,
                func.lower(ManagedIdentityRow.name) == name.lower(),
            )
        ).first()

    def list_managed_identities(self, tenant_id: str | None = None) -> list[ManagedIdentityRow]:
        query = select(ManagedIdentityRow).order_by(ManagedIdentityRow.created_at)
        if tenant_id is not None:
            query = query.where(ManagedIdentityRow.tenant_id == tenant_id)
        return list(self._session.scalars(query))

    def delete_managed_identity(self, mi: ManagedIdentityRow) -> None:
        self._session.delete(mi)
        self._session.flush()

    def find_system_identity_on_host(self) -> ManagedIdentityRow | None:
        return self._session.scalars(
            select(ManagedIdentityRow).where(
                ManagedIdentityRow.kind == "system", ManagedIdentityRow.on_host.is_(True)
            )
        ).first()

    def delete_application(self, object_id: str) -> None:
        self._session.execute(delete(ApplicationRow).where(ApplicationRow.object_id == object_id))

    def list_granted_roles(self, principal_id: str, resource_app_id: str) -> list[str]:
        return list(
            self._session.scalars(
                select(AppRoleAssignmentRow.role)
                .where(
                    AppRoleAssignmentRow.principal_id == principal_id,
                    AppRoleAssignmentRow.resource_app_id == resource_app_id,
                )
                .order_by(AppRoleAssignmentRow.role)
            )
        )

    def find_role_assignment(
        self, principal_id: str, resource_app_id: str, role: str
    ) -> AppRoleAssignmentRow | None:
        return self._session.scalars(
            select(AppRoleAssignmentRow).where(
                AppRoleAssignmentRow.principal_id == principal_id,
                AppRoleAssignmentRow.resource_app_id == resource_app_id,
                AppRoleAssignmentRow.role == role,
            )
        ).first()

    # delegated permission grants (oauth2PermissionGrants)
    def find_permission_grant(
        self, tenant_id: str, client_app_id: str, principal_id: str | None, resource_app_id: str
    ) -> PermissionGrantRow | None:
        principal = (
            PermissionGrantRow.principal_id.is_(None)
            if principal_id is None
            else PermissionGrantRow.principal_id == principal_id
        )
        return self._session.scalars(
            select(PermissionGrantRow).where(
                PermissionGrantRow.tenant_id == tenant_id,
                PermissionGrantRow.client_app_id == client_app_id,
                principal,
                PermissionGrantRow.resource_app_id == resource_app_id,
            )
        ).first()

    def list_permission_grants(self, tenant_id: str, client_app_id: str) -> list[PermissionGrantRow]:
        return list(
            self._session.scalars(
                select(PermissionGrantRow)
                .where(
                    PermissionGrantRow.tenant_id == tenant_id,
                    PermissionGrantRow.client_app_id == client_app_id,
                )
                .order_by(PermissionGrantRow.created_at)
            )
        )

    # users
    def find_user_by_upn(self, upn: str) -> UserRow | None:
        return self._session.scalars(
            select(UserRow).where(UserRow.user_principal_name == upn.lower())
        ).first()

    def list_users(self, tenant_id: str) -> list[UserRow]:
        return list(
            self._session.scalars(
                select(UserRow).where(UserRow.tenant_id == tenant_id).order_by(UserRow.created_at)
            )
        )

    def list_users_following_default(self, tenant_id: str) -> list[UserRow]:
        """Users without a per-user MFA setting: the tenant's default decides for them."""
        return list(
            self._session.scalars(
                select(UserRow).where(UserRow.tenant_id == tenant_id, UserRow.mfa_required.is_(None))
            )
        )

    def delete_user(self, user: UserRow) -> None:
        """The user and what names them without a foreign key (group memberships, directory roles); the rest
        (sign-in sessions, refresh tokens, app role assignments, consents) goes with the row (ON DELETE CASCADE)."""
        self._session.execute(delete(GroupMemberRow).where(GroupMemberRow.member_object_id == user.object_id))
        self._session.execute(
            delete(DirectoryRoleAssignmentRow).where(
                DirectoryRoleAssignmentRow.principal_object_id == user.object_id
            )
        )
        self._session.delete(user)
        self._session.flush()

    def end_browser_sessions_of(self, user_id: str) -> int:
        """Sign the user out of every browser session (the account picker forgets them)."""
        result = self._session.execute(delete(SessionAccountRow).where(SessionAccountRow.user_id == user_id))
        return int(getattr(result, "rowcount", 0) or 0)
