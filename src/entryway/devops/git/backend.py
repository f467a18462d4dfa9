"""`git http-backend` as a CGI child: the request body streams into its stdin, its stdout streams back.

Neither direction is ever held in memory whole, so a push or a clone of any size costs this process a few
buffers. Git's own smart HTTP (protocol v0 and v2) is what answers; we only authorize and relay.

CONTENT_LENGTH is never passed on: the body is piped until EOF instead. With a length, http-backend copies a
receive-pack request into its own memory first (and refuses one above GIT_HTTP_MAX_REQUEST_BUFFER, 10 MiB by
default); without one it hands stdin straight to git-receive-pack (git `http-backend.c` run_service). Large
pushes arrive chunked anyway (git sends `Transfer-Encoding: chunked` above http.postBuffer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("entryway.devops.git")

# Bytes relayed per read from the child's stdout.
CHUNK = 64 * 1024
# The CGI header block http-backend writes before the body; far more than it ever needs.
HEADER_LIMIT = 64 * 1024
# Upload-pack (fetch negotiation) requests are buffered by http-backend itself, in the child's memory.
MAX_NEGOTIATION_BUFFER = str(100 * 1024 * 1024)
# How much of the child's stderr is kept for the log.
STDERR_LIMIT = 16 * 1024
# A `Git-Protocol` header is `version=2` and the like; anything else is not passed to git.
_GIT_PROTOCOL = re.compile(r"^[A-Za-z0-9=:._-]{1,256}$")
# Headers of http-backend's answer that are relayed to the client.
_RELAYED = frozenset(
    {"content-type", "cache-control", "expires", "pragma", "last-modified", "content-length"}
)


@dataclass(frozen=True)
class CgiRequest:
    git_root: Path
    repository_id: str
    # What follows `{repo}.git` in the URL: `/info/refs`, `/git-upload-pack`, `/git-receive-pack`.
    suffix: str
    method: str
    query: str
    content_type: str
    content_encoding: str
    git_protocol: str
    remote_user: str
    remote_addr: str

    def environment(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.git_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_HTTP_MAX_REQUEST_BUFFER": MAX_NEGOTIATION_BUFFER,
            # Only the repository's own configuration counts, never the host's or the server user's.
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "HOME": str(self.git_root),
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": self.method,
            "PATH_INFO": f"/{self.repository_id}.git{self.suffix}",
            "QUERY_STRING": self.query,
            "REMOTE_USER": self.remote_user,
            "REMOTE_ADDR": self.remote_addr,
        }
        if self.content_type:
            env["CONTENT_TYPE"] = self.content_type
        if self.content_encoding:
            # `gzip` bodies (git compresses large upload-pack requests) are inflated by http-backend.
            env["HTTP_CONTENT_ENCODING"] = self.content_encoding
        if self.git_protocol and _GIT_PROTOCOL.match(self.git_protocol):
            env["HTTP_GIT_PROTOCOL"] = self.git_protocol
            env["GIT_PROTOCOL"] = self.git_protocol
        return env


@dataclass
class CgiResponse:
    status: int
    headers: dict[str, str]
    body: AsyncIterator[bytes]
    stderr: list[bytes] = field(default_factory=list)


class BackendError(RuntimeError):
    """http-backend ended without a valid CGI header block."""


async def run_http_backend(
    request: CgiRequest,
    body: AsyncIterator[bytes] | None,
    on_exit: Callable[[int], Awaitable[None]] | None = None,
) -> CgiResponse:
    """Start `git http-backend`, feed it `body` and return its status and headers as soon as it has written
    them; the returned body relays the rest. `on_exit(returncode)` runs after the child ends, before the body
    iterator finishes (so the client's last byte follows whatever it records)."""
    process = await asyncio.create_subprocess_exec(
        "git",
        "http-backend",
        stdin=asyncio.subprocess.PIPE if body is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=request.environment(),
        limit=HEADER_LIMIT,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    stderr: list[bytes] = []
    drain_stderr = asyncio.create_task(_collect(process.stderr, stderr))
    feed = asyncio.create_task(_feed(process, body)) if body is not None else None
    try:
        status, headers = await _read_headers(process.stdout)
    except BaseException:
        await _stop(process, feed, drain_stderr)
        raise

    async def relay() -> AsyncIterator[bytes]:
        assert process.stdout is not None
        finished = False
        try:
            while chunk := await process.stdout.read(CHUNK):
                yield chunk
            if feed is not None:
                await feed
            returncode = await process.wait()
            await drain_stderr
            if returncode != 0:
                log.warning(
                    "git http-backend %s exited %d: %s",
                    request.suffix,
                    returncode,
                    b"".join(stderr).decode("utf-8", "replace").strip(),
                )
            if on_exit is not None:
                await on_exit(returncode)
            finished = True
        finally:
            if not finished:
                await _stop(process, feed, drain_stderr)

    return CgiResponse(status, headers, relay(), stderr)


async def _feed(process: asyncio.subprocess.Process, body: AsyncIterator[bytes] | None) -> None:
    stdin = process.stdin
    assert stdin is not None
    try:
        if body is not None:
            async for chunk in body:
                if chunk:
                    stdin.write(chunk)
                    await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        # The child stopped reading (it refused the request); its answer says why.
        pass
    except Exception:
        # The client went away mid-request: git must not act on a truncated request.
        log.info("git request body ended early; stopping git http-backend")
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    finally:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.close()
            await stdin.wait_closed()


async def _collect(stream: asyncio.StreamReader, into: list[bytes]) -> None:
    kept = 0
    while chunk := await stream.read(CHUNK):
        if kept < STDERR_LIMIT:
            into.append(chunk[: STDERR_LIMIT - kept])
            kept += len(into[-1])


async def _read_headers(stdout: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """The CGI header block (RFC 3875 section 6.2): `Status: 403 Forbidden`, headers, a blank line."""
    status = 200
    headers: dict[str, str] = {}
    while True:
        try:
            line = await stdout.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise BackendError("git http-backend ended before its headers") from exc
        except asyncio.LimitOverrunError as exc:
            raise BackendError("git http-backend wrote an oversized header") from exc
        text = line.decode("latin-1").rstrip("\r\n")
        if not text:
            return status, headers
        name, _, value = text.partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "status":
            status = int(value.split(" ", 1)[0])
        elif name in _RELAYED:
            headers[name] = value


async def _stop(
    process: asyncio.subprocess.Process, feed: asyncio.Task[None] | None, drain_stderr: asyncio.Task[None]
) -> None:
    """The client went away (or we failed): end the child and the tasks that serve it."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    if feed is not None:
        feed.cancel()
    with contextlib.suppress(BaseException):
        await asyncio.shield(process.wait())
    drain_stderr.cancel()
