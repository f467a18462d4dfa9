"""The PAT format: 84 characters in Azure DevOps' current layout (Microsoft's "common annotated security key"),
so secret scanners recognise a leaked Entryway PAT offline (devops-wire-contract 3, PAT format):

    0-51   52 random base62 characters (~309 bits)
    52-57  `JQQJ99`: the annotated-key signature; the final `9` marks a standard (not derived, not hashed) key
    58-59  the date it was minted: year (2024 = `A`, 2025 = `B`, ...) and month (`A` = January ... `L`)
    60-71  platform-reserved: Entryway writes the fixed filler `AAAAAAAAAAAA`
    72-75  provider-reserved: `AAAA`
    76-79  provider signature: `AZDO`
    80-83  checksum

Deviation: Azure DevOps' checksum is Marvin32-based. We do not hand-roll Marvin32; our checksum is the CRC32
of characters 0-79, reduced modulo 62**4 and written in 4 base62 characters. Scanners that only match the
layout (`JQQJ99` + `AZDO`) recognise our PATs; scanners that verify Microsoft's exact checksum will not.

`is_well_formed` is checked before any database lookup: a mistyped or forged value costs no query.
"""

from __future__ import annotations

import binascii
import hmac
import secrets
import string
from datetime import datetime

# The key alphabet, in the order the annotated-key layout uses for its date characters.
ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits
_ALPHABET_SET = frozenset(ALPHABET)

LENGTH = 84
RANDOM_LENGTH = 52
SIGNATURE = "JQQJ99"
PLATFORM_RESERVED = "A" * 12
PROVIDER_RESERVED = "AAAA"
PROVIDER_SIGNATURE = "AZDO"
CHECKSUM_LENGTH = 4
FIRST_YEAR = 2024

_SIGNATURE_AT = RANDOM_LENGTH  # 52
_DATE_AT = _SIGNATURE_AT + len(SIGNATURE)  # 58
_PLATFORM_AT = _DATE_AT + 2  # 60
_PROVIDER_AT = _PLATFORM_AT + len(PLATFORM_RESERVED)  # 72
_CHECKSUM_AT = LENGTH - CHECKSUM_LENGTH  # 80
_FIXED_TAIL = PLATFORM_RESERVED + PROVIDER_RESERVED + PROVIDER_SIGNATURE  # characters 60-79


def _checksum(body: str) -> str:
    number = binascii.crc32(body.encode("ascii")) % (62**CHECKSUM_LENGTH)
    chars = []
    for _ in range(CHECKSUM_LENGTH):
        number, rem = divmod(number, 62)
        chars.append(ALPHABET[rem])
    return "".join(reversed(chars))


def date_characters(when: datetime) -> str:
    """Year and month of minting; years past the alphabet's end keep its last character."""
    year = min(max(when.year - FIRST_YEAR, 0), len(ALPHABET) - 1)
    return ALPHABET[year] + ALPHABET[when.month - 1]


def mint(now: datetime) -> str:
    """A new PAT value, dated with the injected clock's `now`."""
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    body = random_part + SIGNATURE + date_characters(now) + _FIXED_TAIL
    return body + _checksum(body)


def is_well_formed(value: str) -> bool:
    """True when `value` has the PAT's length, alphabet, fixed parts, a valid date and a valid checksum.
    The checksum is compared in constant time."""
    if len(value) != LENGTH or not all(c in _ALPHABET_SET for c in value):
        return False
    if value[_SIGNATURE_AT:_DATE_AT] != SIGNATURE or value[_PLATFORM_AT:_CHECKSUM_AT] != _FIXED_TAIL:
        return False
    if ALPHABET.index(value[_DATE_AT + 1]) > 11:  # month A..L
        return False
    body, check = value[:_CHECKSUM_AT], value[_CHECKSUM_AT:]
    return hmac.compare_digest(_checksum(body), check)
