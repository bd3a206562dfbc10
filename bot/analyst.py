"""The analyst: the one face the core shows a surface's handlers.

Handlers call :meth:`Analyst.submit` (or ``note_shares``, ``react``, ``command``) and
return at once; the work runs in a task the supervisor tracks. A request goes
claim → admission → run: each Slack message is analysed once, every admitted run ends in
a terminal ledger status, and every failure ends as a message in the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, Literal

import anthropic

from bot import ledger
from bot.admission import Admission, Admitted, Duplicate, Gate, HowTo, Refused
from bot.engine import Engine
from bot.feedback import FeedbackStore
from bot.files_api import FilesApi
from bot.history import HomeData, home_data
from bot.intake import FileIntake
from bot.limiter import Limiter
from bot.metrics import Metrics
from bot.quotas import DAY
from bot.requests import AnalysisRequest, Share
from bot.retention import Sweeper, forget_user
from bot.run import Parts, Run
from bot.schema import Rating, RunStatus
from bot.settings import Settings
from bot.store import ConversationStore, Store, parse_iso, utc_iso
from bot.supervisor import Supervisor
from bot.surface import Surface
from bot.usage import WINDOWS, Quota, tally, top_users, usage_text

log = logging.getLogger(__name__)

WEEK = 7 * DAY

Ending = RunStatus | Literal["duplicate", "how-to"]

NO_SUCH_RUN = "I can't find that analysis any more; its record may have been deleted."
"""How a request ended: its run's status, or no run at all."""


