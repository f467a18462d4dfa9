"""Git Credential Manager's PAT mode end to end (devops-wire-contract 1.5).

GCM is a .NET program that is not installable here, so these tests replay its requests byte for byte with httpx
(the request lines, headers and the JSON body exactly as `AzureDevOpsRestApi.CreatePersonalAccessTokenAsync`
writes them) and read the answers the way it does: the first `"location"`, `"token"` or `"message"` string
field, with its regular expression. The user's Entra token comes from msal under GCM's client id, by the
device code flow GCM offers (`credential.msauthFlow=devicecode`), and the PAT it gets is then used by the
real git CLI, stored as GCM stores it (user name = UPN, password = PAT) in git's own credential store.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import msal
import pytest
import yaml
from sqlalchemy import func, select

from entryway.config.declarative import apply_config
from entryway.devops.orgs.service import Organization, OrgService
from entryway.devops.pats.format import is_well_formed
from entryway.devops.pats.policy import ORGANIZATION, AllowlistEntry, PatPolicyService, PolicyName
from entryway.identity.directory.groups import GroupService
from entryway.identity.directory.service import DirectoryService
from entryway.store.models import AuditEventRow, PersonalAccessTokenRow
from tests.conftest import (
    ADA,
    AZURE_CLI_ID,
    CONTOSO_TENANT,
    DEVOPS_SCOPE,
    Instance,
    complete_device_login,
    form_post,
)
from tests.devops.test_git import ORG, GitWorld, commit_file, git, git_world, ok
from tests.devops.test_pat_auth import make_pat

__all__ = ["git_world"]  # the fixture, imported from the Git tests

# GCM's constants (AzureDevOpsConstants, AzureDevOpsRestApi).
GCM_CLIENT_ID = "872cd9fa-d31f-45e0-9eab-6e460a02d1f1"
GCM_USER_AGENT = "Git-Credential-Manager/2.6.1 (Linux; X64) CLR/8.0.11 git/2.43.0"
LOCATION_PATH = "_apis/ServiceDefinitions/LocationService2/951917AC-A960-4999-8464-E3F0AA25B381"
SESSION_TOKEN_URL = "_apis/token/sessiontokens?api-version=1.0&tokentype=compact"
GCM_SCOPES = "vso.code_write vso.packaging"
MACHINE = "BUILDBOX-42"
NOT_ALLOWED = "The requested operation is not allowed."


def gcm_field(text: str, name: str) -> str | None:
    """GCM's `TryGetFirstJsonStringField`: the first `"<name>" : "<value>"` in the text, case-insensitive."""
    found = re.search(rf'"{re.escape(name)}"\s*\:\s*"(?P<value>[^"]+)"', text, re.IGNORECASE)
    return None if found is None else found.group("value")


def gcm_authority(response: httpx.Response) -> str | None:
    """GCM's `TryGetAuthorityFromHeader` over every WWW-Authenticate header of the unauthenticated HEAD."""
    for header in response.headers.get_list("www-authenticate"):
        scheme, _, parameter = header.partition(" ")
        found = re.match(r"^authorization_uri=(?P<authority>.+)$", parameter, re.IGNORECASE)
        if scheme.lower() == "bearer" and found:
            return found.group("authority")
    return None


@dataclass
class Gcm:
    """What GCM's Azure Repos provider does, request by request."""

    instance: Instance
    http: httpx.Client

    @property
    def org_url(self) -> str:
        return f"{self.instance.devops}/{ORG}"

    def discover_authority(self) -> str:
        response = self.http.head(self.org_url)  # status ignored, as GCM does
        authority = gcm_authority(response)
        assert authority is not None, response.headers
        return authority

    def sign_in(self, authority: str) -> str:
        """GCM's device code sign-in (`credential.msauthFlow=devicecode`): msal under GCM's client id; the
        person's part (the device login page) is walked over HTTP."""
        app = msal.PublicClientApplication(GCM_CLIENT_ID, authority=authority, instance_discovery=False)
        flow = app.initiate_device_flow(scopes=[DEVOPS_SCOPE])
        assert "user_code" in flow, flow
        complete_device_login(
            self.instance, flow["user_code"], ADA, verification_uri=flow["verification_uri"]
        )
        result = app.acquire_token_by_device_flow(flow)
        assert "access_token" in result, result
        token: str = result["access_token"]
        return token

    def location(self, access_token: str, org_url: str | None = None) -> httpx.Response:
        base = urlsplit(org_url or self.org_url)
        url = f"{base.scheme}://{base.netloc}{base.path.rstrip('/')}/{LOCATION_PATH}?api-version=1.0"
        return self.http.get(url, headers={"Authorization": f"Bearer {access_token}"})

    def create_pat(
        self, identity_service: str, access_token: str, body: bytes | None = None, url: str | None = None
    ) -> httpx.Response:
        content = body if body is not None else gcm_body(f"{self.org_url}", GCM_SCOPES)
        return self.http.post(
            url or f"{identity_service}{SESSION_TOKEN_URL}",
            content=content,
            headers={
                "Authorization": f"Bearer {access_token}",
                "Content-Type": "application/json; charset=utf-8",
            },
        )


