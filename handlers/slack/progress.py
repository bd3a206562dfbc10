"""The progress of a run in Slack: one streamed message with a plan, one task per step.

While the analysis runs, one streamed message (``chat.startStream``) shows the plan and
each sandbox step as a task; if streaming isn't available it falls back to one message
updated in place. Slack closes a stream a few minutes after it starts while an analysis
may run for twenty: the same message then carries on through ``chat.update``. Progress
never fails a run: a view Slack stops accepting is replaced, or given up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from bot.progress import StepOutput
from bot.sanitize import neutralize
from handlers.slack.clients import post_message
from handlers.slack.errors import slack_error_code

log = logging.getLogger(__name__)

# docs: reference/methods/chat.appendStream, task_update chunks — ``details`` and ``output``
# are at most 256 characters each.
TASK_OUTPUT_LIMIT = 256
# docs: reference/block-kit/block-elements/url-source-element — a task's ``sources`` are url
# elements ``{"type": "url", "url", "text"}``. Slack states no count or length limit for them:
# a task lists at most this many, with titles of at most this length.
MAX_TASK_SOURCES = 10
SOURCE_TEXT_LIMIT = 150
# docs: reference/methods/assistant.threads.setStatus — loading_messages: "Maximum of 10 messages";
# their length is unstated, so each stays as short as a task title.
LOADING_MESSAGE_LIMIT = 120
# A progress message edited in place stays short (Slack truncates long texts in threads).
PROGRESS_TEXT_LIMIT = 3000
# Where the stream stopped taking appends (it outlived Slack's stream lifetime).
STREAM_GONE = "message_not_in_streaming_state"
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


Sources = tuple[tuple[str, str], ...]  # (url, title) of the web pages a step used


def source_elements(sources: Sources) -> list[dict[str, str]]:
    """A task's web pages as Slack's url source elements: http(s) only, each once, at most
    :data:`MAX_TASK_SOURCES`, titles neutralised and clipped."""
    elements: list[dict[str, str]] = []
    for url, title in dict.fromkeys(sources):
        if not url.startswith(("https://", "http://")) or any(e["url"] == url for e in elements):
            continue
        text = _snippet(title or url, SOURCE_TEXT_LIMIT) or _clip(url, SOURCE_TEXT_LIMIT)
        elements.append({"type": "url", "url": url, "text": text})
    return elements[:MAX_TASK_SOURCES]


class Progress(Protocol):
    async def update(self, task_id: str, title: str, status: str, output: str = "", sources: Sources = ()) -> None: ...

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

    async def update(self, task_id: str, title: str, status: str, output: str = "", sources: Sources = ()) -> None:
        chunk: dict[str, Any] = {"type": "task_update", "id": task_id, "title": title, "status": status}
        if output:
            chunk["output"] = _clip(output, TASK_OUTPUT_LIMIT)
        if elements := source_elements(sources):
            chunk["sources"] = elements
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
        ts = await post_message(
            client, thread.channel_id, f":hourglass_flowing_sand: {title}…", thread_ts=thread.thread_ts
        )
        return cls(client, thread, title, ts)

    def _render(self, footer: str = "") -> str:
        return render_progress(self.title, list(self.tasks.values()), footer)

    async def update(self, task_id: str, title: str, status: str, output: str = "", sources: Sources = ()) -> None:
        self.tasks[task_id] = (title, status)
        await self.refresh()

    async def refresh(self) -> None:
        await self.client.chat_update(channel=self.thread.channel_id, ts=self.ts, text=self._render())

    async def finish(self, summary: str, ok: bool) -> None:
        await self.client.chat_update(channel=self.thread.channel_id, ts=self.ts, text=self._render(summary))


class _NoProgress:
    """Used once progress updates have failed: the answer matters more than the log."""

    async def update(self, task_id: str, title: str, status: str, output: str = "", sources: Sources = ()) -> None:
        return None

    async def finish(self, summary: str, ok: bool) -> None:
        return None


@dataclass
class ProgressView:
    """The progress of one run in its thread: opened once the work starts, updated per
    task, finished with a summary — on the same message whatever Slack does meanwhile."""

    def __init__(
        self,
        client: AsyncWebClient,
        thread: SlackThread,
        *,
        assistant: bool,
        posted: Callable[[str | None], Awaitable[None]],
    ) -> None:
        self.client = client
        self.thread = thread
        self.assistant = assistant
        self._posted = posted  # told the ts of every progress message posted
        self.progress: Progress = _NoProgress()
        self.open_tasks: dict[str, str] = {}  # task id → title, for tasks still in progress
        self.task_states: dict[str, tuple[str, str]] = {}  # task id → (title, status), every task so far
        self.progress_title = ""
        self._replaced_progress = False

    async def start(self, title: str) -> None:
        """Open the progress view, its first task being the data preparation."""
        title = _snippet(title, 150)
        self.progress_title = title
        if self.assistant:
            await self.set_status("is analysing your data…", "Reading your data…")
        try:
            stream = await StreamProgress.start(self.client, self.thread, title)
            self.progress = stream
            await self._posted(stream.ts)
        except SlackApiError as error:
            log.info("streaming unavailable (%s); using an edited message", slack_error_code(error))
            try:
                message = await MessageProgress.start(self.client, self.thread, title)
                self.progress = message
                await self._posted(message.ts)
            except SlackApiError as error:
                log.warning("progress message failed: %s", slack_error_code(error))
        if isinstance(self.progress, StreamProgress):
            # The stream's first chunks (chat.startStream) show this task already.
            self.open_tasks["prepare"] = "Reading your data"
            self.task_states["prepare"] = ("Reading your data", "in_progress")
        else:
            await self.task("prepare", "Reading your data", "in_progress")

    async def set_status(self, status: str, loading: str = "") -> None:
        """The assistant pane's status line (cleared by Slack when the bot replies), with
        ``loading`` — what is happening now — as its loading message."""
        loading_messages = [_snippet(loading, LOADING_MESSAGE_LIMIT)] if loading.strip() else None
        try:
            await self.client.assistant_threads_setStatus(
                channel_id=self.thread.channel_id,
                thread_ts=self.thread.thread_ts,
                status=status,
                loading_messages=loading_messages,
            )
        except SlackApiError as error:
            log.info("assistant status not set: %s", slack_error_code(error))

    async def task(self, task_id: str, title: str, status: str, output: str = "", sources: Sources = ()) -> None:
        title = _snippet(title, 120)  # titles carry file names and queries: neutralised too
        if status in ("in_progress", "pending"):
            self.open_tasks[task_id] = title
        else:
            self.open_tasks.pop(task_id, None)
        self.task_states[task_id] = (title, status)
        try:
            await self.progress.update(task_id, title, status, output, sources)
        except PROGRESS_ERRORS as error:
            await self._replace(error)

    async def _replace(self, error: BaseException) -> None:
        """The progress message stopped accepting updates. A stream Slack closed (it lives a
        few minutes) carries on as the same message, edited with ``chat.update``; anything
        else, or an edit that fails too, carries on in a new message with the same tasks,
        or, failing that, without."""
        failed = self.progress
        if isinstance(failed, StreamProgress) and failed.ts and slack_error_code(error) == STREAM_GONE:
            log.info("the progress stream closed; editing the same message from now on")
            self.progress = MessageProgress(self.client, self.thread, self.progress_title, failed.ts)
            if await self._refresh():
                return
            failed = self.progress
        log.warning("progress update failed (%s); continuing in a new message", slack_error_code(error))
        if isinstance(failed, _NoProgress) or self._replaced_progress:
            self.progress = _NoProgress()
            return
        self._replaced_progress = True
        try:
            message = await MessageProgress.start(self.client, self.thread, self.progress_title)
            await self._posted(message.ts)
            self.progress = message
        except PROGRESS_ERRORS as again:
            log.warning("a new progress message failed too (%s); continuing without it", slack_error_code(again))
            self.progress = _NoProgress()
            return
        if not await self._refresh():
            self.progress = _NoProgress()

    async def _refresh(self) -> bool:
        """Show every task so far in the (edited) progress message; False if Slack refused."""
        message = self.progress
        if not isinstance(message, MessageProgress):
            return False
        message.tasks = dict(self.task_states)
        try:
            await message.refresh()
        except PROGRESS_ERRORS as error:
            log.warning("progress message %s can't be edited (%s)", message.ts, slack_error_code(error))
            return False
        return True

    async def finish(self, summary: str, ok: bool) -> None:
        """Close every task still open (done, or stopped by the failure) and end the view
        with ``summary`` — on the same message, even when its stream has closed meanwhile."""
        for task_id, title in list(self.open_tasks.items()):
            await self.task(task_id, title, "complete" if ok else "error")
        progress = self.progress
        try:
            await progress.finish(summary, ok)
        except PROGRESS_ERRORS as error:
            await self._replace(error)
            if self.progress is not progress:
                try:
                    await self.progress.finish(summary, ok)
                except PROGRESS_ERRORS as again:
                    log.warning("progress finish failed: %s", slack_error_code(again))
        self.progress = _NoProgress()

    async def prepared(self) -> None:
        """The data is in the sandbox; analysis begins."""
        await self.task("prepare", "Reading your data", "complete")

    # -- the event stream ------------------------------------------------------------
