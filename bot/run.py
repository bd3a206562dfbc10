"""One run: an admitted request carried to its end, as one stream of progress events.

The run waits for a slot, brings the files in, builds the engine's job, and relays the
engine's events; every event goes, in order, to the run's subscribers — the ledger first
(the one writer of the ``runs`` row), then the surface's publisher. Whatever happens, the
stream ends with :class:`~bot.progress.Finished` (or :class:`~bot.progress.Interrupted`
when the process is shutting down: the run stays queued for the next start).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import anthropic
import httpx2

from bot.engine import Engine
from bot.errors import Problem, StreamBroken, UserFacingError, anthropic_error_kind, describe_anthropic_error
from bot.files_api import FilesApi
from bot.filetypes import FileRefused
from bot.intake import FileIntake
from bot.jobs import JobPlan, plan_job
from bot.ledger import Ledger
from bot.limiter import Limiter
from bot.logs import run_context
from bot.metrics import Metrics
from bot.progress import (
    Cancelled,
    Done,
    Failed,
    FilesLeftOut,
    FilesReady,
    FilesRefused,
    Finished,
    Interrupted,
    Outcome,
    Preparing,
    QuestionTruncated,
    Queued,
    RunEvent,
    Started,
    StepStarted,
    Usage,
)
from bot.requests import AnalysisRequest
from bot.schema import RunStatus
from bot.settings import Settings
from bot.store import Conversation, ConversationStore, Store, thread_key
from bot.surface import Publisher, Subscriber, Surface, broadcast

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parts:
    """What every run shares: the process's settings, store, clients and queue."""

    settings: Settings
    store: Store
    conversations: ConversationStore
    files_api: FilesApi
    intake: FileIntake
    engine: Engine
    queue: Limiter  # how many analyses run at once; also paces the engine's API calls
    surface: Surface
    metrics: Metrics = field(default_factory=Metrics)
    running: dict[int, Run] = field(default_factory=dict)  # the runs this process is carrying out, by id


