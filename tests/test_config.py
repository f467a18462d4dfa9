"""The declarative config file: the issue's example loads unchanged, a second apply changes nothing, and a
file with an error changes nothing at all."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msal
import pytest
import requests
import yaml
from sqlalchemy import func, select

from entryway.config.declarative import ConfigError, apply_config, load_config
from entryway.config.settings import Settings
from entryway.kit.clock import as_utc
from entryway.runtime import Runtime
from entryway.store.models import Base, ClientSecretRow
from tests.conftest import (
    BUILD_BOT_ID,
    BUILD_BOT_SECRET,
    CONTOSO_TENANT,
    DEVOPS_SCOPE,
    ISSUE_EXAMPLE_CONFIG,
    Instance,
)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime.open(Settings(data_dir=tmp_path))
    yield rt
    rt.close()


def row_counts(rt: Runtime) -> dict[str, int]:
    with rt.db.read() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
        }


def test_issue_example_applies_then_second_apply_changes_nothing(runtime: Runtime) -> None:
    data = yaml.safe_load(ISSUE_EXAMPLE_CONFIG)
    first = apply_config(runtime, data)
    assert "tenant 7d3a1f52-5b8e-4c1e-9f4a-2b6c8d0e1f23" in first.created
    assert "user alice@contoso.test" in first.created
    counts = row_counts(runtime)
    assert counts["users"] == 1
    assert counts["devops_members"] == 2

    second = apply_config(runtime, data)
    assert second.created == []
    assert row_counts(runtime) == counts


def test_config_file_from_disk(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "entryway.yaml"
    path.write_text(ISSUE_EXAMPLE_CONFIG)
    assert apply_config(runtime, load_config(path), str(path)).created


BAD_CONFIGS: list[tuple[str, Any, str]] = [
    ("not a mapping", ["x"], "expected a mapping"),
    ("unknown top-level key", {"tenant": []}, "unknown key(s) tenant"),
    ("tenant without domains", {"tenants": [{"id": "7d3a1f52-5b8e-4c1e-9f4a-2b6c8d0e1f23"}]}, "domains"),
    ("tenant id not a GUID", {"tenants": [{"id": "nope", "domains": ["a.test"]}]}, "not a GUID"),
    ("bad domain", {"tenants": [{"domains": ["not a domain"]}]}, "not a valid domain"),
    (
        "user outside the tenant's domains",
        {"tenants": [{"domains": ["a.test"], "users": [{"upn": "bob@b.test", "password": "long-enough-1"}]}]},
        "not a domain of tenant",
    ),
    (
        "short password",
        {"tenants": [{"domains": ["a.test"], "users": [{"upn": "bob@a.test", "password": "short"}]}]},
        "at least 8",
    ),
    (
        "secret too short",
        {"tenants": [{"domains": ["a.test"], "apps": [{"name": "x", "secrets": [{"value": "tiny"}]}]}]},
        "at least 16",
    ),
    (
        "secret expired",
        {
            "tenants": [
                {
                    "domains": ["a.test"],
                    "apps": [
                        {"name": "x", "secrets": [{"value": "0123456789abcdefXYZ", "expires": "2001-01-01"}]}
                    ],
                }
            ]
        },
        "in the future",
    ),
    (
        "bad expiry",
        {
            "tenants": [
                {
                    "domains": ["a.test"],
                    "apps": [{"name": "x", "secrets": [{"value": "0123456789abcdefXYZ", "expires": "soon"}]}],
                }
            ]
        },
        "ISO 8601",
    ),
    ("org for an unknown tenant", {"organizations": [{"name": "o", "tenant": "nowhere.test"}]}, "not found"),
    (
        "bad org name",
        {"tenants": [{"domains": ["a.test"]}], "organizations": [{"name": "bad name!", "tenant": "a.test"}]},
        "not a valid organization name",
    ),
    (
        "member with both app and user",
        {
            "tenants": [{"domains": ["a.test"], "apps": [{"name": "x"}]}],
            "organizations": [
                {"name": "o", "tenant": "a.test", "members": [{"app": "x", "user": "u@a.test"}]}
            ],
        },
        "exactly one",
    ),
    (
        "unknown access level",
        {
            "tenants": [{"domains": ["a.test"], "apps": [{"name": "x"}]}],
            "organizations": [
                {"name": "o", "tenant": "a.test", "members": [{"app": "x", "access": "admin"}]}
            ],
        },
        "unknown access level",
    ),
    (
        "grant of a role the resource does not define",
        {
            "tenants": [
                {
                    "domains": ["a.test"],
                    "apps": [{"name": "x", "grants": [{"resource": "x", "roles": ["R"]}]}],
                }
            ]
        },
        "defines no app role",
    ),
    ("wrong type", {"tenants": [{"domains": "a.test"}]}, "expected a list of strings"),
]


@pytest.mark.parametrize(("case", "data", "message"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_refused_and_writes_nothing(
    runtime: Runtime, case: str, data: Any, message: str
) -> None:
    before = row_counts(runtime)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        apply_config(runtime, data)
    assert row_counts(runtime) == before, case


def test_unquoted_dates_and_timestamps_are_expiries(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "dates.yaml"
    path.write_text(
        "tenants:\n"
        "  - domains: [dates.test]\n"
        "    apps:\n"
        "      - name: a\n"
        "        secrets:\n"
        "          - value: date-secret-0123456789\n"
        "            expires: 2027-06-30\n"
        "          - value: time-secret-0123456789\n"
        "            expires: 2027-06-30T12:00:00Z\n"
    )
    apply_config(runtime, load_config(path))
    with runtime.db.read() as session:
        expiries = sorted(as_utc(e) for e in session.scalars(select(ClientSecretRow.expires_at)))
    assert expiries == [datetime(2027, 6, 30, tzinfo=UTC), datetime(2027, 6, 30, 12, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (
            {
                "tenants": [
                    {"domains": ["a.test"], "users": [{"upn": "bob@b.test", "password": "long-enough-1"}]}
                ]
            },
            "config.tenants[0].users[0]: ",
        ),
        (
            {
                "tenants": [{"domains": ["a.test"], "apps": [{"name": "x"}]}],
                "organizations": [{"name": "o", "tenant": "a.test", "members": [{"app": "y"}]}],
            },
            "config.organizations[0].members[0]: application 'y' not found",
        ),
        (
            {"tenants": [{"domains": ["a.test"], "apps": [{"name": "x", "client_id": "not-a-guid"}]}]},
            "config.tenants[0].apps[0]: client id 'not-a-guid' is not a GUID",
        ),
    ],
)
def test_directory_refusals_name_where_in_the_file(runtime: Runtime, data: Any, where: str) -> None:
    with pytest.raises(ConfigError) as raised:
        apply_config(runtime, data)
    assert str(raised.value).startswith(where)


def test_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("tenants: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_app_from_config_gets_a_token_accepted_by_its_organization(entryway: Instance) -> None:
    app = msal.ConfidentialClientApplication(
        BUILD_BOT_ID,
        client_credential=BUILD_BOT_SECRET,
        authority=entryway.authority("contoso.test"),
        instance_discovery=False,
    )
    result = app.acquire_token_for_client([DEVOPS_SCOPE])
    assert "access_token" in result, result
    response = requests.get(
        f"{entryway.devops}/fabrikam/_apis/connectionData",
        headers={"Authorization": f"Bearer {result['access_token']}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["authenticatedUser"]["descriptor"].startswith(
        f"Microsoft.VisualStudio.Services.Claims.AadServicePrincipal;{CONTOSO_TENANT}\\"
    )
