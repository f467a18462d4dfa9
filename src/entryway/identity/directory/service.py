"""Directory administration: what the CLI, the config file and the demo seeding call. Never commits:
the caller's unit of work does."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.orm import Session

from entryway.identity.directory.cae_outbox import CaeEventKind, publish_event
from entryway.identity.directory.first_party import FIRST_PARTY_APPS, FirstPartyApp
from entryway.identity.directory.repository import DirectoryRepository
from entryway.identity.protocol.pipeline import TENANT_INDEPENDENT
from entryway.identity.signin.ledger import Ledger
from entryway.kit.clock import Clock
from entryway.kit.ids import new_guid, parse_guid
from entryway.kit.passwords import hash_password
from entryway.kit.secrets import CLIENT_SECRET, SecretDigester
from entryway.store.models import (
    ApplicationRow,
    AppRoleAssignmentRow,
    CertificateRow,
    ClientSecretRow,
    FederatedCredentialRow,
    IdentifierUriRow,
    ManagedIdentityRow,
    PermissionGrantRow,
    ServicePrincipalRow,
    TenantDomainRow,
    TenantRow,
    UserRow,
)

DEFAULT_SECRET_LIFETIME = timedelta(days=180)  # Entra portal's recommended default
MAX_SECRET_LIFETIME = timedelta(days=730)
MIN_TOKEN_LIFETIME = 600  # Entra's configurable token lifetime range: 10 minutes to 1 day
MAX_TOKEN_LIFETIME = 86400
# Refresh-token inactivity and sign-in frequency. Entra's own ranges are narrower for inactivity (10 minutes to
# 90 days) and wider for frequency (1 hour to 365 days); one range of 1 hour to 365 days serves both here.
MIN_SESSION_LIFETIME = 3600
MAX_SESSION_LIFETIME = 365 * 86400
DEFAULT_REFRESH_TOKEN_INACTIVITY = 90 * 86400  # Entra's default
# Entra: at most 256 redirect URIs per app, each at most 256 characters.
MAX_REDIRECT_URIS = 256
MAX_REDIRECT_URI_LENGTH = 256
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# Schemes that would run or read something in the browser instead of reaching an app.
_UNSAFE_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "about", "blob", "filesystem"})
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_UPN = re.compile(r"^[A-Za-z0-9._'+-]{1,64}@(?P<domain>[^@]+)$")

# Certificates (keyCredentials). msal, and so every azure-identity credential, signs client assertions with
# RSA only (RS256, PS256), and Entra takes RSA keys of at least 2048 bits: an EC certificate could never sign
# a client in, so it is refused at upload rather than failing at every sign-in.
MIN_RSA_KEY_BITS = 2048

# Managed identities. Azure: user-assigned identity names are 3-128 characters, letters, digits, hyphens and
# underscores, starting with a letter or digit. Entryway has no Azure subscription: the default resource ids
# use the tenant id as the subscription id (so they are unique across tenants) and this resource group.
MANAGED_IDENTITY_KINDS = ("system", "user")
MANAGED_IDENTITY_RESOURCE_GROUP = "entryway"
_MANAGED_IDENTITY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$")
_RESOURCE_ID = re.compile(
    r"^/subscriptions/[a-z0-9-]+/resourcegroups/[a-z0-9._()-]+/providers/[a-z0-9.]+(/[a-z0-9._-]+/[a-z0-9._-]+)+$"
)
_USER_ASSIGNED_TYPE = "/providers/microsoft.managedidentity/userassignedidentities/"
MAX_RESOURCE_ID_LENGTH = 512

# Federated identity credentials, as Microsoft Graph validates them (federatedIdentityCredential): a name of
# 3-120 characters, letters, digits, hyphens and underscores, starting with a letter or digit, unique per
# owner; issuer, subject and the one audience at most 600 characters; at most 20 per owner.
DEFAULT_FIC_AUDIENCE = "api://AzureADTokenExchange"
MAX_FEDERATED_CREDENTIALS = 20
MAX_FIC_VALUE_LENGTH = 600
MAX_CLAIMS_EXPRESSION_LENGTH = 2048
_CLAIMS_TERM = re.compile(
    r"\s*claims\['([^']+)'\]\s+(eq|matches|startswith)\s+'((?:[^']|'')*)'\s*", re.IGNORECASE
)
_FIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$")


_SCOPE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")
_RESERVED_SCOPE_NAMES = frozenset({"openid", "profile", "email", "offline_access", ".default"})


def check_scopes(scopes: Sequence[str]) -> list[str]:
    """Delegated scope values as Entra accepts them: 1-120 characters, no spaces, not an OpenID Connect
    scope, each once."""
    checked: list[str] = []
    for scope in scopes:
        if not _SCOPE_NAME.match(scope):
            raise DirectoryError(
                f"scope '{scope}' must be 1-120 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        if scope.lower() in _RESERVED_SCOPE_NAMES:
            raise DirectoryError(f"'{scope}' is an OpenID Connect scope, not one an app can expose")
        if scope in checked:
            raise DirectoryError(f"scope '{scope}' is listed twice")
        checked.append(scope)
    return checked


class DirectoryError(ValueError):
    """An administrative request the directory refuses; the message is for the administrator."""


@dataclass(frozen=True)
class NewSecret:
    key_id: str
    value: str | None  # the minted value, shown once; None when the caller supplied the value
    expires_at: datetime


class DirectoryService:
    def __init__(self, session: Session, clock: Clock, digester: SecretDigester) -> None:
        self._session = session
        self._repo = DirectoryRepository(session)
        self._clock = clock
        self._digester = digester

    def now(self) -> datetime:
        return self._clock.now()

    # first-party applications
    def ensure_first_party_apps(self) -> None:
        """Register the first-party apps, and give every tenant their service principals and pre-consents.
        Idempotent; run at every start, so tenants made before a first-party app existed get it too."""
        self._ensure_first_party_registrations()
        for tenant in self._repo.list_tenants():
            self._ensure_first_party_in_tenant(tenant.id)
        self._repo.flush()

    def _ensure_first_party_registrations(self) -> None:
        for app in FIRST_PARTY_APPS:
            row = self._repo.find_application(app.app_id)
            if row is None:
                row = ApplicationRow(
                    object_id=new_guid(),
                    app_id=app.app_id,
                    tenant_id=None,
                    display_name=app.display_name,
                    delegated_scopes=list(app.delegated_scopes),
                    app_roles=list(app.app_roles),
                    access_token_version=app.access_token_version,
                    public_client=app.public_client,
                    redirect_uris=list(app.redirect_uris),
                    created_at=self._clock.now(),
                )
                self._repo.add(row)
                for uri in app.identifier_uris:
                    self._repo.add(IdentifierUriRow(uri=uri.lower(), application_object_id=row.object_id))
            else:
                # Registered by an older Entryway: bring what the platform defines up to date.
                _update_first_party(row, app)
        self._repo.flush()

    def _ensure_first_party_in_tenant(self, tenant_id: str) -> None:
        for app in FIRST_PARTY_APPS:
            if self._repo.find_service_principal(tenant_id, app.app_id) is None:
                self._add_service_principal(tenant_id, app.app_id, app.display_name)
        self._repo.flush()
        for app in FIRST_PARTY_APPS:
            for consent in app.pre_consents:
                self._grant(tenant_id, app.app_id, None, consent.resource_app_id, consent.scopes)

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
        mfa_required_default: bool = False,
        refresh_token_inactivity_seconds: int = DEFAULT_REFRESH_TOKEN_INACTIVITY,
        sign_in_frequency_seconds: int | None = None,
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
        _check_session_lifetime("refresh token inactivity", refresh_token_inactivity_seconds)
        if sign_in_frequency_seconds is not None:
            _check_session_lifetime("sign-in frequency", sign_in_frequency_seconds)
        tenant = TenantRow(
            id=tid,
            display_name=display_name or normalized[0],
            access_token_lifetime_seconds=access_token_lifetime_seconds,
            mfa_required_default=mfa_required_default,
            refresh_token_inactivity_seconds=refresh_token_inactivity_seconds,
            sign_in_frequency_seconds=sign_in_frequency_seconds,
            created_at=self._clock.now(),
        )
        self._repo.add(tenant)
        self._repo.flush()
        for index, domain in enumerate(normalized):
            self._repo.add(TenantDomainRow(name=domain, tenant_id=tid, is_initial=index == 0))
        self._ensure_first_party_registrations()
        self._ensure_first_party_in_tenant(tid)
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

    def set_mfa_required_default(self, tenant: TenantRow, required: bool) -> None:
        """Security defaults: whether users without a per-user setting must do MFA at sign-in. Turning it on
        is a critical event (mfaRequired) for each user it newly applies to."""
        if required and not tenant.mfa_required_default:
            for user in self._repo.list_users_following_default(tenant.id):
                self._publish(user, CaeEventKind.MFA_REQUIRED)
        tenant.mfa_required_default = required
        self._repo.flush()

    def set_refresh_token_inactivity(self, tenant: TenantRow, seconds: int) -> None:
        """How long a refresh token may go unused before it expires."""
        _check_session_lifetime("refresh token inactivity", seconds)
        tenant.refresh_token_inactivity_seconds = seconds
        self._repo.flush()

    def set_sign_in_frequency(self, tenant: TenantRow, seconds: int | None) -> None:
        """How long after entering a password a user must enter it again (None: never, Entra's default)."""
        if seconds is not None:
            _check_session_lifetime("sign-in frequency", seconds)
        tenant.sign_in_frequency_seconds = seconds
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
        public_client: bool = False,
        redirect_uris: Sequence[str] = (),
        scopes: Sequence[str] = (),
    ) -> tuple[ApplicationRow, ServicePrincipalRow]:
        """`public_client` is Entra's "Allow public client flows": ROPC and the device flow without a client
        credential. `redirect_uris` are where the authorize endpoint may send codes (see check_redirect_uris).
        `scopes` are the delegated permissions the app exposes as an API ("Expose an API"), which other apps
        ask for as `{identifier URI}/{scope}` on a user's behalf."""
        if not display_name.strip():
            raise DirectoryError("an application needs a name")
        uris = check_redirect_uris(redirect_uris)
        exposed = check_scopes(scopes)
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
            delegated_scopes=exposed,
            app_roles=list(app_roles or []),
            access_token_version=1,
            public_client=public_client,
            redirect_uris=uris,
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

    def add_scopes(self, app: ApplicationRow, scopes: Sequence[str]) -> bool:
        """Expose more delegated scopes; True when any was new. Scopes are never removed here: a client may
        hold consent for them."""
        wanted = check_scopes(scopes)
        new = [s for s in wanted if s not in (app.delegated_scopes or [])]
        if not new:
            return False
        app.delegated_scopes = [*(app.delegated_scopes or []), *new]
        self._repo.flush()
        return True

    def find_application(self, tenant: TenantRow, ref: str) -> ApplicationRow:
        """`ref` is a client id or the application's display name in the tenant."""
        guid = parse_guid(ref)
        app = (
            self._repo.find_application(guid) if guid else self._repo.find_application_by_name(tenant.id, ref)
        )
        # A managed identity's hidden application is no app registration (Entra shows none).
        if app is None or app.tenant_id != tenant.id or app.managed_identity:
            raise DirectoryError(f"application '{ref}' not found in tenant {tenant.id}")
        return app

    def find_enterprise_app(self, tenant: TenantRow, ref: str) -> ApplicationRow:
        """An app with a service principal in the tenant (Entra's "enterprise applications"): the tenant's own
        apps and the first-party ones, by client id, display name or identifier URI."""
        guid = parse_guid(ref)
        if guid is not None:
            app = self._repo.find_application(guid)
        else:
            app = self._repo.find_application_by_name(tenant.id, ref) or self._repo.find_application_by_uri(
                ref
            )
            if app is None:
                app = next(
                    (a for a in self._repo.list_first_party_applications() if a.display_name == ref), None
                )
        if app is None or self._repo.find_service_principal(tenant.id, app.app_id) is None:
            raise DirectoryError(f"application '{ref}' not found in tenant {tenant.id}")
        return app

    def set_public_client(self, app: ApplicationRow, allowed: bool) -> None:
        self._check_own(app)
        app.public_client = allowed
        self._repo.flush()

    def set_redirect_uris(self, app: ApplicationRow, uris: Sequence[str]) -> None:
        """Replace the app's redirect URIs."""
        self._check_own(app)
        app.redirect_uris = check_redirect_uris(uris)
        self._repo.flush()

    def add_redirect_uris(self, app: ApplicationRow, uris: Sequence[str]) -> bool:
        """Add redirect URIs the app does not have yet; True when any was added."""
        self._check_own(app)
        merged = check_redirect_uris([*(app.redirect_uris or []), *uris])
        if merged == list(app.redirect_uris or []):
            return False
        app.redirect_uris = merged
        self._repo.flush()
        return True

    @staticmethod
    def _check_own(app: ApplicationRow) -> None:
        if app.tenant_id is None:
            raise DirectoryError(
                f"application {app.app_id} is a first-party application; it cannot be changed"
            )

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

    # certificates (keyCredentials)
    def add_certificate(
        self,
        app: ApplicationRow,
        data: bytes,
        *,
        display_name: str = "",
        end_date: datetime | None = None,
    ) -> CertificateRow:
        """Add a public certificate (PEM or DER X.509) to an app registration: client assertions signed with
        its key then authenticate the app. `end_date` (Entra's endDateTime) ends its use before the
        certificate itself expires. Only RSA keys of at least 2048 bits (see MIN_RSA_KEY_BITS)."""
        self._check_registration(app, "a certificate")
        cert = parse_certificate(data)
        now = self._clock.now()
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
        if not_after <= now:
            raise DirectoryError(f"the certificate expired on {not_after:%Y-%m-%d %H:%M:%S} UTC")
        if end_date is not None:
            end = end_date if end_date.tzinfo else end_date.replace(tzinfo=now.tzinfo)
            if end <= now or end <= not_before:
                raise DirectoryError("a certificate's end date must be in the future")
            if end > not_after:
                raise DirectoryError(
                    f"a certificate's end date may not be after the certificate expires "
                    f"({not_after:%Y-%m-%d %H:%M:%S} UTC)"
                )
            not_after = end
        sha1 = certificate_thumbprint(cert)
        if any(c.thumbprint_sha1 == sha1 for c in self._repo.list_certificates(app.object_id)):
            raise DirectoryError(
                f"application {app.app_id} already has the certificate with thumbprint {sha1}"
            )
        row = CertificateRow(
            key_id=new_guid(),
            application_object_id=app.object_id,
            display_name=(display_name.strip() or cert.subject.rfc4514_string())[:256],
            thumbprint_sha1=sha1,
            thumbprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
            certificate_der=cert.public_bytes(Encoding.DER),
            not_before=not_before,
            not_after=not_after,
            created_at=now,
        )
        self._repo.add(row)
        self._repo.flush()
        return row

    def has_certificate(self, app: ApplicationRow, data: bytes) -> bool:
        """Whether the app already has this certificate (PEM or DER); refuses what add_certificate refuses."""
        sha1 = certificate_thumbprint(parse_certificate(data))
        return any(c.thumbprint_sha1 == sha1 for c in self._repo.list_certificates(app.object_id))

    def list_certificates(self, app: ApplicationRow) -> list[CertificateRow]:
        return self._repo.list_certificates(app.object_id)

    def find_certificate(self, app: ApplicationRow, ref: str) -> CertificateRow:
        """`ref`: the key id, or the SHA-1 or SHA-256 thumbprint in hex (any case, colons allowed)."""
        key_id = parse_guid(ref.strip())
        hex_ref = re.sub(r"[\s:]", "", ref).lower()
        for cert in self._repo.list_certificates(app.object_id):
            if cert.key_id == key_id or hex_ref in (cert.thumbprint_sha1.lower(), cert.thumbprint_sha256):
                return cert
        raise DirectoryError(f"application {app.app_id} has no certificate '{ref}'")

    def remove_certificate(self, app: ApplicationRow, ref: str) -> CertificateRow:
        """Remove a certificate by key id or thumbprint; assertions it signs stop working at once."""
        cert = self.find_certificate(app, ref)
        self._repo.delete_certificate(cert.key_id)
        self._repo.flush()
        return cert

    def _check_registration(self, app: ApplicationRow, what: str) -> None:
        self._check_own(app)
        if app.managed_identity:
            raise DirectoryError(f"{app.display_name} is a managed identity; it cannot have {what}")

    # managed identities
    def create_managed_identity(
        self,
        tenant: TenantRow,
        name: str,
        *,
        kind: str,
        resource_id: str | None = None,
        on_host: bool = False,
    ) -> ManagedIdentityRow:
        """A managed identity: a hidden application (Entra shows no registration for it), its service
        principal in the tenant, and the identity, whose object id is the service principal's. System-assigned
        identities stand for one host resource (by default a virtual machine of that name); user-assigned ones
        stand alone. `on_host`: Entryway's own managed identity endpoints issue tokens for it."""
        if kind not in MANAGED_IDENTITY_KINDS:
            raise DirectoryError(f"a managed identity's kind is 'system' or 'user', not '{kind}'")
        if not _MANAGED_IDENTITY_NAME.match(name):
            raise DirectoryError(
                f"'{name}' is not a valid managed identity name (3 to 128 letters, digits, hyphens and "
                "underscores, starting with a letter or digit)"
            )
        if self._repo.find_managed_identity_by_name(tenant.id, name) is not None:
            raise DirectoryError(f"tenant {tenant.id} already has a managed identity named '{name}'")
        rid = (
            default_resource_id(tenant.id, kind, name)
            if resource_id is None
            else check_resource_id(resource_id, kind)
        )
        if self._repo.find_managed_identity_by_resource_id(rid) is not None:
            raise DirectoryError(f"resource id '{rid}' already belongs to a managed identity")
        if on_host and kind == "system":
            self._check_no_system_identity_on_host(None)
        now = self._clock.now()
        hidden = ApplicationRow(
            object_id=new_guid(),
            app_id=new_guid(),
            tenant_id=tenant.id,
            display_name=name,
            delegated_scopes=[],
            app_roles=[],
            access_token_version=1,
            public_client=False,
            redirect_uris=[],
            managed_identity=True,
            created_at=now,
        )
        self._repo.add(hidden)
        self._repo.flush()
        sp = self._add_service_principal(tenant.id, hidden.app_id, name)
        self._repo.flush()
        mi = ManagedIdentityRow(
            object_id=sp.object_id,
            tenant_id=tenant.id,
            app_id=hidden.app_id,
            kind=kind,
            name=name,
            resource_id=rid,
            on_host=on_host,
            created_at=now,
        )
        self._repo.add(mi)
        self._repo.flush()
        return mi

    def set_on_host(self, mi: ManagedIdentityRow, on_host: bool) -> bool:
        """Whether this Entryway's host carries the identity; True when that changed. A host has at most one
        system-assigned identity (the one IMDS issues for when a request names none)."""
        if mi.on_host == on_host:
            return False
        if on_host and mi.kind == "system":
            self._check_no_system_identity_on_host(mi)
        mi.on_host = on_host
        self._repo.flush()
        return True

    def _check_no_system_identity_on_host(self, mi: ManagedIdentityRow | None) -> None:
        current = self._repo.find_system_identity_on_host()
        if current is not None and (mi is None or current.object_id != mi.object_id):
            raise DirectoryError(
                f"the host already carries the system-assigned identity '{current.name}' (tenant "
                f"{current.tenant_id}); a host has one: take it off the host first"
            )

    def list_managed_identities(self, tenant: TenantRow | None = None) -> list[ManagedIdentityRow]:
        """The tenant's managed identities (None: every tenant's), oldest first."""
        return self._repo.list_managed_identities(None if tenant is None else tenant.id)

    def find_managed_identity(self, tenant: TenantRow, ref: str) -> ManagedIdentityRow:
        """`ref`: the name, the client id, the object id or the resource id."""
        guid = parse_guid(ref.strip())
        if guid is not None:
            mi = self._repo.find_managed_identity(guid) or self._repo.find_managed_identity_by_app_id(guid)
        elif ref.startswith("/"):
            mi = self._repo.find_managed_identity_by_resource_id(ref.strip())
        else:
            mi = self._repo.find_managed_identity_by_name(tenant.id, ref.strip())
        if mi is None or mi.tenant_id != tenant.id:
            raise DirectoryError(f"managed identity '{ref}' not found in tenant {tenant.id}")
        return mi

    def find_managed_identity_or_none(self, tenant: TenantRow, ref: str) -> ManagedIdentityRow | None:
        try:
            return self.find_managed_identity(tenant, ref)
        except DirectoryError:
            return None

    def delete_managed_identity(self, mi: ManagedIdentityRow) -> None:
        """Delete the identity, its service principal, hidden application and federated credentials."""
        hidden = self._repo.find_application(mi.app_id)
        self._repo.delete_managed_identity(mi)
        if hidden is not None:
            self._repo.delete_application(hidden.object_id)
        self._repo.flush()

    # federated identity credentials
    def add_federated_credential(
        self,
        owner: ApplicationRow | ManagedIdentityRow | str,
        *,
        name: str,
        issuer: str,
        subject: str | None = None,
        claims_matching_expression: str | None = None,
        audiences: Sequence[str] = (DEFAULT_FIC_AUDIENCE,),
        description: str = "",
    ) -> FederatedCredentialRow:
        """Trust tokens of an external issuer: an assertion with this issuer, subject (case-sensitive, or
        matching the claims expression) and audience authenticates the owner, an app registration or a
        user-assigned managed identity (by row or client id). Validated as Microsoft Graph validates
        federatedIdentityCredential; claims-matching expressions only on app registrations, as in Entra."""
        owner_app_id, mi = self._federated_credential_owner(owner)
        if not _FIC_NAME.match(name):
            raise DirectoryError(
                f"'{name}' is not a valid federated credential name (3 to 120 letters, digits, hyphens and "
                "underscores, starting with a letter or digit)"
            )
        existing = self._repo.list_federated_credentials(owner_app_id)
        if any(f.name.lower() == name.lower() for f in existing):
            raise DirectoryError(f"{owner_app_id} already has a federated credential named '{name}'")
        if len(existing) >= MAX_FEDERATED_CREDENTIALS:
            raise DirectoryError(
                f"{owner_app_id} already has {MAX_FEDERATED_CREDENTIALS} federated credentials, the most "
                "an application or managed identity may have"
            )
        audience_list = _check_federated_credential_values(
            issuer,
            subject,
            claims_matching_expression,
            audiences,
            description,
            managed_identity=mi is not None,
        )
        row = FederatedCredentialRow(
            id=new_guid(),
            owner_app_id=owner_app_id,
            name=name,
            issuer=issuer,
            subject=subject,
            claims_matching_expression=claims_matching_expression,
            audiences=audience_list,
            description=description,
            created_at=self._clock.now(),
        )
        self._repo.add(row)
        self._repo.flush()
        return row

    def update_federated_credential(
        self,
        owner: ApplicationRow | ManagedIdentityRow | str,
        name: str,
        *,
        issuer: str,
        subject: str | None = None,
        claims_matching_expression: str | None = None,
        audiences: Sequence[str] = (DEFAULT_FIC_AUDIENCE,),
        description: str = "",
    ) -> bool:
        """Set what a federated credential matches (its name cannot change, as in Entra); True when anything
        changed."""
        owner_app_id, mi = self._federated_credential_owner(owner)
        fic = self._find_federated_credential(owner_app_id, name)
        audience_list = _check_federated_credential_values(
            issuer,
            subject,
            claims_matching_expression,
            audiences,
            description,
            managed_identity=mi is not None,
        )
        wanted = (issuer, subject, claims_matching_expression, audience_list, description)
        if wanted == (
            fic.issuer,
            fic.subject,
            fic.claims_matching_expression,
            list(fic.audiences),
            fic.description,
        ):
            return False
        fic.issuer, fic.subject, fic.claims_matching_expression = issuer, subject, claims_matching_expression
        fic.audiences, fic.description = audience_list, description
        self._repo.flush()
        return True

    def _find_federated_credential(self, owner_app_id: str, name: str) -> FederatedCredentialRow:
        for fic in self._repo.list_federated_credentials(owner_app_id):
            if fic.name.lower() == name.lower() or fic.id == name:
                return fic
        raise DirectoryError(f"{owner_app_id} has no federated credential named '{name}'")

    def list_federated_credentials(
        self, owner: ApplicationRow | ManagedIdentityRow | str
    ) -> list[FederatedCredentialRow]:
        owner_app_id, _mi = self._federated_credential_owner(owner)
        return self._repo.list_federated_credentials(owner_app_id)

    def remove_federated_credential(
        self, owner: ApplicationRow | ManagedIdentityRow | str, name: str
    ) -> FederatedCredentialRow:
        """Remove a federated credential by name (or id); its issuer's tokens stop working at once."""
        owner_app_id, _mi = self._federated_credential_owner(owner)
        fic = self._find_federated_credential(owner_app_id, name)
        self._repo.delete_federated_credential(fic.id)
        self._repo.flush()
        return fic

    def _federated_credential_owner(
        self, owner: ApplicationRow | ManagedIdentityRow | str
    ) -> tuple[str, ManagedIdentityRow | None]:
        """(client id, the managed identity when the owner is one); refuses what cannot own one."""
        if isinstance(owner, ManagedIdentityRow):
            mi: ManagedIdentityRow | None = owner
        else:
            app = owner if isinstance(owner, ApplicationRow) else self._repo.find_application(owner)
            if app is None:
                raise DirectoryError(f"no application or managed identity has client id '{owner}'")
            if not app.managed_identity:
                self._check_own(app)
                return app.app_id, None
            mi = self._repo.find_managed_identity_by_app_id(app.app_id)
            if mi is None:
                raise DirectoryError(f"no managed identity has client id '{app.app_id}'")
        assert mi is not None
        if mi.kind != "user":
            raise DirectoryError(
                f"'{mi.name}' is a system-assigned managed identity; only user-assigned managed "
                "identities and app registrations have federated credentials"
            )
        return mi.app_id, mi

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

    # delegated permissions (oauth2PermissionGrants)
    def grant_admin_consent(
        self,
        tenant: TenantRow,
        client_app: ApplicationRow,
        resource_app: ApplicationRow,
        scopes: Sequence[str],
    ) -> bool:
        """Consent on behalf of every user of the tenant: `client_app` may ask `scopes` (delegated
        permissions the resource defines) without a consent prompt. Adds to an existing grant; True when
        anything changed."""
        wanted = [s.strip() for s in scopes if s.strip()]
        if not wanted:
            raise DirectoryError("give at least one scope to consent to")
        undefined = [s for s in wanted if s not in (resource_app.delegated_scopes or [])]
        if undefined:
            defined = ", ".join(resource_app.delegated_scopes or []) or "none"
            raise DirectoryError(
                f"application {resource_app.app_id} defines no delegated permission "
                f"{', '.join(repr(s) for s in undefined)} (it defines: {defined})"
            )
        for app in (client_app, resource_app):
            if self._repo.find_service_principal(tenant.id, app.app_id) is None:
                raise DirectoryError(
                    f"application {app.app_id} has no service principal in tenant {tenant.id}"
                )
        return self._grant(tenant.id, client_app.app_id, None, resource_app.app_id, wanted)

    def list_admin_consents(
        self, tenant: TenantRow, client_app: ApplicationRow
    ) -> list[tuple[str, list[str]]]:
        """(resource app id, scopes) of every tenant-wide grant of the client."""
        return [
            (g.resource_app_id, list(g.scopes or []))
            for g in self._repo.list_permission_grants(tenant.id, client_app.app_id)
            if g.principal_id is None
        ]

    def _grant(
        self,
        tenant_id: str,
        client_app_id: str,
        principal_id: str | None,
        resource_app_id: str,
        scopes: Sequence[str],
    ) -> bool:
        grant = self._repo.find_permission_grant(tenant_id, client_app_id, principal_id, resource_app_id)
        if grant is None:
            self._repo.add(
                PermissionGrantRow(
                    id=new_guid(),
                    tenant_id=tenant_id,
                    client_app_id=client_app_id,
                    principal_id=principal_id,
                    resource_app_id=resource_app_id,
                    scopes=list(dict.fromkeys(scopes)),
                    created_at=self._clock.now(),
                )
            )
            self._repo.flush()
            return True
        merged = list(dict.fromkeys([*(grant.scopes or []), *scopes]))
        if merged == list(grant.scopes or []):
            return False
        grant.scopes = merged
        self._repo.flush()
        return True

    # users
    def create_user(
        self,
        tenant: TenantRow,
        upn: str,
        password: str | None,
        display_name: str | None = None,
        *,
        mfa_required: bool | None = None,
    ) -> UserRow:
        """`mfa_required` None: the tenant's default (mfa_required_default) decides."""
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
            mfa_required=mfa_required,
            created_at=self._clock.now(),
        )
        self._repo.add(user)
        self._repo.flush()
        return user

    def find_user(self, upn: str) -> UserRow | None:
        return self._repo.find_user_by_upn(upn)

    def get_user(self, upn: str) -> UserRow:
        user = self._repo.find_user_by_upn(upn.strip())
        if user is None:
            raise DirectoryError(f"user '{upn}' not found")
        return user

    def set_user_mfa(self, user: UserRow, required: bool | None) -> None:
        """Per-user MFA: True must, False need not, None follows the tenant's default. MFA newly applying to
        the user is a critical event (mfaRequired): tokens from sign-ins without it stop being accepted."""
        tenant = self.find_tenant(user.tenant_id)
        before = self.mfa_required_for(tenant, user)
        user.mfa_required = required
        if not before and self.mfa_required_for(tenant, user):
            self._publish(user, CaeEventKind.MFA_REQUIRED)
        self._repo.flush()

    # Account administration: each change is a critical event for continuous access evaluation, written in
    # the same unit of work (identity/directory/cae_outbox.py).
    def set_account_enabled(self, user: UserRow, enabled: bool) -> bool:
        """Block or allow sign-in (Entra's accountEnabled). A disabled user can neither sign in nor redeem a
        refresh token (AADSTS50057). Returns False when the account already was so (no event)."""
        if user.account_enabled == enabled:
            return False
        user.account_enabled = enabled
        self._publish(user, CaeEventKind.USER_ENABLED if enabled else CaeEventKind.USER_DISABLED)
        self._repo.flush()
        return True

    def delete_user(self, user: UserRow) -> None:
        """Delete the user, with their sign-in sessions, refresh tokens, group memberships and roles. Entra keeps
        deleted users 30 days for restore; here a deletion is final."""
        self._publish(user, CaeEventKind.USER_DELETED)
        self._repo.delete_user(user)

    def set_password(self, user: UserRow, password: str) -> int:
        """An administrator's password reset: the new password (argon2id), and, as in Entra, every refresh
        token and browser session of the user revoked. Returns the number of refresh-token families revoked."""
        if len(password) < 8:
            raise DirectoryError("a password must be at least 8 characters")
        user.password_hash = hash_password(password)
        revoked = self._sign_out_everywhere(user, "password reset")
        self._publish(user, CaeEventKind.PASSWORD_RESET)
        self._repo.flush()
        return revoked

    def revoke_sessions(self, user: UserRow) -> int:
        """Entra's revokeSignInSessions: every refresh token and browser session of the user is revoked, and
        resource services that evaluate continuously refuse tokens issued before now. Returns the number of
        refresh-token families revoked."""
        revoked = self._sign_out_everywhere(user, "revoked by administrator")
        self._publish(user, CaeEventKind.REFRESH_TOKENS_REVOKED)
        self._repo.flush()
        return revoked

    def _sign_out_everywhere(self, user: UserRow, reason: str) -> int:
        self._repo.end_browser_sessions_of(user.object_id)
        return Ledger(self._session, self._clock, self._digester).revoke_refresh_tokens(
            user_id=user.object_id, reason=reason
        )

    def _publish(self, user: UserRow, kind: CaeEventKind) -> None:
        publish_event(
            self._session,
            tenant_id=user.tenant_id,
            kind=kind,
            at=self._clock.now(),
            subject_id=user.object_id,
        )

    def reset_user_mfa(self, user: UserRow) -> None:
        """Forget the user's authenticator: the next sign-in that needs MFA enrolls a new one."""
        user.totp_secret_encrypted = None
        user.totp_enrolled_at = None
        user.totp_last_step = None
        self._repo.flush()

    @staticmethod
    def mfa_required_for(tenant: TenantRow, user: UserRow) -> bool:
        """Whether the user must do MFA at sign-in: the per-user setting, else the tenant's default."""
        return tenant.mfa_required_default if user.mfa_required is None else user.mfa_required

    def list_users(self, tenant: TenantRow) -> list[UserRow]:
        return self._repo.list_users(tenant.id)


