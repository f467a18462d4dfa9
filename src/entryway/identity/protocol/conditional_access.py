"""Conditional Access at the token endpoint: once a grant has decided whom a token is about and for which
resource, the tenant's policies are evaluated (`identity.policy.evaluate`) and what the enabled ones demand is
enforced with Entra's errors. Report-only policies are evaluated and recorded, never enforced.

Every grant is evaluated: the user grants (authorization code, device code, refresh token, password, on-behalf-of)
with the sign-in's `amr` and `auth_time`, and the workload ones (client credentials with a secret, a certificate
or a federated assertion). As in Entra, Conditional Access for workload identities covers the tenant's own
single-tenant applications: first-party apps acting as themselves are not evaluated, and managed identities
are not either (https://learn.microsoft.com/entra/workload-id/workload-identities-faqs).
https://learn.microsoft.com/entra/identity/conditional-access/concept-conditional-access-conditions

Pure: the policies arrive through the `DirectoryPort`, the request's address and headers on the `TokenRequest`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from entryway.identity.policy.evaluate import Decision, SignInContext, Subject, device_platform, evaluate
from entryway.identity.policy.model import ClientAppType, DevicePlatform, PolicySet
from entryway.identity.protocol.claims import AppOnlySubject, UserSubject
from entryway.identity.protocol.errors import (
    BLOCKED_BY_CONDITIONAL_ACCESS,
    BLOCKED_BY_CONDITIONAL_ACCESS_GRANT,
    INTERACTION_REQUIRED_MFA,
    MFA_ENROLLMENT_REQUIRED_BY_POLICY,
    SIGN_IN_FREQUENCY,
    SIGN_IN_FREQUENCY_INTERACTIVE,
    Aadsts,
    OAuthError,
    format_timestamp,
)
from entryway.kit.clock import utc_from_timestamp

# The sign-in log's authenticationProtocol per grant (identity/signin/log.py).
PROTOCOLS = {
    "authorization_code": "authorizationCode",
    "refresh_token": "refreshToken",
    "urn:ietf:params:oauth:grant-type:device_code": "deviceCode",
    "password": "ropc",
    "client_credentials": "clientCredentials",
    "urn:ietf:params:oauth:grant-type:jwt-bearer": "onBehalfOf",
}
FEDERATED_ASSERTION = "federatedAssertion"


@dataclass
class IssuanceTrail:
    """What the pipeline learned about one token request, filled in as it goes, so that the web layer can
    write the sign-in log entry for an issuance and for a refusal alike (the pipeline does no I/O)."""

    grant_type: str = ""
    protocol: str = ""
    tenant_id: str = ""
    client_app_id: str = ""
    client_display_name: str = ""
    service_principal_id: str | None = None
    user_id: str | None = None
    user_principal_name: str = ""
    resource_app_id: str = ""
    resource_display_name: str = ""
    client_app_type: str = ""
    platform: str = ""
    amr: tuple[str, ...] = ()
    app_only: bool = False
    decision: Decision | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def principal_kind(self) -> str:
        return "servicePrincipal" if self.app_only else "user"

    @property
    def interactive(self) -> bool:
        """The password grant presents the user's credentials itself: Entra lists it with interactive sign-ins."""
        return self.grant_type == "password"

    @property
    def authentication_requirement(self) -> str:
        if self.app_only:
            return ""
        return "multiFactorAuthentication" if "mfa" in self.amr else "singleFactorAuthentication"


@dataclass(frozen=True)
class EvaluationInput:
    subject: AppOnlySubject | UserSubject
    resource_app_id: str
    client_app_id: str
    client_app_type: ClientAppType
    user_agent: str | None
    client_os: str | None
    addresses: tuple[str, ...]  # the client's; and the one a claims challenge says the resource saw
    auth_time: float | None
    now: float
    display: str


def client_app_type(*, public_client: bool, app_only: bool) -> ClientAppType:
    """A public client redeeming a user grant is a mobile or desktop app; a confidential client acting for a
    user is a web app (`browser`, as Entra classifies it); a daemon is not a browser either. Legacy
    authentication (`other`: IMAP, SMTP, EWS …) does not exist here."""
    if app_only or public_client:
        return ClientAppType.MOBILE_DESKTOP
    return ClientAppType.BROWSER


def _subject(subject: AppOnlySubject | UserSubject, display: str) -> Subject:
    if isinstance(subject, UserSubject):
        return Subject("user", subject.object_id, subject.groups, subject.wids, display)
    return Subject("servicePrincipal", subject.service_principal_id, display=display)


