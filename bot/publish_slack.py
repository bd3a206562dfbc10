"""The Slack publisher: turns an analysis's progress events into what the thread shows.

While the analysis runs, one streamed message (``chat.startStream``) shows the plan and
each sandbox step as a task; if streaming isn't available it falls back to one message
updated in place. Slack closes a stream a few minutes after it starts while an analysis
may run for twenty: the same message then carries on through ``chat.update``. When it's
done the thread gets the interpretation (split across messages when long), the files the
analysis made (charts first) and the code it ran. A file that can't be fetched or posted
costs only that file: the thread says which, and why. Everything Claude wrote is
neutralised before it is posted; link unfurling is off.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import anthropic
import httpx2
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import describe_anthropic_error
from bot.events import CodeWritten, Done, Event, Failed, OutputFile, Retrying, StepOutput, StepStarted
from bot.files_api import FilesApi
from bot.filetypes import describe_size, safe_filename
from bot.render import answer_messages, code_listing, title_from_filename
from bot.sanitize import neutralize
from bot.schema import PostKind

log = logging.getLogger(__name__)

# docs: reference/methods/chat.appendStream, task_update chunks — ``details`` and ``output``
# are at most 256 characters each.
TASK_OUTPUT_LIMIT = 256
# A progress message edited in place stays short (Slack truncates long texts in threads).
PROGRESS_TEXT_LIMIT = 3000
# Where the stream stopped taking appends (it outlived Slack's stream lifetime).
STREAM_GONE = "message_not_in_streaming_state"

# A generated file that can't be fetched from Anthropic or posted to Slack costs only that
# file: the transport errors of each side, their API errors, and timeouts (an OSError).
FILE_POST_ERRORS: tuple[type[BaseException], ...] = (
    anthropic.APIError,
    httpx2.HTTPError,
    SlackApiError,
    SlackRequestError,
    aiohttp.ClientError,
    OSError,
)
# A progress update may fail in any of Slack's ways; the analysis goes on regardless.
PROGRESS_ERRORS: tuple[type[BaseException], ...] = (SlackApiError, SlackRequestError, aiohttp.ClientError, OSError)


@dataclass(frozen=True)
class SlackThread:
    """Where replies go, and who asked."""

    team_id: str
    channel_id: str
    thread_ts: str
    user_id: str
    user_team: str | None = None  # the asker's own workspace, when it isn't ``team_id`` (Slack Connect)

    @property
    def recipient_team_id(self) -> str:
        """The team of the person a stream is for.

        docs: reference/methods/chat.startStream — recipient_team_id is "the encoded ID of the
        team the user receiving the streaming text belongs to": their own team, which for
        someone in from another organisation is not the workspace's.
        """
        return self.user_team or self.team_id


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _snippet(text: str, limit: int = TASK_OUTPUT_LIMIT) -> str:
    return _clip(neutralize(text.strip()), limit)


def error_code(error: BaseException) -> str:
    """Slack's error code for a failed call, else a short name for the failure."""
    if isinstance(error, SlackApiError):
        return str(error.response.get("error") or "unknown")
    return type(error).__name__


def describe_file_failure(error: BaseException) -> str:
    """Why a generated file didn't reach the thread, in words for the person who asked."""
    if isinstance(error, anthropic.APIError | httpx2.HTTPError):
        return "fetching it from Claude's sandbox failed"
    if isinstance(error, SlackApiError):
        return f"Slack refused the upload (`{error_code(error)}`)"
    if isinstance(error, TimeoutError):
        return "the upload to Slack timed out"
    return "the upload to Slack failed"


def render_progress(
    title: str, tasks: list[tuple[str, str]], footer: str = "", *, limit: int = PROGRESS_TEXT_LIMIT
) -> str:
    """A progress message as text: the title, one line per task, then ``footer``.

    Within ``limit`` characters: the oldest tasks give way to a line counting them.
    """
    icons = {"in_progress": ":hourglass_flowing_sand:", "complete": ":white_check_mark:", "error": ":x:"}
    lines = [f"{icons.get(status, '•')} {task}" for task, status in tasks]
    head, tail = [f"*{title}*"], [footer] if footer else []
    hidden = 0
    while lines and len("\n".join([*head, *lines, *tail])) > limit - 40:
        lines.pop(0)
        hidden += 1
    if hidden:
        lines.insert(0, f"… {hidden} earlier step{'s' if hidden != 1 else ''}")
    return _clip("\n".join([*head, *lines, *tail]), limit)


