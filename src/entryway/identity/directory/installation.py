"""Registering what depends on this installation's origins and master key: the DevOps origin's web client
(`first_party.DEVOPS_WEB`), its redirect URIs and the digest of its client secret. Run at every start, after
the first-party apps are ensured; never commits."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from entryway.identity.directory.first_party import DEVOPS_WEB
from entryway.identity.directory.repository import DirectoryRepository
from entryway.kit.clock import Clock
from entryway.kit.secrets import CLIENT_SECRET, SecretDigester
from entryway.store.models import ClientSecretRow

# The web client's one secret has a fixed key id, so that registering it again replaces it, never adds one.
DEVOPS_WEB_SECRET_KEY_ID = "5f0c8e27-93a1-4d6b-b8e4-1a7d2c9f6e30"  # noqa: S105 - a key id, not a secret
# The secret is renewed at every start; this only has to outlive the longest run between two starts.
DEVOPS_WEB_SECRET_LIFETIME = timedelta(days=730)
# Redirect URIs kept for the DevOps origins that registered them (two per origin).
MAX_DEVOPS_WEB_REDIRECT_URIS = 32


def register_devops_web_client(
    session: Session, clock: Clock, digester: SecretDigester, *, devops_origin: str, secret: str
) -> None:
    """Give the DevOps web client its redirect URIs on `devops_origin` and register `secret` (derived from
    the master key by the runtime; never stored) as a keyed digest."""
    repo = DirectoryRepository(session)
    app = repo.find_application(DEVOPS_WEB.app_id)
    if app is None:
        raise RuntimeError("ensure the first-party apps before registering the DevOps web client")
    origin = devops_origin.rstrip("/")
    ours = [origin + path for path in DEVOPS_WEB.devops_redirect_paths]
    # Servers with different DevOps origins may share one database (another host name, a second port): each
    # adds its own, the newest first, and the oldest fall off past the limit.
    others = [uri for uri in app.redirect_uris or [] if uri not in ours]
    uris = [*ours, *others][:MAX_DEVOPS_WEB_REDIRECT_URIS]
    if list(app.redirect_uris or []) != uris:
        app.redirect_uris = uris
    now = clock.now()
    digest = digester.digest(secret)
    row = session.get(ClientSecretRow, DEVOPS_WEB_SECRET_KEY_ID)
    if row is None:
        session.add(
            ClientSecretRow(
                key_id=DEVOPS_WEB_SECRET_KEY_ID,
                application_object_id=app.object_id,
                display_name="derived from the master key",
                hint=secret[len(CLIENT_SECRET.prefix) :][:3],
                digest=digest,
                created_at=now,
                expires_at=now + DEVOPS_WEB_SECRET_LIFETIME,
            )
        )
    else:
        row.digest = digest
        row.expires_at = now + DEVOPS_WEB_SECRET_LIFETIME
    repo.flush()
