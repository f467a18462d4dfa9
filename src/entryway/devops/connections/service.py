"""Service connections: create, look up, rename, authorize pipelines, delete. Never commits.

A connection names the app registration or user-assigned managed identity (tenant and client id) that a
pipeline signs in as through workload identity federation; no secret is stored anywhere. What the
identity platform must trust for it, the issuer and subject of the federated credential, is derived from the
connection (`federation_of`), as Azure DevOps shows it on the connection's page.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from entryway.devops.audit.recorder import Actor, record_change_by
from entryway.devops.connections.repository import ConnectionRepository
from entryway.devops.oidc.issuer import AUDIENCE, connection_subject, issuer_url
from entryway.devops.orgs.service import Organization
from entryway.identity.directory.first_party import AZURE_DEVOPS
from entryway.identity.protocol.claims import v2_issuer
from entryway.identity.protocol.service_connections import entra_connection_subject
from entryway.kit.clock import Clock
from entryway.kit.ids import new_guid, parse_guid
from entryway.store.models import ServiceConnectionPipelineRow, ServiceConnectionRow

CONNECTION_TYPE = "azurerm"
SCHEME = "WorkloadIdentityFederation"
MAX_NAME_LENGTH = 256


class IssuerMode(enum.StrEnum):
    DEVOPS = "devops"  # the DevOps service's own issuer (Azure DevOps' vstoken.dev.azure.com)
    ENTRA = "entra"  # the Entra-issued form (Azure DevOps' default for new connections since 2025)


class ServiceConnectionError(ValueError):
    """A refused change or a connection that is not there; the message is for the administrator."""


@dataclass(frozen=True)
class ServiceConnection:
    id: str
    project_id: str
    name: str
    tenant_id: str
    client_id: str
    issuer_mode: IssuerMode
    all_pipelines: bool
    pipeline_ids: tuple[int, ...]
    created_at: datetime
    updated_at: datetime

    def authorizes(self, pipeline_id: int) -> bool:
        return self.all_pipelines or pipeline_id in self.pipeline_ids


@dataclass(frozen=True)
class Federation:
    """What the federated credential on the app or managed identity must say to trust the connection."""

    issuer: str
    subject: str
    audience: str


def federation_of(
    connection: ServiceConnection,
    *,
    organization_id: str,
    organization: str,
    project: str,
    devops_origin: str,
    identity_origin: str | None = None,
) -> Federation:
    """The DevOps form: the DevOps service's issuer and a subject of names. The Entra form: the identity
    platform's v2 issuer for the connection's tenant, and a subject of ids (protocol/service_connections.py),
    so a rename changes nothing."""
    if connection.issuer_mode is IssuerMode.ENTRA:
        if identity_origin is None:
            raise ServiceConnectionError("the Entra-issued form needs the identity platform's origin")
        return Federation(
            issuer=v2_issuer(identity_origin.rstrip("/"), connection.tenant_id),
            subject=entra_connection_subject(
                connection.tenant_id, AZURE_DEVOPS.app_id, organization_id, connection.id
            ),
            audience=AUDIENCE,
        )
    return Federation(
        issuer=issuer_url(devops_origin, organization_id),
        subject=connection_subject(organization, project, connection.name),
        audience=AUDIENCE,
    )


def federated_credential_name(connection: ServiceConnection) -> str:
    """The federated credential `--create-federated-credential` (and the config file) makes for a connection:
    named by the connection's id, so it stays the same credential when the connection is renamed."""
    return f"sc-{connection.id}"


def check_connection_name(name: str) -> str:
    """1-256 characters, no control characters, no leading or trailing spaces (they would be invisible in the
    subject the federated credential must match exactly)."""
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ServiceConnectionError(f"a service connection name has 1 to {MAX_NAME_LENGTH} characters")
    if name != name.strip():
        raise ServiceConnectionError(f"service connection name '{name}' starts or ends with white space")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise ServiceConnectionError("a service connection name cannot contain control characters")
    return name