class Analyst:
    """Owns the core's parts for one process; serves requests from one surface."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        claude: anthropic.AsyncAnthropic,
        surface: Surface,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics = metrics or Metrics()
        conversations = ConversationStore(store)
        files_api = FilesApi(claude, store, ttl_seconds=settings.file_ttl_hours * 3600, on_upload=metrics.upload_sent)
        limiter = Limiter(settings.max_concurrent)
        self.parts = Parts(
            settings=settings,
            store=store,
            conversations=conversations,
            files_api=files_api,
            intake=FileIntake(settings, surface.files, files_api),
            engine=Engine(claude, settings, pacer=limiter),
            queue=limiter,
            surface=surface,
            metrics=metrics,
        )
        metrics.watch(self.parts.queue)
        self.settings = settings
        self.store = store
        self.surface = surface
        self.gate = Gate(settings, store, conversations, surface)
        self.feedback = FeedbackStore(store)
        self.sweeper = Sweeper(
            settings,
            store,
            conversations,
            files_api,
            on_sweep=lambda report: metrics.swept(
                report.files_deleted + report.files_already_gone, report.conversations_deleted
            ),
        )
        self.supervisor = Supervisor(self.parts, self.gate, self.sweeper)

    async def start(self) -> None:
        """Check the surface's credentials, start the sweeper, resume interrupted runs."""
        await self.surface.connect()
        await self.supervisor.start()

    @property
    def stopping(self) -> bool:
        """True once shutdown began: new requests are deferred to the next start."""
        return self.supervisor.stopping

    def stop_taking_work(self) -> None:
        """From now on, requests are recorded for the next start instead of run."""
        self.supervisor.stopping = True

    # -- what handlers call --------------------------------------------------------------

    def submit(self, request: AnalysisRequest) -> None:
        """Start work on ``request`` in the background and return immediately (while
        shutting down, record it for the next start instead)."""
        if self.stopping:
            self.spawn(self._defer(request), name=f"defer {request.dedupe_key}")
            return
        self.spawn(self.handle(request), name=f"analysis {request.dedupe_key}")

    async def _defer(self, request: AnalysisRequest, *, claimed: bool = False, behind_its_thread: bool = False) -> None:
        """A request that arrived (or was still waiting for its thread) while shutting down:
        checked against the access rules like any other, then admitted for another process or
        the next start to run."""
        if not claimed and not await self.gate.claim(request):
            log.info("%s already handled; ignoring the duplicate", request.dedupe_key)
            return
        if (refused := await self.gate.access(request)) is not None:
            await self.surface.tell_privately(request, refused.message)
            return
        await self.supervisor.admit_for_later(request, behind_its_thread=behind_its_thread)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> None:
        """Run ``coro`` as a tracked background task (drained at shutdown)."""
        self.supervisor.spawn(coro, name=name)

    def note_shares(self, shares: list[Share]) -> None:
        """Remember files people shared (for ``/analyze`` without a link), in the background."""
        if shares:
            self.spawn(self._record_shares(shares), name="record shares")

    async def _record_shares(self, shares: list[Share]) -> None:
        for share in shares:
            await self.parts.conversations.record_share(
                team_id=share.team_id, channel_id=share.channel_id, user_id=share.user_id, slack_file_id=share.file_id
            )

    def react(self, *, channel_id: str, ts: str, user_id: str, reaction: str) -> None:
        """A reaction on one of the bot's replies (handled in the background)."""
        if reaction == "x":
            self.spawn(self.retract(channel_id=channel_id, ts=ts, user_id=user_id), name="reaction")

    async def claim_command(self, trigger_id: str) -> bool:
        """True the first time a command invocation (by Slack's ``trigger_id``) is seen."""
        return await self.store.claim(f"command:{trigger_id}")

    async def recent_shares(self, *, channel_id: str, user_id: str) -> list[str]:
        """The files of the person's latest share in the channel (within ``ANALYST_RECENT_FILES_HOURS``)."""
        since = utc_iso(self.store.clock() - self.settings.recent_files_hours * 3600)
        return await self.parts.conversations.recent_shares(channel_id=channel_id, user_id=user_id, since=since)

    async def command(self, kind: Literal["usage", "forget"], *, user_id: str, team_id: str) -> str:
        """The reply to a command that needs no analysis."""
        if kind == "usage":
            return await self.usage(user_id, team_id)
        return await forget_user(self.store, self.parts.conversations, self.parts.files_api, user_id)

    # -- one request ---------------------------------------------------------------------

    async def handle(self, request: AnalysisRequest) -> Ending:
        """Run ``request`` now; returns how it ended."""
        # The asker's lookup runs alongside the claims, so the first thing the person sees
        # (👀, once admitted) does not wait for the two one after the other.
        external = asyncio.ensure_future(self.gate.is_external(request))
        try:
            claimed = await self.gate.claim(request)
        except BaseException:
            external.cancel()
            raise
        if not claimed:
            external.cancel()
            log.info("%s already handled; ignoring the duplicate", request.dedupe_key)
            return "duplicate"
        async with contextlib.AsyncExitStack() as held:
            try:
                await held.enter_async_context(self.supervisor.thread_lock(request))
            except asyncio.CancelledError:
                external.cancel()
                # Shut down while waiting for the thread (a run at another process holds it):
                # admitted for later, so another process runs it once the thread is free.
                if self.stopping:
                    await self._defer(request, claimed=True, behind_its_thread=True)
                raise
            admission = await self.gate.admit(request, external=external)
            return await self._carry_out(request, admission)

    async def _carry_out(self, request: AnalysisRequest, admission: Admission) -> Ending:
        surface = self.surface
        if isinstance(admission, Duplicate):
            return "duplicate"
        if isinstance(admission, Refused):
            await surface.tell_privately(request, admission.message)
            if admission.by == "quota":
                self.metrics.quota_refused(admission.limit or "quota")
                await surface.react(request, "no_entry_sign")
            return "refused"
        if isinstance(admission, HowTo):
            await surface.tell_thread(request, admission.text)
            await surface.react(request, "wave")
            return "how-to"
        assert isinstance(admission, Admitted)
        await surface.react(request, "eyes")
        run = Run(
            self.parts,
            request,
            admission.run_id,
            question=admission.question.text,
            truncated=admission.question.truncated,
            conversation=admission.conversation,
        )
        return await run.execute()

    async def retract(self, *, channel_id: str, ts: str, user_id: str) -> None:
        """:x: on one of the bot's replies, by the asker or an admin, deletes that run's replies."""
        run_id = await self.store.run_of_post(channel_id, ts)
        if run_id is not None:
            await self.delete_answer(run_id, user_id=user_id)

    async def delete_answer(self, run_id: int, *, user_id: str) -> str | None:
        """Delete run ``run_id``'s replies and files, if ``user_id`` asked for it or is an
        admin; otherwise the words to tell them privately."""
        run, refusal = await self._controlled(run_id, user_id, "delete this answer")
        if run is None:
            return refusal
        channel_id = str(run["channel_id"])
        posts = await self.store.posts_of_run(run_id)
        await self.surface.delete_replies(
            channel_id,
            str(run["thread_ts"]),
            messages={p["ref"] for p in posts if p["kind"] == "message"},
            files={p["ref"] for p in posts if p["kind"] == "file"},
        )
        await self.store.forget_posts(run_id)
        log.info("deleted the replies of run %s at %s's request", run_id, user_id)
        return None

    async def stop(self, run_id: int, *, user_id: str) -> str | None:
        """Stop run ``run_id`` for ``user_id`` (its asker or an admin): its in-flight API call
        is closed and it ends ``cancelled``. Otherwise the words to tell them privately.

        A run another process carries out is stopped by that process: the request is recorded
        with the run, and its owner acts on it at its next lease renewal (bot/supervisor.py)."""
        run, refusal = await self._controlled(run_id, user_id, "stop this analysis")
        if run is None:
            return refusal
        running = self.parts.running.get(run_id)
        if running is not None:
            running.stop(by=user_id)
            return None
        if await ledger.record_stop_request(self.store, run_id, user_id):
            log.info("run %s is not running here; recorded %s's stop request for its process", run_id, user_id)
            return None
        return "That analysis has already finished."

    async def rate(self, run_id: int, *, user_id: str, team_id: str, rating: Rating) -> None:
        """A person's 👍/👎 on run ``run_id``'s answer (the latest one counts)."""
        if await self._run_row(run_id) is not None:
            await self.feedback.rate(run_id=run_id, user_id=user_id, team_id=team_id, rating=rating)

    async def comment(self, run_id: int, *, user_id: str, team_id: str, comment: str) -> None:
        """What a person said was wrong with run ``run_id``'s answer."""
        if comment.strip() and await self._run_row(run_id) is not None:
            await self.feedback.comment(run_id=run_id, user_id=user_id, team_id=team_id, comment=comment.strip())

    async def _run_row(self, run_id: int) -> dict[str, Any] | None:
        return await self.store.find_run(run_id)

    async def _controlled(self, run_id: int, user_id: str, doing: str) -> tuple[dict[str, Any] | None, str]:
        """(the run, "") if ``user_id`` — its asker or an admin — may ``doing`` with it; else
        (None, the words to tell them privately)."""
        run = await self._run_row(run_id)
        if run is None:
            return None, NO_SUCH_RUN
        if user_id != run["user_id"] and user_id not in self.settings.admins:
            log.info("%s may not %s (run %s): neither its asker nor an admin", user_id, doing, run_id)
            return None, f"Only <@{run['user_id']}>, who asked, or an admin can {doing}."
        return run, ""

    async def usage(self, user_id: str, team_id: str) -> str:
        """The person's runs, tokens and cost; for admins, the workspace's top users too."""
        store, settings = self.store, self.settings
        now = store.clock()
        since = utc_iso(now - max(seconds for _, seconds in WINDOWS))
        rows = await store.admitted_runs_of_user_since(user_id, since)
        started = {row["id"]: parse_iso(row["started_at"]) for row in rows}
        tallies = tally(rows, now=now, started=started)
        admin = user_id in settings.admins
        quota = Quota(
            runs_last_hour=tallies[0].runs,
            runs_per_hour=settings.runs_per_hour,
            tokens_last_day=tallies[1].tokens,
            daily_tokens=settings.daily_tokens_per_user,
            exempt=admin,
        )
        top = top_users(await store.admitted_runs_of_team_since(team_id, utc_iso(now - DAY))) if admin else None
        text = usage_text(tallies, quota, top)
        if admin:
            ratings = await self.feedback.ratings_since(utc_iso(now - WEEK), team_id=team_id)
            text += f"\n*Answers rated in this workspace, last 7 days:* {ratings.describe()}"
        return text

    # -- shutting down -------------------------------------------------------------------

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for the running work; True if it all finished within ``timeout``."""
        return await self.supervisor.drain(timeout)

    @property
    def busy(self) -> int:
        """Background tasks running now (analyses among them)."""
        return len(self.supervisor.tasks)

    async def shutdown(self, grace: float) -> None:
        """Finish or interrupt the running work (see :meth:`Supervisor.shutdown`)."""
        await self.supervisor.shutdown(grace)

    async def home(self, user_id: str, team_id: str) -> HomeData:
        """What the person's Home tab shows: quota left, latest analyses, and for admins the
        workspace's week (:mod:`bot.history`), read from the store."""
        return await home_data(self.store, self.settings, user_id=user_id, team_id=team_id)
