"""Workload identities in the directory: certificates on app registrations, managed identities with their
service principals, and federated identity credentials; every bad value refused with a message for the
administrator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from entryway.identity.directory.reads import SqlDirectory
from entryway.identity.directory.service import DEFAULT_FIC_AUDIENCE, DirectoryError, DirectoryService
from entryway.identity.protocol.client_assertion import matches_claims_expression
from entryway.store.models import (
    ApplicationRow,
    FederatedCredentialRow,
    ManagedIdentityRow,
    ServicePrincipalRow,
    TenantRow,
)
from tests.directory.certificates import make_certificate, pem

GITHUB = "https://token.actions.githubusercontent.com"


@pytest.fixture
def app(directory: DirectoryService, tenant: TenantRow) -> ApplicationRow:
    return directory.create_application(tenant, "deployer")[0]


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- certificates --------------------------------------------------------------------------------


def test_certificate_from_pem_and_der_with_entras_thumbprints(
    session: Session, directory: DirectoryService, app: ApplicationRow, rsa_key: rsa.RSAPrivateKey
) -> None:
    cert = make_certificate(rsa_key)
    row = directory.add_certificate(app, pem(cert))
    assert row.thumbprint_sha1 == cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303
    assert row.thumbprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    assert row.certificate_der == cert.public_bytes(serialization.Encoding.DER)
    assert row.not_after == cert.not_valid_after_utc
    assert row.not_before == cert.not_valid_before_utc
    assert row.display_name == "CN=deployer"

    other = make_certificate(rsa_key, name="second")
    der = directory.add_certificate(app, other.public_bytes(serialization.Encoding.DER), display_name="ci")
    assert der.display_name == "ci"
    assert [c.key_id for c in directory.list_certificates(app)] == [row.key_id, der.key_id]

    # What the token endpoint reads.
    found = SqlDirectory(session.connection()).find_certificates(app.app_id)
    assert {c.thumbprint_sha1 for c in found} == {row.thumbprint_sha1, der.thumbprint_sha1}


def test_certificate_end_date_ends_it_before_the_certificate_expires(
    directory: DirectoryService, app: ApplicationRow, rsa_key: rsa.RSAPrivateKey
) -> None:
    cert = make_certificate(rsa_key)
    end = datetime.now(UTC) + timedelta(days=30)
    assert directory.add_certificate(app, pem(cert), end_date=end).not_after == end


def test_the_same_certificate_may_serve_two_apps_but_not_twice_one(
    directory: DirectoryService, tenant: TenantRow, app: ApplicationRow, rsa_key: rsa.RSAPrivateKey
) -> None:
    data = pem(make_certificate(rsa_key))
    directory.add_certificate(app, data)
    with pytest.raises(DirectoryError, match="already has the certificate with thumbprint"):
        directory.add_certificate(app, data)
    second = directory.create_application(tenant, "second")[0]
    directory.add_certificate(second, data)


def test_certificates_are_removed_by_key_id_or_either_thumbprint(
    directory: DirectoryService, app: ApplicationRow, rsa_key: rsa.RSAPrivateKey
) -> None:
    rows = [directory.add_certificate(app, pem(make_certificate(rsa_key, name=f"c{i}"))) for i in range(3)]
    sha1_with_colons = ":".join(rows[1].thumbprint_sha1[i : i + 2] for i in range(0, 40, 2)).lower()
    directory.remove_certificate(app, rows[0].key_id)
    directory.remove_certificate(app, sha1_with_colons)
    directory.remove_certificate(app, rows[2].thumbprint_sha256.upper())
    assert directory.list_certificates(app) == []
    with pytest.raises(DirectoryError, match="has no certificate 'ABC'"):
        directory.remove_certificate(app, "ABC")


def _pfx(key: rsa.RSAPrivateKey) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        b"c", key, make_certificate(key), None, serialization.BestAvailableEncryption(b"pw")
    )


def _key_and_cert_pem(key: rsa.RSAPrivateKey) -> bytes:
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private + pem(make_certificate(key))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("key and certificate", "holds a private key"),
        ("pfx", "not an X.509 certificate in PEM or DER form"),
        ("garbage", "not an X.509 certificate in PEM or DER form"),
        ("empty", "not an X.509 certificate in PEM or DER form"),
        ("broken PEM", "PEM but holds no valid X.509 certificate"),
        ("chain", "holds 2 certificates"),
        ("RSA 1024", "has 1024 bits; at least 2048"),
        ("EC P-256", "not RSA"),
        ("expired", "the certificate expired on"),
        ("end date past", "end date must be in the future"),
        ("end date after expiry", "may not be after the certificate expires"),
    ],
)
def test_bad_certificates_are_refused(
    directory: DirectoryService, app: ApplicationRow, rsa_key: rsa.RSAPrivateKey, case: str, message: str
) -> None:
    now = datetime.now(UTC)
    end_date = None
    if case == "key and certificate":
        data = _key_and_cert_pem(rsa_key)
    elif case == "pfx":
        data = _pfx(rsa_key)
    elif case == "garbage":
        data = b"\x30\x03\x02\x01\x01"
    elif case == "empty":
        data = b""
    elif case == "broken PEM":
        data = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    elif case == "chain":
        data = pem(make_certificate(rsa_key)) + pem(make_certificate(rsa_key, name="ca"))
    elif case == "RSA 1024":
        data = pem(make_certificate(rsa.generate_private_key(public_exponent=65537, key_size=1024)))  # noqa: S505 - refused
    elif case == "EC P-256":
        data = pem(make_certificate(ec.generate_private_key(ec.SECP256R1())))
    elif case == "expired":
        data = pem(
            make_certificate(rsa_key, not_before=now - timedelta(days=9), not_after=now - timedelta(days=1))
        )
    else:
        data = pem(make_certificate(rsa_key, not_after=now + timedelta(days=10)))
        end_date = now - timedelta(days=1) if case == "end date past" else now + timedelta(days=11)
    with pytest.raises(DirectoryError, match=message):
        directory.add_certificate(app, data, end_date=end_date)
    assert directory.list_certificates(app) == []


def test_certificates_only_on_the_tenants_own_app_registrations(
    directory: DirectoryService, tenant: TenantRow, rsa_key: rsa.RSAPrivateKey
) -> None:
    devops = directory.find_enterprise_app(tenant, "Azure DevOps")
    with pytest.raises(DirectoryError, match="first-party"):
        directory.add_certificate(devops, pem(make_certificate(rsa_key)))
    mi = directory.create_managed_identity(tenant, "uami", kind="user")
    hidden = directory.find_enterprise_app(tenant, mi.app_id)
    with pytest.raises(DirectoryError, match="is a managed identity; it cannot have a certificate"):
        directory.add_certificate(hidden, pem(make_certificate(rsa_key)))


# --- managed identities --------------------------------------------------------------------------


def test_user_assigned_identity_has_a_hidden_app_and_a_service_principal(
    session: Session, directory: DirectoryService, tenant: TenantRow, app: ApplicationRow
) -> None:
    mi = directory.create_managed_identity(tenant, "Build_Agent-1", kind="user")
    sp = session.get(ServicePrincipalRow, mi.object_id)
    assert sp is not None
    assert (sp.tenant_id, sp.app_id, sp.display_name) == (tenant.id, mi.app_id, "Build_Agent-1")
    hidden = session.scalars(select(ApplicationRow).where(ApplicationRow.app_id == mi.app_id)).one()
    assert hidden.managed_identity is True
    assert hidden.tenant_id == tenant.id
    assert mi.resource_id == (
        f"/subscriptions/{tenant.id}/resourcegroups/entryway/providers/"
        "microsoft.managedidentity/userassignedidentities/build_agent-1"
    )
    assert mi.kind == "user"
    assert mi.on_host is False
    # Not an app registration: not listed, not found, not deletable as one.
    assert [a.app_id for a in directory.list_applications(tenant)] == [app.app_id]
    for ref in (mi.app_id, "Build_Agent-1"):
        with pytest.raises(DirectoryError, match="not found"):
            directory.find_application(tenant, ref)


def test_system_assigned_identity_belongs_to_a_virtual_machine_by_default(
    directory: DirectoryService, tenant: TenantRow
) -> None:
    mi = directory.create_managed_identity(tenant, "buildhost", kind="system", on_host=True)
    assert mi.resource_id == (
        f"/subscriptions/{tenant.id}/resourcegroups/entryway/providers/microsoft.compute/virtualmachines/buildhost"
    )
    assert mi.on_host is True


def test_resource_ids_are_kept_lower_case(directory: DirectoryService, tenant: TenantRow) -> None:
    rid = (
        "/subscriptions/0b5e3c1d-2a4f-4e6b-8c7d-9e0f1a2b3c4d/resourceGroups/CI/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/Deployer"
    )
    mi = directory.create_managed_identity(tenant, "deployer", kind="user", resource_id=rid)
    assert mi.resource_id == rid.lower()
    app_service = "/subscriptions/s/resourceGroups/web/providers/Microsoft.Web/sites/shop"
    assert (
        directory.create_managed_identity(tenant, "shop", kind="system", resource_id=app_service).resource_id
        == app_service.lower()
    )


def test_managed_identities_are_found_by_name_client_id_object_id_or_resource_id(
    directory: DirectoryService, tenant: TenantRow
) -> None:
    mi = directory.create_managed_identity(tenant, "deployer", kind="user")
    for ref in ("deployer", "DEPLOYER", mi.app_id, mi.object_id, mi.resource_id, mi.resource_id.upper()):
        assert directory.find_managed_identity(tenant, ref) is mi
    other = directory.create_tenant(["fabrikam.test"])
    for ref in ("deployer", mi.app_id, mi.resource_id):
        with pytest.raises(DirectoryError, match=f"managed identity '.*' not found in tenant {other.id}"):
            directory.find_managed_identity(other, ref)
    # The same name in another tenant has another resource id (its subscription is that tenant's id).
    assert directory.create_managed_identity(other, "deployer", kind="user").resource_id != mi.resource_id
    assert [m.name for m in directory.list_managed_identities(tenant)] == ["deployer"]
    assert len(directory.list_managed_identities()) == 2


def test_one_system_assigned_identity_on_the_host(directory: DirectoryService, tenant: TenantRow) -> None:
    first = directory.create_managed_identity(tenant, "host-a", kind="system", on_host=True)
    with pytest.raises(DirectoryError, match="already carries the system-assigned identity 'host-a'"):
        directory.create_managed_identity(tenant, "host-b", kind="system", on_host=True)
    second = directory.create_managed_identity(tenant, "host-b", kind="system")
    with pytest.raises(DirectoryError, match="take it off the host first"):
        directory.set_on_host(second, True)
    assert directory.set_on_host(first, True) is False
    assert directory.set_on_host(first, False) is True
    assert directory.set_on_host(second, True) is True
    # User-assigned identities: as many as wanted.
    for name in ("uami-1", "uami-2"):
        directory.create_managed_identity(tenant, name, kind="user", on_host=True)
    assert sum(m.on_host for m in directory.list_managed_identities(tenant)) == 3


@pytest.mark.parametrize(
    ("name", "kind", "resource_id", "message"),
    [
        ("ab", "user", None, "not a valid managed identity name"),
        ("x" * 129, "user", None, "not a valid managed identity name"),
        ("-lead", "user", None, "not a valid managed identity name"),
        ("has space", "user", None, "not a valid managed identity name"),
        ("dot.ted", "user", None, "not a valid managed identity name"),
        ("fine", "group", None, "kind is 'system' or 'user', not 'group'"),
        ("fine", "user", "/not/a/resource", "is not an Azure resource id"),
        ("fine", "user", "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v",
         "names a Microsoft.ManagedIdentity/userAssignedIdentities resource"),
        ("fine", "system", "/subscriptions/s/resourceGroups/g/providers/"
         "Microsoft.ManagedIdentity/userAssignedIdentities/u", "is its host's"),
        ("fine", "user", "/subscriptions/s/resourcegroups/g/providers/microsoft.managedidentity/"
         "userassignedidentities/" + "u" * 512, "is not an Azure resource id"),
    ],
)  # fmt: skip
def test_bad_managed_identities_are_refused(  # noqa: PLR0917 - fixtures and parameters
    session: Session,
    directory: DirectoryService,
    tenant: TenantRow,
    name: str,
    kind: str,
    resource_id: str | None,
    message: str,
) -> None:
    with pytest.raises(DirectoryError, match=message):
        directory.create_managed_identity(tenant, name, kind=kind, resource_id=resource_id)
    assert session.scalar(select(func.count()).select_from(ManagedIdentityRow)) == 0


def test_managed_identity_names_and_resource_ids_are_unique(
    directory: DirectoryService, tenant: TenantRow
) -> None:
    mi = directory.create_managed_identity(tenant, "deployer", kind="user")
    with pytest.raises(DirectoryError, match="already has a managed identity named 'Deployer'"):
        directory.create_managed_identity(tenant, "Deployer", kind="system")
    with pytest.raises(DirectoryError, match="already belongs to a managed identity"):
        directory.create_managed_identity(tenant, "other", kind="user", resource_id=mi.resource_id)


def test_deleting_a_managed_identity_deletes_its_principal_app_and_credentials(
    session: Session, directory: DirectoryService, tenant: TenantRow
) -> None:
    mi = directory.create_managed_identity(tenant, "deployer", kind="user")
    directory.add_federated_credential(
        mi, name="github", issuer=GITHUB, subject="repo:c/d:ref:refs/heads/main"
    )
    object_id, app_id = mi.object_id, mi.app_id
    directory.delete_managed_identity(mi)
    session.expire_all()
    assert session.get(ManagedIdentityRow, object_id) is None
    assert session.get(ServicePrincipalRow, object_id) is None
    assert session.scalars(select(ApplicationRow).where(ApplicationRow.app_id == app_id)).first() is None
    assert session.scalar(select(func.count()).select_from(FederatedCredentialRow)) == 0
    # The name is free again.
    directory.create_managed_identity(tenant, "deployer", kind="user")


# --- federated identity credentials --------------------------------------------------------------


def test_federated_credentials_on_an_app_and_a_user_assigned_identity(
    session: Session, directory: DirectoryService, tenant: TenantRow, app: ApplicationRow
) -> None:
    fic = directory.add_federated_credential(
        app, name="main-branch", issuer=GITHUB, subject="repo:Contoso/App:ref:refs/heads/main"
    )
    assert fic.owner_app_id == app.app_id
    assert fic.audiences == [DEFAULT_FIC_AUDIENCE]
    flexible = directory.add_federated_credential(
        app.app_id,
        name="any-branch",
        issuer=GITHUB,
        claims_matching_expression="claims['sub'] matches 'repo:Contoso/App:ref:refs/heads/*'",
        description="every branch",
    )
    assert flexible.subject is None
    mi = directory.create_managed_identity(tenant, "uami", kind="user")
    on_mi = directory.add_federated_credential(
        mi.app_id, name="aks", issuer="https://oidc.example.test/issuer/", subject="system:serviceaccount:ns:sa",
        audiences=["api://Custom"],
    )  # fmt: skip
    assert on_mi.owner_app_id == mi.app_id
    assert [f.name for f in directory.list_federated_credentials(app)] == ["main-branch", "any-branch"]
    assert [f.name for f in directory.list_federated_credentials(mi)] == ["aks"]

    # What the token endpoint reads.
    read = SqlDirectory(session.connection()).find_federated_credentials(mi.app_id)
    assert [(f.issuer, f.subject, f.audiences) for f in read] == [
        ("https://oidc.example.test/issuer/", "system:serviceaccount:ns:sa", ("api://Custom",))
    ]

    assert directory.remove_federated_credential(app, "MAIN-branch").id == fic.id
    assert [f.name for f in directory.list_federated_credentials(app)] == ["any-branch"]
    with pytest.raises(DirectoryError, match="has no federated credential named 'main-branch'"):
        directory.remove_federated_credential(app, "main-branch")


def test_deleting_an_app_deletes_its_federated_credentials(
    session: Session, directory: DirectoryService, app: ApplicationRow
) -> None:
    directory.add_federated_credential(app, name="github", issuer=GITHUB, subject="s")
    directory.delete_application(app)
    assert session.scalar(select(func.count()).select_from(FederatedCredentialRow)) == 0


def test_federated_credential_owners_that_are_refused(directory: DirectoryService, tenant: TenantRow) -> None:
    system = directory.create_managed_identity(tenant, "host", kind="system")
    for owner in (system, system.app_id):
        with pytest.raises(DirectoryError, match="'host' is a system-assigned managed identity"):
            directory.add_federated_credential(owner, name="github", issuer=GITHUB, subject="s")
    user = directory.create_managed_identity(tenant, "uami", kind="user")
    with pytest.raises(DirectoryError, match="claims-matching expressions are for app registrations"):
        directory.add_federated_credential(
            user, name="github", issuer=GITHUB, claims_matching_expression="claims['sub'] eq 's'"
        )
    with pytest.raises(DirectoryError, match="no application or managed identity has client id"):
        directory.add_federated_credential(
            "00000000-0000-0000-0000-000000000001", name="github", issuer=GITHUB, subject="s"
        )
    devops = directory.find_enterprise_app(tenant, "Azure DevOps")
    with pytest.raises(DirectoryError, match="first-party"):
        directory.add_federated_credential(devops, name="github", issuer=GITHUB, subject="s")


FIC_REFUSALS: list[tuple[str, dict[str, object], str]] = [
    ("short name", {"name": "ab"}, "not a valid federated credential name"),
    ("long name", {"name": "n" * 121}, "not a valid federated credential name"),
    ("name with a dot", {"name": "a.b.c"}, "not a valid federated credential name"),
    ("name with a leading hyphen", {"name": "-abc"}, "not a valid federated credential name"),
    ("http issuer", {"issuer": "http://token.example.test"}, "must be an https URL"),
    ("issuer not a URL", {"issuer": "token.example.test"}, "must be an https URL"),
    ("issuer with a space", {"issuer": "https://a b.test"}, "contains white space"),
    ("issuer with a query", {"issuer": "https://a.test/?x=1"}, "no query or fragment"),
    ("issuer too long", {"issuer": "https://a.test/" + "p" * 600}, "1 to 600 characters"),
    ("empty issuer", {"issuer": ""}, "1 to 600 characters"),
    ("neither subject nor expression", {"subject": None}, "exactly one of a subject or a claims-matching"),
    (
        "subject and expression",
        {"claims_matching_expression": "claims['sub'] eq 's'"},
        "exactly one of a subject or a claims-matching",
    ),
    ("empty subject", {"subject": " "}, "subject must be 1 to 600"),
    ("subject too long", {"subject": "s" * 601}, "subject must be 1 to 600"),
    ("expression naming no claim", {"subject": None, "claims_matching_expression": "sub eq 's'"}, "cannot read"),
    ("expression with an unknown operator",
     {"subject": None, "claims_matching_expression": "claims['sub'] eq 'a' and claims['x'] like 'b'"},
     "cannot read 'claims.'x'. like 'b''"),
    ("expression with or", {"subject": None, "claims_matching_expression": "claims['a'] eq 'a' or claims['b'] eq 'b'"},
     "cannot read"),
    ("two audiences", {"audiences": ["a", "b"]}, "exactly one audience"),
    ("no audience", {"audiences": []}, "exactly one audience"),
    ("audience too long", {"audiences": ["a" * 601]}, "audience must be 1 to 600"),
    ("description too long", {"description": "d" * 601}, "description may be at most 600"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "change", "message"), FIC_REFUSALS, ids=[c[0] for c in FIC_REFUSALS])
def test_bad_federated_credentials_are_refused(
    directory: DirectoryService, app: ApplicationRow, case: str, change: dict[str, object], message: str
) -> None:
    values: dict[str, object] = {
        "name": "good-name",
        "issuer": GITHUB,
        "subject": "repo:c/d:environment:prod",
    }
    values.update(change)
    with pytest.raises(DirectoryError, match=message):
        directory.add_federated_credential(app, **values)  # type: ignore[arg-type]
    assert directory.list_federated_credentials(app) == [], case


def test_federated_credential_names_are_unique_per_owner_and_at_most_twenty(
    directory: DirectoryService, tenant: TenantRow, app: ApplicationRow
) -> None:
    for i in range(20):
        directory.add_federated_credential(app, name=f"fic-{i:02}", issuer=GITHUB, subject=f"s{i}")
    with pytest.raises(DirectoryError, match="already has a federated credential named 'FIC-00'"):
        directory.add_federated_credential(app, name="FIC-00", issuer=GITHUB, subject="x")
    with pytest.raises(DirectoryError, match="already has 20 federated credentials"):
        directory.add_federated_credential(app, name="fic-20", issuer=GITHUB, subject="x")
    # Another owner may use the same name.
    other = directory.create_application(tenant, "other")[0]
    directory.add_federated_credential(other, name="fic-00", issuer=GITHUB, subject="s0")


@pytest.mark.parametrize(
    "expression",
    [
        "claims['sub'] matches 'repo:contoso/app:ref:refs/heads/*'",
        "claims['sub'] eq 'repo:contoso/app:environment:prod' AND claims['job_workflow_ref'] startswith 'contoso/'",
        "claims['sub'] eq 'it''s'",
    ],
)
def test_claims_matching_expressions_are_what_the_token_endpoint_reads(
    directory: DirectoryService, app: ApplicationRow, expression: str
) -> None:
    directory.add_federated_credential(
        app, name="flexible", issuer=GITHUB, claims_matching_expression=expression
    )
    claims = {
        "sub": "repo:contoso/app:ref:refs/heads/main",
        "job_workflow_ref": "contoso/ci/.github/workflows/deploy.yml@refs/heads/main",
    }
    if "environment" in expression:
        claims["sub"] = "repo:contoso/app:environment:prod"
    if "it''s" in expression:
        claims["sub"] = "it's"
    assert matches_claims_expression(expression, claims) is True
