"""The config file's groups, users' directory roles, and PAT policies (docs/config.md, docs/pat-policies.md).

Under a tenant:

    groups:
      - name: Release Engineers
        members: [{user: ada@contoso.test}, {app: build-bot}, {group: Platform}]
    users:
      - upn: ada@contoso.test
        roles: ["Azure DevOps Administrator"]
    pat_policies:
      restrict_global: true
      restrict_full_scope: true
      max_lifespan_days: 90          # 0: no maximum
      auto_revoke_leaked: true
      allowlists:
        restrict_global: [{group: Release Engineers}]
        restrict_full_scope: [{user: ada@contoso.test}]
        max_lifespan: []

Under an organization:

    pat_policies:
      restrict_creation: true
      packaging_only: true
      allowlist: [{user: ada@contoso.test}, {group: Release Engineers}]

Like the rest of the file, it adds and never takes away: groups, members, roles and allowlist entries that
exist are matched; settings the file gives are set, the others left as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from entryway.config.errors import ConfigError
from entryway.devops.audit.recorder import Actor
from entryway.devops.orgs.service import Organization
from entryway.devops.pats.policy import (
    GROUP,
    ORGANIZATION,
    TENANT,
    UNSET,
    USER,
    AllowlistEntry,
    PatPolicyError,
    PatPolicyService,
    PolicyName,
)
from entryway.identity.directory.groups import DirectoryPrincipals, GroupService, role_name
from entryway.identity.directory.service import DirectoryError, DirectoryService
from entryway.kit.clock import Clock
from entryway.store.models import TenantRow

if TYPE_CHECKING:
    from entryway.config.declarative import ApplyReport, _Reader

TENANT_POLICY_KEYS = {
    "restrict_global",
    "restrict_full_scope",
    "max_lifespan_days",
    "auto_revoke_leaked",
    "allowlists",
}
ALLOWLIST_KEYS = {
    "restrict_global": PolicyName.RESTRICT_GLOBAL,
    "restrict_full_scope": PolicyName.RESTRICT_FULL_SCOPE,
    "max_lifespan": PolicyName.MAX_LIFESPAN,
}


@contextmanager
def _at(cfg: _Reader) -> Iterator[None]:
    try:
        yield
    except (DirectoryError, PatPolicyError) as exc:
        raise ConfigError(f"{cfg.path}: {exc}") from exc


def _section(cfg: _Reader, key: str) -> _Reader:
    """The mapping under `key`, read with its path."""
    from entryway.config.declarative import _Reader

    return _Reader(cfg.raw(key), f"{cfg.path}.{key}", cfg.base_dir)


def apply_tenant_extras(
    session: Session,
    clock: Clock,
    directory: DirectoryService,
    cfg: _Reader,
    *,
    report: ApplyReport,
    actor: Actor,
) -> None:
    """A tenant's `groups`, its users' `roles` and its `pat_policies` (after its users and apps exist)."""
    domains = cfg.strings("domains")
    tenant = directory.find_tenant(cfg.text("id") or domains[0])
    groups = GroupService(session, clock)
    _apply_groups(groups, tenant, cfg, report)
    for user_cfg in cfg.items("users"):
        roles = user_cfg.strings("roles")
        if not roles:
            continue
        with _at(user_cfg):
            user = directory.get_user(user_cfg.text("upn", required=True) or "")
            for template in groups.ensure_roles(tenant, user, roles):
                report.note(f"role {role_name(template)} for {user.user_principal_name}")
    if cfg.given("pat_policies"):
        _apply_tenant_policies(
            session,
            clock,
            directory,
            groups,
            tenant,
            cfg=_section(cfg, "pat_policies"),
            report=report,
            actor=actor,
        )


def _apply_groups(groups: GroupService, tenant: TenantRow, cfg: _Reader, report: ApplyReport) -> None:
    declared = []
    for group_cfg in cfg.items("groups"):
        group_cfg.check_keys({"name", "members"})
        name = group_cfg.text("name", required=True) or ""
        with _at(group_cfg):
            if groups.find_group_or_none(tenant, name) is None:
                groups.create_group(tenant, name)
                report.note(f"group {name}")
        declared.append((name, group_cfg))
    # Members once every group exists: a group may name one declared after it.
    for name, group_cfg in declared:
        for member_cfg in group_cfg.items("members"):
            member_cfg.check_keys({"user", "app", "group"})
            with _at(member_cfg):
                member = groups.resolve_member(
                    tenant,
                    user=member_cfg.text("user"),
                    app=member_cfg.text("app"),
                    group=member_cfg.text("group"),
                )
                if groups.add_member(tenant, name, member):
                    report.note(f"member {member.name} of group {name}")


def _entry(
    directory: DirectoryService, groups: GroupService, tenant: TenantRow, cfg: _Reader
) -> AllowlistEntry:
    cfg.check_keys({"user", "group"})
    upn, group = cfg.text("user"), cfg.text("group")
    if (upn is None) == (group is None):
        raise ConfigError(f"{cfg.path}: give exactly one of 'user' or 'group'")
    with _at(cfg):
        if upn is not None:
            user = directory.get_user(upn)
            if user.tenant_id != tenant.id:
                raise DirectoryError(f"user '{upn}' is not in tenant {tenant.id}")
            return AllowlistEntry(user.object_id, USER, user.display_name)
        assert group is not None
        found = groups.find_group(tenant, group)
        return AllowlistEntry(found.object_id, GROUP, found.display_name)


def _apply_tenant_policies(
    session: Session,
    clock: Clock,
    directory: DirectoryService,
    groups: GroupService,
    tenant: TenantRow,
    *,
    cfg: _Reader,
    report: ApplyReport,
    actor: Actor,
) -> None:
    cfg.check_keys(TENANT_POLICY_KEYS)
    policies = PatPolicyService(session, clock, directory=DirectoryPrincipals(session))
    lifespan = cfg.number("max_lifespan_days")
    before = policies.tenant_policy(tenant.id)
    with _at(cfg):
        after = policies.set_tenant_policy(
            tenant.id,
            actor,
            restrict_global=cfg.boolean("restrict_global"),
            restrict_full_scope=cfg.boolean("restrict_full_scope"),
            max_lifespan_days=UNSET if lifespan is None else (None if lifespan == 0 else lifespan),
            auto_revoke_leaked=cfg.boolean("auto_revoke_leaked"),
        )
    if (
        before.restrict_global,
        before.restrict_full_scope,
        before.max_lifespan_days,
        before.auto_revoke_leaked,
    ) != (
        after.restrict_global,
        after.restrict_full_scope,
        after.max_lifespan_days,
        after.auto_revoke_leaked,
    ):
        report.note(f"PAT policies of tenant {tenant.id}")
    if not cfg.given("allowlists"):
        return
    lists = _section(cfg, "allowlists")
    lists.check_keys(set(ALLOWLIST_KEYS))
    for key, policy in ALLOWLIST_KEYS.items():
        for entry_cfg in lists.items(key):
            entry = _entry(directory, groups, tenant, entry_cfg)
            if any(e.principal_object_id == entry.principal_object_id for e in before.allowlist(policy)):
                continue
            with _at(entry_cfg):
                policies.allow(TENANT, tenant.id, policy, entry, actor)
            report.note(f"{entry.display_name} on the {policy.value} allowlist of tenant {tenant.id}")


def apply_org_pat_policies(
    session: Session,
    clock: Clock,
    directory: DirectoryService,
    org: Organization,
    cfg: _Reader,
    *,
    report: ApplyReport,
    actor: Actor,
) -> None:
    """An organization's `pat_policies` (restrict_creation, packaging_only, allowlist)."""
    if not cfg.given("pat_policies"):
        return
    section = _section(cfg, "pat_policies")
    section.check_keys({"restrict_creation", "packaging_only", "allowlist"})
    policies = PatPolicyService(session, clock, directory=DirectoryPrincipals(session))
    before = policies.org_policy(org.id)
    with _at(section):
        after = policies.set_org_policy(
            org,
            actor,
            restrict_creation=section.boolean("restrict_creation"),
            packaging_only=section.boolean("packaging_only"),
        )
    if (before.restrict_creation, before.packaging_only) != (after.restrict_creation, after.packaging_only):
        report.note(f"PAT creation policy of {org.name}")
    tenant = directory.find_tenant(org.tenant_id)
    groups = GroupService(session, clock)
    for entry_cfg in section.items("allowlist"):
        entry = _entry(directory, groups, tenant, entry_cfg)
        if any(e.principal_object_id == entry.principal_object_id for e in before.allowlist):
            continue
        with _at(entry_cfg):
            policies.allow(ORGANIZATION, org.id, PolicyName.RESTRICT_CREATION, entry, actor)
        report.note(f"{entry.display_name} on the restrictCreation allowlist of {org.name}")
