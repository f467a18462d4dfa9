"""Conditional Access policies and IP named locations as Microsoft Graph writes them, validated.

`from_graph` reads Graph's JSON (`conditionalAccessPolicy`, `ipNamedLocation`,
https://learn.microsoft.com/graph/api/resources/conditionalaccesspolicy) and raises `PolicyInvalid` naming the
field, the way Graph answers 400 with a message naming the property; `to_graph` writes the same shape back.
Only what Entryway evaluates is accepted: properties Entra has and Entryway does not evaluate (risk levels,
device filters, authentication strengths, terms of use, …) are accepted when empty or null and refused
otherwise, so a policy never silently means less than it says.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from entryway.kit.ids import parse_guid

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_E = TypeVar("_E", bound=StrEnum)

ALL = "All"
NONE = "None"
ALL_TRUSTED = "AllTrusted"
GUESTS_OR_EXTERNAL_USERS = "GuestsOrExternalUsers"
SERVICE_PRINCIPALS_IN_MY_TENANT = "ServicePrincipalsInMyTenant"

BLOCK = "block"
MFA = "mfa"
SUPPORTED_GRANT_CONTROLS = (BLOCK, MFA)
# Graph's other built-in controls: refused with a message saying Entryway does not evaluate them.
UNSUPPORTED_GRANT_CONTROLS = (
    "compliantDevice",
    "domainJoinedDevice",
    "approvedApplication",
    "compliantApplication",
    "passwordChange",
)

# Entra's bounds for sign-in frequency (the portal and Graph accept 1-24 hours, 1-365 days).
MAX_SIF_HOURS = 24
MAX_SIF_DAYS = 365


class PolicyState(StrEnum):
    ENABLED = "enabled"
    REPORT_ONLY = "enabledForReportingButNotEnforced"
    DISABLED = "disabled"


class ClientAppType(StrEnum):
    ALL = "all"
    BROWSER = "browser"
    MOBILE_DESKTOP = "mobileAppsAndDesktopClients"
    EXCHANGE_ACTIVE_SYNC = "exchangeActiveSync"
    OTHER = "other"


class DevicePlatform(StrEnum):
    ALL = "all"
    ANDROID = "android"
    IOS = "iOS"
    WINDOWS = "windows"
    MACOS = "macOS"
    LINUX = "linux"
    WINDOWS_PHONE = "windowsPhone"
    UNKNOWN = "unknownFutureValue"


class PolicyInvalid(ValueError):
    """A policy or named location Graph would refuse with 400; `field` is the property's path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- reading helpers --------------------------------------------------------------------------------


