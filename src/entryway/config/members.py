"""Making a directory identity an organization member: where administration spans both services.

The DevOps service knows members only by object id; the CLI and the config file name them by app or UPN,
so the lookup lives here, on the administrative side, not in either service."""

from __future__ import annotations

from entryway.devops.orgs.service import AccessLevel, Member, MemberKind, Organization, OrgService
from entryway.identity.directory.service import DirectoryError, DirectoryService


def add_member(
    directory: DirectoryService,
    orgs: OrgService,
    org: Organization,
    *,
    app_ref: str | None = None,
    upn: str | None = None,
    access: AccessLevel,
) -> tuple[Member, bool]:
    """Add (or change the access level of) an app's service principal or a user of the org's tenant.
    Returns the member and whether anything changed."""
    if (app_ref is None) == (upn is None):
        raise DirectoryError("give exactly one of an app or a user")
    tenant = directory.find_tenant(org.tenant_id)
    if app_ref is not None:
        application = directory.find_application(tenant, app_ref)
        sp = directory.service_principal_of(tenant, application)
        object_id, kind = sp.object_id, MemberKind.SERVICE_PRINCIPAL
        display_name, principal_name = application.display_name, application.app_id
    else:
        assert upn is not None
        user = directory.find_user(upn)
        if user is None or user.tenant_id != tenant.id:
            raise DirectoryError(f"'{upn}' is not a user of tenant {tenant.id}")
        object_id, kind = user.object_id, MemberKind.USER
        display_name, principal_name = user.display_name, user.user_principal_name
    existing = orgs.find_member(org, object_id)
    if existing is not None and existing.access_level is access:
        return existing, False
    member = orgs.add_member(
        org,
        object_id=object_id,
        kind=kind,
        display_name=display_name,
        principal_name=principal_name,
        access_level=access,
    )
    return member, True
