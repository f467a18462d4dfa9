"""The declarative config file: the issue's example loads unchanged, a second apply changes nothing, and a
file with an error changes nothing at all."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msal
import pytest
import requests
import yaml
from sqlalchemy import func, select

from entryway.config.declarative import ConfigError, apply_config, load_config
from entryway.config.seed import ensure_installation, seed_demo
from entryway.config.settings import Settings
from entryway.devops.orgs.service import AccessLevel, OrgService
from entryway.identity.directory.first_party import AZURE_CLI
from entryway.identity.directory.service import DirectoryService
from entryway.kit.clock import as_utc
from entryway.kit.passwords import verify_password
from entryway.runtime import Runtime
from entryway.store.models import Base, ClientSecretRow
from tests.conftest import (
    BUILD_BOT_ID,
    BUILD_BOT_SECRET,
    CONTOSO_TENANT,
    DEVOPS_RESOURCE,
    DEVOPS_SCOPE,
    ISSUE_EXAMPLE_CONFIG,
    Instance,
)
from tests.directory.certificates import make_certificate, pem, sha1_thumbprint


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime.open(Settings(data_dir=tmp_path))
    yield rt
    rt.close()


def row_counts(rt: Runtime) -> dict[str, int]:
    with rt.db.read() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
        }


def test_issue_example_applies_then_second_apply_changes_nothing(runtime: Runtime) -> None:
    data = yaml.safe_load(ISSUE_EXAMPLE_CONFIG)
    first = apply_config(runtime, data)
    assert "tenant 7d3a1f52-5b8e-4c1e-9f4a-2b6c8d0e1f23" in first.created
    assert "user alice@contoso.test" in first.created
    counts = row_counts(runtime)
    assert counts["users"] == 1
    assert counts["devops_members"] == 2

    second = apply_config(runtime, data)
    assert second.created == []
    assert row_counts(runtime) == counts


def test_config_file_from_disk(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "entryway.yaml"
    path.write_text(ISSUE_EXAMPLE_CONFIG)
    assert apply_config(runtime, load_config(path), str(path)).created


BAD_CONFIGS: list[tuple[str, Any, str]] = [
    ("not a mapping", ["x"], "expected a mapping"),
    ("unknown top-level key", {"tenant": []}, "unknown key(s) tenant"),
    ("tenant without domains", {"tenants": [{"id": "7d3a1f52-5b8e-4c1e-9f4a-2b6c8d0e1f23"}]}, "domains"),
    ("tenant id not a GUID", {"tenants": [{"id": "nope", "domains": ["a.test"]}]}, "not a GUID"),
    ("bad domain", {"tenants": [{"domains": ["not a domain"]}]}, "not a valid domain"),
    (
        "user outside the tenant's domains",
        {"tenants": [{"domains": ["a.test"], "users": [{"upn": "bob@b.test", "password": "long-enough-1"}]}]},
        "not a domain of tenant",
    ),
    (
        "short password",
        {"tenants": [{"domains": ["a.test"], "users": [{"upn": "bob@a.test", "password": "short"}]}]},
        "at least 8",
    ),
    (
        "secret too short",
        {"tenants": [{"domains": ["a.test"], "apps": [{"name": "x", "secrets": [{"value": "tiny"}]}]}]},
        "at least 16",
    ),
    (
        "secret expired",
        {
            "tenants": [
                {
                    "domains": ["a.test"],
                    "apps": [
                        {"name": "x", "secrets": [{"value": "0123456789abcdefXYZ", "expires": "2001-01-01"}]}
                    ],
                }
            ]
        },
        "in the future",
    ),
    (
        "bad expiry",
        {
            "tenants": [
                {
                    "domains": ["a.test"],
                    "apps": [{"name": "x", "secrets": [{"value": "0123456789abcdefXYZ", "expires": "soon"}]}],
                }
            ]
        },
        "ISO 8601",
    ),
    ("org for an unknown tenant", {"organizations": [{"name": "o", "tenant": "nowhere.test"}]}, "not found"),
    (
        "bad org name",
        {"tenants": [{"domains": ["a.test"]}], "organizations": [{"name": "bad name!", "tenant": "a.test"}]},
        "not a valid organization name",
    ),
    (
        "member with both app and user",
        {
            "tenants": [{"domains": ["a.test"], "apps": [{"name": "x"}]}],
            "organizations": [
                {"name": "o", "tenant": "a.test", "members": [{"app": "x", "user": "u@a.test"}]}
            ],
        },
        "exactly one",
    ),
    (
        "unknown access level",
        {
            "tenants": [{"domains": ["a.test"], "apps": [{"name": "x"}]}],
            "organizations": [
                {"name": "o", "tenant": "a.test", "members": [{"app": "x", "access": "admin"}]}
            ],
        },
        "unknown access level",
    ),
    (
        "grant of a role the resource does not define",
        {
            "tenants": [
                {
                    "domains": ["a.test"],
                    "apps": [{"name": "x", "grants": [{"resource": "x", "roles": ["R"]}]}],
                }
            ]
        },
        "defines no app role",
    ),
    ("wrong type", {"tenants": [{"domains": "a.test"}]}, "expected a list of strings"),
]


@pytest.mark.parametrize(("case", "data", "message"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_refused_and_writes_nothing(
    runtime: Runtime, case: str, data: Any, message: str
) -> None:
    before = row_counts(runtime)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        apply_config(runtime, data)
    assert row_counts(runtime) == before, case


def test_unquoted_dates_and_timestamps_are_expiries(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "dates.yaml"
    path.write_text(
        "tenants:\n"
        "  - domains: [dates.test]\n"
        "    apps:\n"
        "      - name: a\n"
        "        secrets:\n"
        "          - value: date-secret-0123456789\n"
        "            expires: 2027-06-30\n"
        "          - value: time-secret-0123456789\n"
        "            expires: 2027-06-30T12:00:00Z\n"
    )
    apply_config(runtime, load_config(path))
    with runtime.db.read() as session:
        expiries = sorted(as_utc(e) for e in session.scalars(select(ClientSecretRow.expires_at)))
    assert expiries == [datetime(2027, 6, 30, tzinfo=UTC), datetime(2027, 6, 30, 12, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (
            {
                "tenants": [
                    {"domains": ["a.test"], "users": [{"upn": "bob@b.test", "password": "long-enough-1"}]}
                ]
            },
            "config.tenants[0].users[0]: ",
        ),
        (
            {
                "tenants": [{"domains": ["a.test"], "apps": [{"name": "x"}]}],
                "organizations": [{"name": "o", "tenant": "a.test", "members": [{"app": "y"}]}],
            },
            "config.organizations[0].members[0]: application 'y' not found",
        ),
        (
            {"tenants": [{"domains": ["a.test"], "apps": [{"name": "x", "client_id": "not-a-guid"}]}]},
            "config.tenants[0].apps[0]: client id 'not-a-guid' is not a GUID",
        ),
    ],
)
def test_directory_refusals_name_where_in_the_file(runtime: Runtime, data: Any, where: str) -> None:
    with pytest.raises(ConfigError) as raised:
        apply_config(runtime, data)
    assert str(raised.value).startswith(where)


def test_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("tenants: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_app_from_config_gets_a_token_accepted_by_its_organization(entryway: Instance) -> None:
    app = msal.ConfidentialClientApplication(
        BUILD_BOT_ID,
        client_credential=BUILD_BOT_SECRET,
        authority=entryway.authority("contoso.test"),
        instance_discovery=False,
    )
    result = app.acquire_token_for_client([DEVOPS_SCOPE])
    assert "access_token" in result, result
    response = requests.get(
        f"{entryway.devops}/fabrikam/_apis/connectionData",
        headers={"Authorization": f"Bearer {result['access_token']}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["authenticatedUser"]["descriptor"].startswith(
        f"Microsoft.VisualStudio.Services.Claims.AadServicePrincipal;{CONTOSO_TENANT}\\"
    )


SIGN_IN_CONFIG = """\
tenants:
  - domains: [signin.test]
    mfa_required_by_default: true
    refresh_token_inactivity: 604800
    sign_in_frequency: 86400
    users:
      - upn: mia@signin.test
        password: "Correct-Horse-42"
        mfa_required: false
      - upn: noah@signin.test
        password: "Correct-Horse-42"
    apps:
      - name: desktop-tool
        client_id: 6e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b
        public_client: true
        redirect_uris: ["http://localhost", "msal6e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b://auth"]
        admin_consent:
          - resource: 499b84ac-1321-427f-aa17-267ca6975798
            scopes: [user_impersonation]
      - name: web-portal
        redirect_uris: ["https://portal.signin.test/signin-oidc"]
        admin_consent:
          - resource: Azure DevOps
            scopes: [user_impersonation]
