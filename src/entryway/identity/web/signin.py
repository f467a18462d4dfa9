"""The sign-in pages: the authorize endpoint, username / password / MFA / account picker / consent pages,
the device-code pages, sign-out, and the error page.

Server-rendered and usable without JavaScript. Field names and element ids are Entra's, so automation
written against Entra's pages works here. Every POST carries a CSRF token bound to the browser's `esctx`
cookie and a signed flow state (`flow`) that holds the authorization request and how far the sign-in got;
the page believes nothing it did not sign itself. Each request runs in one unit of work: a refused request
writes nothing.

Authorization request: RFC 6749 section 4.1 and RFC 7636 (PKCE), with Entra's parameters and errors
(https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow). Device flow pages: RFC 8628
section 3.3.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import segno
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from entryway.identity.directory.reads import SqlDirectory
from entryway.identity.protocol import errors as catalogue
from entryway.identity.protocol.claims import client_info
from entryway.identity.protocol.claims_request import parse_claims_request
from entryway.identity.protocol.delegation import parse_user_scope
from entryway.identity.protocol.errors import (
    ACCOUNT_LOCKED,
    AUTHORIZATION_DECLINED,
    BAD_VERIFICATION_CODE,
    CLIENT_NOT_FOUND,
    CONSENT_DECLINED,
    CONSENT_REQUIRED,
    INTERACTION_REQUIRED_MFA,
    INVALID_CLIENT_ID,
    INVALID_CREDENTIALS,
    INVALID_SCOPE,
    LOGIN_REQUIRED,
    MFA_CODE_INVALID,
    MISSING_PARAMETER,
    PKCE_METHOD_UNSUPPORTED,
    PKCE_REQUIRED,
    REDIRECT_URI_MISMATCH,
    RESOURCE_NOT_FOUND,
    TENANT_NOT_FOUND,
    UNSUPPORTED_RESPONSE_MODE,
    UNSUPPORTED_RESPONSE_TYPE,
    USER_DISABLED,
    USER_IN_OTHER_TENANT,
    USER_NOT_FOUND,
    Aadsts,
    OAuthError,
    format_timestamp,
)
from entryway.identity.protocol.model import Resource
from entryway.identity.protocol.pipeline import TENANT_INDEPENDENT, validate_tenant_ref
from entryway.identity.protocol.requests import UnreadableBody, parse_form
from entryway.identity.protocol.scopes import split_scope
from entryway.identity.protocol.sign_ins import PasswordCheck
from entryway.identity.signin.accounts import Accounts, ClientApp, redirect_uri_matches
from entryway.identity.signin.ledger import Ledger
from entryway.identity.signin.log import SignInRecord
from entryway.identity.signin.sessions import (
    CONTEXT_COOKIE,
    SESSION_COOKIE,
    BrowserSessions,
    FlowState,
    csrf_token,
    csrf_valid,
    new_context_value,
)
from entryway.identity.web.signin_policy import (
    PROTOCOL_AUTHORIZE,
    PROTOCOL_DEVICE,
    PageAttempt,
    asked_resource,
    evaluate_page_sign_in,
    page_record,
    policies_require_mfa,
)
from entryway.kit.browser import page_security_headers
from entryway.kit.clock import as_utc, utc_from_timestamp
from entryway.kit.ids import new_guid, parse_guid
from entryway.kit.web import BodyTooLarge, client_address, read_body
from entryway.store.models import BrowserSessionRow, TenantRow, UserRow

if TYPE_CHECKING:
    from entryway.identity.policy.evaluate import Decision
    from entryway.identity.web.context import IdentityContext

log = logging.getLogger("entryway.identity.signin")

_TEMPLATES = Path(__file__).with_name("templates")
_CSS = Path(__file__).with_name("static") / "signin.css"
# How long a person has to get through the pages of one sign-in.
FLOW_LIFETIME = timedelta(minutes=15)
_PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43,128}$")  # RFC 7636 section 4.2: base64url of a SHA-256
_PROMPTS = frozenset({"login", "select_account", "consent", "none"})
_RESPONSE_MODES = frozenset({"query", "form_post"})
_MAX_FIELD = 8192
# Pages shown after the sign-in was recorded in the browser session: they act only while it lasts.
_SIGNED_IN_STEPS = frozenset({"consent", "device_confirm"})

INCORRECT_SIGN_IN_TEXT = (
    "Your account or password is incorrect. If you don't remember your password, reset it now."
)
LOCKED_TEXT = (
    "Your account is temporarily locked to prevent unauthorized use. Try again later, and if you still have "
    "trouble, contact your admin."
)
UNKNOWN_USER_TEXT = (
    "This username may be incorrect. Make sure you typed it correctly. Otherwise, contact your admin."
)
WRONG_CODE_TEXT = "You didn't enter the expected verification code. Please try again."
BLOCKED_TITLE = "You cannot access this right now"
BLOCKED_TEXT = (
    "Your sign-in was successful but does not meet the criteria to access this resource. For example, you "
    "might be signing in from a browser, app, or location that is restricted by your admin."
)
SIGN_IN_AGAIN_TEXT = "Your organization requires you to sign in again."
BAD_DEVICE_CODE_TEXT = "That code didn't work. Check the code and try again."


# --- what a request carries ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorizeRequest:
    """A validated authorization request: the parameters that survive the pages in the flow state."""

    client_id: str
    redirect_uri: str
    scope: str
    response_mode: str
    state: str | None = None
    code_challenge: str | None = None
    nonce: str | None = None
    prompt: str | None = None
    login_hint: str | None = None
    claims: str | None = None
    max_age: int | None = None


@dataclass
class Flow:
    """How far one sign-in got. Sealed into the `flow` hidden field between pages."""

    kind: str  # "code" | "device"
    tenant_ref: str  # as the request named it: GUID, domain, common, organizations
    step: str  # the page whose answer the server expects next
    tenant_id: str | None = None  # the tenant the request named, when it named one
    request: dict[str, Any] | None = None  # AuthorizeRequest, for kind "code"
    user_code: str | None = None  # for kind "device"
    client_id: str = ""
    scope: str = ""
    user_id: str | None = None
    upn: str | None = None
    auth_time: int | None = None
    amr: list[str] = field(default_factory=list)
    fresh: bool = False  # the credentials were entered in this flow (not taken from the session)
    consented: bool = False
    confirmed: bool = False
    # The sign-in log's correlation id: every entry of one sign-in shares it (the app's client-request-id
    # when it sent one).
    correlation_id: str = ""
    claims: str | None = None  # the `claims` parameter, for kind "device" (kind "code": in `request`)

    @property
    def authorize(self) -> AuthorizeRequest:
        assert self.request is not None
        return AuthorizeRequest(**self.request)


class PageError(Exception):
    """An error the browser sees on our error page: the request cannot be sent back to the app."""

    def __init__(self, kind: Aadsts, detail: str = "", **params: str) -> None:
        super().__init__(kind.format(**params))
        self.kind = kind
        self.detail = detail
        self.status = kind.status
        self.message = kind.format(**params)


class RedirectError(Exception):
    """An error sent back to the app's redirect URI (RFC 6749 section 4.1.2.1)."""

    def __init__(self, request: AuthorizeRequest, kind: Aadsts, detail: str = "", **params: str) -> None:
        super().__init__(kind.format(**params))
        self.request = request
        self.kind = kind
        self.detail = detail
        self.description = kind.format(**params)


