"""Running a job the way an Azure Pipelines agent does, on this machine.

One run is one job: a temporary work directory laid out like the agent's (`1/s` sources, `1/a` artifacts, `1/b`
binaries, `_temp`); a checkout step that clones the pipeline's repository over HTTPS with the job token in an
`http.extraheader` (given to git through GIT_CONFIG_* variables: never in the URL, the command line, the
repository's config or the log); then each `script`/`bash` step of the YAML as a `bash -e` subprocess with the
agent's environment. Every output line is masked (secret variables, the job token, values a step registers with
`##vso[task.setsecret]`), timestamped, stored and echoed. A failing step fails the job and skips the rest; the
job has a timeout; the job token is revoked when the job ends, whatever its result.

The YAML is read from the repository before any step runs, so a pipeline outside the supported subset fails
with no step run at all. Each database write is its own short unit of work: the server process (checkout,
oidctoken) must see the job token and the progress while the job runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from entryway.devops.git.storage import repository_path
from entryway.devops.pipelines.jobtokens import DEFAULT_JOB_TIMEOUT, JobTokens
from entryway.devops.pipelines.masking import Masker
from entryway.devops.pipelines.repository import PipelineRepository
from entryway.devops.pipelines.service import Pipeline, PipelineError, PipelineService
from entryway.devops.pipelines.variables import VariableCipher
from entryway.devops.pipelines.yamlspec import (
    PipelineSpec,
    PipelineYamlError,
    ScriptStep,
    parse_pipeline_yaml,
)
from entryway.kit.clock import Clock
from entryway.kit.secrets import SecretDigester
from entryway.store.db import Database
from entryway.store.models import PipelineLogLineRow, PipelineStepRow

log = logging.getLogger("entryway.devops.pipelines")

GIT = shutil.which("git") or "/usr/bin/git"
BASH = shutil.which("bash") or "/bin/bash"
MAX_LINE = 8192  # devops_pipeline_log_lines.text
MAX_YAML_BYTES = 1024 * 1024
LOG_FLUSH_LINES = 50
LOG_FLUSH_SECONDS = 0.5
# Taken from the parent's environment into every step (the contract: scripts run as the user, trust the local CA).
PASSED_THROUGH = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS", "VIRTUAL_ENV", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
    "NO_PROXY",
)  # fmt: skip
# Set for every step to a bundle of the installation's CA and the parent's (see JobRunner._ca_bundle).
CA_VARIABLES = (
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
)
_MACRO = re.compile(r"\$\(([A-Za-z0-9_.]+)\)")
# ##vso[area.action key=value;key=value]data (learn: pipelines/scripts/logging-commands)
_LOGGING_COMMAND = re.compile(r"^##vso\[(?P<command>[A-Za-z.]+)(?P<props>[^\]]*)\](?P<data>.*)$")

Echo = Callable[[str], None]


@dataclass(frozen=True)
class RunnerSettings:
    devops_origin: str
    git_root: str
    ca_bundle: str | None = None
    job_timeout: timedelta = DEFAULT_JOB_TIMEOUT
    # Where work directories are made (default: the system's temporary directory).
    work_root: str | None = None


def wire_log_time(value: datetime) -> str:
    """The agent's log timestamp: ISO 8601, seven fractional digits, Z."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def env_name(variable: str) -> str:
    """How the agent exports a variable: upper-cased, '.' (and anything not a name character) -> '_'."""
    return re.sub(r"[^A-Za-z0-9_]", "_", variable).upper()


def expand_macros(text: str, values: dict[str, str]) -> str:
    """`$(name)` -> the variable's value (names are case-insensitive); an unknown macro stays as written, as
    the agent leaves it."""
    lowered = {k.lower(): v for k, v in values.items()}
    return _MACRO.sub(lambda m: lowered.get(m.group(1).lower(), m.group(0)), text)


