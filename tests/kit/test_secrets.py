"""Minted secrets: typed prefix, entropy, checksum; keyed digests."""

from __future__ import annotations

import pytest

from entryway.kit.clock import ManualClock
from entryway.kit.secrets import CLIENT_SECRET, MasterKey, SecretDigester


def test_minted_secret_has_prefix_length_and_valid_checksum() -> None:
    secret = CLIENT_SECRET.mint()
    assert secret.startswith("ewcs_")
    assert len(secret) == CLIENT_SECRET.length
    assert CLIENT_SECRET.is_well_formed(secret)
    assert CLIENT_SECRET.mint() != secret


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"),  # checksum off by one character
        lambda s: s[:10] + ("x" if s[10] != "x" else "y") + s[11:],  # body changed
        lambda s: s[:-1],  # too short
        lambda s: "ewcx~" + s[5:],  # wrong prefix
        lambda s: s[:8] + "!" + s[9:],  # outside the alphabet
    ],
)
def test_damaged_secret_is_not_well_formed(mutate) -> None:  # type: ignore[no-untyped-def]
    assert not CLIENT_SECRET.is_well_formed(mutate(CLIENT_SECRET.mint()))


def test_digest_is_keyed() -> None:
    a = SecretDigester(MasterKey(b"a" * 32).derive("p"))
    b = SecretDigester(MasterKey(b"b" * 32).derive("p"))
    assert a.digest("s") != b.digest("s")
    assert a.matches("s", a.digest("s"))
    assert not a.matches("t", a.digest("s"))


def test_master_key_refuses_short_material() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        MasterKey(b"short")
    with pytest.raises(ValueError, match="base64"):
        MasterKey.from_base64("not base64!")


def test_manual_clock_moves_forward() -> None:
    clock = ManualClock()
    before = clock.timestamp()
    clock.advance(3600)
    assert clock.timestamp() - before >= 3600
    assert clock.now().tzinfo is not None
