"""One Entryway for the whole session: real servers on ephemeral ports over TLS, one controllable clock.

Tests that need a server of their own (restarts, the CLI) start one with `start_entryway`. Sign-in tests
walk the pages either over plain HTTP the way a person would (`walk_sign_in`, `complete_device_login`) or in
headless Debian Chromium driven by Playwright (`browser`, `page`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import pyotp
import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from entryway.config.declarative import apply_config
from entryway.config.seed import DemoSeed, ensure_installation, seed_demo
from entryway.config.settings import Settings
from entryway.kit.clock import ManualClock
from entryway.runtime import Runtime
from entryway.server import EntrywayServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

# The azure-devops SDK reads its location cache directory once, when imported: point it at a throwaway
# directory before any test module imports it, so tests never read or write ~/.azure-devops.
os.environ.setdefault("AZURE_DEVOPS_CACHE_DIR", tempfile.mkdtemp(prefix="entryway-sdk-cache-"))

DEVOPS_RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
DEVOPS_SCOPE = f"{DEVOPS_RESOURCE}/.default"

# The example from the foundation issue, loaded unchanged, plus a second tenant and a non-member app.
ISSUE_EXAMPLE_CONFIG = """\
tenants:
  - id: 7d3a1f52-5b8e-4c1e-9f4a-2b6c8d0e1f23
    domains: [contoso.test]
    users:
      - upn: alice@contoso.test
        password: "Correct-Horse-42"
        display_name: Alice Example
    apps:
      - name: build-bot
        client_id: 3f9c2a71-0d4b-4e8a-b1c6-5e7f8a9b0c1d
        secrets:
          - value: "bot-secret-0123456789abcdefghijklmnopqrstuv"
organizations:
  - name: fabrikam
    tenant: contoso.test
    members:
      - app: build-bot
        access: basic
      - user: alice@contoso.test
        access: basic
"""

EXTRA_CONFIG = """\
tenants:
  - id: 0b5e3c1d-2a4f-4e6b-8c7d-9e0f1a2b3c4d
    domains: [northwind.test]
    apps:
      - name: northwind-bot
        client_id: 5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d
        secrets:
          - value: "northwind-secret-0123456789abcdefghijklmn"
  - id: 7d3a1f52-5b8e-4c1e-9f4a-2b6c8d0e1f23
    domains: [contoso.test]
    apps:
      - name: outsider
        client_id: 9c8b7a6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d
        secrets:
          - value: "outsider-secret-0123456789abcdefghijklmn"
organizations:
  - name: northwind
    tenant: northwind.test
    members:
      - app: northwind-bot
        access: basic
"""

# Users and apps of the sign-in tests (issue 3), each with one job so that no test's lockout or TOTP
# enrollment leaks into another's.
SIGNIN_CONFIG = """\
tenants:
  - id: 7d3a1f52-5b8e-4c1e-9f4a-2b6c8d0e1f23
    domains: [contoso.test]
    users:
      - upn: ada@contoso.test
        password: "Ada-Signs-In-0042"
        display_name: Ada Basic
        mfa_required: false
      - upn: bruno@contoso.test
        password: "Bruno-Uses-Totp-0042"
        display_name: Bruno Mfa
        mfa_required: true
      - upn: chen@contoso.test
        password: "Chen-No-Org-0042"
        display_name: Chen Outsider
        mfa_required: false
      - upn: dana@contoso.test
        password: "Dana-Gets-Locked-0042"
        display_name: Dana Lockout
        mfa_required: false
      - upn: erin@contoso.test
        password: "Erin-Enrolls-0042"
        display_name: Erin Browser
        mfa_required: true
    apps:
      - name: signin-tool
        client_id: 2c4d6e8f-1a3b-4c5d-8e7f-9a0b1c2d3e4f
        public_client: true
        redirect_uris: ["http://localhost"]
      - name: consent-demo
        client_id: 8b7c6d5e-4f3a-4b2c-9d1e-0f9a8b7c6d5e
        public_client: true
        redirect_uris: ["http://localhost"]
      - name: ropc-tool
        client_id: 6e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b
        public_client: true
        redirect_uris: ["http://localhost"]
        admin_consent:
          - resource: 499b84ac-1321-427f-aa17-267ca6975798
            scopes: [user_impersonation]
