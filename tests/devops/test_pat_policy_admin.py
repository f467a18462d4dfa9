"""The administrators' surfaces of the PAT policies: `entryway pats policy ...` and the config file's
`pat_policies:`, checked against the real PAT lifecycle API over TLS.

A tenant of its own (admin-policies.test); the CLI runs on the shared server's data directory.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import yaml
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from entryway.cli.main import app as cli
from entryway.config.declarative import ConfigError, apply_config
from entryway.devops.orgs.service import OrgService
from entryway.devops.pats.policy import PatPolicyService, PolicyName
from entryway.identity.directory.groups import ROLE_TEMPLATES, GroupService
from entryway.identity.directory.service import DirectoryService
from entryway.store.models import AuditEventRow
from tests.conftest import AZURE_CLI_ID, DEVOPS_SCOPE, Instance, form_post

TENANT_ID = "8c9d0e1f-2a3b-4c4d-9e5f-6a7b8c9d0e1f"
DOMAIN = "admin-policies.test"
ORG = "admin-policies"
SAM = ("sam@admin-policies.test", "Sam-Admin-Policies-0042")  # on no allowlist
TESS = ("tess@admin-policies.test", "Tess-Admin-Policies-0042")  # in the group Tooling
CONFIG = f"""\
tenants:
  - id: {TENANT_ID}
    domains: [{DOMAIN}]
    users:
      - upn: {SAM[0]}
        password: "{SAM[1]}"
        mfa_required: false
      - upn: {TESS[0]}
        password: "{TESS[1]}"
        mfa_required: false
    groups:
      - name: Tooling
        members: [{{user: {TESS[0]}}}]
organizations:
  - name: {ORG}
    tenant: {DOMAIN}
    members:
      - user: {SAM[0]}
        access: basic
      - user: {TESS[0]}
        access: basic
