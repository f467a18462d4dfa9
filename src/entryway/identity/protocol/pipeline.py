"""The token endpoint's pipeline, in one place: parse, resolve the tenant, find and authenticate the
client, let the grant decide the resource and subject, issue, and answer in Entra's shape.

(dex `server/grants/grants.go`; node-oidc-provider `lib/actions/token.js`)
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from entryway.identity.directory.first_party import FIRST_PARTY_APPS, MICROSOFT_GRAPH
from entryway.identity.protocol.claims import (
    CLIENT_AUTH_PUBLIC,
    AppOnlySubject,
    UserSubject,
    client_info,
    id_token,
)
from entryway.identity.protocol.claims import (
    access_token as access_token_claims,
)
from entryway.identity.protocol.claims_request import CAE_CAPABILITY, ClaimsRequest, parse_claims_request
from entryway.identity.protocol.client_assertion import (
    AssertionContext,
    AssertionReplayPort,
    IssuerKeys,
    token_endpoint_audiences,
    unverified_issuer,
)
from entryway.identity.protocol.client_auth import (
    AuthenticatedClient,
    authenticate_client,
    read_client_credential,
)
from entryway.identity.protocol.conditional_access import (
    FEDERATED_ASSERTION,
    PROTOCOLS,
    EvaluationInput,
    IssuanceTrail,
    client_app_type,
    evaluate_issuance,
    refusal,
)
from entryway.identity.protocol.errors import (
    CLAIMS_NEED_FRESH_SIGN_IN,
    CLIENT_NOT_FOUND,
    INVALID_CLIENT_ID,
    INVALID_TENANT_NAME,
    MISSING_PARAMETER,
    NO_TENANT_IDENTIFYING_INFORMATION,
    SERVICE_PRINCIPAL_DISABLED,
    TENANT_NOT_FOUND,
    UNSUPPORTED_GRANT_TYPE,
    UNSUPPORTED_GRANT_TYPE_V1,
    Aadsts,
    OAuthError,
    format_timestamp,
)
from entryway.identity.protocol.model import DirectoryPort, Resource, Tenant
from entryway.identity.protocol.requests import TokenRequest
from entryway.identity.protocol.scopes import split_scope
from entryway.identity.protocol.sign_ins import SignIn, SignInPort
from entryway.kit.clock import Clock, utc_from_timestamp
from entryway.kit.ids import parse_guid
from entryway.kit.secrets import SecretDigester

# Tenant-independent authorities: they name no directory of their own.
TENANT_INDEPENDENT = frozenset({"common", "organizations", "consumers"})
# Entra's lifetime for the access tokens of clients that declare CP1 (continuous access evaluation): long-lived,
# because the resource revokes them through claims challenges instead of waiting for expiry.
# https://learn.microsoft.com/entra/identity/conditional-access/concept-continuous-access-evaluation
CAE_TOKEN_LIFETIME_SECONDS = 24 * 3600
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.IGNORECASE)


_FIRST_PARTY_IDS = frozenset(app.app_id for app in FIRST_PARTY_APPS)


class PolicyRefusal(OAuthError):
    """A refusal decided after the grant redeemed its artefact (Conditional Access, a claims challenge): the
    redemption is rolled back, so the client may present the same refresh token, code or device code again once
    it satisfies the policy."""


def check_claims_satisfied(claims_request: ClaimsRequest, sign_in: SignIn | None) -> None:
    """A claims challenge's `nbf` (continuous access evaluation: the resource saw an event at that time) asks for
    a sign-in at or after it; a refresh token, code or device code from an older sign-in cannot satisfy it."""
    not_before = claims_request.not_before
    if not_before is None or sign_in is None:
        return
    if sign_in.auth_time.timestamp() < not_before:
        raise PolicyRefusal(
            CLAIMS_NEED_FRESH_SIGN_IN,
            detail=f"sign-in of user {sign_in.user_id} older than the challenge's nbf",
            auth_time=format_timestamp(sign_in.auth_time),
            not_before=format_timestamp(utc_from_timestamp(not_before)),
        )


class TokenSigner(Protocol):
    def sign(self, claims: Mapping[str, Any]) -> str: ...


@dataclass(frozen=True)
class GrantContext:
    request: TokenRequest
    tenant: Tenant
    client: AuthenticatedClient
    directory: DirectoryPort
    sign_ins: SignInPort | None
    now: float
    pairwise_sub: Callable[[str, str], str]
    # What the request is about, for the sign-in log; a grant that finds its user notes it here before it can
    # refuse (a disabled user's refused refresh is logged with the user, as Entra does).
    trail: IssuanceTrail


@dataclass(frozen=True)
class GrantOutcome:
    """What a grant decided: the audience and token version, the scope to echo, and whom the token is about.
    User grants also hand back the sign-in, which refresh tokens continue."""

    audience: str
    access_token_version: int
    scope: str
    subject: AppOnlySubject | UserSubject
    sign_in: SignIn | None = None
    # The app the token names as its client (`azp`/`appid`) when the authenticated client asks on behalf of
    # another first-party app (the Azure DevOps service for a pipeline: protocol/service_connections.py).
    acting_app_id: str | None = None
    # A lifetime of the grant's own instead of the tenant's access token lifetime.
    lifetime: int | None = None
    # The resource application the token is for (Conditional Access targets it; the sign-in log names it);
    # None for a token asked only with OpenID Connect scopes (Entra evaluates those against Microsoft Graph).
    resource: Resource | None = None


class Grant(Protocol):
    grant_type: ClassVar[str]
    # The error when a confidential client presents no credential (it differs per grant in Entra).
    missing_credential: ClassVar[Aadsts]
    # User grants may be redeemed by public clients, without a credential.
    allows_public_clients: ClassVar[bool]
    # Tokens about a user: the grant reads and writes sign-in state (codes, refresh tokens).
    issues_user_tokens: ClassVar[bool]

    def tenant_hint(
        self, request: TokenRequest, sign_ins: SignInPort | None, directory: DirectoryPort
    ) -> str | None:
        """The tenant the grant's artefact belongs to, for `common` and `organizations` requests."""
        ...

    def authorize(self, ctx: GrantContext) -> GrantOutcome: ...


