"""First-party applications that exist in every tenant, as Microsoft's do in Entra: the Azure DevOps resource,
and the public clients developers sign in with (Azure CLI, Visual Studio), pre-consented for Azure DevOps."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PreConsent:
    """An admin consent every tenant has: the client may ask `scopes` of `resource_app_id` for any user."""

    resource_app_id: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class FirstPartyApp:
    app_id: str
    display_name: str
    identifier_uris: tuple[str, ...] = ()
    delegated_scopes: tuple[str, ...] = ()
    public_client: bool = False
    redirect_uris: tuple[str, ...] = ()
    pre_consents: tuple[PreConsent, ...] = field(default=())
    # Paths on this installation's DevOps origin that are the app's redirect URIs: the origin is known only
    # at start, so the installation registers them then (`installation.register_devops_web_client`), and the
    # static registration leaves the app's redirect URIs alone.
    devops_redirect_paths: tuple[str, ...] = ()
    # The version of the access tokens issued for the app as a resource (Entra's accessTokenAcceptedVersion).
    access_token_version: int = 1
    # Application permissions (app roles) the app defines as a resource.
    app_roles: tuple[str, ...] = ()


AZURE_DEVOPS = FirstPartyApp(
    app_id="499b84ac-1321-427f-aa17-267ca6975798",
    display_name="Azure DevOps",
    identifier_uris=("https://app.vssps.visualstudio.com",),
    delegated_scopes=("user_impersonation",),
)

# Microsoft Graph, as far as Entryway serves it (identity/web/graph.py): Conditional Access policies and named
# locations, and the sign-in log. Its permissions are Graph's names, delegated and as app roles.
GRAPH_PERMISSIONS = ("Policy.Read.All", "Policy.ReadWrite.ConditionalAccess", "AuditLog.Read.All")
MICROSOFT_GRAPH = FirstPartyApp(
    app_id="00000003-0000-0000-c000-000000000000",
    display_name="Microsoft Graph",
    identifier_uris=("https://graph.microsoft.com",),
    delegated_scopes=GRAPH_PERMISSIONS,
    app_roles=GRAPH_PERMISSIONS,
)

# Microsoft's native-client redirect URIs: `http://localhost` stands for any loopback port (RFC 8252 section
# 7.3, matched by the authorize endpoint), the nativeclient page for clients without a loopback listener.
NATIVE_REDIRECT_URIS = ("http://localhost", "https://login.microsoftonline.com/common/oauth2/nativeclient")
_DEVOPS_CONSENT = PreConsent(AZURE_DEVOPS.app_id, ("user_impersonation",))

AZURE_CLI = FirstPartyApp(
    app_id="04b07795-8ddb-461a-bbee-02f9e1bf7b46",  # also azure-identity's default client id
    display_name="Microsoft Azure CLI",
    public_client=True,
    redirect_uris=NATIVE_REDIRECT_URIS,
    # Entra pre-authorizes the Azure CLI for Microsoft Graph; the token still carries a permission only for a
    # user whose directory role allows it (identity/web/graph.py checks both, as Graph does).
    pre_consents=(_DEVOPS_CONSENT, PreConsent(MICROSOFT_GRAPH.app_id, GRAPH_PERMISSIONS)),
)

VISUAL_STUDIO = FirstPartyApp(
    app_id="872cd9fa-d31f-45e0-9eab-6e460a02d1f1",  # also Git Credential Manager's
    display_name="Visual Studio",
    public_client=True,
    redirect_uris=NATIVE_REDIRECT_URIS,
    pre_consents=(_DEVOPS_CONSENT,),
)

# The DevOps origin's own web pages (devops/portal) sign people in as this confidential client: authorization
# code + PKCE, with a client secret derived from the master key that only its digest registers. It asks only
# OpenID Connect scopes, so no consent is due.
DEVOPS_WEB = FirstPartyApp(
    app_id="3b5e9a41-7c2d-4f8e-9a16-d0c4b27e5f83",
    display_name="Azure DevOps (web)",
    devops_redirect_paths=("/_signedin", "/_signedout"),
)

# Entra's token-exchange app: the audience of a token meant to be exchanged as a federated client assertion.
# A federated credential names it by its identifier URI; the v2 tokens issued for it carry its app id.
# (The Entra-issued form of a pipeline service connection's token: docs/pipelines-wif.md.)
AZURE_AD_TOKEN_EXCHANGE = FirstPartyApp(
    app_id="fb60f99c-7a34-4190-8149-302f77469936",
    display_name="AAD Token Exchange Endpoint",
    identifier_uris=("api://AzureADTokenExchange",),
    access_token_version=2,
)

# Resources first: a pre-consent names a resource that must already exist.
FIRST_PARTY_APPS = (
    AZURE_DEVOPS,
    AZURE_AD_TOKEN_EXCHANGE,
    MICROSOFT_GRAPH,
    AZURE_CLI,
    VISUAL_STUDIO,
    DEVOPS_WEB,
)
