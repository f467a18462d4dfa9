"""Token requests, parsed once from the wire (RFC 6749 section 3.2: form-encoded POST bodies)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl

from entryway.identity.protocol.errors import DUPLICATE_PARAMETER, MISSING_PARAMETER, OAuthError

MAX_BODY_BYTES = 256 * 1024
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class UnreadableBody(Exception):
    """The body is not a form Entra would read; the reason is for the log."""


def parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    """Parse a form body strictly: right content type, valid UTF-8, each parameter at most once.

    RFC 6749 section 3.2: "Request and response parameters MUST NOT be included more than once."
    A body Entra would not parse (JSON, wrong encoding) raises `UnreadableBody`; the token endpoint then
    answers as Entra does, that `grant_type` is missing.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != FORM_CONTENT_TYPE:
        raise UnreadableBody(f"content type is '{media_type or 'missing'}'")
    if len(body) > MAX_BODY_BYTES:
        raise UnreadableBody("body too large")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise UnreadableBody(f"body cannot be parsed: {exc}") from exc
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise OAuthError(DUPLICATE_PARAMETER, name=name)
        params[name] = value
    return params


@dataclass(frozen=True)
class TokenRequest:
    """A request to the token endpoint, as the pipeline sees it."""

    endpoint_version: Literal[1, 2]
    tenant_ref: str
    params: Mapping[str, str]
    authorization: str | None = None
    client_address: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        """A parameter's value; empty values count as absent, as Entra treats them."""
        value = self.params.get(name)
        return value if value else None

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise OAuthError(MISSING_PARAMETER, name=name)
        return value