def _obj(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PolicyInvalid(path, "must be an object")
    return value


def _check_keys(
    data: Mapping[str, Any], path: str, known: Iterable[str], unsupported: Iterable[str] = ()
) -> None:
    """Refuse unknown properties (Graph: 'Invalid property'), and properties Entryway does not evaluate unless
    they are empty."""
    known_set = set(known)
    unsupported_set = set(unsupported)
    for key, value in data.items():
        if key.startswith("@odata."):
            continue
        if key in unsupported_set:
            if value in (None, [], {}, ""):
                continue
            raise PolicyInvalid(f"{path}.{key}" if path else key, "is not supported by Entryway")
        if key not in known_set:
            raise PolicyInvalid(f"{path}.{key}" if path else key, "is not a known property")


def _strings(data: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyInvalid(f"{path}.{key}", "must be a list of strings")
    seen: dict[str, None] = {}
    for v in value:
        seen.setdefault(v.strip(), None)
    return tuple(seen)


def _guids_or(values: tuple[str, ...], path: str, keywords: tuple[str, ...]) -> tuple[str, ...]:
    """Each value is one of `keywords` (case-insensitive, written back in Graph's casing) or a GUID."""
    by_lower = {k.lower(): k for k in keywords}
    out: list[str] = []
    for value in values:
        keyword = by_lower.get(value.lower())
        if keyword is not None:
            out.append(keyword)
            continue
        guid = parse_guid(value)
        if guid is None:
            allowed = ", ".join(f"'{k}'" for k in keywords)
            hint = f"{allowed} or an object id" if keywords else "an object id (GUID)"
            raise PolicyInvalid(path, f"'{value}' is not {hint}")
        out.append(guid)
    if len(out) > 1 and any(v in keywords for v in out):
        raise PolicyInvalid(path, f"{' / '.join(keywords)} cannot be combined with other values")
    return tuple(dict.fromkeys(out))


def _enum_values(values: tuple[str, ...], enum: type[_E], path: str) -> tuple[_E, ...]:
    by_lower = {member.value.lower(): member for member in enum}
    out: list[_E] = []
    for value in values:
        member = by_lower.get(value.lower())
        if member is None:
            allowed = ", ".join(m.value for m in enum)
            raise PolicyInvalid(path, f"'{value}' is not one of {allowed}")
        out.append(member)
    return tuple(dict.fromkeys(out))


def _display_name(data: Mapping[str, Any], path: str = "displayName") -> str:
    name = data.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise PolicyInvalid(path, "is required")
    name = name.strip()
    if len(name) > 256:
        raise PolicyInvalid(path, "is longer than 256 characters")
    return name


def _optional_id(data: Mapping[str, Any]) -> str:
    value = data.get("id")
    if value in (None, ""):
        return ""
    guid = parse_guid(value) if isinstance(value, str) else None
    if guid is None:
        raise PolicyInvalid("id", "must be a GUID")
    return guid


# --- named locations --------------------------------------------------------------------------------


def parse_ip_range(value: str, path: str = "ipRanges") -> IpNetwork:
    """A CIDR range (or a single address, taken as /32 or /128). Host bits set are refused, as Graph does."""
    try:
        network = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise PolicyInvalid(path, f"'{value}' is not a CIDR range ({exc})") from None
    if network.prefixlen == 0:
        # Entra refuses 0.0.0.0/0 and ::/0 in a named location; "All" locations are the policy's own value.
        raise PolicyInvalid(path, f"'{value}' covers every address; use the policy's 'All' location instead")
    return network


@dataclass(frozen=True)
class NamedLocation:
    id: str
    display_name: str
    is_trusted: bool
    ranges: tuple[IpNetwork, ...]

    def contains(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address.version == r.version and address in r for r in self.ranges)

    @classmethod
    def from_graph(cls, data: Any) -> NamedLocation:
        data = _obj(data, "namedLocation")
        kind = data.get("@odata.type", "#microsoft.graph.ipNamedLocation")
        if kind != "#microsoft.graph.ipNamedLocation":
            raise PolicyInvalid("@odata.type", "only #microsoft.graph.ipNamedLocation is supported")
        _check_keys(
            data, "", ("id", "displayName", "isTrusted", "ipRanges", "createdDateTime", "modifiedDateTime")
        )
        trusted = data.get("isTrusted", False)
        if not isinstance(trusted, bool):
            raise PolicyInvalid("isTrusted", "must be true or false")
        raw_ranges = data.get("ipRanges")
        if not isinstance(raw_ranges, list) or not raw_ranges:
            raise PolicyInvalid("ipRanges", "needs at least one range")
        ranges: list[IpNetwork] = []
        for i, raw in enumerate(raw_ranges):
            path = f"ipRanges[{i}]"
            item = _obj(raw, path)
            _check_keys(item, path, ("cidrAddress",))
            cidr = item.get("cidrAddress")
            if not isinstance(cidr, str):
                raise PolicyInvalid(f"{path}.cidrAddress", "is required")
            ranges.append(parse_ip_range(cidr, f"{path}.cidrAddress"))
        return cls(_optional_id(data), _display_name(data), trusted, tuple(dict.fromkeys(ranges)))

    def to_graph(self) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.ipNamedLocation",
            "id": self.id,
            "displayName": self.display_name,
            "isTrusted": self.is_trusted,
            "ipRanges": [
                {
                    "@odata.type": f"#microsoft.graph.iPv{r.version}CidrRange",
                    "cidrAddress": str(r),
                }
                for r in self.ranges
            ],
        }


# --- policies ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserCondition:
    include_users: tuple[str, ...] = ()
    exclude_users: tuple[str, ...] = ()
    include_groups: tuple[str, ...] = ()
    exclude_groups: tuple[str, ...] = ()
    include_roles: tuple[str, ...] = ()
    exclude_roles: tuple[str, ...] = ()

    @property
    def includes_anyone(self) -> bool:
        return bool([u for u in self.include_users if u != NONE] or self.include_groups or self.include_roles)

    def to_graph(self) -> dict[str, Any]:
        return {
            "includeUsers": list(self.include_users),
            "excludeUsers": list(self.exclude_users),
            "includeGroups": list(self.include_groups),
            "excludeGroups": list(self.exclude_groups),
            "includeRoles": list(self.include_roles),
            "excludeRoles": list(self.exclude_roles),
        }


@dataclass(frozen=True)
class ClientApplicationCondition:
    """Workload identities: service principals (object ids) or every one in the tenant."""

    include_service_principals: tuple[str, ...] = ()
    exclude_service_principals: tuple[str, ...] = ()

    def to_graph(self) -> dict[str, Any]:
        return {
            "includeServicePrincipals": list(self.include_service_principals),
            "excludeServicePrincipals": list(self.exclude_service_principals),
        }


@dataclass(frozen=True)
class ApplicationCondition:
    """Target resources: app ids (client ids) of the resources a token is for."""

    include_applications: tuple[str, ...] = ()
    exclude_applications: tuple[str, ...] = ()

    def to_graph(self) -> dict[str, Any]:
        return {
            "includeApplications": list(self.include_applications),
            "excludeApplications": list(self.exclude_applications),
            "includeUserActions": [],
            "includeAuthenticationContextClassReferences": [],
        }


@dataclass(frozen=True)
class LocationCondition:
    include_locations: tuple[str, ...] = ()
    exclude_locations: tuple[str, ...] = ()

    @property
    def is_plain_all(self) -> bool:
        return self.include_locations == (ALL,) and not self.exclude_locations

    def to_graph(self) -> dict[str, Any]:
        return {
            "includeLocations": list(self.include_locations),
            "excludeLocations": list(self.exclude_locations),
        }


@dataclass(frozen=True)
class PlatformCondition:
    include_platforms: tuple[DevicePlatform, ...] = ()
    exclude_platforms: tuple[DevicePlatform, ...] = ()

    def to_graph(self) -> dict[str, Any]:
        return {
            "includePlatforms": [p.value for p in self.include_platforms],
            "excludePlatforms": [p.value for p in self.exclude_platforms],
        }


@dataclass(frozen=True)
class Conditions:
    applications: ApplicationCondition
    users: UserCondition | None = None
    client_applications: ClientApplicationCondition | None = None
    locations: LocationCondition | None = None
    client_app_types: tuple[ClientAppType, ...] = (ClientAppType.ALL,)
    platforms: PlatformCondition | None = None

    def to_graph(self) -> dict[str, Any]:
        return {
            "users": (self.users or UserCondition(include_users=(NONE,))).to_graph(),
            "applications": self.applications.to_graph(),
            "clientApplications": None
            if self.client_applications is None
            else self.client_applications.to_graph(),
            "locations": None if self.locations is None else self.locations.to_graph(),
            "clientAppTypes": [t.value for t in self.client_app_types],
            "platforms": None if self.platforms is None else self.platforms.to_graph(),
            "userRiskLevels": [],
            "signInRiskLevels": [],
            "servicePrincipalRiskLevels": [],
            "devices": None,
        }


@dataclass(frozen=True)
class GrantControls:
    operator: str  # "OR" | "AND"
    built_in_controls: tuple[str, ...]

    def to_graph(self) -> dict[str, Any]:
        return {
            "operator": self.operator,
            "builtInControls": list(self.built_in_controls),
            "customAuthenticationFactors": [],
            "termsOfUse": [],
            "authenticationStrength": None,
        }


@dataclass(frozen=True)
class SignInFrequency:
    every_time: bool
    seconds: int | None  # for timeBased
    value: int | None
    type: str | None  # "hours" | "days"

    def to_graph(self) -> dict[str, Any]:
        return {
            "isEnabled": True,
            "value": self.value,
            "type": self.type,
            "frequencyInterval": "everyTime" if self.every_time else "timeBased",
            "authenticationType": "primaryAndSecondaryAuthentication",
        }


@dataclass(frozen=True)
class SessionControls:
    sign_in_frequency: SignInFrequency | None = None

    def to_graph(self) -> dict[str, Any]:
        return {
            "signInFrequency": None if self.sign_in_frequency is None else self.sign_in_frequency.to_graph(),
            "applicationEnforcedRestrictions": None,
            "cloudAppSecurity": None,
            "persistentBrowser": None,
            "disableResilienceDefaults": None,
        }


@dataclass(frozen=True)
class Policy:
    id: str
    display_name: str
    state: PolicyState
    conditions: Conditions
    grant: GrantControls | None = None
    session: SessionControls | None = None

    @property
    def is_workload(self) -> bool:
        """A workload-identity policy: assigned to service principals, never to users."""
        return self.conditions.client_applications is not None

    @property
    def referenced_locations(self) -> tuple[str, ...]:
        loc = self.conditions.locations
        if loc is None:
            return ()
        keywords = (ALL, ALL_TRUSTED)
        return tuple(v for v in (*loc.include_locations, *loc.exclude_locations) if v not in keywords)

    @classmethod
    def from_graph(cls, data: Any) -> Policy:
        data = _obj(data, "conditionalAccessPolicy")
        _check_keys(
            data,
            "",
            (
                "id",
                "displayName",
                "state",
                "conditions",
                "grantControls",
                "sessionControls",
                "createdDateTime",
                "modifiedDateTime",
                "templateId",
                "description",
            ),
        )
        name = _display_name(data)
        raw_state = data.get("state")
        if not isinstance(raw_state, str):
            raise PolicyInvalid(
                "state", "is required: enabled, enabledForReportingButNotEnforced or disabled"
            )
        state = _enum_values((raw_state,), PolicyState, "state")[0]
        if "conditions" not in data or data["conditions"] is None:
            raise PolicyInvalid("conditions", "is required")
        conditions = _conditions(_obj(data["conditions"], "conditions"))
        grant = (
            None
            if data.get("grantControls") is None
            else _grant(_obj(data["grantControls"], "grantControls"))
        )
        session = (
            None
            if data.get("sessionControls") is None
            else _session(_obj(data["sessionControls"], "sessionControls"))
        )
        if grant is None and session is None:
            raise PolicyInvalid("grantControls", "a policy needs grant controls or session controls")
        if conditions.client_applications is not None:
            # Entra: workload identity policies support only the block control.
            if grant is None or grant.built_in_controls != (BLOCK,):
                raise PolicyInvalid(
                    "grantControls.builtInControls", "a workload identity policy supports only 'block'"
                )
            if session is not None:
                raise PolicyInvalid("sessionControls", "a workload identity policy has no session controls")
            if conditions.platforms is not None or conditions.client_app_types != (ClientAppType.ALL,):
                raise PolicyInvalid(
                    "conditions", "a workload identity policy supports only the location condition"
                )
        return cls(_optional_id(data), name, state, conditions, grant, session)

    def to_graph(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "state": self.state.value,
            "conditions": self.conditions.to_graph(),
            "grantControls": None if self.grant is None else self.grant.to_graph(),
            "sessionControls": None if self.session is None else self.session.to_graph(),
        }


_UNSUPPORTED_CONDITIONS = (
    "userRiskLevels",
    "signInRiskLevels",
    "servicePrincipalRiskLevels",
    "insiderRiskLevels",
    "devices",
    "authenticationFlows",
    "deviceStates",
)


def _conditions(data: Mapping[str, Any]) -> Conditions:
    _check_keys(
        data,
        "conditions",
        ("users", "applications", "clientApplications", "locations", "clientAppTypes", "platforms"),
        _UNSUPPORTED_CONDITIONS,
    )
    if data.get("applications") is None:
        raise PolicyInvalid("conditions.applications", "is required")
    applications = _applications(_obj(data["applications"], "conditions.applications"))
    users = None if data.get("users") is None else _users(_obj(data["users"], "conditions.users"))
    client_apps = (
        None
        if data.get("clientApplications") is None
        else _client_applications(_obj(data["clientApplications"], "conditions.clientApplications"))
    )
    if client_apps is not None:
        if users is not None and users.includes_anyone:
            raise PolicyInvalid(
                "conditions.users",
                "a workload identity policy (clientApplications) cannot also include users; use includeUsers 'None'",
            )
        users = None
    elif users is None or not users.includes_anyone:
        raise PolicyInvalid("conditions.users", "include at least one user, group or role (or 'All')")
    locations = (
        None if data.get("locations") is None else _locations(_obj(data["locations"], "conditions.locations"))
    )
    raw_types = _strings(data, "clientAppTypes", "conditions")
    client_app_types = (
        _enum_values(raw_types, ClientAppType, "conditions.clientAppTypes")
        if raw_types
        else (ClientAppType.ALL,)
    )
    if ClientAppType.ALL in client_app_types and len(client_app_types) > 1:
        raise PolicyInvalid("conditions.clientAppTypes", "'all' cannot be combined with other values")
    platforms = (
        None if data.get("platforms") is None else _platforms(_obj(data["platforms"], "conditions.platforms"))
    )
    return Conditions(applications, users, client_apps, locations, client_app_types, platforms)


def _users(data: Mapping[str, Any]) -> UserCondition:
    path = "conditions.users"
    _check_keys(
        data,
        path,
        ("includeUsers", "excludeUsers", "includeGroups", "excludeGroups", "includeRoles", "excludeRoles"),
        ("includeGuestsOrExternalUsers", "excludeGuestsOrExternalUsers"),
    )
    include_keywords = (ALL, NONE, GUESTS_OR_EXTERNAL_USERS)
    return UserCondition(
        include_users=_guids_or(
            _strings(data, "includeUsers", path), f"{path}.includeUsers", include_keywords
        ),
        exclude_users=_guids_or(
            _strings(data, "excludeUsers", path), f"{path}.excludeUsers", (GUESTS_OR_EXTERNAL_USERS,)
        ),
        include_groups=_guids_or(_strings(data, "includeGroups", path), f"{path}.includeGroups", ()),
        exclude_groups=_guids_or(_strings(data, "excludeGroups", path), f"{path}.excludeGroups", ()),
        include_roles=_guids_or(_strings(data, "includeRoles", path), f"{path}.includeRoles", ()),
        exclude_roles=_guids_or(_strings(data, "excludeRoles", path), f"{path}.excludeRoles", ()),
    )


def _client_applications(data: Mapping[str, Any]) -> ClientApplicationCondition:
    path = "conditions.clientApplications"
    _check_keys(
        data, path, ("includeServicePrincipals", "excludeServicePrincipals"), ("servicePrincipalFilter",)
    )
    include = _guids_or(
        _strings(data, "includeServicePrincipals", path),
        f"{path}.includeServicePrincipals",
        (SERVICE_PRINCIPALS_IN_MY_TENANT,),
    )
    if not include:
        raise PolicyInvalid(f"{path}.includeServicePrincipals", "include at least one service principal")
    exclude = _guids_or(
        _strings(data, "excludeServicePrincipals", path), f"{path}.excludeServicePrincipals", ()
    )
    return ClientApplicationCondition(include, exclude)


def _applications(data: Mapping[str, Any]) -> ApplicationCondition:
    path = "conditions.applications"
    _check_keys(
        data,
        path,
        ("includeApplications", "excludeApplications"),
        ("includeUserActions", "includeAuthenticationContextClassReferences", "applicationFilter"),
    )
    include = _guids_or(
        _strings(data, "includeApplications", path), f"{path}.includeApplications", (ALL, NONE)
    )
    if not include:
        raise PolicyInvalid(
            f"{path}.includeApplications", "include at least one application, 'All' or 'None'"
        )
    exclude = _guids_or(_strings(data, "excludeApplications", path), f"{path}.excludeApplications", ())
    return ApplicationCondition(include, exclude)


def _locations(data: Mapping[str, Any]) -> LocationCondition:
    path = "conditions.locations"
    _check_keys(data, path, ("includeLocations", "excludeLocations"))
    include = _guids_or(
        _strings(data, "includeLocations", path), f"{path}.includeLocations", (ALL, ALL_TRUSTED)
    )
    if not include:
        raise PolicyInvalid(f"{path}.includeLocations", "include 'All', 'AllTrusted' or named location ids")
    exclude = _guids_or(_strings(data, "excludeLocations", path), f"{path}.excludeLocations", (ALL_TRUSTED,))
    return LocationCondition(include, exclude)


def _platforms(data: Mapping[str, Any]) -> PlatformCondition:
    path = "conditions.platforms"
    _check_keys(data, path, ("includePlatforms", "excludePlatforms"))
    include = _enum_values(
        _strings(data, "includePlatforms", path), DevicePlatform, f"{path}.includePlatforms"
    )
    if not include:
        raise PolicyInvalid(f"{path}.includePlatforms", "include 'all' or at least one platform")
    exclude = _enum_values(
        _strings(data, "excludePlatforms", path), DevicePlatform, f"{path}.excludePlatforms"
    )
    if DevicePlatform.ALL in exclude:
        raise PolicyInvalid(f"{path}.excludePlatforms", "'all' cannot be excluded")
    return PlatformCondition(include, exclude)


def _grant(data: Mapping[str, Any]) -> GrantControls:
    path = "grantControls"
    _check_keys(
        data,
        path,
        ("operator", "builtInControls"),
        ("customAuthenticationFactors", "termsOfUse", "authenticationStrength"),
    )
    operator = data.get("operator", "OR")
    if not isinstance(operator, str) or operator.upper() not in ("OR", "AND"):
        raise PolicyInvalid(f"{path}.operator", "must be 'OR' or 'AND'")
    controls: list[str] = []
    for value in _strings(data, "builtInControls", path):
        lowered = value.lower()
        if lowered in SUPPORTED_GRANT_CONTROLS:
            controls.append(lowered)
        elif lowered in (c.lower() for c in UNSUPPORTED_GRANT_CONTROLS):
            raise PolicyInvalid(f"{path}.builtInControls", f"'{value}' is not supported by Entryway")
        else:
            raise PolicyInvalid(f"{path}.builtInControls", f"'{value}' is not a built-in control")
    if not controls:
        raise PolicyInvalid(f"{path}.builtInControls", "name at least one control: 'block' or 'mfa'")
    if BLOCK in controls and len(controls) > 1:
        # Entra: "Block access" is exclusive of every grant control.
        raise PolicyInvalid(f"{path}.builtInControls", "'block' cannot be combined with other controls")
    return GrantControls(operator.upper(), tuple(dict.fromkeys(controls)))


def _session(data: Mapping[str, Any]) -> SessionControls:
    path = "sessionControls"
    _check_keys(
        data,
        path,
        ("signInFrequency",),
        (
            "applicationEnforcedRestrictions",
            "cloudAppSecurity",
            "persistentBrowser",
            "disableResilienceDefaults",
            "continuousAccessEvaluation",
            "secureSignInSession",
        ),
    )
    raw = data.get("signInFrequency")
    if raw is None:
        return SessionControls()
    sif_path = f"{path}.signInFrequency"
    sif = _obj(raw, sif_path)
    _check_keys(sif, sif_path, ("isEnabled", "value", "type", "frequencyInterval", "authenticationType"))
    enabled = sif.get("isEnabled", True)
    if not isinstance(enabled, bool):
        raise PolicyInvalid(f"{sif_path}.isEnabled", "must be true or false")
    if not enabled:
        return SessionControls()
    auth_type = sif.get("authenticationType", "primaryAndSecondaryAuthentication")
    if auth_type not in (None, "primaryAndSecondaryAuthentication"):
        raise PolicyInvalid(
            f"{sif_path}.authenticationType", "only 'primaryAndSecondaryAuthentication' is supported"
        )
    interval = sif.get("frequencyInterval", "timeBased")
    if interval == "everyTime":
        if sif.get("value") is not None or sif.get("type") is not None:
            raise PolicyInvalid(sif_path, "an 'everyTime' frequency has no value or type")
        return SessionControls(SignInFrequency(True, None, None, None))
    if interval != "timeBased":
        raise PolicyInvalid(f"{sif_path}.frequencyInterval", "must be 'timeBased' or 'everyTime'")
    value = sif.get("value")
    unit = sif.get("type")
    if unit not in ("hours", "days"):
        raise PolicyInvalid(f"{sif_path}.type", "must be 'hours' or 'days'")
    limit = MAX_SIF_HOURS if unit == "hours" else MAX_SIF_DAYS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise PolicyInvalid(f"{sif_path}.value", f"must be a whole number of {unit} from 1 to {limit}")
    seconds = value * (3600 if unit == "hours" else 86400)
    return SessionControls(SignInFrequency(False, seconds, value, unit))


# --- the tenant's set --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicySet:
    """A tenant's policies and named locations: what evaluation needs, and the CAE snapshot payload."""

    policies: tuple[Policy, ...] = ()
    locations: tuple[NamedLocation, ...] = ()
    _by_id: dict[str, NamedLocation] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_id.update({loc.id: loc for loc in self.locations})

    def location(self, location_id: str) -> NamedLocation | None:
        return self._by_id.get(location_id)

    def to_graph(self) -> dict[str, Any]:
        return {
            "policies": [p.to_graph() for p in self.policies],
            "namedLocations": [loc.to_graph() for loc in self.locations],
        }

    @classmethod
    def from_graph(cls, data: Any) -> PolicySet:
        data = _obj(data, "policySet")
        raw_policies = data.get("policies") or []
        raw_locations = data.get("namedLocations") or []
        if not isinstance(raw_policies, list) or not isinstance(raw_locations, list):
            raise PolicyInvalid("policySet", "policies and namedLocations must be lists")
        return cls(
            tuple(Policy.from_graph(p) for p in raw_policies),
            tuple(NamedLocation.from_graph(loc) for loc in raw_locations),
        )
