"""The PAT scope catalogue and its inclusion order, as Azure DevOps documents it (docs integrate/includes/scopes.md).

Within a family a later scope includes every earlier one (`vso.code` < `vso.code_write` < `vso.code_manage`
< `vso.code_full`); `app_token` is full access and includes every scope. Scopes of different families never
include each other. Route and Git checks ask `includes(granted, needed)` or `grants(scope_string, needed)`.
"""

from __future__ import annotations

FULL_ACCESS = "app_token"

# Each family lists its scopes from the narrowest to the widest.
FAMILIES: tuple[tuple[str, ...], ...] = (
    ("vso.code", "vso.code_write", "vso.code_manage", "vso.code_full"),
    ("vso.code_status",),
    ("vso.project", "vso.project_write", "vso.project_manage"),
    ("vso.build", "vso.build_execute"),
    ("vso.work", "vso.work_write", "vso.work_full"),
    ("vso.packaging", "vso.packaging_write", "vso.packaging_manage"),
    ("vso.release", "vso.release_execute", "vso.release_manage"),
    ("vso.agentpools", "vso.agentpools_manage"),
    ("vso.serviceendpoint", "vso.serviceendpoint_query", "vso.serviceendpoint_manage"),
    ("vso.variablegroups_read", "vso.variablegroups_write", "vso.variablegroups_manage"),
    ("vso.securefiles_read", "vso.securefiles_write", "vso.securefiles_manage"),
    ("vso.graph", "vso.graph_manage"),
    ("vso.identity", "vso.identity_manage"),
    ("vso.wiki", "vso.wiki_write"),
    ("vso.test", "vso.test_write"),
    ("vso.profile", "vso.profile_write"),
    ("vso.tokens",),
    ("vso.tokenadministration",),
    ("vso.auditlog",),
    ("vso.analytics",),
    ("vso.threads_full",),
    ("vso.memberentitlementmanagement", "vso.memberentitlementmanagement_write"),
)

# scope -> (family index, rank within the family)
_POSITION: dict[str, tuple[int, int]] = {
    scope: (family, rank) for family, scopes in enumerate(FAMILIES) for rank, scope in enumerate(scopes)
}

KNOWN_SCOPES: frozenset[str] = frozenset(_POSITION) | {FULL_ACCESS}


def is_known(scope: str) -> bool:
    return scope in KNOWN_SCOPES


def parse(scope_string: str) -> list[str]:
    """The scopes of a space-separated scope string, as Azure DevOps writes it, in order, without repeats."""
    seen: list[str] = []
    for scope in scope_string.split():
        if scope not in seen:
            seen.append(scope)
    return seen


def includes(granted: str, needed: str) -> bool:
    """True when holding `granted` allows what `needed` allows."""
    if granted in (FULL_ACCESS, needed):
        return True
    held, wanted = _POSITION.get(granted), _POSITION.get(needed)
    if held is None or wanted is None:
        return False
    return held[0] == wanted[0] and held[1] >= wanted[1]


def grants(scope_string: str, needed: str) -> bool:
    """True when any scope of a PAT's space-separated scope string includes `needed`."""
    return any(includes(granted, needed) for granted in scope_string.split())
