"""What the protocol knows of the directory: plain values, loaded by a `DirectoryPort`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from entryway.identity.policy.model import PolicySet


@dataclass(frozen=True)
class Tenant:
    id: str
    display_name: str
    access_token_lifetime_seconds: int
    refresh_token_inactivity_seconds: int = 90 * 86400
    sign_in_frequency_seconds: int | None = None
    mfa_required_default: bool = False
    # False only when the directory read says the tenant has no Conditional Access policy: the token endpoint
    # then skips reading the (empty) policy set at every issuance.
    has_policies: bool = True


@dataclass(frozen=True)
class ClientSecret:
    key_id: str
    digest: str
    expires_at: datetime


@dataclass(frozen=True)
class Client:
    """An application as seen from one tenant: its registration and its service principal there."""

    app_id: str
    display_name: str
    service_principal_id: str
    service_principal_enabled: bool
    secrets: tuple[ClientSecret, ...]
    # "Allow public client flows": the client may redeem user grants without a credential.
    public_client: bool = False


@dataclass(frozen=True)
class Resource:
    """A resource application with a service principal in the tenant: the audience of a token."""

    app_id: str
    display_name: str
    access_token_version: int
    delegated_scopes: tuple[str, ...]
    app_roles: tuple[str, ...]


@dataclass(frozen=True)
class Certificate:
    """A public certificate on an app registration (keyCredential)."""

    key_id: str
    thumbprint_sha1: str  # upper-case hex
    thumbprint_sha256: str  # lower-case hex
    certificate_der: bytes
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class FederatedCredential:
    """A federated identity credential of an app registration or a user-assigned managed identity."""

    name: str
    issuer: str
    subject: str | None  # case-sensitive; None when a claims-matching expression is used instead
    claims_matching_expression: str | None
    audiences: tuple[str, ...]


@dataclass(frozen=True)
class User:
    object_id: str
    tenant_id: str
    user_principal_name: str
    display_name: str
    account_enabled: bool
    mfa_required: bool  # resolved: the user's own setting, else the tenant's default
    # An authenticator (TOTP) is enrolled: MFA can be asked for (AADSTS50076) rather than enrolment (50079).
    has_authenticator: bool = False


@dataclass(frozen=True)
class Memberships:
    """What a user's tokens say about their place in the directory."""

    groups: tuple[str, ...]  # object ids of every group they are in, directly or through other groups
    roles: tuple[str, ...]  # directory role template ids they hold (`wids`, with the default user role)


class DirectoryPort(Protocol):
    """The directory reads the token pipeline needs. Implemented in `identity.directory`."""

    def find_tenant(self, ref: str) -> Tenant | None:
        """`ref` is a tenant GUID or one of its domain names."""
        ...

    def find_client(self, tenant_id: str, client_id: str) -> Client | None: ...

    def find_resource(self, tenant_id: str, identifier: str) -> Resource | None:
        """`identifier` is an app id (GUID) or an identifier URI."""
        ...

    def find_app_roles_granted(
        self, tenant_id: str, client_sp_id: str, resource_app_id: str
    ) -> tuple[str, ...]:
        """App roles assigned to the client's service principal on the resource."""
        ...

    def find_user(self, tenant_id: str, object_id: str) -> User | None: ...

    def find_user_by_upn(self, upn: str) -> User | None: ...

    def find_memberships(self, tenant_id: str, object_id: str) -> Memberships:
        """The user's transitive groups and directory roles, for the `groups` and `wids` claims."""
        ...

    def find_certificates(self, app_id: str) -> tuple[Certificate, ...]:
        """Every certificate of the app registration whose client id is `app_id`."""
        ...

    def find_federated_credentials(self, app_id: str) -> tuple[FederatedCredential, ...]:
        """Every federated credential of the app or managed identity whose client id is `app_id`."""
        ...

    def find_policy_set(self, tenant_id: str) -> PolicySet:
        """The tenant's Conditional Access policies and named locations (empty when it has none)."""
        ...