@dataclass
class _LogWriter:
    """Masks, numbers, timestamps, stores (in small batches) and echoes the job's lines."""

    db: Database
    clock: Clock
    run_id: int
    masker: Masker
    echo: Echo | None
    line_no: int = 0
    pending: list[PipelineLogLineRow] = field(default_factory=list)
    last_flush: float = field(default_factory=time.monotonic)

    def write(self, step_index: int, text: str) -> None:
        masked = self.masker.mask(text.rstrip("\r\n"))[:MAX_LINE]
        now = self.clock.now()
        self.line_no += 1
        self.pending.append(
            PipelineLogLineRow(
                run_id=self.run_id, line_no=self.line_no, step_index=step_index, timestamp=now, text=masked
            )
        )
        if self.echo is not None:
            self.echo(f"{wire_log_time(now)} {masked}")
        if len(self.pending) >= LOG_FLUSH_LINES or time.monotonic() - self.last_flush > LOG_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.pending:
            return
        rows, self.pending = self.pending, []
        with self.db.unit_of_work() as session:
            PipelineRepository(session).add_log_lines(rows)


@dataclass
class _Job:
    """Everything about a job known once it has started."""

    run_id: int
    pipeline: Pipeline
    org_name: str
    project_id: str
    project_name: str
    repo_id: str
    repo_name: str
    branch: str
    version: str
    spec: PipelineSpec
    token: str
    variables: dict[str, tuple[str, bool]]
    predefined: dict[str, str]
    work: Path


