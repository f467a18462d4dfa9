"""directory.reads.policy_set_from_rows: stored rows to a PolicySet, parsed once per content, never stale."""

from __future__ import annotations

import copy

import pytest

from entryway.identity.directory.reads import policy_set_from_rows
from entryway.identity.policy.model import PolicyInvalid, PolicyState
from tests.identity.policy.test_model import GRAPH_POLICY

LOCATION = ("77777777-7777-7777-7777-777777777777", "Office", True, ["10.0.0.0/8"])


def _row(policy: dict[str, object]) -> tuple[object, ...]:
    return (
        policy["id"],
        policy["displayName"],
        policy["state"],
        policy["conditions"],
        policy["grantControls"],
        policy["sessionControls"],
    )


def test_same_content_is_parsed_once_and_a_change_is_seen() -> None:
    first = policy_set_from_rows([_row(GRAPH_POLICY)], [LOCATION])
    again = policy_set_from_rows([_row(copy.deepcopy(GRAPH_POLICY))], [LOCATION])
    assert again.policies[0] is first.policies[0]
    assert again.locations[0] is first.locations[0]
    changed = {**copy.deepcopy(GRAPH_POLICY), "state": "disabled"}
    assert policy_set_from_rows([_row(changed)], [LOCATION]).policies[0].state is PolicyState.DISABLED
    moved = (*LOCATION[:3], ["192.168.0.0/16"])
    assert str(policy_set_from_rows([], [moved]).locations[0].ranges[0]) == "192.168.0.0/16"


def test_an_unreadable_stored_policy_raises() -> None:
    broken = {
        **copy.deepcopy(GRAPH_POLICY),
        "grantControls": {"operator": "OR", "builtInControls": ["magic"]},
    }
    with pytest.raises(PolicyInvalid):
        policy_set_from_rows([_row(broken)], [])
