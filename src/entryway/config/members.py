"""Making a directory identity an organization member: where administration spans both services.

The DevOps service knows members only by object id; the CLI and the config file name them by app, UPN or
managed identity, so the lookup lives here, on the administrative side, not in either service. A managed
identity is a service principal, as Azure DevOps shows it."""

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
    managed_identity: str | None = None,
    access: AccessLevel,
    organization_admin: bool | None = None,
) -> tuple[Member, bool]:
    """Add (or change the access level of) an app's service principal, a user or a managed identity of the
    org's tenant; `organization_admin` None leaves that flag as it is. Returns the member and whether anything
    changed."""
    object_id, kind, display_name, principal_name = _identity(
        directory, org, app_ref=app_ref, upn=upn, managed_identity=managed_identity
    )
    existing = orgs.find_member(org, object_id)
    if (
        existing is not None
        and existing.access_level is access
        and organization_admin in {None, existing.organization_admin}
    ):
        return existing, False
    member = orgs.add_member(
        org,
        object_id=object_id,
        kind=kind,
        display_name=display_name,
        principal_name=principal_name,
        access_level=access,
        organization_admin=organization_admin,
    )
    return member, True


def find_member(
    directory: DirectoryService,
    orgs: OrgService,
    org: Organization,
    *,
    app_ref: str | None = None,
    upn: str | None = None,
    managed_identity: str | None = None,
) -> Member:
    """The organization member an app, a user or a managed identity is; an error when it is not one."""
    object_id, _kind, _display, principal_name = _identity(
        directory, org, app_ref=app_ref, upn=upn, managed_identity=managed_identity
    )
    member = orgs.find_member(org, object_id)
    if member is None:
        raise DirectoryError(f"{principal_name} is not a member of organization {org.name}")
    return member


def _identity(
    directory: DirectoryService,
    org: Organization,
    *,
    app_ref: str | None,
    upn: str | None,
    managed_identity: str | None,
) -> tuple[str, MemberKind, str, str]:
    """(object id, kind, display name, principal name) of the one identity named."""
    if sum(ref is not None for ref in (app_ref, upn, managed_identity)) != 1:
        raise DirectoryError("give exactly one of an app, a user or a managed identity")
    tenant = directory.find_tenant(org.tenant_id)
    if managed_identity is not None:
        mi = directory.find_managed_identity(tenant, managed_identity)
        object_id, kind = mi.object_id, MemberKind.SERVICE_PRINCIPAL
        display_name, principal_name = mi.name, mi.app_id
    elif app_ref is not None:
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
    return object_id, kind, display_name, principal_name
