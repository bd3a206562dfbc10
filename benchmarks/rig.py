"""The rig's side of the loopback: the fakes (in this process) and what they saw, per ask.

:class:`BenchSlack` is the test suite's :class:`~tests.fakes.slack.FakeSlack` that also stamps
every Web API call with the time it arrived and files it under the ask (the person's message)
it belongs to: its first visible write in the thread, and when the bot finished with it. The
bots under test run as separate processes (``benchmarks/bots.py``), so the rig's CPU is not
theirs.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import web

from benchmarks import claude as fixed_claude
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_models import ApiCall

REPO = Path(__file__).resolve().parents[1]
CHANNEL = "C0DATA"

#: Web API methods that show something in the person's thread, and where they name it.
THREAD_WRITES: dict[str, tuple[str, str]] = {
    "chat.postMessage": ("channel", "thread_ts"),
    "chat.postEphemeral": ("channel", "thread_ts"),
    "chat.startStream": ("channel", "thread_ts"),
    "reactions.add": ("channel", "timestamp"),
    "assistant.threads.setStatus": ("channel_id", "thread_ts"),
    "files.completeUploadExternal": ("channel_id", "thread_ts"),
}
#: How a bot's work on an ask ends: the real bot swaps :eyes: for a final reaction; the naive
#: and do-nothing bots post their answer.
DoneRule = Literal["reaction", "reply"]
SUCCESS_REACTION = "white_check_mark"
FINAL_REACTIONS = {SUCCESS_REACTION, "warning", "black_square_for_stop"}
#: Slack treats an event as failed (and retries it) when the ack takes longer than this.
SLACK_ACK_LIMIT_S = 3.0


@dataclass
class Ask:
    """One question put to a bot, and what the rig saw of it (``perf_counter`` seconds)."""

    channel: str
    ts: str
    user: str
    done_rule: DoneRule
    sent: float = math.nan
    acked: float = math.nan
    ack_status: int = 0
    first_write: float = math.nan
    finished: float = math.nan
    failed: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ack_s(self) -> float:
        return self.acked - self.sent

    @property
    def feedback_s(self) -> float:
        return self.first_write - self.sent

    @property
    def acked_in_time(self) -> bool:
        return self.ack_status == 200 and self.ack_s <= SLACK_ACK_LIMIT_S

    @property
    def ok(self) -> bool:
        return self.done.is_set() and not self.failed and self.acked_in_time


class BenchSlack(FakeSlack):
    """FakeSlack that times every Web API call against the asks being watched."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.watched: dict[tuple[str, str], Ask] = {}
        self._bench_session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        # No cap on connections: 200 simultaneous deliveries leave the rig together.
        if self._bench_session is None:
            self._bench_session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
            )
        return self._bench_session

    async def stop(self) -> None:
        if self._bench_session is not None:
            await self._bench_session.close()
            self._bench_session = None
        await super().stop()

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        response = await super()._handle_api(request)
        # FakeSlack appends the call and answers it without awaiting after reading the body,
        # so the newest call is this request's.
        self._observe(self.calls[-1], time.perf_counter())
        return response

    def _observe(self, call: ApiCall, now: float) -> None:
        where = THREAD_WRITES.get(call.method)
        if where is None or not call.ok:
            return
        ask = self.watched.get((str(call.params.get(where[0], "")), str(call.params.get(where[1], ""))))
        if ask is None:
            return
        if math.isnan(ask.first_write):
            ask.first_write = now
        if ask.done.is_set():
            return
        if ask.done_rule == "reaction" and call.method == "reactions.add":
            name = str(call.params.get("name", ""))
            if name in FINAL_REACTIONS:
                self._finish(ask, now, failed=name != SUCCESS_REACTION)
        elif ask.done_rule == "reply" and call.method == "chat.postMessage":
            self._finish(ask, now, failed=str(call.params.get("text", "")).startswith("Sorry"))

    @staticmethod
    def _finish(ask: Ask, now: float, *, failed: bool) -> None:
        ask.finished = now
        ask.failed = failed
        ask.done.set()


