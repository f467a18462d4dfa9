"""Scopes and resources: `{resource}/.default`, `{resource}/{scope}`, and v1's `resource=`."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SCOPE = "/.default"
# OpenID Connect scopes that never name a resource.
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})


@dataclass(frozen=True)
class ScopeRequest:
    """The resource a scope string names, and the scope values asked of it."""

    resource: str
    values: tuple[str, ...]  # ".default" or delegated scope names
    reserved: tuple[str, ...]

    @property
    def is_default(self) -> bool:
        return self.values == (".default",)


def split_scope(scope: str) -> list[str]:
    return [s for s in scope.split(" ") if s]


def resource_of(scope: str) -> tuple[str, str]:
    """Split `https://app/x/.default` into (`https://app/x`, `.default`); a bare GUID scope names a resource.

    Entra accepts `https://management.core.windows.net//.default` (az appends `/.default` blindly):
    the resource keeps its trailing slash.
    """
    if "/" not in scope:
        return scope, ""
    resource, _, value = scope.rpartition("/")
    return resource, value
