"""Identifiers: GUIDs as Entra and Azure DevOps write them (lower-case, hyphenated)."""

from __future__ import annotations

import secrets
import uuid


def new_guid() -> str:
    return str(uuid.uuid4())


def parse_guid(value: str) -> str | None:
    """Return the canonical form of a GUID, or None when `value` is not one.

    Only the hyphenated 36-character form is accepted, as Entra accepts tenant and client ids.
    """
    if len(value) != 36:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def new_opaque_id(nbytes: int = 16) -> str:
    """A random URL-safe identifier, like Entra's `uti` and `aio` claims."""
    return secrets.token_urlsafe(nbytes)
