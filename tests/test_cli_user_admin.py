"""`entryway user show|disable|enable|delete|password|revoke-sessions` and `entryway org policy set|show`, in
process on a data directory of their own; every refused command changes nothing (no critical event either)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import func, select
from typer.testing import CliRunner

from entryway.cli.main import app as cli
from entryway.config.declarative import ConfigError, apply_config
from entryway.config.settings import Settings
from entryway.kit.passwords import verify_password
from entryway.runtime import Runtime
from entryway.store.models import AuditEventRow, ContinuousAccessEventRow, OrganizationRow, UserRow

UPN = ["--upn", "rae@clitools.test"]
PASSWORD = "First-Password-0042"


def run(*args: str, data_dir: Path, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, [*args, "--data-dir", str(data_dir)], env=env, input=stdin)


def state(data_dir: Path) -> tuple[list[str], dict[str, object]]:
    """The critical events written, and the user's and the organization's stored state."""
    rt = Runtime.open(Settings(data_dir=data_dir))
    try:
        with rt.db.read() as session:
            kinds = list(
                session.scalars(select(ContinuousAccessEventRow.kind).order_by(ContinuousAccessEventRow.seq))
            )
            user = session.scalars(select(UserRow)).first()
            org = session.scalars(select(OrganizationRow)).first()
            audits = session.scalar(
                select(func.count())
                .select_from(AuditEventRow)
                .where(AuditEventRow.action.like("OrganizationPolicy.%"))
            )
            values: dict[str, object] = {
                "user": None if user is None else (user.account_enabled, user.password_hash),
                "ip_validation": None if org is None else org.ip_conditional_access_validation,
                "policy_audits": audits,
            }
            return kinds, values
    finally:
        rt.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    assert run("tenant", "create", "--domain", "clitools.test", data_dir=d).exit_code == 0
    created = run(
        "user", "create", "--tenant", "clitools.test", *UPN, "--no-mfa", data_dir=d,
        env={"ENTRYWAY_USER_PASSWORD": PASSWORD},
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert run("org", "create", "--name", "clitools", "--tenant", "clitools.test", data_dir=d).exit_code == 0
    return d


def test_disable_enable_password_revoke_delete(data_dir: Path) -> None:
    shown = run("user", "show", *UPN, data_dir=data_dir)
    assert shown.exit_code == 0, shown.output
    object_id = shown.stdout.split("\t")[0]
    assert shown.stdout.split("\t")[1:3] == ["rae@clitools.test", "enabled"]

    disabled = run("user", "disable", *UPN, data_dir=data_dir)
    assert disabled.exit_code == 0, disabled.output
    assert disabled.stdout.split("\t")[2] == "disabled"
    enabled = run("user", "enable", *UPN, data_dir=data_dir)
    assert enabled.stdout.split("\t")[2] == "enabled"

    reset = run(
        "user", "password", *UPN, data_dir=data_dir, env={"ENTRYWAY_USER_PASSWORD": "Second-Password-0042"}
    )
    assert reset.exit_code == 0, reset.output
    assert "refresh token families revoked\t0" in reset.stdout
    _, values = state(data_dir)
    user_state = values["user"]
    assert isinstance(user_state, tuple)
    assert verify_password(user_state[1], "Second-Password-0042")
    # The password prompted for, typed twice, as an administrator at a terminal would.
    prompted = run(
        "user", "password", *UPN, data_dir=data_dir, stdin="Third-Password-0042\nThird-Password-0042\n"
    )
    assert prompted.exit_code == 0, prompted.output

    revoked = run("user", "revoke-sessions", *UPN, data_dir=data_dir)
    assert revoked.exit_code == 0, revoked.output
    assert "refresh token families revoked\t0" in revoked.stdout

    deleted = run("user", "delete", *UPN, "--yes", data_dir=data_dir)
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout == f"{object_id}\tdeleted\n"
    kinds, values = state(data_dir)
    assert kinds == [
        "userDisabled", "userEnabled", "passwordReset", "passwordReset", "refreshTokensRevoked", "userDeleted",
    ]  # fmt: skip
    assert values["user"] is None


@pytest.mark.parametrize(
    ("args", "env", "stdin", "message"),
    [
        (["user", "disable", "--upn", "nobody@clitools.test"], None, None, "not found"),
        (["user", "enable", "--upn", "nobody@clitools.test"], None, None, "not found"),
        (["user", "revoke-sessions", "--upn", "nobody@clitools.test"], None, None, "not found"),
        (["user", "delete", "--upn", "nobody@clitools.test", "--yes"], None, None, "not found"),
        (["user", "password", "--upn", "nobody@clitools.test"], {"ENTRYWAY_USER_PASSWORD": "Long-Enough-0042"}, None,
         "not found"),
        (["user", "password", *UPN], {"ENTRYWAY_USER_PASSWORD": "short"}, None, "at least 8 characters"),
        (["user", "password", *UPN], None, "Mismatch-One-0042\nMismatch-Two-0042\n\n", "do not match"),
        (["user", "delete", *UPN], None, "n\n", "not deleted"),
        (["user", "disable"], None, None, "Missing option '--upn'"),
        (["org", "policy", "set", "--org", "clitools", "--ip-ca-validation", "maybe"], None, None, "on or off"),
        (["org", "policy", "set", "--org", "nowhere", "--ip-ca-validation", "on"], None, None, "not found"),
        (["org", "policy", "set", "--org", "clitools"], None, None, "Missing option '--ip-ca-validation'"),
        (["org", "policy", "show", "--org", "nowhere"], None, None, "not found"),
    ],
    ids=[
        "disable-unknown", "enable-unknown", "revoke-unknown", "delete-unknown", "password-unknown",
        "password-short", "password-mismatch", "delete-declined", "disable-no-upn", "policy-bad-value",
        "policy-unknown-org", "policy-no-value", "policy-show-unknown-org",
    ],
)  # fmt: skip
def test_refused_commands_change_nothing(
    data_dir: Path, args: list[str], env: dict[str, str] | None, stdin: str | None, message: str
) -> None:
    before = state(data_dir)
    result = run(*args, data_dir=data_dir, env=env, stdin=stdin)
    assert result.exit_code != 0, result.output
    assert message in result.output
    assert state(data_dir) == before


def test_org_policy_set_and_show(data_dir: Path) -> None:
    assert run("org", "policy", "show", "--org", "clitools", data_dir=data_dir).stdout == (
        "ip conditional access validation\toff\n"
    )
    on = run("org", "policy", "set", "--org", "clitools", "--ip-ca-validation", "on", data_dir=data_dir)
    assert on.exit_code == 0, on.output
    assert on.stdout == "ip conditional access validation\ton\n"
    again = run("org", "policy", "set", "--org", "CliTools", "--ip-ca-validation", "ON", data_dir=data_dir)
    assert again.stdout == "ip conditional access validation\ton\n"
    _, values = state(data_dir)
    assert values["ip_validation"] is True
    assert values["policy_audits"] == 1  # the change is audited, the repeat is not a change
    off = run("org", "policy", "set", "--org", "clitools", "--ip-ca-validation", "off", data_dir=data_dir)
    assert off.stdout == "ip conditional access validation\toff\n"
    assert state(data_dir)[1]["ip_validation"] is False


def test_the_config_file_sets_the_org_policy_and_refuses_a_non_boolean(data_dir: Path) -> None:
    rt = Runtime.open(Settings(data_dir=data_dir))
    try:
        org = {"name": "clitools", "tenant": "clitools.test"}
        with pytest.raises(ConfigError, match="ip_conditional_access_validation"):
            apply_config(rt, {"organizations": [{**org, "ip_conditional_access_validation": "sometimes"}]})
        assert state(data_dir)[1]["ip_validation"] is False
        report = apply_config(rt, {"organizations": [{**org, "ip_conditional_access_validation": True}]})
        assert "IP Conditional Access policy validation on for clitools" in report.created
        again = apply_config(rt, {"organizations": [{**org, "ip_conditional_access_validation": True}]})
        assert again.created == []
    finally:
        rt.close()
    assert state(data_dir)[1]["ip_validation"] is True
    assert state(data_dir)[1]["policy_audits"] == 1
