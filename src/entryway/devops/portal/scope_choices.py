"""The scope picker of the token page: each scope family as a row of choices from the narrowest to the
widest, as Azure DevOps' "Create a new personal access token" panel shows them (pats/scopes.FAMILIES)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from entryway.devops.pats.scopes import FAMILIES, FULL_ACCESS

# The family's name in the Azure DevOps panel, by its narrowest scope.
_FAMILY_NAMES = {
    "vso.code": "Code",
    "vso.code_status": "Code status",
    "vso.project": "Project and Team",
    "vso.build": "Build",
    "vso.work": "Work Items",
    "vso.packaging": "Packaging",
    "vso.release": "Release",
    "vso.agentpools": "Agent Pools",
    "vso.serviceendpoint": "Service Connections",
    "vso.variablegroups_read": "Variable Groups",
    "vso.securefiles_read": "Secure Files",
    "vso.graph": "Graph",
    "vso.identity": "Identity",
    "vso.wiki": "Wiki",
    "vso.test": "Test Management",
    "vso.profile": "User Profile",
    "vso.tokens": "Tokens",
    "vso.tokenadministration": "Token Administration",
    "vso.auditlog": "Auditing",
    "vso.analytics": "Analytics",
    "vso.threads_full": "Pull Request Threads",
    "vso.memberentitlementmanagement": "Member Entitlement Management",
}
# What a choice is called, by the scope's suffix.
_LEVELS = {
    "": "Read",
    "_read": "Read",
    "_write": "Read & write",
    "_manage": "Read, write & manage",
    "_full": "Full",
    "_execute": "Read & execute",
    "_query": "Read & query",
}
PACKAGING = "vso.packaging"


@dataclass(frozen=True)
class Choice:
    scope: str
    label: str


@dataclass(frozen=True)
class Family:
    field: str  # the form field: family-<index>
    name: str
    choices: tuple[Choice, ...]


def _label(family_root: str, scope: str) -> str:
    base = family_root.removesuffix("_read")
    suffix = scope[len(base) :]
    if len(FAMILY_BY_SCOPE.get(scope, ())) == 1:
        return "Use" if suffix == "" else _LEVELS.get(suffix, scope)
    return _LEVELS.get(suffix, scope)


FAMILY_BY_SCOPE: dict[str, tuple[str, ...]] = {s: family for family in FAMILIES for s in family}

SCOPE_FAMILIES: tuple[Family, ...] = tuple(
    Family(
        field=f"family-{index}",
        name=_FAMILY_NAMES.get(family[0], family[0]),
        choices=tuple(Choice(scope, _label(family[0], scope)) for scope in family),
    )
    for index, family in enumerate(FAMILIES)
)


def families_for(packaging_only: bool) -> tuple[Family, ...]:
    """The families a person may pick from: only Packaging when the organization allows no other scope
    (devops-wire-contract 4: "users then see only packaging scopes")."""
    if packaging_only:
        return tuple(f for f in SCOPE_FAMILIES if f.choices[0].scope == PACKAGING)
    return SCOPE_FAMILIES


def scope_from_form(form: Mapping[str, str]) -> str:
    """The space-separated scope string the form asks for: `app_token` for full access, else the chosen
    scope of each family (a value that is not one of the family's choices is ignored; PatService refuses an
    empty scope)."""
    if form.get("access") == "full":
        return FULL_ACCESS
    chosen = []
    for family in SCOPE_FAMILIES:
        value = form.get(family.field, "")
        if any(choice.scope == value for choice in family.choices):
            chosen.append(value)
    return " ".join(chosen)
