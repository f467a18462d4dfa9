"""A tenant's Conditional Access policies and IP named locations: stored in Graph's shape, validated by
`identity.policy.model`, their references checked against the directory, and every change published to the
continuous access evaluation outbox (POLICIES_CHANGED, the tenant's whole policy set) in the same
transaction. The CLI, the config file and the Graph routes all come through here. Never commits.

Also the "short form" the CLI and the config file accept instead of Graph JSON: names instead of object ids
(UPNs, group and app names, location names) and flat keys, expanded to Graph's shape here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from entryway.identity.directory.cae_outbox import CaeEventKind, publish_event
from entryway.identity.directory.groups import parse_role
from entryway.identity.directory.reads import SqlDirectory, policy_set_from_rows
from entryway.identity.directory.service import DirectoryError
from entryway.identity.policy.evaluate import SignInContext, Subject, evaluate, parse_address
from entryway.identity.policy.model import (
    ALL,
    ALL_TRUSTED,
    NONE,
    SERVICE_PRINCIPALS_IN_MY_TENANT,
    ClientAppType,
    DevicePlatform,
    NamedLocation,
    Policy,
    PolicyInvalid,
    PolicySet,
    PolicyState,
)
from entryway.kit.clock import Clock, as_utc
from entryway.kit.ids import new_guid, parse_guid
from entryway.store.models import (
    ApplicationRow,
    ConditionalAccessPolicyRow,
    GroupRow,
    IdentifierUriRow,
    NamedLocationRow,
    ServicePrincipalRow,
    UserRow,
)

# Entra's limits: 195 policies and 195 named locations per tenant (documented service limits), 2000 ranges
# per IP named location.
MAX_POLICIES = 195
MAX_NAMED_LOCATIONS = 195
MAX_RANGES = 2000

STATE_ALIASES = {
    "on": PolicyState.ENABLED,
    "enabled": PolicyState.ENABLED,
    "report-only": PolicyState.REPORT_ONLY,
    "reportonly": PolicyState.REPORT_ONLY,
    "enabledforreportingbutnotenforced": PolicyState.REPORT_ONLY,
    "off": PolicyState.DISABLED,
    "disabled": PolicyState.DISABLED,
}


class ConditionalAccessError(DirectoryError):
    """A request the policy store refuses: `status` is what Graph answers (400, 404, 409), `field` the
    property it is about, when there is one."""

    def __init__(self, message: str, *, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def parse_state(value: str) -> PolicyState:
    state = STATE_ALIASES.get(value.strip().lower())
    if state is None:
        raise ConditionalAccessError(
            f"unknown state '{value}' (enabled, report-only or disabled)", field="state"
        )
    return state


def _invalid(exc: PolicyInvalid) -> ConditionalAccessError:
    return ConditionalAccessError(str(exc), field=exc.field)


def _merge(base: Any, patch: Any) -> Any:
    """Graph's PATCH: the properties given replace the stored ones; objects merge property by property,
    lists and values are replaced whole."""
    if isinstance(base, Mapping) and isinstance(patch, Mapping):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(patch)


class ConditionalAccessService:
    def __init__(self, session: Session, clock: Clock) -> None:
        self._session = session
        self._clock = clock

    # --- reads -------------------------------------------------------------------------------------------

    def list_locations(self, tenant_id: str) -> list[NamedLocationRow]:
        return list(
            self._session.scalars(
                select(NamedLocationRow)
                .where(NamedLocationRow.tenant_id == tenant_id)
                .order_by(NamedLocationRow.created_at, NamedLocationRow.id)
            )
        )

    def list_policies(self, tenant_id: str) -> list[ConditionalAccessPolicyRow]:
        return list(
            self._session.scalars(
                select(ConditionalAccessPolicyRow)
                .where(ConditionalAccessPolicyRow.tenant_id == tenant_id)
                .order_by(ConditionalAccessPolicyRow.created_at, ConditionalAccessPolicyRow.id)
            )
        )

    def find_location(self, tenant_id: str, ref: str) -> NamedLocationRow:
        """By id, or by display name (any case)."""
        guid = parse_guid(ref.strip())
        condition = (
            NamedLocationRow.id == guid if guid else NamedLocationRow.display_name_key == ref.strip().lower()
        )
        row = self._session.scalars(
            select(NamedLocationRow).where(NamedLocationRow.tenant_id == tenant_id, condition)
        ).first()
        if row is None:
            raise ConditionalAccessError(f"no named location '{ref}' in the tenant", status=404)
        return row

    def find_policy(self, tenant_id: str, ref: str) -> ConditionalAccessPolicyRow:
        """By id, or by display name (any case)."""
        guid = parse_guid(ref.strip())
        condition = (
            ConditionalAccessPolicyRow.id == guid
            if guid
            else ConditionalAccessPolicyRow.display_name_key == ref.strip().lower()
        )
        row = self._session.scalars(
            select(ConditionalAccessPolicyRow).where(
                ConditionalAccessPolicyRow.tenant_id == tenant_id, condition
            )
        ).first()
        if row is None:
            raise ConditionalAccessError(f"no Conditional Access policy '{ref}' in the tenant", status=404)
        return row

    def policy_set(self, tenant_id: str) -> PolicySet:
        self._session.flush()
        return policy_set_from_rows(
            [_policy_row_values(r) for r in self.list_policies(tenant_id)],
            [(r.id, r.display_name, r.is_trusted, r.ip_ranges) for r in self.list_locations(tenant_id)],
        )

    # --- named locations ----------------------------------------------------------------------------------

    def create_location(self, tenant_id: str, data: Any) -> NamedLocationRow:
        try:
            location = NamedLocation.from_graph(data)
        except PolicyInvalid as exc:
            raise _invalid(exc) from None
        if len(self.list_locations(tenant_id)) >= MAX_NAMED_LOCATIONS:
            raise ConditionalAccessError(f"a tenant has at most {MAX_NAMED_LOCATIONS} named locations")
        self._check_location(tenant_id, location, None)
        now = self._clock.now()
        row = NamedLocationRow(
            id=location.id or new_guid(),
            tenant_id=tenant_id,
            display_name=location.display_name,
            display_name_key=location.display_name.lower(),
            is_trusted=location.is_trusted,
            ip_ranges=[str(r) for r in location.ranges],
            created_at=now,
            modified_at=now,
        )
        if self._session.get(NamedLocationRow, row.id) is not None:
            raise ConditionalAccessError(f"id {row.id} is taken", status=409, field="id")
        self._session.add(row)
        self._changed(tenant_id)
        return row

    def update_location(self, tenant_id: str, ref: str, patch: Any) -> NamedLocationRow:
        row = self.find_location(tenant_id, ref)
        if not isinstance(patch, Mapping):
            raise ConditionalAccessError("the body must be a JSON object")
        if "id" in patch and patch["id"] != row.id:
            raise ConditionalAccessError("id cannot be changed", field="id")
        merged = _merge(location_to_graph(row), patch)
        try:
            location = NamedLocation.from_graph(merged)
        except PolicyInvalid as exc:
            raise _invalid(exc) from None
        self._check_location(tenant_id, location, row.id)
        row.display_name = location.display_name
        row.display_name_key = location.display_name.lower()
        row.is_trusted = location.is_trusted
        row.ip_ranges = [str(r) for r in location.ranges]
        row.modified_at = self._clock.now()
        self._changed(tenant_id)
        return row

    def delete_location(self, tenant_id: str, ref: str) -> None:
        row = self.find_location(tenant_id, ref)
        users = [
            p.display_name for p in self.policy_set(tenant_id).policies if row.id in p.referenced_locations
        ]
        if users:
            # Entra refuses to delete a named location a policy still refers to.
            raise ConditionalAccessError(
                f"named location '{row.display_name}' is used by the policy '{users[0]}'", status=409
            )
        self._session.delete(row)
        self._changed(tenant_id)

    def _check_location(self, tenant_id: str, location: NamedLocation, own_id: str | None) -> None:
        if len(location.ranges) > MAX_RANGES:
            raise ConditionalAccessError(
                f"a named location has at most {MAX_RANGES} ranges", field="ipRanges"
            )
        clash = self._session.scalars(
            select(NamedLocationRow.id).where(
                NamedLocationRow.tenant_id == tenant_id,
                NamedLocationRow.display_name_key == location.display_name.lower(),
            )
        ).first()
        if clash is not None and clash != own_id:
            raise ConditionalAccessError(
                f"a named location called '{location.display_name}' exists", status=409, field="displayName"
            )

    # --- policies -------------------------------------------------------------------------------------------

    def create_policy(self, tenant_id: str, data: Any) -> ConditionalAccessPolicyRow:
        policy = self._validated(tenant_id, data, None)
        if len(self.list_policies(tenant_id)) >= MAX_POLICIES:
            raise ConditionalAccessError(f"a tenant has at most {MAX_POLICIES} Conditional Access policies")
        now = self._clock.now()
        graph = policy.to_graph()
        row = ConditionalAccessPolicyRow(
            id=policy.id or new_guid(),
            tenant_id=tenant_id,
            display_name=policy.display_name,
            display_name_key=policy.display_name.lower(),
            state=policy.state.value,
            conditions=graph["conditions"],
            grant_controls=graph["grantControls"],
            session_controls=graph["sessionControls"],
            created_at=now,
            modified_at=now,
        )
        if self._session.get(ConditionalAccessPolicyRow, row.id) is not None:
            raise ConditionalAccessError(f"id {row.id} is taken", status=409, field="id")
        self._session.add(row)
        self._changed(tenant_id)
        return row

    def update_policy(self, tenant_id: str, ref: str, patch: Any) -> ConditionalAccessPolicyRow:
        row = self.find_policy(tenant_id, ref)
        if not isinstance(patch, Mapping):
            raise ConditionalAccessError("the body must be a JSON object")
        if "id" in patch and patch["id"] != row.id:
            raise ConditionalAccessError("id cannot be changed", field="id")
        merged = _merge(policy_to_graph(row), {k: v for k, v in patch.items() if not k.endswith("DateTime")})
        policy = self._validated(tenant_id, merged, row.id)
        graph = policy.to_graph()
        row.display_name = policy.display_name
        row.display_name_key = policy.display_name.lower()
        row.state = policy.state.value
        row.conditions = graph["conditions"]
        row.grant_controls = graph["grantControls"]
        row.session_controls = graph["sessionControls"]
        row.modified_at = self._clock.now()
        self._changed(tenant_id)
        return row

    def set_state(self, tenant_id: str, ref: str, state: PolicyState) -> ConditionalAccessPolicyRow:
        return self.update_policy(tenant_id, ref, {"state": state.value})

    def delete_policy(self, tenant_id: str, ref: str) -> None:
        row = self.find_policy(tenant_id, ref)
        self._session.delete(row)
        self._changed(tenant_id)

    def _validated(self, tenant_id: str, data: Any, own_id: str | None) -> Policy:
        try:
            policy = Policy.from_graph(data)
        except PolicyInvalid as exc:
            raise _invalid(exc) from None
        clash = self._session.scalars(
            select(ConditionalAccessPolicyRow.id).where(
                ConditionalAccessPolicyRow.tenant_id == tenant_id,
                ConditionalAccessPolicyRow.display_name_key == policy.display_name.lower(),
            )
        ).first()
        if clash is not None and clash != own_id:
            raise ConditionalAccessError(
                f"a policy called '{policy.display_name}' exists", status=409, field="displayName"
            )
        self._check_references(tenant_id, policy)
        return policy

    def _check_references(self, tenant_id: str, policy: Policy) -> None:
        """Every object id a policy names exists in the tenant (Graph answers 400 naming the property)."""
        c = policy.conditions
        checks: list[tuple[str, Sequence[str], Any]] = []
        if c.users is not None:
            checks += [
                ("conditions.users.includeUsers", c.users.include_users, UserRow),
                ("conditions.users.excludeUsers", c.users.exclude_users, UserRow),
                ("conditions.users.includeGroups", c.users.include_groups, GroupRow),
                ("conditions.users.excludeGroups", c.users.exclude_groups, GroupRow),
            ]
        if c.client_applications is not None:
            sps = "conditions.clientApplications"
            checks += [
                (
                    f"{sps}.includeServicePrincipals",
                    c.client_applications.include_service_principals,
                    ServicePrincipalRow,
                ),
                (
                    f"{sps}.excludeServicePrincipals",
                    c.client_applications.exclude_service_principals,
                    ServicePrincipalRow,
                ),
            ]
        for path, ids, model in checks:
            # Keywords (All, None, GuestsOrExternalUsers, ServicePrincipalsInMyTenant) are not GUIDs.
            for object_id in filter(parse_guid, ids):
                found = self._session.scalars(
                    select(model.object_id).where(model.object_id == object_id, model.tenant_id == tenant_id)
                ).first()
                if found is None:
                    raise ConditionalAccessError(f"{path}: no object {object_id} in the tenant", field=path)
        self._check_applications_and_locations(tenant_id, policy)

    def _check_applications_and_locations(self, tenant_id: str, policy: Policy) -> None:
        c = policy.conditions
        for path, app_ids in (
            ("conditions.applications.includeApplications", c.applications.include_applications),
            ("conditions.applications.excludeApplications", c.applications.exclude_applications),
        ):
            for app_id in filter(parse_guid, app_ids):
                found = self._session.scalars(
                    select(ServicePrincipalRow.object_id).where(
                        ServicePrincipalRow.app_id == app_id, ServicePrincipalRow.tenant_id == tenant_id
                    )
                ).first()
                if found is None:
                    raise ConditionalAccessError(
                        f"{path}: no application {app_id} in the tenant (name an app id)", field=path
                    )
        for value in policy.referenced_locations:
            found = self._session.scalars(
                select(NamedLocationRow.id).where(
                    NamedLocationRow.id == value, NamedLocationRow.tenant_id == tenant_id
                )
            ).first()
            if found is None:
                raise ConditionalAccessError(
                    f"conditions.locations: no named location {value} in the tenant",
                    field="conditions.locations",
                )

    def _changed(self, tenant_id: str) -> None:
        """Tell resource services (CAE): the tenant's whole policy set, in this transaction."""
        payload = self.policy_set(tenant_id).to_graph()
        publish_event(
            self._session,
            tenant_id=tenant_id,
            kind=CaeEventKind.POLICIES_CHANGED,
            at=self._clock.now(),
            payload=payload,
        )

    # --- what-if ----------------------------------------------------------------------------------------

    def what_if(
        self,
        tenant_id: str,
        *,
        user: str | None,
        service_principal: str | None,
        app: str,
        ip: str,
        client_app_type: str = "browser",
        platform: str = "unknownFutureValue",
        mfa_done: bool = False,
    ) -> dict[str, Any]:
        """Entra's what-if tool: every policy's outcome for a sign-in described by names, with the reasons,
        and the overall decision of the enabled ones. The sign-in is taken as happening now, with fresh
        credentials (sign-in frequency is met)."""
        if (user is None) == (service_principal is None):
            raise ConditionalAccessError("name exactly one of a user (--user) or a service principal")
        names = ShortForm(self._session, tenant_id)
        directory = SqlDirectory(self._session.connection())
        if user is not None:
            found = directory.find_user_by_upn(user)
            if found is None or found.tenant_id != tenant_id:
                raise ConditionalAccessError(f"no user '{user}' in the tenant", status=404)
            memberships = directory.find_memberships(tenant_id, found.object_id)
            subject = Subject(
                "user", found.object_id, memberships.groups, memberships.roles, found.user_principal_name
            )
        else:
            assert service_principal is not None
            sp_id = names.service_principal(service_principal)
            subject = Subject("servicePrincipal", sp_id, display=service_principal)
        resource = names.application(app)
        try:
            app_type = ClientAppType(client_app_type)
            device = DevicePlatform(platform)
        except ValueError as exc:
            raise ConditionalAccessError(str(exc)) from None
        if parse_address(ip) is None:
            raise ConditionalAccessError(f"'{ip}' is not an IP address", field="ip")
        if app_type is ClientAppType.ALL or device is DevicePlatform.ALL:
            raise ConditionalAccessError("a sign-in has one client app type and one platform, not 'all'")
        now = self._clock.timestamp()
        ctx = SignInContext(
            resource_app_id=resource,
            client_app_id="",
            ip=ip,
            client_app_type=app_type,
            platform=device,
            interactive=True,
            amr=("pwd", "mfa") if mfa_done else ("pwd",),
            auth_time=now,
            now=now,
        )
        policies = self.policy_set(tenant_id)
        decision = evaluate(policies, subject, ctx)
        states = {p.id: p.state.value for p in policies.policies}
        if decision.block:
            overall = "blocked"
        elif decision.mfa_required:
            overall = "mfa required"
        elif decision.reauthenticate:
            overall = "sign in again"
        else:
            overall = "allowed"
        return {
            "policies": [
                {
                    **o.to_graph(),
                    "state": states.get(o.policy_id, ""),
                    "applies": o.applied,
                    "reasons": list(o.reasons),
                }
                for o in decision.outcomes
            ],
            "decision": {
                "outcome": overall,
                "block": decision.block,
                "mfaRequired": decision.mfa_required,
                "reauthenticate": decision.reauthenticate,
                "conditionalAccessStatus": decision.status,
            },
        }

    # --- the short form -------------------------------------------------------------------------------

    def expand_policy(
        self, tenant_id: str, data: Mapping[str, Any], *, partial: bool = False
    ) -> dict[str, Any]:
        """Graph JSON as it is; the short form (names, flat keys) expanded to it. With `partial`, only the
        keys given (a PATCH)."""
        if (
            "conditions" in data
            or "displayName" in data
            or "grantControls" in data
            or "sessionControls" in data
        ):
            return dict(data)
        return ShortForm(self._session, tenant_id).expand(data, partial=partial)

    def location_from_short_form(
        self, name: str, ranges: Sequence[str], trusted: bool, *, location_id: str | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.ipNamedLocation",
            "displayName": name,
            "isTrusted": trusted,
            "ipRanges": [{"cidrAddress": r} for r in ranges],
        }
        if location_id:
            data["id"] = location_id
        return data