organizations:
  - name: fabrikam
    tenant: contoso.test
    members:
      - user: ada@contoso.test
        access: basic
      - user: bruno@contoso.test
        access: basic
      - user: erin@contoso.test
        access: basic
"""

CONTOSO_TENANT = "7d3a1f52-5b8e-4c1e-9f4a-2b6c8d0e1f23"
BUILD_BOT_ID = "3f9c2a71-0d4b-4e8a-b1c6-5e7f8a9b0c1d"
BUILD_BOT_SECRET = "bot-secret-0123456789abcdefghijklmnopqrstuv"
OUTSIDER_ID = "9c8b7a6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
OUTSIDER_SECRET = "outsider-secret-0123456789abcdefghijklmn"
NORTHWIND_TENANT = "0b5e3c1d-2a4f-4e6b-8c7d-9e0f1a2b3c4d"
NORTHWIND_BOT_ID = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"
NORTHWIND_BOT_SECRET = "northwind-secret-0123456789abcdefghijklmn"

AZURE_CLI_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
SIGNIN_TOOL_ID = "2c4d6e8f-1a3b-4c5d-8e7f-9a0b1c2d3e4f"  # a public client that is not pre-consented
# A public client that is not pre-consented; only the browser consent test uses it (consent is remembered).
CONSENT_DEMO_ID = "8b7c6d5e-4f3a-4b2c-9d1e-0f9a8b7c6d5e"
ROPC_TOOL_ID = "6e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"  # a public client with admin consent for DevOps


@dataclass(frozen=True)
class SignInUser:
    upn: str
    password: str
    display_name: str
    mfa: bool


# No MFA, Basic member of fabrikam.
ADA = SignInUser("ada@contoso.test", "Ada-Signs-In-0042", "Ada Basic", mfa=False)
# MFA required, Basic member of fabrikam; enrolled by whichever test signs him in first.
BRUNO = SignInUser("bruno@contoso.test", "Bruno-Uses-Totp-0042", "Bruno Mfa", mfa=True)
# No MFA, member of no organization.
CHEN = SignInUser("chen@contoso.test", "Chen-No-Org-0042", "Chen Outsider", mfa=False)
# Only the lockout test signs her in (with wrong passwords).
DANA = SignInUser("dana@contoso.test", "Dana-Gets-Locked-0042", "Dana Lockout", mfa=False)
# MFA required, member; only the browser test signs her in, so that it sees (and photographs) enrollment.
ERIN = SignInUser("erin@contoso.test", "Erin-Enrolls-0042", "Erin Browser", mfa=True)


@dataclass
class Instance:
    server: EntrywayServer
    runtime: Runtime
    clock: ManualClock
    demo: DemoSeed

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def identity(self) -> str:
        return self.settings.identity_origin

    @property
    def devops(self) -> str:
        return self.settings.devops_origin

    @property
    def ca_bundle(self) -> str:
        return str(self.settings.ca_bundle)

    def authority(self, tenant: str) -> str:
        return f"{self.identity}/{tenant}"


def start_entryway(data_dir: Path, clock: ManualClock, *, configs: tuple[str, ...] = ()) -> Instance:
    """Start a real Entryway on ephemeral ports; seed the demo on first start and apply `configs`."""
    server = EntrywayServer(Settings(data_dir=data_dir, identity_port=0, devops_port=0), clock)
    runtime = server.prepare()
    first = ensure_installation(runtime)
    demo = seed_demo(runtime) if first else DemoSeed("", "", "", "", "")
    for text in configs:
        apply_config(runtime, yaml.safe_load(text))
    server.start_in_thread()
    return Instance(server, runtime, clock, demo)


@pytest.fixture(scope="session")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def entryway(tmp_path_factory: pytest.TempPathFactory, clock: ManualClock) -> Iterator[Instance]:
    instance = start_entryway(
        tmp_path_factory.mktemp("entryway"),
        clock,
        configs=(ISSUE_EXAMPLE_CONFIG, EXTRA_CONFIG, SIGNIN_CONFIG),
    )
    previous = {
        name: os.environ.get(name) for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
    }
    # requests-based clients (msal, azure-identity, the azure-devops SDK) trust the CA through this.
    os.environ["REQUESTS_CA_BUNDLE"] = instance.ca_bundle
    os.environ["SSL_CERT_FILE"] = instance.ca_bundle
    os.environ.pop("CURL_CA_BUNDLE", None)
    yield instance
    instance.server.stop()
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def form_post(instance: Instance, path: str, data: dict[str, Any] | str, **kwargs: Any) -> Any:
    """A raw POST to the identity platform, for requests real clients would never send."""
    import requests

    return requests.post(
        f"{instance.identity}{path}", data=data, verify=instance.ca_bundle, timeout=30, **kwargs
    )


# --- Sign-in pages over plain HTTP -------------------------------------------------------------------------

PRIMARY_BUTTON = "idSIButton9"


@dataclass
class HtmlForm:
    action: str
    method: str
    inputs: list[dict[str, str]] = field(default_factory=list)
    buttons: list[dict[str, str]] = field(default_factory=list)

    def input(self, *, id: str | None = None, name: str | None = None) -> dict[str, str] | None:
        for attrs in self.inputs:
            if (id is not None and attrs.get("id") == id) or (name is not None and attrs.get("name") == name):
                return attrs
        return None

    def button(self, *, id: str | None = None, upn: str | None = None) -> dict[str, str] | None:
        for attrs in self.buttons:
            if (id is not None and attrs.get("id") == id) or (
                upn is not None and attrs.get("data-upn") == upn
            ):
                return attrs
        return None

    def hidden(self) -> dict[str, str]:
        return {
            a["name"]: a.get("value", "") for a in self.inputs if a.get("type") == "hidden" and "name" in a
        }


class PageParser(HTMLParser):
    """The forms of a page (inputs, submit buttons) and the text of every element that has an id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[HtmlForm] = []
        self.text_by_id: dict[str, str] = {}
        self._form: HtmlForm | None = None
        self._open: list[tuple[str, str | None]] = []  # (tag, id) of the elements whose text we collect

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = HtmlForm(a.get("action", ""), a.get("method", "get").lower())
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None:
            a.setdefault("type", "text")
            if a["type"] == "submit":
                self._form.buttons.append(a)
            else:
                self._form.inputs.append(a)
        elif tag == "button" and self._form is not None and a.get("type", "submit") == "submit":
            self._form.buttons.append(a)
        if tag not in {"input", "br", "img", "meta", "link", "hr"}:
            self._open.append((tag, a.get("id")))
            if a.get("id"):
                self.text_by_id.setdefault(a["id"], "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open:
            if element_id:
                self.text_by_id[element_id] += data


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


# TOTP secrets seen on enrollment pages, by UPN, and the last time step each user's code was sent for: the
# server never accepts a step twice, and the shared clock is only a few seconds on between two sign-ins.
TOTP_SECRETS: dict[str, str] = {}
_LAST_TOTP_STEP: dict[str, int] = {}


def totp_code(upn: str, clock: ManualClock, secret: str | None = None) -> str:
    """The code a person's authenticator app shows now, never one of an already used time step (the server
    accepts the next step too, valid_window=1; beyond that the shared clock moves on by a step)."""
    secret = secret or TOTP_SECRETS[upn]
    totp = pyotp.TOTP(secret)
    step = int(clock.timestamp()) // totp.interval
    wanted = max(step, _LAST_TOTP_STEP.get(upn, -1) + 1)
    if wanted > step + 1:
        clock.advance(totp.interval)
        step = int(clock.timestamp()) // totp.interval
        wanted = max(step, _LAST_TOTP_STEP.get(upn, -1) + 1)
    _LAST_TOTP_STEP[upn] = wanted
    return totp.at(wanted * totp.interval)


@dataclass
class SignInResult:
    """Where a walk through the pages ended: the last page, and the form it posts to the app, if any."""

    url: str
    html: str
    posted_back: dict[str, str] | None
    action: str | None

    @property
    def page(self) -> PageParser:
        return parse_page(self.html)

    @property
    def error_code(self) -> str | None:
        """The AADSTS code the page shows (an inline error on a form, or the error page), as "AADSTSnnnn"."""
        texts = self.page.text_by_id
        for element in ("errorText", "errorCode"):
            found = re.search(r"AADSTS\d+", texts.get(element, ""))
            if found:
                return found.group(0)
        return None


def walk_sign_in(
    http: requests.Session,
    response: requests.Response,
    *,
    user: SignInUser | None = None,
    password: str | None = None,
    user_code: str | None = None,
    clock: ManualClock,
    until: Callable[[PageParser], bool] | None = None,
    max_steps: int = 12,
) -> SignInResult:
    """Fill in and submit the sign-in pages the way a person would, starting from `response`, until a page
    posts back to the app (form_post), shows an error, or has no primary button (done, or the error page).

    Each step posts the form that holds the pressed button to its `action`, with every hidden input, the
    fields a person types (device code, username, password, one-time code) and the button's name/value.
    On an account picker it presses `user`'s tile.
    """
    origin = urlsplit(response.url)[:2]
    for _ in range(max_steps):
        assert response.status_code < 500, response.text
        page = parse_page(response.text)
        for form in page.forms:
            target = urljoin(response.url, form.action)
            if form.method == "post" and urlsplit(target)[:2] != origin:
                return SignInResult(response.url, response.text, form.hidden(), target)
        if "errorText" in page.text_by_id or (until is not None and until(page)):
            # A form page that refused what was typed (a person stops), or the page the caller wants.
            return SignInResult(response.url, response.text, None, None)
        chosen = _press(page, user)
        if chosen is None:
            return SignInResult(response.url, response.text, None, None)
        form, button = chosen
        if "totpSecret" in page.text_by_id and user is not None:
            TOTP_SECRETS[user.upn] = "".join(page.text_by_id["totpSecret"].split())
        data = _fill(form, user=user, password=password, user_code=user_code, clock=clock)
        if button.get("name"):
            data[button["name"]] = button.get("value", "")
        target = urljoin(response.url, form.action or response.url)
        if form.method == "post":
            response = http.post(target, data=data, timeout=30)
        else:
            response = http.get(target, params=data, timeout=30)
    raise AssertionError(f"the sign-in pages did not finish in {max_steps} steps; last page {response.url}")


def _press(page: PageParser, user: SignInUser | None) -> tuple[HtmlForm, dict[str, str]] | None:
    """The button a person presses: their own tile on an account picker, else the primary button."""
    if user is not None:
        for form in page.forms:
            tile = form.button(upn=user.upn)
            if tile is not None:
                return form, tile
    for form in page.forms:
        button = form.button(id=PRIMARY_BUTTON)
        if button is not None:
            return form, button
    return None


def _fill(
    form: HtmlForm,
    *,
    user: SignInUser | None,
    password: str | None,
    user_code: str | None,
    clock: ManualClock,
) -> dict[str, str]:
    data = form.hidden()
    for attrs in form.inputs:
        name = attrs.get("name")
        if not name or attrs["type"] == "hidden":
            continue
        typed: str | None = None
        if attrs.get("id") == "otc":
            typed = user_code
        elif user is not None and name == "loginfmt":
            typed = user.upn
        elif user is not None and name == "passwd":
            typed = password if password is not None else user.password
        elif user is not None and attrs.get("id") == "idTxtBx_SAOTCC_OTC":
            typed = totp_code(user.upn, clock)
        elif attrs["type"] in {"checkbox", "radio"}:
            typed = attrs.get("value", "on") if "checked" in attrs else None
        else:
            typed = attrs.get("value", "")
        if typed is not None:
            data[name] = typed
    return data


def identity_session(instance: Instance) -> requests.Session:
    """A person's browser, as far as the pages can tell: cookies, and our CA trusted."""
    http = requests.Session()
    http.verify = instance.ca_bundle
    return http


def complete_device_login(
    instance: Instance,
    user_code: str,
    user: SignInUser,
    *,
    password: str | None = None,
    clock: ManualClock | None = None,
    verification_uri: str | None = None,
) -> SignInResult:
    """Open the device page, enter the code, sign in as `user` (TOTP if asked), and confirm the app."""
    http = identity_session(instance)
    response = http.get(verification_uri or f"{instance.identity}/devicelogin", timeout=30)
    assert response.status_code == 200, response.text
    return walk_sign_in(
        http, response, user=user, password=password, user_code=user_code, clock=clock or instance.clock
    )


# --- Headless Chromium ---------------------------------------------------------------------------------------

# How this machine runs Chromium: no sandbox as root, no GPU, and no background traffic to Google's hosts
# (the network is closed; those connections fail at every start and slow it down).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def server_spki_sha256(instance: Instance) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of the server certificate, the form Chromium's
    --ignore-certificate-errors-spki-list takes: Chromium trusts that one key, not every certificate."""
    cert = x509.load_pem_x509_certificate((instance.settings.tls_dir / "server.pem").read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="session")
def browser(entryway: Instance) -> Iterator[Browser]:
    """Debian's Chromium (scripts/test.sh installs it), never a browser Playwright downloads."""
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("ENTRYWAY_CHROMIUM", "/usr/bin/chromium")
    if not Path(executable).exists():
        pytest.fail(f"no Chromium at {executable}: run scripts/test.sh, or apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[*CHROMIUM_FLAGS, f"--ignore-certificate-errors-spki-list={server_spki_sha256(entryway)}"],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile per test: no cookies, no session."""
    context = browser.new_context(ignore_https_errors=False, viewport={"width": 1100, "height": 800})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def screenshot(page: Page, name: str) -> None:
    """docs/screenshots/{name}.png, only when ENTRYWAY_SCREENSHOTS=1: every run would otherwise rewrite the
    committed pictures with new codes and times (noise in git status for nothing)."""
    image = page.screenshot(full_page=True)
    if os.environ.get("ENTRYWAY_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / f"{name}.png").write_bytes(image)


# --- Workload identities (issue 4): certificates, and an external OIDC issuer served over TLS -----------------

# Apps that authenticate with certificates or federated credentials only. workload-bot is a Basic member of
# fabrikam; workload-outsider is a member of no organization.
WORKLOAD_CONFIG = """\
tenants:
  - id: 7d3a1f52-5b8e-4c1e-9f4a-2b6c8d0e1f23
    domains: [contoso.test]
    apps:
      - name: workload-bot
        client_id: 4b1c2d3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e
      - name: workload-outsider
        client_id: 6c2d3e4f-5a6b-4c7d-9e8f-1a2b3c4d5e6f
      - name: workload-nofic
        client_id: 7d3e4f5a-6b7c-4d8e-8f9a-2b3c4d5e6f7a
organizations:
  - name: fabrikam
    tenant: contoso.test
    members:
      - app: workload-bot
        access: basic
"""
WORKLOAD_BOT_ID = "4b1c2d3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e"
WORKLOAD_OUTSIDER_ID = "6c2d3e4f-5a6b-4c7d-9e8f-1a2b3c4d5e6f"
WORKLOAD_NOFIC_ID = "7d3e4f5a-6b7c-4d8e-8f9a-2b3c4d5e6f7a"


@dataclass(frozen=True)
class WorkloadCertificate:
    """An RSA key and a self-signed certificate for it, as an app's owner would make with openssl."""

    key: Any  # rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    @property
    def sha1(self) -> bytes:
        return hashlib.sha1(self.der).digest()  # noqa: S324 - x5t is defined as SHA-1

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.der).digest()


def make_certificate(
    name: str = "workload", *, not_before: datetime | None = None, not_after: datetime | None = None
) -> WorkloadCertificate:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return WorkloadCertificate(key, cert)


def register_certificate(instance: Instance, app_id: str, certificate: WorkloadCertificate) -> None:
    """Put a certificate on an app registration through the directory service; an expired one, which the
    service rightly refuses to add, straight into the table (as if it had expired since it was added)."""
    from sqlalchemy import select

    from entryway.identity.directory.service import DirectoryService
    from entryway.kit.ids import new_guid
    from entryway.store.models import ApplicationRow, CertificateRow

    runtime = instance.runtime
    with runtime.db.unit_of_work() as session:
        app = session.scalars(select(ApplicationRow).where(ApplicationRow.app_id == app_id)).one()
        if certificate.cert.not_valid_after_utc > runtime.clock.now():
            DirectoryService(session, runtime.clock, runtime.digester).add_certificate(app, certificate.der)
            return
        session.add(
            CertificateRow(
                key_id=new_guid(),
                application_object_id=app.object_id,
                display_name=certificate.cert.subject.rfc4514_string(),
                thumbprint_sha1=certificate.sha1.hex().upper(),
                thumbprint_sha256=certificate.sha256.hex(),
                certificate_der=certificate.der,
                not_before=certificate.cert.not_valid_before_utc,
                not_after=certificate.cert.not_valid_after_utc,
                created_at=datetime.now(UTC),
            )
        )


def register_federated_credential(
    instance: Instance,
    app_id: str,
    *,
    name: str,
    issuer: str,
    subject: str | None = None,
    expression: str | None = None,
    audiences: tuple[str, ...] = ("api://AzureADTokenExchange",),
) -> None:
    from entryway.identity.directory.service import DirectoryService

    runtime = instance.runtime
    with runtime.db.unit_of_work() as session:
        DirectoryService(session, runtime.clock, runtime.digester).add_federated_credential(
            app_id,
            name=name,
            issuer=issuer,
            subject=subject,
            claims_matching_expression=expression,
            audiences=audiences,
        )


class OidcIssuer:
    """An external OIDC issuer (think a Kubernetes cluster or GitHub Actions) on an ephemeral port over TLS,
    with a certificate from a CA of its own: discovery and JWKS, and tokens it signs."""

    def __init__(self, directory: Path) -> None:
        import ssl
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from entryway.kit.tls import ensure_tls

        tls = ensure_tls(directory, ["localhost", "127.0.0.1"], datetime.now(UTC))
        self.ca_file = str(tls.ca_cert)
        self.signing = make_certificate("issuer-signing").key
        self.kid = "issuer-key-1"
        self.jwks_fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/keys"}
                elif self.path == "/keys":
                    issuer.jwks_fetches += 1
                    body = {"keys": [issuer.jwk()]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls.server_cert), str(tls.server_key))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://localhost:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def jwk(self) -> dict[str, Any]:
        import jwt

        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.signing.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def token(
        self,
        subject: str,
        *,
        now: float,
        audience: str = "api://AzureADTokenExchange",
        lifetime: float = 3600,
        key: Any = None,
        kid: str | None = None,
        issuer: str | None = None,
        **claims: Any,
    ) -> str:
        import jwt

        payload = {
            "iss": issuer or self.url,
            "sub": subject,
            "aud": audience,
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + lifetime),
            **claims,
        }
        return jwt.encode(payload, key or self.signing, algorithm="RS256", headers={"kid": kid or self.kid})

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def oidc_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcIssuer]:
    """Entryway trusts the issuer's CA through ENTRYWAY_TRUSTED_CA, read when it contacts an issuer."""
    issuer = OidcIssuer(tmp_path_factory.mktemp("oidc-issuer"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENTRYWAY_TRUSTED_CA", issuer.ca_file)
        yield issuer
    issuer.stop()
