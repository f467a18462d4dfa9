"""The config file's service connections, under a project (docs/pipelines-wif.md):

    projects:
      - name: web
        service_connections:
          - name: azure-prod
            tenant: contoso.test
            app: build-bot                      # or managed_identity: deployer (user-assigned)
            issuer: devops                      # the default; 'entra': the identity platform issues it
            pipelines: [deploy]                 # or all_pipelines: true
            create_federated_credential: true   # add (or set) the matching federated credential

Like the rest of the file, it adds and never takes away: a connection that exists (same name) is matched, and
the pipelines the file names are authorized; one that names another app or identity is an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from entryway.config.errors import ConfigError
from entryway.devops.audit.recorder import Actor
from entryway.devops.connections.service import (
    ConnectionService,
    Federation,
    IssuerMode,
    ServiceConnection,
    ServiceConnectionError,
    federated_credential_name,
    federation_of,
)
from entryway.devops.orgs.service import Organization
from entryway.devops.projects.service import Project
from entryway.identity.directory.service import DirectoryError, DirectoryService
from entryway.kit.clock import Clock

if TYPE_CHECKING:
    from entryway.config.declarative import ApplyReport, _Reader

KEYS = {
    "name",
    "tenant",
    "app",
    "managed_identity",
    "issuer",
    "pipelines",
    "all_pipelines",
    "create_federated_credential",
}


@contextmanager
def _at(cfg: _Reader) -> Iterator[None]:
    try:
        yield
    except (DirectoryError, ServiceConnectionError) as exc:
        raise ConfigError(f"{cfg.path}: {exc}") from exc


def apply_service_connections(
    session: Session,
    clock: Clock,
    directory: DirectoryService,
    *,
    org: Organization,
    project: Project,
    cfg: _Reader,
    devops_origin: str,
    actor: Actor,
    report: ApplyReport,
    identity_origin: str | None = None,
) -> None:
    connections = ConnectionService(session, clock, org=org, actor=actor)
    for sc_cfg in cfg.items("service_connections"):
        sc_cfg.check_keys(KEYS)
        with _at(sc_cfg):
            connection = _apply_connection(
                directory, connections, org=org, project=project, cfg=sc_cfg, report=report
            )
            if sc_cfg.boolean("create_federated_credential"):
                federation = federation_of(
                    connection,
                    organization_id=org.id,
                    organization=org.name,
                    project=project.name,
                    devops_origin=devops_origin,
                    identity_origin=identity_origin,
                )
                _apply_federated_credential(
                    directory, connection, federation, org=org, project=project, report=report
                )


def _client_id(directory: DirectoryService, cfg: _Reader) -> tuple[str, str]:
    """(tenant id, client id) of the app or user-assigned managed identity the connection names."""
    tenant = directory.find_tenant(cfg.text("tenant", required=True) or "")
    app_ref, mi_ref = cfg.text("app"), cfg.text("managed_identity")
    if (app_ref is None) == (mi_ref is None):
        raise ConfigError(f"{cfg.path}: give exactly one of 'app' or 'managed_identity'")
    if app_ref is not None:
        return tenant.id, directory.find_application(tenant, app_ref).app_id
    assert mi_ref is not None
    mi = directory.find_managed_identity(tenant, mi_ref)
    if mi.kind != "user":
        raise ConfigError(
            f"{cfg.path}.managed_identity: '{mi.name}' is system-assigned; a service connection needs a "
            "user-assigned managed identity"
        )
    return tenant.id, mi.app_id


def _apply_connection(
    directory: DirectoryService,
    connections: ConnectionService,
    *,
    org: Organization,
    project: Project,
    cfg: _Reader,
    report: ApplyReport,
) -> ServiceConnection:
    name = cfg.text("name", required=True) or ""
    issuer = cfg.text("issuer") or IssuerMode.DEVOPS.value
    if issuer not in {m.value for m in IssuerMode}:
        raise ConfigError(f"{cfg.path}.issuer: 'devops' or 'entra', not '{issuer}'")
    pipelines = cfg.strings("pipelines")
    all_pipelines = bool(cfg.boolean("all_pipelines"))
    tenant_id, client_id = _client_id(directory, cfg)
    connection = connections.find(project.id, name)
    if connection is None:
        report.note(f"service connection {org.name}/{project.name}/{name}")
        return connections.create(
            project.id,
            name=name,
            tenant_id=tenant_id,
            client_id=client_id,
            issuer_mode=IssuerMode(issuer),
            pipelines=pipelines,
            all_pipelines=all_pipelines,
        )
    if (connection.tenant_id, connection.client_id) != (tenant_id, client_id):
        raise ConfigError(
            f"{cfg.path}: service connection '{name}' exists with client id {connection.client_id}; the file "
            f"names {client_id}"
        )
    if cfg.text("issuer") is not None and connection.issuer_mode.value != issuer:
        # The issuer and subject of its tokens would change under the federated credentials that trust it.
        raise ConfigError(
            f"{cfg.path}: service connection '{name}' exists with issuer '{connection.issuer_mode.value}'; the "
            f"file names '{issuer}' (create a new connection to change the form)"
        )
    for pipeline in pipelines:
        if connections.authorize(project.id, connection.id, pipeline):
            report.note(f"pipeline {pipeline} may use service connection {name}")
    if all_pipelines and connections.set_all_pipelines(project.id, connection.id, True):
        report.note(f"every pipeline of {org.name}/{project.name} may use service connection {name}")
    return connections.get(project.id, connection.id)


def _apply_federated_credential(
    directory: DirectoryService,
    connection: ServiceConnection,
    federation: Federation,
    *,
    org: Organization,
    project: Project,
    report: ApplyReport,
) -> None:
    """Add the connection's federated credential, or set it to the connection's current subject."""
    fic_name = federated_credential_name(connection)
    description = f"Azure DevOps service connection {org.name}/{project.name}/{connection.name}"
    existing = {f.name.lower() for f in directory.list_federated_credentials(connection.client_id)}
    if fic_name.lower() not in existing:
        directory.add_federated_credential(
            connection.client_id,
            name=fic_name,
            issuer=federation.issuer,
            subject=federation.subject,
            audiences=[federation.audience],
            description=description,
        )
        report.note(f"federated credential {fic_name} for service connection {connection.name}")
    elif directory.update_federated_credential(
        connection.client_id,
        fic_name,
        issuer=federation.issuer,
        subject=federation.subject,
        audiences=[federation.audience],
        description=description,
    ):
        report.note(f"federated credential {fic_name} for service connection {connection.name} changed")
