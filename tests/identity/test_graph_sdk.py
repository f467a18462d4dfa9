"""Microsoft's Graph SDK for Python (msgraph-sdk) against the Graph routes on the identity origin: what an
administrator's automation does with Conditional Access and the sign-in log, through the SDK's own request
builders, models and errors. Pointed at Entryway with two settings only: the request adapter's base URL and the
host the authentication provider may send tokens to (docs/conditional-access.md#pointing-graph-clients-at-it).

Own tenant graphsdk.test; the one policy written targets a user who never signs in, and is deleted again."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from azure.identity import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.audit_logs.sign_ins.sign_ins_request_builder import SignInsRequestBuilder
from msgraph.generated.models.conditional_access_applications import ConditionalAccessApplications
from msgraph.generated.models.conditional_access_client_app import ConditionalAccessClientApp
from msgraph.generated.models.conditional_access_condition_set import ConditionalAccessConditionSet
from msgraph.generated.models.conditional_access_grant_control import ConditionalAccessGrantControl
from msgraph.generated.models.conditional_access_grant_controls import ConditionalAccessGrantControls
from msgraph.generated.models.conditional_access_locations import ConditionalAccessLocations
from msgraph.generated.models.conditional_access_policy import ConditionalAccessPolicy
from msgraph.generated.models.conditional_access_policy_state import ConditionalAccessPolicyState
from msgraph.generated.models.conditional_access_users import ConditionalAccessUsers
from msgraph.generated.models.i_pv4_cidr_range import IPv4CidrRange
from msgraph.generated.models.i_pv6_cidr_range import IPv6CidrRange
from msgraph.generated.models.ip_named_location import IpNamedLocation
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph_core import GraphClientFactory

from entryway.config.declarative import apply_config
from tests.conftest import DEVOPS_RESOURCE, Instance

T = TypeVar("T")

TENANT = "2b7e4c1a-6d3f-4a8e-9c5b-1f0e2d3c4b5a"
ADMIN_BOT = ("4c8f2a6e-1b5d-4e9a-8c3f-7a6b5c4d3e2f", "graph-sdk-admin-secret-0123456789abcdefghij")
PLAIN_BOT = ("5d9a3b7f-2c6e-4fab-9d4a-8b7c6d5e4f3a", "graph-sdk-plain-secret-0123456789abcdefghij")
TARGET_UPN = "target@graphsdk.test"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"

CONFIG = f"""\
tenants:
  - id: {TENANT}
    domains: [graphsdk.test]
    users:
      - {{upn: {TARGET_UPN}, password: "Never-Signs-In-0042", display_name: Target}}
    apps:
      - name: graph-sdk-admin
        client_id: {ADMIN_BOT[0]}
        secrets: [{{value: "{ADMIN_BOT[1]}"}}]
        grants:
          - {{resource: Microsoft Graph, roles: [Policy.ReadWrite.ConditionalAccess, AuditLog.Read.All]}}
      - name: graph-sdk-plain
        client_id: {PLAIN_BOT[0]}
        secrets: [{{value: "{PLAIN_BOT[1]}"}}]
