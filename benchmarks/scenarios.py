"""The scenarios: each starts bots as processes against the rig and returns what it measured.

Every figure comes from what crossed the wire (the fakes' clocks and records) or from the bot
process's /proc entries; nothing is asked of the bot itself.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.bots import ANALYST, BotSpec, events_url, start_bot
from benchmarks.proc import BotProcess, reset_peak_rss
from benchmarks.rig import Ask, Rig

#: How long a bot's CPU must stay still after its last answer before a run's CPU is read: the
#: real bot records the run after its final reaction.
CPU_SETTLE_S = 0.3
CPU_SETTLE_LIMIT_S = 10.0
#: The largest file the real bot accepts by default is 100 MB; the memory scenario raises it.
BIG_FILE_ENV = {"ANALYST_MAX_FILE_MB": "500"}
BIG_FILE_LIMIT_S = 600.0

Log = Callable[[str], None]
PROCESS_NUMBERS = itertools.count(1)


@dataclass
class LoadRun:
    """``n`` analyses delivered at once to one bot."""

    bot: str
    n: int
    repeat: int
    claude_s: float
    deadline_s: float
    asks: list[Ask]
    elapsed_s: float
    cpu_s: float
    #: Slack Web API and Anthropic requests that reached the fakes during the run.
    slack_calls: int = 0
    anthropic_requests: int = 0
    #: The rig's own CPU over the run (its process: the fakes serving the bot's calls, and Slack's
    #: deliveries): what the bot's calls cost the instrument, on the rig's own core.
    rig_cpu_s: float = math.nan

    @property
    def finished(self) -> int:
        return sum(1 for a in self.asks if a.done.is_set())

    @property
    def succeeded(self) -> int:
        return sum(1 for a in self.asks if a.ok)

    @property
    def unfinished(self) -> int:
        """Still queued or running at the deadline (acknowledged in time)."""
        return sum(1 for a in self.asks if not a.done.is_set() and a.acked_in_time)

    @property
    def failed(self) -> int:
        """Ended in a failure shown to the person, or acknowledged too late or not at all (Slack
        counts that delivery as failed and retries it)."""
        return self.n - self.succeeded - self.unfinished

    @property
    def errors(self) -> int:
        return self.failed + self.unfinished

    @property
    def percent_of_ideal(self) -> float:
        """Analyses completed per second, against ``n`` every ``claude_s`` (all at once, no overhead)."""
        return 100 * self.succeeded * self.claude_s / (self.n * self.elapsed_s)

    @property
    def cpu_per_analysis_s(self) -> float:
        return self.cpu_s / self.finished if self.finished else math.nan

    @property
    def rig_cpu_per_analysis_s(self) -> float:
        return self.rig_cpu_s / self.finished if self.finished else math.nan

    @property
    def calls_per_analysis(self) -> tuple[float, float]:
        """(Slack calls, Anthropic requests) per finished analysis."""
        if not self.finished:
            return math.nan, math.nan
        return self.slack_calls / self.finished, self.anthropic_requests / self.finished

    @property
    def ack_s(self) -> list[float]:
        # A delivery never answered counts as infinitely slow.
        return [a.ack_s if a.ack_status else math.inf for a in self.asks]

    @property
    def feedback_s(self) -> list[float]:
        return [a.feedback_s for a in self.asks if not math.isnan(a.first_write)]

    @property
    def overhead_s(self) -> list[float]:
        """Per finished ask: time from delivery to the end of its work, less the Claude time."""
        return [a.finished - a.sent - self.claude_s for a in self.asks if a.done.is_set()]


class BotSession:
    """One bot process reused across runs while it finishes everything it is given."""

    def __init__(self, rig: Rig, spec: BotSpec, workdir: Path, cpu: set[int] | None, log: Log) -> None:
        self.rig, self.spec, self.workdir, self.cpu, self.log = rig, spec, workdir, cpu, log
        self.process: BotProcess | None = None
        self._warm_numbers = 900_000

    async def ensure(self) -> BotProcess:
        if self.process is None:
            # A directory (and database) of its own: a process cut off at a deadline leaves queued
            # runs in its database, which the next one would resume.
            fresh = self.workdir / f"{self.spec.key}-{next(PROCESS_NUMBERS)}"
            self.process = await start_bot(self.spec, self.rig, fresh, cpu=self.cpu)
            await self.warm_up()
        return self.process

    async def warm_up(self) -> None:
        """One analysis before measuring: lazy imports and first connections are not load."""
        assert self.process is not None
        self._warm_numbers += 1
        user = self.rig.user(self._warm_numbers)
        ask, envelope = self.rig.mention(user, "warm up", self.spec.done_rule, files=[self.rig.csv_file(user=user)])
        await self.rig.deliver(events_url(self.process), ask, envelope)
        if not await self.rig.wait_all([ask], time.perf_counter() + 60) or not ask.ok:
            raise RuntimeError(f"{self.spec.key} did not answer its warm-up question:\n{self.process.log_tail()}")
        self.rig.forget([ask])
        await settle_cpu(self.process)

    async def close(self, *, graceful: bool = True) -> None:
        if self.process is not None:
            await self.process.stop(graceful=graceful)
            self.process = None


async def settle_cpu(process: BotProcess) -> float:
    """The process's CPU seconds once they stop rising (its trailing work done)."""
    limit = time.perf_counter() + CPU_SETTLE_LIMIT_S
    last = process.cpu_seconds()
    while time.perf_counter() < limit:
        await asyncio.sleep(CPU_SETTLE_S)  # sampling /proc, not synchronising with the bot
        now = process.cpu_seconds()
        if now == last:
            break
        last = now
    return last


