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
import re
import tempfile
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import httpx2
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.engine import Engine, InputFile, Job
from bot.errors import UserFacingError, describe_anthropic_error, describe_slack_error
from bot.events import Done, Event, Failed, Usage
from bot.files_api import FilesApi
from bot.filetypes import FileRefused, Kind, mime_type_for, precheck, sniff
from bot.publish_slack import SlackPublisher, SlackThread
from bot.requests import AnalysisRequest, SlackFile
from bot.sanitize import clean_question
from bot.settings import Settings
from bot.slack_files import complete_file, download
from bot.store import Store

log = logging.getLogger(__name__)

HOW_TO = (
    "Hi! I'm a data analyst. Share a data file (CSV, Excel, JSON, Parquet, …) in a message that "
    "mentions me, with your question — for example _“@Analyst what drives churn here?”_ — and I'll "
    "run the analysis and post the findings, charts and code in the thread."
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
        self.slack = slack
        self.claude = claude
        self.http = http
        self.engine = Engine(claude, settings)
        self.files_api = FilesApi(claude, store)
        self.tasks = TaskTracker()
        self.bot_user_id: str | None = None
        self.team_id: str | None = None
        self._user_names: dict[str, str] = {}

    async def start(self) -> None:
        """Check the Slack token and learn who the bot is."""
        identity = await self.slack.auth_test()
        self.bot_user_id = identity.get("user_id")
        self.team_id = identity.get("team_id")
        log.info("connected to Slack team %s as %s", self.team_id, self.bot_user_id)

    def submit(self, request: AnalysisRequest) -> None:
        """Start work on ``request`` in the background and return immediately."""
        self.tasks.spawn(self.handle(request), name=f"analysis {request.dedupe_key}")

    async def drain(self, timeout: float | None = None) -> bool:
        return await self.tasks.drain(timeout)

    # -- one request -----------------------------------------------------------------

    async def handle(self, request: AnalysisRequest) -> None:
        if not await self.store.claim(request.dedupe_key):
            log.info("%s already handled; ignoring the duplicate", request.dedupe_key)
            return
        thread = SlackThread(request.team_id, request.channel_id, request.thread_ts, request.user_id)
        publisher = SlackPublisher(
            self.slack,
            self.files_api,
            thread,
            max_files=self.settings.max_output_files,
            max_file_bytes=self.settings.max_output_file_bytes,
        )
        await publisher.react("eyes", message_ts=request.message_ts)
        question = clean_question(
            request.text,
            bot_user_id=self.bot_user_id,
            user_names=await self._names_in(request.text),
        )
        if not request.files and not question.text:
            await publisher.post(HOW_TO)
            await publisher.react("wave", remove="eyes", message_ts=request.message_ts)
            return
        run_id = await self.store.create_run(
            team_id=request.team_id,
            channel_id=request.channel_id,
            thread_ts=request.thread_ts,
            message_ts=request.message_ts,
            user_id=request.user_id,
            source=request.source,
            question=question.text,
            status="running",
            model=self.settings.model,
            tool_version=self.settings.code_execution.type,
            files_in=len(request.files),
        )
        status, error = "failed", None
        try:
            status, error = await self._analyse(request, question.text, question.truncated, run_id, publisher)
        except FileRefused as refusal:
            status, error = "refused", str(refusal)
            await publisher.post_error(str(refusal))
        except UserFacingError as failure:
            status, error = failure.status, failure.detail
            await publisher.post_error(failure.message)
        except (anthropic.APIError, httpx2.TransportError) as api_error:
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
            await self.store.update_run(run_id, status=status, error=error)
            await publisher.react(
                "white_check_mark" if status == "succeeded" else "warning",
                remove="eyes",
                message_ts=request.message_ts,
            )

    async def _try_post_error(self, publisher: SlackPublisher, message: str) -> None:
        try:
            await publisher.post_error(message)
        except SlackApiError as error:
            log.error("could not tell the thread about a failure: %s", error.response.get("error"))

    async def _analyse(
        self, request: AnalysisRequest, question: str, truncated: bool, run_id: int, publisher: SlackPublisher
    ) -> tuple[str, str | None]:
        accepted, refusals = await self._precheck(request)
        if refusals and not accepted:
            raise FileRefused("\n".join(refusals))
        names = [file.name for file, _ in accepted]
        if len(names) == 1:
            title = f"Analysing {names[0]}"
        else:
            title = f"Analysing {len(names)} files" if names else "Working on your question"
        await publisher.start_progress(title)
        with tempfile.TemporaryDirectory(prefix="analyst-") as workdir:
            inputs = await self._fetch_and_upload(accepted, request, run_id, Path(workdir), refusals)
        if refusals and not inputs:
            raise FileRefused("\n".join(refusals))
        if refusals:
            await publisher.post(":information_source: " + "\n".join(refusals) + "\nI'll analyse the rest.")
        await publisher.prepared()
        job = Job(question=question, files=inputs, question_truncated=truncated)
        result = await publisher.publish(self._ledgered(self.engine.run(job), run_id))
        outcome = result.outcome
        await self.store.update_run(
            run_id,
            code_executions=result.code_runs,
            container_id=outcome.container_id,
            files_out=result.files_posted,
        )
        if isinstance(outcome, Done):
            for output in outcome.files:
                await self.files_api.record_generated(output, team_id=request.team_id, run_id=run_id)
            return "succeeded", None
        return "failed", outcome.detail or outcome.message

    async def _ledgered(self, events: AsyncIterator[Event], run_id: int) -> AsyncIterator[Event]:
        """Pass events through, writing token usage to the ledger as it accrues."""
        total = Usage()
        async for event in events:
            if isinstance(event, Usage):
                total = total + event
                await self.store.update_run(
                    run_id,
                    input_tokens=total.input_tokens,
                    output_tokens=total.output_tokens,
                    cache_read_tokens=total.cache_read_tokens,
                    cache_write_tokens=total.cache_write_tokens,
                )
            elif isinstance(event, Done | Failed):
                await self.store.update_run(run_id, container_id=event.container_id)
            yield event

    async def _precheck(self, request: AnalysisRequest) -> tuple[list[tuple[SlackFile, Kind]], list[str]]:
        """Look every file up and refuse, before any download, those we can't take."""
        accepted: list[tuple[SlackFile, Kind]] = []
        refusals: list[str] = []
        for shared in request.files:
            file = await complete_file(self.slack, shared)
            try:
                accepted.append((file, precheck(file.name, file.filetype, file.size, self.settings.max_file_bytes)))
            except FileRefused as refusal:
                refusals.append(str(refusal))
        return accepted, refusals

    async def _fetch_and_upload(
        self,
        files: list[tuple[SlackFile, Kind]],
        request: AnalysisRequest,
        run_id: int,
        workdir: Path,
        refusals: list[str],
    ) -> list[InputFile]:
        """Download each file, check its content, and upload it (once per content)."""
        inputs: list[InputFile] = []
        for file, kind in files:
            try:
                local = await download(
                    self.http,
                    file,
                    token=self.settings.slack_bot_token or "",
                    max_bytes=self.settings.max_file_bytes,
                    directory=workdir,
                )
                try:
                    sniff(file.name, kind, local.head)
                    file_id = await self.files_api.ensure_uploaded(
                        local.path,
                        sha256=local.sha256,
                        filename=file.name,
                        mime_type=mime_type_for(file.name, kind),
                        size=local.size,
                        team_id=request.team_id,
                        user_id=request.user_id,
                        run_id=run_id,
                    )
                finally:
                    local.path.unlink(missing_ok=True)
            except FileRefused as refusal:
                refusals.append(str(refusal))
                continue
            inputs.append(InputFile(file_id, file.name, kind.name, local.size))
        return inputs

    async def _names_in(self, text: str) -> dict[str, str]:
        """Display names of the people a question mentions (cached), for the prompt."""
        names: dict[str, str] = {}
        for user_id in set(re.findall(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>", text)) - {self.bot_user_id}:
            if user_id not in self._user_names:
                try:
                    info = (await self.slack.users_info(user=user_id)).get("user") or {}
                except SlackApiError as error:
                    log.info("users.info %s failed: %s", user_id, error.response.get("error"))
                    continue
                profile = info.get("profile") or {}
                self._user_names[user_id] = str(
                    profile.get("display_name") or profile.get("real_name") or info.get("name") or ""
                )
            if self._user_names[user_id]:
                names[user_id] = self._user_names[user_id]
        return names
