"""identity.policy.model: Graph's conditionalAccessPolicy and ipNamedLocation, read, validated and written."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from entryway.identity.policy.model import NamedLocation, Policy, PolicyInvalid, PolicySet, PolicyState

GRAPH_POLICY: dict[str, Any] = {
    "id": "99999999-9999-9999-9999-999999999999",
    "displayName": "Block DevOps outside the office",
    "state": "enabled",
    "conditions": {
        "users": {"includeUsers": ["All"], "excludeUsers": [], "includeGroups": [], "excludeGroups": []},
        "applications": {"includeApplications": ["499b84ac-1321-427f-aa17-267ca6975798"]},
        "locations": {
            "includeLocations": ["All"],
            "excludeLocations": ["AllTrusted"],
        },
        "clientAppTypes": ["all"],
        "userRiskLevels": [],
        "signInRiskLevels": [],
        "devices": None,
    },
    "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    "sessionControls": None,
}


def test_policy_round_trips_through_graph() -> None:
    p = Policy.from_graph(GRAPH_POLICY)
    assert p.state is PolicyState.ENABLED
    again = Policy.from_graph(p.to_graph())
    assert again == p
    graph = p.to_graph()
    assert graph["conditions"]["locations"] == {
        "includeLocations": ["All"],
        "excludeLocations": ["AllTrusted"],
    }
    assert graph["grantControls"]["builtInControls"] == ["block"]


def test_named_location_round_trips() -> None:
    loc = NamedLocation.from_graph(
        {
            "@odata.type": "#microsoft.graph.ipNamedLocation",
            "displayName": "Office",
            "isTrusted": True,
            "ipRanges": [
                {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "10.0.0.0/8"},
                {"@odata.type": "#microsoft.graph.iPv6CidrRange", "cidrAddress": "2001:db8::/32"},
            ],
        }
    )
    assert loc.id == ""
    assert NamedLocation.from_graph(loc.to_graph()) == loc
    assert loc.to_graph()["ipRanges"][1] == {
        "@odata.type": "#microsoft.graph.iPv6CidrRange",
        "cidrAddress": "2001:db8::/32",
    }


def test_policy_set_round_trips() -> None:
    workload = {
        "displayName": "Workloads from the office only",
        "state": "enabledForReportingButNotEnforced",
        "conditions": {
            "clientApplications": {"includeServicePrincipals": ["ServicePrincipalsInMyTenant"]},
            "users": {"includeUsers": ["None"]},
            "applications": {"includeApplications": ["All"]},
            "locations": {"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }
    sif = {
        "displayName": "Sign in daily",
        "state": "disabled",
        "conditions": {
            "users": {"includeRoles": ["62e90394-69f5-4237-9190-012177145e10"]},
            "applications": {"includeApplications": ["All"]},
        },
        "sessionControls": {
            "signInFrequency": {
                "isEnabled": True,
                "value": 1,
                "type": "days",
                "frequencyInterval": "timeBased",
            }
        },
    }
    policies = PolicySet(tuple(Policy.from_graph(p) for p in (GRAPH_POLICY, workload, sif)))
    assert PolicySet.from_graph(policies.to_graph()) == policies
    assert policies.policies[1].is_workload


def _with(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(GRAPH_POLICY)
    *parents, last = path.split(".")
    target = data
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("displayName", "", "displayName"),
        ("displayName", _DELETE, "displayName"),
        ("displayName", "x" * 257, "displayName"),
        ("state", "on", "state"),
        ("state", _DELETE, "state"),
        ("conditions", _DELETE, "conditions"),
        ("conditions", "all", "conditions"),
        ("conditions.applications", _DELETE, "conditions.applications"),
        (
            "conditions.applications",
            {"includeApplications": []},
            "conditions.applications.includeApplications",
        ),
        (
            "conditions.applications",
            {"includeApplications": ["devops"]},
            "conditions.applications.includeApplications",
        ),
        (
            "conditions.applications",
            {"includeApplications": ["All", "499b84ac-1321-427f-aa17-267ca6975798"]},
            "conditions.applications.includeApplications",
        ),
        ("conditions.users", {"includeUsers": ["alice@contoso.test"]}, "conditions.users.includeUsers"),
        ("conditions.users", {"includeUsers": []}, "conditions.users"),
        ("conditions.users", {"includeUsers": ["None"]}, "conditions.users"),
        ("conditions.users", {"includeUsers": "All"}, "conditions.users.includeUsers"),
        (
            "conditions.users",
            {"includeUsers": ["All"], "favouriteColour": "red"},
            "conditions.users.favouriteColour",
        ),
        ("conditions.locations", {"includeLocations": ["Office"]}, "conditions.locations.includeLocations"),
        ("conditions.locations", {"includeLocations": []}, "conditions.locations.includeLocations"),
        ("conditions.clientAppTypes", ["browser", "fax"], "conditions.clientAppTypes"),
        ("conditions.clientAppTypes", ["all", "browser"], "conditions.clientAppTypes"),
        ("conditions.platforms", {"includePlatforms": ["amiga"]}, "conditions.platforms.includePlatforms"),
        ("conditions.platforms", {"includePlatforms": []}, "conditions.platforms.includePlatforms"),
        (
            "conditions.platforms",
            {"includePlatforms": ["all"], "excludePlatforms": ["all"]},
            "conditions.platforms.excludePlatforms",
        ),
        ("conditions.userRiskLevels", ["high"], "conditions.userRiskLevels"),
        ("conditions.wibble", 1, "conditions.wibble"),
        ("grantControls", _DELETE, "grantControls"),
        ("grantControls", {"operator": "XOR", "builtInControls": ["mfa"]}, "grantControls.operator"),
        ("grantControls", {"operator": "OR", "builtInControls": []}, "grantControls.builtInControls"),
        (
            "grantControls",
            {"operator": "OR", "builtInControls": ["compliantDevice"]},
            "grantControls.builtInControls",
        ),
        ("grantControls", {"operator": "OR", "builtInControls": ["magic"]}, "grantControls.builtInControls"),
        (
            "grantControls",
            {"operator": "OR", "builtInControls": ["block", "mfa"]},
            "grantControls.builtInControls",
        ),
        (
            "grantControls",
            {"operator": "OR", "builtInControls": ["mfa"], "termsOfUse": ["x"]},
            "grantControls.termsOfUse",
        ),
        (
            "sessionControls",
            {"signInFrequency": {"isEnabled": True, "value": 25, "type": "hours"}},
            "sessionControls.signInFrequency.value",
        ),
        (
            "sessionControls",
            {"signInFrequency": {"isEnabled": True, "value": 0, "type": "days"}},
            "sessionControls.signInFrequency.value",
        ),
        (
            "sessionControls",
            {"signInFrequency": {"isEnabled": True, "value": 1, "type": "weeks"}},
            "sessionControls.signInFrequency.type",
        ),
        (
            "sessionControls",
            {
                "signInFrequency": {
                    "isEnabled": True,
                    "value": 1,
                    "type": "hours",
                    "frequencyInterval": "everyTime",
                }
            },
            "sessionControls.signInFrequency",
        ),
        (
            "sessionControls",
            {"signInFrequency": {"isEnabled": True, "frequencyInterval": "sometimes"}},
            "sessionControls.signInFrequency.frequencyInterval",
        ),
        (
            "sessionControls",
            {"persistentBrowser": {"isEnabled": True, "mode": "always"}},
            "sessionControls.persistentBrowser",
        ),
        ("id", "not-a-guid", "id"),
        ("colour", "red", "colour"),
    ],
)
def test_invalid_policies_name_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(PolicyInvalid) as caught:
        Policy.from_graph(_with(path, value))
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("conditions", "grant", "session", "field"),
    [
        # Workload identity policies: block only, no session controls, no users, locations only.
        (
            {"includeServicePrincipals": ["ServicePrincipalsInMyTenant"]},
            ["mfa"],
            None,
            "grantControls.builtInControls",
        ),
        (
            {"includeServicePrincipals": ["ServicePrincipalsInMyTenant"]},
            ["block"],
            {"signInFrequency": {"isEnabled": True, "frequencyInterval": "everyTime"}},
            "sessionControls",
        ),
        (
            {"includeServicePrincipals": []},
            ["block"],
            None,
            "conditions.clientApplications.includeServicePrincipals",
        ),
        (
            {"includeServicePrincipals": ["my-app"]},
            ["block"],
            None,
            "conditions.clientApplications.includeServicePrincipals",
        ),
    ],
)
def test_invalid_workload_policies(
    conditions: dict[str, Any], grant: list[str], session: dict[str, Any] | None, field: str
) -> None:
    data: dict[str, Any] = {
        "displayName": "W",
        "state": "enabled",
        "conditions": {
            "clientApplications": conditions,
            "users": {"includeUsers": ["None"]},
            "applications": {"includeApplications": ["All"]},
        },
        "grantControls": {"operator": "OR", "builtInControls": grant},
        "sessionControls": session,
    }
    with pytest.raises(PolicyInvalid) as caught:
        Policy.from_graph(data)
    assert caught.value.field == field


def test_workload_policy_cannot_include_users() -> None:
    data = {
        "displayName": "W",
        "state": "enabled",
        "conditions": {
            "clientApplications": {"includeServicePrincipals": ["ServicePrincipalsInMyTenant"]},
            "users": {"includeUsers": ["All"]},
            "applications": {"includeApplications": ["All"]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }
    with pytest.raises(PolicyInvalid, match="cannot also include users"):
        Policy.from_graph(data)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"displayName": "X", "ipRanges": []}, "ipRanges"),
        ({"displayName": "X", "ipRanges": [{"cidrAddress": "10.0.0.1/8"}]}, "ipRanges[0].cidrAddress"),
        ({"displayName": "X", "ipRanges": [{"cidrAddress": "0.0.0.0/0"}]}, "ipRanges[0].cidrAddress"),
        ({"displayName": "X", "ipRanges": [{"cidrAddress": "office"}]}, "ipRanges[0].cidrAddress"),
        ({"displayName": "X", "ipRanges": [{}]}, "ipRanges[0].cidrAddress"),
        ({"displayName": "", "ipRanges": [{"cidrAddress": "10.0.0.0/8"}]}, "displayName"),
        ({"displayName": "X", "isTrusted": "yes", "ipRanges": [{"cidrAddress": "10.0.0.0/8"}]}, "isTrusted"),
        (
            {
                "@odata.type": "#microsoft.graph.countryNamedLocation",
                "displayName": "X",
                "countriesAndRegions": ["NL"],
            },
            "@odata.type",
        ),
    ],
)
def test_invalid_named_locations(data: dict[str, Any], field: str) -> None:
    with pytest.raises(PolicyInvalid) as caught:
        NamedLocation.from_graph(data)
    assert caught.value.field == field


def test_single_address_is_a_host_range() -> None:
    loc = NamedLocation.from_graph({"displayName": "H", "ipRanges": [{"cidrAddress": "127.0.0.2"}]})
    assert [str(r) for r in loc.ranges] == ["127.0.0.2/32"]
