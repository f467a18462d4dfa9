"""`entryway ca policy|location|what-if` and the config file's `conditional_access:`, in process on a data
directory of their own (tenant policyadmin.test); every refused command or config changes nothing, and
writes no policiesChanged event either."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from entryway.cli.main import app as cli
from entryway.config.declarative import ConfigError, apply_config
from entryway.config.settings import Settings
from entryway.runtime import Runtime
from entryway.store.models import ConditionalAccessPolicyRow, ContinuousAccessEventRow, NamedLocationRow

T = ["--tenant", "policyadmin.test"]
DEVOPS = "499b84ac-1321-427f-aa17-267ca6975798"

CONFIG = """\
tenants:
  - domains: [policyadmin.test]
    users:
      - {upn: alice@policyadmin.test, password: "Alice-Policy-0042", display_name: Alice}
      - {upn: bob@policyadmin.test, password: "Bob-Policy-0042", display_name: Bob, roles: [Global Administrator]}
    groups:
      - {name: Contractors, members: [{user: bob@policyadmin.test}]}
    apps:
      - name: deploy-bot
        client_id: 1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d
        secrets: [{value: "deploy-bot-secret-0123456789abcdefghijk"}]
"""


def run(*args: str, data_dir: Path) -> Result:
    return CliRunner().invoke(cli, [*args, "--data-dir", str(data_dir)])


def ok(*args: str, data_dir: Path) -> str:
    result = run(*args, data_dir=data_dir)
    assert result.exit_code == 0, result.output
    return result.output


def refused(*args: str, data_dir: Path, message: str) -> None:
    before = snapshot(data_dir)
    result = run(*args, data_dir=data_dir)
    assert result.exit_code != 0, result.output
    assert message in result.output, result.output
    assert snapshot(data_dir) == before


def snapshot(data_dir: Path) -> tuple[Any, ...]:
    """Every policy and location as stored, and the number of CAE events."""
    rt = Runtime.open(Settings(data_dir=data_dir))
    try:
        with rt.db.read() as session:
            policies = [
                (p.id, p.display_name, p.state, json.dumps(p.conditions, sort_keys=True), p.grant_controls)
                for p in session.scalars(
                    select(ConditionalAccessPolicyRow).order_by(ConditionalAccessPolicyRow.id)
                )
            ]
            locations = [
                (loc.id, loc.display_name, loc.is_trusted, tuple(loc.ip_ranges))
                for loc in session.scalars(select(NamedLocationRow).order_by(NamedLocationRow.id))
            ]
            events = len(list(session.scalars(select(ContinuousAccessEventRow.seq))))
            return policies, locations, events
    finally:
        rt.close()


def apply(data_dir: Path, text: str) -> list[str]:
    rt = Runtime.open(Settings(data_dir=data_dir))
    try:
        return apply_config(rt, yaml.safe_load(text), source="test").created
    finally:
        rt.close()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ca-cli") / "data"
    assert run("tenant", "create", "--domain", "policyadmin.test", data_dir=d).exit_code == 0
    apply(d, CONFIG)
    ok(
        "ca",
        "location",
        "add",
        *T,
        "--name",
        "Office",
        "--range",
        "10.0.0.0/8",
        "--range",
        "2001:db8::/32",
        "--trusted",
        data_dir=d,
    )
    ok("ca", "location", "add", *T, "--name", "Home", "--range", "192.168.1.0/24", data_dir=d)
    return d


def test_locations(data_dir: Path) -> None:
    listing = ok("ca", "location", "list", *T, data_dir=data_dir)
    assert "\tOffice\ttrusted\t10.0.0.0/8,2001:db8::/32" in listing
    assert "\tHome\tuntrusted\t192.168.1.0/24" in listing
    shown = json.loads(ok("ca", "location", "show", *T, "office", data_dir=data_dir))
    assert shown["@odata.type"] == "#microsoft.graph.ipNamedLocation"
    assert shown["ipRanges"][1] == {
        "@odata.type": "#microsoft.graph.iPv6CidrRange",
        "cidrAddress": "2001:db8::/32",
    }
    as_json = json.loads(ok("ca", "location", "list", *T, "--json", data_dir=data_dir))
    assert {loc["displayName"] for loc in as_json["value"]} >= {"Office", "Home"}
    ok("ca", "location", "add", *T, "--name", "Gone soon", "--range", "172.16.0.0/12", data_dir=data_dir)
    ok("ca", "location", "remove", *T, "gone soon", data_dir=data_dir)
    assert "Gone soon" not in ok("ca", "location", "list", *T, data_dir=data_dir)


def test_a_location_is_updated_part_by_part_and_the_change_is_published(data_dir: Path) -> None:
    ok("ca", "location", "add", *T, "--name", "Lab", "--range", "172.20.0.0/16", data_dir=data_dir)
    events = snapshot(data_dir)[2]
    renamed = ok("ca", "location", "update", *T, "lab", "--name", "Lab West", data_dir=data_dir)
    assert renamed.endswith("\tLab West\tuntrusted\t172.20.0.0/16\n")
    trusted = ok("ca", "location", "update", *T, "Lab West", "--trusted", data_dir=data_dir)
    assert "\tLab West\ttrusted\t172.20.0.0/16" in trusted
    # The ranges given replace the old ones (Graph's PATCH replaces lists); comma-separated works too.
    moved = ok(
        "ca", "location", "update", *T, "Lab West", "--range", "172.21.0.0/16,fd00:1::/48", "--untrusted",
        data_dir=data_dir,
    )  # fmt: skip
    assert "\tLab West\tuntrusted\t172.21.0.0/16,fd00:1::/48" in moved
    # Each change is a new policy snapshot on the critical-event outbox (the DevOps service's location checks).
    assert snapshot(data_dir)[2] == events + 3
    ok("ca", "location", "remove", *T, "Lab West", data_dir=data_dir)


def test_policy_life_and_what_if(data_dir: Path) -> None:
    before_events = snapshot(data_dir)[2]
    line = ok(
        "ca",
        "policy",
        "create",
        *T,
        "--name",
        "DevOps from the office",
        "--state",
        "enabled",
        "--apps",
        "Azure DevOps",
        "--locations",
        "All",
        "--exclude-locations",
        "Office",
        "--exclude-groups",
        "Contractors",
        "--grant",
        "block",
        data_dir=data_dir,
    )
    policy_id, name, state, grant, session = line.strip().split("\t")
    assert (name, state, grant, session) == ("DevOps from the office", "enabled", "block", "-")
    assert snapshot(data_dir)[2] == before_events + 1  # one policiesChanged event
    shown = json.loads(ok("ca", "policy", "show", *T, policy_id, data_dir=data_dir))
    assert shown["conditions"]["applications"]["includeApplications"] == [DEVOPS]
    assert shown["conditions"]["users"]["includeUsers"] == ["All"]
    assert len(shown["conditions"]["users"]["excludeGroups"]) == 1

    # Outside the office Alice is blocked; inside (IPv4, IPv6, IPv4-mapped) she is not; Bob is excluded.
    blocked = json.loads(
        ok(
            "ca",
            "what-if",
            *T,
            "--user",
            "alice@policyadmin.test",
            "--app",
            DEVOPS,
            "--ip",
            "203.0.113.7",
            "--json",
            data_dir=data_dir,
        )
    )
    assert blocked["decision"]["outcome"] == "blocked"
    assert blocked["decision"]["conditionalAccessStatus"] == "failure"
    (outcome,) = [p for p in blocked["policies"] if p["id"] == policy_id]
    assert outcome["applies"] is True
    assert outcome["result"] == "failure"
    assert "location 203.0.113.7 included: in All" in outcome["reasons"]
    for ip in ("10.1.2.3", "2001:db8::5", "::ffff:10.0.0.1"):
        inside = json.loads(
            ok(
                "ca",
                "what-if",
                *T,
                "--user",
                "alice@policyadmin.test",
                "--app",
                "Azure DevOps",
                "--ip",
                ip,
                "--json",
                data_dir=data_dir,
            )
        )
        assert inside["decision"]["outcome"] == "allowed", (ip, inside)
    text = ok(
        "ca",
        "what-if",
        *T,
        "--user",
        "bob@policyadmin.test",
        "--app",
        DEVOPS,
        "--ip",
        "203.0.113.7",
        data_dir=data_dir,
    )
    assert "DevOps from the office\tenabled\tnot applied\tnotApplied" in text
    assert "excluded by group" in text
    assert text.strip().endswith("decision: allowed (conditionalAccessStatus notApplied)")

    # Report-only: recorded, never blocking.
    ok("ca", "policy", "set-state", *T, "devops from the office", "report-only", data_dir=data_dir)
    report_only = json.loads(
        ok(
            "ca",
            "what-if",
            *T,
            "--user",
            "alice@policyadmin.test",
            "--app",
            DEVOPS,
            "--ip",
            "203.0.113.7",
            "--json",
            data_dir=data_dir,
        )
    )
    assert report_only["decision"]["outcome"] == "allowed"
    assert [p["result"] for p in report_only["policies"] if p["id"] == policy_id] == ["reportOnlyFailure"]

    # update: the parts given are replaced, the rest kept.
    updated = ok(
        "ca",
        "policy",
        "update",
        *T,
        policy_id,
        "--grant",
        "mfa",
        "--sign-in-frequency",
        "8h",
        data_dir=data_dir,
    )
    assert updated.strip().endswith("\tmfa\tsignInFrequency=8h")
    shown = json.loads(ok("ca", "policy", "show", *T, policy_id, data_dir=data_dir))
    assert shown["conditions"]["applications"]["includeApplications"] == [DEVOPS]
    assert shown["sessionControls"]["signInFrequency"]["value"] == 8
    ok("ca", "policy", "set-state", *T, policy_id, "enabled", data_dir=data_dir)
    mfa = json.loads(
        ok(
            "ca",
            "what-if",
            *T,
            "--user",
            "alice@policyadmin.test",
            "--app",
            DEVOPS,
            "--ip",
            "203.0.113.7",
            "--json",
            data_dir=data_dir,
        )
    )
    assert mfa["decision"]["outcome"] == "mfa required"
    done = json.loads(
        ok(
            "ca",
            "what-if",
            *T,
            "--user",
            "alice@policyadmin.test",
            "--app",
            DEVOPS,
            "--ip",
            "203.0.113.7",
            "--mfa-done",
            "--json",
            data_dir=data_dir,
        )
    )
    assert done["decision"]["outcome"] == "allowed"
    assert done["decision"]["conditionalAccessStatus"] == "success"

    assert "DevOps from the office" in ok("ca", "policy", "list", *T, data_dir=data_dir)
    ok("ca", "policy", "delete", *T, policy_id, data_dir=data_dir)
    assert "DevOps from the office" not in ok("ca", "policy", "list", *T, data_dir=data_dir)


def test_workload_policy_and_what_if_for_a_service_principal(data_dir: Path) -> None:
    ok(
        "ca",
        "policy",
        "create",
        *T,
        "--name",
        "Deploys from the office",
        "--service-principals",
        "deploy-bot",
        "--locations",
        "All",
        "--exclude-locations",
        "AllTrusted",
        "--grant",
        "block",
        data_dir=data_dir,
    )
    outside = json.loads(
        ok(
            "ca",
            "what-if",
            *T,
            "--service-principal",
            "deploy-bot",
            "--app",
            DEVOPS,
            "--ip",
            "198.51.100.1",
            "--client-app-type",
            "other",
            "--json",
            data_dir=data_dir,
        )
    )
    assert outside["decision"]["outcome"] == "blocked"
    inside = json.loads(
        ok(
            "ca",
            "what-if",
            *T,
            "--service-principal",
            "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            "--app",
            DEVOPS,
            "--ip",
            "10.9.9.9",
            "--json",
            data_dir=data_dir,
        )
    )
    assert inside["decision"]["outcome"] == "allowed"
    # The workload policy never applies to a user.
    user = json.loads(
        ok(
            "ca",
            "what-if",
            *T,
            "--user",
            "alice@policyadmin.test",
            "--app",
            DEVOPS,
            "--ip",
            "198.51.100.1",
            "--json",
            data_dir=data_dir,
        )
    )
    assert [p["applies"] for p in user["policies"] if p["displayName"] == "Deploys from the office"] == [
        False
    ]
    ok("ca", "policy", "delete", *T, "Deploys from the office", data_dir=data_dir)


def test_policy_from_files(data_dir: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.yaml"
    short.write_text(
        "name: Linux browsers sign in daily\nstate: disabled\nplatforms: [linux]\nclient_app_types: [browser]\n"
        "sign_in_frequency: 1d\n"
    )
    line = ok("ca", "policy", "create", *T, "--file", str(short), data_dir=data_dir)
    assert line.strip().endswith("\tdisabled\t-\tsignInFrequency=1d")
    graph = {
        "displayName": "Graph JSON policy",
        "state": "enabledForReportingButNotEnforced",
        "conditions": {
            "users": {"includeUsers": ["All"]},
            "applications": {"includeApplications": ["All"]},
            "clientAppTypes": ["mobileAppsAndDesktopClients"],
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }
    line = ok("ca", "policy", "create", *T, "--json-body", json.dumps(graph), data_dir=data_dir)
    assert "\tGraph JSON policy\tenabledForReportingButNotEnforced\tmfa\t-" in line
    patch = tmp_path / "patch.json"
    patch.write_text(json.dumps({"conditions": {"clientAppTypes": ["browser"]}}))
    ok("ca", "policy", "update", *T, "Graph JSON policy", "--file", str(patch), data_dir=data_dir)
    shown = json.loads(ok("ca", "policy", "show", *T, "Graph JSON policy", data_dir=data_dir))
    assert shown["conditions"]["clientAppTypes"] == ["browser"]
    assert shown["grantControls"]["builtInControls"] == ["mfa"]
    ok("ca", "policy", "delete", *T, "Graph JSON policy", data_dir=data_dir)
    ok("ca", "policy", "delete", *T, "Linux browsers sign in daily", data_dir=data_dir)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--name", "X", "--users", "nobody@policyadmin.test", "--grant", "block"),
            "no user 'nobody@policyadmin.test'",
        ),
        (("--name", "X", "--groups", "Strangers", "--grant", "block"), "no group 'Strangers'"),
        (("--name", "X", "--roles", "Chief Wizard", "--grant", "block"), "unknown directory role"),
        (("--name", "X", "--apps", "No Such App", "--grant", "block"), "no application 'No Such App'"),
        (("--name", "X", "--locations", "Moon", "--grant", "block"), "no named location 'Moon'"),
        (("--name", "X", "--state", "maybe", "--grant", "block"), "unknown state 'maybe'"),
        (("--name", "X", "--grant", "compliantDevice"), "'compliantDevice' is not supported"),
        (("--name", "X", "--grant", "block,mfa"), "'block' cannot be combined"),
        (("--name", "X"), "grant controls or session controls"),
        (("--name", "X", "--grant", "mfa", "--sign-in-frequency", "3w"), "not like 8h"),
        (("--name", "X", "--grant", "mfa", "--sign-in-frequency", "25h"), "from 1 to 24"),
        (("--name", "X", "--platforms", "amiga", "--grant", "block"), "'amiga' is not one of"),
        (("--name", "X", "--client-app-types", "fax", "--grant", "block"), "'fax' is not one of"),
        (("--name", "X", "--service-principals", "deploy-bot", "--grant", "mfa"), "supports only 'block'"),
        (("--name", "X", "--service-principals", "nobody-bot", "--grant", "block"), "no service principal"),
        (("--grant", "block"), "displayName: is required"),
        (("--name", "X", "--grant", "block", "--json-body", "{}"), "not both"),
        (("--json-body", "{not json"), "not valid JSON"),
        (("--json-body", "[1]"), "must be a JSON object"),
        (
            ("--json-body", '{"displayName": "X", "state": "enabled", "conditions": {}}'),
            "conditions.applications",
        ),
        (("--file", "/nonexistent/policy.yaml"), "cannot read"),
    ],
)
def test_bad_policies_change_nothing(data_dir: Path, args: tuple[str, ...], message: str) -> None:
    refused("ca", "policy", "create", *T, *args, data_dir=data_dir, message=message)


def test_other_refusals_change_nothing(data_dir: Path) -> None:
    ok(
        "ca",
        "policy",
        "create",
        *T,
        "--name",
        "Uses Home",
        "--state",
        "disabled",
        "--locations",
        "Home",
        "--grant",
        "block",
        data_dir=data_dir,
    )
    cases: list[tuple[tuple[str, ...], str]] = [
        (("ca", "policy", "create", *T, "--name", "uses home", "--grant", "block"), "exists"),
        (("ca", "location", "remove", *T, "Home"), "used by the policy 'Uses Home'"),
        (("ca", "location", "remove", *T, "Atlantis"), "no named location 'Atlantis'"),
        (("ca", "location", "add", *T, "--name", "office", "--range", "10.1.0.0/16"), "exists"),
        (("ca", "location", "add", *T, "--name", "Bad", "--range", "10.0.0.1/8"), "host bits set"),
        (
            ("ca", "location", "add", *T, "--name", "Everything", "--range", "0.0.0.0/0"),
            "covers every address",
        ),
        (("ca", "location", "add", *T, "--name", "Words", "--range", "downtown"), "not a CIDR range"),
        (("ca", "location", "update", *T, "Home"), "nothing to change"),
        (("ca", "location", "update", *T, "Atlantis", "--trusted"), "no named location 'Atlantis'"),
        (("ca", "location", "update", *T, "Home", "--name", "OFFICE"), "exists"),
        (("ca", "location", "update", *T, "Home", "--range", "192.168.1.1/24"), "host bits set"),
        (("ca", "location", "update", *T, "Home", "--range", "::/0"), "covers every address"),
        (("ca", "location", "update", *T, "Home", "--range", "uptown"), "not a CIDR range"),
        (("ca", "location", "update", *T, "Home", "--range", ""), "needs at least one range"),
        (("ca", "location", "update", *T, "Home", "--name", ""), "displayName: is required"),
        (("ca", "policy", "delete", *T, "No Such Policy"), "no Conditional Access policy"),
        (("ca", "policy", "set-state", *T, "Uses Home", "sideways"), "unknown state"),
        (("ca", "policy", "update", *T, "Uses Home"), "nothing to change"),
        (("ca", "policy", "update", *T, "Uses Home", "--grant", "block,mfa"), "cannot be combined"),
        (("ca", "policy", "show", *T, "No Such Policy"), "no Conditional Access policy"),
        (("ca", "what-if", *T, "--app", DEVOPS, "--ip", "10.0.0.1"), "exactly one of a user"),
        (
            (
                "ca",
                "what-if",
                *T,
                "--user",
                "alice@policyadmin.test",
                "--service-principal",
                "deploy-bot",
                "--app",
                DEVOPS,
                "--ip",
                "10.0.0.1",
            ),
            "exactly one of a user",
        ),
        (
            ("ca", "what-if", *T, "--user", "alice@policyadmin.test", "--app", DEVOPS, "--ip", "somewhere"),
            "not an IP",
        ),
        (
            ("ca", "what-if", *T, "--user", "alice@policyadmin.test", "--app", "Nope", "--ip", "10.0.0.1"),
            "no application",
        ),
        (
            (
                "ca",
                "what-if",
                *T,
                "--user",
                "alice@policyadmin.test",
                "--app",
                DEVOPS,
                "--ip",
                "10.0.0.1",
                "--platform",
                "amiga",
            ),
            "amiga",
        ),
        (("ca", "policy", "list", "--tenant", "nowhere.test"), "tenant 'nowhere.test' not found"),
    ]
    for args, message in cases:
        refused(*args, data_dir=data_dir, message=message)
    ok("ca", "policy", "delete", *T, "Uses Home", data_dir=data_dir)


# --- the config file -----------------------------------------------------------------------------------

CA_CONFIG = """\
tenants:
  - domains: [policyadmin.test]
    conditional_access:
      named_locations:
        - {name: Branch, ranges: [172.20.0.0/16], trusted: true}
      policies:
        - name: Config blocks contractors outside branches
          state: report-only
          groups: [Contractors]
          applications: [Azure DevOps]
          locations: [All]
          exclude_locations: [Branch]
          grant: block
        - displayName: Config Graph JSON
          state: disabled
          conditions:
            users: {includeUsers: [All]}
            applications: {includeApplications: [All]}
            clientAppTypes: [browser]
          grantControls: {operator: OR, builtInControls: [mfa]}