class Rig:
    """Both fakes, started in this process, with the fixed-time model answering."""

    def __init__(
        self,
        workdir: Path,
        *,
        claude_s: float = fixed_claude.CLAUDE_S,
        steps: int = fixed_claude.STEPS,
        check_fake_responses: bool = False,
    ) -> None:
        self.workdir = workdir
        self.check_fake_responses = check_fake_responses
        self.slack = BenchSlack()
        self.claude = FakeAnthropic(script=fixed_claude.fixed_time(claude_s, steps))
        self.claude_s = claude_s
        self._users: set[str] = set()
        self._file_numbers = itertools.count(1)

    async def __aenter__(self) -> Rig:
        fixed_claude.slow_pings()
        if not self.check_fake_responses:
            fixed_claude.trust_fake_responses()
        await self.slack.start()
        await self.claude.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.claude.close()
        await self.slack.stop()

    def env(self, db: Path) -> dict[str, str]:
        return bot_env(self.slack, self.claude, db)

    def user(self, number: int) -> str:
        """A distinct person per simultaneous analysis (per-person limits are not what is measured)."""
        user = f"U0B{number:06d}"
        if user not in self._users:
            self.slack.add_user(user, f"bench{number}")
            self.slack.workspace.channels[CHANNEL].members.add(user)
            self._users.add(user)
        return user

    def csv_file(self, *, rows: int = 200, user: str = "U0ALICE", unique: bool = True) -> dict[str, Any]:
        """A small churn CSV hosted in Slack; ``unique`` makes its bytes differ from every other."""
        number = next(self._file_numbers) if unique else 0
        lines = ["customer_id,tier,watch_hours,churned"]
        lines += [f"{number}-{i},{('Free', 'Basic', 'Premium')[i % 3]},{i % 40},{int(i % 7 == 0)}" for i in range(rows)]
        return self.slack.host_file(name="churn.csv", content=("\n".join(lines) + "\n").encode(), user=user)

    def big_csv_file(self, megabytes: int) -> dict[str, Any]:
        """A CSV of about ``megabytes`` MB (built once per size)."""
        row = b"0123456789,Premium,12.5,0\n"
        header = b"customer_id,tier,watch_hours,churned\n"
        content = header + row * (megabytes * 1024 * 1024 // len(row))
        return self.slack.host_file(name=f"big_{megabytes}mb.csv", content=content)

    def mention(
        self,
        user: str,
        text: str,
        done_rule: DoneRule,
        *,
        files: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> tuple[Ask, dict[str, Any]]:
        """A person mentions the bot; the ask is watched from now on."""
        message, envelope = self.slack.mention_event(CHANNEL, user, text, files=files, thread_ts=thread_ts)
        ask = Ask(CHANNEL, str(message["ts"]), user, done_rule)
        # Reactions name the message; replies name the thread (the same ts for a new thread).
        self.slack.watched[(CHANNEL, ask.ts)] = ask
        if thread_ts:
            self.slack.watched[(CHANNEL, thread_ts)] = ask
        return ask, envelope

    async def deliver(self, url: str, ask: Ask, envelope: dict[str, Any]) -> None:
        """POST the event as Slack does and time the acknowledgement."""
        ask.sent = time.perf_counter()
        try:
            status, _, _ = await self.slack.deliver_http(url, envelope)
        except (aiohttp.ClientError, OSError):
            status = 0
        except asyncio.CancelledError:  # still unanswered when the run was cut off
            ask.acked = time.perf_counter()
            raise
        ask.acked = time.perf_counter()
        ask.ack_status = status

    async def wait_all(self, asks: list[Ask], deadline: float) -> bool:
        """Wait until every ask is done or ``deadline`` (perf_counter) passes; True if all finished."""
        pending = [a.done.wait() for a in asks if not a.done.is_set()]
        if not pending:
            return True
        try:
            await asyncio.wait_for(asyncio.gather(*pending), timeout=max(0.0, deadline - time.perf_counter()))
        except TimeoutError:
            return False
        return True

    def forget(self, asks: list[Ask]) -> None:
        for ask in asks:
            self.slack.watched.pop((ask.channel, ask.ts), None)


def bot_env(slack: FakeSlack, claude: FakeAnthropic, db: Path) -> dict[str, str]:
    """What every bot process gets: the fakes' addresses and secrets, nothing of the rig's."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "HOME": os.environ.get("HOME", "/tmp"),
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "SLACK_API_URL": slack.api_url,
        "ANTHROPIC_API_KEY": claude.api_key,
        "ANTHROPIC_BASE_URL": claude.base_url,
        "ANALYST_DB": str(db),
    }


def split_cpus() -> tuple[set[int] | None, set[int] | None]:
    """(the rig's CPUs, the bots' CPUs): on two or more cores the rig (with the fakes and the
    sandbox it forks) keeps the first and every bot process gets the rest, so neither side's
    CPU counts against the other. On one core, nothing is pinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])
