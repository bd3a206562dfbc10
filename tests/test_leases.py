"""Run leases and thread locks in the database (bot/leases.py), on both backends: each ``Store``
here is one process's own, all on one database, with clocks the test moves.

The multi-process behaviour end to end (a killed replica's run taken over, a rolling restart with
a run in flight, a follow-up at another replica, Stop at another replica) is in tests/test_replicas.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from bot import leases
from bot.leases import ThreadLocks, owner_is_gone
from bot.quotas import Limits
from bot.store import Store

NOW = 1_764_115_200.0  # 2025-11-26 00:00 UTC
LEASE = 30.0
RACERS = 20


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def processes(target: Path | str, count: int, clock: Clock) -> AsyncIterator[list[Store]]:
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(Store(target, clock=clock))  # migrates, once
        rest = await asyncio.gather(*(stack.enter_async_context(Store(target, clock=clock)) for _ in range(count - 1)))
        yield [first, *rest]


def limits(concurrent: int) -> Limits:
    return Limits(
        runs_per_hour=100,
        max_concurrent_per_user=concurrent,
        daily_tokens_per_user=10**9,
        daily_tokens_per_workspace=10**9,
    )


async def admit(store: Store, *, concurrent: int = 100) -> int:
    run_id, refusal = await store.admit(
        limits=limits(concurrent), exempt=False, source="mention", lease_s=LEASE, user_id="U0ALICE", team_id="T0"
    )
    assert refusal is None
    return run_id


async def test_a_live_lease_is_never_taken_over_and_an_expired_one_by_exactly_one_process(
    store_target: Path | str,
) -> None:
    clock = Clock()
    async with processes(store_target, RACERS, clock) as (owner, *others):
        run_id = await admit(owner)
        assert [await store.runs_to_take_over() for store in others[:3]] == [[], [], []]
        assert not any(await asyncio.gather(*(s.take_over_run(run_id, lease_s=LEASE) for s in others)))

        clock.now += LEASE / 2
        assert await owner.renew_leases(LEASE) == 1  # renewed: still live past the first expiry
        clock.now += LEASE * 0.75
        assert await others[0].runs_to_take_over() == []

        clock.now += LEASE  # the owner stopped renewing (it crashed)
        [left] = await others[0].runs_to_take_over()
        won = await asyncio.gather(*(s.take_over_run(left["id"], lease_s=LEASE) for s in others))
        assert won.count(True) == 1
        winner = others[won.index(True)]
        [run] = await winner.all_runs()
        assert run["owner"] == winner.owner
        assert await owner.renew_leases(LEASE) == 0  # the old owner no longer holds it


async def test_an_expired_run_no_longer_holds_its_persons_concurrency_slot(store_target: Path | str) -> None:
    clock = Clock()
    async with processes(store_target, 2, clock) as (crashed, live):
        await admit(crashed, concurrent=1)
        _, refusal = await live.admit(
            limits=limits(1), exempt=False, source="mention", lease_s=LEASE, user_id="U0ALICE", team_id="T0"
        )
        assert refusal is not None and refusal.limit == "ANALYST_MAX_CONCURRENT_PER_USER"
        clock.now += LEASE + 1
        _, refusal = await live.admit(
            limits=limits(1), exempt=False, source="mention", lease_s=LEASE, user_id="U0ALICE", team_id="T0"
        )
        assert refusal is None


async def test_runs_handed_back_at_shutdown_are_taken_at_once(store_target: Path | str) -> None:
    clock = Clock()
    async with processes(store_target, 2, clock) as (leaving, staying):
        run_id = await admit(leaving)
        assert await staying.runs_to_take_over() == []
        assert await leaving.hand_back_runs() == 1
        [free] = await staying.runs_to_take_over()
        assert free["id"] == run_id and free["owner"] is None
        assert await staying.take_over_run(run_id, lease_s=LEASE)


async def test_a_stop_is_recorded_for_the_runs_owner_until_the_run_ends(store_target: Path | str) -> None:
    clock = Clock()
    async with processes(store_target, 2, clock) as (owner, other):
        run_id = await admit(owner)
        assert await other.request_stop(run_id, "U0ALICE")
        assert await other.stops_requested() == []
        assert await owner.stops_requested() == [(run_id, "U0ALICE")]
        await owner.update_run(run_id, status="cancelled")
        assert await owner.stops_requested() == []
        assert not await other.request_stop(run_id, "U0ALICE")  # finished: nothing to stop


async def test_a_thread_lock_excludes_other_processes_until_released_or_expired(store_target: Path | str) -> None:
    clock = Clock()
    async with processes(store_target, RACERS, clock) as (first, *others):
        won = await asyncio.gather(*(s.take_thread_lock("C:1", run_id=None, lease_s=LEASE) for s in [first, *others]))
        assert won.count(True) == 1
        holder = [first, *others][won.index(True)]
        waiter = next(s for s in others if s is not holder)
        assert await waiter.thread_lock_holder("C:1") == holder.owner
        await waiter.release_thread_lock("C:1")  # not its lock: nothing happens
        assert not await waiter.take_thread_lock("C:1", run_id=None, lease_s=LEASE)
        clock.now += LEASE / 2
        await holder.renew_leases(LEASE)
        clock.now += LEASE * 0.75
        assert not await waiter.take_thread_lock("C:1", run_id=None, lease_s=LEASE)
        await holder.release_thread_lock("C:1")
        assert await waiter.take_thread_lock("C:1", run_id=7, lease_s=LEASE)
        clock.now += LEASE + 1  # the waiter crashed holding it
        assert await holder.take_thread_lock("C:1", run_id=None, lease_s=LEASE)


async def test_a_follow_up_at_another_process_waits_for_the_thread_and_gets_it_on_release(
    store_target: Path | str,
) -> None:
    found_held = Heard("waiting for thread C:1")
    logger = logging.getLogger("bot.leases")
    logger.addHandler(found_held)
    logger.setLevel(logging.INFO)
    clock = Clock()
    async with processes(store_target, 2, clock) as (one, two):
        first, second = ThreadLocks(one, LEASE), ThreadLocks(two, LEASE)
        order: list[str] = []
        async with first.hold("C:1"):
            waiting = asyncio.create_task(_hold(second, "C:1", order))
            await asyncio.wait_for(found_held.event.wait(), timeout=30)  # it found the thread held
            assert not waiting.done()
            order.append("first done")
        await waiting
        assert order == ["first done", "second"]
        assert await one.thread_lock_holder("C:1") is None
    logger.removeHandler(found_held)
    logger.setLevel(logging.NOTSET)


class Heard(logging.Handler):
    """Sets ``event`` when a log message contains ``words``."""

    def __init__(self, words: str) -> None:
        super().__init__()
        self.words = words
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.words in record.getMessage():
            self.event.set()


async def _hold(locks: ThreadLocks, key: str, order: list[str]) -> None:
    async with locks.hold(key):
        order.append("second")


def test_only_an_exited_process_on_this_host_is_presumed_gone() -> None:
    host = socket.gethostname()
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
    assert owner_is_gone(f"{host}:{child}:abc")  # exited and reaped
    assert not owner_is_gone(f"{host}:{os.getppid()}:abc")  # alive
    assert not owner_is_gone(f"another-host:{child}:abc")  # elsewhere: only its lease tells
    assert not owner_is_gone(None) and not owner_is_gone("garbage")
    mine = leases.make_owner()
    assert owner_is_gone(mine)  # this process, but no open store has it
    leases.opened(mine)
    assert not owner_is_gone(mine)
    leases.closed(mine)