def step_summary(output: StepOutput) -> tuple[str, str]:
    """(task status, short output) for a finished step."""
    if output.error_code:
        return "error", output.error_code.replace("_", " ")
    if output.return_code not in (None, 0):
        last = (output.stderr.strip().splitlines() or [f"exit status {output.return_code}"])[-1]
        return "error", _snippet(last)
    return "complete", _snippet(output.stdout.strip().splitlines()[0]) if output.stdout.strip() else ""


class Progress(Protocol):
    async def update(self, task_id: str, title: str, status: str, output: str = "") -> None: ...

    async def finish(self, summary: str, ok: bool) -> None: ...


class StreamProgress:
    """Progress as a streamed message: a plan with one task per sandbox step."""

    def __init__(self, stream: AsyncChatStream) -> None:
        self.stream = stream

    @classmethod
    async def start(cls, client: AsyncWebClient, thread: SlackThread, title: str) -> StreamProgress:
        stream = await client.chat_stream(
            channel=thread.channel_id,
            thread_ts=thread.thread_ts,
            recipient_team_id=thread.recipient_team_id,
            recipient_user_id=thread.user_id,
            task_display_mode="plan",
            buffer_size=1,
        )
        await stream.append(
            chunks=[
                {"type": "plan_update", "title": title},
                {
                    "type": "task_update",
                    "id": "prepare",
                    "title": "Reading your data",
                    "status": "in_progress",
                },
            ]
        )
        return cls(stream)

    @property
    def ts(self) -> str | None:
        return self.stream.ts

    async def update(self, task_id: str, title: str, status: str, output: str = "") -> None:
        chunk: dict[str, Any] = {"type": "task_update", "id": task_id, "title": title, "status": status}
        if output:
            chunk["output"] = _clip(output, TASK_OUTPUT_LIMIT)
        await self.stream.append(chunks=[chunk])

    async def finish(self, summary: str, ok: bool) -> None:
        await self.stream.stop(markdown_text=summary)


class MessageProgress:
    """Fallback progress: one ordinary message edited in place."""

    def __init__(self, client: AsyncWebClient, thread: SlackThread, title: str, ts: str) -> None:
        self.client = client
        self.thread = thread
        self.title = title
        self.ts = ts
        self.tasks: dict[str, tuple[str, str]] = {}

    @classmethod
    async def start(cls, client: AsyncWebClient, thread: SlackThread, title: str) -> MessageProgress:
        response = await client.chat_postMessage(
            channel=thread.channel_id,
            thread_ts=thread.thread_ts,
            text=f":hourglass_flowing_sand: {title}…",
            unfurl_links=False,
            unfurl_media=False,
        )
        return cls(client, thread, title, str(response["ts"]))

    def _render(self, footer: str = "") -> str:
        return render_progress(self.title, list(self.tasks.values()), footer)

    async def update(self, task_id: str, title: str, status: str, output: str = "") -> None:
        self.tasks[task_id] = (title, status)
        await self.refresh()

    async def refresh(self) -> None:
        await self.client.chat_update(channel=self.thread.channel_id, ts=self.ts, text=self._render())

    async def finish(self, summary: str, ok: bool) -> None:
        await self.client.chat_update(channel=self.thread.channel_id, ts=self.ts, text=self._render(summary))


class _NoProgress:
    """Used once progress updates have failed: the answer matters more than the log."""

    async def update(self, task_id: str, title: str, status: str, output: str = "") -> None:
        return None

    async def finish(self, summary: str, ok: bool) -> None:
        return None


