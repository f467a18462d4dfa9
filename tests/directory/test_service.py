"""Directory administration: first-party public clients in every tenant, MFA settings, session lifetimes,
redirect URIs and admin consent; every bad value refused with a message for the administrator."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from entryway.identity.directory.first_party import AZURE_CLI, AZURE_DEVOPS, FIRST_PARTY_APPS, VISUAL_STUDIO
from entryway.identity.directory.service import DirectoryError, DirectoryService, check_redirect_uris
from entryway.runtime import Runtime
from entryway.store.models import (
    ApplicationRow,
    PermissionGrantRow,
    ServicePrincipalRow,
    TenantDomainRow,
    TenantRow,
)

NATIVE = ["http://localhost", "https://login.microsoftonline.com/common/oauth2/nativeclient"]


def preconsents(session: Session, tenant_id: str) -> dict[str, dict[str, list[str]]]:
    """client app id -> resource app id -> consented scopes."""
    rows = session.scalars(
        select(PermissionGrantRow).where(
            PermissionGrantRow.tenant_id == tenant_id, PermissionGrantRow.principal_id.is_(None)
        )
    )
    found: dict[str, dict[str, list[str]]] = {}
    for r in rows:
        found.setdefault(r.client_app_id, {})[r.resource_app_id] = list(r.scopes)
    return found


# --- first-party public clients ------------------------------------------------------------------


@pytest.mark.parametrize("client", [AZURE_CLI, VISUAL_STUDIO], ids=["azure-cli", "visual-studio"])
def test_first_party_public_clients_exist_in_a_new_tenant_pre_consented(
    directory: DirectoryService, session: Session, tenant: TenantRow, client: object
) -> None:
    assert client in (AZURE_CLI, VISUAL_STUDIO)
    app_id = AZURE_CLI.app_id if client is AZURE_CLI else VISUAL_STUDIO.app_id
    app = directory.find_enterprise_app(tenant, app_id)
    assert app.tenant_id is None
    assert app.public_client is True
    assert app.redirect_uris == NATIVE
    assert directory.service_principal_of(tenant, app).display_name == app.display_name
    assert preconsents(session, tenant.id)[app_id][AZURE_DEVOPS.app_id] == ["user_impersonation"]


def test_first_party_apps_keep_their_real_ids_and_names(
    directory: DirectoryService, tenant: TenantRow
) -> None:
    assert directory.find_enterprise_app(tenant, "04b07795-8ddb-461a-bbee-02f9e1bf7b46").display_name == (
        "Microsoft Azure CLI"
    )
    assert directory.find_enterprise_app(tenant, "872cd9fa-d31f-45e0-9eab-6e460a02d1f1").display_name == (
        "Visual Studio"
    )
    assert directory.find_enterprise_app(tenant, "Azure DevOps").app_id == AZURE_DEVOPS.app_id
    assert directory.find_enterprise_app(tenant, "https://app.vssps.visualstudio.com").app_id == (
        AZURE_DEVOPS.app_id
    )


def test_ensure_first_party_apps_backfills_older_tenants_and_is_idempotent(
    runtime: Runtime, session: Session, directory: DirectoryService
) -> None:
    # A tenant as an Entryway before the public clients left it: only the Azure DevOps service principal,
    # and first-party rows without the new columns set.
    older = directory.create_tenant(["older.test"])
    session.execute(delete(PermissionGrantRow))
    session.execute(delete(ServicePrincipalRow).where(ServicePrincipalRow.app_id != AZURE_DEVOPS.app_id))
    session.execute(delete(ApplicationRow).where(ApplicationRow.app_id == VISUAL_STUDIO.app_id))
    cli = session.scalars(select(ApplicationRow).where(ApplicationRow.app_id == AZURE_CLI.app_id)).one()
    cli.public_client, cli.redirect_uris = False, []
    # And a tenant row written directly, with no service principal at all.
    session.add(
        TenantRow(
            id="11111111-2222-4333-8444-555555555555", display_name="bare", created_at=datetime.now(UTC)
        )
    )
    session.add(
        TenantDomainRow(name="bare.test", tenant_id="11111111-2222-4333-8444-555555555555", is_initial=True)
    )
    session.flush()

    directory.ensure_first_party_apps()
    for tenant_id in (older.id, "11111111-2222-4333-8444-555555555555"):
        t = directory.find_tenant(tenant_id)
        for first_party in (AZURE_DEVOPS, AZURE_CLI, VISUAL_STUDIO):
            directory.service_principal_of(t, directory.find_enterprise_app(t, first_party.app_id))
        assert set(preconsents(session, tenant_id)) == {AZURE_CLI.app_id, VISUAL_STUDIO.app_id}
    assert directory.find_enterprise_app(older, AZURE_CLI.app_id).redirect_uris == NATIVE
    assert directory.find_enterprise_app(older, AZURE_CLI.app_id).public_client is True

    def counts() -> tuple[int, int, int]:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(table)) or 0
            for table in (ApplicationRow, ServicePrincipalRow, PermissionGrantRow)
        )

    before = counts()
    directory.ensure_first_party_apps()
    directory.create_tenant(["third.test"])
    # A service principal of every first-party app (the DevOps web client too), three pre-consents (the Azure
    # CLI's for Azure DevOps and Microsoft Graph, Visual Studio's for Azure DevOps).
    assert counts() == (before[0], before[1] + len(FIRST_PARTY_APPS), before[2] + 3)


def test_first_party_apps_cannot_be_changed(directory: DirectoryService, tenant: TenantRow) -> None:
    cli = directory.find_enterprise_app(tenant, AZURE_CLI.app_id)
    with pytest.raises(DirectoryError, match="first-party"):
        directory.set_redirect_uris(cli, ["https://evil.example/cb"])
    with pytest.raises(DirectoryError, match="first-party"):
        directory.set_public_client(cli, False)
    with pytest.raises(DirectoryError, match="not found"):
        directory.find_application(tenant, AZURE_CLI.app_id)  # not the tenant's own: no deleting it


# --- tenants -------------------------------------------------------------------------------------


def test_tenant_settings_default_like_entra(tenant: TenantRow) -> None:
    assert tenant.mfa_required_default is False
    assert tenant.refresh_token_inactivity_seconds == 90 * 86400
    assert tenant.sign_in_frequency_seconds is None


def test_tenant_settings_are_set(directory: DirectoryService, tenant: TenantRow) -> None:
    directory.set_mfa_required_default(tenant, True)
    directory.set_refresh_token_inactivity(tenant, 3600)
    directory.set_sign_in_frequency(tenant, 365 * 86400)
    assert (tenant.mfa_required_default, tenant.refresh_token_inactivity_seconds) == (True, 3600)
    assert tenant.sign_in_frequency_seconds == 365 * 86400
    directory.set_sign_in_frequency(tenant, None)
    assert tenant.sign_in_frequency_seconds is None
    created = directory.create_tenant(
        ["b.test"],
        mfa_required_default=True,
        refresh_token_inactivity_seconds=7200,
        sign_in_frequency_seconds=3600,
    )
    assert (created.mfa_required_default, created.refresh_token_inactivity_seconds) == (True, 7200)
    assert created.sign_in_frequency_seconds == 3600


@pytest.mark.parametrize("seconds", [0, 3599, 365 * 86400 + 1, -5])
def test_session_lifetimes_out_of_range_are_refused(
    directory: DirectoryService, tenant: TenantRow, seconds: int
) -> None:
    with pytest.raises(DirectoryError, match="refresh token inactivity must be between 3600"):
        directory.set_refresh_token_inactivity(tenant, seconds)
    with pytest.raises(DirectoryError, match="sign-in frequency must be between 3600"):
        directory.set_sign_in_frequency(tenant, seconds)
    with pytest.raises(DirectoryError, match="refresh token inactivity"):
        directory.create_tenant(["c.test"], refresh_token_inactivity_seconds=seconds)
    with pytest.raises(DirectoryError, match="sign-in frequency"):
        directory.create_tenant(["c.test"], sign_in_frequency_seconds=seconds)
    assert tenant.refresh_token_inactivity_seconds == 90 * 86400


# --- users and MFA -------------------------------------------------------------------------------


def test_user_mfa_follows_the_user_then_the_tenant(directory: DirectoryService, tenant: TenantRow) -> None:
    default = directory.create_user(tenant, "dana@contoso.test", "long-enough-1")
    must = directory.create_user(tenant, "erin@contoso.test", "long-enough-1", mfa_required=True)
    never = directory.create_user(tenant, "finn@contoso.test", "long-enough-1", mfa_required=False)
    assert (default.mfa_required, must.mfa_required, never.mfa_required) == (None, True, False)
    assert [directory.mfa_required_for(tenant, u) for u in (default, must, never)] == [False, True, False]
    directory.set_mfa_required_default(tenant, True)
    assert [directory.mfa_required_for(tenant, u) for u in (default, must, never)] == [True, True, False]
    directory.set_user_mfa(never, None)
    assert directory.mfa_required_for(tenant, never) is True
    directory.set_user_mfa(default, False)
    assert directory.mfa_required_for(tenant, default) is False


def test_reset_user_mfa_forgets_the_authenticator(directory: DirectoryService, tenant: TenantRow) -> None:
    user = directory.create_user(tenant, "gail@contoso.test", "long-enough-1", mfa_required=True)
    user.totp_secret_encrypted = b"sealed"
    user.totp_enrolled_at = directory.now()
    user.totp_last_step = 42
    directory.reset_user_mfa(user)
    assert (user.totp_secret_encrypted, user.totp_enrolled_at, user.totp_last_step) == (None, None, None)
    assert user.mfa_required is True


def test_get_user_names_a_missing_user(directory: DirectoryService) -> None:
    with pytest.raises(DirectoryError, match=re.escape("user 'nobody@contoso.test' not found")):
        directory.get_user("nobody@contoso.test")


# --- redirect URIs and public clients ------------------------------------------------------------

GOOD_REDIRECT_URIS = [
    "https://app.contoso.test/signin-oidc",
    "https://app.contoso.test:8443/cb?x=1",
    "http://localhost",
    "http://localhost:8400/",
    "http://127.0.0.1:5000/callback",
    "http://[::1]:5000",
    "ms-appx-web://microsoft.aad.brokerplugin/3f9c2a71-0d4b-4e8a-b1c6-5e7f8a9b0c1d",
    "msal3f9c2a71-0d4b-4e8a-b1c6-5e7f8a9b0c1d://auth",
    "com.contoso.app://callback",
]

BAD_REDIRECT_URIS = [
    ("http://app.contoso.test/cb", "http is allowed only for localhost"),
    ("https://app.contoso.test/cb#frag", "has a fragment"),
    ("https://*.contoso.test/cb", "wildcard"),
    ("/relative/path", "not an absolute URI"),
    ("app.contoso.test/cb", "not an absolute URI"),
    ("https:///nohost", "has no host"),
    ("https://app.contoso.test:port/", "not a valid URL"),
    ("javascript:alert(1)", "'javascript' scheme"),
    ("data:text/html,hi", "'data' scheme"),
    ("file:///etc/passwd", "'file' scheme"),
    ("https://app.contoso.test/a b", "white space"),
    ("", "1 to 256 characters"),
    ("https://app.contoso.test/" + "a" * 240, "1 to 256 characters"),
]


def test_good_redirect_uris_are_kept_in_order_once(directory: DirectoryService, tenant: TenantRow) -> None:
    app, _sp = directory.create_application(
        tenant, "native", public_client=True, redirect_uris=[*GOOD_REDIRECT_URIS, "http://localhost"]
    )
    assert app.public_client is True
    assert app.redirect_uris == GOOD_REDIRECT_URIS
    directory.set_redirect_uris(app, ["https://other.contoso.test/cb"])
    assert app.redirect_uris == ["https://other.contoso.test/cb"]
    assert directory.add_redirect_uris(app, ["http://localhost", "https://other.contoso.test/cb"]) is True
    assert directory.add_redirect_uris(app, ["http://localhost"]) is False
    assert app.redirect_uris == ["https://other.contoso.test/cb", "http://localhost"]
    directory.set_public_client(app, False)
    assert app.public_client is False


def test_apps_are_confidential_without_redirect_uris_by_default(
    directory: DirectoryService, tenant: TenantRow
) -> None:
    app, _sp = directory.create_application(tenant, "daemon")
    assert (app.public_client, app.redirect_uris) == (False, [])


@pytest.mark.parametrize(
    ("uri", "message"), BAD_REDIRECT_URIS, ids=[b[0][:40] or "empty" for b in BAD_REDIRECT_URIS]
)
def test_bad_redirect_uris_are_refused(
    directory: DirectoryService, tenant: TenantRow, uri: str, message: str
) -> None:
    with pytest.raises(DirectoryError, match=message):
        directory.create_application(tenant, "web", redirect_uris=[uri])
    assert directory.list_applications(tenant) == []
    app, _sp = directory.create_application(tenant, "web", redirect_uris=["https://ok.contoso.test/cb"])
    with pytest.raises(DirectoryError, match=message):
        directory.set_redirect_uris(app, [uri])
    assert app.redirect_uris == ["https://ok.contoso.test/cb"]


def test_at_most_256_redirect_uris() -> None:
    assert len(check_redirect_uris([f"http://localhost/{i}" for i in range(256)])) == 256
    with pytest.raises(DirectoryError, match="at most 256 redirect URIs"):
        check_redirect_uris([f"http://localhost/{i}" for i in range(257)])


# --- admin consent -------------------------------------------------------------------------------


def test_admin_consent_is_recorded_once_and_merged(
    directory: DirectoryService, session: Session, tenant: TenantRow
) -> None:
    api, _ = directory.create_application(tenant, "api")
    api.delegated_scopes = ["Files.Read", "Files.Write"]
    client, _ = directory.create_application(tenant, "client", public_client=True)
    devops = directory.find_enterprise_app(tenant, AZURE_DEVOPS.app_id)
    assert directory.grant_admin_consent(tenant, client, devops, ["user_impersonation"]) is True
    assert directory.grant_admin_consent(tenant, client, devops, ["user_impersonation"]) is False
    assert directory.grant_admin_consent(tenant, client, api, ["Files.Read"]) is True
    assert directory.grant_admin_consent(tenant, client, api, ["Files.Write", "Files.Read"]) is True
    assert dict(directory.list_admin_consents(tenant, client)) == {
        AZURE_DEVOPS.app_id: ["user_impersonation"],
        api.app_id: ["Files.Read", "Files.Write"],
    }
    grants = session.scalars(
        select(PermissionGrantRow).where(PermissionGrantRow.client_app_id == client.app_id)
    )
    assert all(g.principal_id is None and g.tenant_id == tenant.id for g in grants)


def test_admin_consent_refusals(directory: DirectoryService, tenant: TenantRow) -> None:
    client, _ = directory.create_application(tenant, "client")
    devops = directory.find_enterprise_app(tenant, AZURE_DEVOPS.app_id)
    with pytest.raises(DirectoryError, match=re.escape("defines no delegated permission 'vso.code'")):
        directory.grant_admin_consent(tenant, client, devops, ["vso.code"])
    with pytest.raises(DirectoryError, match="at least one scope"):
        directory.grant_admin_consent(tenant, client, devops, [" "])
    other = directory.create_tenant(["fabrikam.test"])
    with pytest.raises(DirectoryError, match="no service principal in tenant"):
        directory.grant_admin_consent(
            other, client, directory.find_enterprise_app(other, AZURE_DEVOPS.app_id), ["user_impersonation"]
        )
    with pytest.raises(DirectoryError, match="not found"):
        directory.find_enterprise_app(other, "client")


# --- scopes an app exposes as an API ("Expose an API") -----------------------------------------------------


def test_an_app_exposes_scopes_and_adds_more_later(directory: DirectoryService, tenant: TenantRow) -> None:
    api, _ = directory.create_application(
        tenant, "tasks-api", identifier_uris=["api://tasks"], scopes=["access_as_user", "Tasks.Read"]
    )
    assert api.delegated_scopes == ["access_as_user", "Tasks.Read"]
    assert directory.add_scopes(api, ["Tasks.Read", "Tasks.Write"])
    assert not directory.add_scopes(api, ["Tasks.Write"])
    assert api.delegated_scopes == ["access_as_user", "Tasks.Read", "Tasks.Write"]


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        (["has space"], "must be 1-120 letters"),
        (["x" * 121], "must be 1-120 letters"),
        ([".hidden"], "must be 1-120 letters"),
        (["openid"], "OpenID Connect scope"),
        (["offline_access"], "OpenID Connect scope"),
        (["read", "read"], "listed twice"),
    ],
)
def test_bad_exposed_scopes_are_refused(
    directory: DirectoryService, tenant: TenantRow, scopes: list[str], message: str
) -> None:
    with pytest.raises(DirectoryError, match=message):
        directory.create_application(tenant, "bad-api", scopes=scopes)