"""


def test_config_applies_once_then_updates(data_dir: Path) -> None:
    created = apply(data_dir, CA_CONFIG)
    assert "named location Branch" in created
    assert "Conditional Access policy Config blocks contractors outside branches" in created
    after_first = snapshot(data_dir)
    assert apply(data_dir, CA_CONFIG) == []  # idempotent: nothing changed, no event
    assert snapshot(data_dir) == after_first
    what_if = json.loads(
        ok(
            "ca",
            "what-if",
            *T,
            "--user",
            "bob@policyadmin.test",
            "--app",
            DEVOPS,
            "--ip",
            "8.8.8.8",
            "--json",
            data_dir=data_dir,
        )
    )
    assert [p["result"] for p in what_if["policies"] if p["displayName"].startswith("Config blocks")] == [
        "reportOnlyFailure"
    ]
    changed = apply(
        data_dir,
        CA_CONFIG.replace("state: report-only", "state: enabled").replace("172.20.0.0/16", "172.21.0.0/16"),
    )
    assert changed == [
        "named location Branch updated",
        "Conditional Access policy Config blocks contractors outside branches updated",
    ]
    assert snapshot(data_dir)[2] == after_first[2] + 2
    shown = json.loads(
        ok("ca", "policy", "show", *T, "Config blocks contractors outside branches", data_dir=data_dir)
    )
    assert shown["state"] == "enabled"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{named_locations: [{name: X, ranges: [10.0.0.0/33]}]}", "ipRanges[0].cidrAddress"),
        ("{named_locations: [{name: X}]}", "ranges: expected a list"),
        (
            "{named_locations: [{name: X, ranges: [10.0.0.0/8], trusted: maybe}]}",
            "trusted: expected true or false",
        ),
        ("{named_locations: [{name: X, ranges: [10.0.0.0/8], colour: red}]}", "unknown key(s) colour"),
        ("{policies: [{name: X, locations: [Narnia], grant: block}]}", "no named location 'Narnia'"),
        ("{policies: [{name: X, grant: block, favourite: yes}]}", "unknown key(s) favourite"),
        ("{policies: [{state: enabled, grant: block}]}", "a policy needs a name"),
        (
            "{policies: [{displayName: X, state: enabled, conditions: {users: {includeUsers: [All]}}}]}",
            "applications",
        ),
        ("{policies: {name: X}}", "expected a list of mappings"),
        ("{rules: []}", "unknown key(s) rules"),
        ("[1, 2]", "expected a mapping"),
    ],
)
def test_bad_configs_change_nothing(data_dir: Path, section: str, message: str) -> None:
    before = snapshot(data_dir)
    text = f"tenants:\n  - domains: [policyadmin.test]\n    conditional_access: {section}\n"
    with pytest.raises(ConfigError) as caught:
        apply(data_dir, text)
    assert message in str(caught.value)
    assert "conditional_access" in str(caught.value)
    assert snapshot(data_dir) == before