SHORT_KEYS = {
    "name": "displayName",
    "state": "state",
    "users": "",
    "exclude_users": "",
    "groups": "",
    "exclude_groups": "",
    "roles": "",
    "exclude_roles": "",
    "service_principals": "",
    "exclude_service_principals": "",
    "applications": "",
    "exclude_applications": "",
    "locations": "",
    "exclude_locations": "",
    "client_app_types": "",
    "platforms": "",
    "exclude_platforms": "",
    "grant": "",
    "sign_in_frequency": "",
    "id": "id",
}
_SIF = re.compile(r"^\s*(\d+)\s*(h|hours?|d|days?)\s*$", re.IGNORECASE)


class ShortForm:
    """The short form of a policy, resolved against one tenant's directory:

    name: Block DevOps outside the office
    state: enabled | report-only | disabled
    users: [All | UPN | object id]          exclude_users, groups / exclude_groups (names),
    roles: [role name | template id]         exclude_roles
    service_principals: [All | app name | app id | object id]   (a workload identity policy)
    applications: [All | None | app name | app id | identifier URI]   exclude_applications
    locations: [All | AllTrusted | location name]   exclude_locations
    client_app_types: [browser, mobileAppsAndDesktopClients, ...]
    platforms: [all | android | iOS | windows | macOS | linux]   exclude_platforms
    grant: block | mfa          sign_in_frequency: 8h | 1d | every_time
    """

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def expand(self, data: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
        unknown = sorted(set(map(str, data)) - set(SHORT_KEYS))
        if unknown:
            raise ConditionalAccessError(
                f"unknown key(s) {', '.join(unknown)} (the short form has: {', '.join(SHORT_KEYS)})",
                field=unknown[0],
            )
        out: dict[str, Any] = {}
        if "id" in data:
            out["id"] = data["id"]
        if "name" in data:
            out["displayName"] = self._text(data, "name")
        if "state" in data or not partial:
            out["state"] = parse_state(self._text(data, "state") if "state" in data else "enabled").value
        conditions = {
            **self._assignments(data, partial),
            **self._applications(data, partial),
            **self._other_conditions(data, partial),
        }
        if conditions:
            out["conditions"] = conditions
        if "grant" in data:
            grant = self._list(data, "grant")
            out["grantControls"] = {"operator": "OR", "builtInControls": grant} if grant else None
        if "sign_in_frequency" in data:
            out["sessionControls"] = {"signInFrequency": self._sif(data["sign_in_frequency"])}
        return out

    def _assignments(self, data: Mapping[str, Any], partial: bool) -> dict[str, Any]:
        conditions: dict[str, Any] = {}
        workload = "service_principals" in data
        if workload:
            conditions["clientApplications"] = {
                "includeServicePrincipals": [self._sp(v) for v in self._list(data, "service_principals")],
                "excludeServicePrincipals": [
                    self._sp(v) for v in self._list(data, "exclude_service_principals")
                ],
            }
            conditions["users"] = {"includeUsers": [NONE]}
        users: dict[str, Any] = {}
        for key, graph_key, resolve in (
            ("users", "includeUsers", self._user),
            ("exclude_users", "excludeUsers", self._user),
            ("groups", "includeGroups", self._group),
            ("exclude_groups", "excludeGroups", self._group),
            ("roles", "includeRoles", self._role),
            ("exclude_roles", "excludeRoles", self._role),
        ):
            if key in data:
                users[graph_key] = [resolve(v) for v in self._list(data, key)]
        if users and workload:
            raise ConditionalAccessError("a policy for service principals names no users", field="users")
        if (
            not workload
            and not partial
            and not {"includeUsers", "includeGroups", "includeRoles"} & set(users)
        ):
            users["includeUsers"] = [ALL]  # only exclusions given (or nothing): everyone else
        if users:
            conditions["users"] = users
        return conditions

    def _applications(self, data: Mapping[str, Any], partial: bool) -> dict[str, Any]:
        apps: dict[str, Any] = {}
        if "applications" in data:
            apps["includeApplications"] = [self._app(v) for v in self._list(data, "applications")]
        elif not partial:
            apps["includeApplications"] = [ALL]
        if "exclude_applications" in data:
            apps["excludeApplications"] = [self._app(v) for v in self._list(data, "exclude_applications")]
        return {"applications": apps} if apps else {}

    def _other_conditions(self, data: Mapping[str, Any], partial: bool) -> dict[str, Any]:
        conditions: dict[str, Any] = {}
        locations: dict[str, Any] = {}
        if "locations" in data:
            locations["includeLocations"] = [self._location(v) for v in self._list(data, "locations")]
        if "exclude_locations" in data:
            locations["excludeLocations"] = [self._location(v) for v in self._list(data, "exclude_locations")]
            if "includeLocations" not in locations and not partial:
                locations["includeLocations"] = [ALL]
        if locations:
            conditions["locations"] = locations
        if "client_app_types" in data:
            conditions["clientAppTypes"] = self._list(data, "client_app_types")
        platforms: dict[str, Any] = {}
        if "platforms" in data:
            platforms["includePlatforms"] = self._list(data, "platforms")
        if "exclude_platforms" in data:
            platforms["excludePlatforms"] = self._list(data, "exclude_platforms")
            if not partial:
                platforms.setdefault("includePlatforms", ["all"])
        if platforms:
            conditions["platforms"] = platforms
        return conditions

    @staticmethod
    def _text(data: Mapping[str, Any], key: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConditionalAccessError(f"{key}: expected a non-empty string", field=key)
        return value.strip()

    @staticmethod
    def _list(data: Mapping[str, Any], key: str) -> list[str]:
        value = data.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConditionalAccessError(f"{key}: expected a list of strings", field=key)
        return [v.strip() for v in value]

    def _user(self, ref: str) -> str:
        if ref.lower() in ("all", "none"):
            return ref.capitalize()
        guid = parse_guid(ref)
        condition = UserRow.object_id == guid if guid else UserRow.user_principal_name == ref.lower()
        found = self._session.scalars(
            select(UserRow.object_id).where(UserRow.tenant_id == self._tenant_id, condition)
        ).first()
        if found is None:
            raise ConditionalAccessError(f"users: no user '{ref}' in the tenant", field="users")
        return found

    def _group(self, ref: str) -> str:
        guid = parse_guid(ref)
        condition = GroupRow.object_id == guid if guid else GroupRow.display_name_key == ref.lower()
        found = self._session.scalars(
            select(GroupRow.object_id).where(GroupRow.tenant_id == self._tenant_id, condition)
        ).first()
        if found is None:
            raise ConditionalAccessError(f"groups: no group '{ref}' in the tenant", field="groups")
        return found

    @staticmethod
    def _role(ref: str) -> str:
        try:
            return parse_role(ref)
        except DirectoryError as exc:
            raise ConditionalAccessError(f"roles: {exc}", field="roles") from None

    def _app_row(self, ref: str) -> ApplicationRow | None:
        guid = parse_guid(ref)
        if guid is not None:
            return self._session.scalars(select(ApplicationRow).where(ApplicationRow.app_id == guid)).first()
        uri = self._session.get(IdentifierUriRow, ref.lower())
        if uri is not None:
            return self._session.get(ApplicationRow, uri.application_object_id)
        return self._session.scalars(
            select(ApplicationRow).where(
                (ApplicationRow.tenant_id == self._tenant_id) | ApplicationRow.tenant_id.is_(None),
                ApplicationRow.display_name == ref,
            )
        ).first()

    def application(self, ref: str) -> str:
        """A target resource's app id, from its app id, name or identifier URI."""
        if ref.lower() in ("all", "none"):
            raise ConditionalAccessError("name one application", field="app")
        return self._app(ref)

    def service_principal(self, ref: str) -> str:
        """A service principal's object id, from it, its app id or its app's name."""
        if ref.lower() in ("all", SERVICE_PRINCIPALS_IN_MY_TENANT.lower()):
            raise ConditionalAccessError("name one service principal", field="service_principal")
        return self._sp(ref)

    def _app(self, ref: str) -> str:
        if ref.lower() in ("all", "none"):
            return ref.capitalize()
        app = self._app_row(ref)
        if app is not None:
            sp = self._session.scalars(
                select(ServicePrincipalRow.object_id).where(
                    ServicePrincipalRow.tenant_id == self._tenant_id, ServicePrincipalRow.app_id == app.app_id
                )
            ).first()
            if sp is not None:
                return app.app_id
        raise ConditionalAccessError(
            f"applications: no application '{ref}' in the tenant", field="applications"
        )

    def _sp(self, ref: str) -> str:
        if ref.lower() in ("all", SERVICE_PRINCIPALS_IN_MY_TENANT.lower()):
            return SERVICE_PRINCIPALS_IN_MY_TENANT
        guid = parse_guid(ref)
        if guid is not None:
            by_object = self._session.scalars(
                select(ServicePrincipalRow.object_id).where(
                    ServicePrincipalRow.tenant_id == self._tenant_id, ServicePrincipalRow.object_id == guid
                )
            ).first()
            if by_object is not None:
                return by_object
        app = self._app_row(ref)
        if app is not None:
            sp = self._session.scalars(
                select(ServicePrincipalRow.object_id).where(
                    ServicePrincipalRow.tenant_id == self._tenant_id, ServicePrincipalRow.app_id == app.app_id
                )
            ).first()
            if sp is not None:
                return sp
        raise ConditionalAccessError(
            f"service_principals: no service principal '{ref}' in the tenant", field="service_principals"
        )

    def _location(self, ref: str) -> str:
        if ref.lower() == "all":
            return ALL
        if ref.lower() == "alltrusted":
            return ALL_TRUSTED
        guid = parse_guid(ref)
        condition = NamedLocationRow.id == guid if guid else NamedLocationRow.display_name_key == ref.lower()
        found = self._session.scalars(
            select(NamedLocationRow.id).where(NamedLocationRow.tenant_id == self._tenant_id, condition)
        ).first()
        if found is None:
            raise ConditionalAccessError(
                f"locations: no named location '{ref}' in the tenant", field="locations"
            )
        return found

    @staticmethod
    def _sif(value: Any) -> dict[str, Any] | None:
        if value is None or value is False or (isinstance(value, str) and value.lower() in ("off", "none")):
            return None
        if isinstance(value, str) and value.strip().lower().replace("-", "_") in ("every_time", "everytime"):
            return {"isEnabled": True, "frequencyInterval": "everyTime"}
        match = _SIF.match(value) if isinstance(value, str) else None
        if match is None:
            raise ConditionalAccessError(
                f"sign_in_frequency: '{value}' is not like 8h, 1d or every_time", field="sign_in_frequency"
            )
        unit = "hours" if match.group(2).lower().startswith("h") else "days"
        return {
            "isEnabled": True,
            "value": int(match.group(1)),
            "type": unit,
            "frequencyInterval": "timeBased",
        }


# --- Graph rendering -------------------------------------------------------------------------------------


def _graph_time(value: datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _policy_row_values(row: ConditionalAccessPolicyRow) -> tuple[Any, ...]:
    return (row.id, row.display_name, row.state, row.conditions, row.grant_controls, row.session_controls)


def policy_to_graph(row: ConditionalAccessPolicyRow) -> dict[str, Any]:
    """Graph's conditionalAccessPolicy, with its timestamps."""
    return {
        "id": row.id,
        "templateId": None,
        "displayName": row.display_name,
        "createdDateTime": _graph_time(row.created_at),
        "modifiedDateTime": _graph_time(row.modified_at),
        "state": row.state,
        "conditions": row.conditions,
        "grantControls": row.grant_controls,
        "sessionControls": row.session_controls,
    }


def location_to_graph(row: NamedLocationRow) -> dict[str, Any]:
    """Graph's ipNamedLocation, with its timestamps."""
    graph = NamedLocation(row.id, row.display_name, row.is_trusted, ()).to_graph()
    graph["ipRanges"] = [
        {"@odata.type": f"#microsoft.graph.iPv{'6' if ':' in r else '4'}CidrRange", "cidrAddress": r}
        for r in row.ip_ranges or []
    ]
    graph["createdDateTime"] = _graph_time(row.created_at)
    graph["modifiedDateTime"] = _graph_time(row.modified_at)
    return graph