def _update_first_party(row: ApplicationRow, app: FirstPartyApp) -> None:
    if row.access_token_version != app.access_token_version:
        row.access_token_version = app.access_token_version
    if row.public_client != app.public_client:
        row.public_client = app.public_client
    # An app on the installation's own origin has its redirect URIs registered at start (installation.py).
    if not app.devops_redirect_paths and list(row.redirect_uris or []) != list(app.redirect_uris):
        row.redirect_uris = list(app.redirect_uris)
    if list(row.delegated_scopes or []) != list(app.delegated_scopes):
        row.delegated_scopes = list(app.delegated_scopes)
    if list(row.app_roles or []) != list(app.app_roles):
        row.app_roles = list(app.app_roles)


def _check_session_lifetime(what: str, seconds: int) -> None:
    if not MIN_SESSION_LIFETIME <= seconds <= MAX_SESSION_LIFETIME:
        raise DirectoryError(
            f"{what} must be between {MIN_SESSION_LIFETIME} seconds (1 hour) and "
            f"{MAX_SESSION_LIFETIME} seconds (365 days), not {seconds}"
        )


def check_redirect_uris(uris: Sequence[str]) -> list[str]:
    """The redirect URIs an app may register, deduplicated in order. Entra's rules: absolute; `https`, or
    `http` only on a loopback host (RFC 8252 section 7.3), or a private-use scheme of a native app (RFC 8252
    section 7.1: `msal{client_id}://auth`, `ms-appx-web://...`); no fragment (RFC 6749 section 3.1.2); no
    wildcard; at most 256 of them, each at most 256 characters."""
    checked: list[str] = []
    for uri in uris:
        check_redirect_uri(uri)
        if uri not in checked:
            checked.append(uri)
    if len(checked) > MAX_REDIRECT_URIS:
        raise DirectoryError(f"an application may have at most {MAX_REDIRECT_URIS} redirect URIs")
    return checked


