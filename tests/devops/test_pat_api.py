"""Personal access tokens: the scope order and the token format, then the lifecycle API over TLS."""

from __future__ import annotations

from entryway.devops.pats import scopes


def test_scope_inclusion_follows_the_family_order() -> None:
    assert scopes.includes("vso.code_write", "vso.code")
    assert scopes.includes("vso.code_manage", "vso.code_write")
    assert scopes.includes("vso.code", "vso.code")
    assert not scopes.includes("vso.code", "vso.code_write")
    assert not scopes.includes("vso.code_full", "vso.build")
    assert not scopes.includes("vso.unknown", "vso.unknown_write")


def test_full_access_includes_every_scope() -> None:
    assert all(scopes.includes("app_token", s) for s in scopes.KNOWN_SCOPES)
    assert scopes.grants("vso.build vso.code_write", "vso.code")
    assert not scopes.grants("vso.build vso.work", "vso.code")
    assert scopes.parse("vso.code  vso.code vso.build") == ["vso.code", "vso.build"]
