"""Conditional Access evaluation: which of a tenant's policies apply to one sign-in, and what they demand.

Entra's semantics (https://learn.microsoft.com/entra/identity/conditional-access/concept-conditional-access-policies):
a policy applies when every condition it configures matches — its assignment (users, groups and directory
roles, or for a workload-identity policy service principals), its target resources, locations, client app
types and device platforms — and in each, exclusions win over inclusions. A user policy never applies to a
service principal and a workload-identity policy never to a user. Every applying enabled policy must be
satisfied; report-only policies are evaluated and recorded, never enforced. Pure: no I/O, no clock of its own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from entryway.identity.policy.model import (
    ALL,
    ALL_TRUSTED,
    BLOCK,
    MFA,
    NONE,
    SERVICE_PRINCIPALS_IN_MY_TENANT,
    ClientAppType,
    DevicePlatform,
    Policy,
    PolicySet,
    PolicyState,
)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Entra allows five minutes of clock skew before an "every time" sign-in frequency asks again.
EVERY_TIME_FRESHNESS_SECONDS = 300

# How the sign-in log names controls (Graph appliedConditionalAccessPolicy.enforcedGrantControls).
_GRANT_LOG_NAMES = {BLOCK: "Block", MFA: "Mfa"}
_SIF_LOG_NAME = "SignInFrequency"


@dataclass(frozen=True)
class Subject:
    kind: Literal["user", "servicePrincipal"]
    object_id: str
    groups: tuple[str, ...] = ()  # transitive group object ids (users)
    roles: tuple[str, ...] = ()  # directory role template ids (users)
    display: str = ""  # the UPN or the app's name, for what-if's sentences


@dataclass(frozen=True)
class SignInContext:
    resource_app_id: str
    client_app_id: str
    ip: str
    client_app_type: ClientAppType
    platform: DevicePlatform
    interactive: bool
    amr: tuple[str, ...] = ()
    # When the subject last presented credentials (epoch seconds); None: in this very request.
    auth_time: float | None = None
    now: float = 0.0


class PolicyResult(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    NOT_APPLIED = "notApplied"
    NOT_ENABLED = "notEnabled"
    REPORT_ONLY_SUCCESS = "reportOnlySuccess"
    REPORT_ONLY_FAILURE = "reportOnlyFailure"
    REPORT_ONLY_NOT_APPLIED = "reportOnlyNotApplied"
    REPORT_ONLY_INTERRUPTED = "reportOnlyInterrupted"


@dataclass(frozen=True)
class PolicyOutcome:
    policy_id: str
    display_name: str
    result: PolicyResult
    enforced_grant_controls: tuple[str, ...]
    enforced_session_controls: tuple[str, ...]
    reasons: tuple[str, ...]
    # What the policy demands of this sign-in when it applies (whether or not it is enforced).
    blocks: bool = False
    needs_mfa: bool = False
    needs_reauthentication: bool = False

    @property
    def applied(self) -> bool:
        return self.result not in (
            PolicyResult.NOT_APPLIED,
            PolicyResult.NOT_ENABLED,
            PolicyResult.REPORT_ONLY_NOT_APPLIED,
        )

    def to_graph(self) -> dict[str, Any]:
        """Graph's appliedConditionalAccessPolicy, as the sign-in log lists it."""
        return {
            "id": self.policy_id,
            "displayName": self.display_name,
            "result": self.result.value,
            "enforcedGrantControls": list(self.enforced_grant_controls),
            "enforcedSessionControls": list(self.enforced_session_controls),
        }


@dataclass(frozen=True)
class Decision:
    outcomes: tuple[PolicyOutcome, ...]
    block: bool  # an enabled policy applied with grant "block"
    mfa_required: bool  # an enabled policy applied with "mfa" and "mfa" is not in amr
    reauthenticate: bool  # an enabled policy's sign-in frequency asks for fresh credentials

    @property
    def status(self) -> Literal["success", "failure", "notApplied"]:
        """Graph's signIn.conditionalAccessStatus: over enabled policies only."""
        enforced = [o for o in self.outcomes if o.result in (PolicyResult.SUCCESS, PolicyResult.FAILURE)]
        if not enforced:
            return "notApplied"
        if any(o.result is PolicyResult.FAILURE for o in enforced):
            return "failure"
        return "success"

    @property
    def allowed(self) -> bool:
        return not (self.block or self.mfa_required or self.reauthenticate)