def gcm_body(org_url: str, scopes: str) -> bytes:
    """`CreateAccessTokenRequestJson`'s format string, spaces and all."""
    return f'{{ "scope" : "{scopes}", "displayName" : "Git: {org_url} on {MACHINE}" }}'.encode()


@pytest.fixture
def gcm(entryway: Instance) -> Any:
    with httpx.Client(
        verify=ssl.create_default_context(cafile=entryway.ca_bundle),
        headers={"Accept": "application/json", "User-Agent": GCM_USER_AGENT},
        timeout=30,
    ) as http:
        yield Gcm(entryway, http)


def pat_count(instance: Instance) -> int:
    with instance.runtime.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(PersonalAccessTokenRow)) or 0)


def failure_message(response: httpx.Response) -> str:
    """What GCM prints for a failed create."""
    assert not response.is_success, response.text
    message = gcm_field(response.text, "message")
    return f"Failed to create PAT: {message}" if message else "Failed to create PAT"


# --- the whole path --------------------------------------------------------------------------------------


def test_gcm_creates_a_pat_that_git_then_clones_and_pushes_with(
    git_world: GitWorld, gcm: Gcm, tmp_path: Path
) -> None:
    instance = git_world.instance
    authority = gcm.discover_authority()
    assert authority.startswith(instance.identity)
    access_token = gcm.sign_in(authority)

    located = gcm.location(access_token)
    assert located.status_code == 200, located.text
    identity_service = gcm_field(located.text, "location")
    assert identity_service == f"{instance.devops}/{ORG}/"
    assert located.json()["serviceType"] == "LocationService2"

    created = gcm.create_pat(identity_service, access_token)
    assert created.status_code == 200, created.text
    pat = gcm_field(created.text, "token")
    assert pat is not None
    assert is_well_formed(pat)
    answer = created.json()
    assert answer["displayName"] == f"Git: {instance.devops}/{ORG} on {MACHINE}"
    assert answer["scope"] == GCM_SCOPES
    assert answer["alternateToken"] is None
    assert answer["isValid"] is True
    assert answer["isPublic"] is False
    with instance.runtime.db.read() as session:
        org_id = OrgService(session, instance.clock).get(ORG).id
        row = session.get(PersonalAccessTokenRow, answer["authorizationId"])
        assert row is not None
        audit = session.scalars(
            select(AuditEventRow).where(
                AuditEventRow.action == "Token.Create", AuditEventRow.organization_id == org_id
            )
        ).all()
    assert answer["targetAccounts"] == [org_id]
    assert (row.owner_name, row.organization_id, row.scope) == (ADA.upn, org_id, GCM_SCOPES)
    assert row.source == "sessiontoken"
    assert row.digest != pat
    assert pat not in str(row.__dict__)
    assert any(a.details["authorizationId"] == row.authorization_id for a in audit)

    # GCM stores username=UPN, password=PAT for the organization; git's own store helper plays that part.
    store = tmp_path / "git-credentials"
    origin = urlsplit(instance.devops)
    store.write_text(f"{origin.scheme}://{quote(ADA.upn, safe='')}:{pat}@{origin.netloc}\n")
    store.chmod(0o600)
    helper = ["-c", f"credential.helper=store --file={store}"]
    work = tmp_path / "clone"
    ok(git(git_world, *helper, "clone", "-q", git_world.url, str(work)))
    commit_file(git_world, work, f"gcm-{uuid.uuid4().hex[:8]}.txt", b"pushed with a GCM PAT\n")
    ok(git(git_world, *helper, "push", "-q", "origin", "HEAD:refs/heads/gcm-pat", cwd=work))
    with instance.runtime.db.read() as session:
        used = session.get(PersonalAccessTokenRow, answer["authorizationId"])
        assert used is not None
        assert used.git_uses >= 2
        assert used.last_used_route_kind == "git"


