"""The measuring half of `bench/run.sh`: it waits for the Entryway that run.sh started, takes the demo
credentials from its banner, measures the RSA-2048 signing ceiling with `openssl speed`, drives both
endpoints with wrk over TLS with keep-alive, and writes a report to bench/results/.

Not a test: it reports figures and exits non-zero only when a run is invalid (a request failed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from entryway.identity.directory.first_party import AZURE_DEVOPS

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

READY_TIMEOUT_SECONDS = 60
WARMUP_SECONDS = 3
OPENSSL_SECONDS = 3
# The first targets, to be raised later.
TARGET_TOKENS_PER_SECOND = 1_500
TARGET_REQUESTS_PER_SECOND = 3_000

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp
_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


class BenchError(Exception):
    """The run cannot produce valid figures; the message says why."""


# --- the server under test ----------------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    identity_origin: str
    devops_origin: str
    ca_bundle: Path
    tenant_id: str
    client_id: str
    client_secret: str
    organization: str

    @property
    def token_url(self) -> str:
        return f"{self.identity_origin}/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def connection_data_url(self) -> str:
        return f"{self.devops_origin}/{self.organization}/_apis/connectionData"


def _banner_value(banner: str, label: str) -> str:
    match = re.search(rf"^\s*{label}\s+(\S+)", banner, re.MULTILINE)
    if match is None:
        raise BenchError(f"the banner has no '{label}' line (was the data directory fresh?)")
    return match.group(1)


def wait_for_instance(data_dir: Path, log: Path, server_pid: int) -> Instance:
    """The demo tenant, app and organization, from the banner `entryway serve` prints on a first start."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        banner = log.read_text() if log.exists() else ""
        if "Press Ctrl+C to stop." in banner:
            break
        if not Path(f"/proc/{server_pid}").exists():
            raise BenchError("entryway serve exited during start")
        if time.monotonic() > deadline:
            raise BenchError(f"entryway serve printed no banner in {READY_TIMEOUT_SECONDS}s")
        time.sleep(0.1)
    state = json.loads((data_dir / "state.json").read_text())
    return Instance(
        identity_origin=state["identity_origin"],
        devops_origin=state["devops_origin"],
        ca_bundle=data_dir / "tls" / "ca.pem",
        tenant_id=_banner_value(banner, "tenant id"),
        client_id=_banner_value(banner, "client id"),
        client_secret=_banner_value(banner, "client secret"),
        organization=_banner_value(banner, "organization").rstrip("/").rsplit("/", 1)[-1],
    )


