"""The analyst service: from a request to an answered thread, once, with a ledger entry.

Handlers call :meth:`AnalystService.submit` and return at once; the work runs in a task
the service tracks (so it is neither garbage-collected nor allowed to fail silently).
Each request is claimed by its channel+ts first, so a mention that arrives as two events
is analysed once. Every run the service starts ends in a terminal ledger status, and
every failure ends as a message in the thread.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import Any, Literal

import aiohttp
import anthropic
import httpx2
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import access_refusal
from bot.clients import upload_client
from bot.conversation import replay
from bot.engine import Engine, InputFile, Job
from bot.errors import StreamBroken, UserFacingError, describe_anthropic_error, describe_slack_error
from bot.events import Done, Event, Failed, OutputFile, Usage
from bot.files_api import FilesApi
from bot.filetypes import FileRefused, display_name
from bot.intake import FileIntake, as_input
from bot.people import People
from bot.publish_slack import SlackPublisher, SlackThread
from bot.quotas import Limits, Refusal
from bot.requests import AnalysisRequest
from bot.retention import Sweeper
from bot.sanitize import CleanText, clean_question
from bot.schema import PostKind, RunStatus
from bot.settings import Settings
from bot.slack_payloads import Share
from bot.store import Conversation, ConversationStore, Store, ThreadFile, parse_iso, thread_key, usage_columns
from bot.workqueue import WorkQueue

log = logging.getLogger(__name__)

HOW_TO = (
    "Hi! I'm a data analyst. Share a data file (CSV, Excel, JSON, Parquet, …) in a message that "
    "mentions me, with your question — for example _“@Analyst what drives churn here?”_ — and I'll "
    "run the analysis and post the findings, charts and code in the thread."
)
FOLLOW_UP_HOW_TO = (
    "Ask me a follow-up about this data — for example _“now split that by country”_ — or attach another "
    "file to add it to the conversation."
)


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


class AnalystService:
    """Owns the clients and the store; runs analyses for requests from any surface."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        slack: AsyncWebClient,
        claude: anthropic.AsyncAnthropic,
        http: aiohttp.ClientSession,
    ) -> None:
        self.settings = settings
        self.store = store
        self.conversations = ConversationStore(store)
        self.slack = slack
        self.uploads = upload_client(slack, settings)
        self.claude = claude
        self.http = http
        self.engine = Engine(claude, settings)
        self.files_api = FilesApi(claude, store, ttl_seconds=settings.file_ttl_hours * 3600)
        self.intake = FileIntake(settings, slack, http, self.files_api)
        self.people = People(slack)
        self.tasks = TaskTracker()
        self.queue = WorkQueue(settings.max_concurrent)
        self.sweeper = Sweeper(settings, store, self.conversations, self.files_api)
        self._stop = asyncio.Event()
        self.stopping = False  # set when shutdown begins: new requests are deferred
        self._sweeping: asyncio.Task[None] | None = None
        self.bot_user_id: str | None = None
        self.team_id: str | None = None
        # One analysis at a time per thread: they share a container and a history.
        self._thread_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def start(self) -> None:
        """Check the Slack token, learn who the bot is, start the retention sweeper."""
        identity = await self.slack.auth_test()
        self.bot_user_id = identity.get("user_id")
        self.team_id = identity.get("team_id")
        log.info("connected to Slack team %s as %s", self.team_id, self.bot_user_id)
        self._sweeping = asyncio.get_running_loop().create_task(self.sweeper.run(self._stop), name="retention")
        await self.recover()

    async def stop_background(self) -> None:
        """Stop the sweeper (analyses are drained separately)."""
        self._stop.set()
        if self._sweeping is not None:
            await self._sweeping
            self._sweeping = None

    def submit(self, request: AnalysisRequest) -> None:
        """Start work on ``request`` in the background and return immediately (while
        shutting down, record it for the next start instead)."""
        if self.stopping:
            self.tasks.spawn(self.defer(request), name=f"defer {request.dedupe_key}")
            return
        self.tasks.spawn(self.handle(request), name=f"analysis {request.dedupe_key}")

    def note_shares(self, shares: list[Share]) -> None:
        """Remember files people shared (for ``/analyze`` without a link), in the background."""
        if shares:
            self.tasks.spawn(self._record_shares(shares), name="record shares")

    async def _record_shares(self, shares: list[Share]) -> None:
        for share in shares:
            await self.conversations.record_share(
                team_id=share.team_id, channel_id=share.channel_id, user_id=share.user_id, slack_file_id=share.file_id
            )

    async def on_reaction(self, *, channel_id: str, ts: str, user_id: str, reaction: str) -> None:
        """:x: on one of the bot's replies, by the asker or an admin, deletes that run's replies."""
        if reaction != "x":
            return
        run_id = await self.store.run_of_post(channel_id, ts)
        if run_id is None:
            return
        run = await self.store.get_run(run_id)
        if user_id != run["user_id"] and user_id not in self.settings.admins:
            log.info("%s reacted :x: on run %s's reply but is neither its asker nor an admin", user_id, run_id)
            return
        posts = await self.store.posts_of_run(run_id)
        files = {p["ref"] for p in posts if p["kind"] == "file"}
        messages = {p["ref"] for p in posts if p["kind"] == "message"} | await self._messages_sharing(
            channel_id, str(run["thread_ts"]), files
        )
        for file_id in files:
            await self._delete(self.slack.files_delete(file=file_id), f"file {file_id}")
        for ts_ in messages:
            await self._delete(self.slack.chat_delete(channel=channel_id, ts=ts_), f"message {ts_}")
        await self.store.forget_posts(run_id)
        log.info("deleted the replies of run %s at %s's request", run_id, user_id)

    async def _messages_sharing(self, channel_id: str, thread_ts: str, files: set[str]) -> set[str]:
        """The bot's messages in the thread that carry any of ``files`` (Slack posts them for
        files_upload_v2; their ts isn't in the upload's answer)."""
        if not files:
            return set()
        try:
            replies = await self.slack.conversations_replies(channel=channel_id, ts=thread_ts, limit=200)
        except SlackApiError as error:
            log.warning("could not read the thread to find file messages: %s", error.response.get("error"))
            return set()
        return {
            str(m["ts"])
            for m in replies.get("messages") or ()
            if m.get("user") == self.bot_user_id and files & {f.get("id") for f in m.get("files") or ()}
        }

    @staticmethod
    async def _delete(call: Awaitable[Any], what: str) -> None:
        try:
            await call
        except SlackApiError as error:
            log.warning("could not delete %s: %s", what, error.response.get("error"))

    async def drain(self, timeout: float | None = None) -> bool:
        return await self.tasks.drain(timeout)

    def _thread_lock(self, key: str) -> asyncio.Lock:
        lock = self._thread_locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._thread_locks[key] = lock
        return lock

    async def is_conversation(self, channel_id: str, thread_ts: str) -> bool:
        """Whether the bot has answered in this thread before."""
        return await self.conversations.get(thread_key(channel_id, thread_ts)) is not None

    # -- one request -----------------------------------------------------------------

    async def handle(self, request: AnalysisRequest) -> str:
        """Run ``request``; returns how it ended (a run status, or "duplicate"/"how-to")."""
        event_seen = request.event_id is not None and not await self.store.claim(f"event:{request.event_id}")
        if event_seen or not await self.store.claim(request.dedupe_key):
            log.info("%s already handled; ignoring the duplicate", request.dedupe_key)
            return "duplicate"
        key = thread_key(request.channel_id, request.thread_ts)
        async with self._thread_lock(key):
            return await self._handle(request, key)

    def publisher_for(self, request: AnalysisRequest, run_id: int | None = None) -> SlackPublisher:
        async def remember(kind: PostKind, ref: str) -> None:
            if run_id is not None:
                await self.store.record_post(channel_id=request.channel_id, ref=ref, kind=kind, run_id=run_id)

        return SlackPublisher(
            self.slack,
            self.files_api,
            SlackThread(request.team_id, request.channel_id, request.thread_ts, request.user_id, request.user_team),
            max_files=self.settings.max_output_files,
            max_file_bytes=self.settings.max_output_file_bytes,
            assistant=request.source == "assistant",
            on_post=remember,
            uploads=self.uploads,
        )

    async def _handle(self, request: AnalysisRequest, key: str) -> str:
        refusal = access_refusal(
            self.settings,
            user_id=request.user_id,
            channel_id=request.channel_id,
            external=await self.people.is_external(
                request.user_id, team_id=self.team_id or request.team_id, user_team=request.user_team
            ),
        )
        if refusal is not None:
            log.info("refused %s from %s in %s: %s", request.dedupe_key, request.user_id, request.channel_id, refusal)
            await self.tell_privately(request, f":no_entry_sign: {refusal}")
            return "refused"
        publisher = self.publisher_for(request)
        await publisher.react("eyes", message_ts=request.message_ts)
        question = await self._question(request)
        conversation = await self.conversations.get(key)
        if not request.files and not question.text:
            await publisher.post(HOW_TO if conversation is None else FOLLOW_UP_HOW_TO)
            await publisher.react("wave", remove="eyes", message_ts=request.message_ts)
            return "how-to"
        run_id, over_quota = await self._admit(request, question.text)
        if over_quota is not None:
            log.info("run %s refused: %s", run_id, over_quota.limit)
            await self.tell_privately(request, f":hourglass: {over_quota.message}")
            await publisher.react("no_entry_sign", remove="eyes", message_ts=request.message_ts)
            return "refused"
        if question.truncated:
            await self._try_post(
                publisher,
                f":scissors: Your question was longer than {self.settings.max_question_chars:,} characters; "
                "I used the first part.",
            )
        return await self._execute(request, key, run_id, question.text, question.truncated, conversation)

    async def _question(self, request: AnalysisRequest) -> CleanText:
        """The request's text as plain question text (mentions of people by name)."""
        return clean_question(
            request.text,
            bot_user_id=self.bot_user_id,
            user_names=await self.people.names_in(request.text, skip=self.bot_user_id),
            max_chars=self.settings.max_question_chars,
        )

    async def _admit(self, request: AnalysisRequest, question: str) -> tuple[int, Refusal | None]:
        """Record the run (with its request, for resuming) if the quotas allow it."""
        return await self.store.admit(
            limits=self.limits,
            exempt=request.user_id in self.settings.admins,
            team_id=request.team_id,
            channel_id=request.channel_id,
            thread_ts=request.thread_ts,
            message_ts=request.message_ts,
            user_id=request.user_id,
            source=request.source,
            question=question,
            model=self.settings.model,
            tool_version=self.settings.code_execution.type,
            files_in=len(request.files),
            request=request.to_json(),
        )

    async def _execute(
        self,
        request: AnalysisRequest,
        key: str,
        run_id: int,
        question: str,
        truncated: bool,
        conversation: Conversation | None,
    ) -> str:
        """Run an admitted analysis to a terminal ledger status (or, when the process is
        shutting down, leave it queued as interrupted for the next start to resume)."""
        publisher = self.publisher_for(request, run_id)
        # "interrupted" is this process's outcome only: the ledger keeps such a run queued.
        status: RunStatus | Literal["interrupted"] = "failed"
        error: str | None = None
        try:

            async def queued(position: int) -> None:
                await self._try_post(
                    publisher,
                    f":hourglass_flowing_sand: I'm busy with other analyses — yours is number {position} in the "
                    "queue and will start as soon as a slot frees up.",
                )

            async with self.queue.slot(on_wait=queued):
                await self.store.update_run(run_id, status="running")
                status, error = await self._analyse(request, key, conversation, question, truncated, run_id, publisher)
        except asyncio.CancelledError:
            status = "interrupted"
            await self.store.update_run(run_id, status="queued", error="interrupted by shutdown; resumes on restart")
            await self._try_post(
                publisher, ":arrows_counterclockwise: I'm restarting; I'll pick this up again in a moment."
            )
            raise
        except FileRefused as refusal:
            status, error = "refused", str(refusal)
            await publisher.post_error(str(refusal))
        except UserFacingError as failure:
            status, error = failure.status, failure.detail
            await publisher.post_error(failure.message)
        except (anthropic.APIError, httpx2.TransportError, StreamBroken) as api_error:
            problem = describe_anthropic_error(api_error)
            status, error = "failed", problem.detail
            await publisher.post_error(problem.message)
        except (aiohttp.ClientError, TimeoutError) as network_error:
            status, error = "failed", f"download: {network_error!r}"
            await publisher.post_error("I couldn't download the file from Slack (network error). Try again.")
        except SlackApiError as slack_error:
            code = str(slack_error.response.get("error", "unknown"))
            status, error = "failed", f"slack: {code}"
            await self._try_post_error(publisher, describe_slack_error(code).message)
        except Exception as unexpected:
            log.exception("run %s failed unexpectedly", run_id)
            status, error = "failed", f"internal: {unexpected!r}"
            await self._try_post_error(
                publisher,
                f"Something went wrong on my side (run #{run_id}). Try again; if it keeps happening, "
                "tell whoever runs this bot.",
            )
        finally:
            if status != "interrupted":
                await self.store.update_run(run_id, status=status, error=error)
                await publisher.react(
                    "white_check_mark" if status == "succeeded" else "warning",
                    remove="eyes",
                    message_ts=request.message_ts,
                )
        return status

    # -- after a restart ---------------------------------------------------------------

    async def recover(self) -> None:
        """Runs a previous process left queued or running: resumed, or failed if too old.

        Either way the thread hears about it, and the ledger agrees."""
        now = self.store.clock()
        for run in await self.store.unfinished_runs():
            request = AnalysisRequest.from_json(run["request"]) if run.get("request") else None
            age = now - parse_iso(run["started_at"])
            if request is not None and age <= self.settings.resume_max_age_s:
                log.info("resuming run %s (left %s by a previous process)", run["id"], run["status"])
                await self.store.update_run(run["id"], status="queued", error=None)
                self.tasks.spawn(self.resume(run["id"], request), name=f"resume {run['id']}")
                continue
            log.info("run %s was interrupted %.0fs ago; marking it failed", run["id"], age)
            await self.store.update_run(run["id"], status="failed", error="interrupted by a restart; too old to resume")
            if request is not None:
                await self.tell_thread(
                    request,
                    ":warning: I was restarted before I could finish this analysis, and it's too late to pick it up "
                    "again. Please ask again.",
                )

    async def resume(self, run_id: int, request: AnalysisRequest) -> str:
        """Run an interrupted analysis again from the start, with the same files."""
        key = thread_key(request.channel_id, request.thread_ts)
        async with self._thread_lock(key):
            await self.tell_thread(
                request, ":arrows_counterclockwise: I was restarted while working on this — starting it again."
            )
            question = await self._question(request)
            conversation = await self.conversations.get(key)
            return await self._execute(request, key, run_id, question.text, question.truncated, conversation)

    async def defer(self, request: AnalysisRequest) -> None:
        """A request that arrived while shutting down: admitted and left queued for the next start."""
        if not await self.store.claim(request.dedupe_key):
            return
        _, refusal = await self._admit(request, request.text[: self.settings.max_question_chars])
        if refusal is not None:
            await self.tell_privately(request, f":hourglass: {refusal.message}")
        else:
            await self.tell_thread(request, ":hourglass: I'm restarting; I'll start on this in a moment.")

    async def tell_thread(self, request: AnalysisRequest, text: str) -> None:
        """A message in the request's thread (the bot's own words: never raises)."""
        try:
            await self.slack.chat_postMessage(
                channel=request.channel_id,
                thread_ts=request.thread_ts,
                text=text,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as error:
            log.error("could not post to %s: %s", request.thread_ts, error.response.get("error"))

    @property
    def limits(self) -> Limits:
        settings = self.settings
        return Limits(
            runs_per_hour=settings.runs_per_hour,
            max_concurrent_per_user=settings.max_concurrent_per_user,
            daily_tokens_per_user=settings.daily_tokens_per_user,
            daily_tokens_per_workspace=settings.daily_tokens_per_workspace,
        )

    async def tell_privately(self, request: AnalysisRequest, text: str) -> None:
        """A message only the asker sees (in the thread when there is one); a thread reply
        where Slack can't show it ephemerally."""
        thread_ts = request.thread_ts if request.thread_ts != request.message_ts else None
        try:
            await self.slack.chat_postEphemeral(
                channel=request.channel_id, user=request.user_id, text=text, thread_ts=thread_ts
            )
            return
        except SlackApiError as error:
            log.info("ephemeral message not possible (%s); replying in the thread", error.response.get("error"))
        await self.tell_thread(request, text)

    async def _try_post(self, publisher: SlackPublisher, message: str) -> None:
        try:
            await publisher.post(message)
        except SlackApiError as error:
            log.warning("could not post to the thread: %s", error.response.get("error"))

    async def _try_post_error(self, publisher: SlackPublisher, message: str) -> None:
        try:
            await publisher.post_error(message)
        except SlackApiError as error:
            log.error("could not tell the thread about a failure: %s", error.response.get("error"))

    async def _analyse(
        self,
        request: AnalysisRequest,
        key: str,
        conversation: Conversation | None,
        question: str,
        truncated: bool,
        run_id: int,
        publisher: SlackPublisher,
    ) -> tuple[RunStatus, str | None]:
        accepted, refusals = await self.intake.precheck(
            request.files, asker=request.user_id, conversation_id=request.channel_id
        )
        if refusals and not accepted:
            raise FileRefused("\n".join(refusals))
        await publisher.start_progress(
            _progress_title([f.name for f, _ in accepted], follow_up=conversation is not None)
        )
        new_files = await self.intake.fetch(
            accepted, team_id=request.team_id, user_id=request.user_id, run_id=run_id, refusals=refusals
        )
        if refusals and not new_files and not (conversation and conversation.files):
            raise FileRefused("\n".join(refusals))
        if refusals:
            await publisher.post(":information_source: " + "\n".join(refusals) + "\nI'll analyse the rest.")
        await self.conversations.ensure(
            key,
            team_id=request.team_id,
            channel_id=request.channel_id,
            thread_ts=request.thread_ts,
            user_id=request.user_id,
            source=request.source,
        )
        for file in new_files:
            await self.conversations.add_file(key, file)
        left_out: list[str] = []  # thread files Slack no longer lets the bot fetch again
        job = await self._job(request, conversation, new_files, question, truncated, run_id, left_out)
        await publisher.prepared()

        async def retained(events: AsyncIterator[Event]) -> AsyncIterator[Event]:
            """Every generated file goes into the retention ledger as it appears, before any
            attempt to post it (posted or not, the sweep deletes it at Anthropic later)."""
            async for event in events:
                if isinstance(event, OutputFile):
                    await self.files_api.record_generated(event, team_id=request.team_id, run_id=run_id)
                yield event

        try:
            async with asyncio.timeout(self.settings.run_deadline_s):
                result = await publisher.publish(retained(self._ledgered(self.engine.run(job), run_id)))
        except TimeoutError:
            raise UserFacingError(
                f"The analysis took longer than its limit of {_duration(self.settings.run_deadline_s)}, so I stopped "
                "it. Try a narrower question or a smaller extract.",
                detail=f"deadline of {self.settings.run_deadline_s:g}s exceeded",
            ) from None
        outcome = result.outcome
        await self.store.update_run(
            run_id,
            code_executions=result.code_runs,
            container_id=outcome.container_id,
            files_out=result.files_posted,
        )
        if left_out:
            names = ", ".join(f"*{display_name(name)}*" for name in dict.fromkeys(left_out))
            await self._try_post(
                publisher,
                f":information_source: I couldn't bring {names} back into this analysis: Slack no longer has it "
                "here (deleted, or no longer shared in this conversation). Share it again to include it.",
            )
        if isinstance(outcome, Failed):
            return "failed", outcome.detail or outcome.message
        await self.conversations.record_exchange(
            key,
            run_id=run_id,
            model=self.settings.model,
            user_content=outcome.user_content,
            assistant_content=outcome.assistant_content,
            container_id=outcome.container_id,
            container_expires_at=outcome.container_expires_at,
        )
        return "succeeded", None

    async def _job(
        self,
        request: AnalysisRequest,
        conversation: Conversation | None,
        new_files: list[ThreadFile],
        question: str,
        truncated: bool,
        run_id: int,
        left_out: list[str],
    ) -> Job:
        """The engine's job: the question in its conversation, with the right container.

        Thread files that can't be brought back when a fresh container needs them are named
        in ``left_out`` (the caller tells the thread)."""
        earlier = conversation.files if conversation else ()
        # The stored container is always tried: the expires_at a response reports is a short
        # rolling value, while a checkpointed container stays restorable for 30 days. When the
        # API refuses it, the engine starts a fresh one (and calls ``reattach`` for the files).
        container_id = conversation.container_id if conversation else None
        key = thread_key(request.channel_id, request.thread_ts)
        owner = (conversation.user_id if conversation else None) or request.user_id

        async def available(files: tuple[ThreadFile, ...]) -> tuple[ThreadFile, ...]:
            """``files``, each uploaded again from Slack if the Files API lost it."""
            kept = await self.intake.still_available(
                files,
                team_id=request.team_id,
                user_id=request.user_id,
                run_id=run_id,
                conversation_id=request.channel_id,
                owner=owner,
            )
            for file in kept:
                await self.conversations.add_file(key, file)
            still_here = {file.sha256 for file in kept}
            left_out.extend(file.filename for file in files if file.sha256 not in still_here)
            return tuple(kept)

        async def reattach() -> list[InputFile]:
            unique = {f.sha256: f for f in (*earlier, *new_files)}
            return [as_input(f) for f in await available(tuple(unique.values()))]

        if container_id is None and earlier:
            earlier = await available(earlier)
        known = {f.sha256 for f in earlier}
        fresh = [f for f in new_files if f.sha256 not in known]
        history = replay(
            conversation.turns if conversation else (),
            model=self.settings.model,
            max_messages=self.settings.history_max_messages,
            max_tokens=self.settings.history_max_tokens,
        )
        if history.dropped_turns or history.shortened_turns:
            log.info(
                "history of %s: %d exchanges dropped, %d answers shortened",
                request.thread_ts,
                history.dropped_turns,
                history.shortened_turns,
            )
        return Job(
            question=question,
            files=[as_input(f) for f in fresh],
            thread_files=[as_input(f) for f in (*earlier, *fresh)],
            history=history.messages,
            container_id=container_id,
            container_reset=bool(history.messages) and container_id is None,
            question_truncated=truncated,
            asked_by=await self.people.name(request.user_id) or request.user_id,
            other_participant=request.user_id != owner,
            reattach=reattach,
        )

    async def _ledgered(self, events: AsyncIterator[Event], run_id: int) -> AsyncIterator[Event]:
        """Pass events through, writing token usage to the ledger as it accrues."""
        total = Usage()
        async for event in events:
            if isinstance(event, Usage):
                total = total + event
                await self.store.update_run(run_id, **usage_columns(total))
            elif isinstance(event, Done | Failed):
                await self.store.update_run(run_id, container_id=event.container_id)
            yield event


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