def test_a_pat_made_through_sessiontokens_cannot_make_another(gcm: Gcm, git_world: GitWorld) -> None:
    access_token = git_world.tokens[ADA.upn]
    first = gcm.create_pat(f"{gcm.org_url}/", access_token)
    pat = gcm_field(first.text, "token")
    assert pat is not None
    again = gcm.create_pat(f"{gcm.org_url}/", pat)
    # vso.code_write vso.packaging is not full access: refused by the route's scope, before the handler.
    assert again.status_code == 401, again.text
    assert again.json()["message"].startswith("TF400813: The user ")


# --- who may call ----------------------------------------------------------------------------------------


def test_an_app_only_token_is_refused(gcm: Gcm, git_world: GitWorld) -> None:
    before = pat_count(gcm.instance)
    refused = gcm.create_pat(f"{gcm.org_url}/", git_world.tokens["build-bot"])
    assert refused.status_code == 403, refused.text
    assert refused.json()["typeKey"] == "InvalidAccessException"
    assert failure_message(refused) == f"Failed to create PAT: {NOT_ALLOWED}"
    assert pat_count(gcm.instance) == before


def test_pats_are_refused_full_scope_or_not(gcm: Gcm, git_world: GitWorld) -> None:
    full, _ = make_pat(git_world, "app_token")
    code, _ = make_pat(git_world, "vso.code")
    before = pat_count(gcm.instance)
    assert gcm.create_pat(f"{gcm.org_url}/", full).status_code == 403
    narrow = gcm.create_pat(f"{gcm.org_url}/", code)
    assert narrow.status_code == 401  # the route needs full access: TF400813 naming the user
    assert "TF400813" in narrow.json()["message"]
    assert pat_count(gcm.instance) == before


def test_no_token_gets_the_challenge(gcm: Gcm) -> None:
    answer = gcm.http.post(f"{gcm.org_url}/{SESSION_TOKEN_URL}", content=gcm_body(gcm.org_url, GCM_SCOPES))
    assert answer.status_code == 401
    assert gcm_authority(answer) is not None
    assert gcm.http.get(f"{gcm.org_url}/{LOCATION_PATH}?api-version=1.0").status_code == 401


def test_the_location_lookup_answers_only_the_location_service(gcm: Gcm, git_world: GitWorld) -> None:
    access_token = git_world.tokens[ADA.upn]
    lower = gcm.http.get(
        f"{gcm.org_url}/_apis/ServiceDefinitions/locationservice2/951917ac-a960-4999-8464-e3f0aa25b381",
        headers={"Authorization": f"Bearer {access_token}"},
    )
    assert lower.status_code == 200
    for path in (
        "_apis/ServiceDefinitions/LocationService2/00000000-0000-0000-0000-000000000000",
        "_apis/ServiceDefinitions/OtherService/951917AC-A960-4999-8464-E3F0AA25B381",
    ):
        missing = gcm.http.get(
            f"{gcm.org_url}/{path}?api-version=1.0", headers={"Authorization": f"Bearer {access_token}"}
        )
        assert missing.status_code == 404, path
        assert missing.json()["typeKey"] == "VssServiceException"
    unknown_org = gcm.location(access_token, f"{gcm.instance.devops}/no-such-org")
    assert unknown_org.status_code == 404


# --- bad input: GCM prints the message; nothing is written ------------------------------------------------

