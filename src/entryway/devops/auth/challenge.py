"""The 401 an unauthenticated or refused request gets, with what real clients use for tenant discovery:
`WWW-Authenticate: Bearer authorization_uri=…`, `X-VSS-ResourceTenant` (Git Credential Manager, the
pipelines agent) and the TF400813 WrappedException body (devops-wire-contract 1.4)."""

from __future__ import annotations

import base64

import orjson
from starlette.responses import Response

from entryway.devops.web.errors import wrapped_exception

TF400813 = "TF400813: Resource not available for anonymous access. Client authentication required."
# Azure DevOps' answer when the IP Conditional Access policy validation refuses a credential (devops-wire-contract
# 1.4, 5; GCM-for-Windows#855). The status it comes with is not recorded anywhere we found: 401 here.
VS403463 = "VS403463: The conditional access policy defined by your Microsoft Entra administrator has failed."


def tf400813_not_authorized(user: str) -> str:
    """What Azure DevOps answers a credential that is valid but does not reach the resource, e.g. a PAT without
    the route's scope (azure-devops-cli-extension#807, azure-devops-auth-samples#57: 401 with this message;
    pulumi-azuredevops#68, terraform-provider-azuredevops#724: a scoped PAT answered 401 Unauthorized)."""
    return f"TF400813: The user '{user}' is not authorized to access this resource."


def claims_challenge(identity_origin: str, tenant_id: str, claims: str) -> str:
    """Entra's continuous access evaluation challenge (the CAE documentation's resource-server example):
    `claims` is the JSON a client passes back to the token endpoint, base64-encoded with padding."""
    encoded = base64.b64encode(claims.encode()).decode()
    return (
        f'Bearer authorization_uri="{identity_origin}/{tenant_id}/oauth2/authorize", '
        f'error="insufficient_claims", claims="{encoded}"'
    )


def unauthorized(
    identity_origin: str,
    devops_origin: str,
    tenant_id: str,
    *,
    body: bool = True,
    message: str = TF400813,
    claims: str | None = None,
) -> Response:
    """The 401. With `claims`, the Bearer challenge is continuous access evaluation's insufficient_claims."""
    payload = wrapped_exception(
        message,
        type_name=(
            "Microsoft.TeamFoundation.Framework.Server.UnauthorizedRequestException, "
            "Microsoft.TeamFoundation.Framework.Server"
        ),
        type_key="UnauthorizedRequestException",
        event_id=3000,
    )
    response = Response(
        orjson.dumps(payload) if body else b"",
        status_code=401,
        media_type="application/json; charset=utf-8",
    )
    # Separate header lines, as git passes each to credential helpers as one `wwwauth[]` value.
    bearer = (
        claims_challenge(identity_origin, tenant_id, claims)
        if claims is not None
        else f"Bearer authorization_uri={identity_origin}/{tenant_id}"
    )
    response.headers.append("WWW-Authenticate", bearer)
    response.headers.append("WWW-Authenticate", f'Basic realm="{devops_origin}/"')
    response.headers.append("WWW-Authenticate", "TFS-Federated")
    response.headers["X-VSS-ResourceTenant"] = tenant_id
    response.headers["X-VSS-AuthorizationEndpoint"] = f"{identity_origin}/{tenant_id}"
    response.headers["X-TFS-FedAuthRealm"] = f"{devops_origin}/"
    return response
