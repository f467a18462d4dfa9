"""PATs at the DevOps service: Basic and Bearer, scopes over REST and Git, expiry, revocation at once, other
organizations, a bad checksum, and every use recorded (issue 6)."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import timedelta
from pathlib import Path

import requests
from sqlalchemy import select, update

from entryway.devops.orgs.service import OrgService
from entryway.devops.pats.format import mint
from entryway.devops.pats.report import ALTERNATIVE_GIT, ALTERNATIVE_SCRIPT, build_report, find_unrevoked_pats
from entryway.store.models import AuditEventRow, PersonalAccessTokenRow
from tests.conftest import ADA, CONTOSO_TENANT, start_entryway
from tests.devops.test_git import ORG, GitWorld, commit_file, git, git_world, ok

__all__ = ["git_world"]  # the fixture, imported from the Git tests

ANONYMOUS_MESSAGE = "TF400813: Resource not available for anonymous access. Client authentication required."


def make_pat(
    world: GitWorld,
    scope: str,
    *,
    organization_id: str | bool | None = True,
    valid_for: timedelta = timedelta(days=30),
    owner_upn: str = ADA.upn,
    owner_object_id: str | None = None,
    starts_in: timedelta = timedelta(minutes=-1),
) -> tuple[str, str]:
    """A PAT row for `owner_upn`, as the lifecycle API would store it; (value, authorization id).
    `organization_id` True: for the Git tests' organization; None: global."""
    runtime = world.instance.runtime
    now = runtime.clock.now()
    value = mint(now)
    authorization_id = str(uuid.uuid4())
    with runtime.db.unit_of_work() as session:
        orgs = OrgService(session, runtime.clock)
        org = orgs.get(ORG)
        owner = next(m for m in orgs.list_members(org) if m.principal_name.lower() == owner_upn)
        session.add(
            PersonalAccessTokenRow(
                authorization_id=authorization_id,
                digest=runtime.digester.digest(value),
                owner_object_id=owner_object_id or owner.object_id,
                owner_tenant_id=CONTOSO_TENANT,
                owner_name=owner_upn,
                display_name=f"test {scope}",
                scope=scope,
                organization_id=org.id if organization_id is True else organization_id or None,
                valid_from=now + starts_in,
                valid_to=now + valid_for,
                revoked_at=None,
                created_at=now,
                last_used_at=None,
                last_used_address=None,
                last_used_user_agent=None,
                last_used_route_kind=None,
                rest_uses=0,
                git_uses=0,
            )
        )
    return value, authorization_id


def basic(pat: str) -> str:
    return "Basic " + base64.b64encode(f":{pat}".encode()).decode()


def get(world: GitWorld, path: str, authorization: str, **headers: str) -> requests.Response:
    return requests.get(
        f"{world.instance.devops}/{ORG}{path}",
        headers={"Authorization": authorization, "X-TFS-FedAuthRedirect": "Suppress", **headers},
        verify=world.instance.ca_bundle,
        allow_redirects=False,
        timeout=30,
    )


def pat_row(world: GitWorld, authorization_id: str) -> PersonalAccessTokenRow:
    with world.instance.runtime.db.read() as session:
        row = session.scalars(
            select(PersonalAccessTokenRow).where(PersonalAccessTokenRow.authorization_id == authorization_id)
        ).one()
        session.expunge(row)
        return row