def check_redirect_uri(uri: str) -> None:
    if not uri or len(uri) > MAX_REDIRECT_URI_LENGTH:
        raise DirectoryError(
            f"redirect URI '{uri[:60]}' must be 1 to {MAX_REDIRECT_URI_LENGTH} characters long"
        )
    if any(c.isspace() or ord(c) < 0x20 for c in uri):
        raise DirectoryError(f"redirect URI '{uri}' contains white space or control characters")
    if "#" in uri:
        raise DirectoryError(f"redirect URI '{uri}' has a fragment; redirect URIs may not")
    if "*" in uri:
        raise DirectoryError(f"redirect URI '{uri}' has a wildcard; redirect URIs are matched exactly")
    scheme, _, rest = uri.partition(":")
    scheme = scheme.lower()
    if not rest or not _SCHEME.match(scheme):
        raise DirectoryError(f"redirect URI '{uri}' is not an absolute URI")
    if scheme in ("http", "https"):
        try:
            parts = urlsplit(uri)
            host = parts.hostname
            _ = parts.port  # raises on a port that is not a number
        except ValueError as exc:
            raise DirectoryError(f"redirect URI '{uri}' is not a valid URL: {exc}") from exc
        if not host:
            raise DirectoryError(f"redirect URI '{uri}' has no host")
        if scheme == "http" and host not in LOOPBACK_HOSTS:
            raise DirectoryError(
                f"redirect URI '{uri}' must use https; http is allowed only for localhost, "
                "127.0.0.1 and [::1]"
            )
    elif scheme in _UNSAFE_SCHEMES:
        raise DirectoryError(f"redirect URI '{uri}' uses the '{scheme}' scheme, which is not allowed")