@dataclass
class Exchange:
    """One HTTP exchange: the browser's cookies in, the cookies to set out."""

    context: str
    new_context: bool
    session_cookie: str | None
    address: str
    user_agent: str = ""
    set_session: str | None = None
    clear_session: bool = False
    script_nonce: str = field(default_factory=lambda: secrets.token_urlsafe(16))


# --- the routes ------------------------------------------------------------------------------------------


def signin_routes(ctx: IdentityContext, totp_key: bytes | None = None) -> list[BaseRoute]:
    """The sign-in routes, to mount in the identity application."""
    pages = SignInPages(ctx, totp_key if totp_key is not None else ctx.totp_key)
    return [
        Route("/{tenant}/oauth2/v2.0/authorize", pages.authorize, methods=["GET", "POST"]),
        Route("/{tenant}/oauth2/authorize", pages.authorize, methods=["GET", "POST"]),
        Route("/{tenant}/login", pages.login, methods=["POST"]),
        Route("/devicelogin", pages.devicelogin, methods=["GET", "POST"]),
        Route("/{tenant}/oauth2/v2.0/logout", pages.logout, methods=["GET"]),
        Route("/{tenant}/oauth2/logout", pages.logout, methods=["GET"]),
        Route("/error", pages.error_page, methods=["GET"]),
        Route("/static/signin.css", pages.stylesheet, methods=["GET"]),
    ]


