"""What continuous access evaluation refuses at the DevOps service (docs/continuous-access-evaluation.md):

- An Entra token whose client declared CP1 (`xms_cc`): a user event (disabled, deleted, passwordReset,
  refreshTokensRevoked, mfaRequired) for its `oid` in a later second than the token's issuance (iat + 5 min)
  -> 401 with the `insufficient_claims` challenge, `nbf` = the event's second; the tenant's location
  policies (`ip_fence`) refusing the request's address -> the challenge with `nbf` = now and `xms_rp_ipaddr`.
- An Entra token without CP1: such a user event -> 401 TF400813 (our stricter choice: Entra lets them expire).
- An Entra token without CP1, or a PAT, when the organization's IP validation policy is on and `ip_fence`
  refuses the address -> 401 VS403463.
- A PAT whose owner's latest account event is userDisabled / userDeleted -> 401 TF400813.

Pipeline job tokens are not checked: they are the project's build service, not a user nor a service principal
any Conditional Access policy can name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from entryway.devops.cae.feed import CaeFeed
from entryway.devops.orgs.service import Organization
from entryway.identity.directory.first_party import AZURE_DEVOPS
from entryway.identity.policy.evaluate import Subject, ip_fence
from entryway.kit.clock import Clock

CP1 = "cp1"
# Entra (and our identity platform) back-dates a token's iat and nbf by five minutes for clock skew: the token
# was issued at iat + this. An event refuses the tokens issued before it, not those of the five minutes after.
ENTRA_IAT_BACKDATE_SECONDS = 300


@dataclass(frozen=True)
class CaeRefusal:
    """Why continuous access evaluation refuses a credential, and how the 401 says it."""

    reason: str  # for the log and the audit trail
    claims: str | None = None  # the claims (JSON) of an insufficient_claims challenge
    conditional_access_failed: bool = False  # VS403463


def is_cae_capable(claims: dict[str, Any]) -> bool:
    """The token's client declared the CP1 capability (the `xms_cc` claim, a list in Entra's tokens)."""
    value = claims.get("xms_cc")
    values: Iterable[Any] = value if isinstance(value, list) else [value]
    return any(isinstance(v, str) and v.lower() == CP1 for v in values)


def nbf_claims(value: int, address: str | None = None) -> str:
    """The claims a client must come back with (Entra's CAE challenge): a token issued at or after `value`,
    and, for a location refusal, the address the resource saw."""
    access_token: dict[str, Any] = {"nbf": {"essential": True, "value": str(value)}}
    if address is not None:
        access_token["xms_rp_ipaddr"] = {"value": address}
    return json.dumps({"access_token": access_token}, separators=(",", ":"))


class ContinuousAccess:
    def __init__(self, feed: CaeFeed, clock: Clock) -> None:
        self.feed = feed
        self._clock = clock

    async def check_entra_token(
        self,
        org: Organization,
        claims: dict[str, Any],
        address: str,
        *,
        is_app_only: bool,
        groups: frozenset[str] = frozenset(),
        roles: frozenset[str] = frozenset(),
    ) -> CaeRefusal | None:
        await self.feed.refresh()
        cae = is_cae_capable(claims)
        object_id = str(claims.get("oid", ""))
        iat = claims.get("iat")
        if not is_app_only and isinstance(iat, int | float):
            revocation = self.feed.revocation(org.tenant_id, object_id)
            issued = int(iat) + ENTRA_IAT_BACKDATE_SECONDS
            if revocation is not None and revocation.at > issued:
                reason = f"token issued at {issued}, before {revocation.kind} at {revocation.at}"
                return CaeRefusal(
                    f"continuous access evaluation: {reason}", nbf_claims(revocation.at) if cae else None
                )
        if not (cae or org.ip_conditional_access_validation):
            return None
        subject = (
            Subject("servicePrincipal", object_id)
            if is_app_only
            else Subject("user", object_id, tuple(groups), tuple(roles))
        )
        refused = self._location_refusal(org, subject, address)
        if refused is None:
            return None
        if cae:
            now = int(self._clock.timestamp())
            return CaeRefusal(f"continuous access evaluation: {refused}", nbf_claims(now, address))
        return CaeRefusal(
            f"IP Conditional Access policy validation: {refused}", conditional_access_failed=True
        )

    async def check_pat(
        self, org: Organization, owner_object_id: str, owner_groups: frozenset[str], address: str
    ) -> CaeRefusal | None:
        await self.feed.refresh()
        blocked = self.feed.account_blocked(org.tenant_id, owner_object_id)
        if blocked is not None:
            return CaeRefusal(
                f"its owner's account is {'disabled' if blocked == 'userDisabled' else 'deleted'}"
            )
        if not org.ip_conditional_access_validation:
            return None
        refused = self._location_refusal(org, Subject("user", owner_object_id, tuple(owner_groups)), address)
        if refused is None:
            return None
        return CaeRefusal(
            f"IP Conditional Access policy validation: {refused}", conditional_access_failed=True
        )

    def _location_refusal(self, org: Organization, subject: Subject, address: str) -> str | None:
        policies = self.feed.policies(org.tenant_id)
        if policies is None:
            return None
        decision = ip_fence(policies, subject, AZURE_DEVOPS.app_id, address)
        if not decision.block:
            return None
        names = ", ".join(f"'{o.display_name}'" for o in decision.outcomes if o.blocks)
        return f"{address} refused by {names}"