def parse_certificate(data: bytes) -> x509.Certificate:
    """One public X.509 certificate, PEM or DER, with an RSA key of at least MIN_RSA_KEY_BITS bits."""
    if b"PRIVATE KEY" in data:
        raise DirectoryError(
            "the file holds a private key: give only the public certificate (keep the key with the client), "
            "e.g. `openssl x509 -in key-and-cert.pem -out cert.pem`"
        )
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise DirectoryError("the file is PEM but holds no valid X.509 certificate") from exc
        if len(certs) != 1:
            raise DirectoryError(f"the file holds {len(certs)} certificates; give one, the client's own")
        cert = certs[0]
    else:
        try:
            cert = x509.load_der_x509_certificate(data)
        except ValueError as exc:
            raise DirectoryError(
                "the file is not an X.509 certificate in PEM or DER form (a .pfx or .p12 file holds the "
                "private key: give its certificate, e.g. `openssl pkcs12 -in cert.pfx -clcerts -nokeys "
                "-out cert.pem`)"
            ) from exc
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise DirectoryError(
            f"the certificate's key is {type(key).__name__.removesuffix('PublicKey').removeprefix('_')}, "
            f"not RSA: client assertions are signed with RSA (RS256 or PS256); use an RSA key of at least "
            f"{MIN_RSA_KEY_BITS} bits"
        )
    if key.key_size < MIN_RSA_KEY_BITS:
        raise DirectoryError(
            f"the certificate's RSA key has {key.key_size} bits; at least {MIN_RSA_KEY_BITS} are required"
        )
    return cert


