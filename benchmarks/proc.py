"""A bot under test as an operating-system process: start it, wait until it answers, read its
CPU time and memory from /proc, stop it."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1
START_LIMIT_S = 60.0


def _die_with_the_rig() -> None:
    """In the child before exec: SIGKILL it when the rig's process goes (prctl PR_SET_PDEATHSIG),
    so an interrupted run leaves no bot behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of proc(5)); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) of the process, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (proc(5): writing 5 to clear_refs); False where refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class BotProcess:
    """One bot process listening on ``port``; ``cpu`` pins it to those CPUs (None: anywhere)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    ready_path: str = "/"
    cpu: set[int] | None = None
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> BotProcess:
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.log_path = self.cwd / f"{self.name}.log"
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_the_rig,
            )
        if self.cpu is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(self.process.pid, self.cpu)
        await self._wait_ready()
        return self

    async def _wait_ready(self) -> None:
        """Poll until the process answers HTTP on its port (any status); it may take a while to import."""
        deadline = time.monotonic() + START_LIMIT_S
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
                try:
                    async with session.get(self.url + self.ready_path, timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status < 500:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)  # polling a process that is starting up, not synchronising a test
        raise RuntimeError(
            f"{self.name} did not answer on {self.url} within {START_LIMIT_S:.0f} s; see {self.log_path}"
        )

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def memory_kb(self) -> dict[str, int]:
        return memory_kb(self.pid)

    async def stop(self, *, graceful: bool = True, limit_s: float = 90.0) -> None:
        """SIGTERM and wait (``graceful``), else SIGKILL: a run cut off at its deadline is killed."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            await asyncio.wait_for(self.process.wait(), timeout=limit_s)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
