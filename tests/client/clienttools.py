"""This directory's own tenant, clienttools.test, on the shared server (the contract's rule: no Conditional
Access policies on the shared tenants): an app, a person, and an organization both belong to."""

from __future__ import annotations

import yaml

from entryway.config.declarative import apply_config
from tests.conftest import Instance, SignInUser

CASEY = SignInUser("casey@clienttools.test", "Casey-Uses-Tools-0042", "Casey Client", mfa=False)
# Only the Conditional Access message tests sign them in: a block policy for Dale, an MFA one for Eve (who has no
# authenticator), a workload identity block for the blocked bot — each added after the sign-in.
DALE = SignInUser("dale@clienttools.test", "Dale-Gets-Blocked-0042", "Dale Blocked", mfa=False)
EVE = SignInUser("eve@clienttools.test", "Eve-Needs-Mfa-0042", "Eve Mfa", mfa=False)
FAY = SignInUser(
    "fay@clienttools.test", "Fay-Signs-In-Hourly-0042", "Fay Hourly", mfa=False
)  # sign-in frequency
# Only the continuous access evaluation test signs him in (his sessions are revoked).
GUS = SignInUser("gus@clienttools.test", "Gus-Gets-Revoked-0042", "Gus Revoked", mfa=False)
CT_BLOCKED_BOT_ID = "c1e70015-b10c-4a1b-9e2f-3a4b5c6d7e85"
CT_BLOCKED_BOT_SECRET = "clienttools-blocked-bot-secret-0123456789"
CT_TENANT = "c1e70015-8d0c-4a1b-9e2f-3a4b5c6d7e81"
CT_BOT_ID = "c1e70015-0b07-4a1b-9e2f-3a4b5c6d7e82"
CT_BOT_SECRET = "clienttools-bot-secret-0123456789abcdefgh"
CT_ORG = "clienttools"
CT_API_ID = "c1e70015-a510-4a1b-9e2f-3a4b5c6d7e83"  # an API of the tenant's own, exposing Tools.Read
CT_API_URI = "api://clienttools-api"
CT_CLI_ID = "c1e70015-c110-4a1b-9e2f-3a4b5c6d7e84"  # a public client consented for Azure DevOps only
CT_CONFIG = f"""\
tenants:
  - id: {CT_TENANT}
    domains: [clienttools.test]
    apps:
      - name: clienttools-bot
        client_id: {CT_BOT_ID}
        secrets:
          - value: "{CT_BOT_SECRET}"
      - name: clienttools-api
        client_id: {CT_API_ID}
        identifier_uris: ["{CT_API_URI}"]
        scopes: [Tools.Read]
      - name: clienttools-cli
        client_id: {CT_CLI_ID}
        public_client: true
        redirect_uris: ["http://localhost"]
        admin_consent:
          - resource: 499b84ac-1321-427f-aa17-267ca6975798
            scopes: [user_impersonation]
      - name: clienttools-blocked-bot
        client_id: {CT_BLOCKED_BOT_ID}
        secrets:
          - value: "{CT_BLOCKED_BOT_SECRET}"
    users:
      - upn: {DALE.upn}
        password: "{DALE.password}"
        display_name: {DALE.display_name}
        mfa_required: false
      - upn: {EVE.upn}
        password: "{EVE.password}"
        display_name: {EVE.display_name}
        mfa_required: false
      - upn: {FAY.upn}
        password: "{FAY.password}"
        display_name: {FAY.display_name}
        mfa_required: false
      - upn: {GUS.upn}
        password: "{GUS.password}"
        display_name: {GUS.display_name}
        mfa_required: false
      - upn: casey@clienttools.test
        password: "{CASEY.password}"
        display_name: Casey Client
        mfa_required: false
organizations:
  - name: {CT_ORG}
    tenant: clienttools.test
    members:
      - app: clienttools-bot
        access: basic
      - user: casey@clienttools.test
        access: basic
      - user: {DALE.upn}
        access: basic
      - user: {EVE.upn}
        access: basic
      - user: {FAY.upn}
        access: basic
      - user: {GUS.upn}
        access: basic
      - app: clienttools-blocked-bot
        access: basic
"""


def with_clienttools(instance: Instance) -> Instance:
    """Apply the tenant (declarative: applying it again changes nothing)."""
    apply_config(instance.runtime, yaml.safe_load(CT_CONFIG), source="clienttools")
    return instance