_ERRORS: dict[str, tuple[str, bytes, str]] = {
    # case: (query, body, the start of the message GCM prints)
    "unknown scope": (SESSION_TOKEN_URL, gcm_body("x", "vso.nothing"), "Failed to create PAT: InvalidScope"),
    "no scope": (SESSION_TOKEN_URL, b'{"displayName": "x"}', "Failed to create PAT: InvalidScope"),
    "no display name": (
        SESSION_TOKEN_URL,
        b'{"scope": "vso.code"}',
        "Failed to create PAT: DisplayNameRequired",
    ),
    "display name not a string": (
        SESSION_TOKEN_URL,
        b'{"scope": "vso.code", "displayName": 42}',
        "Failed to create PAT: InvalidDisplayName",
    ),
    "not json": (SESSION_TOKEN_URL, b"scope=vso.code", "Failed to create PAT: DisplayNameRequired"),
    "a json array": (SESSION_TOKEN_URL, b'["vso.code"]', "Failed to create PAT: DisplayNameRequired"),
    "validTo in the past": (
        SESSION_TOKEN_URL,
        b'{"scope": "vso.code", "displayName": "x", "validTo": "2001-01-01T00:00:00Z"}',
        "Failed to create PAT: InvalidValidTo",
    ),
    "validTo not a date": (
        SESSION_TOKEN_URL,
        b'{"scope": "vso.code", "displayName": "x", "validTo": "soon"}',
        "Failed to create PAT: InvalidValidTo",
    ),
    "another organization": (
        SESSION_TOKEN_URL,
        b'{"scope": "vso.code", "displayName": "x", "targetAccounts": ["'
        + str(uuid.uuid4()).encode()
        + b'"]}',
        "Failed to create PAT: InvalidTargetAccounts",
    ),
    "targetAccounts not guids": (
        SESSION_TOKEN_URL,
        b'{"scope": "vso.code", "displayName": "x", "targetAccounts": ["fabrikam"]}',
        "Failed to create PAT: InvalidTargetAccounts",
    ),
    "an update": (
        SESSION_TOKEN_URL,
        b'{"scope": "vso.code", "displayName": "x", "authorizationId": "'
        + str(uuid.uuid4()).encode()
        + b'"}',
        "Failed to create PAT: SourceNotSupported",
    ),
    "self-describing token": (
        "_apis/token/sessiontokens?api-version=1.0&tokentype=selfDescribing",
        gcm_body("x", "vso.code"),
        "Failed to create PAT: InvalidTokenType",
    ),
    "no token type": (
        "_apis/token/sessiontokens?api-version=1.0",
        gcm_body("x", "vso.code"),
        "Failed to create PAT: InvalidTokenType",
    ),
    "no api-version": (
        "_apis/token/sessiontokens?tokentype=compact",
        gcm_body("x", "vso.code"),
        "Failed to create PAT: No api-version was supplied",
    ),
    "too large": (
        SESSION_TOKEN_URL,
        b'{"scope": "vso.code", "displayName": "' + b"x" * 70_000 + b'"}',
        "Failed to create PAT: InvalidDisplayName",
    ),
}


@pytest.mark.parametrize("case", sorted(_ERRORS))
def test_bad_requests_fail_with_a_message_gcm_prints(gcm: Gcm, git_world: GitWorld, case: str) -> None:
    query, body, printed = _ERRORS[case]
    access_token = git_world.tokens[ADA.upn]
    before = pat_count(gcm.instance)
    answer = gcm.create_pat("", access_token, body=body, url=f"{gcm.org_url}/{query}")
    assert answer.status_code == 400, answer.text
    assert failure_message(answer).startswith(printed), answer.text
    if "api-version" not in case:  # Azure DevOps' own VssVersionNotSpecifiedException text quotes, as it does
        assert answer.json()["typeKey"] == "SessionTokenCreateException"
        # GCM prints the message up to its first double quote: the whole explanation must get through.
        assert failure_message(answer) == f"Failed to create PAT: {answer.json()['message']}"
        assert answer.json()["message"].endswith("."), answer.text
    assert pat_count(gcm.instance) == before


def test_dotnet_min_value_valid_to_means_the_default_lifetime(gcm: Gcm, git_world: GitWorld) -> None:
    body = b'{"scope": "vso.code", "displayName": "min value", "validTo": "0001-01-01T00:00:00"}'
    answer = gcm.create_pat(f"{gcm.org_url}/", git_world.tokens[ADA.upn], body=body)
    assert answer.status_code == 200, answer.text
    with gcm.instance.runtime.db.read() as session:
        row = session.get(PersonalAccessTokenRow, answer.json()["authorizationId"])
        assert row is not None
        assert (row.valid_to - row.valid_from).days == 30


