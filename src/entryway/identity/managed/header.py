"""The secret of the App Service-compatible endpoint (IDENTITY_HEADER, sent back as `X-IDENTITY-HEADER`).

App Service mints one per app and hands it to the app's processes in their environment. Entryway derives it
from the master key instead: every worker process has the same value without sharing state, `entryway env`
in another shell prints the value the running server checks, and it survives restarts (a shell that exported
it keeps working). A new master key means a new header; nothing is stored.
"""

from __future__ import annotations

import base64

from entryway.kit.secrets import MasterKey

IDENTITY_HEADER_PURPOSE = "entryway/identity-header/v1"
IDENTITY_HEADER_PREFIX = "ewih_"


def identity_header(master_key: MasterKey) -> str:
    raw = master_key.derive(IDENTITY_HEADER_PURPOSE)
    return IDENTITY_HEADER_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