"""


def run(instance: Instance, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--data-dir", str(instance.settings.data_dir)])


def ok(instance: Instance, *args: str) -> str:
    result = run(instance, *args)
    assert result.exit_code == 0, result.output
    return result.output


def _token(instance: Instance, user: tuple[str, str]) -> str:
    form = {
        "grant_type": "password",
        "client_id": AZURE_CLI_ID,
        "username": user[0],
        "password": user[1],
        "scope": DEVOPS_SCOPE,
    }
    response = form_post(instance, f"/{TENANT_ID}/oauth2/v2.0/token", form)
    assert response.status_code == 200, response.text
    value: str = response.json()["access_token"]
    return value


def create(instance: Instance, token: str, **fields: Any) -> dict[str, Any]:
    response = requests.post(
        f"{instance.devops}/{ORG}/_apis/tokens/pats",
        params={"api-version": "7.1-preview.1"},
        json={"displayName": "admin policy test", "scope": "vso.code", **fields},
        headers={"Authorization": f"Bearer {token}"},
        verify=instance.ca_bundle,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def tokens(entryway: Instance) -> dict[str, str]:
    apply_config(entryway.runtime, yaml.safe_load(CONFIG), source="test_pat_policy_admin")
    return {"sam": _token(entryway, SAM), "tess": _token(entryway, TESS)}


@pytest.fixture(autouse=True)
def _defaults(entryway: Instance, tokens: dict[str, str]) -> None:
    ok(entryway, "pats", "policy", "set", "--tenant", DOMAIN, "--no-restrict-full-scope", "--no-max-lifespan")
    ok(entryway, "pats", "policy", "set", "--org", ORG, "--no-restrict-creation", "--no-packaging-only")
    for policy in ("restrictFullScope", "maxLifespan"):
        ok(
            entryway,
            "pats",
            "policy",
            "disallow",
            "--tenant",
            DOMAIN,
            "--policy",
            policy,
            "--group",
            "Tooling",
        )
    ok(entryway, "pats", "policy", "disallow", "--org", ORG, "--user", SAM[0])


def test_the_cli_sets_and_shows_tenant_policies_and_the_api_enforces_them(
    entryway: Instance, tokens: dict[str, str]
) -> None:
    text = ok(
        entryway, "pats", "policy", "set", "--tenant", DOMAIN, "--restrict-full-scope", "--max-lifespan", "10"
    )
    assert "restrictFullScope: on" in text
    assert "maxLifespan: 10 days" in text
    shown = json.loads(ok(entryway, "pats", "policy", "show", "--tenant", DOMAIN, "--json"))
    assert shown["restrictFullScope"] is True
    assert shown["maxLifespanDays"] == 10
    assert shown["restrictGlobal"] is False
    assert shown["autoRevokeLeaked"] is True

    assert (
        create(entryway, tokens["tess"], scope="app_token")["patTokenError"] == "fullScopePatPolicyViolation"
    )
    far = (entryway.clock.now() + timedelta(days=200)).astimezone(UTC).isoformat()
    clamped = create(entryway, tokens["sam"], validTo=far)["patToken"]
    assert datetime.fromisoformat(clamped["validTo"]) < entryway.clock.now() + timedelta(days=10, minutes=1)

    ok(
        entryway,
        "pats",
        "policy",
        "allow",
        "--tenant",
        DOMAIN,
        "--policy",
        "restrictFullScope",
        "--group",
        "Tooling",
    )
    shown = json.loads(ok(entryway, "pats", "policy", "show", "--tenant", DOMAIN, "--json"))
    assert [e["displayName"] for e in shown["allowlists"]["restrictFullScope"]] == ["Tooling"]
    assert create(entryway, tokens["tess"], scope="app_token")["patTokenError"] == "none"
    assert (
        create(entryway, tokens["sam"], scope="app_token")["patTokenError"] == "fullScopePatPolicyViolation"
    )

    ok(
        entryway,
        "pats",
        "policy",
        "disallow",
        "--tenant",
        DOMAIN,
        "--policy",
        "restrictFullScope",
        "--group",
        "Tooling",
    )
    assert (
        create(entryway, tokens["tess"], scope="app_token")["patTokenError"] == "fullScopePatPolicyViolation"
    )

    with entryway.runtime.db.read() as session:
        org = OrgService(session, entryway.clock).get(ORG)
        rows = session.scalars(
            select(AuditEventRow).where(
                AuditEventRow.organization_id == org.id, AuditEventRow.action.like("Policy.%")
            )
        ).all()
    actions = {(r.action, r.actor_name, r.credential_kind) for r in rows}
    assert ("Policy.Update", "cli", "local") in actions
    assert ("Policy.AllowlistAdd", "cli", "local") in actions
    assert ("Policy.AllowlistRemove", "cli", "local") in actions


def test_the_cli_sets_the_organization_policy(entryway: Instance, tokens: dict[str, str]) -> None:
    text = ok(entryway, "pats", "policy", "set", "--org", ORG, "--restrict-creation", "--packaging-only")
    assert "restrictCreation: on" in text
    assert "packagingOnly: on" in text
    refusal = create(entryway, tokens["sam"])
    assert refusal["patTokenError"] == "disablePatCreationPolicyViolation"
    assert "Packaging" in refusal["patTokenErrorMessage"]
    assert create(entryway, tokens["sam"], scope="vso.packaging")["patTokenError"] == "none"
    ok(entryway, "pats", "policy", "allow", "--org", ORG, "--user", SAM[0])
    assert create(entryway, tokens["sam"])["patTokenError"] == "none"
    shown = json.loads(ok(entryway, "pats", "policy", "show", "--org", ORG, "--json"))
    assert shown["restrictCreation"] is True
    assert [e["kind"] for e in shown["allowlist"]] == ["user"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show",), "exactly one of --tenant or --org"),
        (("show", "--tenant", DOMAIN, "--org", ORG), "exactly one of --tenant or --org"),
        (("show", "--org", "no-such-org"), "not found"),
        (("show", "--tenant", "nowhere.test"), "nowhere.test"),
        (("set", "--tenant", DOMAIN, "--max-lifespan", "0"), "from 1 to 365"),
        (("set", "--tenant", DOMAIN, "--max-lifespan", "366"), "from 1 to 365"),
        (("set", "--tenant", DOMAIN, "--max-lifespan", "5", "--no-max-lifespan"), "not both"),
        (("set", "--org", ORG, "--restrict-global"), "the tenant's"),
        (("set", "--tenant", DOMAIN, "--restrict-creation"), "an organization's"),
        (("allow", "--tenant", DOMAIN, "--user", SAM[0]), "--policy"),
        (("allow", "--tenant", DOMAIN, "--policy", "noSuchPolicy", "--user", SAM[0]), "unknown PAT policy"),
        (
            ("allow", "--tenant", DOMAIN, "--policy", "restrictCreation", "--user", SAM[0]),
            "of the organization",
        ),
        (("allow", "--org", ORG, "--policy", "maxLifespan", "--user", SAM[0]), "of the tenant"),
        (("allow", "--org", ORG, "--user", "nobody@admin-policies.test"), "not found"),
        (("allow", "--org", ORG, "--user", "ada@contoso.test"), "is not in tenant"),
        (("allow", "--org", ORG, "--group", "No Such Group"), "no group"),
        (("allow", "--org", ORG, "--user", SAM[0], "--group", "Tooling"), "exactly one of --user or --group"),
        (("allow", "--org", ORG), "exactly one of --user or --group"),
    ],
)
def test_the_cli_refuses_bad_input(
    entryway: Instance, tokens: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = run(entryway, "pats", "policy", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


# --- the config file ---------------------------------------------------------------------------------------

POLICY_CONFIG = f"""\
tenants:
  - id: {TENANT_ID}
    domains: [{DOMAIN}]
    users:
      - upn: {SAM[0]}
        roles: ["Azure DevOps Administrator"]
    pat_policies:
      restrict_global: true
      max_lifespan_days: 30
      auto_revoke_leaked: false
      allowlists:
        restrict_global: [{{group: Tooling}}]
        max_lifespan: [{{user: {SAM[0]}}}]
