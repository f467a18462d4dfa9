"""Serving both origins over TLS with uvicorn, and the managed identity endpoints over plain HTTP on
loopback: in the foreground (`entryway serve`), in worker processes sharing the ports with SO_REUSEPORT, or on a
background thread (tests)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import multiprocessing
import signal
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from entryway.config.settings import (
    DEFAULT_APP_SERVICE_PORT,
    DEFAULT_IMDS_PORT,
    MANAGED_IDENTITY_BIND,
    Settings,
)
from entryway.kit.clock import Clock
from entryway.kit.tls import TlsFiles, ensure_tls
from entryway.runtime import Runtime

log = logging.getLogger("entryway.server")

START_TIMEOUT_SECONDS = 30
SHUTDOWN_GRACE_SECONDS = 0.5
# A server that has not finished shutting down this long after being asked is cancelled: stopping must not
# hang on a lifespan or a request that never ends.
SHUTDOWN_DEADLINE_SECONDS = 5.0


def bind_socket(host: str, port: int, *, reuse_port: bool, listen: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def bind_loopback(port: int | None, default: int, *, reuse_port: bool, listen: bool) -> socket.socket:
    """A managed identity endpoint's socket, on loopback only. A port left unset is the default one, or, when
    another process holds that, an ephemeral one (the banner shows which)."""
    if port is not None:
        return bind_socket(MANAGED_IDENTITY_BIND, port, reuse_port=reuse_port, listen=listen)
    try:
        return bind_socket(MANAGED_IDENTITY_BIND, default, reuse_port=reuse_port, listen=listen)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        log.warning("port %s is taken; the managed identity endpoint listens on another one", default)
        return bind_socket(MANAGED_IDENTITY_BIND, 0, reuse_port=reuse_port, listen=listen)


def _managed_identity_sockets(settings: Settings, *, reuse_port: bool, listen: bool) -> list[socket.socket]:
    if not settings.managed_identity:
        return []
    imds = bind_loopback(settings.imds_port, DEFAULT_IMDS_PORT, reuse_port=reuse_port, listen=listen)
    try:
        app_service = bind_loopback(
            settings.app_service_port, DEFAULT_APP_SERVICE_PORT, reuse_port=reuse_port, listen=listen
        )
    except OSError:
        imds.close()
        raise
    return [imds, app_service]


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling: two servers share one loop here, and `_Serving`
    handles SIGINT and SIGTERM once for both."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _uvicorn_server(app: Any, tls: TlsFiles | None) -> uvicorn.Server:
    """A server for one app: over TLS with `tls`, plain HTTP without (the loopback managed identity endpoints)."""
    config = uvicorn.Config(
        app,
        ssl_certfile=None if tls is None else str(tls.server_cert),
        ssl_keyfile=None if tls is None else str(tls.server_key),
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
        # uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1; only the proxies configured as
        # trusted are believed, by kit/web.client_address.
        proxy_headers=False,
    )
    return _Server(config)


@dataclass
class _Serving:
    servers: list[uvicorn.Server]
    # Set by a SIGINT/SIGTERM that arrived before the loop's own handlers were installed.
    early_stop: threading.Event | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _forced: bool = False

    async def run(self, sockets: Sequence[socket.socket]) -> None:
        if threading.current_thread() is threading.main_thread():
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop)
        if self.early_stop is not None and self.early_stop.is_set():
            self.stop()
        self._tasks = [
            asyncio.create_task(s.serve(sockets=[sock]))
            for s, sock in zip(self.servers, sockets, strict=True)
        ]
        watchdog = asyncio.create_task(self._abort_lingering_connections())
        try:
            await asyncio.gather(*self._tasks)
        except asyncio.CancelledError:
            if not self._forced:
                raise
        finally:
            watchdog.cancel()

    def stop(self) -> None:
        for server in self.servers:
            server.should_exit = True

    async def _abort_lingering_connections(self) -> None:
        """Once stopping, give connections a moment, then drop the rest: a TLS connection that a client
        keeps alive closes only when the client answers close_notify, which an idle client never does."""
        while not any(s.should_exit for s in self.servers):  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.1)
        self.stop()
        await asyncio.sleep(SHUTDOWN_GRACE_SECONDS)
        for server in self.servers:
            for connection in list(server.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
        await asyncio.sleep(SHUTDOWN_DEADLINE_SECONDS)
        # Still here: a server did not finish its shutdown. Say which, then stop waiting for it.
        self._forced = True
        for index, (server, task) in enumerate(zip(self.servers, self._tasks, strict=True)):
            if task.done():
                continue
            log.warning(
                "server %d still shutting down after %.1f s (started=%s, connections=%d, tasks=%d); cancelling",
                index,
                SHUTDOWN_GRACE_SECONDS + SHUTDOWN_DEADLINE_SECONDS,
                server.started,
                len(server.server_state.connections),
                len(server.server_state.tasks),
            )
            server.force_exit = True
            task.cancel()


def _servers(runtime: Runtime, tls: TlsFiles) -> list[uvicorn.Server]:
    """In the order of the sockets: identity, DevOps, then IMDS and App Service when they are served."""
    servers = [_uvicorn_server(runtime.identity_app(), tls), _uvicorn_server(runtime.devops_app(), tls)]
    if runtime.settings.managed_identity:
        servers += [
            _uvicorn_server(runtime.imds_app(), None),
            _uvicorn_server(runtime.app_service_app(), None),
        ]
    return servers


class EntrywayServer:
    """One installation's two origins and its managed identity endpoints. `prepare()` binds the ports (0 picks
    free ones), makes the TLS files, migrates the database and makes sure a signing key exists.

    With worker processes, every worker serves every port, the managed identity ones included (SO_REUSEPORT),
    so no process is special."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self._requested = settings
        self._clock = clock
        self.runtime: Runtime | None = None
        self.tls: TlsFiles | None = None
        self._sockets: list[socket.socket] = []
        self._serving: _Serving | None = None
        self._early_stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._workers: list[multiprocessing.process.BaseProcess] = []

    @property
    def settings(self) -> Settings:
        assert self.runtime is not None, "call prepare() first"
        return self.runtime.settings

    def prepare(self) -> Runtime:
        requested = self._requested
        multi = requested.workers > 1
        self._sockets = [
            bind_socket(requested.bind, requested.identity_port, reuse_port=multi, listen=not multi),
            bind_socket(requested.bind, requested.devops_port, reuse_port=multi, listen=not multi),
        ]
        try:
            self._sockets += _managed_identity_sockets(requested, reuse_port=multi, listen=not multi)
        except OSError:
            for sock in self._sockets:
                sock.close()
            raise
        ports = [sock.getsockname()[1] for sock in self._sockets]
        settings = requested.with_ports(ports[0], ports[1])
        if requested.managed_identity:
            settings = settings.with_managed_identity_ports(ports[2], ports[3])
        runtime = Runtime.open(settings, self._clock)
        names = [settings.host, *settings.extra_names]
        self.tls = ensure_tls(settings.tls_dir, names, runtime.clock.now())
        runtime.keys.ensure_active_key()
        runtime.devops_keys.ensure_active_key()
        self.runtime = runtime
        return runtime

    @property
    def imds_url(self) -> str | None:
        """The IMDS-compatible endpoint's origin (AZURE_POD_IDENTITY_AUTHORITY_HOST); None when not served."""
        return self.settings.imds_origin

    @property
    def identity_endpoint(self) -> str | None:
        """The App Service-compatible token URL (IDENTITY_ENDPOINT); None when not served."""
        return self.settings.identity_endpoint

    @property
    def identity_header(self) -> str | None:
        """The App Service-compatible endpoint's secret (IDENTITY_HEADER)."""
        return self.settings.identity_header

    # --- one process -----------------------------------------------------------------------------

    def _serving_for(self, runtime: Runtime) -> _Serving:
        assert self.tls is not None
        return _Serving(_servers(runtime, self.tls), early_stop=self._early_stop)

    def catch_stop_signals(self) -> None:
        """From now on SIGINT and SIGTERM stop the server, even one that arrives before it serves: between
        the banner and the event loop's own handlers there is a window where Python's default handler would
        raise KeyboardInterrupt inside whatever start-up code is running."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda _signum, _frame: self._early_stop.set())

    def serve_forever(self) -> None:
        """Serve in this process (and in worker processes when `workers` > 1) until interrupted."""
        runtime = self.runtime or self.prepare()
        if runtime.settings.workers > 1:
            self._run_workers(runtime.settings)
            return
        self._serving = self._serving_for(runtime)
        _run_loop(self._serving.run(self._sockets))

    def start_in_thread(self) -> None:
        """Serve on a background thread (tests); returns once every endpoint accepts connections."""
        runtime = self.runtime or self.prepare()
        self._serving = self._serving_for(runtime)
        serving = self._serving
        self._thread = threading.Thread(target=_run_loop, args=(serving.run(self._sockets),), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not all(s.started for s in serving.servers):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                serving.stop()
                raise RuntimeError("Entryway did not start; see the log above")
            threading.Event().wait(0.02)

    def stop(self) -> None:
        if self._serving is not None:
            self._serving.stop()
        if self._thread is not None:
            self._thread.join(timeout=15)
        for sock in self._sockets:
            sock.close()
        if self.runtime is not None:
            self.runtime.close()

    # --- worker processes ------------------------------------------------------------------------

    def _run_workers(self, settings: Settings) -> None:
        context = multiprocessing.get_context("spawn")
        self._workers = [
            context.Process(target=_worker_main, args=(settings,), name=f"entryway-worker-{i}", daemon=True)
            for i in range(settings.workers)
        ]
        for worker in self._workers:
            worker.start()
        stopping = self._early_stop  # a signal caught before the workers started counts too

        def on_signal(_signum: int, _frame: Any) -> None:
            stopping.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stopping.wait(0.5):
                if not all(w.is_alive() for w in self._workers):
                    log.error("a worker process exited; stopping")
                    break
        finally:
            for worker in self._workers:
                if worker.is_alive():
                    worker.terminate()
            for worker in self._workers:
                worker.join(timeout=10)
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _run_loop(coro: Any) -> None:
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.Runner()
    with runner, contextlib.suppress(KeyboardInterrupt):
        runner.run(coro)


def _worker_main(settings: Settings) -> None:
    """A worker: its own sockets on the shared ports (SO_REUSEPORT spreads connections across workers), the
    managed identity ones included."""
    runtime = Runtime.open(settings, run_migrations=False)
    tls = TlsFiles(
        settings.tls_dir / "ca.pem", settings.tls_dir / "server.pem", settings.tls_dir / "server-key.pem"
    )
    sockets = [
        bind_socket(settings.bind, settings.identity_port, reuse_port=True, listen=True),
        bind_socket(settings.bind, settings.devops_port, reuse_port=True, listen=True),
        # The main process resolved the ports: every worker binds exactly these.
        *_managed_identity_sockets(settings, reuse_port=True, listen=True),
    ]
    serving = _Serving(_servers(runtime, tls))
    signal.signal(signal.SIGTERM, lambda *_: serving.stop())
    try:
        _run_loop(serving.run(sockets))
    finally:
        runtime.close()  # writes what the sign-in log still holds