"""


def test_sign_in_settings_apply_then_second_apply_changes_nothing(runtime: Runtime) -> None:
    data = yaml.safe_load(SIGN_IN_CONFIG)
    first = apply_config(runtime, data)
    assert "admin consent for desktop-tool to Azure DevOps" in first.created
    counts = row_counts(runtime)
    assert apply_config(runtime, data).created == []
    assert row_counts(runtime) == counts

    with runtime.db.read() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        tenant = directory.find_tenant("signin.test")
        assert tenant.mfa_required_default is True
        assert tenant.refresh_token_inactivity_seconds == 604800
        assert tenant.sign_in_frequency_seconds == 86400
        assert directory.get_user("mia@signin.test").mfa_required is False
        assert directory.get_user("noah@signin.test").mfa_required is None
        tool = directory.find_application(tenant, "desktop-tool")
        assert tool.public_client is True
        assert tool.redirect_uris == ["http://localhost", "msal6e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b://auth"]
        assert directory.list_admin_consents(tenant, tool) == [(DEVOPS_RESOURCE, ["user_impersonation"])]
        portal = directory.find_application(tenant, "web-portal")
        assert (portal.public_client, portal.redirect_uris) == (
            False,
            ["https://portal.signin.test/signin-oidc"],
        )


def test_changed_sign_in_settings_are_applied_on_the_next_start(runtime: Runtime) -> None:
    apply_config(runtime, yaml.safe_load(SIGN_IN_CONFIG))
    changed = yaml.safe_load(SIGN_IN_CONFIG)
    tenant_cfg = changed["tenants"][0]
    tenant_cfg.update(mfa_required_by_default=False, refresh_token_inactivity=3600, sign_in_frequency=0)
    tenant_cfg["users"][0]["mfa_required"] = True
    tool_cfg = tenant_cfg["apps"][0]
    tool_cfg.update(public_client=False, redirect_uris=["https://tool.signin.test/cb"])
    report = apply_config(runtime, changed)
    assert len(report.created) == 6, report.created
    with runtime.db.read() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        tenant = directory.find_tenant("signin.test")
        assert (tenant.mfa_required_default, tenant.refresh_token_inactivity_seconds) == (False, 3600)
        assert tenant.sign_in_frequency_seconds is None
        assert directory.get_user("mia@signin.test").mfa_required is True
        tool = directory.find_application(tenant, "desktop-tool")
        assert tool.public_client is False
        # Redirect URIs are added, never removed because they left the file.
        assert tool.redirect_uris[-1] == "https://tool.signin.test/cb"
        assert "http://localhost" in tool.redirect_uris
    assert apply_config(runtime, changed).created == []


def _signin_tenant(**extra: Any) -> dict[str, Any]:
    return {"tenants": [{"domains": ["s.test"], **extra}]}


def _signin_app(**extra: Any) -> dict[str, Any]:
    return _signin_tenant(apps=[{"name": "x", **extra}])


BAD_SIGN_IN_CONFIGS: list[tuple[str, Any, str]] = [
    ("mfa default not a boolean", _signin_tenant(mfa_required_by_default="yes"), "expected true or false"),
    ("inactivity too short", _signin_tenant(refresh_token_inactivity=60), "refresh token inactivity must be"),
    ("inactivity as text", _signin_tenant(refresh_token_inactivity="90d"), "expected a whole number"),
    ("frequency too long", _signin_tenant(sign_in_frequency=400 * 86400), "sign-in frequency must be"),
    (
        "user mfa not a boolean",
        _signin_tenant(users=[{"upn": "a@s.test", "password": "long-enough-1", "mfa_required": 1}]),
        "expected true or false",
    ),
    ("public_client not a boolean", _signin_app(public_client="true"), "expected true or false"),
    ("http redirect URI", _signin_app(redirect_uris=["http://app.s.test/cb"]), "http is allowed only"),
    ("exposed OpenID scope", _signin_app(scopes=["openid"]), "OpenID Connect scope"),
    ("exposed scope with a space", _signin_app(scopes=["read all"]), "must be 1-120 letters"),
    ("redirect URI with a fragment", _signin_app(redirect_uris=["https://a.s.test/#x"]), "fragment"),
    (
        "redirect URIs not a list",
        _signin_app(redirect_uris="https://a.s.test/"),
        "expected a list of strings",
    ),
    (
        "consent without scopes",
        _signin_app(admin_consent=[{"resource": "Azure DevOps"}]),
        "at least one scope",
    ),
    (
        "consent to an undefined scope",
        _signin_app(admin_consent=[{"resource": "Azure DevOps", "scopes": ["vso.code"]}]),
        "defines no delegated permission",
    ),
    (
        "consent to an unknown resource",
        _signin_app(admin_consent=[{"resource": "nowhere", "scopes": ["x"]}]),
        "application 'nowhere' not found",
    ),
    (
        "consent with an unknown key",
        _signin_app(admin_consent=[{"resource": "Azure DevOps", "scope": ["user_impersonation"]}]),
        "unknown key(s) scope",
    ),
]


@pytest.mark.parametrize(
    ("case", "data", "message"), BAD_SIGN_IN_CONFIGS, ids=[c[0] for c in BAD_SIGN_IN_CONFIGS]
)
def test_bad_sign_in_config_is_refused_with_its_path_and_writes_nothing(
    runtime: Runtime, case: str, data: Any, message: str
) -> None:
    before = row_counts(runtime)
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        apply_config(runtime, data)
    assert str(raised.value).startswith("config.tenants[0]"), raised.value
    assert row_counts(runtime) == before, case


def test_demo_seed_has_a_user_who_is_a_basic_member(runtime: Runtime) -> None:
    ensure_installation(runtime)
    seed = seed_demo(runtime)
    assert seed.user_upn == "alex@demo.entryway.test"
    assert seed.user_password is not None
    assert re.fullmatch(r"([A-Za-z0-9]{4}-){3}[A-Za-z0-9]{4}", seed.user_password)
    with runtime.db.read() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        user = directory.get_user(seed.user_upn)
        assert user.password_hash is not None
        assert verify_password(user.password_hash, seed.user_password)
        assert user.mfa_required is None
        orgs = OrgService(session, runtime.clock)
        org = orgs.find(seed.organization)
        assert org is not None
        member = orgs.find_member(org, user.object_id)
        assert member is not None
        assert member.access_level is AccessLevel.BASIC
        tenant = directory.find_tenant(seed.tenant_id)
        assert directory.find_enterprise_app(tenant, AZURE_CLI.app_id).public_client is True


def test_demo_password_may_be_chosen(runtime: Runtime) -> None:
    ensure_installation(runtime)
    seed = seed_demo(runtime, "Chosen-Password-1")
    assert seed.user_password is None  # chosen, so not printed
    with runtime.db.read() as session:
        user = DirectoryService(session, runtime.clock, runtime.digester).get_user(seed.user_upn)
        assert user.password_hash is not None
        assert verify_password(user.password_hash, "Chosen-Password-1")


# --- workload identities -------------------------------------------------------------------------

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
# Before the test certificates expire (a year from now): the config ends the inline one's use early.
INLINE_CERT_END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=90)


SHOP_RESOURCE_ID = (
    "/subscriptions/0b5e3c1d-2a4f-4e6b-8c7d-9e0f1a2b3c4d/resourceGroups/Web/providers/"
    "Microsoft.Web/sites/Shop"
)


def workload_config(cert_path: Path, inline_pem: str) -> dict[str, Any]:
    return yaml.safe_load(f"""