def validate_tenant_ref(ref: str) -> str:
    """A tenant segment is a GUID or a DNS name (AADSTS900023 otherwise)."""
    guid = parse_guid(ref)
    if guid is not None:
        return guid
    if ref.lower() in TENANT_INDEPENDENT or _DNS_NAME.match(ref):
        return ref.lower()
    raise OAuthError(INVALID_TENANT_NAME, tenant=ref)


def resolve_tenant(directory: DirectoryPort, ref: str, *, hint: str | None = None) -> Tenant:
    """The tenant a request names. `common` and `organizations` name none: user grants resolve the user's
    home tenant from what they redeem (`hint`); without one there is no directory to look in (AADSTS50059)."""
    normalized = validate_tenant_ref(ref)
    if normalized in TENANT_INDEPENDENT:
        if hint is None:
            raise OAuthError(NO_TENANT_IDENTIFYING_INFORMATION)
        normalized = hint
    tenant = directory.find_tenant(normalized)
    if tenant is None:
        raise OAuthError(TENANT_NOT_FOUND, tenant=ref)
    return tenant


class TokenEndpoint:
    """`POST /{tenant}/oauth2/v2.0/token` and `POST /{tenant}/oauth2/token`."""

    def __init__(
        self,
        *,
        origin: str,
        grants: list[Grant],
        signer: TokenSigner,
        digester: SecretDigester,
        clock: Clock,
    ) -> None:
        self._origin = origin
        self._grants = {g.grant_type: g for g in grants}
        self._signer = signer
        self._digester = digester
        self._clock = clock

    def is_user_grant(self, grant_type: str | None) -> bool:
        grant = self._grants.get(grant_type or "")
        return grant is not None and grant.issues_user_tokens

    def handle(
        self,
        request: TokenRequest,
        directory: DirectoryPort,
        sign_ins: SignInPort | None = None,
        *,
        replay: AssertionReplayPort | None = None,
        issuer_keys: IssuerKeys | None = None,
        trail: IssuanceTrail | None = None,
    ) -> dict[str, Any]:
        """`replay` records certificate assertions' `jti`; `issuer_keys` are the keys of the external issuer a
        federated assertion names, fetched by the caller (the pipeline does no I/O). `trail` collects what the
        request turned out to be about, for the sign-in log, whether the token is issued or refused."""
        trail = trail if trail is not None else IssuanceTrail()
        grant_type = request.require("grant_type")
        trail.grant_type = grant_type
        trail.protocol = PROTOCOLS.get(grant_type, "")
        grant = self._grants.get(grant_type)
        if grant is None:
            kind = UNSUPPORTED_GRANT_TYPE if request.endpoint_version == 2 else UNSUPPORTED_GRANT_TYPE_V1
            raise OAuthError(kind, grant_type=grant_type)
        claims_request = parse_claims_request(request.get("claims"))

        credential = read_client_credential(request)
        if credential.client_id is None:
            raise OAuthError(MISSING_PARAMETER, name="client_id")
        validate_tenant_ref(request.tenant_ref)
        hint = grant.tenant_hint(request, sign_ins, directory)
        tenant = resolve_tenant(directory, request.tenant_ref, hint=hint)
        trail.tenant_id = tenant.id
        trail.app_only = not grant.issues_user_tokens
        client_id = parse_guid(credential.client_id)
        if client_id is None:
            raise OAuthError(INVALID_CLIENT_ID, client_id=credential.client_id)
        client = directory.find_client(tenant.id, client_id)
        if client is None:
            raise OAuthError(CLIENT_NOT_FOUND, client_id=client_id, directory=tenant.display_name)
        trail.client_app_id, trail.client_display_name = client.app_id, client.display_name
        if credential.assertion is not None and unverified_issuer(credential.assertion) not in {
            None,
            client.app_id,
        }:
            trail.protocol = FEDERATED_ASSERTION

        now = self._clock.timestamp()
        if not credential.presented and client.public_client and grant.allows_public_clients:
            authenticated = AuthenticatedClient(client, CLIENT_AUTH_PUBLIC)
        else:
            authenticated = authenticate_client(
                client,
                credential,
                digester=self._digester,
                now=utc_from_timestamp(now),
                missing=grant.missing_credential,
                assertions=AssertionContext(
                    directory=directory,
                    audiences=token_endpoint_audiences(self._origin, (request.tenant_ref, tenant.id)),
                    replay=replay,
                    issuer_keys=issuer_keys,
                    now=now,
                ),
            )
        if not client.service_principal_enabled:
            raise OAuthError(SERVICE_PRINCIPAL_DISABLED, client_id=client.app_id, name=client.display_name)

        context = GrantContext(
            request, tenant, authenticated, directory, sign_ins, now, self.pairwise_sub, trail
        )
        outcome = grant.authorize(context)
        self._note_outcome(trail, outcome)
        # Policies first: a block (the address a CAE challenge names, say) is final, and a fresh sign-in, which
        # a challenge's `nbf` asks for, would only meet the same block.
        self._enforce_conditional_access(context, outcome, claims_request, trail)
        check_claims_satisfied(claims_request, outcome.sign_in)
        return self._issue(context, outcome, cae=claims_request.cae_capable)

    def _issue(self, ctx: GrantContext, outcome: GrantOutcome, *, cae: bool) -> dict[str, Any]:
        """The access token and the response: v1 or v2 shape, with the user tokens for user grants."""
        tenant, client, request = ctx.tenant, ctx.client.client, ctx.request
        now, sign_ins = ctx.now, ctx.sign_ins
        default_lifetime = CAE_TOKEN_LIFETIME_SECONDS if cae else tenant.access_token_lifetime_seconds
        lifetime = outcome.lifetime or default_lifetime
        subject = outcome.subject
        claims = access_token_claims(
            origin=self._origin,
            tenant_id=tenant.id,
            audience=outcome.audience,
            version=outcome.access_token_version,
            client_app_id=outcome.acting_app_id or client.app_id,
            client_auth_method=ctx.client.method,
            subject=subject,
            now=int(now),
            lifetime=lifetime,
            capabilities=(CAE_CAPABILITY,) if cae else (),
        )
        access_token = self._signer.sign(claims)
        if request.endpoint_version == 1:
            # The v1 endpoint writes numbers as strings, except where clients need integers.
            body: dict[str, Any] = {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "expires_on": str(claims["exp"]),
                "not_before": str(claims["nbf"]),
                "resource": outcome.audience,
                "access_token": access_token,
            }
        else:
            body = {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "scope": outcome.scope,
                "access_token": access_token,
            }
        if isinstance(subject, UserSubject) and outcome.sign_in is not None and sign_ins is not None:
            body.update(
                self._user_tokens(
                    tenant=tenant,
                    client_id=client.app_id,
                    subject=subject,
                    scope=outcome.scope,
                    sign_in=outcome.sign_in,
                    sign_ins=sign_ins,
                    now=int(now),
                )
            )
        return body

    @staticmethod
    def _note_outcome(trail: IssuanceTrail, outcome: GrantOutcome) -> None:
        resource = outcome.resource
        trail.resource_app_id = MICROSOFT_GRAPH.app_id if resource is None else resource.app_id
        trail.resource_display_name = (
            MICROSOFT_GRAPH.display_name if resource is None else resource.display_name
        )
        subject = outcome.subject
        if isinstance(subject, UserSubject):
            trail.user_id, trail.user_principal_name = subject.object_id, subject.user_principal_name
            trail.amr = subject.amr
        else:
            trail.service_principal_id = subject.service_principal_id

    def _enforce_conditional_access(
        self, ctx: GrantContext, outcome: GrantOutcome, claims_request: ClaimsRequest, trail: IssuanceTrail
    ) -> None:
        """Conditional Access once the grant has decided the subject and the resource (identity/protocol/
        conditional_access.py). Locations are checked at the client's address and, when a claims challenge
        names the address the resource saw (`xms_rp_ipaddr`), at that one too."""
        client = ctx.client.client
        subject = outcome.subject
        app_only = isinstance(subject, AppOnlySubject)
        kind = client_app_type(public_client=ctx.client.method == CLIENT_AUTH_PUBLIC, app_only=app_only)
        trail.client_app_type = kind.value
        if app_only and (outcome.acting_app_id is not None or client.app_id in _FIRST_PARTY_IDS):
            trail.notes.append("first-party application: not subject to workload identity policies")
            return
        if not ctx.tenant.has_policies:
            return
        policies = ctx.directory.find_policy_set(ctx.tenant.id)
        if not policies.policies:
            return
        sign_in = outcome.sign_in
        auth_time = None if sign_in is None else sign_in.auth_time.timestamp()
        addresses = [ctx.request.client_address]
        if claims_request.resource_ip is not None and claims_request.resource_ip not in addresses:
            addresses.append(claims_request.resource_ip)
        headers = {k.lower(): v for k, v in ctx.request.headers.items()}
        decision, platform = evaluate_issuance(
            policies,
            EvaluationInput(
                subject=subject,
                resource_app_id=trail.resource_app_id,
                client_app_id=outcome.acting_app_id or client.app_id,
                client_app_type=kind,
                user_agent=headers.get("user-agent"),
                client_os=headers.get("x-client-os"),
                addresses=tuple(addresses),
                auth_time=auth_time,
                now=ctx.now,
                display=trail.user_principal_name or client.display_name,
            ),
        )
        trail.decision, trail.platform = decision, platform.value
        has_authenticator = False
        if isinstance(subject, UserSubject) and decision.mfa_required:
            user = ctx.directory.find_user(ctx.tenant.id, subject.object_id)
            has_authenticator = user is not None and user.has_authenticator
        error = refusal(
            decision,
            policies,
            user_grant=not app_only,
            refresh=trail.grant_type == "refresh_token",
            on_behalf_of=trail.protocol == "onBehalfOf",
            has_authenticator=has_authenticator,
            resource=trail.resource_app_id,
            auth_time=auth_time,
            policy_error=PolicyRefusal,
        )
        if error is not None:
            raise error

    def _user_tokens(
        self,
        *,
        tenant: Tenant,
        client_id: str,
        subject: UserSubject,
        scope: str,
        sign_in: SignIn,
        sign_ins: SignInPort,
        now: int,
    ) -> dict[str, str]:
        """Refresh token (with `offline_access`), ID token (with `openid`) and MSAL's `client_info`."""
        asked = {s.lower() for s in split_scope(scope)}
        extra: dict[str, str] = {}
        if "offline_access" in asked:
            extra["refresh_token"] = sign_ins.issue_refresh_token(
                sign_in, inactivity_seconds=tenant.refresh_token_inactivity_seconds
            )
        if "openid" in asked:
            extra["id_token"] = self._signer.sign(
                id_token(
                    origin=self._origin,
                    tenant_id=tenant.id,
                    client_app_id=client_id,
                    subject=subject,
                    nonce=sign_in.nonce,
                    now=now,
                )
            )
        extra["client_info"] = client_info(subject.object_id, tenant.id)
        return extra

    def pairwise_sub(self, user_object_id: str, client_app_id: str) -> str:
        """Entra's `sub`: the same user has a different subject in each application."""
        digest = bytes.fromhex(self._digester.digest(f"sub|{user_object_id}|{client_app_id}"))
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
