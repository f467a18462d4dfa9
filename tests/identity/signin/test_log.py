"""The sign-in log writer: entries are queued and written in batches, a bad entry or a broken database never
raises into the caller, and `flush` / `close` write what is queued."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from entryway.config.settings import Settings
from entryway.identity.signin.log import SignInLog, SignInRecord
from entryway.kit.clock import ManualClock, as_utc
from entryway.runtime import Runtime
from entryway.store.db import Database, sqlite_url
from entryway.store.models import SignInLogRow

TENANT = "8d3b4a52-4a59-4f1f-9b1e-5b3f0c5d7a01"
APP = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(sqlite_url(tmp_path))
    yield database
    database.dispose()


def _rows(db: Database) -> list[SignInLogRow]:
    with db.read() as session:
        return list(session.scalars(select(SignInLogRow).order_by(SignInLogRow.created_at)))


def _count(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(SignInLogRow)) or 0


def _entry(**overrides: object) -> SignInRecord:
    values: dict[str, object] = {
        "tenant_id": TENANT,
        "principal_kind": "user",
        "is_interactive": True,
        "app_id": APP,
        "ip_address": "127.0.0.1",
    }
    values.update(overrides)
    return SignInRecord(**values)  # type: ignore[arg-type]


def test_flush_writes_every_queued_entry_with_the_clock_time(db: Database) -> None:
    clock = ManualClock(timedelta(days=3))
    sign_in_log = SignInLog(db, clock)
    policy = {
        "id": "p1",
        "displayName": "MFA",
        "result": "failure",
        "enforcedGrantControls": ["mfa"],
        "enforcedSessionControls": [],
    }
    first = sign_in_log.record(
        _entry(
            user_principal_name="ada@stepup.test",
            error_code=50076,
            failure_reason="AADSTS50076: ...",
            applied_policies=(policy,),
            conditional_access_status="failure",
        )
    )
    second = sign_in_log.record(_entry(error_code=0))
    sign_in_log.flush()
    rows = _rows(db)
    assert {r.id for r in rows} == {first, second}
    by_id = {r.id: r for r in rows}
    assert by_id[first].applied_policies == [policy]
    assert by_id[first].error_code == 50076
    assert by_id[first].conditional_access_status == "failure"
    assert abs((as_utc(by_id[first].created_at) - clock.now()).total_seconds()) < 5
    sign_in_log.close()


def test_the_background_writer_writes_without_a_flush(db: Database) -> None:
    sign_in_log = SignInLog(db, ManualClock())
    for _ in range(3):
        sign_in_log.record(_entry())
    deadline = time.monotonic() + 10
    while _count(db) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _count(db) == 3
    sign_in_log.close()


def test_long_values_are_cut_to_the_columns(db: Database) -> None:
    sign_in_log = SignInLog(db, ManualClock())
    sign_in_log.record(_entry(user_agent="x" * 5000, failure_reason="y" * 5000))
    sign_in_log.flush()
    (row,) = _rows(db)
    assert len(row.user_agent) == 512
    assert len(row.failure_reason) == 1024
    sign_in_log.close()


def test_an_entry_the_database_refuses_is_dropped_without_raising(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    sign_in_log = SignInLog(db, ManualClock())
    # Not JSON: the batch fails at the database; the caller never sees it, and nothing is written.
    sign_in_log.record(_entry(applied_policies=({"id": object()},)))
    with caplog.at_level(logging.ERROR, "entryway.identity.signin.log"):
        sign_in_log.flush()
    assert _count(db) == 0
    assert "could not be written" in caplog.text
    # The log goes on working afterwards.
    sign_in_log.record(_entry())
    sign_in_log.flush()
    assert _count(db) == 1
    sign_in_log.close()


def test_a_broken_database_never_raises_into_record_or_flush(tmp_path: Path) -> None:
    database = Database.open(sqlite_url(tmp_path))
    sign_in_log = SignInLog(database, ManualClock())
    with database.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE sign_in_log")
    assert sign_in_log.record(_entry()) is not None
    sign_in_log.flush()
    sign_in_log.close()
    database.dispose()


def test_close_writes_what_is_left_and_later_entries_are_dropped(db: Database) -> None:
    sign_in_log = SignInLog(db, ManualClock())
    sign_in_log.record(_entry())
    sign_in_log.close()
    assert _count(db) == 1
    assert sign_in_log.record(_entry()) is None
    sign_in_log.flush()
    assert _count(db) == 1


def test_entries_older_than_the_retention_are_pruned_by_the_writer(db: Database) -> None:
    clock = ManualClock()
    sign_in_log = SignInLog(db, clock, retention=timedelta(days=30))
    old = sign_in_log.record(_entry())
    sign_in_log.flush()
    clock.advance(timedelta(days=30, seconds=-600))
    recent = sign_in_log.record(_entry())
    sign_in_log.flush()  # prunes (the first flush after the one at the start), nothing is old enough yet
    assert {r.id for r in _rows(db)} == {old, recent}

    # Twenty minutes on, the first entry is past the retention; the writer prunes at most once an hour...
    clock.advance(timedelta(minutes=20))
    sign_in_log.flush()
    assert {r.id for r in _rows(db)} == {old, recent}
    # ...and an hour after its last prune it deletes what is too old, and only that.
    clock.advance(timedelta(hours=1))
    sign_in_log.flush()
    assert {r.id for r in _rows(db)} == {recent}
    sign_in_log.close()


def test_prune_deletes_in_batches_until_nothing_is_too_old(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("entryway.identity.signin.log.PRUNE_BATCH", 3)
    clock = ManualClock()
    sign_in_log = SignInLog(db, clock, retention=timedelta(days=7))
    for _ in range(8):
        sign_in_log.record(_entry())
    sign_in_log.flush()
    clock.advance(timedelta(days=8))
    kept = sign_in_log.record(_entry())
    assert sign_in_log.prune() == 8  # three transactions of three, three and two rows
    sign_in_log.flush()
    assert [r.id for r in _rows(db)] == [kept]
    sign_in_log.close()


def test_without_a_retention_every_entry_is_kept(db: Database) -> None:
    clock = ManualClock()
    sign_in_log = SignInLog(db, clock, retention=None)
    sign_in_log.record(_entry())
    sign_in_log.flush()
    clock.advance(timedelta(days=3650))
    sign_in_log.flush()
    assert sign_in_log.prune() == 0
    assert _count(db) == 1
    sign_in_log.close()


def test_a_failed_prune_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    database = Database.open(sqlite_url(tmp_path))
    sign_in_log = SignInLog(database, ManualClock())
    with database.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE sign_in_log")
    with caplog.at_level(logging.ERROR, "entryway.identity.signin.log"):
        assert sign_in_log.prune() == 0
    assert "pruning entries older than" in caplog.text
    sign_in_log.close()
    database.dispose()


@pytest.mark.parametrize(("days", "kept"), [(7, 0), (0, 1)])
def test_the_runtime_keeps_entries_for_the_configured_days(tmp_path: Path, days: int, kept: int) -> None:
    clock = ManualClock()
    runtime = Runtime.open(Settings(data_dir=tmp_path, sign_in_log_retention_days=days), clock)
    try:
        runtime.sign_in_log.record(_entry())
        runtime.sign_in_log.flush()
        clock.advance(timedelta(days=7, seconds=1))
        runtime.sign_in_log.flush()
        assert _count(runtime.db) == kept
    finally:
        runtime.close()
