"""Administrator PAT policies (devops-wire-contract 4): the tenant's and the organization's, and their allowlists.

Tenant policies (Azure DevOps: Organization settings -> Microsoft Entra) apply to every organization of the
tenant: restrict global PATs, restrict full-scoped PATs, a maximum lifespan, and automatic revocation of leaked
PATs (on by default; it has no allowlist). The organization policy restricts PAT creation (optionally to
packaging scopes only). Each allowlisted policy exempts the users and groups on its allowlist.

`PatPolicyService` reads and changes them. It never commits: the caller's unit of work does, with the audit
rows (Policy.Update / Policy.AllowlistAdd / Policy.AllowlistRemove) it adds in every organization concerned (a
tenant policy: each organization of the tenant). Bad input raises `PatPolicyError`, whose message is for the
administrator. Enforcement lives where PATs are made and used (`service.py`, `verify.py`).
"""

from __future__ import annotations

import enum
from typing import Any, Final, Protocol

from sqlalchemy.orm import Session

from entryway.devops.audit.recorder import Actor, record_change_by
from entryway.devops.orgs.service import Organization
from entryway.devops.pats.policy_model import (
    GROUP,
    MAX_LIFESPAN_DAYS,
    ORGANIZATION,
    PRINCIPAL_KINDS,
    TENANT,
    TENANT_POLICIES,
    USER,
    AllowlistEntry,
    OrgPatPolicy,
    PatPolicyError,
    PolicyErrorKind,
    PolicyName,
    Requester,
    TenantPatPolicy,
    org_policy_of,
)
from entryway.devops.pats.policy_repository import PatPolicyRepository
from entryway.kit.clock import Clock
from entryway.kit.ids import new_guid, parse_guid
from entryway.store.models import (
    PatOrganizationPolicyRow,
    PatPolicyAllowlistRow,
    PatTenantPolicyRow,
)

__all__ = [
    "GROUP",
    "LOCAL_ACTOR",
    "MAX_LIFESPAN_DAYS",
    "ORGANIZATION",
    "PRINCIPAL_KINDS",
    "TENANT",
    "TENANT_POLICIES",
    "UNSET",
    "USER",
    "AllowlistEntry",
    "OrgPatPolicy",
    "PatPolicyError",
    "PatPolicyService",
    "PolicyErrorKind",
    "PolicyName",
    "PrincipalDirectory",
    "Requester",
    "TenantPatPolicy",
    "check_lifespan",
]

# The actor of a change made on the server's host (the CLI, the config file).
LOCAL_ACTOR = Actor.local("Entryway administrator (local)")


class _Unset(enum.Enum):
    UNSET = "unset"


UNSET: Final = _Unset.UNSET  # `max_lifespan_days=UNSET` leaves it as it is; None turns the limit off


class PrincipalDirectory(Protocol):
    """The port through which an administrator's allowlist entry is checked against the directory.

    The DevOps service does not read the identity platform's tables; the CLI and the config file, which run
    beside both, pass one (see cli/pat_policies.py). Without one, only the entry's shape is checked."""

    def find_principal_name(self, tenant_id: str, kind: str, object_id: str) -> str | None:
        """The display name of the user or group, or None when the tenant has no such principal."""
        ...


