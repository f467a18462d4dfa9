"""Azure DevOps' error body: the WrappedException JSON (azure-devops SDK `_models.WrappedException`)."""

from __future__ import annotations

from typing import Any


def wrapped_exception(
    message: str, *, type_name: str, type_key: str, event_id: int = 3000, error_code: int = 0
) -> dict[str, Any]:
    return {
        "$id": "1",
        "innerException": None,
        "message": message,
        "typeName": type_name,
        "typeKey": type_key,
        "errorCode": error_code,
        "eventId": event_id,
    }
