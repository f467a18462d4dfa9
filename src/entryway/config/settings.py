"""How an Entryway process is set up: where its data lives and where it listens."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_IDENTITY_PORT = 8443
DEFAULT_DEVOPS_PORT = 9443


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

    def with_ports(self, identity_port: int, devops_port: int) -> Settings:
        return replace(self, identity_port=identity_port, devops_port=devops_port)


def _origin(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"https://{shown}" if port == 443 else f"https://{shown}:{port}"
