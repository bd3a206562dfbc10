"""Running ``slack-analyst`` as real processes: a free port, the command started from this
checkout with the current interpreter, and waiting for the line that says it is ready.

Shared by the command-line, durability, Docker and multi-replica tests (tests/replicas.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: What ``serve`` logs once it accepts events over HTTP (handlers/server.py).
LISTENING = r"listening for Slack events at http://"


def free_port() -> int:
    """A TCP port nothing listens on right now (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_cli(*args: str, env: dict[str, str], cwd: Path, **options: Any) -> asyncio.subprocess.Process:
    """``python -m bot ARGS`` from this checkout (the current virtualenv's interpreter), with
    only ``env`` (plus PATH and PYTHONPATH) in its environment; stdout and stderr piped unless
    ``options`` say otherwise."""
    options = {"stdout": asyncio.subprocess.PIPE, "stderr": asyncio.subprocess.PIPE, **options}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **env},
        cwd=cwd,
        **options,
    )


async def wait_for_line(stream: asyncio.StreamReader, pattern: str, seen: list[str]) -> str:
    """Read lines until one matches (the process's own log says it is ready)."""
    while line := (await asyncio.wait_for(stream.readline(), timeout=60)).decode():
        seen.append(line)
        if re.search(pattern, line):
            return line
    raise AssertionError(f"process ended without printing {pattern!r}:\n{''.join(seen)}")
