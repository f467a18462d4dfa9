"""`entryway pipelines`: YAML pipelines of a project, their variables, and runs executed on this machine the way
an Azure Pipelines agent runs a job (the server must be running: the checkout and the oidctoken endpoint are
its)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from entryway.cli.main import DataDir, admin_runtime, app, fail

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from entryway.devops.orgs.service import Organization
    from entryway.devops.pipelines.service import Pipeline, PipelineService, Run
    from entryway.devops.projects.service import Project, ProjectService
    from entryway.runtime import Runtime

pipelines_app = typer.Typer(
    no_args_is_help=True,
    help="YAML pipelines of a project, their variables, and runs on this machine (as an agent runs a job).",
)
variable_app = typer.Typer(no_args_is_help=True, help="Variables of a pipeline (secrets are encrypted).")
app.add_typer(pipelines_app, name="pipelines")
pipelines_app.add_typer(variable_app, name="variable")

ProjectPathArg = Annotated[str, typer.Argument(help="{organization}/{project}", metavar="ORG/PROJECT")]
PipelineOpt = Annotated[str, typer.Option("--pipeline", help="The pipeline's name or id.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON instead of text.")]


@dataclass
class _Scope:
    runtime: Runtime
    session: Session
    org: Organization
    project: Project
    projects: ProjectService
    pipelines: PipelineService


def _cipher(rt: Runtime) -> Any:
    from entryway.devops.pipelines.variables import PIPELINE_VARIABLES_PURPOSE, VariableCipher

    return VariableCipher(rt.master_key.derive(PIPELINE_VARIABLES_PURPOSE))


def split_project_path(path: str) -> tuple[str, str]:
    org_name, sep, project_name = path.strip().strip("/").partition("/")
    if not sep or not org_name or not project_name or "/" in project_name:
        raise fail(f"'{path}' is not ORG/PROJECT")
    return org_name, project_name


@contextmanager
def _project_scope(data_dir: DataDir, path: str, *, write: bool = True) -> Iterator[_Scope]:
    from entryway.devops.orgs.service import OrgService
    from entryway.devops.pipelines.service import PipelineError, PipelineService
    from entryway.devops.projects.service import ProjectService

    org_name, project_name = split_project_path(path)
    with admin_runtime(data_dir) as rt, rt.db.unit_of_work() if write else rt.db.read() as session:
        projects = ProjectService(session, rt.clock, str(rt.settings.data_dir / "git"))
        org = OrgService(session, rt.clock).get(org_name)
        project = projects.get(org, project_name)
        try:
            yield _Scope(rt, session, org, project, projects, PipelineService(session, rt.clock, _cipher(rt)))
        except PipelineError as exc:
            raise fail(str(exc)) from exc


def _actor(what: str) -> Any:
    from entryway.devops.audit.recorder import Actor

    return Actor.local(what)


def _pipeline_json(scope: _Scope, pipeline: Pipeline) -> dict[str, object]:
    repo = scope.projects.get_repository(scope.org, pipeline.repository_id, project=scope.project)
    return {
        "id": pipeline.id,
        "name": pipeline.name,
        "project": scope.project.name,
        "repository": repo.name,
        "yamlPath": pipeline.yaml_path,
    }


@pipelines_app.command("create")
def pipelines_create(
    data_dir: DataDir,
    path: ProjectPathArg,
    name: Annotated[str, typer.Option("--name", help="The pipeline's name (unique in the project).")],
    repo: Annotated[str, typer.Option("--repo", help="The project's repository holding the YAML.")],
    yaml_path: Annotated[
        str, typer.Option("--yaml", help="The YAML file's path in the repository.")
    ] = "azure-pipelines.yml",
    as_json: JsonOpt = False,
) -> None:
    """A YAML pipeline: a file in one of the project's repositories."""
    with _project_scope(data_dir, path) as scope:
        pipeline = scope.pipelines.create(
            scope.org,
            scope.project,
            name,
            _actor("entryway pipelines create"),
            repository=repo,
            yaml_path=yaml_path,
        )
        described = _pipeline_json(scope, pipeline)
    if as_json:
        typer.echo(json.dumps(described, indent=2))
    else:
        typer.echo(
            f"Created pipeline {pipeline.name} (id {pipeline.id}): {described['repository']}/{pipeline.yaml_path}"
        )


@pipelines_app.command("list")
def pipelines_list(data_dir: DataDir, path: ProjectPathArg, as_json: JsonOpt = False) -> None:
    """The project's pipelines."""
    with _project_scope(data_dir, path, write=False) as scope:
        described = [_pipeline_json(scope, p) for p in scope.pipelines.list_pipelines(scope.project)]
    if as_json:
        typer.echo(json.dumps(described, indent=2))
        return
    if not described:
        typer.echo("No pipelines.")
    for p in described:
        typer.echo(f"{p['id']}  {p['name']}  {p['repository']}/{p['yamlPath']}")