class JobRunner:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        digester: SecretDigester,
        cipher: VariableCipher | None,
        settings: RunnerSettings,
    ) -> None:
        self._db = db
        self._clock = clock
        self._digester = digester
        self._cipher = cipher
        self._settings = settings

    # --- the job ------------------------------------------------------------------------------------

    def run(self, run_id: int, echo: Echo | None = None) -> str:
        """Run a queued run to its end; returns its result (succeeded, failed or canceled). Never raises for
        what a pipeline does: a failure is the run's result, recorded with its reason. A run that does not exist
        or has already started is left alone ("failed" is returned, nothing is written)."""
        masker = Masker()
        logs = _LogWriter(self._db, self._clock, run_id, masker, echo)
        job: _Job | None = None
        result = "failed"
        error: str | None = None
        try:
            job = self._start(run_id, masker)
            result, error = self._execute(job, logs)
        except _NotRunnable as exc:
            log.warning("run %s not run: %s", run_id, exc)
            return "failed"
        except _JobRefused as exc:
            error = str(exc)
            logs.write(0, f"##[error]{error}")
        except Exception:  # a bug of ours must still end the job and revoke its token
            log.exception("run %s failed unexpectedly", run_id)
            error = "the run failed unexpectedly (see the server log)"
            logs.write(0, f"##[error]{error}")
        finally:
            if job is not None:
                shutil.rmtree(job.work, ignore_errors=True)
        logs.flush()
        self._finish(run_id, result, error)
        return result

    def _start(self, run_id: int, masker: Masker) -> _Job:
        """Claim the run, read and check the YAML, then record the steps and issue the job token."""
        with self._db.unit_of_work() as session:
            if not PipelineRepository(session).claim_run(run_id, self._clock.now()):
                raise _NotRunnable(f"run {run_id} does not exist or has already started")
        with self._db.unit_of_work() as session:
            rows = PipelineRepository(session).find_job_rows(run_id)
            if rows is None:
                raise _JobRefused(f"run {run_id}: its pipeline, project or repository no longer exists")
            run, pipeline_row, project, org, repo = rows
            pipeline = Pipeline.from_row(pipeline_row)
            bare = repository_path(self._settings.git_root, repo.id)
            version = _rev_parse(bare, run.source_branch)
            if version is None:
                raise _JobRefused(f"branch '{run.source_branch}' not found in repository {repo.name}")
            text = _read_blob(bare, version, pipeline.yaml_path)
            if text is None:
                raise _JobRefused(
                    f"{pipeline.yaml_path} not found in repository {repo.name} at {run.source_branch} ({version[:8]})"
                )
            try:
                spec = parse_pipeline_yaml(text)
            except PipelineYamlError as exc:
                raise _JobRefused(f"{pipeline.yaml_path}: {exc}") from None
            try:
                variables = PipelineService(session, self._clock, self._cipher).unsafe_variable_values(
                    pipeline
                )
            except (PipelineError, ValueError) as exc:
                raise _JobRefused(str(exc)) from None
            now = self._clock.now()
            run.source_version = version
            short_branch = run.source_branch.removeprefix("refs/heads/")
            names = [f"Checkout {repo.name}@{short_branch} to s", *(s.display_name for s in spec.steps)]
            for index, name in enumerate(names):
                session.add(PipelineStepRow(run_id=run.id, index=index, display_name=name, state="pending"))
            token = JobTokens(session, self._clock, self._digester).issue(
                run, org.id, self._settings.job_timeout
            )
            day = now.replace(hour=0, minute=0, second=0, microsecond=0)
            revision = PipelineRepository(session).count_runs_queued_between(pipeline.id, day, run.queued_at)
            masker.add(token)
            for value, is_secret in variables.values():
                if is_secret:
                    masker.add(value)
            work = Path(tempfile.mkdtemp(prefix=f"entryway-run-{run.id}-", dir=self._settings.work_root))
            predefined = self._predefined(
                org_name=org.name,
                org_id=org.id,
                project_name=project.name,
                project_id=project.id,
                pipeline=pipeline,
                run_id=run.id,
                plan_id=run.plan_id,
                job_id=run.job_id,
                build_number=f"{now:%Y%m%d}.{max(revision, 1)}",
                repo_id=repo.id,
                repo_name=repo.name,
                branch=run.source_branch,
                version=version,
                requested_by=run.requested_by_name,
                work=work,
                token=token,
            )
            return _Job(
                run_id=run.id,
                pipeline=pipeline,
                org_name=org.name,
                project_id=project.id,
                project_name=project.name,
                repo_id=repo.id,
                repo_name=repo.name,
                branch=run.source_branch,
                version=version,
                spec=spec,
                token=token,
                variables=variables,
                predefined=predefined,
                work=work,
            )

    def _predefined(
        self,
        *,
        org_name: str,
        org_id: str,
        project_name: str,
        project_id: str,
        pipeline: Pipeline,
        run_id: int,
        plan_id: str,
        job_id: str,
        build_number: str,
        repo_id: str,
        repo_name: str,
        branch: str,
        version: str,
        requested_by: str,
        work: Path,
        token: str,
    ) -> dict[str, str]:
        """The agent's predefined variables (learn: pipelines/build/variables), by their dotted names."""
        origin = self._settings.devops_origin.rstrip("/")
        collection = f"{origin}/{quote(org_name)}/"
        build_dir = work / "1"
        return {
            "System.AccessToken": token,
            "System.CollectionUri": collection,
            "System.TeamFoundationCollectionUri": collection,
            "System.CollectionId": org_id,
            "System.TeamProject": project_name,
            "System.TeamProjectId": project_id,
            "System.DefinitionId": str(pipeline.id),
            "System.DefinitionName": pipeline.name,
            "System.PlanId": plan_id,
            "System.JobId": job_id,
            "System.JobDisplayName": "Job",
            "System.HostType": "build",
            "System.DefaultWorkingDirectory": str(build_dir / "s"),
            "System.OidcRequestUri": f"{origin}/{quote(org_name)}/{project_id}/_apis/distributedtask/hubs/build/"
            f"plans/{plan_id}/jobs/{job_id}/oidctoken",
            "Build.BuildId": str(run_id),
            "Build.BuildNumber": build_number,
            "Build.DefinitionName": pipeline.name,
            "Build.Reason": "Manual",
            "Build.RequestedFor": requested_by,
            "Build.Repository.Id": repo_id,
            "Build.Repository.Name": repo_name,
            "Build.Repository.Provider": "TfsGit",
            "Build.Repository.Uri": f"{origin}/{quote(org_name)}/{quote(project_name)}/_git/{quote(repo_name)}",
            "Build.SourceBranch": branch,
            "Build.SourceBranchName": branch.rsplit("/", 1)[-1],
            "Build.SourceVersion": version,
            "Build.SourcesDirectory": str(build_dir / "s"),
            "Build.ArtifactStagingDirectory": str(build_dir / "a"),
            "Build.BinariesDirectory": str(build_dir / "b"),
            "Agent.BuildDirectory": str(build_dir),
            "Agent.TempDirectory": str(work / "_temp"),
            "Agent.WorkFolder": str(work),
            "Agent.Name": "entryway",
            "Agent.OS": "Linux",
            "Agent.JobName": "Job",
            "Pipeline.Workspace": str(build_dir),
            "TF_BUILD": "True",
        }

    def _execute(self, job: _Job, logs: _LogWriter) -> tuple[str, str | None]:
        """Checkout, then the steps; (result, error)."""
        for sub in ("1/s", "1/a", "1/b", "_temp"):
            (job.work / sub).mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self._settings.job_timeout.total_seconds()
        # Variables a step sets for the later ones (##vso[task.setvariable]).
        variables = dict(job.variables)
        for name, value in job.spec.variables.items():
            # The YAML's value wins over one set outside it, as in Azure DevOps.
            variables[name] = (value, False)
        steps = [self._checkout, *(self._script_runner(step) for step in job.spec.steps)]
        for index, step in enumerate(steps):
            if time.monotonic() >= deadline:
                return self._timed_out(job, logs, index, len(steps))
            self._mark_step(job.run_id, index, state="inProgress")
            outcome = step(job, logs, index, variables, deadline)
            if outcome is None:  # timed out inside the step
                self._mark_step(job.run_id, index, state="completed", result="canceled")
                return self._timed_out(job, logs, index + 1, len(steps))
            exit_code = outcome
            result = "succeeded" if exit_code == 0 else "failed"
            self._mark_step(job.run_id, index, state="completed", result=result, exit_code=exit_code)
            if exit_code != 0:
                self._skip(job.run_id, index + 1, len(steps))
                return "failed", None
        return "succeeded", None

    def _timed_out(self, job: _Job, logs: _LogWriter, next_index: int, total: int) -> tuple[str, str]:
        minutes = int(self._settings.job_timeout.total_seconds() // 60)
        message = f"The job ran longer than the maximum time of {minutes} minutes."
        logs.write(max(next_index - 1, 0), f"##[error]{message}")
        self._skip(job.run_id, next_index, total)
        return "canceled", message

    # --- steps --------------------------------------------------------------------------------------

    def _checkout(
        self,
        job: _Job,
        logs: _LogWriter,
        index: int,
        _variables: dict[str, tuple[str, bool]],
        deadline: float,
    ) -> int | None:
        url = job.predefined["Build.Repository.Uri"]
        sources = job.work / "1" / "s"
        short = job.branch.removeprefix("refs/heads/")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(job.work / "_temp"),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            # The job token, as the agent passes it (`-c http.extraheader=…`), but through the environment so
            # that it is in no command line (ps) either.
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraheader",
            "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: bearer {job.token}",
        }
        if self._settings.ca_bundle:
            env["GIT_SSL_CAINFO"] = self._settings.ca_bundle
        logs.write(index, f"##[section]Starting: Checkout {job.repo_name}@{short} to s")
        logs.write(index, f"Syncing repository: {job.repo_name} (Git)")
        commands = [
            [GIT, "clone", "--no-checkout", "--branch", short, "--", url, str(sources)],
            [GIT, "-C", str(sources), "checkout", "--progress", "--force", job.version],
        ]
        for command in commands:
            shown = " ".join(command[1:])
            logs.write(index, f'##[command]git -c http.extraheader="AUTHORIZATION: bearer ***" {shown}')
            code = _stream(command, env, job.work, deadline, lambda line: logs.write(index, line))
            if code is None:
                return None
            if code != 0:
                logs.write(index, f"##[error]Git failed with exit code: {code}")
                logs.write(index, f"##[section]Finishing: Checkout {job.repo_name}@{short} to s")
                return code
        logs.write(index, f"##[section]Finishing: Checkout {job.repo_name}@{short} to s")
        return 0

    def _script_runner(
        self, step: ScriptStep
    ) -> Callable[[_Job, _LogWriter, int, dict[str, tuple[str, bool]], float], int | None]:
        def run(
            job: _Job, logs: _LogWriter, index: int, variables: dict[str, tuple[str, bool]], deadline: float
        ) -> int | None:
            return self._script(job, logs, index, step, variables=variables, deadline=deadline)

        return run

    def _script(
        self,
        job: _Job,
        logs: _LogWriter,
        index: int,
        step: ScriptStep,
        *,
        variables: dict[str, tuple[str, bool]],
        deadline: float,
    ) -> int | None:
        macros = {name: value for name, (value, _) in variables.items()}
        macros.update(job.predefined)
        script = expand_macros(step.script, macros)
        env = self._environment(job, variables)
        for name, value in step.env.items():
            env[name] = expand_macros(value, macros)
        path = job.work / "_temp" / f"{job.run_id}-{index}.sh"
        path.write_text(script if script.endswith("\n") else script + "\n", encoding="utf-8")
        logs.write(index, f"##[section]Starting: {step.display_name}")
        logs.write(index, "Script contents:")
        for line in script.splitlines():
            logs.write(index, line)
        logs.write(index, "========================== Starting Command Output ===========================")
        logs.write(index, f"##[command]{BASH} --noprofile --norc -e {path}")

        def on_line(line: str) -> None:
            if self._logging_command(line, job, variables, logs.masker):
                return
            logs.write(index, line)

        code = _stream(
            [BASH, "--noprofile", "--norc", "-e", str(path)], env, job.work / "1" / "s", deadline, on_line
        )
        if code is None:
            return None
        if code != 0:
            logs.write(index, f"##[error]Bash exited with code '{code}'.")
        logs.write(index, f"##[section]Finishing: {step.display_name}")
        return code

    def _environment(self, job: _Job, variables: dict[str, tuple[str, bool]]) -> dict[str, str]:
        env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
        bundle = self._ca_bundle(job)
        if bundle is not None:
            for name in CA_VARIABLES:
                env[name] = str(bundle)
        # Secret variables are not exported: a step maps them in `env`, as with the agent.
        for name, (value, is_secret) in variables.items():
            if not is_secret:
                env[env_name(name)] = value
        for name, value in job.predefined.items():
            env[env_name(name)] = value
        return env

    def _ca_bundle(self, job: _Job) -> Path | None:
        """What the steps' CA variables name: the installation's CA plus whatever the parent trusted (the bundle
        its own variables name, often the system's), so a step reaches this server and the internet alike.
        Made once per job, in its temporary directory."""
        if not self._settings.ca_bundle:
            return None
        path = job.work / "_temp" / "ca-bundle.pem"
        if path.exists():
            return path
        parts = [Path(self._settings.ca_bundle).read_text(encoding="utf-8", errors="replace")]
        seen = {str(Path(self._settings.ca_bundle).resolve())}
        for name in CA_VARIABLES:
            inherited = os.environ.get(name)
            if not inherited or str(Path(inherited).resolve()) in seen or not Path(inherited).is_file():
                continue
            seen.add(str(Path(inherited).resolve()))
            with contextlib.suppress(OSError):
                parts.append(Path(inherited).read_text(encoding="utf-8", errors="replace"))
        path.write_text("\n".join(part.rstrip("\n") + "\n" for part in parts), encoding="utf-8")
        return path

    def _logging_command(
        self, line: str, job: _Job, variables: dict[str, tuple[str, bool]], masker: Masker
    ) -> bool:
        """Handle `##vso[task.setsecret]` and `##vso[task.setvariable]`; True when the line is consumed (a
        line registering a secret is never written, not even masked)."""
        match = _LOGGING_COMMAND.match(line.strip())
        if match is None:
            return False
        command = match.group("command").lower()
        data = match.group("data")
        props = {}
        for part in match.group("props").strip().split(";"):
            key, _, value = part.partition("=")
            if key.strip():
                props[key.strip().lower()] = value.strip()
        if command == "task.setsecret":
            masker.add(data)
            return True
        if command == "task.setvariable" and props.get("variable"):
            name = props["variable"]
            secret = props.get("issecret", "").lower() == "true"
            if secret:
                masker.add(data)
            if not name.lower().startswith(("system.", "build.", "agent.")):
                variables[name] = (data, secret)
            return True
        return False

    # --- records ------------------------------------------------------------------------------------

    def _mark_step(
        self, run_id: int, index: int, *, state: str, result: str | None = None, exit_code: int | None = None
    ) -> None:
        with self._db.unit_of_work() as session:
            step = PipelineRepository(session).get_step(run_id, index)
            if step is None:
                return
            now = self._clock.now()
            step.state = state
            if state == "inProgress":
                step.started_at = now
            else:
                step.finished_at = now
                step.result = result
                step.exit_code = exit_code

    def _skip(self, run_id: int, start: int, total: int) -> None:
        with self._db.unit_of_work() as session:
            repo = PipelineRepository(session)
            for index in range(start, total):
                step = repo.get_step(run_id, index)
                if step is not None and step.state == "pending":
                    step.state = "skipped"
                    step.result = "skipped"

    def _finish(self, run_id: int, result: str, error: str | None) -> None:
        with self._db.unit_of_work() as session:
            JobTokens(session, self._clock, self._digester).revoke_for_run(run_id)
            run = PipelineRepository(session).get_run(run_id)
            if run is None:
                return
            run.state = "completed"
            run.result = result
            run.error = None if error is None else error[:2048]
            run.finished_at = self._clock.now()
            for step in PipelineRepository(session).list_steps(run_id):
                if step.state in {"pending", "inProgress"}:
                    step.state = "skipped" if step.state == "pending" else "completed"
                    step.result = step.result or ("skipped" if step.state == "skipped" else result)


