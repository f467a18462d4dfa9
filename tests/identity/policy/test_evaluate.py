"""identity.policy.evaluate: Entra's Conditional Access semantics as tables."""

from __future__ import annotations

from typing import Any

import pytest

from entryway.identity.policy.evaluate import (
    PolicyResult,
    SignInContext,
    Subject,
    device_platform,
    evaluate,
    ip_fence,
    parse_address,
)
from entryway.identity.policy.model import ClientAppType, DevicePlatform, NamedLocation, Policy, PolicySet

ALICE = "11111111-1111-1111-1111-111111111111"
BOB = "22222222-2222-2222-2222-222222222222"
ENGINEERS = "33333333-3333-3333-3333-333333333333"
CONTRACTORS = "44444444-4444-4444-4444-444444444444"
GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
DEVOPS = "499b84ac-1321-427f-aa17-267ca6975798"
GRAPH = "00000003-0000-0000-c000-000000000000"
CLIENT = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
SP = "55555555-5555-5555-5555-555555555555"
OTHER_SP = "66666666-6666-6666-6666-666666666666"
OFFICE = "77777777-7777-7777-7777-777777777777"
HOME = "88888888-8888-8888-8888-888888888888"

LOCATIONS = (
    NamedLocation.from_graph(
        {
            "id": OFFICE,
            "displayName": "Office",
            "isTrusted": True,
            "ipRanges": [{"cidrAddress": "10.0.0.0/8"}, {"cidrAddress": "2001:db8::/32"}],
        }
    ),
    NamedLocation.from_graph(
        {
            "id": HOME,
            "displayName": "Home",
            "isTrusted": False,
            "ipRanges": [{"cidrAddress": "192.168.1.0/24"}],
        }
    ),
)


def policy(
    *,
    state: str = "enabled",
    users: dict[str, Any] | None = None,
    apps: dict[str, Any] | None = None,
    locations: dict[str, Any] | None = None,
    client_app_types: list[str] | None = None,
    platforms: dict[str, Any] | None = None,
    grant: list[str] | None = None,
    session: dict[str, Any] | None = None,
    workload: dict[str, Any] | None = None,
    pid: str = "99999999-9999-9999-9999-999999999999",
) -> Policy:
    conditions: dict[str, Any] = {
        "applications": apps or {"includeApplications": ["All"]},
        "clientAppTypes": client_app_types or ["all"],
    }
    if workload is not None:
        conditions["clientApplications"] = workload
        conditions["users"] = {"includeUsers": ["None"]}
    else:
        conditions["users"] = users or {"includeUsers": ["All"]}
    if locations is not None:
        conditions["locations"] = locations
    if platforms is not None:
        conditions["platforms"] = platforms
    data: dict[str, Any] = {"id": pid, "displayName": "P", "state": state, "conditions": conditions}
    if grant is not None or session is None:
        data["grantControls"] = {"operator": "OR", "builtInControls": grant or ["block"]}
    if session is not None:
        data["sessionControls"] = {"signInFrequency": session}
    return Policy.from_graph(data)


def user(object_id: str = ALICE, groups: tuple[str, ...] = (), roles: tuple[str, ...] = ()) -> Subject:
    return Subject("user", object_id, groups, roles)


def ctx(**overrides: Any) -> SignInContext:
    values: dict[str, Any] = {
        "resource_app_id": DEVOPS,
        "client_app_id": CLIENT,
        "ip": "127.0.0.1",
        "client_app_type": ClientAppType.MOBILE_DESKTOP,
        "platform": DevicePlatform.LINUX,
        "interactive": False,
        "now": 1_000_000.0,
    }
    values.update(overrides)
    return SignInContext(**values)


def decide(p: Policy, subject: Subject | None = None, **overrides: Any) -> tuple[PolicyResult, bool]:
    decision = evaluate(PolicySet((p,), LOCATIONS), subject or user(), ctx(**overrides))
    return decision.outcomes[0].result, decision.block


F, NA = PolicyResult.FAILURE, PolicyResult.NOT_APPLIED


