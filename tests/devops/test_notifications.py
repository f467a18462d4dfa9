"""The notification outbox: notify, list a user's notifications, mark one read, and `entryway notifications
list` (the service on the shared server's real database; the CLI as an administrator runs it)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from entryway.cli.main import app as cli
from entryway.config.declarative import apply_config
from entryway.devops.notifications.service import (
    Notification,
    NotificationKind,
    NotificationNotFound,
    NotificationService,
)
from entryway.identity.directory.service import DirectoryService
from tests.conftest import CONTOSO_TENANT, Instance

NOTO = "noto@contoso.test"
CONFIG = f"""\
tenants:
  - id: {CONTOSO_TENANT}
    domains: [contoso.test]
    users:
      - upn: {NOTO}
        password: "Noto-Reads-Mail-0042"
        display_name: Noto Reader
"""


def run(*args: str, data_dir: Path) -> Result:
    return CliRunner().invoke(cli, [*args, "--data-dir", str(data_dir)])


def notify(
    instance: Instance, object_id: str, subject: str, *, tenant_id: str = CONTOSO_TENANT
) -> Notification:
    with instance.runtime.db.unit_of_work() as session:
        return NotificationService(session, instance.clock).notify(
            recipient_object_id=object_id,
            tenant_id=tenant_id,
            recipient_name="someone@contoso.test",
            organization_id=None,
            kind=NotificationKind.PAT_LEAK_DETECTED,
            subject=subject,
            body=f"{subject}\nsecond line",
        )


def listed(instance: Instance, object_id: str, *, unread_only: bool = False) -> list[Notification]:
    with instance.runtime.db.read() as session:
        return NotificationService(session, instance.clock).list_for(
            object_id, CONTOSO_TENANT, unread_only=unread_only
        )


def test_a_users_notifications_are_listed_newest_first_and_only_theirs(entryway: Instance) -> None:
    me, other = str(uuid.uuid4()), str(uuid.uuid4())
    first = notify(entryway, me, "first")
    entryway.clock.advance(timedelta(seconds=2))
    second = notify(entryway, me, "second")
    notify(entryway, other, "not mine")
    notify(entryway, me, "other tenant", tenant_id=str(uuid.uuid4()))
    assert [n.id for n in listed(entryway, me)] == [second.id, first.id]
    assert [n.subject for n in listed(entryway, other)] == ["not mine"]
    assert listed(entryway, str(uuid.uuid4())) == []


def test_marking_read_keeps_the_first_time_and_filters_unread(entryway: Instance) -> None:
    me = str(uuid.uuid4())
    note = notify(entryway, me, "read me")
    unread = notify(entryway, me, "leave me")
    with entryway.runtime.db.unit_of_work() as session:
        marked = NotificationService(session, entryway.clock).mark_read(me, CONTOSO_TENANT, note.id)
    assert marked.read_at is not None
    entryway.clock.advance(timedelta(seconds=5))
    with entryway.runtime.db.unit_of_work() as session:
        again = NotificationService(session, entryway.clock).mark_read(me, CONTOSO_TENANT, note.id)
    assert again.read_at == marked.read_at
    assert [n.id for n in listed(entryway, me, unread_only=True)] == [unread.id]


@pytest.mark.parametrize("which", ["someone else's", "not a guid", "unknown", "someone else's, upper-case"])
def test_marking_a_notification_that_is_not_yours_is_refused(entryway: Instance, which: str) -> None:
    me, other = str(uuid.uuid4()), str(uuid.uuid4())
    theirs = notify(entryway, other, "theirs")
    target = {
        "someone else's": theirs.id,
        "not a guid": "'; drop table devops_notifications; --",
        "unknown": str(uuid.uuid4()),
        "someone else's, upper-case": theirs.id.upper(),
    }[which]
    with entryway.runtime.db.unit_of_work() as session, pytest.raises(NotificationNotFound):
        NotificationService(session, entryway.clock).mark_read(me, CONTOSO_TENANT, target)
    assert listed(entryway, other)[0].read_at is None


def test_long_text_is_cut_to_the_columns_not_refused(entryway: Instance) -> None:
    me = str(uuid.uuid4())
    with entryway.runtime.db.unit_of_work() as session:
        NotificationService(session, entryway.clock).notify(
            recipient_object_id=me,
            tenant_id=CONTOSO_TENANT,
            recipient_name="n" * 1000,
            organization_id=None,
            kind="k" * 100,
            subject="s" * 1000,
            body="b" * 10_000,
        )
    (note,) = listed(entryway, me)
    lengths = [len(note.recipient_name), len(note.kind), len(note.subject), len(note.body)]
    assert lengths == [256, 32, 256, 4096]


def test_the_cli_lists_a_users_notifications(entryway: Instance) -> None:
    apply_config(entryway.runtime, yaml.safe_load(CONFIG), source="test_notifications")
    with entryway.runtime.db.read() as session:
        user = DirectoryService(session, entryway.clock, entryway.runtime.digester).get_user(NOTO)
    note = notify(entryway, user.object_id, "Your PAT was found in public")
    data_dir = entryway.settings.data_dir

    text = run("notifications", "list", "--user", NOTO, data_dir=data_dir)
    assert text.exit_code == 0, text.output
    assert "Your PAT was found in public" in text.output
    assert "    second line" in text.output
    assert "(unread)" in text.output

    as_json = run("notifications", "list", "--user", NOTO, "--json", data_dir=data_dir)
    assert as_json.exit_code == 0, as_json.output
    (entry,) = json.loads(as_json.output)
    assert entry["id"] == note.id
    assert entry["recipientObjectId"] == user.object_id
    assert entry["readAt"] is None

    everyone = run("notifications", "list", "--json", data_dir=data_dir)
    assert note.id in {e["id"] for e in json.loads(everyone.output)}


def test_the_cli_refuses_an_unknown_user(entryway: Instance) -> None:
    result = run(
        "notifications", "list", "--user", "nobody@contoso.test", data_dir=entryway.settings.data_dir
    )
    assert result.exit_code == 2
    assert "user 'nobody@contoso.test' not found" in result.output