class _NotRunnable(Exception):
    """The run does not exist or has already started."""


class _JobRefused(Exception):
    """The job cannot start (bad YAML, no such branch or file): the run fails before any step."""


def _rev_parse(bare: Path, ref: str) -> str | None:
    done = subprocess.run(  # noqa: S603 - fixed executable, arguments are ours
        [GIT, "--git-dir", str(bare), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout.strip() or None if done.returncode == 0 else None


def _read_blob(bare: Path, version: str, path: str) -> str | None:
    done = subprocess.run(  # noqa: S603 - fixed executable, arguments are ours
        [GIT, "--git-dir", str(bare), "cat-file", "blob", f"{version}:{path}"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        return None
    if len(done.stdout) > MAX_YAML_BYTES:
        raise _JobRefused(f"{path} is larger than {MAX_YAML_BYTES // 1024} KiB")
    return done.stdout.decode("utf-8", errors="replace")


def _stream(
    command: list[str], env: dict[str, str], cwd: Path, deadline: float, on_line: Callable[[str], None]
) -> int | None:
    """Run `command`, handing each line of its merged stdout and stderr to `on_line` as it comes; its exit
    code, or None when the deadline passed (the process group is killed)."""
    process = subprocess.Popen(  # noqa: S603 - our own command lines, no shell
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so a timeout kills what it started too
    )
    lines: queue.Queue[bytes | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            lines.put(raw)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    timed_out = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        try:
            item = lines.get(timeout=min(remaining, 1.0))
        except queue.Empty:
            continue
        if item is None:
            break
        on_line(item.decode("utf-8", errors="replace").rstrip("\r\n"))
    if timed_out:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    code = process.wait()
    reader.join(timeout=5)
    assert process.stdout is not None
    process.stdout.close()
    return None if timed_out else code
