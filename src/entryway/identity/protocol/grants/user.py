"""What every user grant shares once it has a sign-in: the user, the delegated scopes, the subject."""

from __future__ import annotations

from entryway.identity.protocol.claims import UserSubject
from entryway.identity.protocol.delegation import resolve_delegation
from entryway.identity.protocol.errors import INVALID_GRANT, USER_DISABLED, OAuthError
from entryway.identity.protocol.pipeline import GrantContext, GrantOutcome
from entryway.identity.protocol.sign_ins import SignIn, SignInPort


def require_sign_ins(ctx: GrantContext) -> SignInPort:
    if ctx.sign_ins is None:  # the web layer always provides one for user grants
        raise RuntimeError("user grants need a SignInPort")
    return ctx.sign_ins


def user_outcome(ctx: GrantContext, sign_in: SignIn, scope: str) -> GrantOutcome:
    """The token for `scope` on behalf of the sign-in's user, if the user may still have it."""
    client = ctx.client.client
    if sign_in.tenant_id != ctx.tenant.id or sign_in.client_id != client.app_id:
        raise OAuthError(INVALID_GRANT, detail="grant issued to another tenant or client")
    user = ctx.directory.find_user(ctx.tenant.id, sign_in.user_id)
    if user is None:
        raise OAuthError(INVALID_GRANT, detail="the user no longer exists")
    ctx.trail.user_id, ctx.trail.user_principal_name = user.object_id, user.user_principal_name
    if not user.account_enabled:
        raise OAuthError(USER_DISABLED, detail=f"user {user.object_id} is disabled")
    delegation = resolve_delegation(
        scope,
        tenant=ctx.tenant,
        client=client,
        user_id=user.object_id,
        directory=ctx.directory,
        consents=require_sign_ins(ctx),
    )
    memberships = ctx.directory.find_memberships(ctx.tenant.id, user.object_id)
    subject = UserSubject(
        object_id=user.object_id,
        user_principal_name=user.user_principal_name,
        display_name=user.display_name,
        pairwise_sub=ctx.pairwise_sub(user.object_id, client.app_id),
        scopes=delegation.scopes,
        amr=sign_in.amr,
        auth_time=int(sign_in.auth_time.timestamp()),
        client_address=ctx.request.client_address,
        groups=memberships.groups,
        wids=memberships.roles,
    )
    return GrantOutcome(
        delegation.audience,
        delegation.access_token_version,
        scope,
        subject,
        sign_in,
        resource=delegation.resource,
    )
