"""The fake code-execution sandbox: really runs Python (and bash) for the fake Anthropic API.

Importing pandas and matplotlib costs about a second, far too much to pay for every one of
the hundreds of code runs a test session makes on two cores.  So this module keeps ONE warm
interpreter per test process (started lazily, shut down at exit) that has already imported
pandas, numpy and matplotlib (Agg backend, plus its PDF backend and openpyxl when installed),
and that **forks a child per execution**:

* the client (:class:`WarmSandbox`, used through :func:`run_python` / :func:`run_bash`) writes
  one JSON request per line to the server's stdin from a writer thread and a reader thread
  resolves the matching :class:`concurrent.futures.Future` when the server answers, so the API
  works from any event loop (pytest-asyncio gives every test its own loop) and never blocks it;
* the server (this very file run as a script, see :func:`serve`) is single-threaded: a
  ``selectors`` loop reads requests, ``os.fork()`` s a child for each without waiting, watches
  the children through pidfds and answers, tagged with the request id, as each child finishes
  or is killed at its deadline;
* the child starts a new process group, ``chdir()`` s into its working directory, replaces its
  environment, points fds 1 and 2 at capture files and runs the code: ``exec`` of a source
  string, ``runpy`` of a ``.py`` path, or ``execve`` of real ``bash -c``.  An exception prints a
  traceback on stderr and exits 1; a crash (segfault, ``os._exit``, kill) only ends that child.

The server never runs user code itself, so a failing, hanging or segfaulting child cannot take
it down; if the server dies anyway, every pending call fails with :class:`SandboxError` and
the next call starts a fresh server.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import itertools
import json
import os
import queue
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "ExecResult",
    "SandboxError",
    "WarmSandbox",
    "changed_files",
    "get_sandbox",
    "run_bash",
    "run_python",
    "run_python_file",
    "sandbox_env",
    "shutdown_sandbox",
    "snapshot_files",
]

#: ``python3 script.py`` / ``python script.py``: bash commands that go through the warm forker.
SIMPLE_PYTHON_COMMAND = re.compile(r"^\s*python3?\s+(?P<path>[\w./@+-]+\.py)\s*$")
DEFAULT_TIMEOUT = 60.0
#: The server imports numpy before forking: keep BLAS single-threaded so there are no threads
#: to lose in the children (and two cores are not oversubscribed).
_SERVER_ENV = {
    "MPLBACKEND": "Agg",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


class SandboxError(RuntimeError):
    """The warm sandbox server itself failed (not the code it ran)."""


@dataclass(frozen=True)
class ExecResult:
    """What one execution produced, as the code execution tool reports it."""

    return_code: int
    stdout: str
    stderr: str
    timed_out: bool = False
    #: The signal that ended the child, if one did (SIGSEGV, SIGKILL at the deadline, ...).
    signal: int | None = None
    duration: float = 0.0


# --------------------------------------------------------------------------------------------
# Helpers shared with the fake API: environment and output-file detection.
# --------------------------------------------------------------------------------------------


def sandbox_env(container_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment code sees in a container: a clean one, like the real sandbox's.

    The test process's own variables (API keys, Slack tokens) are deliberately not passed on.
    ``PATH`` starts with this interpreter's directory so ``python3`` in bash has pandas.
    ``TMPDIR`` is the container's ``/tmp`` (``<container_dir>/tmp``), so ``tempfile`` stays in
    the container as it would for real.  No variable says where uploads are or where results
    go: the real container defines none (docs: the SDK's ContainerUploadBlockParam only says
    uploads land in "the container's input directory"), so code finds uploads by name.
    """
    root = Path(container_dir)
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(root),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        "TMPDIR": str(root / "tmp"),
    }
    env.update(extra or {})
    return env


FileStamp = tuple[int, int]


def snapshot_files(root: Path) -> dict[str, FileStamp]:
    """Map every visible file under ``root`` (relative POSIX path) to (mtime_ns, size).

    Hidden files and directories (``.cache``, ``.config``, ...) and ``__pycache__`` are
    skipped: they are not results.
    """
    root = Path(root)
    stamps: dict[str, FileStamp] = {}
    if not root.is_dir():
        return stamps
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except OSError:
                continue
            stamps[(rel_dir / name).as_posix()] = (st.st_mtime_ns, st.st_size)
    return stamps


def changed_files(before: Mapping[str, FileStamp], after: Mapping[str, FileStamp]) -> list[str]:
    """Paths that are new in ``after`` or whose stamp changed, sorted."""
    return sorted(path for path, stamp in after.items() if before.get(path) != stamp)


# --------------------------------------------------------------------------------------------
# The client: one warm server per test process.
# --------------------------------------------------------------------------------------------


