"""The administrators' pages: the organization's PAT policy (Project Collection Administrators), the tenant's
PAT policies (Azure DevOps Administrator or Global Administrator, from the sign-in's `wids`), each with its
allowlist, and the report of the PATs usable in the organization (either administrator).

Changes go through PatPolicyService (audited, actor = the signed-in administrator); a refused change writes
nothing and shows the service's message. Allowlist users are named by UPN and must be known to the DevOps
service (a member of an organization of the tenant); groups are named by object id, whose shape only is
checked: the DevOps service does not read the identity platform's directory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from entryway.devops.orgs.policy import set_ip_conditional_access_validation
from entryway.devops.orgs.repository import OrgRepository
from entryway.devops.pats.policy import (
    GROUP,
    MAX_LIFESPAN_DAYS,
    ORGANIZATION,
    TENANT,
    TENANT_POLICIES,
    USER,
    AllowlistEntry,
    PatPolicyError,
    PatPolicyService,
    PolicyErrorKind,
    PolicyName,
)
from entryway.devops.pats.report import build_report, find_unrevoked_pats
from entryway.devops.portal.pages import PortalPages, Visit
from entryway.devops.portal.repository import PortalRepository

log = logging.getLogger("entryway.devops.portal")

ORG_POLICY_PATH = "/{org}/_settings/organizationPolicy"
TENANT_POLICY_PATH = "/{org}/_settings/organizationAad"
REPORT_PATH = "/{org}/_settings/pats"

_TENANT_POLICY_TITLES = {
    PolicyName.RESTRICT_GLOBAL: "Restrict global personal access token creation",
    PolicyName.RESTRICT_FULL_SCOPE: "Restrict full-scoped personal access token creation",
    PolicyName.MAX_LIFESPAN: "Enforce maximum personal access token lifespan",
}


def _on(form: Mapping[str, str], name: str) -> bool:
    return form.get(name) == "on"


class AdminPages:
    def __init__(self, pages: PortalPages) -> None:
        self.pages = pages
        self.ctx = pages.ctx

    # --- access -------------------------------------------------------------------------------------

    def _refused(self, visit: Visit, who: str) -> Response:
        log.info("admin page refused to %s in %s: not %s", visit.web.object_id, visit.org.name, who)
        return self.pages.message(
            "You don't have access",
            f"Only {who} may see this page. Ask one to change the policy for you.",
            status=403,
            visit=visit,
        )

    async def _change(
        self,
        request: Request,
        visit: Visit,
        path: str,
        change: Callable[[Session, Mapping[str, str]], None],
        again: Callable[[Session, str, Mapping[str, str]], Response],
    ) -> Response:
        form = await self.pages.checked_form(request, visit)
        if form is None:
            return self.pages.csrf_refused(visit)
        try:
            await self.pages.router.write(lambda s: change(s, form))
        except PatPolicyError as error:
            log.info("policy change refused: %s (%s)", error.kind.value, error)
            message = str(error)
            return await self.pages.router.read(lambda s: again(s, message, form))
        return RedirectResponse(path.format(org=visit.org.name) + "?saved=1", status_code=303)

    def _entry(self, session: Session, visit: Visit, form: Mapping[str, str]) -> AllowlistEntry:
        """The user (by UPN, known to the DevOps service) or group (by object id) the form names."""
        kind = form.get("kind", "")
        principal = form.get("principal", "").strip()
        if kind == USER:
            found = PortalRepository(session).find_user_member(visit.org.tenant_id, principal)
            if found is None:
                raise PatPolicyError(
                    PolicyErrorKind.UNKNOWN_PRINCIPAL,
                    f"No user '{principal}' is a member of an organization of this tenant.",
                )
            return AllowlistEntry(found[0], USER, found[1])
        if kind == GROUP:
            return AllowlistEntry(principal, GROUP, form.get("name", "").strip())
        raise PatPolicyError(PolicyErrorKind.UNKNOWN_PRINCIPAL, "Choose a user or a group.")

    # --- the organization's policy ------------------------------------------------------------------

    def _org_page(
        self,
        session: Session,
        visit: Visit,
        *,
        status: int = 200,
        error: str | None = None,
        saved: bool = False,
    ) -> Response:
        policy = PatPolicyService(session, self.ctx.clock).org_policy(visit.org.id)
        row = OrgRepository(session).find_by_name(visit.org.name)
        return self.pages.render(
            "org_policy.html",
            status=status,
            visit=visit,
            title="Organization policies",
            policy=policy,
            ip_ca_validation=bool(row is not None and row.ip_conditional_access_validation),
            error=error,
            saved=saved,
        )

    async def org_policy(self, request: Request, visit: Visit) -> Response:
        if not visit.is_org_admin:
            return self._refused(visit, "Project Collection Administrators")
        if request.method == "GET":
            saved = request.query_params.get("saved") == "1"
            return await self.pages.router.read(lambda s: self._org_page(s, visit, saved=saved))
        actor = visit.actor(request)

        def change(session: Session, form: Mapping[str, str]) -> None:
            service = PatPolicyService(session, self.ctx.clock)
            action = form.get("action")
            if action == "policy":
                service.set_org_policy(
                    visit.org,
                    actor,
                    restrict_creation=_on(form, "restrict_creation"),
                    packaging_only=_on(form, "packaging_only"),
                )
            elif action == "security":
                # "IP Conditional Access policy validation on non-interactive flows" (devops/orgs/policy.py).
                set_ip_conditional_access_validation(
                    session, self.ctx.clock, visit.org.name, _on(form, "ip_ca_validation"), actor
                )
            elif action == "allow":
                entry = self._entry(session, visit, form)
                service.allow(ORGANIZATION, visit.org.id, PolicyName.RESTRICT_CREATION, entry, actor)
            elif action == "disallow":
                service.disallow(
                    ORGANIZATION,
                    visit.org.id,
                    PolicyName.RESTRICT_CREATION,
                    form.get("principal_id", ""),
                    actor,
                )
            else:
                raise PatPolicyError(PolicyErrorKind.INVALID_VALUE, "Unknown action.")

        return await self._change(
            request,
            visit,
            ORG_POLICY_PATH,
            change,
            lambda s, message, _form: self._org_page(s, visit, status=400, error=message),
        )

    # --- the tenant's policies ----------------------------------------------------------------------

    def _tenant_page(
        self,
        session: Session,
        visit: Visit,
        *,
        status: int = 200,
        error: str | None = None,
        saved: bool = False,
    ) -> Response:
        policy = PatPolicyService(session, self.ctx.clock).tenant_policy(visit.org.tenant_id)
        allowlists: list[dict[str, Any]] = [
            {"policy": p.value, "title": _TENANT_POLICY_TITLES[p], "entries": policy.allowlist(p)}
            for p in TENANT_POLICIES
        ]
        return self.pages.render(
            "tenant_policy.html",
            status=status,
            visit=visit,
            title="Microsoft Entra: personal access token policies",
            policy=policy,
            allowlists=allowlists,
            max_days=MAX_LIFESPAN_DAYS,
            error=error,
            saved=saved,
        )

    async def tenant_policy(self, request: Request, visit: Visit) -> Response:
        if not visit.is_tenant_admin:
            return self._refused(visit, "Azure DevOps Administrators and Global Administrators of the tenant")
        if request.method == "GET":
            saved = request.query_params.get("saved") == "1"
            return await self.pages.router.read(lambda s: self._tenant_page(s, visit, saved=saved))
        actor = visit.actor(request)
        tenant_id = visit.org.tenant_id

        def change(session: Session, form: Mapping[str, str]) -> None:
            service = PatPolicyService(session, self.ctx.clock)
            action = form.get("action")
            if action == "policy":
                lifespan: int | None = None
                if _on(form, "max_lifespan"):
                    raw = form.get("max_lifespan_days", "").strip()
                    if not raw.isdigit() or len(raw) > 4:
                        raise PatPolicyError(
                            PolicyErrorKind.INVALID_LIFESPAN,
                            f"The maximum lifespan must be a whole number of days from 1 to {MAX_LIFESPAN_DAYS}.",
                        )
                    lifespan = int(raw)
                service.set_tenant_policy(
                    tenant_id,
                    actor,
                    restrict_global=_on(form, "restrict_global"),
                    restrict_full_scope=_on(form, "restrict_full_scope"),
                    max_lifespan_days=lifespan,
                    auto_revoke_leaked=_on(form, "auto_revoke_leaked"),
                )
            elif action in {"allow", "disallow"}:
                policy = PolicyName.parse(form.get("policy", ""))
                if action == "allow":
                    service.allow(TENANT, tenant_id, policy, self._entry(session, visit, form), actor)
                else:
                    service.disallow(TENANT, tenant_id, policy, form.get("principal_id", ""), actor)
            else:
                raise PatPolicyError(PolicyErrorKind.INVALID_VALUE, "Unknown action.")

        return await self._change(
            request,
            visit,
            TENANT_POLICY_PATH,
            change,
            lambda s, message, _form: self._tenant_page(s, visit, status=400, error=message),
        )

    # --- the report ---------------------------------------------------------------------------------

    async def report(self, _request: Request, visit: Visit) -> Response:
        if not (visit.is_org_admin or visit.is_tenant_admin):
            return self._refused(visit, "Project Collection Administrators and the tenant's administrators")

        def read(session: Session) -> Response:
            repo = PortalRepository(session)
            rows = find_unrevoked_pats(session, visit.org.id)
            entries = build_report(rows, repo.organization_names(visit.org.tenant_id), self.ctx.clock.now())
            return self.pages.render(
                "report.html", visit=visit, title="Personal access tokens in use", entries=entries
            )

        return await self.pages.router.read(read)
