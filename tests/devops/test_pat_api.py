"""Personal access tokens: the scope order and the token format, then the lifecycle API over TLS."""

from __future__ import annotations

from datetime import UTC, datetime

from entryway.devops.pats import format as pat_format
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


def test_a_minted_pat_has_azure_devops_layout() -> None:
    value = pat_format.mint(datetime(2026, 11, 27, tzinfo=UTC))
    assert len(value) == 84
    assert value.isalnum()
    assert value.isascii()
    assert value[52:58] == "JQQJ99"
    assert value[58:60] == "CK"  # 2026 -> C, November -> K
    assert value[60:72] == "A" * 12
    assert value[72:80] == "AAAAAZDO"
    assert pat_format.is_well_formed(value)
    assert pat_format.mint(datetime(2026, 11, 27, tzinfo=UTC))[:52] != value[:52]


def test_a_damaged_pat_is_not_well_formed() -> None:
    value = pat_format.mint(datetime(2025, 1, 1, tzinfo=UTC))
    flipped = "B" if value[10] != "B" else "C"
    assert not pat_format.is_well_formed(value[:10] + flipped + value[11:])  # checksum
    assert not pat_format.is_well_formed(value[:-1])  # length
    assert not pat_format.is_well_formed(value[:52] + "JQQJ9D" + value[58:])  # signature
    assert not pat_format.is_well_formed(value[:76] + "AZDX" + value[80:])  # provider
    assert not pat_format.is_well_formed(value[:5] + "-" + value[6:])  # alphabet
    assert not pat_format.is_well_formed("a" * 52)  # a legacy PAT is not ours
