"""Directory administration: what the CLI, the config file and the demo seeding call. Never commits:
the caller's unit of work does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from entryway.identity.directory.first_party import FIRST_PARTY_APPS
from entryway.identity.directory.repository import DirectoryRepository
from entryway.identity.protocol.pipeline import TENANT_INDEPENDENT
from entryway.kit.clock import Clock
from entryway.kit.ids import new_guid, parse_guid
from entryway.kit.passwords import hash_password
from entryway.kit.secrets import CLIENT_SECRET, SecretDigester
from entryway.store.models import (
    ApplicationRow,
    AppRoleAssignmentRow,
    ClientSecretRow,
    IdentifierUriRow,
    ServicePrincipalRow,
    TenantDomainRow,
    TenantRow,
    UserRow,
)

DEFAULT_SECRET_LIFETIME = timedelta(days=180)  # Entra portal's recommended default
MAX_SECRET_LIFETIME = timedelta(days=730)
MIN_TOKEN_LIFETIME = 600  # Entra's configurable token lifetime range: 10 minutes to 1 day
MAX_TOKEN_LIFETIME = 86400
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_UPN = re.compile(r"^[A-Za-z0-9._'+-]{1,64}@(?P<domain>[^@]+)$")


class DirectoryError(ValueError):
    """An administrative request the directory refuses; the message is for the administrator."""


@dataclass(frozen=True)
class NewSecret:
    key_id: str
    value: str | None  # the minted value, shown once; None when the caller supplied the value
    expires_at: datetime


class DirectoryService:
    def __init__(self, session: Session, clock: Clock, digester: SecretDigester) -> None:
        self._repo = DirectoryRepository(session)
        self._clock = clock
        self._digester = digester

    def now(self) -> datetime:
        return self._clock.now()

    # first-party applications
    def ensure_first_party_apps(self) -> None:
        for app in FIRST_PARTY_APPS:
            if self._repo.find_application(app.app_id) is not None:
                continue
            row = ApplicationRow(
                object_id=new_guid(),
                app_id=app.app_id,
                tenant_id=None,
                display_name=app.display_name,
                delegated_scopes=list(app.delegated_scopes),
                app_roles=[],
                access_token_version=1,
                created_at=self._clock.now(),
            )
            self._repo.add(row)
            for uri in app.identifier_uris:
                self._repo.add(IdentifierUriRow(uri=uri.lower(), application_object_id=row.object_id))
        self._repo.flush()

    # tenants
    def find_tenant(self, ref: str) -> TenantRow:
        guid = parse_guid(ref)
        tenant = self._repo.find_tenant(guid) if guid else self._repo.find_tenant_by_domain(ref)
        if tenant is None:
            raise DirectoryError(f"tenant '{ref}' not found")
        return tenant

    def find_tenant_or_none(self, ref: str) -> TenantRow | None:
        try:
            return self.find_tenant(ref)
        except DirectoryError:
            return None

    def create_tenant(
        self,
        domains: list[str],
        *,
        tenant_id: str | None = None,
        display_name: str | None = None,
        access_token_lifetime_seconds: int = 3600,
    ) -> TenantRow:
        if not domains:
            raise DirectoryError("a tenant needs at least one domain name")
        tid = new_guid() if tenant_id is None else parse_guid(tenant_id)
        if tid is None:
            raise DirectoryError(f"tenant id '{tenant_id}' is not a GUID")
        if self._repo.find_tenant(tid) is not None:
            raise DirectoryError(f"tenant {tid} already exists")
        normalized = [self._check_new_domain(d) for d in domains]
        self._check_token_lifetime(access_token_lifetime_seconds)
        tenant = TenantRow(
            id=tid,
            display_name=display_name or normalized[0],
            access_token_lifetime_seconds=access_token_lifetime_seconds,
            created_at=self._clock.now(),
        )
        self._repo.add(tenant)
        self._repo.flush()
        for index, domain in enumerate(normalized):
            self._repo.add(TenantDomainRow(name=domain, tenant_id=tid, is_initial=index == 0))
        self.ensure_first_party_apps()
        for first_party in self._repo.list_first_party_applications():
            self._add_service_principal(tid, first_party.app_id, first_party.display_name)
        self._repo.flush()
        return tenant

    def add_domain(self, tenant: TenantRow, domain: str) -> None:
        self._repo.add(
            TenantDomainRow(name=self._check_new_domain(domain), tenant_id=tenant.id, is_initial=False)
        )
        self._repo.flush()

    def set_token_lifetime(self, tenant: TenantRow, seconds: int) -> None:
        self._check_token_lifetime(seconds)
        tenant.access_token_lifetime_seconds = seconds
        self._repo.flush()

    def domains_of(self, tenant: TenantRow) -> list[str]:
        return self._repo.list_domains(tenant.id)

    def list_tenants(self) -> list[TenantRow]:
        return self._repo.list_tenants()

    def _check_new_domain(self, domain: str) -> str:
        name = domain.strip().lower()
        if name in TENANT_INDEPENDENT or not _DOMAIN.match(name):
            raise DirectoryError(f"'{domain}' is not a valid domain name")
        if self._repo.find_domain(name) is not None:
            raise DirectoryError(f"domain '{name}' already belongs to a tenant")
        return name

    @staticmethod
    def _check_token_lifetime(seconds: int) -> None:
        if not MIN_TOKEN_LIFETIME <= seconds <= MAX_TOKEN_LIFETIME:
            raise DirectoryError(
                f"access token lifetime must be between {MIN_TOKEN_LIFETIME} and {MAX_TOKEN_LIFETIME} seconds"
            )

    # applications
    def create_application(
        self,
        tenant: TenantRow,
        display_name: str,
        *,
        app_id: str | None = None,
        identifier_uris: list[str] | None = None,
        app_roles: list[str] | None = None,
    ) -> tuple[ApplicationRow, ServicePrincipalRow]:
        if not display_name.strip():
            raise DirectoryError("an application needs a name")
        client_id = new_guid() if app_id is None else parse_guid(app_id)
        if client_id is None:
            raise DirectoryError(f"client id '{app_id}' is not a GUID")
        if self._repo.find_application(client_id) is not None:
            raise DirectoryError(f"an application with client id {client_id} already exists")
        app = ApplicationRow(
            object_id=new_guid(),
            app_id=client_id,
            tenant_id=tenant.id,
            display_name=display_name.strip(),
            delegated_scopes=[],
            app_roles=list(app_roles or []),
            access_token_version=1,
            created_at=self._clock.now(),
        )
        self._repo.add(app)
        self._repo.flush()
        for uri in identifier_uris or []:
            if self._repo.find_application_by_uri(uri) is not None:
                raise DirectoryError(f"identifier URI '{uri}' is already in use")
            self._repo.add(IdentifierUriRow(uri=uri.lower(), application_object_id=app.object_id))
        sp = self._add_service_principal(tenant.id, client_id, app.display_name)
        self._repo.flush()
        return app, sp

    def find_application(self, tenant: TenantRow, ref: str) -> ApplicationRow:
        """`ref` is a client id or the application's display name in the tenant."""
        guid = parse_guid(ref)
        app = (
            self._repo.find_application(guid) if guid else self._repo.find_application_by_name(tenant.id, ref)
        )
        if app is None or app.tenant_id != tenant.id:
            raise DirectoryError(f"application '{ref}' not found in tenant {tenant.id}")
        return app

    def list_applications(self, tenant: TenantRow) -> list[ApplicationRow]:
        return self._repo.list_applications(tenant.id)

    def delete_application(self, app: ApplicationRow) -> None:
        self._repo.delete_application(app.object_id)

    def service_principal_of(self, tenant: TenantRow, app: ApplicationRow) -> ServicePrincipalRow:
        sp = self._repo.find_service_principal(tenant.id, app.app_id)
        if sp is None:
            raise DirectoryError(f"application {app.app_id} has no service principal in tenant {tenant.id}")
        return sp

    def _add_service_principal(self, tenant_id: str, app_id: str, display_name: str) -> ServicePrincipalRow:
        sp = ServicePrincipalRow(
            object_id=new_guid(),
            tenant_id=tenant_id,
            app_id=app_id,
            display_name=display_name,
            account_enabled=True,
            created_at=self._clock.now(),
        )
        self._repo.add(sp)
        return sp

    # client secrets
    def add_client_secret(
        self,
        app: ApplicationRow,
        *,
        value: str | None = None,
        expires_at: datetime | None = None,
        display_name: str = "",
    ) -> NewSecret:
        """Mint a secret (or import `value`); only its keyed digest is stored."""
        now = self._clock.now()
        expiry = expires_at or now + DEFAULT_SECRET_LIFETIME
        if expiry <= now:
            raise DirectoryError("a secret's expiry must be in the future")
        if expiry - now > MAX_SECRET_LIFETIME:
            raise DirectoryError("a secret may live at most two years")
        if value is not None and len(value) < 16:
            raise DirectoryError("an imported secret must be at least 16 characters")
        secret = value if value is not None else CLIENT_SECRET.mint()
        digest = self._digester.digest(secret)
        if self._repo.find_secret_by_digest(digest) is not None:
            raise DirectoryError("that secret value is already in use")
        row = ClientSecretRow(
            key_id=new_guid(),
            application_object_id=app.object_id,
            display_name=display_name,
            # Entra shows a secret's first characters; after our fixed prefix they tell secrets apart.
            hint=secret[len(CLIENT_SECRET.prefix) :][:3] if value is None else secret[:3],
            digest=digest,
            created_at=now,
            expires_at=expiry,
        )
        self._repo.add(row)
        self._repo.flush()
        return NewSecret(row.key_id, None if value is not None else secret, expiry)

    def has_secret(self, app: ApplicationRow, value: str) -> bool:
        row = self._repo.find_secret_by_digest(self._digester.digest(value))
        return row is not None and row.application_object_id == app.object_id

    def list_client_secrets(self, app: ApplicationRow) -> list[ClientSecretRow]:
        return self._repo.list_secrets(app.object_id)

    def remove_client_secret(self, app: ApplicationRow, key_id: str) -> None:
        if not self._repo.delete_secret(app.object_id, key_id):
            raise DirectoryError(f"application {app.app_id} has no secret with key id {key_id}")

    # app roles (application permissions)
    def grant_app_role(
        self, tenant: TenantRow, client: ApplicationRow, resource: ApplicationRow, role: str
    ) -> None:
        if role not in resource.app_roles:
            raise DirectoryError(f"application {resource.app_id} defines no app role '{role}'")
        sp = self.service_principal_of(tenant, client)
        if self._repo.find_role_assignment(sp.object_id, resource.app_id, role) is not None:
            return
        self._repo.add(
            AppRoleAssignmentRow(
                id=new_guid(),
                tenant_id=tenant.id,
                principal_id=sp.object_id,
                resource_app_id=resource.app_id,
                role=role,
                created_at=self._clock.now(),
            )
        )
        self._repo.flush()

    # users
    def create_user(
        self, tenant: TenantRow, upn: str, password: str | None, display_name: str | None = None
    ) -> UserRow:
        match = _UPN.match(upn.strip())
        if match is None:
            raise DirectoryError(f"'{upn}' is not a valid user principal name")
        domain = match.group("domain").lower()
        if domain not in self._repo.list_domains(tenant.id):
            raise DirectoryError(f"the domain of '{upn}' is not a domain of tenant {tenant.id}")
        if self._repo.find_user_by_upn(upn) is not None:
            raise DirectoryError(f"user '{upn}' already exists")
        if password is not None and len(password) < 8:
            raise DirectoryError("a password must be at least 8 characters")
        user = UserRow(
            object_id=new_guid(),
            tenant_id=tenant.id,
            user_principal_name=upn.strip().lower(),
            display_name=display_name or upn.split("@", 1)[0],
            password_hash=hash_password(password) if password is not None else None,
            account_enabled=True,
            created_at=self._clock.now(),
        )
        self._repo.add(user)
        self._repo.flush()
        return user

    def find_user(self, upn: str) -> UserRow | None:
        return self._repo.find_user_by_upn(upn)

    def list_users(self, tenant: TenantRow) -> list[UserRow]:
        return self._repo.list_users(tenant.id)
