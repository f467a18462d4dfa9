"""First-party applications that exist in every tenant, as Microsoft's do in Entra."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FirstPartyApp:
    app_id: str
    display_name: str
    identifier_uris: tuple[str, ...]
    delegated_scopes: tuple[str, ...]


AZURE_DEVOPS = FirstPartyApp(
    app_id="499b84ac-1321-427f-aa17-267ca6975798",
    display_name="Azure DevOps",
    identifier_uris=("https://app.vssps.visualstudio.com",),
    delegated_scopes=("user_impersonation",),
)

FIRST_PARTY_APPS = (AZURE_DEVOPS,)
