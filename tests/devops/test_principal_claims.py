"""What a verified Entra token gives the DevOps Principal: `groups` and `wids`, read defensively."""

from __future__ import annotations

from typing import Any

import pytest

from entryway.devops.auth.verifier import VerifiedToken

GROUP = "0f1e2d3c-4b5a-4968-8776-655443322110"
ROLE = "e3973bdf-4987-49ae-837a-ba8e231c7286"


def test_groups_and_wids_become_sets() -> None:
    token = VerifiedToken({"oid": "o", "tid": "t", "groups": [GROUP, GROUP], "wids": [ROLE]})
    assert token.groups == frozenset({GROUP})
    assert token.roles == frozenset({ROLE})


@pytest.mark.parametrize(
    "claims",
    [
        {},  # no claim: no groups (also Entra's overage, where `hasgroups` stands in for them)
        {"hasgroups": True},
        {"groups": GROUP, "wids": ROLE},  # a string, not a list
        {"groups": None, "wids": {"a": 1}},
    ],
)
def test_a_missing_or_malformed_claim_is_empty(claims: dict[str, Any]) -> None:
    token = VerifiedToken({"oid": "o", "tid": "t", **claims})
    assert token.groups == frozenset()
    assert token.roles == frozenset()


def test_non_string_members_are_dropped() -> None:
    token = VerifiedToken(
        {"oid": "o", "tid": "t", "groups": [GROUP, 7, None, {"id": 1}], "wids": [ROLE, 1.5]}
    )
    assert token.groups == frozenset({GROUP})
    assert token.roles == frozenset({ROLE})
