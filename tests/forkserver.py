"""Start ``slack-analyst`` processes in milliseconds: a fork server that has imported the bot.

Importing the bot (the Anthropic SDK's types above all) takes seconds of CPU per process; a
test that starts a dozen replicas would spend most of its time there. The fork server, run as
``python -m tests.forkserver`` from this checkout with the current interpreter, imports what
``slack-analyst serve`` imports, then forks one child per request. Each child is its own
process, with its own environment, working directory, output, signals and exit status, and
runs ``bot.cli.main`` — the ``slack-analyst`` entry point — with the requested arguments: from
there on it is the same program, minus the import time.

Protocol (one JSON object per line): the server prints ``{"ready": true}`` once imported; a
request ``{"spawn": [args], "env": {...}, "cwd": "...", "output": "/path/to/unix.sock"}`` forks a
child that connects its stdout and stderr to that Unix socket, and is answered ``{"pid": N}``;
``{"reap": N}`` waits for child N to exit and is answered ``{"status": S}`` (as
``asyncio.subprocess.Process.returncode``: the exit code, or minus the signal that killed it).
The server exits when its stdin closes. It dies with the process that started it, and its
children die with it (Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import IO, Any

from tests.processes import REPO

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """This process gets SIGKILL when its parent dies (Linux; elsewhere a no-op)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


# -- the server ----------------------------------------------------------------------------


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become ``slack-analyst ARGS`` and never return."""
    code = 1
    try:
        die_with_parent()
        output = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        output.connect(request["output"])
        os.dup2(output.fileno(), 1)
        os.dup2(output.fileno(), 2)
        output.close()
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["slack-analyst", *request["spawn"]]
        from bot.cli import main

        code = main(request["spawn"])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """The server's loop (``python -m tests.forkserver``)."""
    die_with_parent()
    # What `serve` imports, so children start with it in memory.
    import bot.cli  # noqa: F401
    import handlers.server  # noqa: F401

    if threading.active_count() != 1:
        raise SystemExit("the fork server must not run threads: forking would copy their locks")
    reply = sys.stdout
    reply.write(json.dumps({"ready": True}) + "\n")
    reply.flush()
    for line in sys.stdin:
        request = json.loads(line)
        if "spawn" in request:
            pid = os.fork()
            if pid == 0:
                _child(request)
            answer: dict[str, Any] = {"pid": pid}
        else:
            _, status = os.waitpid(int(request["reap"]), 0)
            answer = {"status": os.waitstatus_to_exitcode(status)}
        reply.write(json.dumps(answer) + "\n")
        reply.flush()


# -- the client ----------------------------------------------------------------------------


class ForkServer:
    """The running fork server; thread-safe, so async code can call it through a thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server = subprocess.Popen(
            [sys.executable, "-m", "tests.forkserver"],
            env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)},
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=die_with_parent,
        )
        ready = self._answer()
        if ready != {"ready": True}:
            raise RuntimeError(f"the fork server did not start: {ready}")
        self.sockets = Path(tempfile.mkdtemp(prefix="replicas-"))  # short: Unix socket paths are limited

    def _answer(self) -> dict[str, Any]:
        assert self._server.stdout is not None
        line = self._server.stdout.readline()
        if not line:
            raise RuntimeError(f"the fork server exited ({self._server.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            stdin: IO[str] | None = self._server.stdin
            assert stdin is not None
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
            return self._answer()

    def spawn(self, args: list[str], *, env: dict[str, str], cwd: Path, output: Path) -> int:
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **env}
        return int(self._ask({"spawn": args, "env": env, "cwd": str(cwd), "output": str(output)})["pid"])

    def reap(self, pid: int) -> int:
        return int(self._ask({"reap": pid})["status"])

    def close(self) -> None:
        if self._server.stdin is not None:
            self._server.stdin.close()
        try:
            self._server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._server.kill()
            self._server.wait()
        if self._server.stdout is not None:
            self._server.stdout.close()
        with contextlib.suppress(OSError):
            for leftover in self.sockets.iterdir():
                leftover.unlink()
            self.sockets.rmdir()

    async def start(self, args: list[str], *, env: dict[str, str], cwd: Path, name: str) -> ForkedProcess:
        """A child running ``slack-analyst ARGS``, its output (stdout and stderr) readable."""
        path = self.sockets / f"{name}-{os.getpid()}.sock"
        Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
        connected: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()

        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if not connected.done():
                connected.set_result((reader, writer))

        listener = await asyncio.start_unix_server(on_connect, path=str(path))
        try:
            pid = await asyncio.to_thread(self.spawn, args, env=env, cwd=cwd, output=path)
            try:
                output = await asyncio.wait_for(connected, timeout=30)
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                await asyncio.to_thread(self.reap, pid)
                raise
            return ForkedProcess(self, pid, *output)
        finally:
            listener.close()
            path.unlink(missing_ok=True)


class ForkedProcess:
    """A fork server's child, shaped like ``asyncio.subprocess.Process`` (what the rig uses):
    ``stdout`` carries its stdout and stderr; ``wait()`` returns once it has exited."""

    def __init__(
        self, server: ForkServer, pid: int, output: asyncio.StreamReader, connection: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.pid = pid
        self.stdout = asyncio.StreamReader()
        self.returncode: int | None = None
        self._connection = connection  # the socket's other half (the child only writes)
        self._ended = asyncio.get_running_loop().create_task(self._pump(output), name=f"output of {pid}")

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        return await asyncio.shield(self._ended)

    async def _pump(self, output: asyncio.StreamReader) -> int:
        """Pass the output on until it ends (the child exited), then reap the child."""
        try:
            while chunk := await output.read(1 << 16):
                self.stdout.feed_data(chunk)
        finally:
            self.stdout.feed_eof()
            self._connection.close()
        self.returncode = await asyncio.to_thread(self.server.reap, self.pid)
        return self.returncode


if __name__ == "__main__":
    serve()
