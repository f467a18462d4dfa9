"""The declarative config file: tenants, users, apps and organizations created at start, idempotently.

Its format is a public interface (docs/config.md). Applying it is one unit of work: a file with any error
changes nothing. Applying the same file twice changes nothing the second time: existing tenants, users,
apps, secrets, certificates, federated credentials, managed identities and memberships are matched, not
recreated (a user's password is set only when the user is created).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from entryway.config.conditional_access import apply_conditional_access
from entryway.config.errors import ConfigError
from entryway.config.members import add_member, find_member
from entryway.config.pat_policies import apply_org_pat_policies, apply_tenant_extras
from entryway.config.pipelines import apply_pipelines
from entryway.config.service_connections import apply_service_connections
from entryway.devops.audit.recorder import Actor
from entryway.devops.leaks.service import LeakReporterError, LeakReporterService
from entryway.devops.orgs.policy import set_ip_conditional_access_validation
from entryway.devops.orgs.service import AccessLevel, Organization, OrgError, OrgService
from entryway.devops.pipelines.variables import PIPELINE_VARIABLES_PURPOSE, VariableCipher
from entryway.devops.projects.permissions import ProjectRole
from entryway.devops.projects.service import ProjectError, ProjectService
from entryway.identity.directory.service import DEFAULT_FIC_AUDIENCE, DirectoryError, DirectoryService
from entryway.kit.clock import Clock
from entryway.kit.ids import parse_guid
from entryway.runtime import Runtime
from entryway.store.models import ApplicationRow, ManagedIdentityRow, TenantRow


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.created.append(what)


class _Reader:
    """Typed access to a parsed YAML mapping, with the path of each value for error messages."""

    def __init__(self, data: Any, path: str, base_dir: Path | None = None) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping")
        self._data = data
        self.path = path
        self.base_dir = base_dir or Path.cwd()  # where relative file paths in the file start

    def check_keys(self, allowed: set[str]) -> None:
        unknown = set(self._data) - allowed
        if unknown:
            raise ConfigError(f"{self.path}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self._data.get(key)
        if value is None:
            if required:
                raise ConfigError(f"{self.path}.{key}: required")
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ConfigError(f"{self.path}.{key}: expected a string")
        return str(value)

    def raw(self, key: str) -> object:
        return self._data.get(key)

    def number(self, key: str) -> int | None:
        value = self._data.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{self.path}.{key}: expected a whole number")
        return value

    def boolean(self, key: str) -> bool | None:
        value = self._data.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise ConfigError(f"{self.path}.{key}: expected true or false")
        return value

    def given(self, key: str) -> bool:
        return self._data.get(key) is not None

    def strings(self, key: str) -> list[str]:
        value = self._data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self.path}.{key}: expected a list of strings")
        return list(value)

    def items(self, key: str) -> list[_Reader]:
        value = self._data.get(key, [])
        if not isinstance(value, list):
            raise ConfigError(f"{self.path}.{key}: expected a list")
        return [_Reader(item, f"{self.path}.{key}[{i}]", self.base_dir) for i, item in enumerate(value)]


def load_config(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc


def _parse_expiry(value: object, where: str) -> datetime | None:
    """`expires: 2027-06-30` (YAML reads a date), a quoted date, or a full ISO 8601 timestamp."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected an ISO 8601 date, like 2027-06-30")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: expected an ISO 8601 date, like 2027-06-30") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def apply_config(
    runtime: Runtime, data: Any, source: str = "config", *, base_dir: Path | None = None
) -> ApplyReport:
    """Create what the config declares and does not exist yet; all or nothing. Certificate `path`s are
    relative to `base_dir` (the config file's directory; default: the working directory)."""
    root = _Reader(data, source)
    root.base_dir = base_dir or Path.cwd()
    root.check_keys({"tenants", "organizations", "leak_reporters"})
    report = ApplyReport()
    with runtime.db.unit_of_work() as session:
        directory = DirectoryService(session, runtime.clock, runtime.digester)
        orgs = OrgService(session, runtime.clock)
        projects = ProjectService(session, runtime.clock, str(runtime.settings.data_dir / "git"))
        actor = Actor.local(f"config:{source}")
        for tenant_cfg in root.items("tenants"):
            with _at(tenant_cfg):
                _apply_tenant(directory, tenant_cfg, report)
                apply_tenant_extras(session, runtime.clock, directory, tenant_cfg, report=report, actor=actor)
                apply_conditional_access(session, runtime.clock, directory, tenant_cfg, report=report)
        for org_cfg in root.items("organizations"):
            with _at(org_cfg):
                org = _apply_org(directory, orgs, org_cfg, report)
                _apply_org_policies(session, runtime.clock, org, org_cfg, report=report, actor=actor)
                apply_org_pat_policies(
                    session, runtime.clock, directory, org, org_cfg, report=report, actor=actor
                )
            for project_cfg in org_cfg.items("projects"):
                with _at(project_cfg):
                    _apply_project(
                        directory, orgs, projects, org, cfg=project_cfg, actor=actor, report=report
                    )
                    apply_pipelines(
                        session,
                        runtime.clock,
                        VariableCipher(runtime.master_key.derive(PIPELINE_VARIABLES_PURPOSE)),
                        org=org,
                        project=projects.get(org, project_cfg.text("name", required=True) or ""),
                        cfg=project_cfg,
                        actor=actor,
                        report=report,
                    )
                    # After the project's pipelines: a connection may name them.
                    apply_service_connections(
                        session,
                        runtime.clock,
                        directory,
                        org=org,
                        project=projects.get(org, project_cfg.text("name", required=True) or ""),
                        cfg=project_cfg,
                        devops_origin=runtime.settings.devops_origin,
                        identity_origin=runtime.settings.identity_origin,
                        actor=actor,
                        report=report,
                    )
        for reporter_cfg in root.items("leak_reporters"):
            _apply_leak_reporter(session, runtime, reporter_cfg, report)
    return report


