"""Conditional Access on the sign-in pages (the authorize endpoint and the device code pages), and the entries
those pages write to the sign-in log.

The pages evaluate the tenant's policies for the signed-in user once the password is proven (now, or earlier
in the browser session): the client is the app, the resource is what the scopes name (Microsoft Graph when only
OpenID Connect scopes are asked, as Entra logs such sign-ins), the client app type is `browser` for a
confidential client and `mobileAppsAndDesktopClients` for a public one, and the platform comes from the
browser's user agent (https://learn.microsoft.com/entra/identity/conditional-access/concept-conditional-access-conditions).
"""

from __future__ import annotations

from dataclasses import dataclass

from entryway.identity.directory.first_party import MICROSOFT_GRAPH
from entryway.identity.directory.reads import SqlDirectory
from entryway.identity.policy.evaluate import (
    Decision,
    PolicyResult,
    SignInContext,
    Subject,
    device_platform,
    evaluate,
)
from entryway.identity.policy.model import ClientAppType
from entryway.identity.protocol.delegation import parse_user_scope
from entryway.identity.protocol.errors import Aadsts, OAuthError
from entryway.identity.signin.log import SignInRecord

# The sign-in log's authenticationProtocol for the pages.
PROTOCOL_AUTHORIZE = "interactive"
PROTOCOL_DEVICE = "deviceCode"


@dataclass(frozen=True)
class PageAttempt:
    """What the pages know about one sign-in: who, into which app, for which resource, from where."""

    tenant_id: str
    client_id: str
    client_name: str
    public_client: bool
    resource_id: str
    resource_name: str
    ip: str
    user_agent: str
    protocol: str
    correlation_id: str

    @property
    def client_app_type(self) -> ClientAppType:
        return ClientAppType.MOBILE_DESKTOP if self.public_client else ClientAppType.BROWSER


def asked_resource(directory: SqlDirectory, tenant_id: str, scope: str) -> tuple[str, str]:
    """The (app id, display name) of the resource a scope names in the tenant; Microsoft Graph when the scope
    names none (OpenID Connect scopes only) or cannot be read (the pages refuse such a scope elsewhere)."""
    try:
        identifier = parse_user_scope(scope).resource
    except OAuthError:
        identifier = None
    found = directory.find_resource(tenant_id, identifier or MICROSOFT_GRAPH.app_id)
    if found is not None:
        return found.app_id, found.display_name
    return (identifier or MICROSOFT_GRAPH.app_id, identifier or MICROSOFT_GRAPH.display_name)


def evaluate_page_sign_in(
    directory: SqlDirectory,
    attempt: PageAttempt,
    *,
    user_id: str,
    upn: str,
    amr: tuple[str, ...],
    auth_time: float | None,
    now: float,
) -> Decision | None:
    """The tenant's policies for this sign-in; None when the tenant has none (nothing to evaluate or log)."""
    policies = directory.find_policy_set(attempt.tenant_id)
    if not policies.policies:
        return None
    memberships = directory.find_memberships(attempt.tenant_id, user_id)
    subject = Subject("user", user_id, memberships.groups, memberships.roles, display=upn)
    context = SignInContext(
        resource_app_id=attempt.resource_id,
        client_app_id=attempt.client_id,
        ip=attempt.ip,
        client_app_type=attempt.client_app_type,
        platform=device_platform(attempt.user_agent, None),
        interactive=True,
        amr=amr,
        auth_time=auth_time,
        now=now,
    )
    return evaluate(policies, subject, context)


def policies_require_mfa(decision: Decision | None) -> bool:
    """Whether an enabled policy that applied to the sign-in asks for MFA (done or not)."""
    if decision is None:
        return False
    enforced = (o for o in decision.outcomes if o.result in (PolicyResult.SUCCESS, PolicyResult.FAILURE))
    return any(c.lower() == "mfa" for o in enforced for c in o.enforced_grant_controls)


def page_record(
    attempt: PageAttempt,
    *,
    user_id: str | None,
    upn: str,
    error: Aadsts | None = None,
    reason: str | None = None,
    decision: Decision | None = None,
    mfa_required: bool = False,
) -> SignInRecord:
    """The sign-in log entry for one outcome of the pages. `failure_reason` is the public AADSTS text
    (`reason` when the caller formatted it with its parameters), never the private detail."""
    return SignInRecord(
        tenant_id=attempt.tenant_id,
        principal_kind="user",
        is_interactive=True,
        app_id=attempt.client_id,
        ip_address=attempt.ip,
        error_code=0 if error is None else error.code,
        user_id=user_id,
        user_principal_name=upn,
        app_display_name=attempt.client_name,
        resource_id=attempt.resource_id,
        resource_display_name=attempt.resource_name,
        user_agent=attempt.user_agent,
        client_app_used=attempt.client_app_type.value,
        device_platform=device_platform(attempt.user_agent, None).value,
        authentication_protocol=attempt.protocol,
        authentication_requirement=(
            "multiFactorAuthentication" if mfa_required else "singleFactorAuthentication"
        ),
        failure_reason="" if error is None else (reason or f"AADSTS{error.code}: {error.template}"),
        conditional_access_status="notApplied" if decision is None else decision.status,
        applied_policies=() if decision is None else tuple(o.to_graph() for o in decision.outcomes),
        correlation_id=attempt.correlation_id,
    )
