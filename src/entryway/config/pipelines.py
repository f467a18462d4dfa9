"""The config file's pipelines, under a project (docs/pipelines.md):

    projects:
      - name: web
        repositories: [web]
        pipelines:
          - name: ci
            repository: web
            yaml: azure-pipelines.yml          # the default
            variables:
              greeting: hello                  # a plain variable
              db.password:                     # a secret: encrypted, masked, never shown
                secret: true
                from_env: WEB_DB_PASSWORD      # or value: "…" (kept out of the file is better)

Like the rest of the file, it adds and never takes away: a pipeline that exists (same name) is matched, and one
that names another repository or YAML path is an error; a variable the file names is set when it is missing or
its value differs (a secret is compared after decrypting it, so applying the file twice changes nothing).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from entryway.config.errors import ConfigError
from entryway.devops.audit.recorder import Actor
from entryway.devops.orgs.service import Organization
from entryway.devops.pipelines.service import Pipeline, PipelineError, PipelineService, normalize_yaml_path
from entryway.devops.pipelines.variables import VariableCipher
from entryway.devops.projects.service import Project, ProjectError, ProjectService
from entryway.kit.clock import Clock

if TYPE_CHECKING:
    from entryway.config.declarative import ApplyReport, _Reader

KEYS = {"name", "repository", "yaml", "variables"}
VARIABLE_KEYS = {"value", "secret", "from_env"}


def apply_pipelines(
    session: Session,
    clock: Clock,
    cipher: VariableCipher,
    *,
    org: Organization,
    project: Project,
    cfg: _Reader,
    actor: Actor,
    report: ApplyReport,
) -> None:
    pipelines = PipelineService(session, clock, cipher)
    for pipeline_cfg in cfg.items("pipelines"):
        pipeline_cfg.check_keys(KEYS)
        try:
            created, found = _apply_pipeline(
                session, clock, pipelines, org=org, project=project, cfg=pipeline_cfg, actor=actor
            )
            if created:
                report.note(f"pipeline {org.name}/{project.name}/{found.name}")
            _apply_variables(pipelines, org=org, pipeline=found, cfg=pipeline_cfg, actor=actor, report=report)
        except (PipelineError, ProjectError) as exc:
            raise ConfigError(f"{pipeline_cfg.path}: {exc}") from exc


def _apply_pipeline(
    session: Session,
    clock: Clock,
    pipelines: PipelineService,
    *,
    org: Organization,
    project: Project,
    cfg: _Reader,
    actor: Actor,
) -> tuple[bool, Pipeline]:
    name = cfg.text("name", required=True) or ""
    repository = cfg.text("repository", required=True) or ""
    yaml_path = normalize_yaml_path(cfg.text("yaml") or "azure-pipelines.yml")
    existing = pipelines.find(project, name)
    if existing is None:
        return True, pipelines.create(org, project, name, actor, repository=repository, yaml_path=yaml_path)
    repo = ProjectService(session, clock).get_repository(org, repository, project=project)
    if existing.repository_id != repo.id or existing.yaml_path != yaml_path:
        raise ConfigError(
            f"{cfg.path}: pipeline '{name}' exists with another repository or YAML path "
            f"({existing.yaml_path}); the file never changes a pipeline"
        )
    return False, existing


def _apply_variables(
    pipelines: PipelineService,
    *,
    org: Organization,
    pipeline: Pipeline,
    cfg: _Reader,
    actor: Actor,
    report: ApplyReport,
) -> None:
    raw = cfg.raw("variables")
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise ConfigError(f"{cfg.path}.variables: expected a mapping of names to values")
    current = pipelines.unsafe_variable_values(pipeline)
    current_by_key = {name.lower(): value for name, value in current.items()}
    for name, spec in raw.items():
        where = f"{cfg.path}.variables.{name}"
        value, secret = _variable(where, spec)
        if current_by_key.get(str(name).lower()) == (value, secret):
            continue
        pipelines.set_variable(org, pipeline, str(name), value, actor, secret=secret)
        report.note(f"{'secret ' if secret else ''}variable {name} of pipeline {pipeline.name}")


def _variable(where: str, spec: object) -> tuple[str, bool]:
    if isinstance(spec, bool):
        return ("true" if spec else "false"), False
    if isinstance(spec, str | int | float):
        return str(spec), False
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a value, or a mapping with value or from_env and secret")
    unknown = set(spec) - VARIABLE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} (value, secret, from_env)")
    secret = spec.get("secret", False)
    if not isinstance(secret, bool):
        raise ConfigError(f"{where}.secret: expected true or false")
    if ("value" in spec) == ("from_env" in spec):
        raise ConfigError(f"{where}: give exactly one of 'value' or 'from_env'")
    if "from_env" in spec:
        env = spec["from_env"]
        if not isinstance(env, str) or env not in os.environ:
            raise ConfigError(f"{where}.from_env: the environment variable {env!r} is not set")
        return os.environ[env], secret
    value = spec["value"]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{where}.value: expected a string")
    return str(value), secret
