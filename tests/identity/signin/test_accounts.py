"""Accounts against the shared server's database: smart lockout and TOTP, with the shared clock."""

from __future__ import annotations

import os

import pyotp
import pytest

from entryway.identity.directory.service import DirectoryService
from entryway.identity.protocol.sign_ins import PasswordCheck
from entryway.identity.signin.accounts import Accounts, redirect_uri_matches
from entryway.kit.ids import new_guid
from tests.conftest import CONTOSO_TENANT, Instance

TOTP_KEY = os.urandom(32)


def _new_user(entryway: Instance) -> str:
    upn = f"u{new_guid()[:8]}@contoso.test"
    with entryway.runtime.db.unit_of_work() as session:
        directory = DirectoryService(session, entryway.clock, entryway.runtime.digester)
        user = directory.create_user(directory.find_tenant(CONTOSO_TENANT), upn, "Right-Password-1")
        return user.object_id


def _check(entryway: Instance, user_id: str, password: str, source: str = "203.0.113.5") -> PasswordCheck:
    with entryway.runtime.db.unit_of_work() as session:
        accounts = Accounts(session, entryway.clock, TOTP_KEY)
        return accounts.verify_password(accounts.find_user_by_id(user_id), password, source)


def test_ten_wrong_passwords_lock_the_account_for_that_source_then_longer(entryway: Instance) -> None:
    user_id = _new_user(entryway)
    for _ in range(9):
        assert _check(entryway, user_id, "wrong") is PasswordCheck.WRONG
    assert _check(entryway, user_id, "wrong") is PasswordCheck.WRONG
    # Locked now: even the right password is not tried, from that source; another source still may sign in.
    assert _check(entryway, user_id, "Right-Password-1") is PasswordCheck.LOCKED
    assert _check(entryway, user_id, "wrong", source="198.51.100.7") is PasswordCheck.WRONG
    entryway.clock.advance(61)
    for _ in range(10):
        assert _check(entryway, user_id, "wrong") is PasswordCheck.WRONG
    entryway.clock.advance(61)  # the second lockout lasts 120 s
    assert _check(entryway, user_id, "Right-Password-1") is PasswordCheck.LOCKED
    entryway.clock.advance(60)
    assert _check(entryway, user_id, "Right-Password-1") is PasswordCheck.OK
    # Success resets the count.
    assert _check(entryway, user_id, "wrong") is PasswordCheck.WRONG
    assert _check(entryway, user_id, "Right-Password-1") is PasswordCheck.OK


def test_unknown_user_and_disabled_user(entryway: Instance) -> None:
    with entryway.runtime.db.unit_of_work() as session:
        accounts = Accounts(session, entryway.clock, TOTP_KEY)
        assert accounts.verify_password(None, "x", "s") is PasswordCheck.WRONG
    user_id = _new_user(entryway)
    with entryway.runtime.db.unit_of_work() as session:
        accounts = Accounts(session, entryway.clock, TOTP_KEY)
        user = accounts.find_user_by_id(user_id)
        assert user is not None
        user.account_enabled = False
        assert accounts.verify_password(user, "wrong", "s") is PasswordCheck.WRONG
        assert accounts.verify_password(user, "Right-Password-1", "s") is PasswordCheck.DISABLED


def test_totp_enrollment_then_codes_each_step_once(entryway: Instance) -> None:
    user_id = _new_user(entryway)
    with entryway.runtime.db.unit_of_work() as session:
        accounts = Accounts(session, entryway.clock, TOTP_KEY)
        user = accounts.find_user_by_id(user_id)
        assert user is not None
        secret = accounts.start_totp_enrollment(user)
        assert secret.encode() not in (user.totp_secret_encrypted or b"")
        assert not accounts.totp_enrolled(user)
        totp = pyotp.TOTP(secret)
        assert accounts.verify_totp(user, "12345") is PasswordCheck.WRONG
        assert accounts.verify_totp(user, totp.at(entryway.clock.timestamp())) is PasswordCheck.OK
        assert accounts.totp_enrolled(user)
        # The same code (the same time step) is never accepted twice.
        assert accounts.verify_totp(user, totp.at(entryway.clock.timestamp())) is PasswordCheck.WRONG
        entryway.clock.advance(30)
        assert accounts.verify_totp(user, totp.at(entryway.clock.timestamp())) is PasswordCheck.OK
        # Under another key the secret cannot be read: no code is accepted.
        other = Accounts(session, entryway.clock, os.urandom(32))
        entryway.clock.advance(30)
        assert other.verify_totp(user, totp.at(entryway.clock.timestamp())) is PasswordCheck.WRONG


@pytest.mark.parametrize(
    ("registered", "requested", "ok"),
    [
        ("https://app.example/cb", "https://app.example/cb", True),
        ("https://app.example/cb", "https://app.example/cb/", False),
        ("https://app.example/cb", "https://app.example:8443/cb", False),
        ("http://localhost", "http://localhost:51234", True),
        ("http://localhost", "http://localhost:51234/", True),
        ("http://localhost/cb", "http://localhost:8400/cb", True),
        ("http://localhost/cb", "http://localhost:8400/other", False),
        ("http://127.0.0.1", "http://127.0.0.1:9000", True),
        ("http://[::1]", "http://[::1]:9000", True),
        ("http://localhost", "http://127.0.0.1:9000", False),
        ("http://localhost", "https://localhost:9000", False),
        ("http://localhost", "http://user@localhost:9000", False),
        ("http://localhost", "http://localhost:99999", False),
        ("http://localhost", "http://localhost.evil.example:80", False),
    ],
)
def test_redirect_uri_matching(registered: str, requested: str, ok: bool) -> None:
    assert redirect_uri_matches(registered, requested) is ok


def test_wrong_codes_lock_the_second_factor(entryway: Instance) -> None:
    user_id = _new_user(entryway)
    with entryway.runtime.db.unit_of_work() as session:
        accounts = Accounts(session, entryway.clock, TOTP_KEY)
        user = accounts.find_user_by_id(user_id)
        assert user is not None
        totp = pyotp.TOTP(accounts.start_totp_enrollment(user))
        right = totp.at(entryway.clock.timestamp())
        wrong = "000000" if right != "000000" else "111111"
        for _ in range(10):
            assert accounts.verify_totp(user, wrong) is PasswordCheck.WRONG
        assert accounts.verify_totp(user, right) is PasswordCheck.LOCKED
        entryway.clock.advance(61)
        assert accounts.verify_totp(user, totp.at(entryway.clock.timestamp())) is PasswordCheck.OK