tenants:
  - domains: [workload.test]
    apps:
      - name: deployer
        certificates:
          - path: {cert_path.name}
            display_name: ci
          - pem: |
{textwrap.indent(inline_pem, " " * 14)}            expires: {INLINE_CERT_END:%Y-%m-%d}
        federated_credentials:
          - name: main-branch
            issuer: {GITHUB_ISSUER}
            subject: "repo:contoso/app:ref:refs/heads/main"
          - name: any-branch
            issuer: {GITHUB_ISSUER}
            claims_matching_expression: "claims['sub'] matches 'repo:contoso/app:ref:refs/heads/*'"
            description: every branch
    managed_identities:
      - name: build-agent
        kind: user
        on_host: true
        federated_credentials:
          - name: aks
            issuer: https://oidc.workload.test/cluster
            subject: system:serviceaccount:ci:builder
            audiences: [api://AzureADTokenExchange]
      - name: buildhost
        kind: system
        on_host: true
      - name: web-shop
        kind: system
        resource_id: {SHOP_RESOURCE_ID}
organizations:
  - name: workload
    tenant: workload.test
    members:
      - managed_identity: build-agent
        access: basic
      - managed_identity: buildhost
        access: stakeholder
""")


@pytest.fixture
def certificate_files(tmp_path: Path) -> tuple[Path, str, list[str]]:
    """A certificate file next to the config, an inline PEM, and their SHA-1 thumbprints."""
    on_disk, inline = make_certificate(name="on-disk"), make_certificate(name="inline")
    path = tmp_path / "deployer.pem"
    path.write_bytes(pem(on_disk))
    return path, pem(inline).decode(), [sha1_thumbprint(on_disk), sha1_thumbprint(inline)]


def test_workload_identities_apply_then_second_apply_changes_nothing(
    runtime: Runtime, certificate_files: tuple[Path, str, list[str]]
) -> None:
    path, inline, thumbprints = certificate_files
    data = workload_config(path, inline)
    first = apply_config(runtime, data, base_dir=path.parent)
    assert f"certificate {thumbprints[0]} for deployer" in first.created
    assert "federated credential aks for build-agent" in first.created
    assert "managed identity build-agent on the host" in first.created
    assert "member " in " ".join(first.created)
    counts = row_counts(runtime)
    assert counts["certificates"] == 2
    assert counts["federated_identity_credentials"] == 3
    assert counts["managed_identities"] == 3

    assert apply_config(runtime, data, base_dir=path.parent).created == []
    assert row_counts(runtime) == counts

    with runtime.db.read() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        tenant = directory.find_tenant("workload.test")
        deployer = directory.find_application(tenant, "deployer")
        certs = directory.list_certificates(deployer)
        assert [c.thumbprint_sha1 for c in certs] == thumbprints
        assert certs[0].display_name == "ci"
        assert as_utc(certs[1].not_after) == INLINE_CERT_END
        fics = directory.list_federated_credentials(deployer)
        assert [(f.name, f.subject, f.audiences) for f in fics] == [
            ("main-branch", "repo:contoso/app:ref:refs/heads/main", ["api://AzureADTokenExchange"]),
            ("any-branch", None, ["api://AzureADTokenExchange"]),
        ]
        agent = directory.find_managed_identity(tenant, "build-agent")
        host = directory.find_managed_identity(tenant, "buildhost")
        shop = directory.find_managed_identity(tenant, "web-shop")
        assert (agent.kind, agent.on_host, host.on_host, shop.on_host) == ("user", True, True, False)
        assert shop.resource_id == SHOP_RESOURCE_ID.lower()
        assert [a.display_name for a in directory.list_applications(tenant)] == ["deployer"]
        orgs = OrgService(session, runtime.clock)
        org = orgs.find("workload")
        assert org is not None
        members = {m.object_id: m for m in orgs.list_members(org)}
        assert members[agent.object_id].kind == "servicePrincipal"
        assert members[agent.object_id].principal_name == agent.app_id
        assert members[agent.object_id].display_name == "build-agent"
        assert members[host.object_id].access_level is AccessLevel.STAKEHOLDER


def test_changed_workload_identities_are_applied_on_the_next_start(
    runtime: Runtime, certificate_files: tuple[Path, str, list[str]]
) -> None:
    path, inline, _thumbprints = certificate_files
    data = workload_config(path, inline)
    apply_config(runtime, data, base_dir=path.parent)
    tenant_cfg = data["tenants"][0]
    tenant_cfg["apps"][0]["federated_credentials"][0]["subject"] = "repo:contoso/app:environment:prod"
    # The one system-assigned identity on the host moves from buildhost to web-shop in one file.
    identities = tenant_cfg["managed_identities"]
    identities[1]["on_host"], identities[2]["on_host"] = False, True
    report = apply_config(runtime, data, base_dir=path.parent)
    assert sorted(report.created) == [
        "federated credential main-branch for deployer changed",
        "managed identity buildhost off the host",
        "managed identity web-shop on the host",
    ]
    with runtime.db.read() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        tenant = directory.find_tenant("workload.test")
        fic = directory.list_federated_credentials(directory.find_application(tenant, "deployer"))[0]
        assert fic.subject == "repo:contoso/app:environment:prod"
        assert directory.find_managed_identity(tenant, "web-shop").on_host is True
    assert apply_config(runtime, data, base_dir=path.parent).created == []


def _workload_app(**extra: Any) -> dict[str, Any]:
    return {"tenants": [{"domains": ["w.test"], "apps": [{"name": "x", **extra}]}]}


def _identities(*identities: dict[str, Any]) -> dict[str, Any]:
    return {"tenants": [{"domains": ["w.test"], "managed_identities": list(identities)}]}


def _fic(**values: Any) -> dict[str, Any]:
    return {"name": "main", "issuer": GITHUB_ISSUER, "subject": "repo:c/a:ref:refs/heads/main", **values}


BAD_WORKLOAD_CONFIGS: list[tuple[str, Any, str, str]] = [
    ("certificate without path or pem", _workload_app(certificates=[{"display_name": "x"}]),
     "apps[0].certificates[0]", "give exactly one of 'path' or 'pem'"),
    ("certificate with path and pem", _workload_app(certificates=[{"path": "a.pem", "pem": "x"}]),
     "apps[0].certificates[0]", "give exactly one of 'path' or 'pem'"),
    ("certificate file missing", _workload_app(certificates=[{"path": "missing.pem"}]),
     "apps[0].certificates[0].path", "cannot read"),
    ("certificate not PEM", _workload_app(certificates=[{"pem": "-----BEGIN CERTIFICATE-----\nAA\n"}]),
     "apps[0].certificates[0]", "holds no valid X.509 certificate"),
    ("private key in the file", _workload_app(certificates=[{"pem": "-----BEGIN PRIVATE KEY-----\n"}]),
     "apps[0].certificates[0]", "holds a private key"),
    ("certificate with an unknown key", _workload_app(certificates=[{"file": "a.pem"}]),
     "apps[0].certificates[0]", "unknown key(s) file"),
    ("federated credential without issuer", _workload_app(federated_credentials=[{"name": "main", "subject": "s"}]),
     "apps[0].federated_credentials[0].issuer", "required"),
    ("federated credential with an http issuer", _workload_app(federated_credentials=[_fic(issuer="http://i.test")]),
     "apps[0].federated_credentials[0]", "must be an https URL"),
    ("federated credential with two audiences", _workload_app(federated_credentials=[_fic(audiences=["a", "b"])]),
     "apps[0].federated_credentials[0]", "exactly one audience"),
    ("federated credential with subject and expression",
     _workload_app(federated_credentials=[_fic(claims_matching_expression="claims['sub'] eq 's'")]),
     "apps[0].federated_credentials[0]", "exactly one of a subject or a claims-matching expression"),
    ("federated credential named twice", _workload_app(federated_credentials=[_fic(), _fic()]),
     "apps[0].federated_credentials[1].name", "'main' is declared twice"),
    ("managed identity without kind", _identities({"name": "agent"}),
     "managed_identities[0].kind", "required"),
    ("managed identity of an unknown kind", _identities({"name": "agent", "kind": "group"}),
     "managed_identities[0]", "kind is 'system' or 'user'"),
    ("managed identity with a bad name", _identities({"name": "a b", "kind": "user"}),
     "managed_identities[0]", "not a valid managed identity name"),
    ("two system-assigned identities on the host",
     _identities({"name": "one", "kind": "system", "on_host": True},
                 {"name": "two", "kind": "system", "on_host": True}),
     "managed_identities[1]", "already carries the system-assigned identity 'one'"),
    ("federated credential on a system-assigned identity",
     _identities({"name": "host", "kind": "system", "federated_credentials": [_fic()]}),
     "managed_identities[0].federated_credentials[0]", "system-assigned managed identity"),
    ("claims expression on a managed identity",
     _identities({"name": "agent", "kind": "user", "federated_credentials": [
         _fic(subject=None, claims_matching_expression="claims['sub'] eq 's'")]}),
     "managed_identities[0].federated_credentials[0]", "claims-matching expressions are for app registrations"),
    ("member naming an unknown managed identity",
     {"tenants": [{"domains": ["w.test"]}],
      "organizations": [{"name": "o", "tenant": "w.test", "members": [{"managed_identity": "ghost"}]}]},
     "organizations[0].members[0]", "managed identity 'ghost' not found"),
    ("member naming an app and a managed identity",
     {"tenants": [{"domains": ["w.test"], "apps": [{"name": "x"}]}],
      "organizations": [{"name": "o", "tenant": "w.test", "members": [{"app": "x", "managed_identity": "x"}]}]},
     "organizations[0].members[0]", "exactly one of 'app', 'user' or 'managed_identity'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "data", "where", "message"), BAD_WORKLOAD_CONFIGS, ids=[c[0] for c in BAD_WORKLOAD_CONFIGS]
)
def test_bad_workload_config_is_refused_with_its_path_and_writes_nothing(  # noqa: PLR0917 - parameters
    runtime: Runtime, tmp_path: Path, case: str, data: Any, where: str, message: str
) -> None:
    before = row_counts(runtime)
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        apply_config(runtime, data, base_dir=tmp_path)
    prefix = f"config.{where}" if where.startswith("organizations") else f"config.tenants[0].{where}"
    assert str(raised.value).startswith(prefix), raised.value
    assert row_counts(runtime) == before, case


def test_a_managed_identity_changing_kind_or_resource_id_is_refused(runtime: Runtime) -> None:
    apply_config(runtime, _identities({"name": "agent", "kind": "user"}))
    with pytest.raises(
        ConfigError, match=r"managed_identities\[0\]\.kind: 'agent' exists as a user-assigned"
    ):
        apply_config(runtime, _identities({"name": "agent", "kind": "system"}))
    other = (
        "/subscriptions/s/resourcegroups/g/providers/microsoft.managedidentity/userassignedidentities/agent"
    )
    with pytest.raises(ConfigError, match="a resource id cannot change"):
        apply_config(runtime, _identities({"name": "agent", "kind": "user", "resource_id": other}))


def test_an_api_exposes_scopes_that_a_client_is_consented_to(runtime: Runtime) -> None:
    """The on-behalf-of set-up: an API with an identifier URI and a scope, and a client consented to it."""
    data = _signin_tenant(
        apps=[
            {"name": "tasks-api", "identifier_uris": ["api://tasks"], "scopes": ["access_as_user"]},
            {
                "name": "tasks-cli",
                "public_client": True,
                "admin_consent": [{"resource": "tasks-api", "scopes": ["access_as_user"]}],
            },
        ]
    )
    first = apply_config(runtime, data)
    assert any("tasks-cli" in note for note in first.created)
    counts = row_counts(runtime)
    data["tenants"][0]["apps"][0]["scopes"] = ["access_as_user", "Tasks.Write"]
    second = apply_config(runtime, data)
    assert second.created == ["exposed scopes for tasks-api"]
    assert row_counts(runtime) == counts
    assert apply_config(runtime, data).created == []


PROJECTS_CONFIG = """\
tenants:
  - id: 7d3a1f52-5b8e-4c1e-9f4a-2b6c8d0e1f23
    domains: [contoso.test]
    users:
      - upn: alice@contoso.test
        password: "Correct-Horse-42"
      - upn: ada@contoso.test
        password: "Ada-Signs-In-0042"
    apps:
      - name: build-bot
organizations:
  - name: fabrikam
    tenant: contoso.test
    members:
      - user: alice@contoso.test
        organization_admin: true
      - user: ada@contoso.test
        access: stakeholder
      - app: build-bot
    projects:
      - name: Website
        description: The public site
        repositories: [site, infra]
        members:
          - user: ada@contoso.test
            role: readers
          - app: build-bot
            role: contributors
      - name: Tools
"""


def test_projects_repositories_roles_and_admins_apply_once(runtime: Runtime) -> None:
    from entryway.devops.git.storage import repository_path
    from entryway.devops.projects.permissions import ProjectRole
    from entryway.devops.projects.service import ProjectService

    data = yaml.safe_load(PROJECTS_CONFIG)
    first = apply_config(runtime, data)
    assert "project fabrikam/Website" in first.created
    assert "repository fabrikam/Website/infra" in first.created
    counts = row_counts(runtime)
    assert counts["devops_projects"] == 2
    assert counts["devops_repositories"] == 2
    assert counts["devops_project_members"] == 2
    with runtime.db.read() as session:
        orgs = OrgService(session, runtime.clock)
        org = orgs.get("fabrikam")
        admins = {m.principal_name for m in orgs.list_members(org) if m.organization_admin}
        assert admins == {"alice@contoso.test"}
        projects = ProjectService(session, runtime.clock)
        website = projects.get(org, "website")
        assert website.description == "The public site"
        roles = {m.member.principal_name: m.role for m in projects.list_roles(website)}
        assert roles["ada@contoso.test"] is ProjectRole.READERS
        for repo in projects.list_repositories(org, project=website):
            assert (repository_path(runtime.settings.data_dir / "git", repo.id) / "HEAD").is_file()
        # Changes are in the audit log, by the config file.
        assert counts["devops_audit_events"] >= 5

    second = apply_config(runtime, data)
    assert second.created == []
    assert row_counts(runtime) == counts


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (
            lambda d: d["organizations"][0]["projects"].append({"name": "_hidden"}),
            "organizations[0].projects[2]: ",
        ),
        (
            lambda d: d["organizations"][0]["projects"][0]["repositories"].append("a|b"),
            "organizations[0].projects[0].repositories[2]: ",
        ),
        (
            lambda d: d["organizations"][0]["projects"][0]["members"].append({"user": "ada@contoso.test"}),
            "organizations[0].projects[0].members[2].role: required",
        ),
        (
            lambda d: d["organizations"][0]["projects"][0]["members"].append(
                {"user": "ada@contoso.test", "role": "owners"}
            ),
            "organizations[0].projects[0].members[2].role: unknown project role 'owners'",
        ),
        (
            lambda d: (
                d["tenants"][0]["users"].append({"upn": "zed@contoso.test", "password": "Zed-Is-Not-0042"})
                or d["organizations"][0]["projects"][1].update(
                    members=[{"user": "zed@contoso.test", "role": "readers"}]
                )
            ),
            "organizations[0].projects[1].members[0]: zed@contoso.test is not a member of organization fabrikam",
        ),
        (
            lambda d: d["organizations"][0]["projects"][1].update(owner="x"),
            "organizations[0].projects[1]: unknown key(s) owner",
        ),
    ],
)
def test_bad_projects_are_refused_naming_the_path_and_write_nothing(
    runtime: Runtime, change: Any, where: str
) -> None:
    data = yaml.safe_load(PROJECTS_CONFIG)
    change(data)
    before = row_counts(runtime)
    with pytest.raises(ConfigError) as raised:
        apply_config(runtime, data)
    assert str(raised.value).startswith(f"config.{where}"), str(raised.value)
    assert row_counts(runtime) == before