# --- the PAT policies apply (devops-wire-contract 4) ------------------------------------------------------

STRICT_ORG = "gcm-strict"
GROUPED = ("gcmgroup@contoso.test", "Gcm-Group-Member-0042")  # in GROUP, which the tests allowlist
GROUP = "GCM PAT Makers"
STRICT_CONFIG = f"""\
tenants:
  - id: {CONTOSO_TENANT}
    domains: [contoso.test]
    users:
      - upn: {GROUPED[0]}
        password: "{GROUPED[1]}"
        mfa_required: false
    groups:
      - name: {GROUP}
        members: [{{user: {GROUPED[0]}}}]
organizations:
  - name: {STRICT_ORG}
    tenant: contoso.test
    members:
      - user: {ADA.upn}
        access: basic
      - user: {GROUPED[0]}
        access: basic
"""
PACKAGING_ONLY_START = (
    "Failed to create PAT: DisablePatCreationPolicyViolation: This organization's policy only"
)


@pytest.fixture
def strict_org(entryway: Instance) -> Iterator[Organization]:
    """An organization of its own whose "Restrict personal access token (PAT) creation" policy is on."""
    apply_config(entryway.runtime, yaml.safe_load(STRICT_CONFIG), source="test_pat_sessiontokens")
    with entryway.runtime.db.unit_of_work() as session:
        org = OrgService(session, entryway.clock).get(STRICT_ORG)
        PatPolicyService(session, entryway.clock).set_org_policy(
            org, None, restrict_creation=True, packaging_only=False
        )
    yield org
    with entryway.runtime.db.unit_of_work() as session:
        policies = PatPolicyService(session, entryway.clock)
        policies.set_org_policy(org, None, restrict_creation=False, packaging_only=False)
        for entry in policies.org_policy(org.id).allowlist:
            policies.disallow(
                ORGANIZATION, org.id, PolicyName.RESTRICT_CREATION, entry.principal_object_id, None
            )


def _strict_create(gcm: Gcm, access_token: str, scopes: str = GCM_SCOPES) -> httpx.Response:
    org_url = f"{gcm.instance.devops}/{STRICT_ORG}"
    located = gcm.location(access_token, org_url)
    assert located.status_code == 200, located.text
    identity_service = gcm_field(located.text, "location")
    assert identity_service == f"{org_url}/"
    return gcm.create_pat(identity_service, access_token, body=gcm_body(org_url, scopes))


def test_an_organization_that_restricts_creation_refuses_gcm_with_the_violation_named(
    gcm: Gcm, git_world: GitWorld, strict_org: Organization
) -> None:
    before = pat_count(gcm.instance)
    refused = _strict_create(gcm, git_world.tokens[ADA.upn])
    assert refused.status_code == 400, refused.text
    assert refused.json()["typeKey"] == "SessionTokenCreateException"
    printed = failure_message(refused)
    assert printed.startswith(
        "Failed to create PAT: DisablePatCreationPolicyViolation: This organization's policy"
    )
    assert "allowlist" in printed
    assert pat_count(gcm.instance) == before


def test_packaging_only_lets_packaging_scopes_through_and_not_gcms(
    gcm: Gcm, git_world: GitWorld, strict_org: Organization
) -> None:
    with gcm.instance.runtime.db.unit_of_work() as session:
        PatPolicyService(session, gcm.instance.clock).set_org_policy(strict_org, None, packaging_only=True)
    access_token = git_world.tokens[ADA.upn]
    refused = _strict_create(gcm, access_token)  # vso.code_write is not a packaging scope
    assert failure_message(refused).startswith(PACKAGING_ONLY_START)
    allowed = _strict_create(gcm, access_token, "vso.packaging_write")
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["targetAccounts"] == [strict_org.id]


