"""The supervisor: owns the process's background tasks, one-at-a-time threads, the lease
loop (start-up recovery is its first pass), deferral while shutting down, and the retention
sweeper.

Every task is tracked (never garbage-collected mid-run, never failing silently); every
run another process left unfinished — it crashed, or shut down and handed the run back — is
taken over once its lease allows (bot/leases.py) and resumed or, if too old, failed; either
way its thread hears about it, and the ledger agrees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from bot import ledger
from bot.admission import Gate
from bot.leases import ThreadLocks, owner_is_gone, renew_every
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
        self._leasing: asyncio.Task[None] | None = None
        self._stop_leasing = asyncio.Event()
        # One analysis at a time per thread, across processes: they share a container and a history.
        self.thread_locks = ThreadLocks(parts.store, parts.settings.lease_s)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> None:
        self.tasks.spawn(coro, name=name)

    def thread_lock(
        self, request: AnalysisRequest, *, run_id: int | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Held while a request in the thread is admitted and run (waits for one running elsewhere)."""
        return self.thread_locks.hold(thread_key(request.channel_id, request.thread_ts), run_id=run_id)

    async def start(self) -> None:
        """Start the retention sweeper, take up what other processes left, then keep leases."""
        self._sweeping = asyncio.get_running_loop().create_task(self.sweeper.run(self._stop), name="retention")
        await self.recover()
        self._leasing = asyncio.get_running_loop().create_task(self._keep_leases(), name="leases")

    async def _keep_leases(self) -> None:
        """Every third of a lease (at most every second): one :meth:`recover` pass, until shutdown
        ends (while it drains, running analyses keep their leases; nothing is taken over)."""
        interval = renew_every(self.parts.settings.lease_s)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_leasing.wait(), timeout=interval)
            if self._stop_leasing.is_set():
                return
            try:
                await self.recover()
            except Exception as error:  # noqa: BLE001 - a failed pass (database down, say) is retried next tick
                log.warning("renewing leases failed (%r); trying again in %.1fs", error, interval)

    async def recover(self) -> None:
        """One pass of the lease loop (the first at start-up): renew this process's leases, act on
        Stops pressed at other processes, and take over every run whose lease expired, that is
        unowned, or whose owner is gone — resumed, or failed if too old. A live lease is never touched."""
        store, settings = self.parts.store, self.parts.settings
        await ledger.renew(store, settings)
        for run_id, by in await store.stops_requested():
            running = self.parts.running.get(run_id)
            if running is not None and running.stopped_by is None:
                log.info("run %s: stop requested by %s at another process", run_id, by)
                running.stop(by=by)
        if self.stopping:
            return
        now = store.clock()
        for run in await store.runs_to_take_over():
            gone = run["owner"] if owner_is_gone(run["owner"]) else None
            if not await ledger.take_over(store, settings, run["id"], gone_owner=gone):
                continue  # another process took it first
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
        """Run an interrupted analysis again from the start, with the same files — if the access
        rules still let its asker and channel in (they may have changed since it was admitted:
        the allowed users or channels, or the asker now belongs to another organisation). Its
        files are checked again as they are fetched, as for any run."""
        if (refused := await self.gate.access(request)) is not None:
            log.info("run %s not resumed: the access rules no longer let it in", run_id)
            await ledger.refuse(self.parts.store, run_id, refused.message)
            await self.parts.surface.tell_privately(request, refused.message)
            await self.parts.surface.react(request, "no_entry_sign", remove="eyes")
            return "refused"
        async with self.thread_lock(request, run_id=run_id):
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

    async def admit_for_later(self, request: AnalysisRequest, *, behind_its_thread: bool = False) -> None:
        """Admit a claimed request, already checked against the access rules (``Analyst._defer``),
        as a queued run this process won't start (it is shutting down):
        handed back at the end of shutdown, another process (or the next start) runs it.
        ``behind_its_thread``: it was waiting for its thread (see :func:`bot.ledger.admit`)."""
        settings = self.parts.settings
        _, refusal = await ledger.admit(
            self.parts.store,
            settings,
            request,
            request.text[: settings.max_question_chars],
            behind_its_thread=behind_its_thread,
        )
        if refusal is not None:
            await self.parts.surface.tell_privately(request, f":hourglass: {refusal.message}")
        else:
            await self.parts.surface.tell_thread(request, DEFERRED)

    async def drain(self, timeout: float | None = None) -> bool:
        return await self.tasks.drain(timeout)

    async def shutdown(self, grace: float) -> None:
        """Let running work finish within ``grace`` seconds, then interrupt the rest (each
        run left queued, its thread told), hand every unfinished run of this process back
        (unowned: another process, or the next start, takes it at once) and stop the sweeper.
        New requests are deferred from the moment shutdown begins."""
        self.stopping = True
        if self.tasks:
            log.info("waiting up to %.0fs for %d analyses to finish", grace, len(self.tasks))
        if not await self.tasks.drain(grace):
            log.warning("analyses still running after the grace period; recording them as interrupted")
            await self.tasks.cancel_all()
        await self.stop_background()

    async def stop_background(self) -> None:
        """Stop the lease loop and hand this process's unfinished runs back, then stop the
        sweeper (analyses are drained separately)."""
        self._stop_leasing.set()
        if self._leasing is not None:
            await self._leasing
            self._leasing = None
            try:
                handed = await ledger.hand_back(self.parts.store)
            except Exception as error:  # noqa: BLE001 - then they are taken over when their leases expire
                log.warning(
                    "could not hand unfinished runs back (%r); they will be taken when their leases expire", error
                )
            else:
                if handed:
                    log.info("handed %d unfinished runs back for another process to take", handed)
        self._stop.set()
        if self._sweeping is not None:
            await self._sweeping
            self._sweeping = None