# --- conditions -------------------------------------------------------------------------------------


def parse_address(ip: str) -> IpAddress | None:
    """The client address; an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is its IPv4 address."""
    try:
        address = ipaddress.ip_address(ip.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _assignment(policy: Policy, subject: Subject) -> tuple[bool, str]:
    if subject.kind == "servicePrincipal":
        return _workload_assignment(policy, subject)
    return _user_assignment(policy, subject)


def _workload_assignment(policy: Policy, subject: Subject) -> tuple[bool, str]:
    who = f"service principal {subject.display or subject.object_id}"
    apps = policy.conditions.client_applications
    if apps is None:
        return False, f"{who} not assigned: a user policy never applies to workload identities"
    if subject.object_id in apps.exclude_service_principals:
        return False, f"{who} excluded"
    if SERVICE_PRINCIPALS_IN_MY_TENANT in apps.include_service_principals:
        return True, f"{who} included by ServicePrincipalsInMyTenant"
    if subject.object_id in apps.include_service_principals:
        return True, f"{who} included by id"
    return False, f"{who} not included"


def _user_assignment(policy: Policy, subject: Subject) -> tuple[bool, str]:
    who = f"user {subject.display or subject.object_id}"
    users = policy.conditions.users
    if policy.is_workload or users is None:
        return False, f"{who} not assigned: a workload identity policy applies only to service principals"
    groups, roles = set(subject.groups), set(subject.roles)
    # Exclusions first: they win over every inclusion.
    table: tuple[tuple[bool, set[str], str], ...] = (
        (False, {subject.object_id} & set(users.exclude_users), "excluded by id"),
        (False, groups & set(users.exclude_groups), "excluded by group"),
        (False, roles & set(users.exclude_roles), "excluded by role"),
        (True, {ALL} & set(users.include_users), "included by"),
        (True, {subject.object_id} & set(users.include_users), "included by id"),
        (True, groups & set(users.include_groups), "included by group"),
        (True, roles & set(users.include_roles), "included by role"),
    )
    for verdict, hits, sentence in table:
        if hits:
            which = sorted(hits)[0]
            detail = "" if which == subject.object_id else f" {which}"
            return verdict, f"{who} {sentence}{detail}"
    return False, f"{who} not included"


def _application(policy: Policy, resource_app_id: str) -> tuple[bool, str]:
    apps = policy.conditions.applications
    if resource_app_id in apps.exclude_applications:
        return False, f"application {resource_app_id} excluded"
    if NONE in apps.include_applications:
        return False, "applications: None"
    if ALL in apps.include_applications:
        return True, f"application {resource_app_id} included by All"
    if resource_app_id in apps.include_applications:
        return True, f"application {resource_app_id} included"
    return False, f"application {resource_app_id} not included"


def _in_location(policies: PolicySet, value: str, address: IpAddress | None) -> tuple[bool, str]:
    """Whether the address is in one include/exclude value; with the location's name for the reason."""
    if value == ALL:
        return True, "All"
    if value == ALL_TRUSTED:
        trusted = [loc for loc in policies.locations if loc.is_trusted]
        for loc in trusted:
            if address is not None and loc.contains(address):
                return True, f"AllTrusted ('{loc.display_name}')"
        return False, "AllTrusted"
    named = policies.location(value)
    if named is None:
        return False, f"unknown location {value}"
    return (address is not None and named.contains(address)), f"'{named.display_name}'"


def _location(policy: Policy, policies: PolicySet, ip: str) -> tuple[bool, str]:
    cond = policy.conditions.locations
    if cond is None:
        return True, "locations: not configured"
    address = parse_address(ip)
    for value in cond.exclude_locations:
        inside, name = _in_location(policies, value, address)
        if inside:
            return False, f"location {ip} excluded: in {name}"
    for value in cond.include_locations:
        inside, name = _in_location(policies, value, address)
        if inside:
            return True, f"location {ip} included: in {name}"
    names = ", ".join(_in_location(policies, v, address)[1] for v in cond.include_locations)
    return False, f"location {ip} not in {names}"


def _client_app_type(policy: Policy, client_app_type: ClientAppType) -> tuple[bool, str]:
    types = policy.conditions.client_app_types
    if ClientAppType.ALL in types:
        return True, "client app types: all"
    if client_app_type in types:
        return True, f"client app type {client_app_type.value} included"
    return False, f"client app type {client_app_type.value} not in {', '.join(t.value for t in types)}"


def _platform(policy: Policy, platform: DevicePlatform) -> tuple[bool, str]:
    cond = policy.conditions.platforms
    if cond is None:
        return True, "platforms: not configured"
    if platform in cond.exclude_platforms:
        return False, f"platform {platform.value} excluded"
    if DevicePlatform.ALL in cond.include_platforms or platform in cond.include_platforms:
        return True, f"platform {platform.value} included"
    return False, f"platform {platform.value} not included"


def _sif_needs_reauthentication(policy: Policy, ctx: SignInContext) -> tuple[bool, str | None]:
    sif = None if policy.session is None else policy.session.sign_in_frequency
    if sif is None:
        return False, None
    age = 0.0 if ctx.auth_time is None else max(0.0, ctx.now - ctx.auth_time)
    if sif.every_time:
        if age > EVERY_TIME_FRESHNESS_SECONDS:
            return True, f"sign-in frequency every time: credentials presented {int(age)}s ago"
        return False, "sign-in frequency every time: credentials fresh"
    assert sif.seconds is not None  # timeBased always has seconds (model invariant)
    if age > sif.seconds:
        return True, f"sign-in frequency {sif.value} {sif.type}: credentials presented {int(age)}s ago"
    return False, f"sign-in frequency {sif.value} {sif.type}: satisfied"


def _controls(policy: Policy) -> tuple[tuple[str, ...], tuple[str, ...]]:
    grant = () if policy.grant is None else tuple(_GRANT_LOG_NAMES[c] for c in policy.grant.built_in_controls)
    sif = policy.session is not None and policy.session.sign_in_frequency is not None
    return grant, ((_SIF_LOG_NAME,) if sif else ())


def _not_applied(policy: Policy, reasons: list[str]) -> PolicyOutcome:
    grant, session = _controls(policy)
    result = {
        PolicyState.DISABLED: PolicyResult.NOT_ENABLED,
        PolicyState.REPORT_ONLY: PolicyResult.REPORT_ONLY_NOT_APPLIED,
        PolicyState.ENABLED: PolicyResult.NOT_APPLIED,
    }[policy.state]
    return PolicyOutcome(policy.id, policy.display_name, result, grant, session, tuple(reasons))


def evaluate_policy(
    policy: Policy, policies: PolicySet, subject: Subject, ctx: SignInContext
) -> PolicyOutcome:
    """One policy's outcome for one sign-in, with the reasons what-if shows."""
    reasons: list[str] = []
    if policy.state is PolicyState.DISABLED:
        reasons.append("policy is disabled")
    checks: tuple[Callable[[], tuple[bool, str]], ...] = (
        lambda: _assignment(policy, subject),
        lambda: _application(policy, ctx.resource_app_id),
        lambda: _location(policy, policies, ctx.ip),
        lambda: _client_app_type(policy, ctx.client_app_type),
        lambda: _platform(policy, ctx.platform),
    )
    for check in checks:
        matches, reason = check()
        reasons.append(reason)
        if not matches:
            return _not_applied(policy, reasons)
    if policy.state is PolicyState.DISABLED:
        reasons.append("would apply if enabled")
        return _not_applied(policy, reasons)

    controls = () if policy.grant is None else policy.grant.built_in_controls
    blocks = BLOCK in controls
    needs_mfa = MFA in controls and MFA not in ctx.amr
    if blocks:
        reasons.append("grant: block")
    elif MFA in controls:
        reasons.append("grant: mfa satisfied" if not needs_mfa else "grant: mfa required, not yet done")
    reauth, sif_reason = _sif_needs_reauthentication(policy, ctx)
    if sif_reason:
        reasons.append(sif_reason)

    report_only = policy.state is PolicyState.REPORT_ONLY
    if blocks:
        result = PolicyResult.REPORT_ONLY_FAILURE if report_only else PolicyResult.FAILURE
    elif needs_mfa or reauth:
        # Report-only "user action required" (Entra docs, report-only mode) is reportOnlyInterrupted.
        result = PolicyResult.REPORT_ONLY_INTERRUPTED if report_only else PolicyResult.FAILURE
    else:
        result = PolicyResult.REPORT_ONLY_SUCCESS if report_only else PolicyResult.SUCCESS
    if report_only:
        reasons.append("report-only: recorded, not enforced")
    grant, session = _controls(policy)
    return PolicyOutcome(
        policy.id,
        policy.display_name,
        result,
        grant,
        session,
        tuple(reasons),
        blocks=blocks,
        needs_mfa=needs_mfa,
        needs_reauthentication=reauth,
    )


def evaluate(policies: PolicySet, subject: Subject, ctx: SignInContext) -> Decision:
    """Every policy's outcome for a sign-in and what the enabled ones demand."""
    outcomes = tuple(evaluate_policy(p, policies, subject, ctx) for p in policies.policies)
    # Only enabled policies produce success/failure; report-only ones produce reportOnly* and never count.
    live = [o for o in outcomes if o.result in (PolicyResult.SUCCESS, PolicyResult.FAILURE)]
    return Decision(
        outcomes,
        block=any(o.blocks for o in live),
        mfa_required=any(o.needs_mfa for o in live),
        reauthenticate=any(o.needs_reauthentication for o in live),
    )


def ip_fence(policies: PolicySet, subject: Subject, resource_app_id: str, ip: str) -> Decision:
    """The location part of Conditional Access, for the resource service's non-interactive checks (PATs, a
    CAE token used from a new address): only enabled policies that target the subject and the resource and
    carry a location condition other than plain include-All are considered, other conditions are ignored, and
    "mfa" counts as "block" — a PAT cannot perform MFA (Azure DevOps, "IP Conditional Access policy validation
    on non-interactive flows"). Policies not considered are left out of the outcomes."""
    outcomes: list[PolicyOutcome] = []
    for policy in policies.policies:
        cond = policy.conditions.locations
        if policy.state is not PolicyState.ENABLED or cond is None or cond.is_plain_all:
            continue
        controls = () if policy.grant is None else policy.grant.built_in_controls
        if not controls:
            continue  # session controls only: nothing a location can refuse
        reasons: list[str] = []
        applies = True
        for matches, reason in (
            _assignment(policy, subject),
            _application(policy, resource_app_id),
            _location(policy, policies, ip),
        ):
            reasons.append(reason)
            if not matches:
                applies = False
                break
        grant, session = _controls(policy)
        if not applies:
            outcomes.append(
                PolicyOutcome(
                    policy.id, policy.display_name, PolicyResult.NOT_APPLIED, grant, session, tuple(reasons)
                )
            )
            continue
        reasons.append("grant: " + " / ".join(controls) + " (no MFA is possible here: refused)")
        outcomes.append(
            PolicyOutcome(
                policy.id,
                policy.display_name,
                PolicyResult.FAILURE,
                grant,
                session,
                tuple(reasons),
                blocks=True,
            )
        )
    return Decision(
        tuple(outcomes),
        block=any(o.blocks for o in outcomes),
        mfa_required=False,
        reauthenticate=False,
    )


def device_platform(user_agent: str | None, client_os: str | None) -> DevicePlatform:
    """The device platform Entra derives from the user agent, or from MSAL's `x-client-os` header (Python's
    `sys.platform` or `platform.system()`: win32, linux, darwin, Windows, Linux, Darwin)."""
    if client_os:
        os_name = client_os.strip().lower()
        for prefix, platform in (
            ("win", DevicePlatform.WINDOWS),
            ("linux", DevicePlatform.LINUX),
            ("darwin", DevicePlatform.MACOS),
            ("mac", DevicePlatform.MACOS),
            ("ios", DevicePlatform.IOS),
            ("android", DevicePlatform.ANDROID),
        ):
            if os_name.startswith(prefix):
                return platform
    ua = (user_agent or "").lower()
    # Order matters: Windows Phone agents say "Android", iPhone agents say "like Mac OS X", Android "Linux".
    for needle, platform in (
        ("windows phone", DevicePlatform.WINDOWS_PHONE),
        ("android", DevicePlatform.ANDROID),
        ("iphone", DevicePlatform.IOS),
        ("ipad", DevicePlatform.IOS),
        ("ipod", DevicePlatform.IOS),
        ("windows", DevicePlatform.WINDOWS),
        ("macintosh", DevicePlatform.MACOS),
        ("mac os x", DevicePlatform.MACOS),
        ("linux", DevicePlatform.LINUX),
        ("x11", DevicePlatform.LINUX),
    ):
        if needle in ua:
            return platform
    return DevicePlatform.UNKNOWN
