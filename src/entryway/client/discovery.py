"""Which Entra tenant an Azure DevOps organization belongs to, found as Git Credential Manager finds it
(devops-wire-contract 1.5): git's `wwwauth[]`, else the per-organization cache, else an unauthenticated HEAD of
the organization URL reading `WWW-Authenticate: Bearer authorization_uri=…` or `X-VSS-ResourceTenant`."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
CACHE_FILE = "git-authorities.json"
REFRESH_FILE = "git-refresh.json"
HEAD_TIMEOUT_SECONDS = 10

# GCM's pattern (AzureReposHostProvider): the value after authorization_uri=, quoted or not.
_AUTHORIZATION_URI = re.compile(r'authorization_uri="?([^",\s]+)"?', re.IGNORECASE)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class DiscoveryError(Exception):
    """Tenant discovery failed; the message says what was tried."""


@dataclass(frozen=True)
class Organization:
    """An Azure DevOps organization as a git remote names it; `url` is what GCM sends its HEAD to."""

    name: str
    url: str

    @property
    def key(self) -> str:
        return self.url.lower()


@dataclass(frozen=True)
class Authority:
    """`https://{host}/{tenant}` as the DevOps service named it."""

    host: str  # scheme://host[:port]
    tenant: str

    @property
    def url(self) -> str:
        return f"{self.host}/{self.tenant}"


def organization_of(protocol: str, host: str, path: str | None, username: str | None) -> Organization | None:
    """The organization of a remote: `{org}.visualstudio.com`, else the first path segment (dev.azure.com and an
    Entryway DevOps origin), else the user name git was given (`https://{org}@dev.azure.com/…` without
    `useHttpPath`). None when the remote names no organization."""
    if protocol not in ("https", "http") or not host:
        return None
    hostname = host.split(":", 1)[0].lower()
    if hostname.endswith(".visualstudio.com"):
        name = hostname.removesuffix(".visualstudio.com")
        return Organization(name, f"{protocol}://{host}") if name and "." not in name else None
    segment = (path or "").lstrip("/").split("/", 1)[0]
    name = segment or (username or "")
    if not name:
        return None
    return Organization(name, f"{protocol}://{host}/{name}")


def parse_authority(value: str) -> Authority | None:
    """`https://login.microsoftonline.com/{tenant}[/…]` -> Authority; None for anything else."""
    parts = urlsplit(value.strip())
    if parts.scheme != "https" or not parts.netloc or parts.query or parts.fragment:
        return None
    tenant = parts.path.strip("/").split("/", 1)[0]
    if not tenant or not re.fullmatch(r"[A-Za-z0-9.\-]+", tenant):
        return None
    return Authority(f"https://{parts.netloc.lower()}", tenant)


def authority_from_wwwauth(challenges: Iterable[str]) -> Authority | None:
    """The first `Bearer authorization_uri=…` among git's `wwwauth[]` values (or WWW-Authenticate headers)."""
    for challenge in challenges:
        if not challenge.strip().lower().startswith("bearer"):
            continue
        match = _AUTHORIZATION_URI.search(challenge)
        if match and (authority := parse_authority(match.group(1))) is not None:
            return authority
    return None


_CLAIMS = re.compile(r'claims="([A-Za-z0-9+/=_\-]+)"', re.IGNORECASE)


def claims_from_wwwauth(challenges: Iterable[str]) -> str | None:
    """The claims of a `Bearer … error="insufficient_claims", claims="<base64 JSON>"` challenge (Entra's
    claims challenge, "Claims challenges, claims requests and client capabilities"), decoded; None when there is
    none or it is not base64 of a JSON object."""
    for challenge in challenges:
        if not challenge.strip().lower().startswith("bearer"):
            continue
        match = _CLAIMS.search(challenge)
        if match is None:
            continue
        encoded = match.group(1).replace("-", "+").replace("_", "/")
        try:
            decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode("utf-8")
            if isinstance(json.loads(decoded), dict):
                return decoded
        except (ValueError, UnicodeDecodeError):
            continue
    return None


def authority_from_resource_tenant(value: str | None, default_host: str) -> Authority | None:
    """GCM's reading of `X-VSS-ResourceTenant`: the first non-empty GUID; a lone all-zero GUID (an MSA-backed
    organization) -> `organizations`."""
    if not value:
        return None
    guids = [v.strip() for v in value.split(",") if _GUID.match(v.strip())]
    for guid in guids:
        if guid != ZERO_GUID:
            return Authority(default_host, guid.lower())
    if guids == [ZERO_GUID]:
        return Authority(default_host, "organizations")
    return None


def discover_authority(
    organization: Organization, *, default_host: str, verify: str | bool = True
) -> Authority:
    """An unauthenticated HEAD of the organization URL (its status is ignored, as GCM ignores it)."""
    try:
        response = requests.head(
            organization.url,
            headers={"X-TFS-FedAuthRedirect": "Suppress"},
            allow_redirects=False,
            timeout=HEAD_TIMEOUT_SECONDS,
            verify=verify,
        )
    except requests.RequestException as exc:
        raise DiscoveryError(
            f"could not find the tenant of organization '{organization.name}': HEAD {organization.url} failed "
            f"({type(exc).__name__}); check the URL, the network and ENTRYWAY_CA_BUNDLE"
        ) from exc
    challenges = response.raw.headers.getlist("WWW-Authenticate") if response.raw is not None else []
    authority = authority_from_wwwauth(challenges) or authority_from_resource_tenant(
        response.headers.get("X-VSS-ResourceTenant"), default_host
    )
    if authority is None:
        raise DiscoveryError(
            f"could not find the tenant of organization '{organization.name}': HEAD {organization.url} answered "
            f"{response.status_code} with neither 'WWW-Authenticate: Bearer authorization_uri=…' nor "
            "'X-VSS-ResourceTenant'; set ENTRYWAY_TENANT"
        )
    return authority


class AuthorityCache:
    """Organization -> authority, one small JSON file (0600) in the client cache directory, written atomically."""

    def __init__(self, cache_dir: Path) -> None:
        self.path = cache_dir / CACHE_FILE

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # missing or damaged: discovery runs again and rewrites it
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}

    def _write(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".git-authorities.", dir=self.path.parent)
        temporary = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            temporary.chmod(0o600)
            temporary.replace(self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise

    def get(self, organization: Organization) -> Authority | None:
        value = self._read().get(organization.key)
        return parse_authority(value) if value else None

    def put(self, organization: Organization, authority: Authority) -> None:
        data = self._read()
        if data.get(organization.key) != authority.url:
            data[organization.key] = authority.url
            self._write(data)

    def drop(self, organization: Organization) -> bool:
        data = self._read()
        if data.pop(organization.key, None) is None:
            return False
        self._write(data)
        return True


class RefreshMarks(AuthorityCache):
    """Organizations whose token the service refused (git ran `erase` after a 401): the next `get` for them
    refreshes instead of answering the cached token again. git 2.39 sends no `wwwauth[]`, so a continuous
    access evaluation challenge reaches the helper only as this `erase`. One small 0600 JSON file."""

    def __init__(self, cache_dir: Path) -> None:
        self.path = cache_dir / REFRESH_FILE

    def mark(self, organization: Organization) -> None:
        data = self._read()
        if organization.key not in data:
            data[organization.key] = "refresh"
            self._write(data)

    def is_marked(self, organization: Organization) -> bool:
        return organization.key in self._read()

    def clear(self, organization: Organization) -> None:
        data = self._read()
        if data.pop(organization.key, None) is not None:
            self._write(data)
