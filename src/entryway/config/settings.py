"""How an Entryway process is set up: where its data lives and where it listens."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_IDENTITY_PORT = 8443
DEFAULT_DEVOPS_PORT = 9443
# The managed identity endpoints: plain HTTP, on loopback only, as Azure's are (IMDS on 169.254.169.254:80,
# App Service on 127.0.0.1 and a port of its choosing). Outside the ephemeral ranges of Linux and Windows.
MANAGED_IDENTITY_BIND = "127.0.0.1"
DEFAULT_IMDS_PORT = 8480
DEFAULT_APP_SERVICE_PORT = 8481


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str = "localhost"  # the name in every URL and in the server certificate
    bind: str = "127.0.0.1"
    identity_port: int = DEFAULT_IDENTITY_PORT
    devops_port: int = DEFAULT_DEVOPS_PORT
    extra_names: tuple[str, ...] = ()
    database_url: str | None = None
    workers: int = 1
    master_key: str | None = None  # base64; otherwise ENTRYWAY_MASTER_KEY or <data_dir>/master.key
    # The IMDS- and App Service-compatible token endpoints, on MANAGED_IDENTITY_BIND whatever `bind` says.
    # A port of None: the default one, or an ephemeral one when another process holds it; 0: ephemeral.
    managed_identity: bool = True
    imds_port: int | None = None
    app_service_port: int | None = None
    # Reverse proxies (CIDR ranges) whose X-Forwarded-For is believed: the client address of a request from one
    # of them is the right-most forwarded address that is not itself a trusted proxy (kit/web.client_address).
    trusted_proxies: tuple[str, ...] = ()
    # Days the sign-in log keeps an entry (Entra: 30 with a P1 or P2 licence); 0 keeps every entry.
    sign_in_log_retention_days: int = 30
    # App Service's IDENTITY_HEADER; Runtime.open derives it from the master key.
    identity_header: str | None = field(default=None, repr=False)

    @property
    def identity_origin(self) -> str:
        return _origin(self.host, self.identity_port)

    @property
    def devops_origin(self) -> str:
        return _origin(self.host, self.devops_port)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'entryway.db'}"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def ca_bundle(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def imds_origin(self) -> str | None:
        """What AZURE_POD_IDENTITY_AUTHORITY_HOST names: the IMDS-compatible endpoint's origin."""
        if not self.managed_identity:
            return None
        return f"http://{MANAGED_IDENTITY_BIND}:{self.imds_port or DEFAULT_IMDS_PORT}"

    @property
    def identity_endpoint(self) -> str | None:
        """App Service's IDENTITY_ENDPOINT: the App Service-compatible token URL."""
        if not self.managed_identity:
            return None
        return f"http://{MANAGED_IDENTITY_BIND}:{self.app_service_port or DEFAULT_APP_SERVICE_PORT}/msi/token"

    def with_ports(self, identity_port: int, devops_port: int) -> Settings:
        return replace(self, identity_port=identity_port, devops_port=devops_port)

    def with_managed_identity_ports(self, imds_port: int, app_service_port: int) -> Settings:
        return replace(self, imds_port=imds_port, app_service_port=app_service_port)


def _origin(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"https://{shown}" if port == 443 else f"https://{shown}:{port}"