class SignInPages:
    def __init__(self, ctx: IdentityContext, totp_key: bytes) -> None:
        self._ctx = ctx
        self._totp_key = totp_key
        self._flows = FlowState(ctx.digester, ctx.clock, FLOW_LIFETIME)
        self._env = Environment(
            loader=FileSystemLoader(_TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
            auto_reload=False,
        )
        self._css = _CSS.read_bytes()

    # --- the HTTP edge -------------------------------------------------------------------------------------

    def _exchange(self, request: Request) -> Exchange:
        context = request.cookies.get(CONTEXT_COOKIE, "")
        new = not (16 <= len(context) <= 128)
        return Exchange(
            context=new_context_value() if new else context,
            new_context=new,
            session_cookie=request.cookies.get(SESSION_COOKIE),
            address=client_address(request),
            user_agent=request.headers.get("user-agent", "")[:512],
        )

    def _finish(self, response: Response, ex: Exchange) -> Response:
        if ex.new_context:
            response.set_cookie(
                CONTEXT_COOKIE, ex.context, path="/", secure=True, httponly=True, samesite="lax"
            )
        if ex.set_session is not None:
            response.set_cookie(
                SESSION_COOKIE, ex.set_session, path="/", secure=True, httponly=True, samesite="lax"
            )
        elif ex.clear_session:
            response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
        return page_security_headers(response, ex.script_nonce)

    async def _run(
        self, request: Request, ex: Exchange, work: Callable[[Session], Response], *, write: bool = True
    ) -> Response:
        """Run page logic in one unit of work off the event loop (argon2 is slow on purpose)."""

        def run() -> Response:
            try:
                if write:
                    with self._ctx.db.unit_of_work() as session:
                        return work(session)
                with self._ctx.db.read() as session:
                    return work(session)
            except PageError as error:
                return self._error(ex, error.kind, error.message, error.detail, status=error.status)
            except RedirectError as error:
                return self._redirect_error(ex, error)

        try:
            response = await run_in_threadpool(run)
        except Exception:
            log.exception("sign-in page failed: %s %s", request.method, request.url.path)
            response = self._render(
                ex, "error.html", status=500, title="Something went wrong", message="Please try again later."
            )
        return self._finish(response, ex)

    async def _form(self, request: Request) -> dict[str, str] | None:
        try:
            params = parse_form(await read_body(request), request.headers.get("content-type"))
        except (UnreadableBody, BodyTooLarge, OAuthError) as exc:
            log.info("unreadable sign-in form: %r", exc)
            return None
        return {k: v for k, v in params.items() if len(v) <= _MAX_FIELD}

    def _bad_form(self, ex: Exchange, reason: str) -> Response:
        log.info("sign-in form refused: %s", reason)
        return self._finish(
            self._render(
                ex,
                "error.html",
                status=400,
                title="We couldn't sign you in",
                message="Your sign-in page expired or was opened in another window. Go back to the app and "
                "start signing in again.",
            ),
            ex,
        )

    # --- rendering -----------------------------------------------------------------------------------------

    def _render(self, ex: Exchange, template: str, *, status: int = 200, **values: Any) -> Response:
        values.setdefault("csrf", csrf_token(self._ctx.digester, ex.context))
        values.setdefault("tenant_name", None)
        values.setdefault("identity", None)
        values.setdefault("error", None)
        values.setdefault("trace_id", None)
        values["script_nonce"] = ex.script_nonce
        values.setdefault("timestamp", format_timestamp(self._ctx.clock.now()))
        html = self._env.get_template(template).render(**values)
        return Response(html, status_code=status, media_type="text/html; charset=utf-8")

    def _page(self, ex: Exchange, template: str, flow: Flow, session: Session, **values: Any) -> Response:
        """A sign-in page that posts back the next step of `flow`."""
        values.setdefault("tenant_name", self._tenant_name(session, flow))
        return self._render(
            ex,
            template,
            flow=self._flows.seal(asdict(flow), ex.context),
            action=f"/{flow.tenant_ref}/login",
            **values,
        )

    def _error(
        self, ex: Exchange, kind: Aadsts, message: str, detail: str = "", *, status: int = 400
    ) -> Response:
        trace_id = new_guid()
        log.info("AADSTS%s on the sign-in pages trace_id=%s reason=%s", kind.code, trace_id, detail or "-")
        return self._render(
            ex,
            "error.html",
            status=status,
            title="Sorry, but we're having trouble signing you in.",
            message=message,
            code=kind.code,
            request_id=trace_id,
            trace_id=trace_id,
            correlation_id=new_guid(),
        )

    def _redirect_error(self, ex: Exchange, error: RedirectError) -> Response:
        trace_id = new_guid()
        log.info(
            "AADSTS%s sent to the redirect URI trace_id=%s reason=%s",
            error.kind.code,
            trace_id,
            error.detail or "-",
        )
        return self._respond(ex, error.request, self._error_fields(error, trace_id, new_guid()))

    def _error_fields(
        self, error: RedirectError, trace_id: str, correlation_id: str
    ) -> list[tuple[str, str]]:
        """An error response's parameters (RFC 6749 section 4.1.2.1, with Entra's description and uri)."""
        timestamp = format_timestamp(self._ctx.clock.now())
        fields = [
            ("error", error.kind.error),
            (
                "error_description",
                f"{error.description} Trace ID: {trace_id} Correlation ID: {correlation_id} "
                f"Timestamp: {timestamp}",
            ),
            ("error_uri", f"{self._ctx.origin}/error?code={error.kind.code}"),
        ]
        if error.request.state is not None:
            fields.append(("state", error.request.state))
        return fields

    def _respond(self, ex: Exchange, req: AuthorizeRequest, fields: list[tuple[str, str]]) -> Response:
        """Send the authorization response the way the app asked (response_mode)."""
        if req.response_mode == "form_post":
            return self._render(
                ex, "form_post.html", redirect_uri=req.redirect_uri, fields=fields, title="Working..."
            )
        parts = urlsplit(req.redirect_uri)
        query = parse_qsl(parts.query, keep_blank_values=True) + fields
        return RedirectResponse(urlunsplit(parts._replace(query=urlencode(query))), status_code=302)

    def _tenant_name(self, session: Session, flow: Flow) -> str | None:
        tenant_id = flow.tenant_id
        if tenant_id is None and flow.user_id is not None:
            user = session.get(UserRow, flow.user_id)
            tenant_id = user.tenant_id if user is not None else None
        tenant = session.get(TenantRow, tenant_id) if tenant_id else None
        return tenant.display_name if tenant is not None else None

    # --- GET|POST /{tenant}/oauth2/v2.0/authorize ---------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        ex = self._exchange(request)
        if request.method == "POST":
            form = await self._form(request)
            if form is None:
                return self._bad_form(ex, "unreadable authorize body")
            params: Mapping[str, str] = form
        else:
            params = {k: v for k, v in request.query_params.items() if len(v) <= _MAX_FIELD}
        tenant_ref = request.path_params["tenant"]
        version = 2 if "/v2.0/" in request.url.path else 1
        return await self._run(
            request, ex, lambda s: self._start_authorize(s, ex, tenant_ref, params, version)
        )

    def _start_authorize(
        self, session: Session, ex: Exchange, tenant_ref: str, params: Mapping[str, str], version: int
    ) -> Response:
        accounts = self._accounts(session)
        tenant_id = self._requested_tenant(session, tenant_ref)
        req = self._read_authorize(accounts, tenant_ref, tenant_id, params, version)
        if tenant_id is not None:
            # The tenant is known: a scope it cannot grant is refused before anyone types a password.
            self._asked_resource(
                session, tenant_id, req.scope, on_error=lambda k, d, p: RedirectError(req, k, d, **p)
            )
        flow = Flow(
            kind="code",
            tenant_ref=tenant_ref,
            tenant_id=tenant_id,
            step="username",
            request=asdict(req),
            client_id=req.client_id,
            scope=req.scope,
            correlation_id=parse_guid(params.get("client-request-id", "")) or new_guid(),
        )
        return self._begin(session, ex, flow, req.prompt, req.login_hint)

    def _requested_tenant(self, session: Session, tenant_ref: str) -> str | None:
        """The tenant a URL names, or None for `common` / `organizations` (the user's home tenant decides)."""
        try:
            normalized = validate_tenant_ref(tenant_ref)
        except OAuthError as error:
            raise PageError(error.kind, tenant=tenant_ref) from error
        if normalized in {"common", "organizations"}:
            return None
        tenant = (
            None
            if normalized in TENANT_INDEPENDENT
            else SqlDirectory(session.connection()).find_tenant(normalized)
        )
        if tenant is None:
            raise PageError(TENANT_NOT_FOUND, tenant=tenant_ref)
        return tenant.id

    def _read_authorize(
        self,
        accounts: Accounts,
        tenant_ref: str,
        tenant_id: str | None,
        params: Mapping[str, str],
        version: int,
    ) -> AuthorizeRequest:
        def get(name: str) -> str | None:
            value = params.get(name)
            return value if value else None

        # Until the redirect URI is known to be the app's, errors are shown here, never sent anywhere.
        raw_client = get("client_id")
        if raw_client is None:
            raise PageError(MISSING_PARAMETER, name="client_id")
        client_id = parse_guid(raw_client)
        if client_id is None:
            raise PageError(INVALID_CLIENT_ID, client_id=raw_client)
        app = accounts.find_client_app(client_id)
        if app is None or (
            tenant_id is not None and not accounts.has_service_principal(tenant_id, client_id)
        ):
            raise PageError(CLIENT_NOT_FOUND, client_id=client_id, directory=tenant_ref)
        redirect_uri = get("redirect_uri")
        if redirect_uri is None:
            raise PageError(MISSING_PARAMETER, name="redirect_uri")
        if not app.accepts_redirect_uri(redirect_uri):
            raise PageError(REDIRECT_URI_MISMATCH, redirect_uri=redirect_uri, client_id=client_id)

        response_mode = (get("response_mode") or "query").lower()
        scope = get("scope") or ""
        if version == 1 and not scope and get("resource"):
            scope = f"{get('resource')}/.default openid"
        req = AuthorizeRequest(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            response_mode=response_mode if response_mode in _RESPONSE_MODES else "query",
            state=params.get("state"),
            nonce=get("nonce"),
            prompt=(get("prompt") or "").lower() if (get("prompt") or "").lower() in _PROMPTS else None,
            login_hint=get("login_hint"),
            claims=get("claims"),
            max_age=_non_negative_int(get("max_age")),
        )
        if response_mode not in _RESPONSE_MODES:
            raise RedirectError(req, UNSUPPORTED_RESPONSE_MODE, f"response_mode={response_mode}")
        response_type = get("response_type")
        if response_type is None:
            raise RedirectError(req, MISSING_PARAMETER, name="response_type")
        if response_type != "code":
            raise RedirectError(req, UNSUPPORTED_RESPONSE_TYPE, response_type=response_type)
        if not scope:
            raise RedirectError(req, MISSING_PARAMETER, name="scope")
        _resource_scope(req)  # one resource at most
        try:
            parse_claims_request(req.claims)
        except OAuthError as error:
            raise RedirectError(req, error.kind, error.detail) from error
        challenge = _code_challenge(req, app, get("code_challenge"), get("code_challenge_method"))
        return AuthorizeRequest(**{**asdict(req), "code_challenge": challenge})

    # --- choosing the first page -----------------------------------------------------------------------------

    def _begin(
        self, session: Session, ex: Exchange, flow: Flow, prompt: str | None, login_hint: str | None
    ) -> Response:
        candidates = self._session_accounts(session, ex, flow)
        hint = (login_hint or "").strip().lower()
        hinted = [a for a in candidates if a.upn == hint] if hint else candidates
        if prompt == "none":
            if len(hinted) > 1:  # Entra: choosing needs the picker, which a silent request cannot show
                raise RedirectError(
                    flow.authorize, catalogue.ACCOUNT_SELECTION_REQUIRED, f"{len(hinted)} accounts"
                )
            if not hinted:
                raise RedirectError(flow.authorize, LOGIN_REQUIRED, "no session account for the request")
            return self._continue_as(session, ex, flow, hinted[0], interactive=False)
        if prompt == "login" or not candidates:
            flow.step = "username"
            return self._username_page(session, ex, flow, login_hint or "")
        if flow.kind == "device" or prompt == "select_account" or len(hinted) != 1:
            return self._picker_page(session, ex, flow, candidates)
        return self._continue_as(session, ex, flow, hinted[0], interactive=True)

    def _session_accounts(self, session: Session, ex: Exchange, flow: Flow) -> list[SessionAccount]:
        """The accounts signed in in this browser that this request may use."""
        row = self._browser_session(session, ex)
        if row is None:
            return []
        found = []
        for account in BrowserSessions(session, self._ctx.clock, self._ctx.digester).accounts(row):
            user = session.get(UserRow, account.user_id)
            if user is None or not user.account_enabled:
                continue
            if flow.tenant_id is not None and user.tenant_id != flow.tenant_id:
                continue
            found.append(
                SessionAccount(
                    user_id=user.object_id,
                    upn=user.user_principal_name,
                    name=user.display_name,
                    tenant_id=user.tenant_id,
                    auth_time=as_utc(account.auth_time),
                    amr=tuple(account.amr or ()),
                )
            )
        return found

    def _browser_session(self, session: Session, ex: Exchange) -> BrowserSessionRow | None:
        return BrowserSessions(session, self._ctx.clock, self._ctx.digester).find(ex.session_cookie)

    def _continue_as(
        self, session: Session, ex: Exchange, flow: Flow, account: SessionAccount, *, interactive: bool
    ) -> Response:
        """Single sign-on with an account of the browser session, unless the request wants fresher proof."""
        flow.user_id, flow.upn = account.user_id, account.upn
        flow.auth_time, flow.amr, flow.fresh = int(account.auth_time.timestamp()), list(account.amr), False
        max_age = flow.authorize.max_age if flow.kind == "code" else None
        if max_age is not None and self._ctx.clock.timestamp() - flow.auth_time > max_age:
            if not interactive:
                raise RedirectError(flow.authorize, LOGIN_REQUIRED, "auth_time older than max_age")
            flow.step = "password"
            return self._password_page(session, ex, flow)
        not_before = self._claims_not_before(flow)
        if not_before is not None and flow.auth_time < not_before:
            # A claims challenge (continuous access evaluation) asks for a sign-in after the session's.
            detail = f"claims nbf {not_before} after the session's auth_time {flow.auth_time}"
            if not interactive:
                self._log_failure(session, ex, flow, catalogue.CLAIMS_NEED_FRESH_SIGN_IN_PAGE)
                raise RedirectError(flow.authorize, catalogue.CLAIMS_NEED_FRESH_SIGN_IN_PAGE, detail)
            log.info("fresh credentials required: %s", detail)
            flow.step = "password"
            return self._password_page(session, ex, flow)
        return self._after_password(session, ex, flow, interactive=interactive)

    @staticmethod
    def _claims_not_before(flow: Flow) -> int | None:
        claims = flow.authorize.claims if flow.kind == "code" else flow.claims
        try:
            return parse_claims_request(claims).not_before
        except OAuthError:  # refused when the request arrived; a flow cannot carry it otherwise
            return None

    # --- POST /{tenant}/login: every step after the first page ------------------------------------------------

    async def login(self, request: Request) -> Response:
        ex = self._exchange(request)
        form = await self._form(request)
        if form is None:
            return self._bad_form(ex, "unreadable form")
        if ex.new_context or not csrf_valid(self._ctx.digester, ex.context, form.get("csrf")):
            return self._bad_form(ex, "missing or wrong CSRF token")
        data = self._flows.open(form.get("flow"), ex.context)
        if data is None:
            return self._bad_form(ex, "flow state forged, expired or from another browser")
        try:
            flow = Flow(**data)
        except TypeError:
            return self._bad_form(ex, "flow state of another version")
        return await self._run(request, ex, lambda s: self._step(s, ex, flow, form))

    def _step(self, session: Session, ex: Exchange, flow: Flow, form: Mapping[str, str]) -> Response:
        handlers: dict[str, Callable[[Session, Exchange, Flow, Mapping[str, str]], Response]] = {
            "username": self._on_username,
            "password": self._on_password,
            "mfa_enroll": self._on_mfa,
            "mfa": self._on_mfa,
            "pick": self._on_pick,
            "consent": self._on_consent,
            "device_confirm": self._on_device_confirm,
        }
        handler = handlers.get(flow.step)
        if handler is None:
            raise PageError(MISSING_PARAMETER, f"unknown step {flow.step}", name="flow")
        if flow.step in _SIGNED_IN_STEPS and not any(
            a.user_id == flow.user_id for a in self._session_accounts(session, ex, flow)
        ):
            # Signed out (or the session ended) since this page was shown: the page no longer speaks for
            # anyone, so sign in again.
            flow.step, flow.user_id, flow.amr, flow.auth_time = "username", None, [], None
            return self._username_page(session, ex, flow, flow.upn or "")
        return handler(session, ex, flow, form)

    def _on_username(self, session: Session, ex: Exchange, flow: Flow, form: Mapping[str, str]) -> Response:
        upn = form.get("loginfmt", "").strip().lower()
        if not upn:
            return self._username_page(session, ex, flow, "", error=("", "Enter a valid email address."))
        accounts = self._accounts(session)
        user = None
        if flow.tenant_id is not None:
            user = accounts.find_user(upn, flow.tenant_id)
        else:
            home = accounts.find_home_tenant(upn)
            user = accounts.find_user(upn, home.id) if home is not None else None
        if user is None:
            self._log_failure(session, ex, flow, USER_NOT_FOUND, tenant_id=flow.tenant_id or "", upn=upn)
            # What Entra itself reveals on its username page (AADSTS50034).
            return self._username_page(
                session, ex, flow, upn, error=(str(USER_NOT_FOUND.code), UNKNOWN_USER_TEXT)
            )
        flow.user_id, flow.upn, flow.step = user.object_id, user.user_principal_name, "password"
        return self._password_page(session, ex, flow)

    def _on_password(self, session: Session, ex: Exchange, flow: Flow, form: Mapping[str, str]) -> Response:
        if form.get("back"):
            flow.step, flow.user_id = "username", None
            return self._username_page(session, ex, flow, flow.upn or "")
        accounts = self._accounts(session)
        user = accounts.find_user_by_id(flow.user_id or "")
        check = accounts.verify_password(user, form.get("passwd", ""), ex.address)
        if check is PasswordCheck.WRONG:
            log.info("AADSTS%s wrong password for %s", INVALID_CREDENTIALS.code, flow.user_id)
            self._log_failure(session, ex, flow, INVALID_CREDENTIALS, user=user)
            return self._password_page(
                session, ex, flow, error=(str(INVALID_CREDENTIALS.code), INCORRECT_SIGN_IN_TEXT)
            )
        if check is PasswordCheck.LOCKED:
            log.info("AADSTS%s locked out %s from %s", ACCOUNT_LOCKED.code, flow.user_id, ex.address)
            self._log_failure(session, ex, flow, ACCOUNT_LOCKED, user=user)
            return self._password_page(session, ex, flow, error=(str(ACCOUNT_LOCKED.code), LOCKED_TEXT))
        if check is PasswordCheck.DISABLED:
            self._log_failure(session, ex, flow, USER_DISABLED, user=user)
            raise PageError(USER_DISABLED, f"disabled user {flow.user_id}")
        flow.auth_time, flow.amr, flow.fresh = int(self._ctx.clock.timestamp()), ["pwd"], True
        return self._after_password(session, ex, flow, interactive=True)

    def _after_password(self, session: Session, ex: Exchange, flow: Flow, *, interactive: bool) -> Response:
        """The password is proven (now or earlier in the session): Conditional Access, then the second
        factor if one is due (per-user MFA, the tenant's default, or a policy's grant control)."""
        accounts = self._accounts(session)
        user = self._user(accounts, flow)
        tenant = accounts.find_tenant(user.tenant_id)
        assert tenant is not None
        attempt = self._attempt(session, ex, flow, user.tenant_id)
        decision = self._evaluate(session, attempt, flow, user)
        mfa_required = accounts.mfa_required(user, tenant) or policies_require_mfa(decision)
        if decision is not None and decision.block:
            self._record(
                attempt,
                user,
                catalogue.BLOCKED_BY_CONDITIONAL_ACCESS_REDIRECT,
                decision=decision,
                mfa_required=mfa_required,
            )
            if not interactive:
                raise RedirectError(
                    flow.authorize,
                    catalogue.BLOCKED_BY_CONDITIONAL_ACCESS_REDIRECT,
                    "blocked by Conditional Access",
                )
            return self._blocked_page(session, ex, flow, attempt)
        if decision is not None and decision.reauthenticate and not flow.fresh:
            # Sign-in frequency: the session's password is too old for a policy; ask for it again.
            self._record(
                attempt,
                user,
                catalogue.SIGN_IN_FREQUENCY_EXPIRED,
                decision=decision,
                mfa_required=mfa_required,
            )
            if not interactive:
                raise RedirectError(flow.authorize, catalogue.SIGN_IN_FREQUENCY_EXPIRED, "sign-in frequency")
            flow.step, flow.amr = "password", []
            return self._password_page(session, ex, flow, notice=SIGN_IN_AGAIN_TEXT)
        if mfa_required and "mfa" not in flow.amr:
            if not interactive:
                self._record(
                    attempt,
                    user,
                    INTERACTION_REQUIRED_MFA,
                    reason=INTERACTION_REQUIRED_MFA.format(resource=attempt.resource_id),
                    decision=decision,
                    mfa_required=True,
                )
                raise RedirectError(
                    flow.authorize, INTERACTION_REQUIRED_MFA, "MFA due", resource=attempt.resource_id
                )
            # Entra logs the interrupt before the second factor, then the sign-in that follows it.
            self._record(attempt, user, catalogue.STRONG_AUTH_REQUIRED, decision=decision, mfa_required=True)
            flow.step = "mfa" if accounts.totp_enrolled(user) else "mfa_enroll"
            return self._mfa_page(session, ex, flow, accounts=accounts, user=user)
        return self._signed_in(session, ex, flow, interactive=interactive)

    def _on_mfa(self, session: Session, ex: Exchange, flow: Flow, form: Mapping[str, str]) -> Response:
        accounts = self._accounts(session)
        user = self._user(accounts, flow)
        if flow.step == "mfa" and not accounts.totp_enrolled(user):
            flow.step = "mfa_enroll"
        check = accounts.verify_totp(user, form.get("otc", ""))
        if check is not PasswordCheck.OK:
            log.info("one-time code %s for %s", check.value, user.object_id)
            self._log_failure(
                session,
                ex,
                flow,
                ACCOUNT_LOCKED if check is PasswordCheck.LOCKED else MFA_CODE_INVALID,
                user=user,
                mfa_required=True,
            )
            error = (
                (str(ACCOUNT_LOCKED.code), LOCKED_TEXT)
                if check is PasswordCheck.LOCKED
                else (str(MFA_CODE_INVALID.code), WRONG_CODE_TEXT)
            )
            return self._mfa_page(session, ex, flow, accounts=accounts, user=user, error=error)
        flow.amr = [*flow.amr, "mfa"] if "mfa" not in flow.amr else flow.amr
        flow.fresh = True
        return self._signed_in(session, ex, flow, interactive=True)

    def _on_pick(self, session: Session, ex: Exchange, flow: Flow, form: Mapping[str, str]) -> Response:
        if form.get("other"):
            flow.step = "username"
            return self._username_page(session, ex, flow, "")
        picked = form.get("pick", "").strip().lower()
        for account in self._session_accounts(session, ex, flow):
            if account.upn == picked:
                return self._continue_as(session, ex, flow, account, interactive=True)
        # Not an account of this browser's session (ended meanwhile, or forged): ask for the username.
        flow.step = "username"
        return self._username_page(session, ex, flow, picked)

    # --- after authentication -------------------------------------------------------------------------------

    def _signed_in(self, session: Session, ex: Exchange, flow: Flow, *, interactive: bool) -> Response:
        """The user is authenticated as strongly as required: remember them, then finish the request."""
        accounts = self._accounts(session)
        user = self._user(accounts, flow)
        if flow.tenant_id is not None and user.tenant_id != flow.tenant_id:
            raise PageError(
                USER_IN_OTHER_TENANT,
                f"user {user.object_id} of {user.tenant_id}",
                user=user.user_principal_name,
                idp="Entryway",
                directory=flow.tenant_ref,
                client_id=flow.client_id,
                name=self._client_name(accounts, flow.client_id),
            )
        if flow.fresh:
            sessions = BrowserSessions(session, self._ctx.clock, self._ctx.digester)
            row = sessions.find(ex.session_cookie)
            if row is None:
                ex.set_session, row = sessions.start()
            sessions.add_account(
                row,
                user_id=user.object_id,
                tenant_id=user.tenant_id,
                auth_time=utc_from_timestamp(flow.auth_time or 0),
                amr=flow.amr,
            )
            flow.fresh = False
        if flow.kind == "device":
            return self._device_signed_in(session, ex, flow, accounts, user)
        return self._finish_authorize(session, ex, flow, accounts, user, interactive=interactive)

    def _finish_authorize(
        self,
        session: Session,
        ex: Exchange,
        flow: Flow,
        accounts: Accounts,
        user: UserRow,
        *,
        interactive: bool,
    ) -> Response:
        req = flow.authorize
        if not accounts.has_service_principal(user.tenant_id, req.client_id):
            tenant = accounts.find_tenant(user.tenant_id)
            raise PageError(
                CLIENT_NOT_FOUND,
                f"no service principal in {user.tenant_id}",
                client_id=req.client_id,
                directory=tenant.display_name if tenant else user.tenant_id,
            )
        ledger = Ledger(session, self._ctx.clock, self._ctx.digester)
        needs = self._consent_needed(
            session, ledger, flow, user, on_error=lambda k, d, p: RedirectError(req, k, d, **p)
        )
        if needs is not None and (not flow.consented) and (needs.missing or req.prompt == "consent"):
            if not interactive:
                raise RedirectError(
                    req,
                    CONSENT_REQUIRED,
                    "no consent",
                    client_id=req.client_id,
                    name=self._client_name(accounts, req.client_id),
                )
            flow.step = "consent"
            return self._consent_page(session, ex, flow, accounts, needs)
        code = ledger.issue_authorization_code(
            tenant_id=user.tenant_id,
            client_id=req.client_id,
            user_id=user.object_id,
            redirect_uri=req.redirect_uri,
            scope=req.scope,
            code_challenge=req.code_challenge,
            nonce=req.nonce,
            claims=req.claims,
            auth_time=utc_from_timestamp(flow.auth_time or 0),
            amr=flow.amr,
        )
        self._log_success(session, ex, flow, accounts, user)
        fields = [("code", code), ("client_info", client_info(user.object_id, user.tenant_id))]
        if req.state is not None:
            fields.append(("state", req.state))
        return self._respond(ex, req, fields)

    @staticmethod
    def _asked_resource(
        session: Session,
        tenant_id: str,
        scope: str,
        *,
        on_error: Callable[[Aadsts, str, dict[str, str]], Exception],
    ) -> tuple[Resource, tuple[str, ...]] | None:
        """The one resource a scope names in the tenant and the delegated scopes asked of it (`.default`:
        all it defines); None when only OpenID Connect scopes are asked."""
        try:
            asked = parse_user_scope(scope)
        except OAuthError as error:
            raise on_error(error.kind, error.detail, {"scope": scope}) from error
        if asked.resource is None:
            return None
        identifier, values = asked.resource, asked.values
        resource = SqlDirectory(session.connection()).find_resource(tenant_id, identifier)
        if resource is None:
            tenant = session.get(TenantRow, tenant_id)
            raise on_error(
                RESOURCE_NOT_FOUND,
                f"resource {identifier}",
                {"resource": identifier, "directory": tenant.display_name if tenant else tenant_id},
            )
        if values == (".default",):
            return resource, resource.delegated_scopes
        unknown = [v for v in values if v not in resource.delegated_scopes]
        if unknown:
            raise on_error(INVALID_SCOPE, f"unknown scopes {unknown}", {"scope": scope})
        return resource, values

    def _consent_needed(
        self,
        session: Session,
        ledger: Ledger,
        flow: Flow,
        user: UserRow,
        *,
        on_error: Callable[[Aadsts, str, dict[str, str]], Exception],
    ) -> ConsentNeed | None:
        """The resource and scopes the request asks of the user, and whether consent is missing."""
        asked = self._asked_resource(session, user.tenant_id, flow.scope, on_error=on_error)
        if asked is None:
            return None
        resource, scopes = asked
        missing = not ledger.has_consent(
            tenant_id=user.tenant_id,
            client_id=flow.client_id,
            user_id=user.object_id,
            resource_app_id=resource.app_id,
            scopes=list(scopes),
        )
        return ConsentNeed(resource, tuple(scopes), missing)

    def _on_consent(self, session: Session, ex: Exchange, flow: Flow, form: Mapping[str, str]) -> Response:
        accounts = self._accounts(session)
        user = self._user(accounts, flow)
        if not form.get("accept"):
            if flow.kind == "device":
                self._decline_device(session, flow)
                return self._device_declined_page(session, ex, flow)
            raise RedirectError(flow.authorize, CONSENT_DECLINED, "user declined consent")
        ledger = Ledger(session, self._ctx.clock, self._ctx.digester)
        needs = self._consent_needed(
            session, ledger, flow, user, on_error=lambda k, d, p: PageError(k, d, **p)
        )
        if needs is not None:
            ledger.grant_consent(
                tenant_id=user.tenant_id,
                client_id=flow.client_id,
                user_id=user.object_id,
                resource_app_id=needs.resource.app_id,
                scopes=list(needs.scopes),
            )
        flow.consented = True
        if flow.kind == "device":
            return self._device_signed_in(session, ex, flow, accounts, user)
        return self._finish_authorize(session, ex, flow, accounts, user, interactive=True)

    # --- the device flow (RFC 8628 section 3.3) ----------------------------------------------------------------

    async def devicelogin(self, request: Request) -> Response:
        ex = self._exchange(request)
        if request.method == "GET":
            return self._finish(self._device_code_page(ex, request.query_params.get("otc", "")[:64]), ex)
        form = await self._form(request)
        if form is None:
            return self._bad_form(ex, "unreadable form")
        if ex.new_context or not csrf_valid(self._ctx.digester, ex.context, form.get("csrf")):
            return self._bad_form(ex, "missing or wrong CSRF token")
        code = form.get("otc", "").strip()[:64]
        return await self._run(request, ex, lambda s: self._start_device(s, ex, code))

    def _device_code_page(self, ex: Exchange, code: str, error: tuple[str, str] | None = None) -> Response:
        return self._render(
            ex,
            "device_code.html",
            status=400 if error else 200,
            title="Enter code",
            code=code,
            error=_error_view(error),
        )

    def _start_device(self, session: Session, ex: Exchange, code: str) -> Response:
        ledger = Ledger(session, self._ctx.clock, self._ctx.digester)
        # The ledger reads the code as people type it: any case, spaces, dashes.
        found = ledger.find_device_authorization(code) if code else None
        if found is None:
            log.info("AADSTS%s unknown or expired user code", BAD_VERIFICATION_CODE.code)
            return self._device_code_page(ex, code, (str(BAD_VERIFICATION_CODE.code), BAD_DEVICE_CODE_TEXT))
        tenant_id = self._requested_tenant(session, found.tenant_ref)
        flow = Flow(
            kind="device",
            tenant_ref=found.tenant_ref,
            tenant_id=tenant_id,
            step="username",
            user_code=found.user_code,
            client_id=found.client_id,
            scope=found.scope,
            correlation_id=new_guid(),
            claims=found.claims,
        )
        return self._begin(session, ex, flow, None, None)

    def _device_signed_in(
        self, session: Session, ex: Exchange, flow: Flow, accounts: Accounts, user: UserRow
    ) -> Response:
        if not accounts.has_service_principal(user.tenant_id, flow.client_id):
            tenant = accounts.find_tenant(user.tenant_id)
            raise PageError(
                CLIENT_NOT_FOUND,
                f"no service principal in {user.tenant_id}",
                client_id=flow.client_id,
                directory=tenant.display_name if tenant else user.tenant_id,
            )
        if not flow.confirmed:
            flow.step = "device_confirm"
            return self._page(
                ex,
                "device_confirm.html",
                flow,
                session,
                title=f"Are you trying to sign in to {self._client_name(accounts, flow.client_id)}?",
                identity=flow.upn,
            )
        ledger = Ledger(session, self._ctx.clock, self._ctx.digester)
        needs = self._consent_needed(
            session, ledger, flow, user, on_error=lambda k, d, p: PageError(k, d, **p)
        )
        if needs is not None and needs.missing and not flow.consented:
            flow.step = "consent"
            return self._consent_page(session, ex, flow, accounts, needs)
        approved = ledger.approve_device_authorization(
            flow.user_code or "",
            tenant_id=user.tenant_id,
            user_id=user.object_id,
            auth_time=utc_from_timestamp(flow.auth_time or 0),
            amr=flow.amr,
        )
        if not approved:
            raise PageError(catalogue.DEVICE_CODE_EXPIRED, "device code no longer pending")
        self._log_success(session, ex, flow, accounts, user)
        name = self._client_name(accounts, flow.client_id)
        return self._render(
            ex,
            "message.html",
            title=name,
            tenant_name=self._tenant_name(session, flow),
            paragraphs=[
                f"You have signed in to the {name} application on your device. You may now close this window."
            ],
        )

    def _on_device_confirm(
        self, session: Session, ex: Exchange, flow: Flow, form: Mapping[str, str]
    ) -> Response:
        if flow.kind != "device":
            raise PageError(MISSING_PARAMETER, "device step in a code flow", name="flow")
        if not form.get("continue"):
            self._decline_device(session, flow)
            return self._device_declined_page(session, ex, flow)
        accounts = self._accounts(session)
        flow.confirmed = True
        return self._device_signed_in(session, ex, flow, accounts, self._user(accounts, flow))

    def _decline_device(self, session: Session, flow: Flow) -> None:
        ledger = Ledger(session, self._ctx.clock, self._ctx.digester)
        ledger.decline_device_authorization(flow.user_code or "")
        log.info("AADSTS%s device sign-in declined", AUTHORIZATION_DECLINED.code)

    def _device_declined_page(self, session: Session, ex: Exchange, flow: Flow) -> Response:
        return self._render(
            ex,
            "message.html",
            title="Sign-in cancelled",
            tenant_name=self._tenant_name(session, flow),
            paragraphs=["You cancelled the sign-in on your device. You may now close this window."],
        )

    # --- GET /{tenant}/oauth2/v2.0/logout ---------------------------------------------------------------------

    async def logout(self, request: Request) -> Response:
        ex = self._exchange(request)
        target = request.query_params.get("post_logout_redirect_uri")
        client_id = parse_guid(request.query_params.get("client_id", ""))

        def work(session: Session) -> Response:
            sessions = BrowserSessions(session, self._ctx.clock, self._ctx.digester)
            row = sessions.find(ex.session_cookie)
            if row is not None:
                sessions.end(row)
            ex.clear_session = ex.session_cookie is not None
            if target and self._logout_target_allowed(session, target, client_id):
                return RedirectResponse(target, status_code=302)
            return self._render(
                ex,
                "message.html",
                title="You signed out of your account",
                paragraphs=["It's a good idea to close all browser windows."],
            )

        return await self._run(request, ex, work)

    def _logout_target_allowed(self, session: Session, target: str, client_id: str | None) -> bool:
        """Only a redirect URI some app registered (that app's, when the request names it): never an open
        redirect."""
        accounts = self._accounts(session)
        if client_id is not None:
            app = accounts.find_client_app(client_id)
            return app is not None and app.accepts_redirect_uri(target)
        return any(redirect_uri_matches(uri, target) for uri in accounts.all_redirect_uris())

    # --- GET /error?code=NNNN ------------------------------------------------------------------------------

    async def error_page(self, request: Request) -> Response:
        ex = self._exchange(request)
        raw = request.query_params.get("code", "").strip().upper().removeprefix("AADSTS")
        kinds = [k for k in _CATALOGUE if raw.isdigit() and str(k.code) == raw.lstrip("0")]
        if not kinds:
            response = self._render(
                ex,
                "error.html",
                status=404,
                title="Unknown error code",
                message="We don't know this error code. Check that you copied all of it.",
            )
            return self._finish(response, ex)
        first = kinds[0]
        message = " ".join(dict.fromkeys(k.template for k in kinds))
        response = self._render(
            ex,
            "error.html",
            title=f"AADSTS{first.code}: {first.error}",
            message=message,
            code=first.code,
        )
        return self._finish(response, ex)

    async def stylesheet(self, _request: Request) -> Response:
        return Response(
            self._css,
            media_type="text/css; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    # --- pages ---------------------------------------------------------------------------------------------

    def _username_page(
        self, session: Session, ex: Exchange, flow: Flow, username: str, error: tuple[str, str] | None = None
    ) -> Response:
        return self._page(
            ex,
            "username.html",
            flow,
            session,
            status=400 if error else 200,
            title="Sign in",
            username=username,
            error=_error_view(error),
        )

    def _password_page(
        self,
        session: Session,
        ex: Exchange,
        flow: Flow,
        error: tuple[str, str] | None = None,
        *,
        notice: str | None = None,
    ) -> Response:
        return self._page(
            ex,
            "password.html",
            flow,
            session,
            status=400 if error else 200,
            title="Enter password",
            identity=flow.upn,
            error=_error_view(error),
            notice=notice,
        )

    def _blocked_page(self, session: Session, ex: Exchange, flow: Flow, attempt: PageAttempt) -> Response:
        """Conditional Access blocked the sign-in: Entra's page, and for an authorization request a button
        that takes the error (access_denied, AADSTS53003) back to the app, the way the app expects it."""
        trace_id = new_guid()
        log.info(
            "AADSTS%s blocked by Conditional Access trace_id=%s",
            catalogue.BLOCKED_BY_CONDITIONAL_ACCESS_REDIRECT.code,
            trace_id,
        )
        back: dict[str, Any] | None = None
        if flow.kind == "device":
            # The device's poll ends (authorization_declined) instead of waiting for the code to expire.
            ledger = Ledger(session, self._ctx.clock, self._ctx.digester)
            ledger.decline_device_authorization(flow.user_code or "")
        else:
            req = flow.authorize
            fields = self._error_fields(
                RedirectError(req, catalogue.BLOCKED_BY_CONDITIONAL_ACCESS_REDIRECT, "blocked"),
                trace_id,
                attempt.correlation_id,
            )
            back = _back_to_app(req, fields)
        return self._render(
            ex,
            "blocked.html",
            status=403,
            title=BLOCKED_TITLE,
            tenant_name=self._tenant_name(session, flow),
            identity=flow.upn,
            message=BLOCKED_TEXT,
            code=catalogue.BLOCKED_BY_CONDITIONAL_ACCESS_REDIRECT.code,
            request_id=trace_id,
            trace_id=trace_id,
            correlation_id=attempt.correlation_id,
            app_name=attempt.client_name or attempt.client_id,
            ip_address=attempt.ip,
            back=back,
        )

    def _mfa_page(
        self,
        session: Session,
        ex: Exchange,
        flow: Flow,
        *,
        accounts: Accounts,
        user: UserRow,
        error: tuple[str, str] | None = None,
    ) -> Response:
        status = 400 if error else 200
        if flow.step == "mfa":
            return self._page(
                ex,
                "mfa.html",
                flow,
                session,
                status=status,
                title="Enter code",
                identity=flow.upn,
                error=_error_view(error),
            )
        secret = accounts.pending_totp_secret(user) or accounts.start_totp_enrollment(user)
        tenant = accounts.find_tenant(user.tenant_id)
        issuer = f"Entryway ({tenant.display_name})" if tenant else "Entryway"
        uri = _totp_uri(secret, user.user_principal_name, issuer)
        svg = segno.make(uri, error="m").svg_inline(scale=5, border=2, dark="#000", light="#fff")
        return self._page(
            ex,
            "mfa_enroll.html",
            flow,
            session,
            status=status,
            title="Set up your authenticator app",
            identity=flow.upn,
            # In groups of four, as people type it; whitespace is not part of the key.
            secret_grouped=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
            qr_svg=Markup(svg),  # noqa: S704 - segno's own SVG, built from our own otpauth URI
            error=_error_view(error),
        )

    def _picker_page(
        self, session: Session, ex: Exchange, flow: Flow, candidates: Sequence[SessionAccount]
    ) -> Response:
        flow.step = "pick"
        return self._page(
            ex,
            "picker.html",
            flow,
            session,
            title="Pick an account",
            accounts=[
                {"upn": a.upn, "name": a.name, "initial": (a.name or a.upn)[:1].upper()} for a in candidates
            ],
        )

    def _consent_page(
        self, session: Session, ex: Exchange, flow: Flow, accounts: Accounts, needs: ConsentNeed
    ) -> Response:
        return self._page(
            ex,
            "consent.html",
            flow,
            session,
            title="Permissions requested",
            identity=flow.upn,
            app_name=self._client_name(accounts, flow.client_id),
            scopes=_consent_lines(needs, flow.scope),
        )

    # --- Conditional Access and the sign-in log ---------------------------------------------------------------

    def _attempt(self, session: Session, ex: Exchange, flow: Flow, tenant_id: str) -> PageAttempt:
        app = self._accounts(session).find_client_app(flow.client_id)
        resource_id, resource_name = (
            asked_resource(SqlDirectory(session.connection()), tenant_id, flow.scope)
            if tenant_id
            else ("", "")
        )
        return PageAttempt(
            tenant_id=tenant_id,
            client_id=flow.client_id,
            client_name=app.display_name if app is not None else "",
            public_client=app is not None and app.public_client,
            resource_id=resource_id,
            resource_name=resource_name,
            ip=ex.address,
            user_agent=ex.user_agent,
            protocol=PROTOCOL_DEVICE if flow.kind == "device" else PROTOCOL_AUTHORIZE,
            correlation_id=flow.correlation_id or new_guid(),
        )

    def _evaluate(self, session: Session, attempt: PageAttempt, flow: Flow, user: UserRow) -> Decision | None:
        return evaluate_page_sign_in(
            SqlDirectory(session.connection()),
            attempt,
            user_id=user.object_id,
            upn=user.user_principal_name,
            amr=tuple(flow.amr),
            auth_time=flow.auth_time,
            now=self._ctx.clock.timestamp(),
        )

    def _record(
        self,
        attempt: PageAttempt,
        user: UserRow | None,
        error: Aadsts | None,
        *,
        upn: str = "",
        reason: str | None = None,
        decision: Decision | None = None,
        mfa_required: bool = False,
    ) -> None:
        if self._ctx.sign_in_log is None:
            return
        entry: SignInRecord = page_record(
            attempt,
            user_id=user.object_id if user is not None else None,
            upn=user.user_principal_name if user is not None else upn,
            error=error,
            reason=reason,
            decision=decision,
            mfa_required=mfa_required,
        )
        self._ctx.sign_in_log.record(entry)

    def _log_failure(
        self,
        session: Session,
        ex: Exchange,
        flow: Flow,
        error: Aadsts,
        *,
        user: UserRow | None = None,
        tenant_id: str | None = None,
        upn: str = "",
        mfa_required: bool = False,
    ) -> None:
        """A sign-in that stopped at a page (wrong password, unknown user, wrong code, ...)."""
        if self._ctx.sign_in_log is None:
            return
        if user is None and flow.user_id:
            user = self._accounts(session).find_user_by_id(flow.user_id)
        if tenant_id is None:
            tenant_id = user.tenant_id if user is not None else (flow.tenant_id or "")
        attempt = self._attempt(session, ex, flow, tenant_id)
        self._record(attempt, user, error, upn=upn or flow.upn or "", mfa_required=mfa_required)

    def _log_success(
        self, session: Session, ex: Exchange, flow: Flow, accounts: Accounts, user: UserRow
    ) -> None:
        """The sign-in reached the app: with each policy's result for the factors it ended with."""
        if self._ctx.sign_in_log is None:
            return
        attempt = self._attempt(session, ex, flow, user.tenant_id)
        decision = self._evaluate(session, attempt, flow, user)
        tenant = accounts.find_tenant(user.tenant_id)
        mfa_required = (tenant is not None and accounts.mfa_required(user, tenant)) or policies_require_mfa(
            decision
        )
        self._record(attempt, user, None, decision=decision, mfa_required=mfa_required)

    # --- helpers -------------------------------------------------------------------------------------------

    def _accounts(self, session: Session) -> Accounts:
        return Accounts(session, self._ctx.clock, self._totp_key)

    @staticmethod
    def _user(accounts: Accounts, flow: Flow) -> UserRow:
        user = accounts.find_user_by_id(flow.user_id or "")
        if user is None or not user.account_enabled:
            raise PageError(USER_DISABLED, f"user {flow.user_id} gone or disabled")
        return user

    @staticmethod
    def _client_name(accounts: Accounts, client_id: str) -> str:
        app: ClientApp | None = accounts.find_client_app(client_id)
        return app.display_name if app is not None else client_id


@dataclass(frozen=True)
class SessionAccount:
    user_id: str
    upn: str
    name: str
    tenant_id: str
    auth_time: datetime
    amr: tuple[str, ...]


@dataclass(frozen=True)
class ConsentNeed:
    resource: Resource
    scopes: tuple[str, ...]
    missing: bool


def _resource_scope(req: AuthorizeRequest) -> None:
    """One resource at most, and no scope that names none (the token endpoint's rules, checked early)."""
    try:
        parse_user_scope(req.scope)
    except OAuthError as error:
        raise RedirectError(req, error.kind, error.detail, scope=req.scope) from error


def _code_challenge(
    req: AuthorizeRequest, app: ClientApp, challenge: str | None, method: str | None
) -> str | None:
    """PKCE (RFC 7636): S256 only, and required of public clients, which hold no secret."""
    if challenge is not None or method is not None:
        # RFC 7636 section 4.3: a missing method means "plain", which we do not accept.
        if method != "S256" or challenge is None or not _PKCE_CHALLENGE.match(challenge):
            raise RedirectError(req, PKCE_METHOD_UNSUPPORTED, f"method={method}")
    elif app.public_client:
        raise RedirectError(req, PKCE_REQUIRED, "public client without code_challenge")
    return challenge


def _consent_lines(needs: ConsentNeed, scope: str) -> list[str]:
    lines = [f"{needs.resource.display_name}: {value}" for value in needs.scopes]
    if "offline_access" in split_scope(scope):
        lines.append("Maintain access to data you have given it access to")
    return lines


def _non_negative_int(value: str | None) -> int | None:
    if value is None or not value.isdigit() or len(value) > 10:
        return None
    return int(value)


def _back_to_app(req: AuthorizeRequest, fields: list[tuple[str, str]]) -> dict[str, Any]:
    """The form that carries an error response to the app: posted for form_post, else a GET whose query is
    the redirect URI's own parameters followed by the response's (a GET form replaces the action's query)."""
    if req.response_mode == "form_post":
        return {"method": "post", "action": req.redirect_uri, "fields": fields}
    parts = urlsplit(req.redirect_uri)
    own = parse_qsl(parts.query, keep_blank_values=True)
    return {"method": "get", "action": urlunsplit(parts._replace(query="")), "fields": own + fields}


def _error_view(error: tuple[str, str] | None) -> dict[str, str] | None:
    return None if error is None else {"code": error[0], "message": error[1]}


def _totp_uri(secret: str, account: str, issuer: str) -> str:
    """Google Authenticator's Key Uri Format, which every authenticator app reads."""
    from urllib.parse import quote

    label = quote(f"{issuer}:{account}")
    query = urlencode(
        {"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": "6", "period": "30"}
    )
    return f"otpauth://totp/{label}?{query}"


_CATALOGUE: tuple[Aadsts, ...] = tuple(v for v in vars(catalogue).values() if isinstance(v, Aadsts))
