"""First-start facts: the installation's deployment id, and the demo tenant, app and organization."""

from __future__ import annotations

from dataclasses import dataclass

from entryway.devops.orgs.service import AccessLevel, MemberKind, OrgService
from entryway.devops.web.app import DEPLOYMENT_ID_SETTING
from entryway.identity.directory.service import DirectoryService
from entryway.kit.ids import new_guid
from entryway.runtime import Runtime
from entryway.store.models import SettingRow

DEMO_SEEDED_SETTING = "demo_seeded"
DEMO_DOMAIN = "demo.entryway.test"
DEMO_APP = "entryway-demo"
DEMO_ORG = "demo"


@dataclass(frozen=True)
class DemoSeed:
    tenant_id: str
    tenant_domain: str
    client_id: str
    client_secret: str
    organization: str


def ensure_installation(runtime: Runtime) -> bool:
    """Record the installation's first start; True when this is it. At every start, bring the first-party
    apps up to date in every tenant (a tenant made by an older Entryway lacks the newer ones)."""
    with runtime.db.unit_of_work() as session:
        DirectoryService(session, runtime.clock, runtime.digester).ensure_first_party_apps()
        if session.get(SettingRow, DEPLOYMENT_ID_SETTING) is not None:
            return False
        session.add(SettingRow(name=DEPLOYMENT_ID_SETTING, value=new_guid()))
        return True


def seed_demo(runtime: Runtime) -> DemoSeed:
    """The demo world, in one unit of work: a tenant, an app with a fresh secret, an organization with the
    app's service principal as a Basic member."""
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
        session.add(SettingRow(name=DEMO_SEEDED_SETTING, value=tenant.id))
        assert secret.value is not None
        return DemoSeed(tenant.id, DEMO_DOMAIN, app.app_id, secret.value, org.name)


def demo_tenant_id(runtime: Runtime) -> str | None:
    with runtime.db.read() as session:
        row = session.get(SettingRow, DEMO_SEEDED_SETTING)
        return None if row is None else row.value
