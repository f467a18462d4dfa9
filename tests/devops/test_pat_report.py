"""`entryway pats report`: each active PAT's risks and its Entra alternative, judged from how it was used
(issue 6, the way off PATs)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from entryway.cli.main import admin_runtime
from entryway.cli.main import app as cli
from entryway.devops.orgs.service import OrgService
from entryway.devops.pats.report import (
    ALTERNATIVE_GIT,
    ALTERNATIVE_PIPELINE,
    ALTERNATIVE_REVOKE,
    ALTERNATIVE_SCRIPT,
)
from entryway.store.models import PersonalAccessTokenRow

ORG = "fabrikam"
OTHER_ORG = "tailwind"
PIPELINE_AGENT = "VSServices/19.225.34309.2 (NetStandard; Linux 5.15) AzurePipelines-Agent-v2/3.225.0"


def run(*args: str, data_dir: Path) -> Result:
    return CliRunner().invoke(cli, [*args, "--data-dir", str(data_dir)])


def add_pat(
    data_dir: Path,
    name: str,
    *,
    org: str | None = ORG,
    scope: str = "vso.code",
    age: timedelta = timedelta(days=10),
    valid_for: timedelta = timedelta(days=30),
    last_used: timedelta | None = None,
    route_kind: str | None = None,
    user_agent: str | None = None,
    rest_uses: int = 0,
    git_uses: int = 0,
    revoked: bool = False,
    foreign: bool = False,
) -> None:
    """A PAT row as the lifecycle API and the PAT check would leave it: created `age` ago, valid for
    `valid_for` from then, last used `last_used` ago; its owner is of the organizations' tenant unless
    `foreign`."""
    with admin_runtime(data_dir) as rt, rt.db.unit_of_work() as session:
        now = rt.clock.now()
        created = now - age
        orgs = OrgService(session, rt.clock)
        organization_id = None if org is None else orgs.get(org).id
        tenant_id = str(uuid.uuid4()) if foreign else orgs.get(ORG).tenant_id
        session.add(
            PersonalAccessTokenRow(
                authorization_id=str(uuid.uuid4()),
                digest=uuid.uuid4().hex,
                owner_object_id=str(uuid.uuid4()),
                owner_tenant_id=tenant_id,
                owner_name=f"{name}@report.test",
                display_name=name,
                scope=scope,
                organization_id=organization_id,
                valid_from=created,
                valid_to=created + valid_for,
                revoked_at=now if revoked else None,
                created_at=created,
                last_used_at=None if last_used is None else now - last_used,
                last_used_address=None if last_used is None else "203.0.113.7",
                last_used_user_agent=user_agent,
                last_used_route_kind=route_kind,
                rest_uses=rest_uses,
                git_uses=git_uses,
            )
        )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    assert run("tenant", "create", "--domain", "report.test", data_dir=data_dir).exit_code == 0
    for org in (ORG, OTHER_ORG):
        assert (
            run("org", "create", "--name", org, "--tenant", "report.test", data_dir=data_dir).exit_code == 0
        )
    day = timedelta(days=1)
    add_pat(
        data_dir, "cloner", last_used=day, route_kind="git", user_agent="git/2.43.0", git_uses=12, rest_uses=1
    )
    add_pat(
        data_dir,
        "script",
        org=None,
        scope="app_token",
        valid_for=timedelta(days=365),
        last_used=2 * day,
        route_kind="rest",
        user_agent="python-requests/2.32.3",
        rest_uses=40,
    )
    add_pat(
        data_dir,
        "pipeline",
        scope="vso.build_execute vso.code",
        last_used=45 * day,
        route_kind="rest",
        user_agent=PIPELINE_AGENT,
        rest_uses=3,
    )
    add_pat(data_dir, "forgotten", org=OTHER_ORG, age=day)
    # A global PAT of another tenant's user works in none of these organizations.
    add_pat(data_dir, "elsewhere", org=None, last_used=day, route_kind="rest", rest_uses=2, foreign=True)
    add_pat(data_dir, "revoked", last_used=day, route_kind="git", git_uses=1, revoked=True)
    add_pat(data_dir, "expired", age=40 * day, valid_for=30 * day, last_used=12 * day, rest_uses=1)
    return data_dir


def report(data_dir: Path, *args: str) -> dict[str, dict[str, Any]]:
    result = run("pats", "report", "--json", *args, data_dir=data_dir)
    assert result.exit_code == 0, result.output
    return {entry["displayName"]: entry for entry in json.loads(result.output)}


def test_each_active_pat_gets_its_risks_and_alternative(data_dir: Path) -> None:
    entries = report(data_dir)
    # Never the revoked or expired; without --org, every tenant's.
    assert set(entries) == {"cloner", "script", "pipeline", "forgotten", "elsewhere"}

    cloner = entries["cloner"]
    assert cloner["flags"] == []
    assert cloner["alternative"] == ALTERNATIVE_GIT
    assert (cloner["organization"], cloner["owner"], cloner["scopes"]) == (
        ORG,
        "cloner@report.test",
        ["vso.code"],
    )
    assert (cloner["ageDays"], cloner["expiresInDays"]) == (10, 19)
    assert (cloner["gitUses"], cloner["restUses"], cloner["lastUsedRouteKind"]) == (12, 1, "git")
    assert cloner["lastUsedUserAgent"] == "git/2.43.0"

    script = entries["script"]
    assert script["flags"] == ["full-scope", "global", "long-lived"]
    assert script["organization"] == "all"
    assert script["alternative"] == ALTERNATIVE_SCRIPT

    pipeline = entries["pipeline"]
    assert pipeline["flags"] == ["unused"]  # last used 45 days ago
    assert pipeline["alternative"] == ALTERNATIVE_PIPELINE
    assert pipeline["scopes"] == ["vso.build_execute", "vso.code"]

    forgotten = entries["forgotten"]
    assert forgotten["flags"] == ["unused"]
    assert forgotten["organization"] == OTHER_ORG
    assert forgotten["lastUsedAt"] is None
    assert forgotten["alternative"] == ALTERNATIVE_REVOKE
    datetime.fromisoformat(forgotten["validTo"])


def test_org_filter_keeps_its_own_and_its_tenants_global_pats(data_dir: Path) -> None:
    assert set(report(data_dir, "--org", ORG)) == {"cloner", "script", "pipeline"}
    assert set(report(data_dir, "--org", OTHER_ORG)) == {"script", "forgotten"}


def test_table_names_every_active_pat(data_dir: Path) -> None:
    result = run("pats", "report", data_dir=data_dir)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["OWNER", "NAME", "ORG"]
    for name in ("cloner", "script", "pipeline", "forgotten"):
        assert any(f"{name}@report.test" in line for line in lines), result.output
    assert "revoked@" not in result.output
    assert "expired@" not in result.output
    assert "full-scope,global,long-lived" in result.output
    assert "revoke it" in result.output


def test_unknown_org_exits_2(data_dir: Path) -> None:
    result = run("pats", "report", "--org", "nowhere", data_dir=data_dir)
    assert result.exit_code == 2
    assert "organization 'nowhere' not found" in result.output