@pytest.mark.parametrize(
    ("users", "subject", "expected"),
    [
        ({"includeUsers": ["All"]}, user(), F),
        ({"includeUsers": [ALICE]}, user(), F),
        ({"includeUsers": [ALICE]}, user(BOB), NA),
        ({"includeUsers": ["All"], "excludeUsers": [ALICE]}, user(), NA),
        ({"includeUsers": [ALICE], "excludeUsers": [ALICE]}, user(), NA),
        ({"includeGroups": [ENGINEERS]}, user(groups=(ENGINEERS,)), F),
        ({"includeGroups": [ENGINEERS]}, user(groups=(CONTRACTORS,)), NA),
        ({"includeUsers": ["All"], "excludeGroups": [CONTRACTORS]}, user(groups=(CONTRACTORS,)), NA),
        (
            {"includeGroups": [ENGINEERS], "excludeGroups": [CONTRACTORS]},
            user(groups=(ENGINEERS, CONTRACTORS)),
            NA,
        ),
        ({"includeRoles": [GLOBAL_ADMIN]}, user(roles=(GLOBAL_ADMIN,)), F),
        ({"includeRoles": [GLOBAL_ADMIN]}, user(), NA),
        ({"includeUsers": ["All"], "excludeRoles": [GLOBAL_ADMIN]}, user(roles=(GLOBAL_ADMIN,)), NA),
        # A user policy never applies to a service principal.
        ({"includeUsers": ["All"]}, Subject("servicePrincipal", SP), NA),
    ],
)
def test_user_assignment(users: dict[str, Any], subject: Subject, expected: PolicyResult) -> None:
    assert decide(policy(users=users), subject)[0] is expected


@pytest.mark.parametrize(
    ("workload", "subject", "expected"),
    [
        ({"includeServicePrincipals": ["ServicePrincipalsInMyTenant"]}, Subject("servicePrincipal", SP), F),
        ({"includeServicePrincipals": [SP]}, Subject("servicePrincipal", SP), F),
        ({"includeServicePrincipals": [SP]}, Subject("servicePrincipal", OTHER_SP), NA),
        (
            {"includeServicePrincipals": ["ServicePrincipalsInMyTenant"], "excludeServicePrincipals": [SP]},
            Subject("servicePrincipal", SP),
            NA,
        ),
        # A workload identity policy never applies to a user.
        ({"includeServicePrincipals": ["ServicePrincipalsInMyTenant"]}, user(), NA),
    ],
)
def test_workload_assignment(workload: dict[str, Any], subject: Subject, expected: PolicyResult) -> None:
    assert decide(policy(workload=workload), subject)[0] is expected


@pytest.mark.parametrize(
    ("apps", "resource", "expected"),
    [
        ({"includeApplications": ["All"]}, DEVOPS, F),
        ({"includeApplications": [DEVOPS]}, DEVOPS, F),
        ({"includeApplications": [DEVOPS]}, GRAPH, NA),
        ({"includeApplications": ["All"], "excludeApplications": [GRAPH]}, GRAPH, NA),
        ({"includeApplications": ["None"]}, DEVOPS, NA),
    ],
)
def test_target_applications(apps: dict[str, Any], resource: str, expected: PolicyResult) -> None:
    assert decide(policy(apps=apps), resource_app_id=resource)[0] is expected