def _guid(value: str, what: str) -> str:
    guid = parse_guid(value.strip())
    if guid is None:
        raise ServiceConnectionError(f"{what} '{value}' is not a GUID")
    return guid


class ConnectionService:
    """With `org` and `actor`, every change is also an audit row in the same unit of work (the CLI and the
    config file pass them; a caller without them changes nothing it must answer for, e.g. a test's setup)."""

    def __init__(
        self,
        session: Session,
        clock: Clock,
        *,
        org: Organization | None = None,
        actor: Actor | None = None,
    ) -> None:
        self._session = session
        self._repo = ConnectionRepository(session)
        self._clock = clock
        self._org = org
        self._actor = actor

    def _audit(self, action: str, connection: ServiceConnectionRow, **details: object) -> None:
        """Azure DevOps' audit action names (Library.ServiceConnection*, Pipelines.ResourceAuthorized*)."""
        if self._org is None or self._actor is None:
            return
        record_change_by(
            self._session,
            clock=self._clock,
            organization=self._org,
            actor=self._actor,
            action=action,
            details={
                "connectionId": connection.id,
                "connectionName": connection.name,
                "projectId": connection.project_id,
                **details,
            },
        )

    def _to_connection(self, row: ServiceConnectionRow) -> ServiceConnection:
        return ServiceConnection(
            id=row.id,
            project_id=row.project_id,
            name=row.name,
            tenant_id=row.tenant_id,
            client_id=row.client_id,
            issuer_mode=IssuerMode(row.issuer_mode),
            all_pipelines=row.all_pipelines,
            pipeline_ids=tuple(self._repo.pipeline_ids(row.id)),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    # --- look-ups -----------------------------------------------------------------------------------

    def find(self, project_id: str, id_or_name: str) -> ServiceConnection | None:
        """The project's connection with this id or name (names are case-insensitive)."""
        row = self._repo.find(project_id, id_or_name)
        return None if row is None else self._to_connection(row)

    def get(self, project_id: str, id_or_name: str) -> ServiceConnection:
        found = self.find(project_id, id_or_name)
        if found is None:
            raise ServiceConnectionError(f"service connection '{id_or_name}' not found in the project")
        return found

    def find_for_pipeline(
        self, project_id: str, connection_id: str, pipeline_id: int
    ) -> ServiceConnection | None:
        """The connection a job of `pipeline_id` asks a token for: by id only, in the job's project, and
        authorized for the pipeline; None otherwise (the caller cannot tell which)."""
        guid = parse_guid(connection_id.strip())
        if guid is None:
            return None
        row = self._repo.find_by_id(guid)
        if row is None or row.project_id != project_id:
            return None
        connection = self._to_connection(row)
        return connection if connection.authorizes(pipeline_id) else None

    def list_connections(self, project_id: str) -> list[ServiceConnection]:
        return [self._to_connection(r) for r in self._repo.list_for_project(project_id)]

    def pipeline_names(self, connection: ServiceConnection) -> list[str]:
        names = self._repo.pipeline_names(list(connection.pipeline_ids))
        return [names.get(pid, str(pid)) for pid in connection.pipeline_ids]

    # --- changes ------------------------------------------------------------------------------------

    def create(
        self,
        project_id: str,
        *,
        name: str,
        tenant_id: str,
        client_id: str,
        issuer_mode: IssuerMode = IssuerMode.DEVOPS,
        pipelines: Sequence[str] = (),
        all_pipelines: bool = False,
    ) -> ServiceConnection:
        """A new connection; `pipelines` (names or ids) may use it, or every pipeline with `all_pipelines`."""
        check_connection_name(name)
        if self._repo.find(project_id, name) is not None:
            raise ServiceConnectionError(f"the project already has a service connection named '{name}'")
        if all_pipelines and pipelines:
            raise ServiceConnectionError("give either pipelines or all pipelines, not both")
        pipeline_ids = [self._pipeline_id(project_id, p) for p in pipelines]
        now = self._clock.now()
        row = ServiceConnectionRow(
            id=new_guid(),
            project_id=project_id,
            name=name,
            name_key=name.lower(),
            type=CONNECTION_TYPE,
            scheme=SCHEME,
            tenant_id=_guid(tenant_id, "tenant id"),
            client_id=_guid(client_id, "client id"),
            issuer_mode=issuer_mode.value,
            all_pipelines=all_pipelines,
            created_at=now,
            updated_at=now,
        )
        self._repo.add(row)
        for pipeline_id in dict.fromkeys(pipeline_ids):
            self._repo.add(
                ServiceConnectionPipelineRow(connection_id=row.id, pipeline_id=pipeline_id, created_at=now)
            )
        self._audit(
            "Library.ServiceConnectionCreated",
            row,
            tenantId=row.tenant_id,
            clientId=row.client_id,
            issuer=row.issuer_mode,
            pipelines="all" if all_pipelines else ",".join(map(str, dict.fromkeys(pipeline_ids))),
        )
        return self._to_connection(row)

    def rename(self, project_id: str, id_or_name: str, new_name: str) -> ServiceConnection:
        """The subject of the connection's tokens changes with its name: a federated credential naming the old
        subject stops matching (AADSTS700213), as in Azure DevOps."""
        row = self._get_row(project_id, id_or_name)
        check_connection_name(new_name)
        other = self._repo.find(project_id, new_name)
        if other is not None and other.id != row.id:
            raise ServiceConnectionError(f"the project already has a service connection named '{new_name}'")
        old_name = row.name
        row.name, row.name_key, row.updated_at = new_name, new_name.lower(), self._clock.now()
        self._repo.flush()
        self._audit("Library.ServiceConnectionPropertyChanged", row, previousName=old_name)
        return self._to_connection(row)

    def authorize(self, project_id: str, id_or_name: str, pipeline: str) -> bool:
        """Let a pipeline (name or id) use the connection; True when that changed."""
        row = self._get_row(project_id, id_or_name)
        pipeline_id = self._pipeline_id(project_id, pipeline)
        if self._repo.is_authorized(row.id, pipeline_id):
            return False
        self._repo.add(
            ServiceConnectionPipelineRow(
                connection_id=row.id, pipeline_id=pipeline_id, created_at=self._clock.now()
            )
        )
        self._audit("Pipelines.ResourceAuthorizedForPipeline", row, pipelineId=pipeline_id)
        return True

    def set_all_pipelines(self, project_id: str, id_or_name: str, all_pipelines: bool) -> bool:
        row = self._get_row(project_id, id_or_name)
        if row.all_pipelines == all_pipelines:
            return False
        row.all_pipelines, row.updated_at = all_pipelines, self._clock.now()
        self._repo.flush()
        action = (
            "Pipelines.ResourceAuthorizedForAllPipelines"
            if all_pipelines
            else "Pipelines.ResourceNotAuthorizedForAllPipelines"
        )
        self._audit(action, row)
        return True

    def delete(self, project_id: str, id_or_name: str) -> ServiceConnection:
        row = self._get_row(project_id, id_or_name)
        connection = self._to_connection(row)
        self._audit("Library.ServiceConnectionDeleted", row)
        self._repo.delete(row.id)
        return connection

    def _get_row(self, project_id: str, id_or_name: str) -> ServiceConnectionRow:
        row = self._repo.find(project_id, id_or_name)
        if row is None:
            raise ServiceConnectionError(f"service connection '{id_or_name}' not found in the project")
        return row

    def _pipeline_id(self, project_id: str, pipeline: str) -> int:
        row = self._repo.find_pipeline(project_id, pipeline)
        if row is None:
            raise ServiceConnectionError(f"pipeline '{pipeline}' not found in the project")
        return row.id