def _worst(decisions: list[Decision]) -> Decision:
    """Locations are evaluated for every address known (the client's, and the resource's from a claims
    challenge): blocked if either is."""
    for decision in decisions:
        if decision.block:
            return decision
    for decision in decisions:
        if not decision.allowed:
            return decision
    return decisions[0]


def evaluate_issuance(policies: PolicySet, given: EvaluationInput) -> tuple[Decision, DevicePlatform]:
    platform = device_platform(given.user_agent, given.client_os)
    subject = _subject(given.subject, given.display)
    amr = given.subject.amr if isinstance(given.subject, UserSubject) else ()
    decisions = [
        evaluate(
            policies,
            subject,
            SignInContext(
                resource_app_id=given.resource_app_id,
                client_app_id=given.client_app_id,
                ip=address,
                client_app_type=given.client_app_type,
                platform=platform,
                interactive=False,
                amr=amr,
                auth_time=given.auth_time,
                now=given.now,
            ),
        )
        for address in given.addresses
    ]
    return _worst(decisions), platform


def _capolids(decision: Decision) -> str:
    """The challenge Entra returns with an MFA interrupt: the ids of the policies that asked for it."""
    ids = [o.policy_id for o in decision.outcomes if o.needs_mfa and o.result.value == "failure"]
    return json.dumps(
        {"access_token": {"capolids": {"essential": True, "values": ids}}}, separators=(",", ":")
    )


def _frequency(policies: PolicySet, decision: Decision) -> str:
    """The strictest sign-in frequency among the enforced policies that asked for re-authentication, in
    Entra's `d.hh:mm:ss` wording."""
    seconds: list[int] = []
    for outcome in decision.outcomes:
        if not (outcome.needs_reauthentication and outcome.result.value == "failure"):
            continue
        for policy in policies.policies:
            sif = (
                None
                if policy.id != outcome.policy_id or policy.session is None
                else policy.session.sign_in_frequency
            )
            if sif is not None:
                seconds.append(0 if sif.every_time else int(sif.seconds or 0))
    shortest = min(seconds, default=0)
    days, rest = divmod(shortest, 86400)
    return f"{days}.{rest // 3600:02}:{rest // 60 % 60:02}:{rest % 60:02}"


def refusal(
    decision: Decision,
    policies: PolicySet,
    *,
    user_grant: bool,
    refresh: bool,
    on_behalf_of: bool,
    has_authenticator: bool,
    resource: str,
    auth_time: float | None,
    policy_error: type[OAuthError],
) -> OAuthError | None:
    """The error an enforced decision answers with, or None when the token may be issued.

    block → AADSTS53003: `interaction_required` with suberror `message_only` for a user's client (nothing the
    user can do; MSAL shows the message), `invalid_grant` for a workload identity or a middle tier (OBO).
    MFA → AADSTS50076 with the policies' `capolids` challenge, or 50079 when the user has no authenticator to
    use yet (enrolment is needed). Sign-in frequency → AADSTS70043 for a refresh token, an interaction-required
    50076 otherwise."""
    if decision.block:
        kind: Aadsts = (
            BLOCKED_BY_CONDITIONAL_ACCESS
            if user_grant and not on_behalf_of
            else BLOCKED_BY_CONDITIONAL_ACCESS_GRANT
        )
        return policy_error(kind, detail=_reasons(decision))
    if decision.mfa_required:
        kind = INTERACTION_REQUIRED_MFA if has_authenticator else MFA_ENROLLMENT_REQUIRED_BY_POLICY
        error = policy_error(kind, detail=_reasons(decision), resource=resource)
        error.claims = _capolids(decision)
        return error
    if decision.reauthenticate:
        if refresh:
            return policy_error(
                SIGN_IN_FREQUENCY,
                detail=_reasons(decision),
                issued=format_timestamp(utc_from_timestamp(auth_time or 0)),
                lifetime=_frequency(policies, decision),
            )
        return policy_error(SIGN_IN_FREQUENCY_INTERACTIVE, detail=_reasons(decision), resource=resource)
    return None


def _reasons(decision: Decision) -> str:
    """For the process log only: which policies refused, and why."""
    refusing = [o for o in decision.outcomes if o.result.value == "failure"]
    return "; ".join(f"{o.display_name} ({o.policy_id}): {', '.join(o.reasons)}" for o in refusing)
