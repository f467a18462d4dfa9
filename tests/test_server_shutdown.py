"""Stopping never hangs: a server whose shutdown does not finish is cancelled after a deadline."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from starlette.applications import Starlette

from entryway import server as server_module
from entryway.server import _run_loop, _Serving, _uvicorn_server, bind_socket


def test_a_server_stuck_in_its_shutdown_is_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "SHUTDOWN_DEADLINE_SECONDS", 0.2)
    started = threading.Event()

    @asynccontextmanager
    async def stuck(_app: Starlette) -> AsyncIterator[None]:
        started.set()
        yield
        await asyncio.Event().wait()  # a lifespan shutdown that never ends

    serving = _Serving([_uvicorn_server(Starlette(lifespan=stuck), None)])
    sock = bind_socket("127.0.0.1", 0, reuse_port=False, listen=True)
    thread = threading.Thread(target=_run_loop, args=(serving.run([sock]),), daemon=True)
    thread.start()
    try:
        assert started.wait(10)
        serving.stop()
        thread.join(10)
        assert not thread.is_alive()
    finally:
        sock.close()


def test_a_stop_signal_caught_before_serving_stops_it_at_once() -> None:
    early = threading.Event()
    early.set()  # as the handler `catch_stop_signals` installs does for a Ctrl+C right after the banner
    serving = _Serving([_uvicorn_server(Starlette(), None)], early_stop=early)
    sock = bind_socket("127.0.0.1", 0, reuse_port=False, listen=True)
    thread = threading.Thread(target=_run_loop, args=(serving.run([sock]),), daemon=True)
    thread.start()
    try:
        thread.join(10)
        assert not thread.is_alive()
    finally:
        sock.close()