def test_an_allowlisted_user_gets_the_pat(gcm: Gcm, git_world: GitWorld, strict_org: Organization) -> None:
    access_token = git_world.tokens[ADA.upn]
    ada_oid = _oid_of(access_token)
    with gcm.instance.runtime.db.unit_of_work() as session:
        PatPolicyService(session, gcm.instance.clock).allow(
            ORGANIZATION,
            strict_org.id,
            PolicyName.RESTRICT_CREATION,
            AllowlistEntry(ada_oid, "user", ADA.display_name),
            None,
        )
    created = _strict_create(gcm, access_token)
    assert created.status_code == 200, created.text
    with gcm.instance.runtime.db.read() as session:
        row = session.get(PersonalAccessTokenRow, created.json()["authorizationId"])
        assert row is not None
        assert (row.source, row.organization_id) == ("sessiontoken", strict_org.id)


def _claims_of(access_token: str) -> dict[str, Any]:
    payload = access_token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def _oid_of(access_token: str) -> str:
    return str(_claims_of(access_token)["oid"])


@pytest.fixture
def strict_tenant(entryway: Instance) -> Iterator[None]:
    """Contoso's tenant policies restricting full-scoped PATs and limiting the lifespan to 7 days, for one test;
    then back to the defaults (no other test of the session runs meanwhile)."""
    with entryway.runtime.db.unit_of_work() as session:
        PatPolicyService(session, entryway.clock).set_tenant_policy(
            CONTOSO_TENANT, None, restrict_full_scope=True, max_lifespan_days=7
        )
    yield
    with entryway.runtime.db.unit_of_work() as session:
        PatPolicyService(session, entryway.clock).set_tenant_policy(
            CONTOSO_TENANT, None, restrict_full_scope=False, max_lifespan_days=None
        )


def test_the_tenant_policies_apply_to_gcm(gcm: Gcm, git_world: GitWorld, strict_tenant: None) -> None:
    access_token = git_world.tokens[ADA.upn]
    before = pat_count(gcm.instance)
    full = gcm.create_pat(f"{gcm.org_url}/", access_token, body=gcm_body(gcm.org_url, "app_token"))
    assert failure_message(full).startswith("Failed to create PAT: FullScopePatPolicyViolation: ")
    assert pat_count(gcm.instance) == before

    clamped = gcm.create_pat(f"{gcm.org_url}/", access_token)  # GCM asks for no validTo: 30 days by default
    assert clamped.status_code == 200, clamped.text
    with gcm.instance.runtime.db.read() as session:
        row = session.get(PersonalAccessTokenRow, clamped.json()["authorizationId"])
        assert row is not None
        assert row.valid_to - row.valid_from <= timedelta(days=7)


def test_a_member_of_an_allowlisted_group_gets_the_pat(
    gcm: Gcm, git_world: GitWorld, strict_org: Organization
) -> None:
    """The allowlist names a group; the caller's Entra token carries it in `groups`; the PAT keeps the snapshot."""
    token = form_post(
        gcm.instance,
        f"/{CONTOSO_TENANT}/oauth2/v2.0/token",
        {
            "grant_type": "password",
            "client_id": AZURE_CLI_ID,
            "username": GROUPED[0],
            "password": GROUPED[1],
            "scope": DEVOPS_SCOPE,
        },
    ).json()["access_token"]
    refused = _strict_create(gcm, token)
    assert failure_message(refused).startswith("Failed to create PAT: DisablePatCreationPolicyViolation: ")
    with gcm.instance.runtime.db.read() as session:
        tenant = DirectoryService(session, gcm.instance.clock, gcm.instance.runtime.digester).find_tenant(
            CONTOSO_TENANT
        )
        group_id = GroupService(session, gcm.instance.clock).find_group(tenant, GROUP).object_id
    assert group_id in _claims_of(token)["groups"]
    with gcm.instance.runtime.db.unit_of_work() as session:
        PatPolicyService(session, gcm.instance.clock).allow(
            ORGANIZATION,
            strict_org.id,
            PolicyName.RESTRICT_CREATION,
            AllowlistEntry(group_id, "group", GROUP),
            None,
        )
    created = _strict_create(gcm, token)
    assert created.status_code == 200, created.text
    with gcm.instance.runtime.db.read() as session:
        row = session.get(PersonalAccessTokenRow, created.json()["authorizationId"])
        assert row is not None
        assert group_id in row.owner_groups