def _apply_leak_reporter(session: Session, runtime: Runtime, cfg: _Reader, report: ApplyReport) -> None:
    """`leak_reporters: [{name, public_key | public_key_path, key_identifier?}]`: a secret-scanning partner
    allowed to report leaked PATs (docs/pat-leaks.md). `public_key_path` is relative to the config file."""
    cfg.check_keys({"name", "public_key", "public_key_path", "key_identifier"})
    name = cfg.text("name", required=True) or ""
    text, path = cfg.text("public_key"), cfg.text("public_key_path")
    if (text is None) == (path is None):
        raise ConfigError(f"{cfg.path}: give exactly one of 'public_key' or 'public_key_path'")
    if path is not None:
        try:
            text = (cfg.base_dir / path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            where = f"{cfg.path}.public_key_path"
            raise ConfigError(f"{where}: cannot read {cfg.base_dir / path}: {exc}") from exc
    try:
        reporter, created = LeakReporterService(session, runtime.clock).add(
            name, text or "", cfg.text("key_identifier")
        )
    except LeakReporterError as exc:
        raise ConfigError(f"{cfg.path}: {exc}") from exc
    if created:
        report.note(f"leak reporter {reporter.name} ({reporter.key_identifier})")


@contextmanager
def _at(cfg: _Reader) -> Iterator[None]:
    """Name the part of the file that a directory or organization refusal came from."""
    try:
        yield
    except (DirectoryError, OrgError, ProjectError) as exc:
        raise ConfigError(f"{cfg.path}: {exc}") from exc


def _apply_tenant(directory: DirectoryService, cfg: _Reader, report: ApplyReport) -> None:
    cfg.check_keys(
        {
            "id",
            "domains",
            "display_name",
            "access_token_lifetime",
            "mfa_required_by_default",
            "refresh_token_inactivity",
            "sign_in_frequency",
            "users",
            "apps",
            "managed_identities",
            "groups",
            "pat_policies",
            "conditional_access",
        }
    )
    tenant_id = cfg.text("id")
    domains = cfg.strings("domains")
    if tenant_id is not None and parse_guid(tenant_id) is None:
        raise ConfigError(f"{cfg.path}.id: '{tenant_id}' is not a GUID")
    if not domains:
        raise ConfigError(f"{cfg.path}.domains: a tenant needs at least one domain")
    lifetime = cfg.number("access_token_lifetime")
    tenant = directory.find_tenant_or_none(tenant_id or domains[0])
    if tenant is None:
        tenant = directory.create_tenant(
            domains,
            tenant_id=tenant_id,
            display_name=cfg.text("display_name"),
            access_token_lifetime_seconds=lifetime or 3600,
        )
        report.note(f"tenant {tenant.id}")
        _apply_tenant_settings(directory, tenant, cfg, None)
    else:
        known = set(directory.domains_of(tenant))
        for domain in domains:
            if domain.lower() not in known:
                directory.add_domain(tenant, domain)
                report.note(f"domain {domain}")
        if lifetime is not None and lifetime != tenant.access_token_lifetime_seconds:
            directory.set_token_lifetime(tenant, lifetime)
            report.note(f"token lifetime {lifetime}s for {tenant.id}")
        _apply_tenant_settings(directory, tenant, cfg, report)

    _apply_users(directory, tenant, cfg, report)
    apps: list[tuple[ApplicationRow, _Reader]] = []
    for app_cfg in cfg.items("apps"):
        with _at(app_cfg):
            apps.append((_apply_app(directory, tenant, app_cfg, report), app_cfg))
    # Grants come after every app exists, so an app may be granted roles of an app declared after it.
    for app, app_cfg in apps:
        _apply_app_permissions(directory, tenant, app, app_cfg, report)
    _apply_managed_identities(directory, tenant, cfg, report)


def _apply_app_permissions(
    directory: DirectoryService, tenant: TenantRow, app: ApplicationRow, app_cfg: _Reader, report: ApplyReport
) -> None:
    for grant_cfg in app_cfg.items("grants"):
        grant_cfg.check_keys({"resource", "roles"})
        resource_ref = grant_cfg.text("resource", required=True)
        assert resource_ref is not None
        with _at(grant_cfg):
            # The tenant's own apps and the first-party ones (Microsoft Graph's app roles).
            resource = directory.find_enterprise_app(tenant, resource_ref)
            for role in grant_cfg.strings("roles"):
                directory.grant_app_role(tenant, app, resource, role)
    for consent_cfg in app_cfg.items("admin_consent"):
        consent_cfg.check_keys({"resource", "scopes"})
        resource_ref = consent_cfg.text("resource", required=True)
        assert resource_ref is not None
        scopes = consent_cfg.strings("scopes")
        if not scopes:
            raise ConfigError(f"{consent_cfg.path}.scopes: give at least one scope")
        with _at(consent_cfg):
            resource = directory.find_enterprise_app(tenant, resource_ref)
            if directory.grant_admin_consent(tenant, app, resource, scopes):
                report.note(f"admin consent for {app.display_name} to {resource.display_name}")


def _apply_tenant_settings(
    directory: DirectoryService, tenant: TenantRow, cfg: _Reader, report: ApplyReport | None
) -> None:
    """Set the sign-in settings the file gives and the tenant does not have yet (report None: a new tenant).
    `sign_in_frequency: 0` turns the sign-in frequency off."""
    mfa_default = cfg.boolean("mfa_required_by_default")
    inactivity = cfg.number("refresh_token_inactivity")
    frequency = cfg.number("sign_in_frequency")
    if mfa_default is not None and mfa_default != tenant.mfa_required_default:
        directory.set_mfa_required_default(tenant, mfa_default)
        if report:
            report.note(f"MFA required by default {'on' if mfa_default else 'off'} for {tenant.id}")
    if inactivity is not None and inactivity != tenant.refresh_token_inactivity_seconds:
        directory.set_refresh_token_inactivity(tenant, inactivity)
        if report:
            report.note(f"refresh token inactivity {inactivity}s for {tenant.id}")
    wanted = None if frequency == 0 else frequency
    if frequency is not None and wanted != tenant.sign_in_frequency_seconds:
        directory.set_sign_in_frequency(tenant, wanted)
        if report:
            report.note(f"sign-in frequency {frequency}s for {tenant.id}")


def _apply_users(directory: DirectoryService, tenant: TenantRow, cfg: _Reader, report: ApplyReport) -> None:
    for user_cfg in cfg.items("users"):
        user_cfg.check_keys({"upn", "password", "display_name", "mfa_required", "roles"})
        upn = user_cfg.text("upn", required=True)
        assert upn is not None
        mfa = user_cfg.boolean("mfa_required")
        user = directory.find_user(upn)
        if user is None:
            with _at(user_cfg):
                directory.create_user(
                    tenant, upn, user_cfg.text("password"), user_cfg.text("display_name"), mfa_required=mfa
                )
            report.note(f"user {upn}")
        elif mfa is not None and mfa != user.mfa_required:
            directory.set_user_mfa(user, mfa)
            report.note(f"MFA {'required' if mfa else 'not required'} for {upn}")


def _apply_app(
    directory: DirectoryService, tenant: TenantRow, cfg: _Reader, report: ApplyReport
) -> ApplicationRow:
    cfg.check_keys(
        {
            "name",
            "client_id",
            "secrets",
            "identifier_uris",
            "app_roles",
            "scopes",
            "grants",
            "public_client",
            "redirect_uris",
            "admin_consent",
            "certificates",
            "federated_credentials",
        }
    )
    name = cfg.text("name", required=True)
    assert name is not None
    client_id = cfg.text("client_id")
    public_client = cfg.boolean("public_client")
    redirect_uris = cfg.strings("redirect_uris")
    try:
        app = directory.find_application(tenant, client_id or name)
    except DirectoryError:
        app, _sp = directory.create_application(
            tenant,
            name,
            app_id=client_id,
            identifier_uris=cfg.strings("identifier_uris"),
            app_roles=cfg.strings("app_roles"),
            public_client=bool(public_client),
            redirect_uris=redirect_uris,
            scopes=cfg.strings("scopes"),
        )
        report.note(f"app {name} ({app.app_id})")
    else:
        if public_client is not None and public_client != app.public_client:
            directory.set_public_client(app, public_client)
            report.note(f"public client flows {'allowed' if public_client else 'refused'} for {name}")
        if directory.add_redirect_uris(app, redirect_uris):
            report.note(f"redirect URIs for {name}")
        if directory.add_scopes(app, cfg.strings("scopes")):
            report.note(f"exposed scopes for {name}")
    for secret_cfg in cfg.items("secrets"):
        secret_cfg.check_keys({"value", "expires", "display_name"})
        value = secret_cfg.text("value", required=True)
        assert value is not None
        if directory.has_secret(app, value):
            continue
        expires = _parse_expiry(secret_cfg.raw("expires"), f"{secret_cfg.path}.expires")
        directory.add_client_secret(
            app,
            value=value,
            expires_at=expires or directory.now() + timedelta(days=365),
            display_name=secret_cfg.text("display_name") or "config",
        )
        report.note(f"secret for {name}")
    for cert_cfg in cfg.items("certificates"):
        _apply_certificate(directory, app, cert_cfg, report)
    _apply_federated_credentials(directory, app, cfg, report)
    return app


def _apply_certificate(
    directory: DirectoryService, app: ApplicationRow, cfg: _Reader, report: ApplyReport
) -> None:
    """`path:` a PEM or DER file (relative to the config file), or `pem:` the PEM text itself."""
    cfg.check_keys({"path", "pem", "display_name", "expires"})
    path, text = cfg.text("path"), cfg.text("pem")
    if (path is None) == (text is None):
        raise ConfigError(f"{cfg.path}: give exactly one of 'path' or 'pem'")
    if path is not None:
        file = cfg.base_dir / path
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{cfg.path}.path: cannot read {file}: {exc.strerror}") from exc
    else:
        assert text is not None
        data = text.encode()
    expires = _parse_expiry(cfg.raw("expires"), f"{cfg.path}.expires")
    with _at(cfg):
        if directory.has_certificate(app, data):
            return
        cert = directory.add_certificate(
            app, data, display_name=cfg.text("display_name") or "", end_date=expires
        )
    report.note(f"certificate {cert.thumbprint_sha1} for {app.display_name}")


def _apply_federated_credentials(
    directory: DirectoryService, owner: ApplicationRow | ManagedIdentityRow, cfg: _Reader, report: ApplyReport
) -> None:
    """Create the federated credentials the file declares, and set what an existing one (same name)
    matches when the file says otherwise."""
    owner_name = owner.name if isinstance(owner, ManagedIdentityRow) else owner.display_name
    seen: set[str] = set()
    for fic_cfg in cfg.items("federated_credentials"):
        fic_cfg.check_keys(
            {"name", "issuer", "subject", "claims_matching_expression", "audiences", "description"}
        )
        name = fic_cfg.text("name", required=True)
        issuer = fic_cfg.text("issuer", required=True)
        assert name is not None
        assert issuer is not None
        if name.lower() in seen:
            raise ConfigError(f"{fic_cfg.path}.name: '{name}' is declared twice")
        seen.add(name.lower())
        audiences = fic_cfg.strings("audiences") if fic_cfg.given("audiences") else [DEFAULT_FIC_AUDIENCE]
        values: dict[str, Any] = {
            "issuer": issuer,
            "subject": fic_cfg.text("subject"),
            "claims_matching_expression": fic_cfg.text("claims_matching_expression"),
            "audiences": audiences,
            "description": fic_cfg.text("description") or "",
        }
        with _at(fic_cfg):
            existing = {f.name.lower() for f in directory.list_federated_credentials(owner)}
            if name.lower() not in existing:
                directory.add_federated_credential(owner, name=name, **values)
                report.note(f"federated credential {name} for {owner_name}")
            elif directory.update_federated_credential(owner, name, **values):
                report.note(f"federated credential {name} for {owner_name} changed")


def _apply_managed_identities(
    directory: DirectoryService, tenant: TenantRow, cfg: _Reader, report: ApplyReport
) -> None:
    """Create the managed identities the file declares. `on_host` is applied after every identity exists,
    identities leaving the host first, so the one system-assigned identity on the host can move in one file."""
    declared: list[tuple[ManagedIdentityRow, bool | None, _Reader]] = []
    for mi_cfg in cfg.items("managed_identities"):
        mi_cfg.check_keys({"name", "kind", "resource_id", "on_host", "federated_credentials"})
        name = mi_cfg.text("name", required=True)
        kind = mi_cfg.text("kind", required=True)
        assert name is not None
        assert kind is not None
        resource_id = mi_cfg.text("resource_id")
        on_host = mi_cfg.boolean("on_host")
        with _at(mi_cfg):
            mi = directory.find_managed_identity_or_none(tenant, name)
            if mi is None:
                mi = directory.create_managed_identity(tenant, name, kind=kind, resource_id=resource_id)
                report.note(f"managed identity {name} ({mi.app_id})")
            elif mi.kind != kind:
                raise ConfigError(f"{mi_cfg.path}.kind: '{name}' exists as a {mi.kind}-assigned identity")
            elif resource_id is not None and resource_id.lower() != mi.resource_id:
                raise ConfigError(
                    f"{mi_cfg.path}.resource_id: '{name}' exists with resource id {mi.resource_id}; "
                    "a resource id cannot change"
                )
        declared.append((mi, on_host, mi_cfg))
    for wanted in (False, True):
        for mi, on_host, mi_cfg in declared:
            if on_host is wanted and on_host != mi.on_host:
                with _at(mi_cfg):
                    directory.set_on_host(mi, on_host)
                report.note(f"managed identity {mi.name} {'on' if on_host else 'off'} the host")
    for mi, _on_host, mi_cfg in declared:
        _apply_federated_credentials(directory, mi, mi_cfg, report)


def _apply_org(
    directory: DirectoryService, orgs: OrgService, cfg: _Reader, report: ApplyReport
) -> Organization:
    cfg.check_keys(
        {"name", "tenant", "members", "projects", "pat_policies", "ip_conditional_access_validation"}
    )
    name = cfg.text("name", required=True)
    tenant_ref = cfg.text("tenant", required=True)
    assert name is not None
    assert tenant_ref is not None
    tenant = directory.find_tenant(tenant_ref)
    org = orgs.find(name)
    if org is None:
        org = orgs.create(name, tenant.id)
        report.note(f"organization {name}")
    elif org.tenant_id != tenant.id:
        raise ConfigError(f"{cfg.path}: organization '{name}' is connected to tenant {org.tenant_id}")
    for member_cfg in cfg.items("members"):
        member_cfg.check_keys({"app", "user", "managed_identity", "access", "organization_admin"})
        app_ref, upn = member_cfg.text("app"), member_cfg.text("user")
        managed_identity = member_cfg.text("managed_identity")
        if sum(ref is not None for ref in (app_ref, upn, managed_identity)) != 1:
            raise ConfigError(f"{member_cfg.path}: give exactly one of 'app', 'user' or 'managed_identity'")
        with _at(member_cfg):
            access = AccessLevel.parse(member_cfg.text("access") or "basic")
            member, changed = add_member(
                directory,
                orgs,
                org,
                app_ref=app_ref,
                upn=upn,
                managed_identity=managed_identity,
                access=access,
                organization_admin=member_cfg.boolean("organization_admin"),
            )
        if changed:
            report.note(f"member {member.principal_name} of {name}")
    return org


def _apply_org_policies(
    session: Session, clock: Clock, org: Organization, cfg: _Reader, *, report: ApplyReport, actor: Actor
) -> None:
    """`ip_conditional_access_validation: true|false` (absent: left as it is): the organization's "IP
    Conditional Access policy validation on non-interactive flows" (devops/orgs/policy.py)."""
    enabled = cfg.boolean("ip_conditional_access_validation")
    if enabled is None:
        return
    _, changed = set_ip_conditional_access_validation(session, clock, org.name, enabled, actor)
    if changed:
        report.note(f"IP Conditional Access policy validation {'on' if enabled else 'off'} for {org.name}")


def _apply_project(
    directory: DirectoryService,
    orgs: OrgService,
    projects: ProjectService,
    org: Organization,
    *,
    cfg: _Reader,
    actor: Actor,
    report: ApplyReport,
) -> None:
    """A project, its repositories and its members' roles; what exists is matched, never removed."""
    cfg.check_keys({"name", "description", "repositories", "members", "service_connections", "pipelines"})
    name = cfg.text("name", required=True)
    assert name is not None
    project = projects.find(org, name)
    if project is None:
        project = projects.create(org, name, actor, description=cfg.text("description") or "")
        report.note(f"project {org.name}/{name}")
    existing = {r.name.lower() for r in projects.list_repositories(org, project=project)}
    for index, repo_name in enumerate(cfg.strings("repositories")):
        if repo_name.lower() in existing:
            continue
        try:
            projects.create_repository(org, project, repo_name, actor)
        except ProjectError as exc:
            raise ConfigError(f"{cfg.path}.repositories[{index}]: {exc}") from exc
        existing.add(repo_name.lower())
        report.note(f"repository {org.name}/{name}/{repo_name}")
    for member_cfg in cfg.items("members"):
        member_cfg.check_keys({"app", "user", "managed_identity", "role"})
        refs = (member_cfg.text("app"), member_cfg.text("user"), member_cfg.text("managed_identity"))
        if sum(ref is not None for ref in refs) != 1:
            raise ConfigError(f"{member_cfg.path}: give exactly one of 'app', 'user' or 'managed_identity'")
        with _at(member_cfg):
            role_text = member_cfg.text("role", required=True) or ""
            try:
                role = ProjectRole.parse(role_text)
            except ValueError as exc:
                raise ConfigError(f"{member_cfg.path}.role: {exc}") from exc
            member = find_member(directory, orgs, org, app_ref=refs[0], upn=refs[1], managed_identity=refs[2])
            if projects.set_role(org, project, member, role, actor):
                report.note(f"{member.principal_name} {role.value} of {org.name}/{name}")