def assert_anonymous_401(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["message"] == ANONYMOUS_MESSAGE
    assert response.headers["X-VSS-ResourceTenant"] == CONTOSO_TENANT


def test_a_pat_is_accepted_as_basic_password_and_as_bearer(git_world: GitWorld) -> None:
    pat, _ = make_pat(git_world, "vso.code")
    for authorization in (basic(pat), f"Bearer {pat}"):
        answer = get(git_world, "/_apis/connectionData", authorization)
        assert answer.status_code == 200, answer.text
        assert answer.json()["authenticatedUser"]["properties"]["Account"]["$value"] == ADA.upn


def test_a_global_pat_is_accepted(git_world: GitWorld) -> None:
    pat, _ = make_pat(git_world, "vso.project", organization_id=None)
    assert get(git_world, "/_apis/projects", basic(pat)).status_code == 200


def test_refused_pats_are_answered_as_anonymous(git_world: GitWorld) -> None:
    expired, _ = make_pat(git_world, "app_token", valid_for=timedelta(seconds=-1))
    other_org, _ = make_pat(git_world, "app_token", organization_id=str(uuid.uuid4()))
    good, _ = make_pat(git_world, "app_token")
    bad_checksum = good[:-1] + ("A" if good[-1] != "A" else "B")
    unknown = mint(git_world.instance.runtime.clock.now())
    not_a_member, _ = make_pat(git_world, "app_token", owner_object_id=str(uuid.uuid4()))
    not_yet, _ = make_pat(git_world, "app_token", starts_in=timedelta(hours=1))
    for pat in (expired, other_org, bad_checksum, unknown, not_a_member, not_yet):
        assert_anonymous_401(get(git_world, "/_apis/connectionData", basic(pat)))
    assert get(git_world, "/_apis/connectionData", basic(good)).status_code == 200


def test_revocation_takes_effect_on_the_next_request(git_world: GitWorld) -> None:
    pat, authorization_id = make_pat(git_world, "app_token")
    assert get(git_world, "/_apis/connectionData", basic(pat)).status_code == 200
    runtime = git_world.instance.runtime
    # As another process sharing the database would revoke it: a row update, no message to this process.
    with runtime.db.unit_of_work() as session:
        session.execute(
            update(PersonalAccessTokenRow)
            .where(PersonalAccessTokenRow.authorization_id == authorization_id)
            .values(revoked_at=runtime.clock.now())
        )
    assert_anonymous_401(get(git_world, "/_apis/connectionData", basic(pat)))


def test_rest_routes_need_their_scope(git_world: GitWorld) -> None:
    code, _ = make_pat(git_world, "vso.code")
    project, _ = make_pat(git_world, "vso.project")
    refused = get(git_world, "/_apis/projects", basic(code))
    assert refused.status_code == 401
    assert refused.json()["message"].startswith("TF400813: The user '")
    assert refused.json()["message"].endswith("' is not authorized to access this resource.")
    assert get(git_world, "/_apis/projects", basic(project)).status_code == 200
    assert get(git_world, "/_apis/git/repositories", basic(code)).status_code == 200
    assert get(git_world, "/_apis/git/repositories", basic(project)).status_code == 401
    # The audit log needs vso.auditlog: with it, the PAT gets as far as the permission check (ada is not an
    # organization administrator: 403); without it, the 401.
    audit, _ = make_pat(git_world, "vso.auditlog")
    assert get(git_world, "/_apis/audit/auditlog", basic(code)).status_code == 401
    assert get(git_world, "/_apis/audit/auditlog", basic(audit)).status_code == 403


def test_a_code_read_pat_clones_and_cannot_push(git_world: GitWorld, tmp_path: Path) -> None:
    pat, _ = make_pat(git_world, "vso.code")
    work = tmp_path / "read"
    ok(git(git_world, "clone", "-q", git_world.url, str(work), token=pat, helper=True))
    commit_file(git_world, work, "pat-read.txt", b"read only\n")
    refused = git(git_world, "push", "origin", "HEAD:refs/heads/pat-read", cwd=work, token=pat, helper=True)
    assert refused.returncode != 0
    assert "remote: TF401027: You need the Git 'GenericContribute' permission" in refused.stderr
    assert "The requested URL returned error: 403" in refused.stderr


def test_a_code_write_pat_pushes(git_world: GitWorld, tmp_path: Path) -> None:
    pat, _ = make_pat(git_world, "vso.code_write")
    work = tmp_path / "write"
    ok(git(git_world, "clone", "-q", git_world.url, str(work), token=pat))  # Bearer PAT
    commit_file(git_world, work, "pat-write.txt", b"written\n")
    ok(git(git_world, "push", "-q", "origin", "HEAD:refs/heads/pat-write", cwd=work, token=pat, helper=True))
    listed = ok(git(git_world, "ls-remote", git_world.url, "refs/heads/pat-write", token=pat, helper=True))
    assert listed.stdout.endswith("\trefs/heads/pat-write\n")


def test_a_pat_without_code_scope_cannot_clone(git_world: GitWorld, tmp_path: Path) -> None:
    pat, _ = make_pat(git_world, "vso.project")
    refused = git(git_world, "clone", "-q", git_world.url, str(tmp_path / "none"), token=pat, helper=True)
    assert refused.returncode != 0
    assert "TF401019" in refused.stderr


def test_every_use_is_recorded(git_world: GitWorld, tmp_path: Path) -> None:
    pat, authorization_id = make_pat(git_world, "vso.code")
    assert pat_row(git_world, authorization_id).last_used_at is None
    answer = get(git_world, "/_apis/connectionData", basic(pat), **{"User-Agent": "pat-auth-test/1.0"})
    assert answer.status_code == 200
    row = pat_row(git_world, authorization_id)
    assert (row.rest_uses, row.git_uses) == (1, 0)
    assert row.last_used_route_kind == "rest"
    assert row.last_used_user_agent == "pat-auth-test/1.0"
    assert row.last_used_address == "127.0.0.1"
    assert row.last_used_at is not None
    ok(git(git_world, "ls-remote", git_world.url, token=pat, helper=True))
    row = pat_row(git_world, authorization_id)
    assert row.rest_uses == 1
    assert row.git_uses >= 1
    assert row.last_used_route_kind == "git"
    assert row.last_used_user_agent is not None
    assert row.last_used_user_agent.startswith("git/")
    # A request refused for the PAT's scope is still a use of the PAT (verified, then refused).
    assert get(git_world, "/_apis/projects", basic(pat)).status_code == 401
    assert pat_row(git_world, authorization_id).rest_uses == 2


def test_a_refused_pat_is_in_the_audit_log_with_its_reason(git_world: GitWorld) -> None:
    pat, authorization_id = make_pat(git_world, "app_token", valid_for=timedelta(seconds=-1))
    user_agent = f"pat-audit-{authorization_id}"
    assert_anonymous_401(get(git_world, "/_apis/connectionData", basic(pat), **{"User-Agent": user_agent}))
    deadline = time.monotonic() + 5
    while True:  # written off the request path: wait for it briefly
        with git_world.instance.runtime.db.read() as session:
            refusals = [
                row
                for row in session.scalars(
                    select(AuditEventRow).where(AuditEventRow.action == "Authentication.Refused")
                ).all()
                if row.details.get("userAgent") == user_agent
            ]
        if refusals or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert refusals
    assert refusals[0].credential_kind == "basic:pat"
    assert f"PAT {authorization_id} expired at" in refusals[0].details["reason"]
    assert refusals[0].actor_id is not None  # the owner named by the PAT
    assert pat not in str(refusals[0].details)


def test_a_revocation_through_the_api_takes_effect_at_once_on_another_server(git_world: GitWorld) -> None:
    """Two servers on one database (as two processes would be): a PAT created and revoked through the
    lifecycle API on the first is refused by the second on its very next request."""
    first = git_world.instance
    second = start_entryway(first.settings.data_dir, first.clock)
    try:
        entra = {"Authorization": f"Bearer {git_world.tokens[ADA.upn]}"}
        created = requests.post(
            f"{first.devops}/{ORG}/_apis/tokens/pats",
            params={"api-version": "7.1-preview.1"},
            json={"displayName": "two servers", "scope": "vso.code", "allOrgs": False},
            headers=entra,
            verify=first.ca_bundle,
            timeout=30,
        )
        assert created.status_code == 200, created.text
        token = created.json()["patToken"]
        pat = token["token"]
        other = GitWorld(second, git_world.url, git_world.repository_id, git_world.bare, {}, git_world.home)
        assert get(other, "/_apis/connectionData", basic(pat)).status_code == 200
        assert get(git_world, "/_apis/connectionData", basic(pat)).status_code == 200
        revoked = requests.delete(
            f"{first.devops}/{ORG}/_apis/tokens/pats",
            params={"api-version": "7.1-preview.1", "authorizationId": token["authorizationId"]},
            headers=entra,
            verify=first.ca_bundle,
            timeout=30,
        )
        assert revoked.status_code == 204, revoked.text
        assert_anonymous_401(get(other, "/_apis/connectionData", basic(pat)))
        assert_anonymous_401(get(git_world, "/_apis/connectionData", basic(pat)))
    finally:
        second.server.stop()


def test_the_report_names_the_alternative_for_how_each_pat_was_really_used(
    git_world: GitWorld, tmp_path: Path
) -> None:
    """Two PATs used for real — one by git clone, one by a Python script with requests — and the report, read
    from the server's database, names a credential helper for the first and a CLI token for the second."""
    git_pat, git_id = make_pat(git_world, "vso.code")
    script_pat, script_id = make_pat(git_world, "vso.project")
    ok(git(git_world, "clone", git_world.url, str(tmp_path / "clone"), token=git_pat, helper=True))
    script_answer = requests.get(
        f"{git_world.instance.devops}/{ORG}/_apis/projects?api-version=7.1",
        headers={"Authorization": basic(script_pat)},
        verify=git_world.instance.ca_bundle,
        timeout=30,
    )
    assert script_answer.status_code == 200, script_answer.text

    runtime = git_world.instance.runtime
    with runtime.db.read() as session:
        org_id = OrgService(session, runtime.clock).get(ORG).id
        entries = {
            e.authorization_id: e
            for e in build_report(find_unrevoked_pats(session, org_id), {org_id: ORG}, runtime.clock.now())
        }
    assert entries[git_id].alternative == ALTERNATIVE_GIT
    assert entries[script_id].alternative == ALTERNATIVE_SCRIPT
