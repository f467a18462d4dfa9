"""What the pipeline OIDC issuer publishes and signs, without web or database.

Azure DevOps' legacy issuer is `https://vstoken.dev.azure.com/{organizationId}`, its keys at
`https://vstoken.dev.azure.com/.well-known/jwks` (devops-wire-contract 6). Here the issuer lives on the DevOps
origin under `/_oidc/`: `{devops}/_oidc/{organizationId}`, keys at `{devops}/_oidc/.well-known/jwks`. The
identity platform fetches them like any external issuer's (OpenID Connect Discovery 1.0, over HTTPS).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from entryway.keys.signer import KeyringSigner
from entryway.kit.clock import Clock
from entryway.kit.ids import new_guid

# The audience Entra's token exchange expects of every federated assertion.
AUDIENCE = "api://AzureADTokenExchange"
# Azure DevOps' tokens: valid from ten minutes before they are issued (clock skew) for about five minutes.
NOT_BEFORE_SKEW = timedelta(minutes=10)
TOKEN_LIFETIME = timedelta(minutes=5)
ISSUER_PATH = "/_oidc"
JWKS_PATH = f"{ISSUER_PATH}/.well-known/jwks"


def issuer_url(devops_origin: str, organization_id: str) -> str:
    return f"{devops_origin.rstrip('/')}{ISSUER_PATH}/{organization_id}"


def jwks_url(devops_origin: str) -> str:
    return f"{devops_origin.rstrip('/')}{JWKS_PATH}"


def connection_subject(organization: str, project: str, connection: str) -> str:
    """`sc://{org}/{project}/{serviceConnectionName}`, as Azure DevOps writes it: names, not ids, so renaming
    any of the three changes the subject (and breaks the federated credential that names the old one)."""
    return f"sc://{organization}/{project}/{connection}"


def discovery_document(devops_origin: str, organization_id: str) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0 section 3, for an issuer that only signs tokens (no endpoints of its own)."""
    return {
        "issuer": issuer_url(devops_origin, organization_id),
        "jwks_uri": jwks_url(devops_origin),
        "subject_types_supported": ["public"],
        "response_types_supported": ["id_token"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid"],
        "claims_supported": [
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "iss",
            "jti",
            "org_id",
            "prj_id",
            "def_id",
            "rpo_id",
            "rpo_uri",
            "rpo_ver",
            "rpo_ref",
            "run_id",
        ],
    }


@dataclass(frozen=True)
class JobContext:
    """What Azure DevOps says about the job in its token, where known (`None`: left out)."""

    organization_id: str
    project_id: str
    pipeline_id: int | None = None
    repository_id: str | None = None
    repository_uri: str | None = None
    repository_version: str | None = None
    repository_ref: str | None = None
    run_id: int | None = None

    def claims(self) -> dict[str, str]:
        values: Mapping[str, object | None] = {
            "org_id": self.organization_id,
            "prj_id": self.project_id,
            "def_id": self.pipeline_id,
            "rpo_id": self.repository_id,
            "rpo_uri": self.repository_uri,
            "rpo_ver": self.repository_version,
            "rpo_ref": self.repository_ref,
            "run_id": self.run_id,
        }
        # Azure DevOps writes every one of them as a string, the numeric ids too.
        return {name: str(value) for name, value in values.items() if value not in (None, "")}


class OidcTokenIssuer:
    """Signs the pipeline OIDC tokens with the `devops-oidc` keys (RS256, kid = RFC 7638 thumbprint)."""

    def __init__(self, devops_origin: str, signer: KeyringSigner, clock: Clock) -> None:
        self._origin = devops_origin
        self._signer = signer
        self._clock = clock

    def mint(self, subject: str, job: JobContext) -> str:
        now = int(self._clock.timestamp())
        claims: dict[str, Any] = {
            "jti": new_guid(),
            "sub": subject,
            "aud": AUDIENCE,
            **job.claims(),
            "iss": issuer_url(self._origin, job.organization_id),
            "nbf": now - int(NOT_BEFORE_SKEW.total_seconds()),
            "exp": now + int(TOKEN_LIFETIME.total_seconds()),
            "iat": now,
        }
        return self._signer.sign(claims)