async def load_run(
    session: BotSession, n: int, repeat: int, deadline_s: float, next_user: Callable[[], int]
) -> LoadRun:
    """Deliver ``n`` mentions (each with its own small CSV, from its own person) at once."""
    rig = session.rig
    process = await session.ensure()
    asks: list[tuple[Ask, dict[str, Any]]] = []
    for _ in range(n):
        user = rig.user(next_user())
        asks.append(rig.mention(user, "what drives churn?", session.spec.done_rule, files=[rig.csv_file(user=user)]))
    cpu_before, rig_cpu_before = process.cpu_seconds(), time.process_time()
    slack_before, anthropic_before = len(rig.slack.calls), len(rig.claude.requests)
    start = time.perf_counter()
    deliveries = [asyncio.create_task(rig.deliver(events_url(process), ask, envelope)) for ask, envelope in asks]
    all_done = await rig.wait_all([a for a, _ in asks], start + deadline_s)
    # A delivery still unanswered at the cut-off failed (Slack gave up on it long before).
    for delivery in deliveries:
        delivery.cancel()
    await asyncio.gather(*deliveries, return_exceptions=True)
    rig_cpu = time.process_time() - rig_cpu_before
    if all_done:
        elapsed = max(a.finished for a, _ in asks) - start
        cpu = await settle_cpu(process) - cpu_before
    else:
        elapsed = deadline_s
        cpu = process.cpu_seconds() - cpu_before
        # Work still queued would spill into the next run: start afresh.
        await session.close(graceful=False)
        for ask, _ in asks:  # what finished after the cut-off (before the kill) did not finish in time
            if ask.done.is_set() and ask.finished - start > deadline_s:
                ask.done.clear()
                ask.finished = math.nan
    rig.forget([a for a, _ in asks])
    run = LoadRun(
        session.spec.key,
        n,
        repeat,
        rig.claude_s,
        deadline_s,
        [a for a, _ in asks],
        elapsed,
        cpu,
        slack_calls=len(rig.slack.calls) - slack_before,
        anthropic_requests=len(rig.claude.requests) - anthropic_before,
        rig_cpu_s=rig_cpu,
    )
    session.log(
        f"  {session.spec.key:>12} n={n:<3} #{repeat + 1}: {run.percent_of_ideal:5.1f}% of ideal, "
        f"{run.succeeded}/{n} ok, {run.failed} failed, {run.unfinished} unfinished, "
        f"{1000 * run.cpu_per_analysis_s:.0f} ms CPU/analysis (the rig's: {1000 * run.rig_cpu_per_analysis_s:.0f} ms)"
    )
    return run


@dataclass
class MemoryRun:
    bot: str
    megabytes: int
    repeat: int
    rss_before_kb: int
    peak_kb: int
    ok: bool
    uploaded_bytes: int
    seconds: float

    @property
    def growth_mb(self) -> float:
        return (self.peak_kb - self.rss_before_kb) / 1024


