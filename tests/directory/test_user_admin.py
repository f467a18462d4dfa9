"""User administration and its critical events: disable, enable, delete, password reset, revoke sessions and
MFA newly required each write one `cae_events` row in the same unit of work (identity/directory/cae_outbox.py);
refusals write nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from entryway.identity.directory.cae_outbox import CaeEventKind, publish_event
from entryway.identity.directory.service import DirectoryError, DirectoryService
from entryway.kit.ids import new_guid
from entryway.kit.passwords import verify_password
from entryway.runtime import Runtime
from entryway.store.models import (
    BrowserSessionRow,
    ContinuousAccessEventRow,
    GroupMemberRow,
    GroupRow,
    RefreshTokenFamilyRow,
    SessionAccountRow,
    TenantRow,
    UserRow,
)

PASSWORD = "Old-Password-0042"


def events(session: Session) -> list[tuple[str, str | None]]:
    rows = session.scalars(select(ContinuousAccessEventRow).order_by(ContinuousAccessEventRow.seq))
    return [(r.kind, r.subject_id) for r in rows]


@pytest.fixture
def user(directory: DirectoryService, tenant: TenantRow) -> UserRow:
    return directory.create_user(tenant, "kim@contoso.test", PASSWORD, mfa_required=None)


def signed_in(session: Session, runtime: Runtime, user: UserRow, families: int = 2) -> None:
    """Refresh-token families and a browser session, as sign-ins leave them."""
    now = runtime.clock.now()
    for _ in range(families):
        session.add(
            RefreshTokenFamilyRow(
                id=new_guid(), tenant_id=user.tenant_id, client_id=new_guid(), user_id=user.object_id,
                scope="openid", auth_time=now, amr=["pwd"], created_at=now,
            )
        )  # fmt: skip
    session.add(BrowserSessionRow(digest="d" * 64, created_at=now, last_seen_at=now))
    session.flush()
    session.add(
        SessionAccountRow(
            session_digest="d" * 64,
            user_id=user.object_id,
            tenant_id=user.tenant_id,
            auth_time=now,
            amr=["pwd"],
        )
    )
    session.flush()


def revoked_families(session: Session, user: UserRow) -> list[str | None]:
    rows = session.scalars(
        select(RefreshTokenFamilyRow).where(RefreshTokenFamilyRow.user_id == user.object_id)
    )
    return [r.revoked_reason for r in rows]


def test_disable_and_enable_are_events_once_each(
    directory: DirectoryService, session: Session, user: UserRow
) -> None:
    assert directory.set_account_enabled(user, False) is True
    assert user.account_enabled is False
    assert directory.set_account_enabled(user, False) is False  # already disabled: no second event
    assert directory.set_account_enabled(user, True) is True
    assert events(session) == [("userDisabled", user.object_id), ("userEnabled", user.object_id)]
    row = session.scalars(select(ContinuousAccessEventRow)).first()
    assert row is not None
    assert (row.tenant_id, row.payload) == (user.tenant_id, {})


def test_password_reset_revokes_refresh_tokens_and_browser_sessions(
    directory: DirectoryService, session: Session, runtime: Runtime, user: UserRow
) -> None:
    signed_in(session, runtime, user)
    assert directory.set_password(user, "New-Password-0042") == 2
    assert verify_password(user.password_hash or "", "New-Password-0042")
    assert revoked_families(session, user) == ["password reset", "password reset"]
    assert session.scalar(select(func.count()).select_from(SessionAccountRow)) == 0
    assert events(session) == [("passwordReset", user.object_id)]


def test_a_short_password_is_refused_and_changes_nothing(
    directory: DirectoryService, session: Session, runtime: Runtime, user: UserRow
) -> None:
    signed_in(session, runtime, user)
    with pytest.raises(DirectoryError, match="at least 8 characters"):
        directory.set_password(user, "short")
    assert verify_password(user.password_hash or "", PASSWORD)
    assert revoked_families(session, user) == [None, None]
    assert session.scalar(select(func.count()).select_from(SessionAccountRow)) == 1
    assert events(session) == []


def test_revoke_sessions(
    directory: DirectoryService, session: Session, runtime: Runtime, user: UserRow
) -> None:
    signed_in(session, runtime, user, families=3)
    assert directory.revoke_sessions(user) == 3
    assert revoked_families(session, user) == ["revoked by administrator"] * 3
    assert session.scalar(select(func.count()).select_from(SessionAccountRow)) == 0
    # Revoking again revokes nothing new, but is still the administrator's event (tokens issued since).
    assert directory.revoke_sessions(user) == 0
    assert events(session) == [("refreshTokensRevoked", user.object_id)] * 2


def test_mfa_newly_required_is_an_event_and_only_then(
    directory: DirectoryService, session: Session, tenant: TenantRow, user: UserRow
) -> None:
    directory.set_user_mfa(user, False)
    directory.set_user_mfa(user, None)  # the default is off: still not required
    assert events(session) == []
    directory.set_user_mfa(user, True)
    directory.set_user_mfa(user, True)  # already required
    assert events(session) == [("mfaRequired", user.object_id)]


def test_the_tenant_default_turned_on_is_an_event_for_the_users_following_it(
    directory: DirectoryService, session: Session, tenant: TenantRow, user: UserRow
) -> None:
    opted_out = directory.create_user(tenant, "lou@contoso.test", PASSWORD, mfa_required=False)
    required = directory.create_user(tenant, "max@contoso.test", PASSWORD, mfa_required=True)
    directory.set_mfa_required_default(tenant, True)
    directory.set_mfa_required_default(tenant, True)  # already on
    assert events(session) == [("mfaRequired", user.object_id)]
    directory.set_mfa_required_default(tenant, False)
    assert len(events(session)) == 1
    # A user following the default while it is on needs no event when set to required.
    directory.set_mfa_required_default(tenant, True)
    directory.set_user_mfa(user, True)
    assert [subject for _, subject in events(session)] == [user.object_id, user.object_id]
    assert opted_out.object_id not in {s for _, s in events(session)}
    assert required.object_id not in {s for _, s in events(session)}


def test_delete_user(directory: DirectoryService, session: Session, runtime: Runtime, user: UserRow) -> None:
    signed_in(session, runtime, user)
    group = GroupRow(
        object_id=new_guid(), tenant_id=user.tenant_id, display_name="g", display_name_key="g",
        created_at=runtime.clock.now(),
    )  # fmt: skip
    session.add(group)
    session.flush()
    session.add(
        GroupMemberRow(
            group_id=group.object_id, member_object_id=user.object_id, member_kind="user",
            created_at=runtime.clock.now(),
        )
    )  # fmt: skip
    session.flush()
    object_id = user.object_id
    directory.delete_user(user)
    assert directory.find_user("kim@contoso.test") is None
    assert session.scalar(select(func.count()).select_from(GroupMemberRow)) == 0
    assert session.scalar(select(func.count()).select_from(RefreshTokenFamilyRow)) == 0
    assert events(session) == [("userDeleted", object_id)]


def test_publish_event_refuses_a_subject_on_a_tenant_event_and_none_on_a_user_event(
    session: Session, runtime: Runtime, tenant: TenantRow
) -> None:
    at = runtime.clock.now()
    with pytest.raises(ValueError, match="no subject"):
        publish_event(session, tenant_id=tenant.id, kind=CaeEventKind.POLICIES_CHANGED, at=at, subject_id="x")
    with pytest.raises(ValueError, match="object id"):
        publish_event(session, tenant_id=tenant.id, kind=CaeEventKind.USER_DISABLED, at=at)
    assert events(session) == []
    publish_event(
        session, tenant_id=tenant.id, kind=CaeEventKind.POLICIES_CHANGED, at=at + timedelta(seconds=1),
        payload={"policies": [], "namedLocations": []},
    )  # fmt: skip
    session.flush()
    assert events(session) == [("policiesChanged", None)]