organizations:
  - name: {ORG}
    tenant: {DOMAIN}
    pat_policies:
      restrict_creation: true
      allowlist: [{{group: Tooling}}, {{user: {SAM[0]}}}]
"""


def test_the_config_file_sets_policies_allowlists_and_roles_once(
    entryway: Instance, tokens: dict[str, str]
) -> None:
    report = apply_config(entryway.runtime, yaml.safe_load(POLICY_CONFIG), source="policies")
    assert any("PAT policies of tenant" in note for note in report.created)
    assert any("Tooling on the restrictGlobal allowlist" in note for note in report.created)
    assert any("PAT creation policy of admin-policies" in note for note in report.created)
    assert any("role Azure DevOps Administrator" in note for note in report.created)
    try:
        with entryway.runtime.db.read() as session:
            policies = PatPolicyService(session, entryway.clock)
            tenant = policies.tenant_policy(TENANT_ID)
            org = OrgService(session, entryway.clock).get(ORG)
            org_policy = policies.org_policy(org.id)
            directory = DirectoryService(session, entryway.clock, entryway.runtime.digester)
            sam = directory.get_user(SAM[0])
            roles = GroupService(session, entryway.clock).roles_of(
                directory.find_tenant(DOMAIN), sam.object_id
            )
        assert tenant.restrict_global
        assert tenant.max_lifespan_days == 30
        assert not tenant.auto_revoke_leaked
        assert [e.display_name for e in tenant.allowlist(PolicyName.RESTRICT_GLOBAL)] == ["Tooling"]
        assert [e.principal_object_id for e in tenant.allowlist(PolicyName.MAX_LIFESPAN)] == [sam.object_id]
        assert org_policy.restrict_creation
        assert {e.principal_kind for e in org_policy.allowlist} == {"group", "user"}
        assert roles == [ROLE_TEMPLATES["Azure DevOps Administrator"]]
        # The global PAT Tess (in Tooling) may make; Sam may not.
        assert create(entryway, tokens["tess"], allOrgs=True)["patTokenError"] == "none"
        assert create(entryway, tokens["sam"], allOrgs=True)["patTokenError"] == "globalPatPolicyViolation"
        # Applying the same file again changes nothing.
        assert apply_config(entryway.runtime, yaml.safe_load(POLICY_CONFIG), source="policies").created == []
    finally:
        ok(
            entryway,
            "pats",
            "policy",
            "set",
            "--tenant",
            DOMAIN,
            "--no-restrict-global",
            "--auto-revoke-leaked",
        )
        ok(
            entryway,
            "pats",
            "policy",
            "disallow",
            "--tenant",
            DOMAIN,
            "--policy",
            "restrictGlobal",
            "--group",
            "Tooling",
        )
        ok(
            entryway,
            "pats",
            "policy",
            "disallow",
            "--tenant",
            DOMAIN,
            "--policy",
            "maxLifespan",
            "--user",
            SAM[0],
        )
        ok(entryway, "pats", "policy", "disallow", "--org", ORG, "--group", "Tooling")
        ok(entryway, "user", "role", "remove", SAM[0], "--role", "Azure DevOps Administrator")


def _tenant_config(extra: str, user_extra: str = "") -> str:
    return f"""\
