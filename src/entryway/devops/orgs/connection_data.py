"""`GET /{org}/_apis/connectionData` (location id 00d9565f-ed9c-4a06-9a50-00e7896ccab4), shaped as the
azure-devops SDK's `ConnectionData` model reads it."""

from __future__ import annotations

import base64
from typing import Any

from entryway.devops.orgs.service import Member, MemberKind, Organization

# The service owner of an organization host (TFS instance type).
TFS_SERVICE_OWNER = "00025394-6065-48ca-87d9-7f5672854ef7"


def descriptor_of(member: Member, tenant_id: str) -> str:
    if member.kind is MemberKind.SERVICE_PRINCIPAL:
        return f"Microsoft.VisualStudio.Services.Claims.AadServicePrincipal;{tenant_id}\\{member.object_id}"
    return f"Microsoft.IdentityModel.Claims.ClaimsIdentity;{tenant_id}\\{member.principal_name}"


def subject_descriptor_of(member: Member) -> str:
    prefix = "aadsp" if member.kind is MemberKind.SERVICE_PRINCIPAL else "aad"
    return f"{prefix}.{base64.b64encode(member.id.encode()).decode().rstrip('=')}"


def identity_of(member: Member, tenant_id: str) -> dict[str, Any]:
    return {
        "id": member.id,
        "descriptor": descriptor_of(member, tenant_id),
        "subjectDescriptor": subject_descriptor_of(member),
        "providerDisplayName": member.display_name,
        "customDisplayName": None,
        "isActive": True,
        "isContainer": False,
        "members": [],
        "memberOf": [],
        "memberIds": [],
        "masterId": member.id,
        "metaTypeId": 0 if member.kind is MemberKind.USER else 2,
        "uniqueUserId": 0,
        "resourceVersion": 2,
        "properties": {
            "Account": {"$type": "System.String", "$value": member.principal_name},
            "Domain": {"$type": "System.String", "$value": tenant_id},
        },
    }


def connection_data(
    org: Organization, member: Member, *, devops_origin: str, deployment_id: str
) -> dict[str, Any]:
    identity = identity_of(member, org.tenant_id)
    return {
        "authenticatedUser": identity,
        "authorizedUser": identity,
        "instanceId": org.id,
        "deploymentId": deployment_id,
        "deploymentType": "hosted",
        "lastUserAccess": None,
        "locationServiceData": {
            "serviceOwner": TFS_SERVICE_OWNER,
            "defaultAccessMappingMoniker": "PublicAccessMapping",
            "lastChangeId": 1,
            "lastChangeId64": 1,
            "clientCacheFresh": False,
            "clientCacheTimeToLive": 3600,
            "accessMappings": [
                {
                    "moniker": "PublicAccessMapping",
                    "displayName": "Public Access Mapping",
                    "accessPoint": f"{devops_origin}/",
                    "serviceOwner": TFS_SERVICE_OWNER,
                    "virtualDirectory": org.name,
                }
            ],
            "serviceDefinitions": [],
        },
        "webApplicationRelativeDirectory": f"/{org.name}/",
    }