@variable_app.command("set")
def variable_set(
    data_dir: DataDir,
    path: ProjectPathArg,
    pipeline: PipelineOpt,
    name: Annotated[str, typer.Argument(help="The variable's name (letters, digits, '.', '_').")],
    value: Annotated[str, typer.Argument(help="Its value.")],
    secret: Annotated[
        bool,
        typer.Option("--secret", help="Encrypted, never shown, masked in every log; not exported to env."),
    ] = False,
) -> None:
    """Set a variable of a pipeline (it replaces one of the same name)."""
    with _project_scope(data_dir, path) as scope:
        found = scope.pipelines.get(scope.project, pipeline)
        changed = scope.pipelines.set_variable(
            scope.org, found, name, value, _actor("entryway pipelines variable set"), secret=secret
        )
    kind = "secret variable" if secret else "variable"
    typer.echo(f"Set {kind} {name} on {found.name}." if changed else f"{name} already has that value.")


@variable_app.command("list")
def variable_list(
    data_dir: DataDir, path: ProjectPathArg, pipeline: PipelineOpt, as_json: JsonOpt = False
) -> None:
    """A pipeline's variables; a secret's value is never shown."""
    with _project_scope(data_dir, path, write=False) as scope:
        found = scope.pipelines.get(scope.project, pipeline)
        variables = scope.pipelines.list_variables(found)
    if as_json:
        typer.echo(
            json.dumps(
                [{"name": v.name, "isSecret": v.is_secret, "value": v.value} for v in variables], indent=2
            )
        )
        return
    for v in variables:
        typer.echo(f"{v.name} = {'*** (secret)' if v.is_secret else v.value}")


@variable_app.command("delete")
def variable_delete(data_dir: DataDir, path: ProjectPathArg, pipeline: PipelineOpt, name: str) -> None:
    """Remove a variable from a pipeline."""
    with _project_scope(data_dir, path) as scope:
        found = scope.pipelines.get(scope.project, pipeline)
        scope.pipelines.delete_variable(scope.org, found, name, _actor("entryway pipelines variable delete"))
    typer.echo(f"Deleted variable {name} from {found.name}.")


def _resolve_for_run(scope: _Scope, name_or_path: str, repo: str | None) -> Pipeline:
    """A pipeline by name or id, else by its YAML path; a path no pipeline uses yet gets a pipeline, named after
    the repository as Azure DevOps names a new one, in `--repo` or the project's only repository."""
    from entryway.devops.pipelines.service import PipelineError, PipelineErrorKind, normalize_yaml_path

    found = scope.pipelines.resolve(scope.project, name_or_path)
    if found is not None:
        return found
    if not name_or_path.lower().endswith((".yml", ".yaml")):
        raise PipelineError(
            PipelineErrorKind.NOT_FOUND, f"pipeline '{name_or_path}' not found in {scope.project.name}"
        )
    path = normalize_yaml_path(name_or_path)
    repos = scope.projects.list_repositories(scope.org, project=scope.project)
    if repo is not None:
        chosen = scope.projects.get_repository(scope.org, repo, project=scope.project)
    elif len(repos) == 1:
        chosen = repos[0]
    else:
        raise fail(f"no pipeline uses {path}; name its repository with --repo")
    name = chosen.name
    taken = {p.name.lower() for p in scope.pipelines.list_pipelines(scope.project)}
    counter = 1
    while name.lower() in taken:
        name = f"{chosen.name} ({counter})"
        counter += 1
    return scope.pipelines.create(
        scope.org, scope.project, name, _actor("entryway pipelines run"), repository=chosen.id, yaml_path=path
    )