def certificate_thumbprint(cert: x509.Certificate) -> str:
    """The SHA-1 thumbprint in upper-case hex, as Entra shows it and msal's `x5t` header names it. SHA-1 only
    names the certificate: the assertion's signature is checked against the stored certificate itself."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303


def default_resource_id(tenant_id: str, kind: str, name: str) -> str:
    """The Azure resource id Entryway gives a managed identity declared without one (lower-case): a
    user-assigned identity's own resource, or the virtual machine a system-assigned identity belongs to."""
    provider = (
        "microsoft.managedidentity/userassignedidentities"
        if kind == "user"
        else "microsoft.compute/virtualmachines"
    )
    return (
        f"/subscriptions/{tenant_id}/resourcegroups/{MANAGED_IDENTITY_RESOURCE_GROUP}/providers/{provider}/"
        f"{name}"
    ).lower()


def check_resource_id(resource_id: str, kind: str) -> str:
    """An Azure resource id, lower-case (Azure compares them without case). A user-assigned identity's is a
    Microsoft.ManagedIdentity/userAssignedIdentities resource; a system-assigned one's is its host's."""
    rid = resource_id.strip().lower()
    if len(rid) > MAX_RESOURCE_ID_LENGTH or not _RESOURCE_ID.match(rid):
        raise DirectoryError(
            f"'{resource_id}' is not an Azure resource id "
            "(/subscriptions/{sub}/resourceGroups/{group}/providers/{namespace}/{type}/{name})"
        )
    if kind == "user" and _USER_ASSIGNED_TYPE not in rid:
        raise DirectoryError(
            f"a user-assigned identity's resource id names a Microsoft.ManagedIdentity/userAssignedIdentities "
            f"resource; '{resource_id}' does not"
        )
    if kind == "system" and _USER_ASSIGNED_TYPE in rid:
        raise DirectoryError(
            "a system-assigned identity's resource id is its host's (e.g. a virtual machine), not a "
            "userAssignedIdentities resource"
        )
    return rid


