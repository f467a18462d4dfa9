"""Token acquisition on the user's machine, for `entryway login`/`token` and the git credential helper.

msal underneath, with one persistent token cache per user (a file only that user can read; see
docs/client-tools.md). The same code serves Entryway and Microsoft's own identity platform: the authority
host is a setting.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msal
import requests

from entryway.client.credentials import (
    CredentialError,
    load_certificate_credential,
    read_federated_token,
)

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
DEVOPS_RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
DEVOPS_SCOPE = f"{DEVOPS_RESOURCE}/.default"
CACHE_FILE = "msal_token_cache.json"
SERVICE_PRINCIPALS_FILE = "service_principals.json"  # like the Azure CLI's service_principal_entries.json
MULTI_TENANT = ("organizations", "common", "consumers")
# What the browser shows on msal's loopback listener once the answer arrived ($error… are msal's placeholders).
LOOPBACK_SUCCESS = (
    "<html><body><h1>Signed in</h1><p>entryway has your sign-in. You can close this tab and go back to "
    "the terminal.</p></body></html>"
)
LOOPBACK_ERROR = (
    "<html><body><h1>Sign-in failed</h1><p>$error: $error_description</p><p>Go back to the terminal for "
    "what to do next.</p></body></html>"
)


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "entryway"


@dataclass(frozen=True)
class ClientSettings:
    authority_host: str
    tenant: str
    client_id: str
    ca_bundle: str | None
    cache_dir: Path
    # Declare the "CP1" client capability (continuous access evaluation: the client handles claims
    # challenges), as the Azure CLI does; ENTRYWAY_DISABLE_CP1 turns it off like AZURE_IDENTITY_DISABLE_CP1.
    cp1: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientSettings:
        """Settings from ENTRYWAY_* variables (see docs/client-tools.md); `overrides` that are None are ignored."""
        env = os.environ if environ is None else environ
        settings = cls(
            authority_host=(env.get("ENTRYWAY_AUTHORITY") or MICROSOFT_AUTHORITY).rstrip("/"),
            tenant=env.get("ENTRYWAY_TENANT") or "organizations",
            client_id=env.get("ENTRYWAY_CLIENT_ID") or AZURE_CLI_CLIENT_ID,
            ca_bundle=env.get("ENTRYWAY_CA_BUNDLE") or env.get("REQUESTS_CA_BUNDLE") or None,
            cache_dir=Path(env["ENTRYWAY_CACHE_DIR"])
            if env.get("ENTRYWAY_CACHE_DIR")
            else default_cache_dir(env),
            cp1=(env.get("ENTRYWAY_DISABLE_CP1") or "").strip().lower() not in ("1", "true", "yes"),
        )
        given = {name: value for name, value in overrides.items() if value is not None}
        if "authority_host" in given:
            given["authority_host"] = str(given["authority_host"]).rstrip("/")
        if "cache_dir" in given:
            given["cache_dir"] = Path(given["cache_dir"])
        return replace(settings, **given)

    def authority(self, tenant: str | None = None) -> str:
        return f"{self.authority_host}/{tenant or self.tenant}"

    @property
    def client_capabilities(self) -> list[str] | None:
        return ["CP1"] if self.cp1 else None

    @property
    def is_microsoft(self) -> bool:
        return self.authority_host == MICROSOFT_AUTHORITY


class NeedsLogin(Exception):
    """No usable account or refresh token: the message says what happened and what to run."""


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_on: int
    tenant_id: str
    username: str


@dataclass(frozen=True)
class Account:
    username: str
    tenant_id: str
    home_account_id: str
    environment: str
    account_type: str  # "user" (msal's MSSTS) or whatever msal records


class TokenCacheFile:
    """msal's SerializableTokenCache kept in one file: mode 0600 in a 0700 directory, written atomically.

    msal-extensions' encrypted persistence needs libsecret on Linux (and a desktop session); a plain
    0600 file is what works everywhere, as the Azure CLI does on Linux.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / CACHE_FILE
        self.cache = msal.SerializableTokenCache()
        self._lock = threading.Lock()
        if self.path.exists():
            try:
                self.cache.deserialize(self.path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise NeedsLogin(
                    f"The token cache {self.path} is not readable ({exc}); delete it and run `entryway login`."
                ) from exc

    def save(self) -> None:
        with self._lock:
            if not self.cache.has_state_changed:
                return
            _write_private(self.directory, self.path, self.cache.serialize())
            self.cache.has_state_changed = False


def _write_private(directory: Path, path: Path, text: str) -> None:
    """Write `text` to `path` atomically, mode 0600, in a 0700 directory."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    fd, name = tempfile.mkstemp(dir=directory, prefix=".entryway-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(name).replace(path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


class PinnedVerifySession(requests.Session):
    """A requests session whose own `verify` wins over REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE: requests lets those
    variables replace a session's bundle, so a machine-wide REQUESTS_CA_BUNDLE would silently override
    ENTRYWAY_CA_BUNDLE."""

    def merge_environment_settings(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        merged: dict[str, Any] = super().merge_environment_settings(*args, **kwargs)
        requested = kwargs.get("verify", args[3] if len(args) > 3 else None)
        if requested in (None, True) and self.verify not in (None, True):
            merged["verify"] = self.verify
        return merged


def http_session(settings: ClientSettings) -> requests.Session:
    session = PinnedVerifySession()
    if settings.ca_bundle:
        session.verify = settings.ca_bundle
    return session


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (for display and expiry only); {} when it is not one."""
    try:
        payload = token.split(".")[1]
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


# What a person does about the token endpoint's answer, by AADSTS code (entra-wire-contract 5 and 9).
_ADVICE = {
    65001: "consent is required: run `entryway login` (the browser asks for it) or ask an administrator to "
    "grant consent for the app",
    50076: "multi-factor authentication is required: run `entryway login` again",
    50079: "you must enroll in multi-factor authentication: run `entryway login` again and follow the pages",
    53003: "blocked by Conditional Access: ask your administrator (signing in again will not help)",
    50173: "a fresh sign-in is needed: run `entryway login` again",
    70043: "the sign-in is older than your organization's sign-in frequency: run `entryway login` again",
    50057: "the account is disabled: ask your administrator",
}


def error_codes(result: Mapping[str, Any]) -> list[int]:
    codes = result.get("error_codes") or []
    return [int(code) for code in codes if isinstance(code, int | str) and str(code).isdigit()]


def advice_for(result: Mapping[str, Any], default: str) -> str:
    """What to do about a refusal: the advice for the first AADSTS code we know, else `default`."""
    return next((_ADVICE[code] for code in error_codes(result) if code in _ADVICE), default)


def decode_claims_challenge(value: str) -> str:
    """A claims challenge as a resource sends it (`claims="<base64 JSON>"` in WWW-Authenticate, and as
    `az login --claims-challenge` takes it; standard or URL-safe base64, padding optional) or as plain JSON ->
    the JSON text msal passes on. ValueError naming what is wrong."""
    text = value.strip()
    if not text.startswith("{"):
        encoded = text.replace("-", "+").replace("_", "/")
        try:
            text = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError("the claims challenge is not base64 (nor JSON)") from exc
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise ValueError("the claims challenge is not JSON once decoded") from exc
    if not isinstance(parsed, dict) or not parsed:
        raise ValueError("the claims challenge is not a JSON object with claims in it")
    return json.dumps(parsed, separators=(",", ":"))


def describe_error(result: Mapping[str, Any]) -> str:
    error = str(result.get("error") or "error")
    description = str(result.get("error_description") or "").strip()
    first = description.splitlines()[0] if description else ""
    return f"{error}: {first}" if first else error


class TokenClient:
    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.cache_file = TokenCacheFile(settings.cache_dir)
        self.http = http_session(settings)
        self._apps: dict[str, msal.PublicClientApplication] = {}

    def app(self, tenant: str | None = None) -> msal.PublicClientApplication:
        authority = self.settings.authority(tenant)
        app = self._apps.get(authority)
        if app is None:
            app = msal.PublicClientApplication(
                self.settings.client_id,
                authority=authority,
                token_cache=self.cache_file.cache,
                http_client=self.http,
                instance_discovery=self.settings.is_microsoft,
                client_capabilities=self.settings.client_capabilities,
            )
            self._apps[authority] = app
        return app

    def save(self) -> None:
        self.cache_file.save()

    def login_interactive(
        self,
        scopes: list[str],
        *,
        tenant: str | None = None,
        claims: str | None = None,
        timeout: float | None = None,
        on_browser: Callable[[], None] | None = None,
        on_no_browser: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Authorization code + PKCE with the system browser ($BROWSER) and msal's loopback listener on
        http://localhost:{ephemeral port}, the answer form-posted to it (entra-wire-contract 6), as `az login`
        does. msal's result (tokens cached, or `error`); `on_no_browser` gets the URL when none could open."""
        try:
            result = self.app(tenant).acquire_token_interactive(
                scopes,
                prompt="select_account",
                claims_challenge=claims,
                timeout=timeout,
                on_before_launching_ui=(lambda **_: on_browser()) if on_browser else None,
                auth_uri_callback=on_no_browser,
                success_template=LOOPBACK_SUCCESS,
                error_template=LOOPBACK_ERROR,
            )
        except RuntimeError as exc:  # msal's listener: "Timeout. No auth response arrived." and the like
            result = {"error": "timeout", "error_description": str(exc) or type(exc).__name__}
        self.save()
        return dict(result or {"error": "no_response"})

    def accounts(self) -> list[Account]:
        raw = list(self.cache_file.cache.search(msal.TokenCache.CredentialType.ACCOUNT))
        host = urlsplit(self.settings.authority_host).hostname  # msal records the host without the port
        found = []
        for entry in raw:
            if entry.get("environment") != host:
                continue
            found.append(
                Account(
                    username=str(entry.get("username", "")),
                    tenant_id=str(entry.get("realm", "")),
                    home_account_id=str(entry.get("home_account_id", "")),
                    environment=str(entry.get("environment", "")),
                    account_type=str(entry.get("authority_type", "")),
                )
            )
        return sorted(found, key=lambda account: (account.username, account.tenant_id))

    # --- Service principals (a secret kept, like the Azure CLI's, in a 0600 file next to the cache) ---

    @property
    def _principals_path(self) -> Path:
        return self.settings.cache_dir / SERVICE_PRINCIPALS_FILE

    def service_principals(self) -> list[dict[str, str]]:
        if not self._principals_path.exists():
            return []
        entries = json.loads(self._principals_path.read_text(encoding="utf-8"))
        host = self.settings.authority_host
        return [e for e in entries if isinstance(e, dict) and e.get("authority") == host]

    def _write_principals(self, entries: list[dict[str, str]]) -> None:
        everyone = []
        if self._principals_path.exists():
            everyone = [
                e
                for e in json.loads(self._principals_path.read_text(encoding="utf-8"))
                if e.get("authority") != self.settings.authority_host
            ]
        _write_private(
            self.settings.cache_dir, self._principals_path, json.dumps(everyone + entries, indent=2)
        )

    def _principal_credential(self, entry: Mapping[str, str]) -> str | dict[str, str]:
        """What msal authenticates the app with, read again on every use: a certificate's password comes from
        the environment variable named at login (never written down), a federated token file is re-read (the
        platform that issues it rotates it)."""
        kind = entry.get("kind", "secret")
        try:
            if kind == "secret":
                return entry["secret"]
            if kind == "certificate":
                password = None
                if entry.get("password_env"):
                    password = os.environ.get(entry["password_env"])
                    if password is None:
                        raise NeedsLogin(
                            f"The certificate of service principal {entry['client_id']} is password-protected "
                            f"and {entry['password_env']} is not set; set it (or run `entryway login "
                            "--service-principal --certificate` again)."
                        )
                return load_certificate_credential(Path(entry["certificate"]), password)
            if kind == "federatedToken":
                token = entry.get("federated_token") or read_federated_token(
                    "@" + entry["federated_token_file"]
                )
                return {"client_assertion": token}
        except CredentialError as exc:
            raise NeedsLogin(f"{exc}; fix it and run `entryway login --service-principal` again.") from exc
        raise NeedsLogin(
            f"Unknown credential kind '{kind}' in {self._principals_path}; run `entryway login` again."
        )

    def _principal_token(
        self,
        entry: Mapping[str, str],
        scopes: list[str],
        *,
        fresh: bool = False,
        claims: str | None = None,
    ) -> AccessToken:
        # fresh: from the token endpoint, not the cache (login checks the credential it was given).
        cache = msal.SerializableTokenCache() if fresh else self.cache_file.cache
        if entry.get("kind") == "managedIdentity":
            return self._managed_identity_token(entry, scopes, cache, claims)
        app = msal.ConfidentialClientApplication(
            entry["client_id"],
            client_credential=self._principal_credential(entry),
            authority=self.settings.authority(entry["tenant"]),
            token_cache=cache,
            http_client=self.http,
            instance_discovery=self.settings.is_microsoft,
            client_capabilities=self.settings.client_capabilities,
        )
        result = app.acquire_token_for_client(scopes=scopes, claims_challenge=claims)
        self.save()
        if "access_token" not in result:
            what = {"certificate": "certificate", "federatedToken": "federated token"}.get(
                entry.get("kind", "secret"), "secret"
            )
            raise NeedsLogin(
                f"The service principal {entry['client_id']} could not get a token ({describe_error(result)}); "
                f"{advice_for(result, f'check its {what} and run `entryway login --service-principal` again')}."
            )
        return token_of(result, fallback_tenant=entry["tenant"], username=entry["client_id"])

    def _managed_identity_token(
        self,
        entry: Mapping[str, str],
        scopes: list[str],
        cache: msal.SerializableTokenCache,
        claims: str | None,
    ) -> AccessToken:
        """msal's ManagedIdentityClient: IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST, else 169.254.169.254) or the
        App Service endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER), as msal and azure-identity find them."""
        selector = entry.get("selector", "system")
        identity: msal.SystemAssignedManagedIdentity | msal.UserAssignedManagedIdentity
        if selector == "system":
            identity = msal.SystemAssignedManagedIdentity()
        else:
            identity = msal.UserAssignedManagedIdentity(**{selector: entry["identity"]})
        client = msal.ManagedIdentityClient(
            identity,
            http_client=requests.Session(),  # plain HTTP on the link-local / loopback endpoint
            token_cache=cache,
            client_capabilities=self.settings.client_capabilities,
        )
        resource = scopes[0].removesuffix("/.default")
        try:
            result = client.acquire_token_for_client(resource=resource, claims_challenge=claims)
        except (requests.RequestException, msal.ManagedIdentityError, ValueError) as exc:
            result = {"error": "managed_identity_unavailable", "error_description": str(exc)}
        self.save()
        if "access_token" not in result:
            raise NeedsLogin(
                f"The managed identity ({entry['client_id']}) could not get a token ({describe_error(result)}); "
                "is this machine's managed identity endpoint reachable (AZURE_POD_IDENTITY_AUTHORITY_HOST, or "
                "IDENTITY_ENDPOINT and IDENTITY_HEADER) and is the identity attached to it?"
            )
        return token_of(result, fallback_tenant=entry.get("tenant", ""), username=entry["client_id"])

    def login_service_principal(
        self,
        client_id: str,
        tenant: str,
        secret: str | None,
        scopes: list[str],
        *,
        certificate: Path | None = None,
        password_env: str | None = None,
        federated_token: str | None = None,
    ) -> AccessToken:
        """Check the credential by getting a token, then remember it (replacing any entry for that client):
        a secret as the Azure CLI keeps it; a certificate by its path (and the name of the variable holding
        its password); a federated token inline, or `@FILE` by the file's path."""
        if tenant in MULTI_TENANT:
            raise NeedsLogin(f"A service principal signs in to one tenant: give --tenant (not '{tenant}').")
        entry = {"authority": self.settings.authority_host, "client_id": client_id, "tenant": tenant}
        if certificate is not None:
            entry.update(kind="certificate", certificate=str(certificate.resolve()))
            if password_env:
                entry["password_env"] = password_env
        elif federated_token is not None:
            entry["kind"] = "federatedToken"
            try:
                assertion = read_federated_token(federated_token)
            except CredentialError as exc:
                raise NeedsLogin(str(exc)) from exc
            if federated_token.startswith("@"):
                entry["federated_token_file"] = str(Path(federated_token[1:]).resolve())
            else:
                entry["federated_token"] = assertion
        else:
            assert secret is not None
            entry.update(kind="secret", secret=secret)
        token = self._principal_token(entry, scopes, fresh=True)
        others = [e for e in self.service_principals() if e.get("client_id") != client_id]
        self._write_principals([*others, entry])
        return token

    def managed_identity_token(
        self, scopes: list[str], *, selector: str = "system", identity: str = "", claims: str | None = None
    ) -> AccessToken:
        """A managed identity's token, straight from the endpoint (nothing remembered; the git helper)."""
        entry = {
            "kind": "managedIdentity",
            "client_id": identity or "systemAssignedIdentity",
            "selector": selector,
            "identity": identity,
        }
        return self._managed_identity_token(entry, scopes, msal.SerializableTokenCache(), claims)

    def login_managed_identity(
        self, scopes: list[str], *, selector: str = "system", identity: str = ""
    ) -> AccessToken:
        """`az login --identity`: a token from this machine's managed identity endpoint, then remembered (the
        tenant is the token's)."""
        name = identity or "systemAssignedIdentity"  # az's name for it
        entry = {
            "authority": self.settings.authority_host,
            "kind": "managedIdentity",
            "client_id": name,
            "selector": selector,
            "identity": identity,
            "tenant": "",
        }
        token = self._principal_token(entry, scopes, fresh=True)
        entry["tenant"] = token.tenant_id
        others = [e for e in self.service_principals() if e.get("client_id") != name]
        self._write_principals([*others, entry])
        return token

    def remove_service_principals(self, client_id: str | None = None) -> int:
        entries = self.service_principals()
        kept = [e for e in entries if client_id is not None and e.get("client_id") != client_id]
        if len(kept) != len(entries):
            self._write_principals(kept)
        return len(entries) - len(kept)

    def _pick(self, tenant: str | None, username: str | None) -> tuple[dict[str, Any], str]:
        wanted = tenant or self.settings.tenant
        app = self.app(wanted)
        candidates = app.get_accounts(username=username) if username else app.get_accounts()
        if wanted not in MULTI_TENANT:
            in_tenant = [a for a in candidates if a.get("realm") == wanted]
            # A tenant named by domain cannot be matched against the cached realm (a GUID): any account will do.
            candidates = in_tenant or ([] if _is_guid(wanted) else candidates)
        if not candidates:
            who = f" as {username}" if username else ""
            where = "" if wanted in MULTI_TENANT else f" for tenant {wanted}"
            raise NeedsLogin(
                f"No account is signed in{who}{where} at {self.settings.authority_host}. "
                f"Run `entryway login{'' if wanted in MULTI_TENANT else ' --tenant ' + wanted}`."
            )
        account = candidates[0]
        realm = str(account.get("realm") or "")
        return account, (realm if wanted in MULTI_TENANT and realm else wanted)

    def acquire_silent(
        self,
        scopes: list[str],
        *,
        tenant: str | None = None,
        claims: str | None = None,
        min_remaining: timedelta = timedelta(minutes=5),
        username: str | None = None,
        force_refresh: bool = False,
    ) -> AccessToken:
        """A token from the cache, refreshed (with the refresh token) when less than `min_remaining` is left,
        when the service sent a claims challenge, or when `force_refresh` (the service refused the cached
        one). NeedsLogin when that cannot be done without the user."""
        try:
            account, authority_tenant = self._pick(tenant, username)
        except NeedsLogin:
            principals = [
                e
                for e in self.service_principals()
                if (username is None or e["client_id"] == username)
                and (tenant is None or e["tenant"] == tenant)
            ]
            if not principals:
                raise
            return self._principal_token(principals[0], scopes, claims=claims, fresh=force_refresh)
        app = self.app(authority_tenant)
        result = app.acquire_token_silent_with_error(
            scopes, account, claims_challenge=claims, force_refresh=force_refresh or claims is not None
        )
        if (
            result
            and "access_token" in result
            and int(result.get("expires_in", 0)) < min_remaining.total_seconds()
        ):
            result = app.acquire_token_silent_with_error(scopes, account, force_refresh=True)
        self.save()
        user = str(account.get("username") or "")
        if not result:
            raise NeedsLogin(f"No refresh token is cached for {user}; run `entryway login` again.")
        if "access_token" not in result:
            scope_option = "" if scopes == [DEVOPS_SCOPE] else f" --scope {scopes[0]}"
            login = f"`entryway login{'' if tenant is None else ' --tenant ' + tenant}{scope_option}`"
            raise NeedsLogin(
                f"Could not refresh the token for {user} silently ({describe_error(result)}); "
                f"{advice_for(result, f'run {login} again').replace('`entryway login`', login)}."
            )
        return token_of(result, fallback_tenant=authority_tenant, username=user)


def token_of(result: Mapping[str, Any], *, fallback_tenant: str, username: str = "") -> AccessToken:
    import time

    token = str(result["access_token"])
    claims = jwt_claims(token)
    expires_on = int(time.time()) + int(result.get("expires_in", 0))
    client_info = result.get("id_token_claims") or {}
    return AccessToken(
        token=token,
        expires_on=expires_on,
        tenant_id=str(claims.get("tid") or client_info.get("tid") or fallback_tenant),
        username=username or str(claims.get("upn") or client_info.get("preferred_username") or ""),
    )


def _is_guid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


__all__ = [
    "AZURE_CLI_CLIENT_ID",
    "DEVOPS_RESOURCE",
    "DEVOPS_SCOPE",
    "AccessToken",
    "Account",
    "ClientSettings",
    "NeedsLogin",
    "TokenCacheFile",
    "TokenClient",
]