def _check_bool(name: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise PatPolicyError(PolicyErrorKind.INVALID_VALUE, f"{name} must be true or false, not {value!r}")


def check_lifespan(value: Any) -> int | None:
    """A maximum lifespan in whole days, 1 to 365, or None (no limit)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIFESPAN_DAYS:
        raise PatPolicyError(
            PolicyErrorKind.INVALID_LIFESPAN,
            f"the maximum PAT lifespan must be a whole number of days from 1 to {MAX_LIFESPAN_DAYS}, not {value!r}",
        )
    return value


class PatPolicyService:
    """Reads and changes the PAT policies. Never commits."""

    def __init__(
        self, session: Session, clock: Clock, *, directory: PrincipalDirectory | None = None
    ) -> None:
        self._session = session
        self._clock = clock
        self._directory = directory
        self._repo = PatPolicyRepository(session)

    # --- reading -----------------------------------------------------------------------------------------

    def tenant_policy(self, tenant_id: str) -> TenantPatPolicy:
        """The tenant's policies; the defaults (everything off but automatic revocation) when none is set."""
        entries = self._repo.list_allowlist(TENANT, tenant_id)
        allowlists = {
            p: tuple(AllowlistEntry.from_row(e) for e in entries if e.policy == p.value)
            for p in TENANT_POLICIES
        }
        row = self._repo.find_tenant_policy(tenant_id)
        if row is None:
            return TenantPatPolicy(tenant_id, allowlists=allowlists)
        return TenantPatPolicy(
            tenant_id,
            restrict_global=bool(row.restrict_global),
            restrict_full_scope=bool(row.restrict_full_scope),
            max_lifespan_days=row.max_lifespan_days,
            auto_revoke_leaked=bool(row.auto_revoke_leaked),
            allowlists=allowlists,
        )

    def org_policy(self, organization_id: str) -> OrgPatPolicy:
        """The organization's policy; off when none is set."""
        return org_policy_of(
            organization_id,
            self._repo.find_org_policy(organization_id),
            self._repo.list_allowlist(ORGANIZATION, organization_id),
        )

    # --- changing ----------------------------------------------------------------------------------------

    def set_tenant_policy(
        self,
        tenant_id: str,
        actor: Actor | None,
        *,
        restrict_global: bool | None = None,
        restrict_full_scope: bool | None = None,
        max_lifespan_days: int | _Unset | None = UNSET,
        auto_revoke_leaked: bool | None = None,
    ) -> TenantPatPolicy:
        """Change the given settings (None, or UNSET for the lifespan, leaves one as it is)."""
        tid = self._check_tenant(tenant_id)
        changes: dict[str, Any] = {}
        values = {
            "restrictGlobal": _check_bool("restrictGlobal", restrict_global),
            "restrictFullScope": _check_bool("restrictFullScope", restrict_full_scope),
            "autoRevokeLeaked": _check_bool("autoRevokeLeaked", auto_revoke_leaked),
        }
        lifespan = UNSET if max_lifespan_days is UNSET else check_lifespan(max_lifespan_days)
        row = self._repo.find_tenant_policy(tid)
        now = self._clock.now()
        if row is None:
            row = PatTenantPolicyRow(
                tenant_id=tid,
                restrict_global=False,
                restrict_full_scope=False,
                max_lifespan_days=None,
                auto_revoke_leaked=True,
                updated_at=now,
            )
            self._repo.add(row)
        for wire, attribute in (
            ("restrictGlobal", "restrict_global"),
            ("restrictFullScope", "restrict_full_scope"),
            ("autoRevokeLeaked", "auto_revoke_leaked"),
        ):
            value = values[wire]
            if value is not None and bool(getattr(row, attribute)) != value:
                setattr(row, attribute, value)
                changes[wire] = value
        if not isinstance(lifespan, _Unset) and row.max_lifespan_days != lifespan:
            row.max_lifespan_days = lifespan
            changes["maxLifespanDays"] = lifespan
        if changes:
            row.updated_at = now
            self._audit_tenant(
                tid, actor, "Policy.Update", {"scope": TENANT, "tenantId": tid, "changed": changes}
            )
        return self.tenant_policy(tid)

    def set_org_policy(
        self,
        org: Organization,
        actor: Actor | None,
        *,
        restrict_creation: bool | None = None,
        packaging_only: bool | None = None,
    ) -> OrgPatPolicy:
        """Change the organization's "Restrict personal access token (PAT) creation" policy."""
        values = {
            "restrictCreation": _check_bool("restrictCreation", restrict_creation),
            "packagingOnly": _check_bool("packagingOnly", packaging_only),
        }
        row = self._repo.find_org_policy(org.id)
        now = self._clock.now()
        if row is None:
            row = PatOrganizationPolicyRow(
                organization_id=org.id, restrict_creation=False, packaging_only=False, updated_at=now
            )
            self._repo.add(row)
        changes: dict[str, Any] = {}
        for wire, attribute in (
            ("restrictCreation", "restrict_creation"),
            ("packagingOnly", "packaging_only"),
        ):
            value = values[wire]
            if value is not None and bool(getattr(row, attribute)) != value:
                setattr(row, attribute, value)
                changes[wire] = value
        if changes:
            row.updated_at = now
            self._audit(org, actor, "Policy.Update", {"scope": ORGANIZATION, "changed": changes})
        return self.org_policy(org.id)

    def allow(
        self,
        owner_kind: str,
        owner_id: str,
        policy: PolicyName | str,
        entry: AllowlistEntry,
        actor: Actor | None,
    ) -> None:
        """Put a user or group on a policy's allowlist. Idempotent (its display name is refreshed)."""
        name = PolicyName.parse(policy)
        owner_key = self._check_owner(owner_kind, owner_id, name)
        principal = self._check_principal(owner_kind, owner_key, entry)
        existing = self._repo.find_allowlist_entry(
            owner_kind, owner_key, name.value, principal.principal_object_id
        )
        if existing is not None:
            if principal.display_name and existing.display_name != principal.display_name:
                existing.display_name = principal.display_name
            return
        self._repo.add(
            PatPolicyAllowlistRow(
                id=new_guid(),
                owner_kind=owner_kind,
                owner_id=owner_key,
                policy=name.value,
                principal_object_id=principal.principal_object_id,
                principal_kind=principal.principal_kind,
                display_name=principal.display_name,
                created_at=self._clock.now(),
            )
        )
        self._audit_owner(
            owner_kind,
            owner_key,
            actor,
            "Policy.AllowlistAdd",
            self._entry_details(owner_kind, name, principal),
        )

    def disallow(
        self,
        owner_kind: str,
        owner_id: str,
        policy: PolicyName | str,
        principal_object_id: str,
        actor: Actor | None,
    ) -> None:
        """Take a user or group off a policy's allowlist. Idempotent: absent is no error."""
        name = PolicyName.parse(policy)
        owner_key = self._check_owner(owner_kind, owner_id, name)
        oid = parse_guid(principal_object_id) if isinstance(principal_object_id, str) else None
        if oid is None:
            raise PatPolicyError(
                PolicyErrorKind.UNKNOWN_PRINCIPAL, f"{principal_object_id!r} is not an object id (a GUID)"
            )
        existing = self._repo.find_allowlist_entry(owner_kind, owner_key, name.value, oid)
        if existing is None:
            return
        entry = AllowlistEntry.from_row(existing)
        self._repo.delete_allowlist_entry(owner_kind, owner_key, name.value, oid)
        self._audit_owner(
            owner_kind,
            owner_key,
            actor,
            "Policy.AllowlistRemove",
            self._entry_details(owner_kind, name, entry),
        )

    # --- checks ------------------------------------------------------------------------------------------

    @staticmethod
    def _check_tenant(tenant_id: str) -> str:
        tid = parse_guid(tenant_id) if isinstance(tenant_id, str) else None
        if tid is None:
            raise PatPolicyError(PolicyErrorKind.UNKNOWN_OWNER, f"tenant id {tenant_id!r} is not a GUID")
        return tid

    def _check_owner(self, owner_kind: str, owner_id: str, policy: PolicyName) -> str:
        if owner_kind not in (TENANT, ORGANIZATION):
            raise PatPolicyError(
                PolicyErrorKind.UNKNOWN_OWNER,
                f"policies belong to a tenant or an organization, not {owner_kind!r}",
            )
        if policy.owner_kind != owner_kind:
            raise PatPolicyError(
                PolicyErrorKind.UNKNOWN_POLICY,
                f"{policy.value} is a policy of the {policy.owner_kind}, not the {owner_kind}",
            )
        if owner_kind == TENANT:
            return self._check_tenant(owner_id)
        if self._repo.find_org(owner_id) is None:
            raise PatPolicyError(PolicyErrorKind.UNKNOWN_OWNER, f"no organization with id {owner_id!r}")
        return owner_id

    def _check_principal(self, owner_kind: str, owner_id: str, entry: AllowlistEntry) -> AllowlistEntry:
        if entry.principal_kind not in PRINCIPAL_KINDS:
            raise PatPolicyError(
                PolicyErrorKind.UNKNOWN_PRINCIPAL,
                f"an allowlist holds users and groups, not {entry.principal_kind!r}",
            )
        oid = parse_guid(entry.principal_object_id) if isinstance(entry.principal_object_id, str) else None
        if oid is None:
            raise PatPolicyError(
                PolicyErrorKind.UNKNOWN_PRINCIPAL,
                f"{entry.principal_object_id!r} is not an object id (a GUID)",
            )
        display_name = (entry.display_name or "")[:256]
        if self._directory is not None:
            tenant_id = owner_id if owner_kind == TENANT else self._tenant_of_org(owner_id)
            found = self._directory.find_principal_name(tenant_id, entry.principal_kind, oid)
            if found is None:
                raise PatPolicyError(
                    PolicyErrorKind.UNKNOWN_PRINCIPAL,
                    f"the tenant has no {entry.principal_kind} with object id {oid}",
                )
            display_name = display_name or found[:256]
        return AllowlistEntry(oid, entry.principal_kind, display_name)

    def _tenant_of_org(self, organization_id: str) -> str:
        row = self._repo.find_org(organization_id)
        if row is None:
            raise PatPolicyError(
                PolicyErrorKind.UNKNOWN_OWNER, f"no organization with id {organization_id!r}"
            )
        return row.tenant_id

    # --- audit -------------------------------------------------------------------------------------------

    @staticmethod
    def _entry_details(owner_kind: str, policy: PolicyName, entry: AllowlistEntry) -> dict[str, Any]:
        return {
            "scope": owner_kind,
            "policy": policy.value,
            "principalObjectId": entry.principal_object_id,
            "principalKind": entry.principal_kind,
            "displayName": entry.display_name,
        }

    def _audit(self, org: Organization, actor: Actor | None, action: str, details: dict[str, Any]) -> None:
        record_change_by(
            self._session,
            clock=self._clock,
            organization=org,
            actor=actor or LOCAL_ACTOR,
            action=action,
            details=details,
        )

    def _audit_tenant(
        self, tenant_id: str, actor: Actor | None, action: str, details: dict[str, Any]
    ) -> None:
        # A tenant policy applies to each organization of the tenant: each organization's log records it.
        for row in self._repo.list_orgs_of_tenant(tenant_id):
            self._audit(Organization(row.id, row.name, row.tenant_id), actor, action, details)

    def _audit_owner(
        self, owner_kind: str, owner_id: str, actor: Actor | None, action: str, details: dict[str, Any]
    ) -> None:
        if owner_kind == TENANT:
            self._audit_tenant(owner_id, actor, action, {**details, "tenantId": owner_id})
            return
        row = self._repo.find_org(owner_id)
        if row is not None:
            self._audit(Organization(row.id, row.name, row.tenant_id), actor, action, details)