@pytest.mark.parametrize(
    ("locations", "ip", "expected"),
    [
        ({"includeLocations": ["All"]}, "203.0.113.9", F),
        ({"includeLocations": [OFFICE]}, "10.1.2.3", F),
        ({"includeLocations": [OFFICE]}, "203.0.113.9", NA),
        ({"includeLocations": [OFFICE]}, "2001:db8::1", F),
        ({"includeLocations": [OFFICE]}, "2001:db9::1", NA),
        # IPv4-mapped IPv6 addresses match IPv4 ranges.
        ({"includeLocations": [OFFICE]}, "::ffff:10.0.0.1", F),
        ({"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]}, "10.1.2.3", NA),
        ({"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]}, "192.168.1.5", F),
        ({"includeLocations": ["All"], "excludeLocations": [HOME]}, "192.168.1.5", NA),
        ({"includeLocations": ["AllTrusted"]}, "10.9.9.9", F),
        ({"includeLocations": ["AllTrusted"]}, "192.168.1.5", NA),
        # An address that cannot be read is in no named location, but in "All".
        ({"includeLocations": ["All"], "excludeLocations": [OFFICE]}, "not-an-ip", F),
        ({"includeLocations": [OFFICE]}, "not-an-ip", NA),
    ],
)
def test_locations(locations: dict[str, Any], ip: str, expected: PolicyResult) -> None:
    assert decide(policy(locations=locations), ip=ip)[0] is expected


def test_location_reasons_name_the_location() -> None:
    decision = evaluate(
        PolicySet((policy(locations={"includeLocations": [OFFICE]}),), LOCATIONS), user(), ctx(ip="10.1.2.3")
    )
    assert "location 10.1.2.3 included: in 'Office'" in decision.outcomes[0].reasons
    decision = evaluate(
        PolicySet((policy(locations={"includeLocations": [OFFICE]}),), LOCATIONS), user(), ctx(ip="8.8.8.8")
    )
    assert "location 8.8.8.8 not in 'Office'" in decision.outcomes[0].reasons


@pytest.mark.parametrize(
    ("types", "actual", "expected"),
    [
        (["all"], ClientAppType.BROWSER, F),
        (["browser"], ClientAppType.BROWSER, F),
        (["browser"], ClientAppType.MOBILE_DESKTOP, NA),
        (["browser", "mobileAppsAndDesktopClients"], ClientAppType.MOBILE_DESKTOP, F),
        (["other", "exchangeActiveSync"], ClientAppType.BROWSER, NA),
    ],
)
def test_client_app_types(types: list[str], actual: ClientAppType, expected: PolicyResult) -> None:
    assert decide(policy(client_app_types=types), client_app_type=actual)[0] is expected


@pytest.mark.parametrize(
    ("platforms", "actual", "expected"),
    [
        ({"includePlatforms": ["all"]}, DevicePlatform.LINUX, F),
        ({"includePlatforms": ["all"]}, DevicePlatform.UNKNOWN, F),
        ({"includePlatforms": ["android", "iOS"]}, DevicePlatform.IOS, F),
        ({"includePlatforms": ["android", "iOS"]}, DevicePlatform.WINDOWS, NA),
        ({"includePlatforms": ["all"], "excludePlatforms": ["macOS"]}, DevicePlatform.MACOS, NA),
    ],
)
def test_platforms(platforms: dict[str, Any], actual: DevicePlatform, expected: PolicyResult) -> None:
    assert decide(policy(platforms=platforms), platform=actual)[0] is expected


def test_every_condition_must_match() -> None:
    p = policy(apps={"includeApplications": [DEVOPS]}, locations={"includeLocations": [OFFICE]})
    assert decide(p, ip="10.0.0.1")[0] is F
    assert decide(p, ip="10.0.0.1", resource_app_id=GRAPH)[0] is NA
    assert decide(p, ip="8.8.8.8")[0] is NA


def test_mfa_grant() -> None:
    p = policy(grant=["mfa"])
    decision = evaluate(PolicySet((p,)), user(), ctx())
    assert decision.mfa_required
    assert not decision.block
    assert decision.status == "failure"
    assert decision.outcomes[0].to_graph()["enforcedGrantControls"] == ["Mfa"]
    done = evaluate(PolicySet((p,)), user(), ctx(amr=("pwd", "mfa")))
    assert not done.mfa_required
    assert done.outcomes[0].result is PolicyResult.SUCCESS
    assert done.status == "success"
    assert done.allowed


def test_block_grant() -> None:
    decision = evaluate(PolicySet((policy(),)), user(), ctx())
    assert decision.block
    assert not decision.allowed
    assert decision.outcomes[0].to_graph() == {
        "id": "99999999-9999-9999-9999-999999999999",
        "displayName": "P",
        "result": "failure",
        "enforcedGrantControls": ["Block"],
        "enforcedSessionControls": [],
    }


@pytest.mark.parametrize(
    ("grant", "amr", "expected"),
    [
        (["block"], (), PolicyResult.REPORT_ONLY_FAILURE),
        (["mfa"], (), PolicyResult.REPORT_ONLY_INTERRUPTED),
        (["mfa"], ("pwd", "mfa"), PolicyResult.REPORT_ONLY_SUCCESS),
    ],
)
def test_report_only_never_enforced(grant: list[str], amr: tuple[str, ...], expected: PolicyResult) -> None:
    decision = evaluate(
        PolicySet((policy(state="enabledForReportingButNotEnforced", grant=grant),)), user(), ctx(amr=amr)
    )
    assert decision.outcomes[0].result is expected
    assert decision.allowed
    assert decision.status == "notApplied"


def test_report_only_not_applied_and_disabled() -> None:
    ro = policy(state="enabledForReportingButNotEnforced", users={"includeUsers": [BOB]})
    assert decide(ro)[0] is PolicyResult.REPORT_ONLY_NOT_APPLIED
    disabled = evaluate(PolicySet((policy(state="disabled"),)), user(), ctx())
    assert disabled.outcomes[0].result is PolicyResult.NOT_ENABLED
    assert "would apply if enabled" in disabled.outcomes[0].reasons
    assert disabled.allowed


def test_status_over_several_policies() -> None:
    allow = policy(grant=["mfa"], pid="aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa")
    other = policy(users={"includeUsers": [BOB]}, pid="bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb")
    decision = evaluate(PolicySet((allow, other)), user(), ctx(amr=("mfa",)))
    assert [o.result for o in decision.outcomes] == [PolicyResult.SUCCESS, PolicyResult.NOT_APPLIED]
    assert decision.status == "success"
    assert evaluate(PolicySet((other,)), user(), ctx()).status == "notApplied"


@pytest.mark.parametrize(
    ("session", "auth_age", "reauth"),
    [
        ({"isEnabled": True, "value": 1, "type": "hours", "frequencyInterval": "timeBased"}, 3599, False),
        ({"isEnabled": True, "value": 1, "type": "hours", "frequencyInterval": "timeBased"}, 3601, True),
        ({"isEnabled": True, "value": 2, "type": "days", "frequencyInterval": "timeBased"}, 86400, False),
        (
            {"isEnabled": True, "value": 2, "type": "days", "frequencyInterval": "timeBased"},
            2 * 86400 + 1,
            True,
        ),
        ({"isEnabled": True, "frequencyInterval": "everyTime"}, 60, False),
        ({"isEnabled": True, "frequencyInterval": "everyTime"}, 301, True),
        ({"isEnabled": True, "frequencyInterval": "everyTime"}, None, False),
    ],
)
def test_sign_in_frequency(session: dict[str, Any], auth_age: float | None, reauth: bool) -> None:
    now = 1_000_000.0
    auth_time = None if auth_age is None else now - auth_age
    decision = evaluate(PolicySet((policy(session=session),)), user(), ctx(now=now, auth_time=auth_time))
    assert decision.reauthenticate is reauth
    assert decision.outcomes[0].enforced_session_controls == ("SignInFrequency",)
    assert decision.outcomes[0].result is (F if reauth else PolicyResult.SUCCESS)
    report_only = policy(state="enabledForReportingButNotEnforced", session=session)
    assert not evaluate(PolicySet((report_only,)), user(), ctx(now=now, auth_time=auth_time)).reauthenticate


def test_ip_fence() -> None:
    office_only = policy(
        apps={"includeApplications": [DEVOPS]},
        locations={"includeLocations": ["All"], "excludeLocations": [OFFICE]},
    )
    policies = PolicySet((office_only,), LOCATIONS)
    assert ip_fence(policies, user(), DEVOPS, "8.8.8.8").block
    assert not ip_fence(policies, user(), DEVOPS, "10.0.0.1").block
    assert not ip_fence(policies, user(), GRAPH, "8.8.8.8").block
    # "mfa" counts as block: a PAT cannot do MFA.
    mfa = policy(grant=["mfa"], locations={"includeLocations": [HOME]})
    assert ip_fence(PolicySet((mfa,), LOCATIONS), user(), DEVOPS, "192.168.1.9").block
    # Without a location condition, or with plain include-All, or not enabled: not considered.
    for ignored in (
        policy(),
        policy(locations={"includeLocations": ["All"]}),
        policy(state="enabledForReportingButNotEnforced", locations={"includeLocations": [HOME]}),
        policy(state="disabled", locations={"includeLocations": [HOME]}),
    ):
        fenced = ip_fence(PolicySet((ignored,), LOCATIONS), user(), DEVOPS, "192.168.1.9")
        assert not fenced.block
        assert fenced.outcomes == ()
    # Other conditions are ignored: a browser-only policy still fences a PAT.
    browser = policy(client_app_types=["browser"], locations={"includeLocations": [HOME]})
    assert ip_fence(PolicySet((browser,), LOCATIONS), user(), DEVOPS, "192.168.1.9").block
    # Workload policies fence service principals.
    workload = policy(
        workload={"includeServicePrincipals": [SP]},
        locations={"includeLocations": ["All"], "excludeLocations": [OFFICE]},
    )
    assert ip_fence(
        PolicySet((workload,), LOCATIONS), Subject("servicePrincipal", SP), DEVOPS, "8.8.8.8"
    ).block
    assert not ip_fence(PolicySet((workload,), LOCATIONS), user(), DEVOPS, "8.8.8.8").block


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("nonsense", None),
        ("", None),
    ],
)
def test_parse_address(ip: str, expected: str | None) -> None:
    parsed = parse_address(ip)
    assert (None if parsed is None else str(parsed)) == expected


@pytest.mark.parametrize(
    ("ua", "client_os", "expected"),
    [
        (None, "linux", DevicePlatform.LINUX),
        (None, "win32", DevicePlatform.WINDOWS),
        (None, "Darwin", DevicePlatform.MACOS),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0",
            None,
            DevicePlatform.LINUX,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120",
            None,
            DevicePlatform.WINDOWS,
        ),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605.1.15", None, DevicePlatform.MACOS),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148", None, DevicePlatform.IOS),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/120 Mobile", None, DevicePlatform.ANDROID),
        ("Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1) Edge/15", None, DevicePlatform.WINDOWS_PHONE),
        ("python-requests/2.31", None, DevicePlatform.UNKNOWN),
        (None, None, DevicePlatform.UNKNOWN),
    ],
)
def test_device_platform(ua: str | None, client_os: str | None, expected: DevicePlatform) -> None:
    assert device_platform(ua, client_os) is expected
