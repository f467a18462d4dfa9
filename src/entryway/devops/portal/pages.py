"""The DevOps origin's pages: sign-in and sign-out (through the identity platform, oidc.py), and the
personal access token page of a signed-in member, `/{org}/_usersSettings/tokens` (list, create with the
token shown once, revoke, notifications). The administrators' pages are in admin.py, on the same helpers.

Server-rendered, usable without JavaScript (the CSP allows none but a per-response nonce, and no page uses
it). Every POST carries a CSRF token bound to the web session's cookie. Each request's changes happen in one
unit of work: a refused request writes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from entryway.devops.audit.recorder import Actor
from entryway.devops.notifications.service import NotificationNotFound, NotificationService
from entryway.devops.orgs.service import Member, Organization
from entryway.devops.pats.policy import PatPolicyService, Requester
from entryway.devops.pats.service import DisplayFilter, Owner, Pat, PatError, PatService, SortBy
from entryway.devops.portal.oidc import OidcClient, SignInFailed
from entryway.devops.portal.scope_choices import families_for, scope_from_form
from entryway.devops.portal.sessions import SESSION_COOKIE, SIGN_IN_COOKIE, WebSession, WebSessions
from entryway.devops.web.routing import DevOpsRouter
from entryway.kit.browser import csrf_token, csrf_valid, new_script_nonce, page_security_headers
from entryway.kit.web import BodyTooLarge, client_address, read_body

log = logging.getLogger("entryway.devops.portal")

_TEMPLATES = Path(__file__).with_name("templates")
_CSS = Path(__file__).with_name("static") / "portal.css"
_CSRF_PURPOSE = "entryway/devops-csrf/v1:"
MAX_FORM_BYTES = 64 * 1024
_MAX_FIELD = 4096
# Where a sign-in may return: a path on this origin under an organization, never another host.
_REPLY_TO = re.compile(r"^/[A-Za-z0-9][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9._~%/-]*)?$")
_MAX_REPLY_TO = 1024
TOKENS_PATH = "/{org}/_usersSettings/tokens"
# The expiry choices of the create form, in days (the Azure DevOps panel offers 30, 60, 90 and custom).
EXPIRY_DAYS = (7, 30, 60, 90, 180, 365)
DEFAULT_EXPIRY_DAYS = 30
# How the audit log names a change made on these pages (credential labels are `scheme:kind`).
WEB_CREDENTIAL_KIND = "cookie:web"
# The newest notifications the token page shows.
MAX_NOTIFICATIONS = 20

# Directory role template ids (Entra's): who sets the tenant's PAT policies (devops-wire-contract 4).
AZURE_DEVOPS_ADMINISTRATOR = "e3973bdf-4987-49ae-837a-ba8e231c7286"
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
TENANT_ADMIN_ROLES = frozenset({AZURE_DEVOPS_ADMINISTRATOR, GLOBAL_ADMINISTRATOR})

PageHandler = Callable[[Request, "Visit"], Awaitable[Response]]


@dataclass(frozen=True)
class Visit:
    """One request of a signed-in organization member."""

    org: Organization
    web: WebSession
    member: Member
    cookie: str  # the session cookie: what CSRF tokens are bound to

    @property
    def owner(self) -> Owner:
        return Owner(self.web.object_id, self.web.tenant_id, self.member.principal_name)

    @property
    def is_org_admin(self) -> bool:
        """A Project Collection Administrator of the organization."""
        return self.member.organization_admin

    @property
    def is_tenant_admin(self) -> bool:
        """An Azure DevOps Administrator or Global Administrator of the tenant (the sign-in's `wids`)."""
        return bool(self.web.wids & TENANT_ADMIN_ROLES)

    @property
    def requester(self) -> Requester:
        return Requester(self.web.object_id, self.web.groups)

    def actor(self, request: Request) -> Actor:
        return Actor(
            self.web.object_id,
            self.member.display_name or self.web.name,
            credential_kind=WEB_CREDENTIAL_KIND,
            client_address=client_address(request),
            method=request.method,
            path=request.url.path[:1024],
        )


def safe_reply_to(value: str | None) -> str | None:
    """A same-origin path under an organization, or None: the sign-in never redirects anywhere else."""
    if not value or len(value) > _MAX_REPLY_TO or "//" in value or not _REPLY_TO.match(value):
        return None
    return value


class PortalPages:
    def __init__(self, router: DevOpsRouter) -> None:
        ctx = router.ctx
        assert ctx.web_client_secret is not None
        assert ctx.digester is not None
        self.router = router
        self.ctx = ctx
        self.digester = ctx.digester
        self.oidc = OidcClient(
            identity_origin=ctx.identity_origin,
            devops_origin=ctx.devops_origin,
            client_secret=ctx.web_client_secret,
            digester=ctx.digester,
            clock=ctx.clock,
        )
        self._env = Environment(
            loader=FileSystemLoader(_TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
            auto_reload=False,
        )
        self._css = _CSS.read_bytes()

    # --- rendering ------------------------------------------------------------------------------------

    def render(
        self, template: str, *, status: int = 200, visit: Visit | None = None, **values: Any
    ) -> Response:
        nonce = new_script_nonce()
        values.setdefault("error", None)
        values["visit"] = visit
        values["csrf"] = csrf_token(self.digester, _CSRF_PURPOSE, visit.cookie) if visit else ""
        values["script_nonce"] = nonce
        html = self._env.get_template(template).render(**values)
        response = Response(html, status_code=status, media_type="text/html; charset=utf-8")
        return page_security_headers(response, nonce)

    def message(self, title: str, text: str, *, status: int, visit: Visit | None = None) -> Response:
        return self.render("message.html", status=status, visit=visit, title=title, paragraphs=[text])

    async def stylesheet(self, _request: Request) -> Response:
        return Response(
            self._css,
            media_type="text/css; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    @staticmethod
    def _set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(
            name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="lax"
        )

    @staticmethod
    def _clear_cookie(response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="lax")

    # --- sign-in ----------------------------------------------------------------------------------------

    def _to_sign_in(self, reply_to: str) -> Response:
        return RedirectResponse(f"/_signin?reply_to={quote(reply_to, safe='/')}", status_code=303)

    async def sign_in(self, request: Request) -> Response:
        """Start a sign-in at the identity platform, in the tenant of the organization the person wants."""
        reply_to = safe_reply_to(request.query_params.get("reply_to"))
        if reply_to is None:
            return self.message(
                "Open an organization", "Open a page of your organization to sign in.", status=400
            )
        org = await self.router.find_org(reply_to.split("/")[1])
        if org is None:
            return self.message("Not found", "This organization does not exist.", status=404)
        url, cookie = self.oidc.begin(org.tenant_id, reply_to)
        response = RedirectResponse(url, status_code=303)
        self._set_cookie(response, SIGN_IN_COOKIE, cookie, max_age=15 * 60)
        return page_security_headers(response, new_script_nonce())

    async def signed_in(self, request: Request) -> Response:
        """The identity platform's answer (response_mode=query): redeem the code, verify the ID token, and
        start a web session. Refused unless this browser started this sign-in."""
        query = request.query_params
        pending = self.oidc.pending(request.cookies.get(SIGN_IN_COOKIE), query.get("state"))
        if pending is None:
            log.info("sign-in answer refused: no pending sign-in for this state in this browser")
            return self.message(
                "We couldn't sign you in",
                "This sign-in expired or was started in another browser window. Open the page again.",
                status=400,
            )
        if query.get("error"):
            log.info("sign-in refused by the identity platform: %s", query.get("error"))
            response = self.render(
                "message.html",
                status=400,
                title="We couldn't sign you in",
                paragraphs=[str(query.get("error_description", ""))[:600]],
                retry=pending.reply_to,
            )
            self._clear_cookie(response, SIGN_IN_COOKIE)
            return response
        code = query.get("code", "")
        if not code or self.ctx.http is None:
            return self.message("We couldn't sign you in", "The answer carried no code.", status=400)
        try:
            user = await self.oidc.redeem(self.ctx.http, pending, code)
        except SignInFailed as exc:
            log.warning("sign-in failed: %s", exc)
            response = self.message(
                "We couldn't sign you in", "The sign-in could not be completed. Try again.", status=400
            )
            self._clear_cookie(response, SIGN_IN_COOKIE)
            return response
        previous = request.cookies.get(SESSION_COOKIE)

        def start(session: Session) -> str:
            sessions = WebSessions(session, self.ctx.clock, self.digester)
            sessions.end(previous)  # a new session at every sign-in: never keep a value set before it
            sessions.purge_expired()
            return sessions.start(user)

        cookie = await self.router.write(start)
        log.info("web session started for %s in %s", user.object_id, user.tenant_id)
        response = RedirectResponse(pending.reply_to, status_code=303)
        self._set_cookie(response, SESSION_COOKIE, cookie)
        self._clear_cookie(response, SIGN_IN_COOKIE)
        return page_security_headers(response, new_script_nonce())

    async def sign_out(self, request: Request) -> Response:
        """End the web session, then the identity platform's session, which sends the browser back to
        `/_signedout`."""
        cookie = request.cookies.get(SESSION_COOKIE)
        form = await self._form(request)
        web = await self.router.read(lambda s: WebSessions(s, self.ctx.clock, self.digester).find(cookie))
        if web is None:
            return RedirectResponse("/_signedout", status_code=303)
        if form is None or not csrf_valid(self.digester, _CSRF_PURPOSE, cookie, form.get("csrf")):
            return self.csrf_refused()
        await self.router.write(lambda s: WebSessions(s, self.ctx.clock, self.digester).end(cookie))
        response = RedirectResponse(self.oidc.logout_url(web.tenant_id), status_code=303)
        self._clear_cookie(response, SESSION_COOKIE)
        return page_security_headers(response, new_script_nonce())

    async def signed_out(self, _request: Request) -> Response:
        return self.message(
            "You signed out", "You signed out of Azure DevOps and of your account.", status=200
        )

    # --- a signed-in member's pages ----------------------------------------------------------------------

    def member_page(self, handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
        """The organization must exist, the browser must hold a live web session in the organization's
        tenant (else: sign in), the person must be a member, and a POST must carry the CSRF token."""

        async def endpoint(request: Request) -> Response:
            org = await self.router.find_org(request.path_params["org"])
            if org is None:
                return self.message("Not found", "This organization does not exist.", status=404)
            cookie = request.cookies.get(SESSION_COOKIE)
            web = await self.router.read(lambda s: WebSessions(s, self.ctx.clock, self.digester).find(cookie))
            if web is None or cookie is None or web.tenant_id != org.tenant_id:
                # Back to the page asked for; after a form (a POST), to the token page, which a GET can open.
                asked = safe_reply_to(request.url.path) if request.method == "GET" else None
                return self._to_sign_in(asked or TOKENS_PATH.format(org=org.name))
            member = await self.router.find_member(org, web.object_id)
            if member is None:
                log.info("web page refused: %s is not a member of %s", web.object_id, org.name)
                return self.message(
                    "You are not a member",
                    f"{web.principal_name or web.name} is not a member of the organization {org.name}. "
                    "Ask one of its administrators to add you.",
                    status=403,
                )
            visit = Visit(org, web, member, cookie)
            return await handler(request, visit)

        return endpoint

    async def _form(self, request: Request) -> dict[str, str] | None:
        try:
            body = await read_body(request, MAX_FORM_BYTES)
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except (BodyTooLarge, UnicodeDecodeError, ValueError):
            return None
        return {k: v for k, v in pairs if len(v) <= _MAX_FIELD}

    async def checked_form(self, request: Request, visit: Visit) -> dict[str, str] | None:
        form = await self._form(request)
        if form is None or not csrf_valid(self.digester, _CSRF_PURPOSE, visit.cookie, form.get("csrf")):
            log.info("web form refused: missing or wrong CSRF token on %s", request.url.path)
            return None
        return form

    def csrf_refused(self, visit: Visit | None = None) -> Response:
        return self.message(
            "This page expired",
            "The form was sent without this page's security token. Reload the page and try again.",
            status=403,
            visit=visit,
        )

    # --- /{org}/_usersSettings/tokens ------------------------------------------------------------------

    def _pats(self, session: Session, visit: Visit) -> list[Pat]:
        service = PatService(session, self.ctx.clock, self.digester)
        pats: list[Pat] = []
        continuation = ""
        while True:
            page = service.list_pats(
                visit.owner,
                visit.org,
                display_filter=DisplayFilter.ALL,
                sort_by=SortBy.STATUS,
                continuation_token=continuation,
            )
            pats.extend(page.pats)
            continuation = page.continuation_token
            if not continuation:
                return pats

    def _tokens_page(
        self,
        session: Session,
        visit: Visit,
        *,
        status: int = 200,
        created: Pat | None = None,
        error: str | None = None,
        values: Mapping[str, str] | None = None,
    ) -> Response:
        now = self.ctx.clock.now()
        org_policy = PatPolicyService(session, self.ctx.clock).org_policy(visit.org.id)
        packaging_only = (
            org_policy.restrict_creation
            and org_policy.packaging_only
            and not visit.requester.is_allowed(org_policy.allowlist)
        )
        rows = [
            {
                "id": p.authorization_id,
                "name": p.display_name,
                "scope": p.scope,
                "organization": visit.org.name if p.organization_id else "All accessible organizations",
                "created": _day(p.valid_from),
                "expires": _day(p.valid_to),
                "status": p.status(now).value,
            }
            for p in self._pats(session, visit)
        ]
        return self.render(
            "tokens.html",
            status=status,
            visit=visit,
            title="Personal Access Tokens",
            tokens=rows,
            created=created,
            created_expires=_day(created.valid_to) if created else "",
            error=error,
            form=dict(values or {}),
            families=families_for(packaging_only),
            packaging_only=packaging_only,
            expiry_days=EXPIRY_DAYS,
            default_expiry=DEFAULT_EXPIRY_DAYS,
            notifications=[
                {
                    "id": n.id,
                    "kind": n.kind,
                    "subject": n.subject,
                    "body": n.body,
                    "created": n.created_at.strftime("%Y-%m-%d %H:%M UTC"),
                    "read": n.is_read,
                }
                for n in NotificationService(session, self.ctx.clock).list_for(
                    visit.web.object_id, visit.web.tenant_id
                )[:MAX_NOTIFICATIONS]
            ],
        )

    async def tokens(self, request: Request, visit: Visit) -> Response:
        if request.method == "GET":
            return await self.router.read(lambda s: self._tokens_page(s, visit))
        form = await self.checked_form(request, visit)
        if form is None:
            return self.csrf_refused(visit)
        return await self._create(request, visit, form)

    async def _create(self, request: Request, visit: Visit, form: Mapping[str, str]) -> Response:
        raw_days = form.get("expires", "")
        days = int(raw_days) if raw_days.isdigit() and len(raw_days) < 4 else -1
        if days not in EXPIRY_DAYS:
            return await self.router.read(
                lambda s: self._tokens_page(
                    s, visit, status=400, error="Choose one of the expiration periods.", values=form
                )
            )
        valid_to = self.ctx.clock.now() + timedelta(days=days)
        actor = visit.actor(request)
        try:
            pat = await self.router.write(
                lambda s: PatService(s, self.ctx.clock, self.digester).create(
                    visit.owner,
                    visit.org,
                    actor,
                    display_name=form.get("name"),
                    scope=scope_from_form(form),
                    valid_to=valid_to,
                    all_orgs=form.get("organization") == "all",
                    requester=visit.requester,
                    source="web",
                )
            )
        except PatError as error:
            log.info("token page: creation refused: %s (%s)", error.kind.value, error)
            message = error.message
            return await self.router.read(
                lambda s: self._tokens_page(s, visit, status=400, error=message, values=form)
            )
        return await self.router.read(lambda s: self._tokens_page(s, visit, created=pat))

    async def revoke(self, request: Request, visit: Visit) -> Response:
        form = await self.checked_form(request, visit)
        if form is None:
            return self.csrf_refused(visit)
        actor = visit.actor(request)
        try:
            await self.router.write(
                lambda s: PatService(s, self.ctx.clock, self.digester).revoke(
                    visit.owner, visit.org, actor, form.get("authorizationId")
                )
            )
        except PatError as error:
            log.info("token page: revocation refused: %s (%s)", error.kind.value, error)
            message = error.message
            return await self.router.read(lambda s: self._tokens_page(s, visit, status=400, error=message))
        return RedirectResponse(TOKENS_PATH.format(org=visit.org.name), status_code=303)

    async def mark_read(self, request: Request, visit: Visit) -> Response:
        form = await self.checked_form(request, visit)
        if form is None:
            return self.csrf_refused(visit)
        try:
            await self.router.write(
                lambda s: NotificationService(s, self.ctx.clock).mark_read(
                    visit.web.object_id, visit.web.tenant_id, form.get("notificationId", "")
                )
            )
        except NotificationNotFound:
            return await self.router.read(
                lambda s: self._tokens_page(s, visit, status=404, error="There is no such notification.")
            )
        return RedirectResponse(TOKENS_PATH.format(org=visit.org.name), status_code=303)


def _day(value: datetime) -> str:
    return value.strftime("%Y-%m-%d")
