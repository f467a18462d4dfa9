"""Everything one Entryway process holds: settings, clock, database, keys, and the two applications."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from starlette.applications import Starlette

from entryway.config.settings import Settings
from entryway.devops.pipelines.variables import PIPELINE_VARIABLES_PURPOSE
from entryway.identity.managed.header import identity_header
from entryway.identity.signin.log import SignInLog
from entryway.keys.keyring import DEVOPS_OIDC, KeyEncryptor, Keyring, KeyService, MasterKeyMismatch
from entryway.kit.clock import Clock, SystemClock
from entryway.kit.secrets import CLIENT_SECRET, MasterKey, SecretDigester
from entryway.kit.web import trust_proxies
from entryway.store.db import Database

if TYPE_CHECKING:
    from entryway.identity.web.app import IdentityContext

DIGEST_PURPOSE = "entryway/secret-digest/v1"
TOTP_PURPOSE = "entryway/totp/v1"
# The DevOps web client's secret (devops/portal): recomputed by every process, registered only as a digest.
DEVOPS_WEB_CLIENT_PURPOSE = "entryway/devops-web-client/v1"


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    db: Database
    master_key: MasterKey
    digester: SecretDigester
    keys: KeyService
    keyring: Keyring
    # The DevOps service's pipeline OIDC issuer signs with keys of its own, rotated on their own.
    devops_keys: KeyService
    devops_keyring: Keyring
    # One writer per process, shared by every app built from this runtime; `close` writes what is queued.
    sign_in_log: SignInLog

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None, *, run_migrations: bool = True) -> Runtime:
        clock = clock or SystemClock()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        master_key = MasterKey.load_or_create(settings.data_dir, settings.master_key)
        db = Database.open(settings.db_url, run_migrations=run_migrations)
        encryptor = KeyEncryptor(master_key)
        keys = KeyService(db, encryptor, clock)
        try:
            keys.check_master_key()
        except MasterKeyMismatch:
            db.dispose()
            raise
        if settings.identity_header is None:
            settings = replace(settings, identity_header=identity_header(master_key))
        return cls(
            settings=settings,
            clock=clock,
            db=db,
            master_key=master_key,
            digester=SecretDigester(master_key.derive(DIGEST_PURPOSE)),
            keys=keys,
            keyring=Keyring(db, encryptor, clock),
            devops_keys=KeyService(db, encryptor, clock, DEVOPS_OIDC),
            devops_keyring=Keyring(db, encryptor, clock, DEVOPS_OIDC),
            sign_in_log=SignInLog(db, clock, retention=_retention(settings.sign_in_log_retention_days)),
        )

    @property
    def devops_web_client_secret(self) -> str:
        return CLIENT_SECRET.derive(self.master_key.derive(DEVOPS_WEB_CLIENT_PURPOSE))

    # The web applications are imported when built: administrative commands open a runtime for its database
    # and keys only, and should not pay for importing both services.

    def _identity_context(self) -> IdentityContext:
        from entryway.identity.web.app import IdentityContext

        return IdentityContext(
            origin=self.settings.identity_origin,
            db=self.db,
            keyring=self.keyring,
            digester=self.digester,
            clock=self.clock,
            totp_key=self.master_key.derive(TOTP_PURPOSE),
            # External OIDC issuers (federated credentials) may be served with a certificate from this CA.
            ca_bundle=str(self.settings.ca_bundle),
            sign_in_log=self.sign_in_log,
        )

    def identity_app(self) -> Starlette:
        from entryway.identity.web.app import create_identity_app

        return trust_proxies(create_identity_app(self._identity_context()), self.settings.trusted_proxies)

    def imds_app(self) -> Starlette:
        """The IMDS-compatible managed identity endpoint (plain HTTP, loopback)."""
        from entryway.identity.web.managed_identity import create_imds_app

        return create_imds_app(self._identity_context())

    def app_service_app(self) -> Starlette:
        """The App Service-compatible managed identity endpoint (plain HTTP, loopback)."""
        from entryway.identity.web.managed_identity import create_app_service_app

        assert self.settings.identity_header is not None
        return create_app_service_app(self._identity_context(), self.settings.identity_header)

    def devops_app(self) -> Starlette:
        from entryway.devops.web.app import DevOpsContext, create_devops_app

        app = create_devops_app(
            DevOpsContext(
                identity_origin=self.settings.identity_origin,
                devops_origin=self.settings.devops_origin,
                db=self.db,
                clock=self.clock,
                ca_bundle=str(self.settings.ca_bundle),
                git_root=str(self.settings.data_dir / "git"),
                digester=self.digester,
                web_client_secret=self.devops_web_client_secret,
                oidc_keyring=self.devops_keyring,
                pipeline_variables_key=self.master_key.derive(PIPELINE_VARIABLES_PURPOSE),
            )
        )
        return trust_proxies(app, self.settings.trusted_proxies)

    def close(self) -> None:
        self.sign_in_log.close()
        self.db.dispose()


def _retention(days: int) -> timedelta | None:
    return timedelta(days=days) if days > 0 else None