async def memory_run(
    rig: Rig, spec: BotSpec, megabytes: int, repeat: int, workdir: Path, cpu: set[int] | None, log: Log
) -> MemoryRun:
    """Relay one ``megabytes`` MB file (Slack → bot → Files API) and read the bot's peak RSS."""
    extra = BIG_FILE_ENV if spec.key.startswith("analyst") else {}
    process = await start_bot(spec, rig, workdir / f"mem-{spec.key}-{megabytes}-{repeat}", cpu=cpu, extra_env=extra)
    try:
        session = BotSession(rig, spec, workdir, cpu, log)
        session.process = process
        await session.warm_up()
        file = rig.big_csv_file(megabytes)
        size = len(rig.slack.workspace.files[file["id"]].content or b"")
        user = rig.user(800_000 + megabytes * 10 + repeat)
        ask, envelope = rig.mention(user, "what drives churn?", spec.done_rule, files=[file])
        if not reset_peak_rss(process.pid):
            log("  (clear_refs refused: the peak includes start-up)")
        before = process.memory_kb()["VmRSS"]
        uploads_before = len(rig.claude.uploads)
        start = time.perf_counter()
        await rig.deliver(events_url(process), ask, envelope)
        await rig.wait_all([ask], start + BIG_FILE_LIMIT_S)
        peak = process.memory_kb()["VmHWM"]
        uploaded = sum(u.size_bytes for u in rig.claude.uploads[uploads_before:])
        run = MemoryRun(spec.key, megabytes, repeat, before, peak, ask.ok, uploaded, time.perf_counter() - start)
        log(
            f"  {spec.key:>12} {megabytes:>4} MB #{repeat + 1}: +{run.growth_mb:.1f} MB peak RSS, "
            f"{'answered' if ask.ok else 'NOT answered'}, {uploaded / 1e6:.0f} MB reached the Files API "
            f"(file {size / 1e6:.0f} MB)"
        )
        rig.forget([ask])
        return run
    finally:
        await process.stop()
        release_big_files(rig)


def release_big_files(rig: Rig) -> None:
    """Drop the rig's copies of relayed big files (Slack's, the Files API's, the containers')."""
    for file in rig.slack.workspace.files.values():
        if file.content and len(file.content) > 1_000_000:
            file.content = b""
    for stored in list(rig.claude.files.values()):
        if stored.size_bytes > 1_000_000:
            del rig.claude.files[stored.id]
    for container in list(rig.claude.containers.values()):
        shutil.rmtree(container.root, ignore_errors=True)
        del rig.claude.containers[container.id]


@dataclass
class DedupeRun:
    bot: str
    mode: str  # "one after another" | "all at once"
    asks: int
    uploads: int
    ok: int


async def dedupe_run(rig: Rig, spec: BotSpec, mode: str, workdir: Path, cpu: set[int] | None, log: Log) -> DedupeRun:
    """Ten people share the same bytes (each their own Slack file) and ask about them."""
    rows = "".join(f"{i},Free,{i % 2}\n" for i in range(500))
    # Bytes of their own per bot and mode, so no other scenario's upload counts.
    content = f"customer_id,tier,churned\n{rows}# {spec.key}, {mode}\n".encode()
    process = await start_bot(spec, rig, workdir / f"dedupe-{spec.key}-{mode.replace(' ', '-')}", cpu=cpu)
    try:
        asks = []
        for k in range(10):
            user = rig.user(700_000 + k + (100 if mode == "all at once" else 0))
            file = rig.slack.host_file(name="churn.csv", content=content, user=user)
            asks.append(rig.mention(user, "what drives churn?", spec.done_rule, files=[file]))
        if mode == "all at once":
            await asyncio.gather(*(rig.deliver(events_url(process), a, e) for a, e in asks))
            await rig.wait_all([a for a, _ in asks], time.perf_counter() + 300)
        else:
            for ask, envelope in asks:
                await rig.deliver(events_url(process), ask, envelope)
                await rig.wait_all([ask], time.perf_counter() + 120)
        run = DedupeRun(spec.key, mode, 10, len(rig.claude.uploads_of(content)), sum(a.ok for a, _ in asks))
        log(f"  {spec.key:>12} {mode}: {run.uploads} upload(s) for 10 asks, {run.ok} answered")
        rig.forget([a for a, _ in asks])
        return run
    finally:
        await process.stop()


@dataclass
class CacheRun:
    bot: str
    repeat: int
    #: Per turn: (input_tokens, cache_read_input_tokens, cache_creation_input_tokens).
    turns: list[tuple[int, int, int]] = field(default_factory=list)
    ok: bool = True

    @property
    def shares(self) -> list[float]:
        return [
            read / (plain + read + written) if plain + read + written else math.nan
            for plain, read, written in self.turns
        ]


FOLLOW_UPS = ("now split that by tier", "what about Premium users?", "by device", "which of these matters most?")


