"""A tenant's `conditional_access:` in the config file: named locations and Conditional Access policies.

    conditional_access:
      named_locations:
        - {name: Office, ranges: [10.0.0.0/8, "2001:db8::/32"], trusted: true}
      policies:
        - {name: Block DevOps outside the office, state: enabled, applications: [Azure DevOps],
           locations: [All], exclude_locations: [Office], grant: block}
        - {displayName: ..., state: ..., conditions: {...}, grantControls: {...}}   # Graph JSON works too

Matched by name: an existing location or policy is brought to what the file says (its id is kept), one the
file does not name is left alone. Applied after the tenant's users, apps and groups, so a policy may name them.
Every change goes through the service, so it is validated as Graph validates it and published to CAE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from entryway.config.errors import ConfigError
from entryway.identity.directory.conditional_access import (
    ConditionalAccessError,
    ConditionalAccessService,
    location_to_graph,
    policy_to_graph,
)
from entryway.identity.directory.service import DirectoryService
from entryway.identity.policy.model import NamedLocation, Policy, PolicyInvalid
from entryway.kit.clock import Clock

if TYPE_CHECKING:
    from entryway.config.declarative import ApplyReport, _Reader


def _config_error(where: str, message: str) -> Exception:
    return ConfigError(f"{where}: {message}")


def apply_conditional_access(
    session: Session, clock: Clock, directory: DirectoryService, cfg: _Reader, *, report: ApplyReport
) -> None:
    section = cfg.raw("conditional_access")
    if section is None:
        return
    where = f"{cfg.path}.conditional_access"
    if not isinstance(section, dict):
        raise _config_error(where, "expected a mapping with named_locations and policies")
    unknown = sorted(set(map(str, section)) - {"named_locations", "policies"})
    if unknown:
        raise _config_error(where, f"unknown key(s) {', '.join(unknown)}")
    tenant = directory.find_tenant(cfg.text("id") or cfg.strings("domains")[0])
    service = ConditionalAccessService(session, clock)
    for i, item in enumerate(_items(section, "named_locations", where)):
        at = f"{where}.named_locations[{i}]"
        try:
            _apply_location(service, tenant.id, item, at, report)
        except ConditionalAccessError as exc:
            raise _config_error(at, str(exc)) from None
    for i, item in enumerate(_items(section, "policies", where)):
        at = f"{where}.policies[{i}]"
        try:
            _apply_policy(service, tenant.id, item, report)
        except ConditionalAccessError as exc:
            raise _config_error(at, str(exc)) from None


def _items(section: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    items = section.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise _config_error(f"{where}.{key}", "expected a list of mappings")
    return items


def _apply_location(
    service: ConditionalAccessService, tenant_id: str, item: dict[str, Any], at: str, report: ApplyReport
) -> None:
    unknown = sorted(set(map(str, item)) - {"name", "ranges", "trusted"})
    if unknown:
        raise _config_error(at, f"unknown key(s) {', '.join(unknown)} (name, ranges, trusted)")
    name, ranges, trusted = item.get("name"), item.get("ranges"), item.get("trusted", False)
    if not isinstance(name, str) or not name.strip():
        raise _config_error(f"{at}.name", "required")
    if isinstance(ranges, str):
        ranges = [ranges]
    if not isinstance(ranges, list) or not ranges or not all(isinstance(r, str) for r in ranges):
        raise _config_error(f"{at}.ranges", "expected a list of CIDR ranges")
    if not isinstance(trusted, bool):
        raise _config_error(f"{at}.trusted", "expected true or false")
    data = service.location_from_short_form(name, ranges, trusted)
    existing = _existing(lambda: service.find_location(tenant_id, name))
    if existing is None:
        service.create_location(tenant_id, data)
        report.note(f"named location {name}")
        return
    try:
        wanted = NamedLocation.from_graph(data)
        current = NamedLocation.from_graph(location_to_graph(existing))
    except PolicyInvalid as exc:
        raise ConditionalAccessError(str(exc), field=exc.field) from None
    if (wanted.display_name, wanted.is_trusted, wanted.ranges) != (
        current.display_name,
        current.is_trusted,
        current.ranges,
    ):
        service.update_location(tenant_id, existing.id, data)
        report.note(f"named location {name} updated")


def _apply_policy(
    service: ConditionalAccessService, tenant_id: str, item: dict[str, Any], report: ApplyReport
) -> None:
    data = service.expand_policy(tenant_id, item)
    name = data.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise ConditionalAccessError(
            "a policy needs a name (short form) or displayName (Graph JSON)", field="name"
        )
    existing = _existing(lambda: service.find_policy(tenant_id, name))
    if existing is None:
        service.create_policy(tenant_id, data)
        report.note(f"Conditional Access policy {name}")
        return
    # The file states the whole policy: compare what it means, not how it is written.
    try:
        wanted = Policy.from_graph({**data, "id": existing.id})
    except PolicyInvalid as exc:
        raise ConditionalAccessError(str(exc), field=exc.field) from None
    current = Policy.from_graph(policy_to_graph(existing))
    if wanted != current:
        replacement = wanted.to_graph()
        service.update_policy(tenant_id, existing.id, replacement)
        report.note(f"Conditional Access policy {name} updated")


def _existing(find: Any) -> Any:
    try:
        return find()
    except ConditionalAccessError as exc:
        if exc.status == 404:
            return None
        raise
