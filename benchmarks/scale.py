"""Issue #12's scale figure: two replicas on one PostgreSQL against one process on SQLite.

Both sides get the same ``n`` mentions at once (each with its own small CSV, from its own
person). The replicas get them round-robin, and a tenth of them again at the other replica
as Slack's retries (``X-Slack-Retry-Num: 1``), sent with the originals. Exactly-once is read
from the database afterwards: one run per message, every one of them ``succeeded``.

The PostgreSQL server is the test suite's throwaway one (``tests/postgres.py``: a temporary
directory, a Unix socket, ``fsync`` off), started for this scenario and removed after it.
Both replicas share the bots' CPU set with each other, so on this rig the figure says
whether sharing the work through the database costs throughput, not how it scales with cores.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.bots import ANALYST, BotSpec, events_url, start_bot
from benchmarks.proc import BotProcess
from benchmarks.rig import Ask, Rig
from tests.postgres import PostgresServer, find_bin_dir, start_server, stop_server

RETRIED_SHARE = 10  # one ask in this many is delivered again, at the other replica
SCALE_NUMBERS = itertools.count(700_000)  # the people of this scenario (apart from the load runs')


@dataclass
class ScaleRun:
    setup: str  # "1 replica, SQLite" | "2 replicas, PostgreSQL"
    n: int
    repeat: int
    claude_s: float
    elapsed: float
    succeeded: int
    runs: int  # rows in the ledger, the replicas' warm-up questions included
    distinct_messages: int
    retries: int
    warm_ups: int

    @property
    def expected_runs(self) -> int:
        return self.n + self.warm_ups

    @property
    def percent_of_ideal(self) -> float:
        return 100.0 * self.claude_s / max(self.elapsed, self.claude_s)

    @property
    def exactly_once(self) -> bool:
        return self.runs == self.distinct_messages == self.expected_runs


async def _ledger(db: str) -> tuple[int, int, int]:
    """(runs, distinct messages, succeeded) in the ledger, whatever the backend."""
    sql = (
        "SELECT count(*), count(DISTINCT channel_id || ':' || message_ts), "
        "sum(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END) FROM runs"
    )
    if db.startswith("postgresql://"):
        server = await asyncpg.connect(db)
        try:
            row = await server.fetchrow(sql)
        finally:
            await server.close()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2] or 0)
    with sqlite3.connect(db) as file:
        runs, distinct, succeeded = file.execute(sql).fetchone()
    return int(runs), int(distinct), int(succeeded or 0)


async def _start(spec: BotSpec, rig: Rig, workdir: Path, db: str, cpu: set[int] | None) -> BotProcess:
    process = await start_bot(spec, rig, workdir, cpu=cpu, extra_env={"ANALYST_DB": db})
    user = rig.user(next(SCALE_NUMBERS))
    ask, envelope = rig.mention(user, "warm up", spec.done_rule, files=[rig.csv_file(user=user)])
    await rig.deliver(events_url(process), ask, envelope)
    if not await rig.wait_all([ask], time.perf_counter() + 60) or not ask.ok:
        raise RuntimeError(f"{spec.key} did not answer its warm-up question:\n{process.log_tail()}")
    rig.forget([ask])
    return process


async def _measure(
    setup: str, rig: Rig, processes: list[BotProcess], db: str, n: int, repeat: int, deadline_s: float
) -> ScaleRun:
    asks: list[tuple[Ask, dict[str, Any]]] = []
    for _ in range(n):
        user = rig.user(next(SCALE_NUMBERS))
        asks.append(rig.mention(user, "what drives churn?", "reaction", files=[rig.csv_file(user=user)]))
    start = time.perf_counter()
    sends: list[asyncio.Task[Any]] = []
    retries = 0
    for k, (ask, envelope) in enumerate(asks):
        sends.append(asyncio.create_task(rig.deliver(events_url(processes[k % len(processes)]), ask, envelope)))
        if len(processes) > 1 and k % RETRIED_SHARE == 0:
            other = events_url(processes[(k + 1) % len(processes)])
            retry = rig.slack.deliver_http(other, envelope, retry_num=1, retry_reason="timeout")
            sends.append(asyncio.create_task(retry))
            retries += 1
    finished = await rig.wait_all([a for a, _ in asks], start + deadline_s)
    for send in sends:
        send.cancel()
    await asyncio.gather(*sends, return_exceptions=True)
    elapsed = (max(a.finished for a, _ in asks) - start) if finished else deadline_s
    rig.forget([a for a, _ in asks])
    runs, distinct, _ = await _ledger(db)
    succeeded = sum(1 for a, _ in asks if a.ok)
    return ScaleRun(setup, n, repeat, rig.claude_s, elapsed, succeeded, runs, distinct, retries, len(processes))


async def scale_runs(
    rig: Rig,
    n: int,
    repeats: int,
    deadline_s: float,
    workdir: Path,
    cpu: set[int] | None,
    log: Callable[[str], None],
) -> list[ScaleRun]:
    """One process on SQLite, then two replicas on PostgreSQL, ``repeats`` times each, at ``n`` at once."""
    if find_bin_dir() is None:
        log("  scale: skipped (no PostgreSQL server binaries on this machine)")
        return []
    runs: list[ScaleRun] = []
    server: PostgresServer = start_server()
    try:
        for repeat in range(repeats):
            for replicas in (1, 2):
                setup = "1 replica, SQLite" if replicas == 1 else f"{replicas} replicas, PostgreSQL"
                where = workdir / f"scale-{repeat}-{replicas}"
                db = str(where / "analyst.db") if replicas == 1 else server.create_database()
                processes: list[BotProcess] = []
                try:
                    for k in range(replicas):
                        processes.append(await _start(ANALYST, rig, where / f"replica-{k}", db, cpu))
                    run = await _measure(setup, rig, processes, db, n, repeat, deadline_s)
                finally:
                    for process in processes:
                        await process.stop()
                log(
                    f"  scale {setup:>24} n={n} #{repeat + 1}: {run.percent_of_ideal:5.1f}% of ideal, "
                    f"{run.succeeded}/{n} ok, {run.runs} runs for {run.distinct_messages} messages "
                    f"(expected {run.expected_runs}; {run.retries} retried deliveries)"
                )
                runs.append(run)
    finally:
        stop_server(server)
    return runs