class Run:
    """One admitted request, from the queue to :class:`~bot.progress.Finished`."""

    def __init__(
        self,
        parts: Parts,
        request: AnalysisRequest,
        run_id: int,
        *,
        question: str,
        truncated: bool,
        conversation: Conversation | None,
    ) -> None:
        self.parts = parts
        self.request = request
        self.run_id = run_id
        self.question = question
        self.truncated = truncated
        self.conversation = conversation
        self.key = thread_key(request.channel_id, request.thread_ts)
        ledger = Ledger(parts.store, parts.files_api, run_id, team_id=request.team_id)
        self.publisher: Publisher = parts.surface.publisher(
            request, run_id, ledger.posts_in(request.channel_id), parts.files_api
        )
        meter = parts.metrics.follow(source=request.source, model=parts.settings.model)
        self.subscribers: Sequence[Subscriber] = (ledger, meter, self.publisher)
        self.code_runs = 0
        self._code_steps: set[int] = set()
        self.stopped_by: str | None = None
        self.cut_short = Usage()  # what the call being streamed has used so far (counted if stopped)
        self._task: asyncio.Task[object] | None = None

    def stop(self, by: str) -> None:
        """Cancel the run (its in-flight API call is closed); it ends ``cancelled``, stopped by ``by``."""
        if self.stopped_by is None and self._task is not None:
            self.stopped_by = by
            self._task.cancel()

    async def emit(self, event: RunEvent) -> None:
        await broadcast(self.subscribers, event)

    async def execute(self) -> RunStatus:
        """Run to a terminal ledger status. Stopped (:meth:`stop`), it ends ``cancelled``; on
        any other cancellation (shutdown) it is left queued, the thread is told, and the
        cancellation goes on."""
        self._task = asyncio.current_task()
        self.parts.running[self.run_id] = self
        request = self.request
        # Every log line of the run (and of the tasks it spawns) carries these (bot/logs.py).
        with run_context(run_id=self.run_id, channel=request.channel_id, user=request.user_id):
            try:
                return await self._execute()
            finally:
                self.parts.running.pop(self.run_id, None)

    async def _execute(self) -> RunStatus:
        outcome: Outcome | None = None
        try:
            if self.truncated:
                await self.emit(QuestionTruncated(self.parts.settings.max_question_chars))

            async def queued(position: int) -> None:
                await self.emit(Queued(position))

            async with self.parts.queue.slot(on_wait=queued):
                await self.emit(Started())
                outcome = await self._analyse()
        except asyncio.CancelledError:
            if self.stopped_by is None:
                await self.emit(Interrupted())
                raise
            return await self._cancelled(self.stopped_by)
        except Exception as error:  # noqa: BLE001 - every failure ends as a message in the thread (logged in _failure)
            outcome = self._failure(error)
            await self._tell_failure(outcome)
        status: RunStatus = outcome.status if isinstance(outcome, Failed) else "succeeded"
        error_detail = (outcome.detail or outcome.message) if isinstance(outcome, Failed) else None
        await self.emit(
            Finished(status, error_detail, code_runs=self.code_runs, files_posted=self.publisher.files_posted)
        )
        return status

    async def _cancelled(self, by: str) -> RunStatus:
        """Finish a run someone stopped: what the cut-short call used is counted, the thread
        says who stopped it, and the ledger records it ``cancelled``."""
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        log.info("run %s stopped by %s", self.run_id, by)
        if self.cut_short != Usage():
            await self.emit(self.cut_short)
        await self.emit(Cancelled(by))
        await self.emit(
            Finished(
                "cancelled",
                f"stopped by {by}",
                code_runs=self.code_runs,
                files_posted=self.publisher.files_posted,
            )
        )
        return "cancelled"

    def _failure(self, error: Exception) -> Failed:
        """Any failure of the run around the analysis, as the :class:`Failed` the thread sees."""
        problem: Problem | None
        if isinstance(error, FileRefused):
            return Failed(str(error), retryable=False, detail=str(error), status="refused")
        if isinstance(error, UserFacingError):
            return Failed(error.message, retryable=error.retryable, detail=error.detail, status=error.status)
        if isinstance(error, anthropic.APIError | httpx2.TransportError | StreamBroken):
            problem = describe_anthropic_error(error)
            failed = Failed(problem.message, retryable=problem.retryable, detail=problem.detail)
            return replace(failed, kind=anthropic_error_kind(error))
        else:
            problem = self.parts.surface.describe_failure(error)
        if problem is None:
            log.error("run %s failed unexpectedly", self.run_id, exc_info=error)
            problem = Problem(
                f"Something went wrong on my side (run #{self.run_id}). Try again; if it keeps happening, "
                "tell whoever runs this bot.",
                False,
                f"internal: {error!r}",
            )
        return Failed(problem.message, retryable=problem.retryable, detail=problem.detail)

    async def _tell_failure(self, failed: Failed) -> None:
        """Show a failure of the run itself; if even that fails, the ledger still records it."""
        try:
            await self.emit(failed)
        except Exception as error:  # noqa: BLE001 - logged; the ledger must still get the run's end
            problem = self.parts.surface.describe_failure(error)
            log.error("could not tell the thread about a failure: %s", problem.detail if problem else repr(error))

    async def _analyse(self) -> Outcome:
        parts, request = self.parts, self.request
        accepted, refusals = await parts.intake.precheck(
            request.files, asker=request.user_id, conversation_id=request.channel_id
        )
        if refusals and not accepted:
            raise FileRefused("\n".join(refusals))
        await self.emit(
            Preparing(_progress_title([f.name for f, _ in accepted], follow_up=self.conversation is not None))
        )
        new_files = await parts.intake.fetch(
            accepted, team_id=request.team_id, user_id=request.user_id, run_id=self.run_id, refusals=refusals
        )
        if refusals and not new_files and not (self.conversation and self.conversation.files):
            raise FileRefused("\n".join(refusals))
        if refusals:
            await self.emit(FilesRefused(tuple(refusals)))
        await parts.conversations.ensure(
            self.key,
            team_id=request.team_id,
            channel_id=request.channel_id,
            thread_ts=request.thread_ts,
            user_id=request.user_id,
            source=request.source,
        )
        for file in new_files:
            await parts.conversations.add_file(self.key, file)
        plan = await plan_job(parts, request, self.conversation, new_files, self.question, self.truncated, self.run_id)
        plan.job = replace(plan.job, meter=self._meter)
        columns = next((f.columns for f in new_files if f.columns), ())
        await self.emit(FilesReady(tuple(f.filename for f in plan.job.thread_files), columns))
        outcome = await self._relay(plan)
        if plan.left_out:
            await self.emit(FilesLeftOut(tuple(dict.fromkeys(plan.left_out))))
        if isinstance(outcome, Done):
            await parts.conversations.record_exchange(
                self.key,
                run_id=self.run_id,
                model=parts.settings.model,
                user_content=outcome.user_content,
                assistant_content=outcome.assistant_content,
                container_id=outcome.container_id,
                container_expires_at=outcome.container_expires_at,
            )
        return outcome

    def _meter(self, in_flight: Usage) -> None:
        self.cut_short = in_flight

    async def _relay(self, plan: JobPlan) -> Outcome:
        """The engine's events, to every subscriber, within the run's deadline."""
        deadline = self.parts.settings.run_deadline_s
        try:
            async with asyncio.timeout(deadline):
                async for event in self.parts.engine.run(plan.job):
                    if isinstance(event, StepStarted):  # counted here too, for a run stopped midway
                        if event.runs_code:
                            self._code_steps.add(event.step)
                        else:
                            self._code_steps.discard(event.step)
                        self.code_runs = len(self._code_steps)
                    await self.emit(event)
                    if isinstance(event, Done | Failed):
                        self.code_runs = event.code_runs
                        return event
        except TimeoutError:
            raise UserFacingError(
                f"The analysis took longer than its limit of {_duration(deadline)}, so I stopped it. "
                "Try a narrower question or a smaller extract.",
                detail=f"deadline of {deadline:g}s exceeded",
            ) from None
        raise RuntimeError("the analysis ended without Done or Failed")


def _duration(seconds: float) -> str:
    if seconds >= 90:
        minutes = round(seconds / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    whole = round(seconds)
    return f"{whole} second{'s' if whole != 1 else ''}"


def _progress_title(names: list[str], *, follow_up: bool) -> str:
    if len(names) == 1:
        return f"Analysing {names[0]}"
    if names:
        return f"Analysing {len(names)} files"
    return "Working on your follow-up" if follow_up else "Working on your question"
