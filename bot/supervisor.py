"""The supervisor: owns the process's background tasks, one-at-a-time threads, start-up
recovery, deferral while shutting down, and the retention sweeper.

Every task is tracked (never garbage-collected mid-run, never failing silently); every
run a previous process left unfinished is resumed or, if too old, failed — and either
way its thread hears about it, and the ledger agrees.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Coroutine
from typing import Any

from bot import ledger
from bot.admission import Gate
from bot.requests import AnalysisRequest
from bot.retention import Sweeper
from bot.run import Parts, Run
from bot.schema import RunStatus
from bot.store import parse_iso, thread_key

log = logging.getLogger(__name__)

RESTARTED = ":arrows_counterclockwise: I was restarted while working on this — starting it again."
TOO_LATE = (
    ":warning: I was restarted before I could finish this analysis, and it's too late to pick it up again. "
    "Please ask again."
)
DEFERRED = ":hourglass: I'm restarting; I'll start on this in a moment."


class TaskTracker:
    """Keeps a reference to every background task and logs any that fail."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for every task (including ones started meanwhile). True if all finished."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._tasks:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            _, pending = await asyncio.wait(set(self._tasks), timeout=remaining)
            if pending and deadline is not None and loop.time() >= deadline:
                return False
        return True

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Supervisor:
    def __init__(self, parts: Parts, gate: Gate, sweeper: Sweeper) -> None:
        self.parts = parts
        self.gate = gate
        self.sweeper = sweeper
        self.tasks = TaskTracker()
        self.stopping = False  # set when shutdown begins: new requests are deferred
        self._stop = asyncio.Event()
        self._sweeping: asyncio.Task[None] | None = None
        # One analysis at a time per thread: they share a container and a history.
        self._thread_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> None:
        self.tasks.spawn(coro, name=name)

    def thread_lock(self, request: AnalysisRequest) -> asyncio.Lock:
        key = thread_key(request.channel_id, request.thread_ts)
        lock = self._thread_locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._thread_locks[key] = lock
        return lock

    async def start(self) -> None:
        """Start the retention sweeper, then take up what a previous process left."""
        self._sweeping = asyncio.get_running_loop().create_task(self.sweeper.run(self._stop), name="retention")
        await self.recover()

    async def recover(self) -> None:
        """Runs a previous process left queued or running: resumed, or failed if too old."""
        store = self.parts.store
        now = store.clock()
        for run in await store.unfinished_runs():
            request = AnalysisRequest.from_json(run["request"]) if run.get("request") else None
            age = now - parse_iso(run["started_at"])
            if request is not None and age <= self.parts.settings.resume_max_age_s:
                log.info("resuming run %s (left %s by a previous process)", run["id"], run["status"])
                await ledger.requeue(store, run["id"])
                self.spawn(self.resume(run["id"], request), name=f"resume {run['id']}")
                continue
            log.info("run %s was interrupted %.0fs ago; marking it failed", run["id"], age)
            await ledger.give_up(store, run["id"])
            if request is not None:
                await self.parts.surface.tell_thread(request, TOO_LATE)

    async def resume(self, run_id: int, request: AnalysisRequest) -> RunStatus:
        """Run an interrupted analysis again from the start, with the same files."""
        async with self.thread_lock(request):
            await self.parts.surface.tell_thread(request, RESTARTED)
            question = await self.gate.question(request)
            conversation = await self.parts.conversations.get(thread_key(request.channel_id, request.thread_ts))
            run = Run(
                self.parts,
                request,
                run_id,
                question=question.text,
                truncated=question.truncated,
                conversation=conversation,
            )
            return await run.execute()

    async def defer(self, request: AnalysisRequest) -> None:
        """A request that arrived while shutting down: admitted and left queued for the next start."""
        if not await self.parts.store.claim(request.dedupe_key):
            return
        settings = self.parts.settings
        _, refusal = await ledger.admit(
            self.parts.store, settings, request, request.text[: settings.max_question_chars]
        )
        if refusal is not None:
            await self.parts.surface.tell_privately(request, f":hourglass: {refusal.message}")
        else:
            await self.parts.surface.tell_thread(request, DEFERRED)

    async def drain(self, timeout: float | None = None) -> bool:
        return await self.tasks.drain(timeout)

    async def shutdown(self, grace: float) -> None:
        """Let running work finish within ``grace`` seconds, then interrupt the rest (each
        run left queued for the next start, its thread told) and stop the sweeper. New
        requests are deferred from the moment shutdown begins."""
        self.stopping = True
        if self.tasks:
            log.info("waiting up to %.0fs for %d analyses to finish", grace, len(self.tasks))
        if not await self.tasks.drain(grace):
            log.warning("analyses still running after the grace period; recording them as interrupted")
            await self.tasks.cancel_all()
        await self.stop_background()

    async def stop_background(self) -> None:
        """Stop the sweeper (analyses are drained separately)."""
        self._stop.set()
        if self._sweeping is not None:
            await self._sweeping
            self._sweeping = None
