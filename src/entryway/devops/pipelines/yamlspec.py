"""The subset of azure-pipelines.yml a run understands, parsed with the line of every key.

Supported (learn: pipelines/yaml-schema): `trigger` and `pool` (accepted and ignored: runs are queued by hand
and run on this machine), `variables` (a map, or a list of `{name, value}`), and `steps`, each a `script` or
`bash` step with optional `displayName` and `env`. Anything else — `stages`, `jobs`, `task` steps, `condition`,
variable groups, templates — is refused before any step runs, with a message naming the key and its line.
No I/O: the runner hands the text in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

IGNORED_KEYS = frozenset({"trigger", "pool"})
TOP_LEVEL_KEYS = frozenset({"trigger", "pool", "variables", "steps"})
STEP_KINDS = frozenset({"script", "bash"})
STEP_KEYS = frozenset({"script", "bash", "displayName", "env"})
# Azure DevOps' variable names: letters, digits, '.', '_' (and no 'system'-like prefix we would let a YAML
# override; see RESERVED_PREFIXES).
_VARIABLE_NAME = re.compile(r"^[A-Za-z0-9_.]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Predefined variables belong to the agent: a pipeline cannot set them (Azure DevOps ignores or refuses them).
RESERVED_PREFIXES = ("system.", "build.", "agent.", "release.", "pipeline.", "endpoint.", "input.", "secret.")
MAX_STEPS = 100


class PipelineYamlError(ValueError):
    """The YAML is not in the supported subset; the message names the key and its line (1-based)."""


@dataclass(frozen=True)
class ScriptStep:
    script: str
    display_name: str
    env: dict[str, str] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True)
class PipelineSpec:
    variables: dict[str, str]
    steps: list[ScriptStep]


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _where(path: str, node: Node) -> str:
    return f"'{path}' (line {_line(node)})"


def _scalar(node: Node, path: str) -> str:
    if not isinstance(node, ScalarNode):
        raise PipelineYamlError(f"{_where(path, node)}: expected a single value, not a list or a map")
    if node.tag == "tag:yaml.org,2002:null":
        return ""
    # The text as written: `true` stays `true`, `007` stays `007` (Azure DevOps' variables are strings).
    return str(node.value)


def _mapping(node: Node, path: str) -> list[tuple[str, Node, Node]]:
    if not isinstance(node, MappingNode):
        raise PipelineYamlError(f"{_where(path, node)}: expected a map")
    pairs: list[tuple[str, Node, Node]] = []
    seen: set[str] = set()
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            raise PipelineYamlError(f"line {_line(key_node)}: a key must be a plain name")
        key = str(key_node.value)
        if key in seen:
            raise PipelineYamlError(f"{_where(f'{path}.{key}' if path else key, key_node)}: duplicate key")
        seen.add(key)
        pairs.append((key, key_node, value_node))
    return pairs


def parse_pipeline_yaml(text: str) -> PipelineSpec:
    """The pipeline a YAML text describes, or PipelineYamlError saying which key on which line is refused."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PipelineYamlError(f"not valid YAML{where}: {problem}") from None
    if root is None:
        raise PipelineYamlError("the pipeline is empty: 'steps' is required")
    variables: dict[str, str] = {}
    steps: list[ScriptStep] = []
    steps_seen = False
    for key, key_node, value in _mapping(root, ""):
        if key not in TOP_LEVEL_KEYS:
            raise PipelineYamlError(
                f"{_where(key, key_node)}: not supported (supported: {', '.join(sorted(TOP_LEVEL_KEYS))})"
            )
        if key in IGNORED_KEYS:
            continue
        if key == "variables":
            variables = _variables(value)
        elif key == "steps":
            steps_seen = True
            steps = _steps(value)
    if not steps_seen:
        raise PipelineYamlError("'steps' is required (stages and jobs are not supported)")
    return PipelineSpec(variables, steps)


def _check_variable_name(name: str, path: str, node: Node) -> str:
    if not _VARIABLE_NAME.match(name):
        raise PipelineYamlError(
            f"{_where(path, node)}: a variable name has letters, digits, '.' and '_' only"
        )
    if name.lower().startswith(RESERVED_PREFIXES):
        raise PipelineYamlError(f"{_where(path, node)}: '{name}' is a predefined variable's name")
    return name


def _variables(node: Node) -> dict[str, str]:
    variables: dict[str, str] = {}
    if isinstance(node, MappingNode):
        for name, key_node, value in _mapping(node, "variables"):
            path = f"variables.{name}"
            _check_variable_name(name, path, key_node)
            variables[name] = _scalar(value, path)
        return variables
    if not isinstance(node, SequenceNode):
        raise PipelineYamlError(f"{_where('variables', node)}: expected a map or a list of name/value pairs")
    for index, item in enumerate(node.value):
        path = f"variables[{index}]"
        entry = {k: (kn, v) for k, kn, v in _mapping(item, path)}
        for key, (key_node, _) in entry.items():
            if key not in {"name", "value"}:
                hint = " (variable groups are not supported)" if key == "group" else ""
                hint = " (templates are not supported)" if key == "template" else hint
                raise PipelineYamlError(f"{_where(f'{path}.{key}', key_node)}: not supported{hint}")
        if "name" not in entry:
            raise PipelineYamlError(f"{_where(path, item)}: 'name' is required")
        name_node = entry["name"][1]
        name = _check_variable_name(_scalar(name_node, f"{path}.name"), f"{path}.name", name_node)
        variables[name] = _scalar(entry["value"][1], f"{path}.value") if "value" in entry else ""
    return variables


def _steps(node: Node) -> list[ScriptStep]:
    if not isinstance(node, SequenceNode):
        raise PipelineYamlError(f"{_where('steps', node)}: expected a list of steps")
    if len(node.value) > MAX_STEPS:
        raise PipelineYamlError(f"{_where('steps', node)}: at most {MAX_STEPS} steps")
    steps: list[ScriptStep] = []
    for index, item in enumerate(node.value):
        path = f"steps[{index}]"
        pairs = _mapping(item, path)
        kinds = [(k, kn, v) for k, kn, v in pairs if k in STEP_KINDS]
        for key, key_node, _ in pairs:
            if key not in STEP_KEYS:
                raise PipelineYamlError(
                    f"{_where(f'{path}.{key}', key_node)}: not supported "
                    f"(a step is a 'script' or 'bash' with 'displayName' and 'env')"
                )
        if len(kinds) != 1:
            raise PipelineYamlError(f"{_where(path, item)}: a step has exactly one of 'script' or 'bash'")
        kind, _, script_node = kinds[0]
        script = _scalar(script_node, f"{path}.{kind}")
        display_name = ""
        env: dict[str, str] = {}
        for key, _key_node, value in pairs:
            if key == "displayName":
                display_name = _scalar(value, f"{path}.displayName")
            elif key == "env":
                for env_name, env_key_node, env_value in _mapping(value, f"{path}.env"):
                    if not _ENV_NAME.match(env_name):
                        raise PipelineYamlError(
                            f"{_where(f'{path}.env.{env_name}', env_key_node)}: not an environment variable name"
                        )
                    env[env_name] = _scalar(env_value, f"{path}.env.{env_name}")
        if not display_name:
            # The agent's default: the script's first line.
            first = script.strip().splitlines()[0] if script.strip() else ""
            display_name = f"{'Bash' if kind == 'bash' else 'CmdLine'}: {first}"[:256]
        steps.append(ScriptStep(script=script, display_name=display_name[:256], env=env, line=_line(item)))
    return steps
