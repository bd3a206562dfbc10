"""The ledger: the one writer of the ``runs`` table (and of what each run posted).

A run's row is born here — admitted against the quotas (:func:`admit`), or opened for a
terminal analysis (:func:`open_run`) — and from then on it follows the run's progress
events: the :class:`Ledger` is a subscriber of the run's stream, for Slack and ``ask``
alike. Start-up recovery settles rows a previous process left behind (:func:`requeue`,
:func:`give_up`). A run's lease — which process carries it out (bot/leases.py) — is kept here too:
set at admission, renewed (:func:`renew`), taken over (:func:`take_over`), handed back at
shutdown (:func:`hand_back`); and a Stop pressed at another process is recorded (:func:`record_stop_request`).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace

from bot.files_api import FilesApi
from bot.progress import (
    Done,
    Failed,
    Finished,
    Interrupted,
    OutputFile,
    RunEvent,
    Started,
    Usage,
)
from bot.quotas import Limits, Refusal
from bot.requests import AnalysisRequest
from bot.schema import PostKind
from bot.settings import Settings
from bot.store import Store, usage_columns
from bot.surface import PostLog

log = logging.getLogger(__name__)

INTERRUPTED_BY_SHUTDOWN = "interrupted by shutdown; resumes on restart"
TOO_OLD_TO_RESUME = "interrupted by a restart; too old to resume"


def limits_of(settings: Settings) -> Limits:
    return Limits(
        runs_per_hour=settings.runs_per_hour,
        max_concurrent_per_user=settings.max_concurrent_per_user,
        daily_tokens_per_user=settings.daily_tokens_per_user,
        daily_tokens_per_workspace=settings.daily_tokens_per_workspace,
    )


async def admit(
    store: Store, settings: Settings, request: AnalysisRequest, question: str, *, behind_its_thread: bool = False
) -> tuple[int, Refusal | None]:
    """A new run for ``request``: ``queued`` if the quotas allow it, else ``refused`` (one
    atomic step in the store). The request is kept with it, for resuming after a restart.

    ``behind_its_thread``: a follow-up that was waiting for its thread's running analysis when
    this process shut down. It runs only after that one (the thread lock), never beside it, so
    the per-person concurrency limit doesn't refuse it; the other quotas do."""
    limits = limits_of(settings)
    if behind_its_thread:
        limits = replace(limits, max_concurrent_per_user=sys.maxsize)
    return await store.admit(
        limits=limits,
        exempt=request.user_id in settings.admins,
        lease_s=settings.lease_s,
        team_id=request.team_id,
        channel_id=request.channel_id,
        thread_ts=request.thread_ts,
        message_ts=request.message_ts,
        user_id=request.user_id,
        source=request.source,
        question=question,
        model=settings.model,
        tool_version=settings.code_execution.type,
        files_in=len(request.files),
        request=request.to_json(),
    )


async def open_run(store: Store, settings: Settings, *, question: str, files_in: int) -> int:
    """A run of ``slack-analyst ask`` (no quotas: the operator runs it), already running."""
    return await store.create_run(
        source="cli",
        question=question,
        status="running",
        model=settings.model,
        tool_version=settings.code_execution.type,
        files_in=files_in,
    )


async def requeue(store: Store, run_id: int) -> None:
    """A run a previous process left unfinished goes back in the queue, to be resumed."""
    await store.update_run(run_id, status="queued", error=None)


async def renew(store: Store, settings: Settings) -> int:
    """This process still carries out its runs (and holds its threads): their leases are extended."""
    return await store.renew_leases(settings.lease_s)


async def take_over(store: Store, settings: Settings, run_id: int, *, gone_owner: str | None) -> bool:
    """Make a run whose lease expired (or that is unowned, or whose owner is gone) this process's;
    False if another process took it first."""
    return await store.take_over_run(run_id, lease_s=settings.lease_s, gone_owner=gone_owner)


async def hand_back(store: Store) -> int:
    """At shutdown: this process's unfinished runs are left unowned, for another process to take at once."""
    return await store.hand_back_runs()


async def record_stop_request(store: Store, run_id: int, by: str) -> bool:
    """A Stop pressed at a process not running the run: recorded for the run's owner to act on."""
    return await store.request_stop(run_id, by)


async def refuse(store: Store, run_id: int, reason: str) -> None:
    """A run the access rules no longer let in (checked again before resuming it)."""
    await store.update_run(run_id, status="refused", error=f"access: {reason}")


async def give_up(store: Store, run_id: int) -> None:
    """A run left unfinished too long ago to resume."""
    await store.update_run(run_id, status="failed", error=TOO_OLD_TO_RESUME)


class Ledger:
    """Follows one run's events into its ``runs`` row, its generated files into the
    retention ledger, and its posts into ``posts`` (for deleting them on request)."""

    def __init__(self, store: Store, files_api: FilesApi, run_id: int, *, team_id: str | None = None) -> None:
        self.store = store
        self.files_api = files_api
        self.run_id = run_id
        self.team_id = team_id
        self.usage = Usage()

    async def on(self, event: RunEvent) -> None:
        store, run_id = self.store, self.run_id
        if isinstance(event, Started):
            await store.update_run(run_id, status="running")
        elif isinstance(event, Usage):
            self.usage = self.usage + event
            await store.update_run(run_id, **usage_columns(self.usage))
        elif isinstance(event, OutputFile):
            # Every generated file is recorded as it appears, before any attempt to post it:
            # posted or not, the retention sweep deletes it at Anthropic later.
            await self.files_api.record_generated(event, team_id=self.team_id, run_id=run_id)
        elif isinstance(event, Done | Failed):
            if event.container_id is not None:
                await store.update_run(run_id, container_id=event.container_id)
        elif isinstance(event, Finished):
            await store.update_run(
                run_id,
                status=event.status,
                error=event.error,
                code_executions=event.code_runs,
                files_out=event.files_posted,
            )
        elif isinstance(event, Interrupted):
            await store.update_run(run_id, status="queued", error=INTERRUPTED_BY_SHUTDOWN)

    def posts_in(self, channel_id: str) -> PostLog:
        """The :data:`bot.surface.PostLog` of this run's posts in ``channel_id``."""

        async def posted(kind: PostKind, ref: str) -> None:
            await self.store.record_post(channel_id=channel_id, ref=ref, kind=kind, run_id=self.run_id)

        return posted
