"""`git-credential-entryway`: git's credential helper protocol (git-credential(1), "INPUT/OUTPUT FORMAT") for
Azure DevOps remotes, answering the user name and an Entra access token (never a PAT), as Git Credential
Manager's `oauth` credential type does (devops-wire-contract 1.5). Only git's answer goes to stdout."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from entryway.client import DEVOPS_SCOPE, ClientSettings, NeedsLogin, PinnedVerifySession, TokenClient
from entryway.client.credentials import (
    CredentialError,
    load_certificate_credential,
    parse_managed_identity,
)
from entryway.client.discovery import (
    Authority,
    AuthorityCache,
    DiscoveryError,
    Organization,
    RefreshMarks,
    authority_from_wwwauth,
    claims_from_wwwauth,
    discover_authority,
    organization_of,
)

OPERATIONS = ("get", "store", "erase")
MAX_REQUEST_BYTES = 64 * 1024  # git's own requests are a few hundred bytes


class ProtocolError(Exception):
    """What git (or whoever called us) sent is not a credential request."""


class HelperError(Exception):
    """A failure with a message that says what happened and what to do."""


@dataclass(frozen=True)
class CredentialRequest:
    protocol: str = ""
    host: str = ""
    path: str | None = None
    username: str | None = None
    wwwauth: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    other: Mapping[str, str] = field(default_factory=dict)


def parse_request(lines: Iterable[str]) -> CredentialRequest:
    """`key=value` lines up to a blank line or the end; `wwwauth[]` and `capability[]` repeat; `url=` is split
    into its parts as git does; unknown keys are kept but not used."""
    fields: dict[str, str] = {}
    wwwauth: list[str] = []
    capabilities: list[str] = []
    size = 0
    for raw in lines:
        size += len(raw)
        if size > MAX_REQUEST_BYTES:
            raise ProtocolError(f"the request is longer than {MAX_REQUEST_BYTES} bytes")
        line = raw.removesuffix("\n")
        if line == "":
            break
        if "\0" in line:
            raise ProtocolError("a line holds a NUL byte")
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise ProtocolError(f"a line is not key=value: {line[:40]!r}")
        if key == "wwwauth[]":
            wwwauth.append(value)
        elif key == "capability[]":
            capabilities.append(value)
        else:
            fields[key] = value
    if "url" in fields:
        _apply_url(fields, fields.pop("url"))
    known = {"protocol", "host", "path", "username", "password"}
    return CredentialRequest(
        protocol=fields.get("protocol", "").lower(),
        host=fields.get("host", ""),
        path=fields.get("path"),
        username=fields.get("username"),
        wwwauth=tuple(wwwauth),
        capabilities=tuple(capabilities),
        other={k: v for k, v in fields.items() if k not in known},
    )


def _apply_url(fields: dict[str, str], url: str) -> None:
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if not parts.scheme:
        raise ProtocolError("url= has no scheme")
    fields["protocol"] = parts.scheme
    if parts.hostname:
        fields["host"] = parts.hostname + (f":{parts.port}" if parts.port else "")
    if parts.username:
        fields["username"] = unquote(parts.username)
    if parts.path.strip("/"):
        fields["path"] = parts.path.lstrip("/")


def format_answer(values: Mapping[str, str]) -> str:
    for key, value in values.items():
        if "\n" in value or "\0" in value or "\n" in key or "=" in key:
            raise HelperError(f"refusing to answer a value with a newline or NUL in '{key}'")
    return "".join(f"{key}={value}\n" for key, value in values.items())


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def find_authority(
    request: CredentialRequest,
    organization: Organization,
    cache: AuthorityCache,
    *,
    authority_host: str,
    verify: str | bool,
) -> Authority:
    """wwwauth[] first, then the cache, then the HEAD; refuses an authority on another host than the one
    configured (ENTRYWAY_AUTHORITY), so a remote cannot send the user's sign-in to a host of its choosing."""
    authority = authority_from_wwwauth(request.wwwauth) or cache.get(organization)
    if authority is None:
        authority = discover_authority(organization, default_host=authority_host, verify=verify)
    if authority.host.rstrip("/").lower() != authority_host.rstrip("/").lower():
        raise HelperError(
            f"organization '{organization.name}' names the authority {authority.url}, not one on "
            f"{authority_host}; set ENTRYWAY_AUTHORITY={authority.host} if you trust it"
        )
    cache.put(organization, authority)
    return authority


