"""The multi-replica rig: several real ``slack-analyst serve --http`` processes sharing one
database and the in-process loopback fakes, with Slack's deliveries spread over them.

Each :class:`Replica` runs this checkout's ``slack-analyst serve --http`` (``bot.cli.main``) in
a process of its own, on a port of its own, with the same environment as the others (the same
``ANALYST_DB``, ``SLACK_API_URL`` and ``ANTHROPIC_BASE_URL`` pointing at the test's fakes). It is
forked from a :class:`~tests.forkserver.ForkServer` that has imported the bot already (seconds
of CPU saved per replica), or, without one, started as ``python -m bot`` from scratch.

:class:`Replicas` starts them, delivers Events API payloads round-robin (as a load balancer
would), redelivers them with Slack's retry headers, stops one gracefully (SIGTERM) or kills it
(SIGKILL), starts new ones, and keeps every line each process writes (JSON logs) for
assertions. Lines are echoed to the test's stderr with the replica's name, so a failing test
shows them. Whatever happens in the test, closing the rig kills every process still running;
on Linux each one is also killed if the test process itself dies.

Nothing here waits on time: waits are on observable state (a log line, the fakes, ``/healthz``),
each bounded by a timeout that only turns a hang into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.slack import FakeSlack
from tests.forkserver import ForkedProcess, ForkServer, die_with_parent
from tests.processes import LISTENING, free_port, start_cli

#: How long a replica may take to start (import, migrate, auth.test) or to exit on SIGTERM.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 90.0
#: How often a wait re-checks state nothing announces (the fake Anthropic, /healthz).
RECHECK_S = 0.05
#: Lines of each replica's log shown when a wait times out.
REPORT_TAIL = 25


@dataclass(repr=False)
class Replica:
    """One ``serve --http`` process and everything it has written."""

    name: str
    port: int
    process: asyncio.subprocess.Process | ForkedProcess
    lines: list[str] = field(default_factory=list)
    #: Set when the process was signalled or exited: it gets no new deliveries.
    leaving: bool = False
    _records: list[dict[str, Any]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"exited {self.returncode}"
        return f"<{self.name} pid {self.pid} port {self.port} {state}, {len(self.lines)} lines>"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def events_url(self) -> str:
        return f"{self.url}/slack/events"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def add(self, line: str) -> None:
        self.lines.append(line)
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                self._records.append(record)

    def records(self) -> list[dict[str, Any]]:
        """The JSON log records written so far (other lines, e.g. a crash's traceback, left out)."""
        return list(self._records)

    def messages(self, pattern: str) -> list[str]:
        """Log messages matching ``pattern`` (a regular expression)."""
        return [str(r.get("message", "")) for r in self.records() if re.search(pattern, str(r.get("message", "")))]

    def tail(self, lines: int = REPORT_TAIL) -> str:
        state = "running" if self.returncode is None else f"exited {self.returncode}"
        shown = "".join(f"    {line}\n" for line in self.lines[-lines:]) or "    (nothing written)\n"
        return f"  {self.name} (pid {self.pid}, port {self.port}, {state}):\n{shown}"


class Replicas:
    """N replicas on one database, the fakes in front and behind them.

    Use as ``async with Replicas(env, slack, workdir) as rig:`` then ``await rig.start(2)``.
    """

    def __init__(
        self, env: Mapping[str, str], slack: FakeSlack, workdir: Path, *, forks: ForkServer | None = None
    ) -> None:
        self.env = dict(env)
        #: Replicas are forked from this server (fast), or else started with ``python -m bot``.
        self.forks = forks
        self.slack = slack
        self.workdir = workdir
        self.all: list[Replica] = []
        self._names = itertools.count(1)
        self._turn = itertools.count()
        self._changed = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Replicas:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- processes ----------------------------------------------------------------------

    @property
    def live(self) -> list[Replica]:
        """The replicas deliveries go to: started, not signalled, not exited."""
        return [r for r in self.all if not r.leaving and r.returncode is None]

    async def start(self, count: int = 1, **settings: str) -> list[Replica]:
        """Start ``count`` replicas at once (``settings``: extra environment for these) and wait
        until each listens for events."""
        return list(await asyncio.gather(*(self.start_one(**settings) for _ in range(count))))

    async def start_one(self, **settings: str) -> Replica:
        port = free_port()
        name = f"replica-{next(self._names)}"
        env = {**self.env, **settings, "PORT": str(port), "ANALYST_LOG_FORMAT": "json"}
        process: asyncio.subprocess.Process | ForkedProcess
        if self.forks is not None:
            process = await self.forks.start(["serve", "--http"], env=env, cwd=self.workdir, name=name)
        else:
            process = await start_cli(
                "serve",
                "--http",
                env=env,
                cwd=self.workdir,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        replica = Replica(name, port, process)
        self.all.append(replica)
        replica._reader = asyncio.get_running_loop().create_task(self._read(replica), name=f"read {name}")
        await self.wait_until(
            lambda: any(re.search(LISTENING, line) for line in replica.lines) or replica.returncode is not None,
            timeout=START_TIMEOUT_S,
            what=f"{name} to listen for events",
        )
        if replica.returncode is not None:
            raise AssertionError(f"{name} exited with {replica.returncode} while starting:\n{replica.tail(200)}")
        return replica

    async def _read(self, replica: Replica) -> None:
        """Keep every line the process writes (so its pipe never fills), echo it for the test's
        report, and wake the waits."""
        stream = replica.process.stdout
        assert stream is not None
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            replica.add(text)
            print(f"[{replica.name}] {text}", file=sys.stderr)
            self._changed.set()
        await replica.process.wait()
        self._changed.set()

    async def sigterm(self, replica: Replica) -> int:
        """Stop ``replica`` gracefully, as a rolling deploy does (no deliveries from now on);
        its exit status."""
        replica.leaving = True
        replica.process.send_signal(signal.SIGTERM)
        return await self.exited(replica)

    async def sigkill(self, replica: Replica) -> int:
        """Kill ``replica`` outright: no chance to clean up."""
        replica.leaving = True
        replica.process.kill()
        return await self.exited(replica)

    async def exited(self, replica: Replica) -> int:
        try:
            code = await asyncio.wait_for(replica.process.wait(), STOP_TIMEOUT_S)
        except TimeoutError as hang:
            message = f"{replica.name} still running {STOP_TIMEOUT_S:.0f}s after a signal\n{self.report()}"
            raise AssertionError(message) from hang
        if replica._reader is not None:
            await replica._reader
        return code

    async def close(self) -> None:
        """Kill whatever still runs, and wait for it (also when the test failed)."""
        for replica in self.all:
            if replica.returncode is None:
                replica.leaving = True
                with contextlib.suppress(ProcessLookupError):
                    replica.process.kill()
        for replica in self.all:
            await replica.process.wait()
            if replica._reader is not None:
                with contextlib.suppress(Exception):
                    await replica._reader
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- Slack's side ------------------------------------------------------------------------

    def next_replica(self, *, after: Replica | None = None) -> Replica:
        """The next live replica in the rotation (one other than ``after`` if there is one)."""
        live = self.live
        if not live:
            raise AssertionError(f"no replica is running\n{self.report()}")
        if after is not None and len(live) > 1:
            live = [r for r in live if r is not after]
        return live[next(self._turn) % len(live)]

    async def deliver(
        self,
        envelope: dict[str, Any],
        *,
        to: Replica | None = None,
        retry: int | None = None,
        reason: str = "http_timeout",
    ) -> Replica:
        """POST an Events API payload, signed, to ``to`` or the next replica in the rotation,
        which must acknowledge it (200); the replica that got it.

        ``retry`` (1, 2, 3) redelivers it as Slack does: the same payload (same ``event_id``)
        with ``X-Slack-Retry-Num`` and ``X-Slack-Retry-Reason``. docs: apis/events-api —
        "Retries": when an app doesn't acknowledge an event within 3 seconds (or fails), Slack
        sends it again, up to three times, naming the attempt and the reason in those headers.
        """
        replica = to or self.next_replica()
        status, body, _ = await self.slack.deliver_http(
            replica.events_url, envelope, retry_num=retry, retry_reason=reason if retry else None
        )
        assert status == 200, f"{replica.name} answered {status} {body!r}\n{self.report()}"
        return replica

    async def health(self, replica: Replica) -> dict[str, Any]:
        """``GET /healthz`` of ``replica`` (its report, whatever the status)."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        async with self._http.get(f"{replica.url}/healthz") as response:
            report: dict[str, Any] = await response.json()
            return report

    async def runs_ended(self, replica: Replica) -> int:
        """How many runs ``replica`` has seen to their end (``analyst_runs_total`` in its /metrics)."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        async with self._http.get(f"{replica.url}/metrics") as response:
            exposition = await response.text()
        return sum(
            int(sample.value)
            for family in text_string_to_metric_families(exposition)
            for sample in family.samples
            if sample.name == "analyst_runs_total"
        )

    async def idle(self, *, timeout: float = 120.0) -> None:
        """Wait until no live replica has an analysis running or queued (by their /healthz)."""
        reports: dict[str, dict[str, Any]] = {}

        async def all_idle() -> bool:
            for replica in self.live:
                reports[replica.name] = report = await self.health(replica)
                limiter = report["limiter"]
                if report["analyses_running"] or limiter["running"] or limiter["waiting"]:
                    return False
            return True

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._changed.clear()
            if await all_idle():
                return
            if loop.time() >= deadline:
                raise AssertionError(f"replicas still busy after {timeout:.0f}s: {reports}\n{self.report()}")
            await self._next_change(RECHECK_S)

    # -- waiting and reporting ---------------------------------------------------------------

    def messages(self, pattern: str) -> list[tuple[str, str]]:
        """(replica, message) of every log message, of any replica, matching ``pattern``."""
        return [(r.name, m) for r in self.all for m in r.messages(pattern)]

    async def wait_until(self, predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Return once ``predicate()`` holds: re-checked whenever a replica writes a line or
        exits, and every ``RECHECK_S`` for state that announces nothing (the fakes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._changed.clear()  # before the check: a line written after it wakes the wait
            if predicate():
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.report()}")
            await self._next_change(min(remaining, RECHECK_S))

    async def holds_within(self, predicate: Callable[[], bool], *, timeout: float) -> bool:
        """Whether ``predicate()`` comes to hold within ``timeout`` (a window, for what may
        rightly never happen); re-checked as :meth:`wait_until` does."""
        try:
            await self.wait_until(predicate, timeout=timeout, what="")
        except AssertionError:
            return False
        return True

    async def _next_change(self, at_most: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), at_most)

    def report(self, lines: int = REPORT_TAIL) -> str:
        """Each replica's state and last log lines, for failure messages."""
        return "replicas:\n" + "".join(r.tail(lines) for r in self.all)
