"""First-start facts: the installation's deployment id, and the demo tenant, app and organization."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from entryway.config.members import add_member
from entryway.devops.orgs.service import AccessLevel, MemberKind, OrgService
from entryway.devops.web.app import DEPLOYMENT_ID_SETTING
from entryway.identity.directory.installation import register_devops_web_client
from entryway.identity.directory.service import DirectoryService
from entryway.kit.ids import new_guid
from entryway.runtime import Runtime
from entryway.store.models import SettingRow

DEMO_SEEDED_SETTING = "demo_seeded"
DEMO_DOMAIN = "demo.entryway.test"
DEMO_APP = "entryway-demo"
DEMO_ORG = "demo"
DEMO_USER = f"alex@{DEMO_DOMAIN}"
DEMO_USER_NAME = "Alex Demo"
DEMO_PASSWORD_ENV = "ENTRYWAY_DEMO_PASSWORD"  # noqa: S105 - a variable name, not a password


@dataclass(frozen=True)
class DemoSeed:
    tenant_id: str
    tenant_domain: str
    client_id: str
    client_secret: str
    organization: str
    # The demo user; the password is None when it came from ENTRYWAY_DEMO_PASSWORD (then it is not printed).
    user_upn: str = ""
    user_password: str | None = None


def mint_password() -> str:
    """Four groups of four letters and digits (about 95 bits): easy to type from a banner."""
    alphabet = string.ascii_letters + string.digits
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))


def ensure_installation(runtime: Runtime) -> bool:
    """Record the installation's first start; True when this is it. At every start, bring the first-party
    apps up to date in every tenant (a tenant made by an older Entryway lacks the newer ones)."""
    with runtime.db.unit_of_work() as session:
        DirectoryService(session, runtime.clock, runtime.digester).ensure_first_party_apps()
        register_devops_web_client(
            session,
            runtime.clock,
            runtime.digester,
            devops_origin=runtime.settings.devops_origin,
            secret=runtime.devops_web_client_secret,
        )
        if session.get(SettingRow, DEPLOYMENT_ID_SETTING) is not None:
            return False
        session.add(SettingRow(name=DEPLOYMENT_ID_SETTING, value=new_guid()))
        return True


def seed_demo(runtime: Runtime, password: str | None = None) -> DemoSeed:
    """The demo world, in one unit of work: a tenant, an app with a fresh secret, a user (with `password`,
    else a minted one), an organization with the app's service principal and the user as Basic members."""
    minted = mint_password() if password is None else None
    with runtime.db.unit_of_work() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        tenant = directory.create_tenant([DEMO_DOMAIN], display_name="Entryway Demo")
        app, sp = directory.create_application(tenant, DEMO_APP)
        secret = directory.add_client_secret(app, display_name="demo")
        orgs = OrgService(session, runtime.clock)
        org = orgs.create(DEMO_ORG, tenant.id)
        orgs.add_member(
            org,
            object_id=sp.object_id,
            kind=MemberKind.SERVICE_PRINCIPAL,
            display_name=app.display_name,
            principal_name=app.app_id,
            access_level=AccessLevel.BASIC,
        )
        user = directory.create_user(tenant, DEMO_USER, password or minted, DEMO_USER_NAME)
        add_member(directory, orgs, org, upn=user.user_principal_name, access=AccessLevel.BASIC)
        session.add(SettingRow(name=DEMO_SEEDED_SETTING, value=tenant.id))
        assert secret.value is not None
        return DemoSeed(
            tenant.id, DEMO_DOMAIN, app.app_id, secret.value, org.name, user.user_principal_name, minted
        )


def demo_tenant_id(runtime: Runtime) -> str | None:
    with runtime.db.read() as session:
        row = session.get(SettingRow, DEMO_SEEDED_SETTING)
        return None if row is None else row.value