@dataclass
class PublishResult:
    outcome: Done | Failed
    files_posted: int = 0
    files_failed: list[str] = field(default_factory=list)
    code_runs: int = 0


class SlackPublisher:
    """Consumes one analysis's events and shows them in one Slack thread."""

    def __init__(
        self,
        client: AsyncWebClient,
        files_api: FilesApi,
        thread: SlackThread,
        *,
        max_files: int,
        max_file_bytes: int,
        workdir: Path | None = None,
        assistant: bool = False,
        on_post: Callable[[PostKind, str], Awaitable[None]] | None = None,
        uploads: AsyncWebClient | None = None,
    ) -> None:
        self.client = client
        # files_upload_v2 goes through a client whose timeout fits the largest file.
        self.uploads = uploads or client
        self.assistant = assistant
        # Told about every message ("message", ts) and file ("file", id) this publisher posts.
        self.on_post = on_post
        self.files_api = files_api
        self.thread = thread
        self.max_files = max_files
        self.max_file_bytes = max_file_bytes
        self.workdir = workdir
        self.progress: Progress = _NoProgress()
        self.open_tasks: dict[str, str] = {}  # task id → title, for tasks still in progress
        self.task_states: dict[str, tuple[str, str]] = {}  # task id → (title, status), every task so far
        self.progress_title = ""
        self._replaced_progress = False
        self.code: list[tuple[int, str, str]] = []
        self.titles: dict[int, str] = {}
        self.runs: set[int] = set()  # steps that executed code

    # -- posting ---------------------------------------------------------------------

    async def post(self, text: str, **kwargs: Any) -> str:
        response = await self.client.chat_postMessage(
            channel=self.thread.channel_id,
            thread_ts=self.thread.thread_ts,
            text=text,
            unfurl_links=False,
            unfurl_media=False,
            **kwargs,
        )
        ts = str(response["ts"])
        await self._posted("message", ts)
        return ts

    async def _posted(self, kind: PostKind, identifier: str | None) -> None:
        if identifier and self.on_post is not None:
            await self.on_post(kind, identifier)

    async def _upload(self, **kwargs: Any) -> None:
        """files_upload_v2 into the thread, remembering the files it created."""
        response = await self.uploads.files_upload_v2(
            channel=self.thread.channel_id, thread_ts=self.thread.thread_ts, **kwargs
        )
        for file in response.get("files") or ():
            await self._posted("file", file.get("id"))

    async def post_error(self, message: str) -> None:
        """Say what went wrong, closing the progress view first if it is still open."""
        await self._finish_progress(":warning: The analysis stopped.", ok=False)
        await self.post(f":warning: {message}")

    async def react(self, name: str, *, remove: str | None = None, message_ts: str) -> None:
        """Swap reactions on the asking message; a reaction failing never fails a run."""
        try:
            if remove:
                await self.client.reactions_remove(channel=self.thread.channel_id, timestamp=message_ts, name=remove)
            await self.client.reactions_add(channel=self.thread.channel_id, timestamp=message_ts, name=name)
        except SlackApiError as error:
            log.info("reaction %s not set: %s", name, error.response.get("error"))

    # -- progress --------------------------------------------------------------------

    async def start_progress(self, title: str) -> None:
        """Open the progress view, its first task being the data preparation."""
        title = _snippet(title, 150)
        self.progress_title = title
        if self.assistant:
            await self.set_status("is analysing your data…")
        try:
            stream = await StreamProgress.start(self.client, self.thread, title)
            self.progress = stream
            await self._posted("message", stream.ts)
        except SlackApiError as error:
            log.info("streaming unavailable (%s); using an edited message", error.response.get("error"))
            try:
                message = await MessageProgress.start(self.client, self.thread, title)
                self.progress = message
                await self._posted("message", message.ts)
            except SlackApiError as error:
                log.warning("progress message failed: %s", error.response.get("error"))
        await self._progress("prepare", "Reading your data", "in_progress")

    async def set_status(self, status: str) -> None:
        """The assistant pane's status line (cleared by Slack when the bot replies)."""
        try:
            await self.client.assistant_threads_setStatus(
                channel_id=self.thread.channel_id, thread_ts=self.thread.thread_ts, status=status
            )
        except SlackApiError as error:
            log.info("assistant status not set: %s", error.response.get("error"))

    async def _progress(self, task_id: str, title: str, status: str, output: str = "") -> None:
        title = _snippet(title, 120)  # titles carry file names and queries: neutralised too
        if status in ("in_progress", "pending"):
            self.open_tasks[task_id] = title
        else:
            self.open_tasks.pop(task_id, None)
        self.task_states[task_id] = (title, status)
        try:
            await self.progress.update(task_id, title, status, output)
        except PROGRESS_ERRORS as error:
            await self._replace_progress(error)

    async def _replace_progress(self, error: BaseException) -> None:
        """The progress message stopped accepting updates. A stream Slack closed (it lives a
        few minutes) carries on as the same message, edited with ``chat.update``; anything
        else, or an edit that fails too, carries on in a new message with the same tasks,
        or, failing that, without."""
        failed = self.progress
        if isinstance(failed, StreamProgress) and failed.ts and error_code(error) == STREAM_GONE:
            log.info("the progress stream closed; editing the same message from now on")
            self.progress = MessageProgress(self.client, self.thread, self.progress_title, failed.ts)
            if await self._refresh_progress():
                return
            failed = self.progress
        log.warning("progress update failed (%s); continuing in a new message", error_code(error))
        if isinstance(failed, _NoProgress) or self._replaced_progress:
            self.progress = _NoProgress()
            return
        self._replaced_progress = True
        try:
            message = await MessageProgress.start(self.client, self.thread, self.progress_title)
            await self._posted("message", message.ts)
            self.progress = message
        except PROGRESS_ERRORS as again:
            log.warning("a new progress message failed too (%s); continuing without it", error_code(again))
            self.progress = _NoProgress()
            return
        if not await self._refresh_progress():
            self.progress = _NoProgress()

    async def _refresh_progress(self) -> bool:
        """Show every task so far in the (edited) progress message; False if Slack refused."""
        message = self.progress
        if not isinstance(message, MessageProgress):
            return False
        message.tasks = dict(self.task_states)
        try:
            await message.refresh()
        except PROGRESS_ERRORS as error:
            log.warning("progress message %s can't be edited (%s)", message.ts, error_code(error))
            return False
        return True

    async def _finish_progress(self, summary: str, ok: bool) -> None:
        """Close every task still open (done, or stopped by the failure) and end the view
        with ``summary`` — on the same message, even when its stream has closed meanwhile."""
        for task_id, title in list(self.open_tasks.items()):
            await self._progress(task_id, title, "complete" if ok else "error")
        progress = self.progress
        try:
            await progress.finish(summary, ok)
        except PROGRESS_ERRORS as error:
            await self._replace_progress(error)
            if self.progress is not progress:
                try:
                    await self.progress.finish(summary, ok)
                except PROGRESS_ERRORS as again:
                    log.warning("progress finish failed: %s", error_code(again))
        self.progress = _NoProgress()

    async def prepared(self) -> None:
        """The data is in the sandbox; analysis begins."""
        await self._progress("prepare", "Reading your data", "complete")

    # -- the event stream ------------------------------------------------------------

    async def publish(self, events: AsyncIterator[Event]) -> PublishResult:
        """Show every event; returns the outcome once the stream ends."""
        async for event in events:
            if isinstance(event, StepStarted):
                self.titles[event.step] = event.title
                if event.runs_code:
                    self.runs.add(event.step)
                else:
                    self.runs.discard(event.step)
                await self._progress(f"step-{event.step}", event.title, "in_progress")
            elif isinstance(event, CodeWritten):
                self.code.append((event.step, event.language, event.code))
            elif isinstance(event, StepOutput):
                status, output = step_summary(event)
                title = self.titles.get(event.step, f"Step {event.step}")
                await self._progress(f"step-{event.step}", title, status, output)
            elif isinstance(event, Retrying):
                await self._progress(
                    f"retry-{event.attempt}", f"{event.message} (attempt {event.attempt} of {event.of})", "in_progress"
                )
            elif isinstance(event, Done):
                return await self._done(event)
            elif isinstance(event, Failed):
                await self._failed(event)
                return PublishResult(event, code_runs=len(self.runs))
        raise RuntimeError("the analysis ended without Done or Failed")

    async def _failed(self, failed: Failed) -> None:
        await self.post_error(failed.message)

    async def _done(self, done: Done) -> PublishResult:
        charts = sum(f.mime_type.startswith("image/") for f in done.files)
        summary = f"Done: {done.steps} step{'s' if done.steps != 1 else ''}"
        if charts:
            summary += f", {charts} chart{'s' if charts != 1 else ''}"
        await self._finish_progress(summary + ".", ok=True)
        if done.answer or done.notes:
            for message in answer_messages(done.answer or "Here is what the analysis produced.", done.notes):
                await self.post(message.text, blocks=message.blocks)
        result = PublishResult(done, code_runs=len(self.runs))
        await self._post_files(done.files, result)
        await self._post_code()
        return result

    async def _post_files(self, files: tuple[OutputFile, ...], result: PublishResult) -> None:
        ordered = sorted(files, key=lambda f: not f.mime_type.startswith("image/"))
        shown, held = ordered[: self.max_files], ordered[self.max_files :]
        too_big = [f for f in shown if f.size_bytes > self.max_file_bytes]
        shown = [f for f in shown if f.size_bytes <= self.max_file_bytes]
        failures: list[str] = []
        with tempfile.TemporaryDirectory(dir=self.workdir, prefix="outputs-") as tmp:
            for output in shown:
                name = safe_filename(output.filename, fallback="output")
                try:
                    path = await self.files_api.download(output, Path(tmp))
                except FILE_POST_ERRORS as error:
                    log.warning("download of %s (%s) failed: %s", output.file_id, name, _failure_detail(error))
                    failures.append(f"*{neutralize(name)}* ({describe_file_failure(error)})")
                    result.files_failed.append(name)
                    continue
                try:
                    await self._upload(file=str(path), filename=name, title=title_from_filename(name))
                    result.files_posted += 1
                except FILE_POST_ERRORS as error:
                    log.warning("upload of %s failed: %s", name, _failure_detail(error))
                    failures.append(f"*{neutralize(name)}* ({describe_file_failure(error)})")
                    result.files_failed.append(name)
                finally:
                    path.unlink(missing_ok=True)
        notes = []
        if failures:
            notes.append(
                "I couldn't attach "
                + ", ".join(failures)
                + ". The analysis itself is complete; ask me in this thread to post "
                + ("it" if len(failures) == 1 else "them")
                + " again."
            )
        if held:
            notes.append(
                f"{len(held)} more file{'s were' if len(held) != 1 else ' was'} held back "
                f"(at most {self.max_files} per answer): " + ", ".join(neutralize(f.filename) for f in held) + "."
            )
        if too_big:
            notes.append(
                "Too large to post here (limit "
                + describe_size(self.max_file_bytes)
                + "): "
                + ", ".join(f"{neutralize(f.filename)} ({describe_size(f.size_bytes)})" for f in too_big)
                + "."
            )
        if notes:
            await self.post(":paperclip: " + " ".join(notes))

    async def _post_code(self) -> None:
        if not self.code:
            return
        listing = code_listing(self.code)
        try:
            await self._upload(
                content=listing, filename="analysis_code.py", title="Code the analysis ran", snippet_type="python"
            )
        except FILE_POST_ERRORS as error:
            log.warning("code upload failed: %s", _failure_detail(error))
            await self.post(
                f":paperclip: I couldn't attach the code the analysis ran ({describe_file_failure(error)}); "
                "ask me in this thread if you need it."
            )


def _failure_detail(error: BaseException) -> str:
    """A failed download or upload, for the log (never shown)."""
    if isinstance(error, anthropic.APIError):
        return describe_anthropic_error(error).detail
    return f"{error_code(error)}: {error}"
