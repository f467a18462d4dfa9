"""What the end-to-end sign-in tests share: a loopback redirect catcher, the HTTP walk through authorize,
raw token-endpoint calls for the requests real clients would never send, and claim checks."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import msal
import requests

from tests.conftest import (
    AZURE_CLI_ID,
    CONTOSO_TENANT,
    DEVOPS_RESOURCE,
    DEVOPS_SCOPE,
    Instance,
    SignInResult,
    SignInUser,
    identity_session,
    walk_sign_in,
)


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def client_info_of(result: dict[str, Any]) -> dict[str, Any]:
    raw = result["client_info"]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    return decoded


def token_endpoint(instance: Instance, tenant: str = CONTOSO_TENANT) -> str:
    return f"{instance.identity}/{tenant}/oauth2/v2.0/token"


def post_token(instance: Instance, data: dict[str, str], tenant: str = CONTOSO_TENANT) -> requests.Response:
    """A raw token request: msal replays a 400 from its cache for 60 s, and never sends some of these."""
    return requests.post(token_endpoint(instance, tenant), data=data, verify=instance.ca_bundle, timeout=30)


def public_client(instance: Instance, client_id: str = AZURE_CLI_ID, tenant: str = CONTOSO_TENANT) -> Any:
    return msal.PublicClientApplication(
        client_id, authority=instance.authority(tenant), instance_discovery=False
    )


def connection_data(instance: Instance, token: str, org: str = "fabrikam") -> requests.Response:
    return requests.get(
        f"{instance.devops}/{org}/_apis/connectionData",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def assert_delegated_devops_token(
    token: str, user: SignInUser, *, client_id: str = AZURE_CLI_ID, mfa: bool = False
) -> dict[str, Any]:
    """A delegated access token for Azure DevOps as Entra issues one (v1, like the real resource)."""
    claims = claims_of(token)
    assert claims["aud"] == DEVOPS_RESOURCE
    assert claims["tid"] == CONTOSO_TENANT
    assert claims["appid"] == client_id
    assert claims["scp"] == "user_impersonation"
    assert claims["upn"] == user.upn
    assert claims["unique_name"] == user.upn
    assert claims["name"] == user.display_name
    assert claims["oid"]
    assert claims["amr"] == (["pwd", "mfa"] if mfa else ["pwd"])
    for name in ("iat", "nbf", "exp", "acr", "iss"):
        assert name in claims
    return claims


def assert_id_token(
    result: dict[str, Any], user: SignInUser, *, client_id: str = AZURE_CLI_ID
) -> dict[str, Any]:
    claims = result["id_token_claims"]
    assert claims["aud"] == client_id
    assert claims["tid"] == CONTOSO_TENANT
    assert claims["preferred_username"] == user.upn
    assert claims["name"] == user.display_name
    assert claims["oid"]
    assert claims["sub"]
    assert claims["sub"] != claims["oid"], "sub is pairwise per app, as Entra's"
    info = client_info_of(result)
    assert info == {"uid": claims["oid"], "utid": CONTOSO_TENANT}
    return dict(claims)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Catch:
    """What the sign-in page form-posted (or redirected) to the app's loopback redirect URI."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.method = ""
        self.arrived = threading.Event()

    def wait(self, timeout: float = 20) -> dict[str, str]:
        assert self.arrived.wait(timeout), "nothing arrived at the loopback redirect URI"
        return self.fields


@contextmanager
def loopback_redirect(port: int | None = None) -> Iterator[tuple[str, Catch]]:
    """A native app's loopback listener (RFC 8252 section 7.3): http://localhost:{port}, keeping what the
    browser brings, answering with a plain "you can close this window" page."""
    catch = Catch()

    class Handler(BaseHTTPRequestHandler):
        def _keep(self, fields: dict[str, str]) -> None:
            catch.fields = fields
            body = b"<!doctype html><title>Signed in</title><p>Authentication complete. You can close this window."
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            catch.arrived.set()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            catch.method = "POST"
            self._keep(dict(parse_qsl(self.rfile.read(length).decode())))

        def do_GET(self) -> None:
            query = urlsplit(self.path).query
            if not query:  # favicon and friends
                self.send_response(404)
                self.end_headers()
                return
            catch.method = "GET"
            self._keep(dict(parse_qsl(query)))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}", catch
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def authorize_over_http(
    instance: Instance,
    user: SignInUser,
    *,
    client_id: str = AZURE_CLI_ID,
    scopes: tuple[str, ...] = (DEVOPS_SCOPE,),
    redirect_uri: str | None = None,
    http: requests.Session | None = None,
    password: str | None = None,
    **flow_options: Any,
) -> tuple[Any, dict[str, Any], SignInResult]:
    """msal starts an auth-code flow (PKCE, nonce, state); a person signs in on the pages over HTTP; the
    result is msal's app, its flow, and where the pages ended (the form posted back to the app)."""
    app = public_client(instance, client_id)
    flow_options.setdefault("response_mode", "form_post")  # what msal's own interactive flow asks for
    flow = app.initiate_auth_code_flow(
        list(scopes), redirect_uri=redirect_uri or f"http://localhost:{free_port()}", **flow_options
    )
    session = http or identity_session(instance)
    response = session.get(flow["auth_uri"], timeout=30)
    ended = walk_sign_in(session, response, user=user, password=password, clock=instance.clock)
    return app, flow, ended