def answer_get(request: CredentialRequest, organization: Organization, environ: Mapping[str, str]) -> str:
    settings = ClientSettings.from_env(environ)
    verify: str | bool = settings.ca_bundle or True
    claims = claims_from_wwwauth(request.wwwauth)
    managed_identity = _managed_identity_answer(environ, settings, claims)
    if managed_identity is not None:
        return managed_identity
    service_principal = _service_principal_answer(
        environ, settings.authority_host, verify, claims=claims, capabilities=settings.client_capabilities
    )
    if service_principal is not None:
        return service_principal
    try:
        authority = find_authority(
            request,
            organization,
            AuthorityCache(settings.cache_dir),
            authority_host=settings.authority_host,
            verify=verify,
        )
    except DiscoveryError as exc:
        raise HelperError(str(exc)) from exc
    return _signed_in_answer(authority, organization, settings, claims)


def _signed_in_answer(
    authority: Authority, organization: Organization, settings: ClientSettings, claims: str | None
) -> str:
    """The signed-in user's token for the organization's tenant, from `entryway login`'s cache, refreshed when
    less than five minutes are left (so a long clone never starts with a dying token), asked again with the
    claims of the service's claims challenge, or refreshed because the service refused the last one (erase)."""
    marks = RefreshMarks(settings.cache_dir)
    force = marks.is_marked(organization)
    try:
        token = TokenClient(settings).acquire_silent(
            [DEVOPS_SCOPE], tenant=authority.tenant, claims=claims, force_refresh=force
        )
    except NeedsLogin as exc:
        raise HelperError(
            f"{exc} (or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET for a service principal)"
        ) from exc
    if force:
        marks.clear(organization)
    return format_answer(
        {"username": token.username, "password": token.token, "password_expiry_utc": str(token.expires_on)}
    )


def _managed_identity_answer(
    environ: Mapping[str, str], settings: ClientSettings, claims: str | None
) -> str | None:
    """CI on an Azure VM, App Service or anywhere with Entryway's IMDS: ENTRYWAY_GIT_MANAGED_IDENTITY (true or
    system, a client ID, a resource ID; AZURE_CLIENT_ID names a user-assigned one with `true`); msal finds the
    endpoint as it always does (AZURE_POD_IDENTITY_AUTHORITY_HOST / IMDS, or IDENTITY_ENDPOINT)."""
    value = _env(environ, "ENTRYWAY_GIT_MANAGED_IDENTITY")
    if value is None:
        return None
    clash = [
        name
        for name in ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE")
        if _env(environ, name)
    ]
    if clash:
        raise HelperError(
            f"ENTRYWAY_GIT_MANAGED_IDENTITY and {clash[0]} are both set; keep the one this job should use"
        )
    try:
        selector, identity = parse_managed_identity(value, _env(environ, "AZURE_CLIENT_ID"))
    except CredentialError as exc:
        raise HelperError(str(exc)) from exc
    try:
        token = TokenClient(settings).managed_identity_token(
            [DEVOPS_SCOPE], selector=selector, identity=identity, claims=claims
        )
    except NeedsLogin as exc:
        raise HelperError(str(exc)) from exc
    return format_answer(
        {
            "username": identity or "systemAssignedIdentity",
            "password": token.token,
            "password_expiry_utc": str(token.expires_on),
        }
    )


