"""What `entryway serve` prints: what a user needs next."""

from __future__ import annotations

import shlex

from entryway.config.seed import DemoSeed
from entryway.config.settings import Settings
from entryway.identity.directory.first_party import AZURE_CLI, AZURE_DEVOPS


def exports(
    settings: Settings, tenant_id: str, client_id: str, secret: str | None, org: str | None
) -> list[str]:
    lines = [
        f"export REQUESTS_CA_BUNDLE={shlex.quote(str(settings.ca_bundle))}",
        f"export SSL_CERT_FILE={shlex.quote(str(settings.ca_bundle))}",
        f"export AZURE_AUTHORITY_HOST={settings.identity_origin}",
        f"export AZURE_TENANT_ID={tenant_id}",
        f"export AZURE_CLIENT_ID={client_id}",
    ]
    if secret is not None:
        lines.append(f"export AZURE_CLIENT_SECRET={shlex.quote(secret)}")
    if org is not None:
        lines.append(f"export ENTRYWAY_DEVOPS_URL={settings.devops_origin}/{org}")
    return lines


def managed_identity_exports(settings: Settings) -> list[str]:
    """For code on this host using a managed identity: IMDS, or App Service (msal prefers App Service when both
    are set). Meant for a shell without AZURE_CLIENT_ID: DefaultAzureCredential would ask for that client id."""
    if settings.imds_origin is None or settings.identity_endpoint is None:
        return []
    header = shlex.quote(settings.identity_header or "")
    return [
        "# IMDS, as on a virtual machine:",
        f"export AZURE_POD_IDENTITY_AUTHORITY_HOST={settings.imds_origin}",
        "# or App Service, as in a web app or function:",
        f"export IDENTITY_ENDPOINT={settings.identity_endpoint}",
        f"export IDENTITY_HEADER={header}",
    ]


PYTHON_EXAMPLE = """\
import os, requests
from azure.identity import ClientSecretCredential

credential = ClientSecretCredential(
    os.environ["AZURE_TENANT_ID"], os.environ["AZURE_CLIENT_ID"], os.environ["AZURE_CLIENT_SECRET"],
    authority=os.environ["AZURE_AUTHORITY_HOST"], disable_instance_discovery=True)
token = credential.get_token("{resource}/.default").token
print(requests.get(os.environ["ENTRYWAY_DEVOPS_URL"] + "/_apis/connectionData",
                   headers={{"Authorization": "Bearer " + token}}).json()["authenticatedUser"])
"""


DEVICE_FLOW_EXAMPLE = """\
import msal
app = msal.PublicClientApplication(
    "{client_id}", authority="{authority}", instance_discovery=False)
flow = app.initiate_device_flow(scopes=["{resource}/.default"])
print(flow["message"])  # open {device_page} and enter the code
print(app.acquire_token_by_device_flow(flow)["id_token_claims"]["preferred_username"])
"""


def device_flow_example(settings: Settings, tenant: str) -> list[str]:
    return DEVICE_FLOW_EXAMPLE.format(
        client_id=AZURE_CLI.app_id,
        authority=f"{settings.identity_origin}/{tenant}",
        resource=AZURE_DEVOPS.app_id,
        device_page=f"{settings.identity_origin}/devicelogin",
    ).splitlines()


def render(settings: Settings, seed: DemoSeed | None, *, first_start: bool) -> str:
    out = [
        "Entryway is running.",
        f"  identity platform  {settings.identity_origin}",
        f"  DevOps service     {settings.devops_origin}",
        f"  CA bundle          {settings.ca_bundle}",
        f"  data directory     {settings.data_dir}",
        "",
    ]
    if settings.imds_origin is not None:
        out += [
            "Managed identity endpoints (loopback, plain HTTP) for code on this host, in a shell without",
            "AZURE_CLIENT_ID; they issue tokens for the managed identities this host carries:",
            *("  " + line for line in managed_identity_exports(settings)),
            "",
        ]
    if seed is not None:
        out += [
            "Demo tenant, app and organization (created on this first start):",
            f"  tenant id      {seed.tenant_id}  ({seed.tenant_domain})",
            f"  client id      {seed.client_id}",
            f"  client secret  {seed.client_secret}",
            "  The secret is shown this once; only a digest of it is stored.",
            f"  organization   {settings.devops_origin}/{seed.organization}",
            "",
            "Install the clients first: the exports below make Python trust only this CA.",
            "  pip install azure-identity requests",
            "",
            "Paste into your shell:",
            *(
                "  " + line
                for line in exports(
                    settings, seed.tenant_id, seed.client_id, seed.client_secret, seed.organization
                )
            ),
            "",
            "Then, in Python:",
            *("  " + line for line in PYTHON_EXAMPLE.format(resource=AZURE_DEVOPS.app_id).splitlines()),
            "",
        ]
        if seed.user_upn:
            password = seed.user_password or "(the value of ENTRYWAY_DEMO_PASSWORD)"
            out += [
                "Demo user (a Basic member of the organization):",
                f"  user           {seed.user_upn}",
                f"  password       {password}",
                "  The password is shown this once; only an argon2id hash of it is stored."
                if seed.user_password
                else "  The password came from ENTRYWAY_DEMO_PASSWORD.",
                f"  device login   {settings.identity_origin}/devicelogin",
                f"  PAT page       {settings.devops_origin}/{seed.organization}/_usersSettings/tokens",
                "",
                "Sign in as the demo user with the device flow, as the Azure CLI does (msal is in azure-identity):",
                *("  " + line for line in device_flow_example(settings, seed.tenant_domain)),
                "",
            ]
    elif not first_start:
        out += [
            "`entryway env` prints the environment exports for this instance;",
            "`entryway app secret add --tenant T --app A` makes a new client secret.",
            "",
        ]
    out.append("Press Ctrl+C to stop.")
    return "\n".join(out)
