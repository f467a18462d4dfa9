"""Which of the host's managed identities a token request names.

IMDS (https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token) and
App Service (https://learn.microsoft.com/azure/app-service/overview-managed-identity#rest-endpoint-reference)
take at most one of a client id, an object (principal) id or an Azure resource id. With none, the host's
system-assigned identity is used; a host without one but with exactly one user-assigned identity uses that
one, and with several user-assigned identities IMDS refuses ("Multiple user assigned identities exist").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from entryway.kit.ids import parse_guid


@dataclass(frozen=True)
class HostIdentity:
    """A managed identity this host carries, with its service principal."""

    object_id: str  # the service principal's object id: `oid` and `sub` of its tokens
    client_id: str  # the app id of its hidden application: `appid`
    tenant_id: str
    kind: str  # system | user
    resource_id: str  # lower-case: `xms_mirid`
    display_name: str
    enabled: bool


@dataclass(frozen=True)
class Selector:
    """What a request names the identity by; all None: the default identity."""

    client_id: str | None = None
    object_id: str | None = None
    resource_id: str | None = None

    @property
    def is_default(self) -> bool:
        return self.client_id is None and self.object_id is None and self.resource_id is None

    def matches(self, identity: HostIdentity) -> bool:
        """Every given selector must name the identity. GUIDs are compared in their canonical form, Azure
        resource ids case-insensitively (ARM treats them so; clients echo whatever case they were given)."""
        checks = (
            (self.client_id, lambda v: parse_guid(v.strip()) == identity.client_id),
            (self.object_id, lambda v: parse_guid(v.strip()) == identity.object_id),
            (self.resource_id, lambda v: v.strip().rstrip("/").lower() == identity.resource_id),
        )
        return all(check(value) for value, check in checks if value is not None)


class IdentityNotFound(Exception):
    """The request names no identity this host carries (or names none, and the host has no default)."""


class AmbiguousIdentity(Exception):
    """The request names no identity, and the host carries several user-assigned ones and no system one."""


def choose_identity(identities: Iterable[HostIdentity], selector: Selector) -> HostIdentity:
    carried = list(identities)
    if not selector.is_default:
        for identity in carried:
            if selector.matches(identity):
                return identity
        raise IdentityNotFound
    system = [i for i in carried if i.kind == "system"]
    if system:
        return system[0]
    user = [i for i in carried if i.kind == "user"]
    if len(user) == 1:
        return user[0]
    if user:
        raise AmbiguousIdentity
    raise IdentityNotFound
