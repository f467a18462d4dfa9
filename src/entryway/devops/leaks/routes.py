"""`POST /_apis/secretscanning/leakedtokens`: leaked-token reports from secret-scanning partners, in GitHub's
partner program shape, on the DevOps origin (not under an organization: a token names its own).

Authentication is the report's signature (`Github-Public-Key-Identifier`, `Github-Public-Key-Signature`: ECDSA
P-256 / SHA-256 over the raw body) by a registered reporter's key. Order of checks, each answered before any
write: the headers and a known key identifier (401), the body's size (400), the signature over the exact bytes
received (401), the body's shape (400). A report that passes is processed in one unit of work; the answer is
GitHub's feedback array, one item per reported token, with the token's SHA-256 rather than the token.
"""

from __future__ import annotations

import logging

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from entryway.devops.audit.recorder import Actor
from entryway.devops.leaks.service import (
    LeakReporterService,
    LeakReportService,
    MalformedReport,
    Reporter,
    parse_report,
)
from entryway.devops.web.errors import wrapped_exception
from entryway.devops.web.routing import DevOpsRouter
from entryway.kit.web import BodyTooLarge, JsonResponse, client_address, read_body

log = logging.getLogger("entryway.devops.leaks")

LEAKED_TOKENS_PATH = "/_apis/secretscanning/leakedtokens"
KEY_ID_HEADER = "Github-Public-Key-Identifier"
SIGNATURE_HEADER = "Github-Public-Key-Signature"
MAX_REPORT_BODY = 1024 * 1024

_COMMON = "Microsoft.VisualStudio.Services.Common"
UNVERIFIED = "The report is not signed by a registered leak reporter."


def unverified() -> Response:
    """401 for a report whose signer we cannot establish; the reason goes to the log only."""
    body = wrapped_exception(
        UNVERIFIED,
        type_name=f"{_COMMON}.VssUnauthorizedException, {_COMMON}",
        type_key="VssUnauthorizedException",
    )
    response = JsonResponse(body, status_code=401)
    # RFC 9110 section 11.6.1: a 401 names how to authenticate; here, the two headers GitHub sends.
    response.headers["WWW-Authenticate"] = (
        f'{SIGNATURE_HEADER} realm="leaked tokens", key-id-header="{KEY_ID_HEADER}"'
    )
    return response


def malformed(message: str) -> Response:
    body = wrapped_exception(
        message,
        type_name=f"{_COMMON}.VssServiceException, {_COMMON}",
        type_key="VssServiceException",
    )
    return JsonResponse(body, status_code=400)


class _LeakedTokensApi:
    def __init__(self, router: DevOpsRouter) -> None:
        self.router = router
        self.ctx = router.ctx

    async def report(self, request: Request) -> Response:
        verified = await self.verified(request)
        if isinstance(verified, Response):
            return verified
        reporter, body = verified
        try:
            tokens = parse_report(orjson.loads(body))
        except orjson.JSONDecodeError:
            return malformed("The report is not JSON.")
        except MalformedReport as exc:
            return malformed(f"The report is malformed: {exc}")
        actor = self.actor_of(request, reporter)
        outcomes = await self.router.write(
            lambda s: LeakReportService(s, self.ctx.clock, self.ctx.digester).process(reporter, tokens, actor)
        )
        log.info(
            "leak report from %s: %s",
            reporter.name,
            ", ".join(f"{o.outcome.value}:{o.authorization_id or '-'}" for o in outcomes),
        )
        return JsonResponse([o.feedback() for o in outcomes])

    async def verified(self, request: Request) -> tuple[Reporter, bytes] | Response:
        """The registered reporter whose key signed exactly the body received, and the body; or the refusal."""
        key_id = request.headers.get(KEY_ID_HEADER, "").strip()
        signature = request.headers.get(SIGNATURE_HEADER, "").strip()
        address = client_address(request)
        if not key_id or not signature:
            log.info("leak report from %s refused: no key identifier or signature", address)
            return unverified()
        reporter = await self.router.read(lambda s: LeakReporterService(s, self.ctx.clock).find(key_id))
        if reporter is None:
            log.info("leak report from %s refused: unknown key identifier %r", address, key_id[:128])
            return unverified()
        try:
            body = await read_body(request, MAX_REPORT_BODY)
        except BodyTooLarge:
            log.info(
                "leak report from %s (%s) refused: larger than %d bytes",
                address,
                reporter.name,
                MAX_REPORT_BODY,
            )
            return malformed(f"The report is larger than {MAX_REPORT_BODY} bytes.")
        if not reporter.verifies(body, signature):
            log.info(
                "leak report from %s refused: bad signature for key %s (%s)", address, key_id, reporter.name
            )
            return unverified()
        return reporter, body

    @staticmethod
    def actor_of(request: Request, reporter: Reporter) -> Actor:
        return Actor(
            None,
            f"{reporter.name} (leak reporter)",
            credential_kind="signature",
            client_address=client_address(request),
            method=request.method,
            path=request.url.path[:1024],
        )


def leaks_routes(router: DevOpsRouter) -> list[BaseRoute]:
    api = _LeakedTokensApi(router)
    return [Route(LEAKED_TOKENS_PATH, api.report, methods=["POST"])]