tenants:
  - id: {TENANT_ID}
    domains: [{DOMAIN}]
    users:
      - upn: {SAM[0]}
{user_extra}{extra}"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            _tenant_config("    pat_policies:\n      max_lifespan_days: 400\n"),
            "pat_policies: the maximum PAT lifespan",
        ),
        (_tenant_config("    pat_policies:\n      restrict_global: yes please\n"), "expected true or false"),
        (
            _tenant_config("    pat_policies:\n      restrict_creation: true\n"),
            "unknown key(s) restrict_creation",
        ),
        (
            _tenant_config(
                "    pat_policies:\n      allowlists:\n        restrict_global: [{group: Nope}]\n"
            ),
            "no group 'Nope'",
        ),
        (
            _tenant_config(
                f"    pat_policies:\n      allowlists:\n        max_lifespan: [{{user: {SAM[0]}, group: Tooling}}]\n"
            ),
            "exactly one of 'user' or 'group'",
        ),
        (
            _tenant_config("    pat_policies:\n      allowlists:\n        restrict_creation: []\n"),
            "unknown key(s) restrict_creation",
        ),
        (_tenant_config("", '        roles: ["Printer Operator"]\n'), "unknown directory role"),
        (
            _tenant_config(
                "    groups:\n      - name: Ghosts\n        members: [{user: casper@admin-policies.test}]\n"
            ),
            "no user",
        ),
        (
            _tenant_config("    groups:\n      - name: Ghosts\n        members: [{robot: r2}]\n"),
            "unknown key(s) robot",
        ),
        (
            f"organizations:\n  - name: {ORG}\n    tenant: {DOMAIN}\n    pat_policies:\n      packaging_only: 1\n",
            "expected true or false",
        ),
        (
            f"organizations:\n  - name: {ORG}\n    tenant: {DOMAIN}\n    pat_policies:\n"
            "      allowlist: [{user: ada@contoso.test}]\n",
            "is not in tenant",
        ),
    ],
)
def test_a_bad_config_is_refused_and_changes_nothing(
    entryway: Instance, tokens: dict[str, str], text: str, message: str
) -> None:
    before = json.loads(ok(entryway, "pats", "policy", "show", "--tenant", DOMAIN, "--json"))
    with pytest.raises(ConfigError) as caught:
        apply_config(entryway.runtime, yaml.safe_load(text), source="bad")
    assert message in str(caught.value)
    assert json.loads(ok(entryway, "pats", "policy", "show", "--tenant", DOMAIN, "--json")) == before
    assert "Ghosts" not in ok(entryway, "group", "list", "--tenant", DOMAIN)


def test_an_entry_whose_group_was_deleted_is_taken_off_by_object_id(
    entryway: Instance, tokens: dict[str, str]
) -> None:
    group_id = ok(entryway, "group", "create", "Short Lived", "--tenant", DOMAIN).split("\t")[0]
    ok(entryway, "pats", "policy", "allow", "--org", ORG, "--group", "Short Lived")
    ok(entryway, "group", "delete", "Short Lived", "--tenant", DOMAIN)
    shown = json.loads(ok(entryway, "pats", "policy", "show", "--org", ORG, "--json"))
    assert group_id in [e["objectId"] for e in shown["allowlist"]]
    result = run(entryway, "pats", "policy", "disallow", "--org", ORG, "--group", "Short Lived")
    assert result.exit_code == 2
    assert "no group" in result.output
    both = run(
        entryway, "pats", "policy", "disallow", "--org", ORG, "--object-id", group_id, "--user", SAM[0]
    )
    assert both.exit_code == 2
    assert "one of --user, --group or --object-id" in both.output
    bad = run(entryway, "pats", "policy", "disallow", "--org", ORG, "--object-id", "not-a-guid")
    assert bad.exit_code == 2
    assert "not an object id" in bad.output
    ok(entryway, "pats", "policy", "disallow", "--org", ORG, "--object-id", group_id)
    shown = json.loads(ok(entryway, "pats", "policy", "show", "--org", ORG, "--json"))
    assert group_id not in [e["objectId"] for e in shown["allowlist"]]
