"""An organization's security policy "IP Conditional Access policy validation on non-interactive flows"
(devops-wire-contract 5): when on, PATs and Entra tokens used from an address the tenant's Conditional Access
location policies refuse are answered VS403463 (devops/cae/checks.py). Changing it is audited. Never commits."""

from __future__ import annotations

from sqlalchemy.orm import Session

from entryway.devops.audit.recorder import Actor, record_change_by
from entryway.devops.orgs.repository import OrgRepository
from entryway.devops.orgs.service import Organization, OrgError
from entryway.kit.clock import Clock

# Azure DevOps' audit action for an organization policy change.
POLICY_UPDATED = "OrganizationPolicy.PolicyValueUpdated"
IP_CA_VALIDATION = "ipConditionalAccessValidation"
IP_CA_VALIDATION_NAME = "IP Conditional Access policy validation on non-interactive flows"


def set_ip_conditional_access_validation(
    session: Session, clock: Clock, org_name: str, enabled: bool, actor: Actor
) -> tuple[Organization, bool]:
    """Turn the policy on or off; returns the organization and whether anything changed (a change is audited).
    Every DevOps process applies it within ORG_CACHE_SECONDS (how long it keeps an organization it looked up)."""
    repo = OrgRepository(session)
    row = repo.find_by_name(org_name)
    if row is None:
        raise OrgError(f"organization '{org_name}' not found")
    if bool(row.ip_conditional_access_validation) == enabled:
        return Organization.from_row(row), False
    row.ip_conditional_access_validation = enabled
    org = Organization.from_row(row)
    record_change_by(
        session,
        clock=clock,
        organization=org,
        actor=actor,
        action=POLICY_UPDATED,
        details={"policy": IP_CA_VALIDATION, "policyName": IP_CA_VALIDATION_NAME, "value": enabled},
    )
    session.flush()
    return org, True