def _service_principal_answer(
    environ: Mapping[str, str],
    authority_host: str,
    verify: str | bool,
    *,
    claims: str | None = None,
    capabilities: list[str] | None = None,
) -> str | None:
    """CI: AZURE_CLIENT_ID + AZURE_TENANT_ID with AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH (a
    service principal) or
    AZURE_FEDERATED_TOKEN_FILE (workload identity: the file's token as the client assertion, read on every
    `get` since the platform rotates it), azure-identity's names; asked for on every `get`, never stored."""
    client_id, tenant = _env(environ, "AZURE_CLIENT_ID"), _env(environ, "AZURE_TENANT_ID")
    secret = _env(environ, "AZURE_CLIENT_SECRET")
    certificate_path = _env(environ, "AZURE_CLIENT_CERTIFICATE_PATH")
    token_file = _env(environ, "AZURE_FEDERATED_TOKEN_FILE")
    given = next(
        (
            name
            for name, value in (
                ("AZURE_CLIENT_SECRET", secret),
                ("AZURE_CLIENT_CERTIFICATE_PATH", certificate_path),
                ("AZURE_FEDERATED_TOKEN_FILE", token_file),
            )
            if value is not None
        ),
        None,
    )
    if given is None:
        return None
    if client_id is None or tenant is None:
        raise HelperError(f"{given} is set but AZURE_CLIENT_ID or AZURE_TENANT_ID is not; set both")
    credential: str | dict[str, str]
    if secret is not None:
        credential = secret
    elif certificate_path is not None:
        credential = _certificate_credential(
            Path(certificate_path), environ.get("AZURE_CLIENT_CERTIFICATE_PASSWORD") or None
        )
    else:
        assert token_file is not None
        try:
            assertion = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise HelperError(
                f"AZURE_FEDERATED_TOKEN_FILE {token_file} cannot be read ({exc.strerror or exc})"
            ) from exc
        if not assertion:
            raise HelperError(f"AZURE_FEDERATED_TOKEN_FILE {token_file} is empty")
        credential = {"client_assertion": assertion}
    import msal

    http = PinnedVerifySession()
    http.verify = verify
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=f"{authority_host.rstrip('/')}/{tenant}",
        instance_discovery=False,
        http_client=http,
        client_capabilities=capabilities,
    )
    result = app.acquire_token_for_client(scopes=[DEVOPS_SCOPE], claims_challenge=claims)
    if "access_token" not in result:
        code = (result.get("error_description") or result.get("error") or "no answer").split("\n", 1)[0]
        raise HelperError(f"the service principal {client_id} could not get a token: {code}")
    expires_on = int(result.get("expires_on") or 0) or None
    answer = {"username": client_id, "password": str(result["access_token"])}
    if expires_on:
        answer["password_expiry_utc"] = str(expires_on)
    return format_answer(answer)


def _certificate_credential(path: Path, password: str | None) -> dict[str, str]:
    """A PEM file holding the private key and its certificate (or a PKCS#12 file), its key optionally
    protected by AZURE_CLIENT_CERTIFICATE_PASSWORD, as azure-identity's EnvironmentCredential reads
    AZURE_CLIENT_CERTIFICATE_PATH; msal signs the client assertion with it."""
    try:
        return load_certificate_credential(path, password)
    except CredentialError as exc:
        raise HelperError(f"AZURE_CLIENT_CERTIFICATE_PATH: {exc}") from exc


def run(
    argv: Sequence[str], stdin: TextIO, stdout: TextIO, stderr: TextIO, environ: Mapping[str, str]
) -> int:
    if len(argv) != 1 or argv[0] not in OPERATIONS:
        stderr.write(
            "usage: git-credential-entryway get|store|erase (git runs it; see 'entryway git setup')\n"
        )
        return 2
    try:
        request = parse_request(stdin)
    except ProtocolError as exc:
        stderr.write(f"git-credential-entryway: {exc}\n")
        return 1
    organization = organization_of(request.protocol, request.host, request.path, request.username)
    if organization is None:
        return 0  # not an Azure DevOps remote we can name: git asks its next helper
    operation = argv[0]
    try:
        if operation == "get":
            stdout.write(answer_get(request, organization, environ))
        elif operation == "erase":
            cache_dir = ClientSettings.from_env(environ).cache_dir
            AuthorityCache(cache_dir).drop(organization)
            RefreshMarks(cache_dir).mark(organization)
        # store: nothing is kept; the token is asked for again on every get.
    except HelperError as exc:
        stderr.write(f"git-credential-entryway: {exc}\n")
        return 1
    stdout.flush()
    return 0


def main() -> None:
    sys.exit(run(sys.argv[1:], sys.stdin, sys.stdout, sys.stderr, os.environ))