"""


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """The SDK is async; each test step runs to completion on a loop of its own, in a thread of its own (a
    Playwright test earlier in the session may have left an event loop running in the main thread)."""
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(asyncio.run(coroutine))
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=120)
    if errors:
        raise errors[0]
    assert results, "the SDK call did not finish"
    return results[0]


class Graph:
    """A GraphServiceClient for one app, built anew inside each event loop (httpx clients belong to one)."""

    def __init__(self, instance: Instance, app: tuple[str, str]) -> None:
        self._instance = instance
        self._credential = ClientSecretCredential(
            TENANT,
            app[0],
            app[1],
            authority=instance.identity,
            disable_instance_discovery=True,
            connection_verify=instance.ca_bundle,
        )

    def close(self) -> None:
        self._credential.close()

    @asynccontextmanager
    async def client(self) -> AsyncIterator[GraphServiceClient]:
        host = urlsplit(self._instance.identity).hostname
        assert host is not None
        auth = AzureIdentityAuthenticationProvider(
            self._credential, scopes=[GRAPH_SCOPE], allowed_hosts=[host]
        )
        # The SDK wraps the client's transport in its middleware, whose close does not reach the connection
        # pool: the pool is closed here itself.
        transport = httpx.AsyncHTTPTransport(
            verify=ssl.create_default_context(cafile=self._instance.ca_bundle)
        )
        http = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(transport=transport)
        )
        adapter = GraphRequestAdapter(auth, client=http)
        adapter.base_url = f"{self._instance.identity}/graph/v1.0"
        try:
            yield GraphServiceClient(request_adapter=adapter)
        finally:
            await http.aclose()
            await transport.aclose()


@pytest.fixture(scope="module")
def admin(entryway: Instance) -> Iterator[Graph]:
    apply_config(entryway.runtime, yaml.safe_load(CONFIG), source="test_graph_sdk")
    graph = Graph(entryway, ADMIN_BOT)
    yield graph
    graph.close()


def _target_id(entryway: Instance) -> str:
    from sqlalchemy import select

    from entryway.store.models import UserRow

    with entryway.runtime.db.read() as session:
        return session.scalars(
            select(UserRow.object_id).where(UserRow.user_principal_name == TARGET_UPN)
        ).one()


def _policy(name: str, user_id: str, office_id: str) -> ConditionalAccessPolicy:
    return ConditionalAccessPolicy(
        display_name=name,
        state=ConditionalAccessPolicyState.EnabledForReportingButNotEnforced,
        conditions=ConditionalAccessConditionSet(
            users=ConditionalAccessUsers(include_users=[user_id]),
            applications=ConditionalAccessApplications(include_applications=[DEVOPS_RESOURCE]),
            client_app_types=[ConditionalAccessClientApp.All],
            locations=ConditionalAccessLocations(include_locations=["All"], exclude_locations=[office_id]),
        ),
        grant_controls=ConditionalAccessGrantControls(
            operator="OR", built_in_controls=[ConditionalAccessGrantControl.Block]
        ),
    )


def test_an_administrators_automation_manages_policies_and_locations(
    entryway: Instance, admin: Graph
) -> None:
    target = _target_id(entryway)

    async def scenario() -> dict[str, Any]:
        async with admin.client() as client:
            return await steps(client.identity.conditional_access)

    async def steps(ca: Any) -> dict[str, Any]:
        office = await ca.named_locations.post(
            IpNamedLocation(
                display_name="SDK Office",
                is_trusted=True,
                ip_ranges=[
                    IPv4CidrRange(cidr_address="10.20.0.0/16"),
                    IPv6CidrRange(cidr_address="fd20::/48"),
                ],
            )
        )
        assert isinstance(office, IpNamedLocation)
        assert office.id
        created = await ca.policies.post(_policy("SDK: DevOps from the office", target, office.id))
        assert created is not None
        assert created.id
        listed = await ca.policies.get()
        one = await ca.policies.by_conditional_access_policy_id(created.id).get()
        await ca.policies.by_conditional_access_policy_id(created.id).patch(
            ConditionalAccessPolicy(state=ConditionalAccessPolicyState.Disabled)
        )
        patched = await ca.policies.by_conditional_access_policy_id(created.id).get()
        await ca.named_locations.by_named_location_id(office.id).patch(
            IpNamedLocation(ip_ranges=[IPv4CidrRange(cidr_address="10.21.0.0/16")])
        )
        moved = await ca.named_locations.by_named_location_id(office.id).get()
        locations = await ca.named_locations.get()
        await ca.policies.by_conditional_access_policy_id(created.id).delete()
        await ca.named_locations.by_named_location_id(office.id).delete()
        try:
            await ca.policies.by_conditional_access_policy_id(created.id).get()
        except ODataError as gone:
            return {
                "office": office,
                "created": created,
                "listed": listed,
                "one": one,
                "patched": patched,
                "moved": moved,
                "locations": locations,
                "gone": gone,
            }
        raise AssertionError("a deleted policy was still found")

    seen = run(scenario())
    office, created = seen["office"], seen["created"]
    assert [type(r).__name__ for r in office.ip_ranges] == ["IPv4CidrRange", "IPv6CidrRange"]
    assert office.created_date_time is not None
    assert created.state == ConditionalAccessPolicyState.EnabledForReportingButNotEnforced
    assert created.conditions.users.include_users == [target]
    assert created.conditions.locations.exclude_locations == [office.id]
    assert created.grant_controls.built_in_controls == [ConditionalAccessGrantControl.Block]
    assert created.created_date_time is not None
    assert [p.display_name for p in seen["listed"].value] == ["SDK: DevOps from the office"]
    assert seen["one"].id == created.id
    assert seen["patched"].state == ConditionalAccessPolicyState.Disabled
    assert seen["patched"].modified_date_time is not None
    assert [r.cidr_address for r in seen["moved"].ip_ranges] == ["10.21.0.0/16"]
    assert seen["moved"].is_trusted is True  # PATCH changes only what it names
    assert [type(loc).__name__ for loc in seen["locations"].value] == ["IpNamedLocation"]
    gone: ODataError = seen["gone"]
    assert gone.response_status_code == 404
    assert gone.error is not None
    assert gone.error.code == "ResourceNotFound"


def test_graphs_errors_reach_the_sdk_as_odata_errors(entryway: Instance, admin: Graph) -> None:
    target = _target_id(entryway)

    plain_bot = Graph(entryway, PLAIN_BOT)

    async def scenario() -> list[ODataError]:
        async with admin.client() as client, plain_bot.client() as plain:
            return await steps(client.identity.conditional_access, plain)

    async def steps(ca: Any, plain: GraphServiceClient) -> list[ODataError]:
        errors: list[ODataError] = []
        office = await ca.named_locations.post(
            IpNamedLocation(display_name="SDK Errors", ip_ranges=[IPv4CidrRange(cidr_address="10.30.0.0/16")])
        )
        assert office is not None
        assert office.id
        attempts = [
            # The name is taken (Entryway keeps names unique per tenant).
            ca.named_locations.post(
                IpNamedLocation(
                    display_name="sdk errors", ip_ranges=[IPv4CidrRange(cidr_address="10.31.0.0/16")]
                )
            ),
            # A range with host bits set.
            ca.named_locations.post(
                IpNamedLocation(
                    display_name="SDK Bad", ip_ranges=[IPv4CidrRange(cidr_address="10.32.0.1/16")]
                )
            ),
            # A policy naming a location that does not exist.
            ca.policies.post(_policy("SDK: nowhere", target, "00000000-0000-0000-0000-00000000dead")),
            # Deleting a location a policy uses: made below, then refused.
        ]
        for attempt in attempts:
            try:
                await attempt
            except ODataError as refused:
                errors.append(refused)
        used = await ca.policies.post(_policy("SDK: uses the location", target, office.id))
        assert used is not None
        assert used.id
        try:
            await ca.named_locations.by_named_location_id(office.id).delete()
        except ODataError as refused:
            errors.append(refused)
        await ca.policies.by_conditional_access_policy_id(used.id).delete()
        await ca.named_locations.by_named_location_id(office.id).delete()
        # An app without Graph permissions is refused with Graph's 403.
        try:
            await plain.identity.conditional_access.policies.get()
        except ODataError as refused:
            errors.append(refused)
        return errors

    try:
        errors = run(scenario())
    finally:
        plain_bot.close()
    assert [(e.response_status_code, e.error.code if e.error else None) for e in errors] == [
        (409, "Conflict"),
        (400, "BadRequest"),
        (400, "BadRequest"),
        (409, "Conflict"),
        (403, "AccessDenied"),
    ]
    assert all(e.error is not None and e.error.message for e in errors)


def test_the_sign_in_log_is_read_with_the_sdks_query_parameters(entryway: Instance, admin: Graph) -> None:
    async def scenario() -> Any:
        async with admin.client() as client:
            return await steps(client)

    async def steps(client: GraphServiceClient) -> Any:
        await client.identity.conditional_access.policies.get()  # at least one token issuance to read back
        query = SignInsRequestBuilder.SignInsRequestBuilderGetQueryParameters(
            top=5, filter=f"appId eq '{ADMIN_BOT[0]}'"
        )
        return await client.audit_logs.sign_ins.get(RequestConfiguration(query_parameters=query))

    page = run(scenario())
    assert 1 <= len(page.value) <= 5
    entry = page.value[0]
    assert entry.app_id == ADMIN_BOT[0]
    assert entry.status.error_code == 0
    assert entry.resource_display_name == "Microsoft Graph"
    assert entry.created_date_time is not None