@dataclass
class _Pending:
    future: concurrent.futures.Future[ExecResult]
    started: float = field(default_factory=time.monotonic)


class WarmSandbox:
    """Client of one warm forking server; thread-safe and usable from any event loop."""

    def __init__(self, python: str = sys.executable) -> None:
        self._python = python
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._proc: subprocess.Popen[bytes] | None = None
        self._outbox: queue.Queue[bytes | None] | None = None
        self._pending: dict[int, _Pending] = {}
        self._ready = threading.Event()
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def server_pid(self) -> int | None:
        """The warm server's pid (None before the first run)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def _ensure_started(self) -> queue.Queue[bytes | None]:
        """Start the server unless it is running; caller holds the lock."""
        if self._closed:
            raise SandboxError("the sandbox has been shut down")
        if self._proc is not None and self._proc.poll() is None and self._outbox is not None:
            return self._outbox
        proc = subprocess.Popen(
            [self._python, "-P", str(Path(__file__).resolve()), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # the server's own failures show up in the test output
            start_new_session=True,  # Ctrl-C in pytest must not hit the server and its children
            env={**os.environ, **_SERVER_ENV},
        )
        outbox: queue.Queue[bytes | None] = queue.Queue()
        self._proc, self._outbox = proc, outbox
        self._ready.clear()
        assert proc.stdin is not None and proc.stdout is not None
        threading.Thread(target=self._write_loop, args=(proc.stdin, outbox), daemon=True).start()
        threading.Thread(target=self._read_loop, args=(proc, proc.stdout), daemon=True).start()
        return outbox

    def close(self) -> None:
        """Stop the server (its running children are killed) and fail pending calls."""
        with self._lock:
            self._closed = True
            proc, outbox = self._proc, self._outbox
            self._proc = self._outbox = None
        if outbox is not None:
            outbox.put(None)  # closes the server's stdin: it kills its children and exits
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._fail_pending(SandboxError("the sandbox was shut down"))

    def _write_loop(self, stdin: IO[bytes], outbox: queue.Queue[bytes | None]) -> None:
        while True:
            item = outbox.get()
            try:
                if item is None:
                    stdin.close()
                    return
                stdin.write(item)
                stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                return

    def _read_loop(self, proc: subprocess.Popen[bytes], stdout: IO[bytes]) -> None:
        for line in stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("ready"):
                self._ready.set()
                continue
            with self._lock:
                pending = self._pending.pop(int(message.get("id", -1)), None)
            if pending is None:
                continue
            if "error" in message:
                _settle(pending.future, exception=SandboxError(str(message["error"])))
                continue
            sig = message.get("signal")
            _settle(
                pending.future,
                result=ExecResult(
                    return_code=int(message["return_code"]),
                    stdout=str(message["stdout"]),
                    stderr=str(message["stderr"]),
                    timed_out=bool(message.get("timed_out")),
                    signal=int(sig) if sig is not None else None,
                    duration=time.monotonic() - pending.started,
                ),
            )
        proc.wait()
        with self._lock:
            if self._proc is proc:
                self._proc = self._outbox = None
        self._fail_pending(SandboxError(f"the warm sandbox server exited with code {proc.returncode}"))

    def _fail_pending(self, error: Exception) -> None:
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        for item in pending:
            _settle(item.future, exception=error)

    # -- requests ------------------------------------------------------------------------------

    def submit(self, request: dict[str, Any]) -> concurrent.futures.Future[ExecResult]:
        """Send one request (``mode``: exec / path / bash); the future resolves on completion."""
        future: concurrent.futures.Future[ExecResult] = concurrent.futures.Future()
        with self._lock:
            outbox = self._ensure_started()
            request_id = next(self._ids)
            self._pending[request_id] = _Pending(future)
        payload = json.dumps({**request, "id": request_id}).encode() + b"\n"
        outbox.put(payload)

        def kill_if_cancelled(done: concurrent.futures.Future[ExecResult]) -> None:
            if done.cancelled():
                with self._lock:
                    self._pending.pop(request_id, None)
                    box = self._outbox
                if box is not None:
                    box.put(json.dumps({"op": "kill", "id": request_id}).encode() + b"\n")

        future.add_done_callback(kill_if_cancelled)
        return future

    async def run(self, request: dict[str, Any]) -> ExecResult:
        """Submit and await; cancelling the awaiting task kills the child."""
        return await asyncio.wrap_future(self.submit(request))


def _settle(
    future: concurrent.futures.Future[ExecResult],
    *,
    result: ExecResult | None = None,
    exception: Exception | None = None,
) -> None:
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)  # type: ignore[arg-type]
    except concurrent.futures.InvalidStateError:
        pass  # cancelled meanwhile


_SANDBOX: WarmSandbox | None = None
_SANDBOX_LOCK = threading.Lock()


def get_sandbox() -> WarmSandbox:
    """The process-wide warm sandbox (created lazily; shut down at interpreter exit)."""
    global _SANDBOX
    with _SANDBOX_LOCK:
        if _SANDBOX is None:
            _SANDBOX = WarmSandbox()
            atexit.register(shutdown_sandbox)
        return _SANDBOX


def shutdown_sandbox() -> None:
    """Stop the process-wide sandbox, if one was started."""
    global _SANDBOX
    with _SANDBOX_LOCK:
        sandbox, _SANDBOX = _SANDBOX, None
    if sandbox is not None:
        sandbox.close()


def _request(cwd: Path | str, env: Mapping[str, str] | None, timeout: float) -> dict[str, Any]:
    return {"cwd": str(cwd), "env": dict(env) if env is not None else None, "timeout": float(timeout)}


async def run_python(
    code: str, *, cwd: Path | str, env: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT
) -> ExecResult:
    """Run Python source (``exec`` in a forked warm child) in ``cwd`` with ``env``."""
    return await get_sandbox().run({"mode": "exec", "code": code, **_request(cwd, env, timeout)})


async def run_python_file(
    path: Path | str, *, cwd: Path | str, env: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT
) -> ExecResult:
    """Run a ``.py`` file like ``python3 path`` would (``runpy`` in a forked warm child)."""
    return await get_sandbox().run({"mode": "path", "path": str(path), **_request(cwd, env, timeout)})


async def run_bash(
    command: str, *, cwd: Path | str, env: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT
) -> ExecResult:
    """Run a bash command; ``python3 <file.py>`` goes through the warm forker, the rest to bash -c."""
    match = SIMPLE_PYTHON_COMMAND.match(command)
    if match:
        return await run_python_file(match["path"], cwd=cwd, env=env, timeout=timeout)
    return await get_sandbox().run({"mode": "bash", "command": command, **_request(cwd, env, timeout)})


# --------------------------------------------------------------------------------------------
# The server (this file run as a script) and its forked children.
# --------------------------------------------------------------------------------------------


@dataclass
class _Child:
    request_id: int
    pid: int
    pidfd: int | None
    deadline: float
    out_path: str
    err_path: str
    timed_out: bool = False


class _Server:
    """Single-threaded forking server: requests on stdin, one JSON answer per line on stdout."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, _Child] = {}  # by pid
        self.by_request: dict[int, int] = {}  # request id -> pid
        self.scratch = tempfile.mkdtemp(prefix="fake-sandbox-")
        self.buffer = b""
        self.stdin_fd = sys.stdin.fileno()
        self.out = sys.stdout.buffer
        self.eof = False
        self.has_pidfd = hasattr(os, "pidfd_open")

    def reply(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message).encode() + b"\n")
        self.out.flush()

    def serve(self) -> None:
        os.set_blocking(self.stdin_fd, False)
        self.selector.register(self.stdin_fd, selectors.EVENT_READ, None)
        self.reply({"ready": True, "pid": os.getpid()})
        try:
            while not (self.eof and not self.children):
                self.selector.select(self.next_timeout())
                self.read_requests()
                self.reap()
                self.enforce_deadlines()
        finally:
            for child in list(self.children.values()):
                _kill_group(child.pid)
            shutil.rmtree(self.scratch, ignore_errors=True)

    def next_timeout(self) -> float | None:
        if not self.children:
            return None
        soonest = min(child.deadline for child in self.children.values()) - time.monotonic()
        if not self.has_pidfd:
            soonest = min(soonest, 0.01)
        return max(0.0, soonest)

    def read_requests(self) -> None:
        if self.eof:
            return
        while True:
            try:
                chunk = os.read(self.stdin_fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                self.eof = True
                self.selector.unregister(self.stdin_fd)
                for child in list(self.children.values()):  # the client is gone
                    _kill_group(child.pid)
                break
            self.buffer += chunk
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if line.strip():
                self.handle(line)

    def handle(self, line: bytes) -> None:
        try:
            request = json.loads(line)
        except ValueError as exc:
            self.reply({"id": -1, "error": f"bad request: {exc}"})
            return
        request_id = int(request.get("id", -1))
        if request.get("op") == "kill":
            pid = self.by_request.get(request_id)
            if pid is not None:
                _kill_group(pid)
            return
        try:
            self.start(request_id, request)
        except Exception as exc:  # a failed fork must not end the server
            self.reply({"id": request_id, "error": f"{type(exc).__name__}: {exc}"})

    def start(self, request_id: int, request: dict[str, Any]) -> None:
        out_path = os.path.join(self.scratch, f"{request_id}.out")
        err_path = os.path.join(self.scratch, f"{request_id}.err")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            _child_main(request, out_path, err_path)
        pidfd = None
        if self.has_pidfd:
            pidfd = os.pidfd_open(pid)
            self.selector.register(pidfd, selectors.EVENT_READ, pid)
        timeout = float(request.get("timeout") or DEFAULT_TIMEOUT)
        self.children[pid] = _Child(request_id, pid, pidfd, time.monotonic() + timeout, out_path, err_path)
        self.by_request[request_id] = pid

    def reap(self) -> None:
        for pid, child in list(self.children.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done == 0:
                continue
            self.finish(child, status)

    def enforce_deadlines(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if not child.timed_out and now >= child.deadline:
                child.timed_out = True
                _kill_group(child.pid)

    def finish(self, child: _Child, status: int) -> None:
        del self.children[child.pid]
        self.by_request.pop(child.request_id, None)
        _kill_group(child.pid)  # stray background processes of the run die with it
        if child.pidfd is not None:
            self.selector.unregister(child.pidfd)
            os.close(child.pidfd)
        sig: int | None = None
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            return_code = 128 + sig  # what a shell reports for a killed command
        else:
            return_code = os.WEXITSTATUS(status)
        stdout, stderr = _read_capture(child.out_path), _read_capture(child.err_path)
        if child.timed_out:
            stderr += "\nExecution time exceeded: the process was killed.\n"
        elif sig is not None:
            stderr += f"\nProcess terminated by signal {sig} ({signal.Signals(sig).name}).\n"
        self.reply(
            {
                "id": child.request_id,
                "return_code": return_code,
                "stdout": stdout,
                "stderr": stderr,
                "timed_out": child.timed_out,
                "signal": sig,
            }
        )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _read_capture(path: str, limit: int = 4 << 20) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
        os.unlink(path)
    except OSError:
        return ""
    text = data[:limit].decode("utf-8", errors="replace")
    if len(data) > limit:
        text += "\n[output truncated]\n"
    return text


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: have the kernel SIGKILL this child if the warm server dies first."""
    libc = _LIBC
    if libc is not None:
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


_LIBC: Any = None


def _child_main(request: dict[str, Any], out_path: str, err_path: str) -> None:  # pragma: no cover
    """Runs in the forked child; never returns."""
    code = 1
    try:
        os.setpgid(0, 0)
        _die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
        os.dup2(os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
        import io

        sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the child
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True)
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True
        )
        cwd = request["cwd"]
        os.makedirs(cwd, exist_ok=True)
        os.chdir(cwd)
        env = request.get("env")
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        if os.environ.get("TMPDIR"):
            os.makedirs(os.environ["TMPDIR"], exist_ok=True)
        tempfile.tempdir = None
        mode = request["mode"]
        if mode == "bash":
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                os.execve("/bin/bash", ["bash", "-c", request["command"]], dict(os.environ))
            except OSError as exc:
                print(f"bash: {exc}", file=sys.stderr)
                code = 127
        else:
            code = _run_python_in_child(request)
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            print(f"sandbox child failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _run_python_in_child(request: dict[str, Any]) -> int:  # pragma: no cover - runs in the child
    import builtins
    import linecache
    import runpy
    import traceback

    if request["mode"] == "path":
        path = os.path.abspath(request["path"])
        filename = path
        sys.argv = [request["path"]]
        sys.path.insert(0, os.path.dirname(path))
    else:
        source = request["code"]
        filename = "<string>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        sys.argv = ["-c"]
        sys.path.insert(0, "")
    try:
        if request["mode"] == "path":
            runpy.run_path(path, run_name="__main__")
        else:
            exec(compile(source, filename, "exec"), {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException as exc:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != filename:
            tb = tb.tb_next  # hide the sandbox's own frames, like a plain `python3 file.py`
        traceback.print_exception(type(exc), exc, tb)
        return 1
    return 0


def serve() -> None:
    """Entry point of the warm server: import the heavy libraries once, then fork per request."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot
    import numpy
    import pandas  # type: ignore[import-untyped]

    del matplotlib, numpy, pandas
    # Warm too, when installed: workbooks (the xlsx skill, pandas' Excel I/O) and PDF pages.
    for optional in ("openpyxl", "openpyxl.chart", "matplotlib.backends.backend_pdf"):
        with contextlib.suppress(ImportError):
            __import__(optional)
    global _LIBC
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError):
            _LIBC = ctypes.CDLL(None, use_errno=True)
    _Server().serve()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        print("usage: sandbox.py --serve  (started by tests.fakes.sandbox.WarmSandbox)", file=sys.stderr)
        sys.exit(2)