def check_issuer(issuer: str) -> None:
    """An external issuer: an https URL (its discovery document and keys are fetched over HTTPS)."""
    if not issuer or len(issuer) > MAX_FIC_VALUE_LENGTH:
        raise DirectoryError(f"an issuer must be 1 to {MAX_FIC_VALUE_LENGTH} characters long")
    if any(c.isspace() for c in issuer):
        raise DirectoryError(f"issuer '{issuer}' contains white space")
    try:
        parts = urlsplit(issuer)
        _ = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        raise DirectoryError(f"issuer '{issuer}' is not a valid URL: {exc}") from exc
    if parts.scheme != "https" or not parts.hostname:
        raise DirectoryError(f"issuer '{issuer}' must be an https URL, as the token's 'iss' claim writes it")
    if parts.fragment or parts.query:
        raise DirectoryError(f"issuer '{issuer}' may have no query or fragment")


def check_claims_matching_expression(expression: str) -> None:
    """A flexible federated credential's expression (Entra's languageVersion 1), in the part the token
    endpoint evaluates (client_assertion.matches_claims_expression): terms `claims['name'] eq 'value'`,
    `claims['name'] matches 'pat*tern'` or `claims['name'] startswith 'value'`, joined by `and`. An
    expression the token endpoint could not read would match nothing, so it is refused here."""
    if not expression.strip() or len(expression) > MAX_CLAIMS_EXPRESSION_LENGTH:
        raise DirectoryError(
            f"a claims-matching expression must be 1 to {MAX_CLAIMS_EXPRESSION_LENGTH} characters long"
        )
    for term in re.split(r"\s+and\s+", expression.strip(), flags=re.IGNORECASE):
        if _CLAIMS_TERM.fullmatch(term) is None:
            raise DirectoryError(
                f"cannot read '{term}' in claims-matching expression '{expression}': write terms like "
                "claims['sub'] matches 'repo:contoso/app:*' (eq, matches or startswith), joined by 'and'"
            )