@pipelines_app.command("run")
def pipelines_run(
    data_dir: DataDir,
    path: ProjectPathArg,
    pipeline: Annotated[
        str, typer.Option("--pipeline", help="A pipeline's name or id, or a YAML path in the repository.")
    ],
    branch: Annotated[
        str | None,
        typer.Option("--branch", help="The branch to run (default: the repository's default, or main)."),
    ] = None,
    repo: Annotated[
        str | None, typer.Option("--repo", help="For a YAML path no pipeline uses yet: its repository.")
    ] = None,
    timeout_minutes: Annotated[
        int,
        typer.Option(
            "--timeout-minutes", min=1, max=24 * 60, help="The job's timeout (its token's lifetime)."
        ),
    ] = 60,
) -> None:
    """Run the pipeline's job here, streaming its log; exit status 0 when it succeeded, 1 otherwise."""
    from entryway.devops.pipelines.runner import JobRunner, RunnerSettings

    with _project_scope(data_dir, path) as scope:
        found = _resolve_for_run(scope, pipeline, repo)
        if branch is None:
            repository = scope.projects.get_repository(scope.org, found.repository_id, project=scope.project)
            branch = repository.default_branch or "main"
        run = scope.pipelines.queue_run(scope.org, found, branch, _actor("entryway pipelines run"))
    typer.echo(f"Run {run.id} of {found.name} ({run.source_branch}) queued.", err=True)
    with admin_runtime(data_dir) as rt:
        runner = JobRunner(
            rt.db,
            rt.clock,
            rt.digester,
            _cipher(rt),
            RunnerSettings(
                devops_origin=rt.settings.devops_origin,
                git_root=str(rt.settings.data_dir / "git"),
                ca_bundle=str(rt.settings.ca_bundle),
                job_timeout=timedelta(minutes=timeout_minutes),
            ),
        )
        result = runner.run(run.id, echo=typer.echo)
    typer.echo(f"Run {run.id}: {result}.", err=True)
    raise typer.Exit(code=0 if result == "succeeded" else 1)


@pipelines_app.command("runs")
def pipelines_runs(
    data_dir: DataDir,
    path: ProjectPathArg,
    pipeline: PipelineOpt,
    top: Annotated[int, typer.Option("--top", min=1, max=1000, help="How many, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """A pipeline's runs, newest first."""
    with _project_scope(data_dir, path, write=False) as scope:
        found = scope.pipelines.get(scope.project, pipeline)
        runs = scope.pipelines.list_runs(found, limit=top)
    if as_json:
        typer.echo(json.dumps([run_json(r, []) for r in runs], indent=2))
        return
    if not runs:
        typer.echo("No runs.")
    for r in runs:
        typer.echo(
            f"{r.id}  {r.state}  {r.result or '-'}  {r.source_branch}  {r.queued_at:%Y-%m-%d %H:%M:%S}Z"
        )


def run_json(run: Run, lines: list[tuple[int, Any, str]]) -> dict[str, object]:
    from entryway.devops.pipelines.runner import wire_log_time

    def when(value: Any) -> str | None:
        return None if value is None else wire_log_time(value)

    return {
        "id": run.id,
        "pipeline": {"id": run.pipeline_id, "name": run.pipeline_name},
        "state": run.state,
        "result": run.result,
        "sourceBranch": run.source_branch,
        "sourceVersion": run.source_version,
        "requestedBy": run.requested_by,
        "error": run.error,
        "queuedAt": when(run.queued_at),
        "startedAt": when(run.started_at),
        "finishedAt": when(run.finished_at),
        "steps": [
            {
                "index": s.index,
                "displayName": s.display_name,
                "state": s.state,
                "result": s.result,
                "exitCode": s.exit_code,
                "startedAt": when(s.started_at),
                "finishedAt": when(s.finished_at),
            }
            for s in run.steps
        ],
        "log": [{"step": step, "timestamp": when(ts), "text": text} for step, ts, text in lines],
    }


@pipelines_app.command("show")
def pipelines_show(
    data_dir: DataDir,
    run_id: Annotated[int, typer.Argument(help="The run's id (BUILD_BUILDID).")],
    as_json: JsonOpt = False,
    no_log: Annotated[bool, typer.Option("--no-log", help="Without the log.")] = False,
) -> None:
    """A run: its result, steps and (masked) log."""
    from entryway.devops.pipelines.runner import wire_log_time
    from entryway.devops.pipelines.service import PipelineError, PipelineService

    with admin_runtime(data_dir) as rt, rt.db.read() as session:
        service = PipelineService(session, rt.clock)
        try:
            run = service.get_run(run_id)
        except PipelineError as exc:
            raise fail(str(exc)) from exc
        lines = [] if no_log else service.log_lines(run.id)
    if as_json:
        typer.echo(json.dumps(run_json(run, lines), indent=2))
        return
    typer.echo(f"Run {run.id}  {run.pipeline_name}  {run.state}  {run.result or '-'}")
    typer.echo(
        f"  branch {run.source_branch}  version {run.source_version or '-'}  by {run.requested_by or '-'}"
    )
    if run.error:
        typer.echo(f"  error: {run.error}")
    for s in run.steps:
        exit_code = "" if s.exit_code is None else f" (exit {s.exit_code})"
        typer.echo(f"  [{s.result or s.state}] {s.index} {s.display_name}{exit_code}")
    for _, ts, text in lines:
        typer.echo(f"{wire_log_time(ts)} {text}")
