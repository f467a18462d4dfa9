"""The azure-pipelines.yml subset: what is accepted, and every refusal naming its key and line."""

from __future__ import annotations

import pytest

from entryway.devops.pipelines.masking import Masker
from entryway.devops.pipelines.runner import env_name, expand_macros, wire_log_time
from entryway.devops.pipelines.yamlspec import PipelineYamlError, ScriptStep, parse_pipeline_yaml


def test_the_supported_subset() -> None:
    spec = parse_pipeline_yaml(
        """\
trigger:
  - main
pool:
  vmImage: ubuntu-latest
variables:
  greeting: hello
  answer: 42
  flag: true
steps:
  - script: echo $(greeting)
    displayName: Say hello
    env:
      WHO: world
  - bash: |
      set -x
      exit 0
"""
    )
    assert spec.variables == {"greeting": "hello", "answer": "42", "flag": "true"}
    assert spec.steps == [
        ScriptStep(script="echo $(greeting)", display_name="Say hello", env={"WHO": "world"}, line=10),
        ScriptStep(script="set -x\nexit 0\n", display_name="Bash: set -x", env={}, line=14),
    ]


def test_variables_as_a_list_of_name_value_pairs() -> None:
    spec = parse_pipeline_yaml(
        "variables:\n  - name: a.b\n    value: one\n  - name: empty\nsteps:\n  - script: echo\n"
    )
    assert spec.variables == {"a.b": "one", "empty": ""}
    assert spec.steps[0].display_name == "CmdLine: echo"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps:\n  - script: a\n    condition: always()\n", "'steps[0].condition' (line 3): not supported"),
        ("steps:\n  - task: Bash@3\n", "'steps[0].task' (line 2): not supported"),
        ("steps:\n  - checkout: self\n", "'steps[0].checkout' (line 2): not supported"),
        ("steps:\n  - pwsh: Write-Host\n", "'steps[0].pwsh' (line 2): not supported"),
        (
            "steps:\n  - script: a\n    bash: b\n",
            "'steps[0]' (line 2): a step has exactly one of 'script' or 'bash'",
        ),
        ("steps:\n  - displayName: x\n", "'steps[0]' (line 2): a step has exactly one of 'script' or 'bash'"),
        ("steps:\n  - script: [a, b]\n", "'steps[0].script' (line 2): expected a single value"),
        (
            "steps:\n  - script: a\n    env:\n      1BAD: x\n",
            "'steps[0].env.1BAD' (line 4): not an environment",
        ),
        ("steps:\n  - script: a\n    env: [x]\n", "'steps[0].env' (line 3): expected a map"),
        ("steps: echo\n", "'steps' (line 1): expected a list of steps"),
        ("jobs:\n  - job: A\n", "'jobs' (line 1): not supported"),
        ("stages: []\n", "'stages' (line 1): not supported"),
        ("pool: x\n\nextends:\n  template: t.yml\n", "'extends' (line 3): not supported"),
        ("trigger: none\n", "'steps' is required"),
        ("", "the pipeline is empty"),
        ("- script: a\n", "expected a map"),
        (
            "variables:\n  - group: secrets\nsteps: []\n",
            "'variables[0].group' (line 2): not supported (variable groups",
        ),
        (
            "variables:\n  - template: v.yml\nsteps: []\n",
            "'variables[0].template' (line 2): not supported (templates",
        ),
        ("variables:\n  - value: x\nsteps: []\n", "'variables[0]' (line 2): 'name' is required"),
        ("variables:\n  bad name: x\nsteps: []\n", "'variables.bad name' (line 2): a variable name"),
        ("variables:\n  System.AccessToken: x\nsteps: []\n", "is a predefined variable's name"),
        ("variables:\n  a:\n    b: c\nsteps: []\n", "'variables.a' (line 3): expected a single value"),
        ("variables: 3\nsteps: []\n", "'variables' (line 1): expected a map or a list"),
        ("steps:\n  - script: a\nsteps:\n  - script: b\n", "'steps' (line 3): duplicate key"),
        ("steps:\n  - script: 'unterminated\n", "not valid YAML"),
        ("steps: [\n", "not valid YAML (line 2)"),
    ],
)
def test_refusals_name_the_key_and_its_line(text: str, message: str) -> None:
    with pytest.raises(PipelineYamlError) as caught:
        parse_pipeline_yaml(text)
    assert message in str(caught.value)


def test_too_many_steps_are_refused() -> None:
    text = "steps:\n" + "".join(f"  - script: echo {i}\n" for i in range(101))
    with pytest.raises(PipelineYamlError, match="at most 100 steps"):
        parse_pipeline_yaml(text)


def test_macros_expand_case_insensitively_and_unknown_ones_stay() -> None:
    values = {"Build.BuildId": "7", "greeting": "hi"}
    assert expand_macros("$(build.buildid) $(GREETING) $(nope) $x", values) == "7 hi $(nope) $x"


def test_variables_become_environment_names_as_the_agent_makes_them() -> None:
    assert env_name("Build.SourceBranchName") == "BUILD_SOURCEBRANCHNAME"
    assert env_name("my.var-1") == "MY_VAR_1"


def test_masking_replaces_every_registered_value_longest_first() -> None:
    masker = Masker()
    masker.add("abc")
    masker.add("abcdef")
    masker.add("  ")  # blank: nothing to mask
    masker.add("line1\nline2")
    assert masker.mask("x abcdef abc y line2") == "x *** *** y ***"
    assert masker.mask("no secret here") == "no secret here"


def test_log_timestamps_have_seven_fractional_digits() -> None:
    from datetime import UTC, datetime

    assert (
        wire_log_time(datetime(2026, 11, 28, 1, 2, 3, 456789, tzinfo=UTC)) == "2026-11-28T01:02:03.4567890Z"
    )