def _listeners(port: int) -> int:
    """How many sockets listen on `port`: one per worker once every worker is up (SO_REUSEPORT)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with Path(table).open() as fh:
            next(fh)
            for line in fh:
                fields = line.split()
                if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def wait_for_workers(instance: Instance, workers: int, server_pid: int) -> None:
    """Every worker listening on both ports: connections opened earlier would all land on the first."""
    ports = [urllib.parse.urlsplit(o).port or 443 for o in (instance.identity_origin, instance.devops_origin)]
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while any(_listeners(p) < workers for p in ports):
        if not Path(f"/proc/{server_pid}").exists():
            raise BenchError("entryway serve exited while its workers started")
        if time.monotonic() > deadline:
            raise BenchError(f"{workers} workers were not listening after {READY_TIMEOUT_SECONDS}s")
        time.sleep(0.1)


def _request(
    context: ssl.SSLContext, url: str, *, data: bytes | None = None, headers: dict[str, str]
) -> bytes:
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - https to loopback only
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:  # noqa: S310
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            raise BenchError(f"{url} answered {exc.code}: {exc.read()[:500]!r}") from exc
        except (urllib.error.URLError, ConnectionError) as exc:
            # A worker whose socket listens but whose app is still starting: retry until the deadline.
            if time.monotonic() > deadline:
                raise BenchError(f"{url} is not reachable: {exc}") from exc
            time.sleep(0.2)


def token_form(instance: Instance) -> str:
    return urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": instance.client_id,
            "client_secret": instance.client_secret,
            "scope": f"{AZURE_DEVOPS.app_id}/.default",
        }
    )


def fetch_access_token(instance: Instance) -> str:
    """One token through the endpoint under test, and one connectionData call that accepts it."""
    context = ssl.create_default_context(cafile=str(instance.ca_bundle))
    body = _request(
        context,
        instance.token_url,
        data=token_form(instance).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    token = str(json.loads(body)["access_token"])
    connection = json.loads(
        _request(context, instance.connection_data_url, headers={"Authorization": f"Bearer {token}"})
    )
    if not connection.get("authenticatedUser", {}).get("id"):
        raise BenchError(f"connectionData did not authenticate the demo app: {connection}")
    return token


# --- measurements -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RsaRate:
    processes: int
    sign_per_second: float
    verify_per_second: float


def openssl_rsa2048(processes: int) -> RsaRate:
    command = ["openssl", "speed", "-seconds", str(OPENSSL_SECONDS)]
    if processes > 1:
        command += ["-multi", str(processes)]
    output = subprocess.run([*command, "rsa2048"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", output, re.MULTILINE)
    if match is None:
        raise BenchError(f"cannot read `{' '.join(command)} rsa2048`:\n{output}")
    return RsaRate(processes, float(match.group(1)), float(match.group(2)))


@dataclass(frozen=True)
class WrkFigures:
    """What wrk itself reports."""

    requests: int
    requests_per_second: float
    latency_avg_ms: float
    latency_max_ms: float
    percentiles_ms: dict[int, float]
    non_2xx: int
    socket_errors: int

    @property
    def failed(self) -> int:
        return self.non_2xx + self.socket_errors


@dataclass(frozen=True)
class WrkResult:
    figures: WrkFigures
    server_cores: list[float]  # CPU time of each busy server process per second of the run
    client_cores: float  # the same for wrk
    machine_cores: float  # for every process on the machine

    @property
    def other_cores(self) -> float:
        """Work neither the server nor wrk did during the run: noise that lowers the figures."""
        return max(0.0, self.machine_cores - sum(self.server_cores) - self.client_cores)


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value)
    if match is None:
        raise BenchError(f"cannot read the wrk time '{value}'")
    return float(match.group(1)) * _TIME_UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> WrkFigures:
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise BenchError(f"wrk output has no match for {pattern!r}:\n{output}")
        return match

    latency = find(r"^\s+Latency\s+(\S+)\s+\S+\s+(\S+)")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkFigures(
        requests=int(find(r"^\s+(\d+) requests in")[1]),
        requests_per_second=float(find(r"^Requests/sec:\s+([\d.]+)")[1]),
        latency_avg_ms=_ms(latency[1]),
        latency_max_ms=_ms(latency[2]),
        percentiles_ms={int(p): _ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\S+)$", output, re.MULTILINE)},
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def _server_processes(server_pid: int) -> list[int]:
    """The server and its worker processes (multiprocessing's helpers included; they stay idle)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [server_pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _machine_busy_seconds() -> float:
    """CPU time spent on all cores, by anything (the first line of /proc/stat, minus idle and iowait)."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def run_wrk(args: argparse.Namespace, url: str, script: str, env: dict[str, str], seconds: int) -> WrkResult:
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(BENCH_DIR / script),
        url,
    ]
    pids = _server_processes(args.server_pid)
    server_before = {pid: _cpu_seconds(pid) for pid in pids}
    client_before = _children_cpu_seconds()
    machine_before = _machine_busy_seconds()
    started = time.monotonic()
    env = {**os.environ, **env}
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    elapsed = time.monotonic() - started
    server = sorted(((_cpu_seconds(pid) - server_before[pid]) / elapsed for pid in pids), reverse=True)
    return WrkResult(
        figures=parse_wrk(output),
        server_cores=[cores for cores in server if cores >= 0.01],  # the idle parent and helpers left out
        client_cores=(_children_cpu_seconds() - client_before) / elapsed,
        machine_cores=(_machine_busy_seconds() - machine_before) / elapsed,
    )


# --- the report ---------------------------------------------------------------------------------


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _tool_version(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    return (result.stdout or result.stderr).strip().splitlines()[0]


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False).stdout


def _revision() -> str:
    dirty = _git("status", "--porcelain", "--untracked-files=no", "src").strip()
    return _git("rev-parse", "--short", "HEAD").strip() + (
        " with uncommitted changes in src/" if dirty else ""
    )


def machine_facts() -> list[tuple[str, str]]:
    return [
        ("CPU", f"{os.cpu_count()} x {_cpu_model()}"),
        ("kernel", platform.release()),
        ("Python", platform.python_version()),
        ("OpenSSL", _tool_version(["openssl", "version"])),
        ("wrk", _tool_version(["wrk", "--version"]).split(" [")[0]),
        ("Entryway", _revision()),
    ]


# Other work on the machine above this share of a core makes a run's figures suspect.
NOISE_CORES = 0.15


def _row(name: str, result: WrkResult, target: int) -> str:
    f = result.figures
    p = f.percentiles_ms
    verdict = "met" if f.requests_per_second >= target else "**not met**"
    server = " + ".join(f"{c:.2f}" for c in result.server_cores)
    return (
        f"| {name} | **{f.requests_per_second:,.0f}** | ≥ {target:,} ({verdict}) | {f.latency_avg_ms:.1f} "
        f"| {p.get(50, 0):.1f} | {p.get(90, 0):.1f} | {p.get(99, 0):.1f} | {f.latency_max_ms:.1f} "
        f"| {f.requests:,} | {f.failed} | {server} | {result.client_cores:.2f} | {result.other_cores:.2f} |"
    )


def render_report(
    args: argparse.Namespace,
    *,
    started: datetime,
    facts: list[tuple[str, str]],
    tokens: WrkResult,
    requests: WrkResult,
    rsa: list[RsaRate],
) -> str:
    one, every = rsa
    rate = tokens.figures.requests_per_second
    wrk_line = f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency"
    lines = [
        f"# Entryway benchmark, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `bash bench/run.sh` — `entryway serve --workers {args.workers}` on loopback, HTTPS with "
        f"keep-alive, `{wrk_line}` after a {WARMUP_SECONDS} s warm-up.",
        "",
        *(f"- {name}: {value}" for name, value in facts),
        "",
        "| endpoint | per second | target | avg ms | p50 ms | p90 ms | p99 ms | max ms | requests | failed "
        "| server cores (per worker) | wrk cores | other cores |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        _row("client-credentials token (POST, RS256 issue)", tokens, TARGET_TOKENS_PER_SECOND),
        _row("connectionData (GET, Bearer JWT)", requests, TARGET_REQUESTS_PER_SECOND),
        "",
        "| ceiling, same run | sign/s | verify/s |",
        "|---|---|---|",
        f"| RSA-2048, 1 core (`openssl speed -seconds {OPENSSL_SECONDS} rsa2048`) "
        f"| {one.sign_per_second:,.0f} | {one.verify_per_second:,.0f} |",
        f"| RSA-2048, {every.processes} cores (`openssl speed -seconds {OPENSSL_SECONDS} -multi "
        f"{every.processes} rsa2048`) | {every.sign_per_second:,.0f} | {every.verify_per_second:,.0f} |",
        "",
        f"Tokens per second are {rate / every.sign_per_second:.0%} of the {every.processes}-core signing "
        f"ceiling ({rate / one.sign_per_second:.0%} of the 1-core one). Cores are CPU seconds per second of "
        "the run; wrk shares the machine with the server, and other cores is what neither of them used.",
        "",
    ]
    noisy = [r.other_cores for r in (tokens, requests) if r.other_cores > NOISE_CORES]
    if noisy:
        lines += [
            f"**Other work took up to {max(noisy):.2f} cores during this run: its figures are low. "
            "Run again on a quiet machine.**",
            "",
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=15)
    args = parser.parse_args()
    started = datetime.now(UTC)
    facts = machine_facts()

    try:
        instance = wait_for_instance(args.data_dir, args.log, args.server_pid)
        wait_for_workers(instance, args.workers, args.server_pid)
        access_token = fetch_access_token(instance)
        print(
            "measuring the RSA-2048 signing ceiling (openssl speed, 1 process and 1 per core)...", flush=True
        )
        rsa = [openssl_rsa2048(1), openssl_rsa2048(os.cpu_count() or 2)]
        runs = {
            "tokens": (instance.token_url, "token.lua", {"ENTRYWAY_BENCH_TOKEN_FORM": token_form(instance)}),
            "requests": (
                instance.connection_data_url,
                "connection_data.lua",
                {"ENTRYWAY_BENCH_ACCESS_TOKEN": access_token},
            ),
        }
        results: dict[str, WrkResult] = {}
        for name, (url, script, env) in runs.items():
            print(f"wrk: {name} against {url} ...", flush=True)
            run_wrk(args, url, script, env, WARMUP_SECONDS)
            results[name] = run_wrk(args, url, script, env, args.duration)
    except (BenchError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr if isinstance(exc, subprocess.CalledProcessError) else ""
        print(f"benchmark failed: {exc}", detail or "", sep="\n", file=sys.stderr)
        return 1

    report = render_report(
        args, started=started, facts=facts, tokens=results["tokens"], requests=results["requests"], rsa=rsa
    )
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{started:%Y%m%dT%H%M%SZ}.md"
    path.write_text(report)
    print()
    print(report)
    print(f"Written to {path.relative_to(ROOT)}; copy the figures into docs/benchmarks.md.")
    failed = {name: r.figures.failed for name, r in results.items() if r.figures.failed}
    if failed:
        print(f"invalid run: failed requests {failed} (see the server log)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