async def cache_run(rig: Rig, repeat: int, workdir: Path, cpu: set[int] | None, log: Log) -> CacheRun:
    """A 5-turn thread with the real bot: the cached share of each turn's input tokens."""
    process = await start_bot(ANALYST, rig, workdir / f"cache-{repeat}", cpu=cpu)
    try:
        user = rig.user(600_000 + repeat)
        run = CacheRun(ANALYST.key, repeat)
        thread: str | None = None
        for question in ("what drives churn?", *FOLLOW_UPS):
            files = [rig.csv_file(user=user)] if thread is None else None
            ask, envelope = rig.mention(user, question, "reaction", files=files, thread_ts=thread)
            responses_before = len(rig.claude.responses)
            await rig.deliver(events_url(process), ask, envelope)
            await rig.wait_all([ask], time.perf_counter() + 120)
            run.ok = run.ok and ask.ok
            usage = [r.get("usage") or {} for r in rig.claude.responses[responses_before:]]
            run.turns.append(
                (
                    sum(int(u.get("input_tokens") or 0) for u in usage),
                    sum(int(u.get("cache_read_input_tokens") or 0) for u in usage),
                    sum(int(u.get("cache_creation_input_tokens") or 0) for u in usage),
                )
            )
            rig.forget([ask])
            thread = thread or ask.ts
        log(f"  cache #{repeat + 1}: cached share per turn " + ", ".join(f"{100 * s:.0f}%" for s in run.shares))
        return run
    finally:
        await process.stop()


# --------------------------------------------------------------------------------------------
# RATE-LIMITED SCENARIO: "fake returns 429 once tokens/min run out: converges below the limit,
# no failed run, never retries faster than retry-after" (issue #11). It uses the fake
# Anthropic's budget (tests/fakes/ratelimits.py): ``FakeAnthropic.rate_limit(input_tokens=,
# window_s=)`` refuses Messages requests with 429 ``rate_limit_error`` and ``retry-after`` once
# a window's input tokens are used up, and ``FakeAnthropic.retried_too_soon()`` lists the
# requests sent again before their ``retry-after`` had passed.
# --------------------------------------------------------------------------------------------

RATE_N = 50  # analyses delivered at once
RATE_WINDOW_S = 60.0


async def rate_limited_run(rig: Rig, workdir: Path, cpu: set[int] | None, log: Log) -> dict[str, Any] | None:
    """50 analyses at once against an input-token budget of half what they need per minute:
    two analyses first measure what an analysis needs (prompt cache warm), then the budget is set."""
    claude = rig.claude
    process = await start_bot(ANALYST, rig, workdir / "rate-limited", cpu=cpu)
    try:
        charged: list[tuple[float, int]] = []  # (its window's start, input tokens) of each request accepted

        def metered() -> None:
            window = claude.rate_window
            charge = window.charge

            def counted(name: str, amount: int) -> None:
                charge(name, amount)  # rolls the window first when it has ended
                if name == "input-tokens":
                    charged.append((window.started, amount))

            window.charge = counted  # type: ignore[method-assign]

        metered()
        for k in (2, 1):  # the second, with the prompt cache warm, is what each of the 50 takes
            charged.clear()
            user = rig.user(500_000 - k)
            first, envelope = rig.mention(user, "what drives churn?", "reaction", files=[rig.csv_file(user=user)])
            await rig.deliver(events_url(process), first, envelope)
            await rig.wait_all([first], time.perf_counter() + 60)
        per_analysis = max(1, sum(tokens for _, tokens in charged))
        limit = RATE_N * per_analysis // 2
        claude.rate_limit(input_tokens=limit, window_s=RATE_WINDOW_S)
        metered()
        charged.clear()
        requests_before = len(claude.message_requests)
        asks = []
        for k in range(RATE_N):
            user = rig.user(500_000 + k)
            asks.append(rig.mention(user, "what drives churn?", "reaction", files=[rig.csv_file(user=user)]))
        began = time.perf_counter()
        await asyncio.gather(*(rig.deliver(events_url(process), a, e) for a, e in asks))
        await rig.wait_all([a for a, _ in asks], time.perf_counter() + 600)
        requests = claude.message_requests[requests_before:]
        # The most input tokens the fake accepted in one of its windows (a fixed window admits
        # a request while any budget is left, so the last one may overdraw it).
        per_window: dict[float, int] = {}
        for started, tokens in charged:
            per_window[started] = per_window.get(started, 0) + tokens
        busiest = max(per_window.values(), default=0)
        result = {
            "analyses": RATE_N,
            "finished": sum(1 for a, _ in asks if a.done.is_set()),
            "failed": sum(1 for a, _ in asks if a.failed),
            "late_acks": sum(1 for a, _ in asks if not a.acked_in_time),
            "input_tokens_per_analysis": per_analysis,
            "limit_per_window": limit,
            "window_s": RATE_WINDOW_S,
            "messages_requests": len(requests),
            "refused_429": sum(1 for r in requests if r.status == 429),
            "retried_too_soon": len(claude.retried_too_soon()),
            "windows": len(per_window),
            "busiest_window_input_tokens": busiest,
            "minutes": round((time.perf_counter() - began) / 60, 1),
        }
        log(f"  rate-limited: {result}")
        return result
    finally:
        claude.rate_limit()  # back to the default, generous budget
        await process.stop()