def _check_federated_credential_values(
    issuer: str,
    subject: str | None,
    claims_matching_expression: str | None,
    audiences: Sequence[str],
    description: str,
    *,
    managed_identity: bool,
) -> list[str]:
    """Graph's rules for what a federated credential matches; returns the audiences as a list."""
    check_issuer(issuer)
    if (subject is None) == (claims_matching_expression is None):
        raise DirectoryError("give exactly one of a subject or a claims-matching expression")
    if subject is not None:
        _check_fic_value("subject", subject)
    if claims_matching_expression is not None:
        if managed_identity:
            raise DirectoryError(
                "claims-matching expressions are for app registrations; a managed identity's "
                "federated credential needs a subject"
            )
        check_claims_matching_expression(claims_matching_expression)
    audience_list = list(audiences)
    if len(audience_list) != 1:
        raise DirectoryError(
            f"a federated credential has exactly one audience (usually {DEFAULT_FIC_AUDIENCE}), "
            f"not {len(audience_list)}"
        )
    _check_fic_value("audience", audience_list[0])
    if len(description) > MAX_FIC_VALUE_LENGTH:
        raise DirectoryError(f"a description may be at most {MAX_FIC_VALUE_LENGTH} characters")
    return audience_list


def _check_fic_value(what: str, value: str) -> None:
    if not value.strip() or len(value) > MAX_FIC_VALUE_LENGTH:
        raise DirectoryError(
            f"a federated credential's {what} must be 1 to {MAX_FIC_VALUE_LENGTH} characters"
        )
