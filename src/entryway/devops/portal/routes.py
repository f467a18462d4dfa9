"""The DevOps origin's web routes: sign-in and sign-out, the user's token page, the administrators' pages."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from entryway.devops.portal.admin import ORG_POLICY_PATH, REPORT_PATH, TENANT_POLICY_PATH, AdminPages
from entryway.devops.portal.pages import TOKENS_PATH, PortalPages
from entryway.devops.web.routing import DevOpsRouter


def portal_routes(router: DevOpsRouter) -> list[BaseRoute]:
    """The web pages, when the installation gave the DevOps service its web client secret."""
    if router.ctx.web_client_secret is None or router.ctx.digester is None:
        return []
    pages = PortalPages(router)
    admin = AdminPages(pages)
    member = pages.member_page
    return [
        Route("/_signin", pages.sign_in, methods=["GET"]),
        Route("/_signedin", pages.signed_in, methods=["GET"]),
        Route("/_signout", pages.sign_out, methods=["POST"]),
        Route("/_signedout", pages.signed_out, methods=["GET"]),
        Route("/_portal/portal.css", pages.stylesheet, methods=["GET"]),
        Route(TOKENS_PATH, member(pages.tokens), methods=["GET", "POST"]),
        Route(TOKENS_PATH + "/revoke", member(pages.revoke), methods=["POST"]),
        Route(TOKENS_PATH + "/notifications/read", member(pages.mark_read), methods=["POST"]),
        Route(ORG_POLICY_PATH, member(admin.org_policy), methods=["GET", "POST"]),
        Route(TENANT_POLICY_PATH, member(admin.tenant_policy), methods=["GET", "POST"]),
        Route(REPORT_PATH, member(admin.report), methods=["GET"]),
    ]
