"""The critical-event feed on a real database: the start-up load (28 h of user events, each user's latest
account event of any age, each tenant's latest policy snapshot), polling at most once a second, rows that
become visible out of sequence order (PostgreSQL) picked up through the remembered gaps, and snapshots that
are older or unreadable never replacing a newer one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.orm import Session

from entryway.config.settings import Settings
from entryway.devops.cae.feed import GAP_SECONDS, CaeFeed
from entryway.kit.clock import ManualClock
from entryway.runtime import Runtime
from entryway.store.models import ContinuousAccessEventRow

T = TypeVar("T")
TENANT = "11111111-2222-4333-8444-555555555555"
USER = "aaaaaaaa-0000-4000-8000-000000000001"
LOCATION = {
    "@odata.type": "#microsoft.graph.ipNamedLocation",
    "id": "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
    "displayName": "Office",
    "isTrusted": True,
    "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "10.0.0.0/8"}],
}


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime.open(Settings(data_dir=tmp_path), ManualClock())
    yield rt
    rt.close()


def feed_of(runtime: Runtime) -> CaeFeed:
    async def read(fn: Callable[[Session], T]) -> T:
        with runtime.db.read() as session:
            return fn(session)

    return CaeFeed(read, runtime.clock)


def add(runtime: Runtime, kind: str, *, seq: int | None = None, ago: float = 0.0, **values: Any) -> None:
    at = runtime.clock.now() - timedelta(seconds=ago)
    with runtime.db.unit_of_work() as session:
        row = ContinuousAccessEventRow(
            tenant_id=TENANT, kind=kind, occurred_at=at, subject_id=values.get("subject", USER),
            payload=values.get("payload", {}),
        )  # fmt: skip
        if seq is not None:
            row.seq = seq
        session.add(row)


def run(feed: CaeFeed) -> None:
    """feed.refresh() on an event loop of its own thread (the test's thread may have one running already:
    Playwright's sync API leaves its loop there)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(feed.refresh())).result()


def refresh(feed: CaeFeed, clock: ManualClock, seconds: float = 1.0) -> None:
    clock.advance(seconds)
    run(feed)


def test_the_start_loads_recent_user_events_old_account_state_and_the_latest_snapshot(
    runtime: Runtime,
) -> None:
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    add(runtime, "userDisabled", ago=40 * 3600)  # older than any token: still matters for PATs
    add(runtime, "passwordReset", ago=30 * 3600)  # older than any token: not loaded
    add(runtime, "policiesChanged", subject=None, payload={"policies": [], "namedLocations": []})
    add(runtime, "policiesChanged", subject=None, payload={"policies": [], "namedLocations": [LOCATION]})
    feed = feed_of(runtime)
    run(feed)
    assert feed.account_blocked(TENANT, USER) == "userDisabled"
    revocation = feed.revocation(TENANT, USER)
    assert revocation is not None
    assert revocation.kind == "userDisabled"  # the 40-hour-old disable, not the 30-hour-old reset
    snapshot = feed.policies(TENANT)
    assert snapshot is not None
    assert [loc.display_name for loc in snapshot.locations] == ["Office"]
    assert feed.policies("00000000-0000-4000-8000-000000000000") is None


def test_polls_at_most_once_a_second_and_enable_follows_disable(runtime: Runtime) -> None:
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    feed = feed_of(runtime)
    run(feed)
    add(runtime, "userDisabled")
    refresh(feed, clock, 0.5)
    assert feed.account_blocked(TENANT, USER) is None  # polled half a second ago: not yet
    refresh(feed, clock, 0.6)
    assert feed.account_blocked(TENANT, USER) == "userDisabled"
    add(runtime, "userEnabled", ago=-1)
    refresh(feed, clock)
    assert feed.account_blocked(TENANT, USER) is None
    revocation = feed.revocation(TENANT, USER)
    assert revocation is not None
    assert revocation.kind == "userDisabled"  # enabling does not make earlier tokens good again


def test_a_row_committed_out_of_sequence_order_is_not_missed(runtime: Runtime) -> None:
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    feed = feed_of(runtime)
    add(runtime, "userEnabled", seq=1, subject="aaaaaaaa-0000-4000-8000-000000000009")
    run(feed)
    # seq 3 becomes visible before seq 2 (PostgreSQL: 2's transaction commits later).
    add(runtime, "userEnabled", seq=3, subject="aaaaaaaa-0000-4000-8000-000000000009")
    refresh(feed, clock)
    add(runtime, "userDeleted", seq=2)
    refresh(feed, clock)
    assert feed.account_blocked(TENANT, USER) == "userDeleted"


def test_a_gap_is_forgotten_after_a_minute(runtime: Runtime) -> None:
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    feed = feed_of(runtime)
    add(runtime, "userEnabled", seq=1, subject="aaaaaaaa-0000-4000-8000-000000000009")
    run(feed)
    add(runtime, "userEnabled", seq=3, subject="aaaaaaaa-0000-4000-8000-000000000009")
    refresh(feed, clock)
    refresh(feed, clock, GAP_SECONDS + 1)  # a rolled-back transaction: seq 2 never comes
    add(runtime, "userDeleted", seq=2)  # (here it does, too late to be read)
    refresh(feed, clock)
    assert feed.account_blocked(TENANT, USER) is None


def test_an_older_or_unreadable_snapshot_never_replaces_a_newer_one(runtime: Runtime) -> None:
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    feed = feed_of(runtime)
    add(runtime, "policiesChanged", seq=1, subject=None, payload={"policies": [], "namedLocations": []})
    run(feed)
    add(
        runtime,
        "policiesChanged",
        seq=3,
        subject=None,
        payload={"policies": [], "namedLocations": [LOCATION]},
    )
    refresh(feed, clock)
    add(runtime, "policiesChanged", seq=2, subject=None, payload={"policies": [], "namedLocations": []})
    refresh(feed, clock)
    add(runtime, "policiesChanged", seq=4, subject=None, payload={"policies": "not a list"})
    refresh(feed, clock)
    snapshot = feed.policies(TENANT)
    assert snapshot is not None
    assert [loc.display_name for loc in snapshot.locations] == ["Office"]


def test_a_clock_that_went_back_does_not_stop_the_feed(runtime: Runtime) -> None:
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    feed = feed_of(runtime)
    run(feed)
    clock.advance(-3600.0)  # NTP, or a test giving its clock back
    add(runtime, "userDisabled")
    run(feed)
    assert feed.account_blocked(TENANT, USER) == "userDisabled"
