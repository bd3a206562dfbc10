"""The Slack publisher: shows one run in its thread, as a subscriber of the run's events.

Progress goes to a :class:`~handlers.slack.progress.ProgressView` (a streamed plan, one
task per sandbox step, with a Stop button under it). When it's done the thread gets the
interpretation (split across messages when long), then what
:class:`~handlers.slack.attachments.Attachments` posts — the files the analysis made, the
code it ran, the notebook — and the answer gains its buttons and links. Notes (a truncated
question, a place in the queue, files left out, a restart) never fail a run. Everything
Claude wrote is neutralised before it is posted; link unfurling is off.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.files_api import FilesApi
from bot.filetypes import display_name
from bot.notebook import NotebookRecorder
from bot.progress import (
    PENDING_STEP_TITLE,
    Cancelled,
    CodeWritten,
    Done,
    Failed,
    FilesLeftOut,
    FilesReady,
    FilesRefused,
    Finished,
    Interrupted,
    Preparing,
    QuestionTruncated,
    Queued,
    Retrying,
    RunEvent,
    Started,
    StepOutput,
    StepStarted,
)
from bot.prompts import column_prompts
from bot.sanitize import clean_question, neutralize
from bot.surface import PostLog
from handlers.slack.attachments import Attachments
from handlers.slack.clients import post_message
from handlers.slack.controls import answer_actions, stop_blocks
from handlers.slack.errors import slack_error_code
from handlers.slack.progress import PROGRESS_ERRORS, ProgressView, SlackThread, step_summary
from handlers.slack.render import SlackMessage, answer_messages

log = logging.getLogger(__name__)


def queued_note(position: int) -> str:
    return (
        f":hourglass_flowing_sand: I'm busy with other analyses — yours is number {position} in the queue and "
        "will start as soon as a slot frees up."
    )


# The queue note once the run has its slot (the same message, edited).
QUEUE_LEFT = ":arrow_forward: Your turn came — the analysis is starting."


def rate_limited_note(message: str, delay: float) -> str:
    """A retry after a 429/529 that said when to come back: the wait, in whole seconds."""
    return f"{message} (in {math.ceil(delay)} s, when Anthropic's limits allow)" if delay >= 1 else message


def truncated_note(limit: int) -> str:
    return f":scissors: Your question was longer than {limit:,} characters; I used the first part."


def left_out_note(names: tuple[str, ...]) -> str:
    shown = ", ".join(f"*{display_name(name)}*" for name in names)
    return (
        f":information_source: I couldn't bring {shown} back into this analysis: Slack no longer has it "
        "here (deleted, or no longer shared in this conversation). Share it again to include it."
    )


async def react(client: AsyncWebClient, channel_id: str, ts: str, name: str, *, remove: str | None = None) -> None:
    """Swap reactions on a message; a reaction failing never fails anything. The new one is
    added even when the old one isn't there (a run another process admitted, or a 👀 someone
    removed: Slack answers ``no_reaction``)."""
    if remove:
        try:
            await client.reactions_remove(channel=channel_id, timestamp=ts, name=remove)
        except SlackApiError as error:
            log.info("reaction %s not removed: %s", remove, slack_error_code(error))
    try:
        await client.reactions_add(channel=channel_id, timestamp=ts, name=name)
    except SlackApiError as error:
        log.info("reaction %s not set: %s", name, slack_error_code(error))


# The reaction a run's asking message ends with (any other ending: "warning").
FINAL_MARKS = {"succeeded": "white_check_mark", "cancelled": "black_square_for_stop"}

RESTARTING = ":arrows_counterclockwise: I'm restarting; I'll pick this up again in a moment."

# The assistant pane's status while a run works; its loading message names the current step.
WORKING_STATUS = "is analysing your data…"
# docs: reference/methods/assistant.threads.setTitle states no length limit; a title stays
# as short as a thread list can show.
PANE_TITLE_LIMIT = 80
# docs: reference/methods/assistant.threads.setSuggestedPrompts — "up to four suggested prompts".
MAX_SUGGESTED_PROMPTS = 4
PROMPT_TITLE_LIMIT = 40


def pane_title(question: str, file_names: Sequence[str]) -> str | None:
    """An assistant thread's title: its first question, else the file it is about."""
    text = " ".join(clean_question(question).text.split())
    if not text and file_names:
        text = display_name(file_names[0]) if len(file_names) == 1 else f"{len(file_names)} files"
    if not text:
        return None
    text = neutralize(text)
    return text if len(text) <= PANE_TITLE_LIMIT else text[: PANE_TITLE_LIMIT - 1].rstrip() + "…"


class SlackPublisher:
    """Shows one run's events in one Slack thread."""

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
        on_post: PostLog | None = None,
        uploads: AsyncWebClient | None = None,
        message_ts: str | None = None,
        run_id: int | None = None,
        pane_title: str | None = None,
        notebook: NotebookRecorder | None = None,
    ) -> None:
        self.client = client
        # files_upload_v2 goes through a client whose timeout fits the largest file.
        self.uploads = uploads or client
        self.on_post = on_post
        self.files_api = files_api
        self.thread = thread
        self.max_files = max_files
        self.max_file_bytes = max_file_bytes
        self.workdir = workdir
        self.view = ProgressView(client, thread, assistant=assistant, posted=self._posted_message)
        self.code: list[tuple[int, str, str]] = []
        self.titles: dict[int, str] = {}
        self.message_ts = message_ts  # the asking message, marked when the run ends
        self.run_id = run_id  # carried by the buttons (Stop, feedback, delete), which work after a restart
        self.control_ts: str | None = None  # the message with the Stop button, while the run goes
        self.queue_ts: str | None = None  # the note of its place in the queue, edited as it moves up
        self.last_answer: tuple[str, SlackMessage] | None = None  # (ts, message) of the answer's last part
        self.assistant = assistant
        self.pane_title = pane_title  # what an untitled assistant thread is named after
        self.status_steps: set[int] = set()  # steps the pane's status has named
        self.file_steps: dict[str, int] = {}  # generated file id → the step that made it
        # analysis.ipynb (None when ANALYST_NOTEBOOK is off): the recorder sees every event.
        self.notebook = notebook
        self.attachments = Attachments(
            self.uploads,
            files_api,
            thread,
            post=self.post,
            max_files=max_files,
            max_file_bytes=max_file_bytes,
            workdir=workdir,
            on_post=on_post,
            notebook=notebook,
            titles=self.titles,
            file_steps=self.file_steps,
        )

    @property
    def files_posted(self) -> int:
        """The generated files delivered to the thread (the ledger's ``files_out``)."""
        return self.attachments.files_posted

    # -- posting ---------------------------------------------------------------------

    async def post(self, text: str, **kwargs: Any) -> str:
        ts = await post_message(self.client, self.thread.channel_id, text, thread_ts=self.thread.thread_ts, **kwargs)
        await self._posted_message(ts)
        return ts

    async def note(self, text: str) -> None:
        """A note in the thread; one Slack refuses is logged, never fatal."""
        try:
            await self.post(text)
        except PROGRESS_ERRORS as error:
            log.warning("could not post to the thread: %s", slack_error_code(error))

    async def _show_place(self, text: str) -> None:
        """The run's place in the queue: one note, edited in place as the run moves up."""
        try:
            if self.queue_ts is None:
                self.queue_ts = await self.post(text)
            else:
                await self.client.chat_update(channel=self.thread.channel_id, ts=self.queue_ts, text=text)
        except PROGRESS_ERRORS as error:
            log.warning("could not show the place in the queue: %s", slack_error_code(error))

    async def _posted_message(self, ts: str | None) -> None:
        if ts and self.on_post is not None:
            await self.on_post("message", ts)

    async def post_error(self, message: str) -> None:
        """Say what went wrong, closing the progress view first if it is still open."""
        await self.view.finish(":warning: The analysis stopped.", ok=False)
        await self.post(f":warning: {message}")

    # -- the event stream ------------------------------------------------------------

    async def on(self, event: RunEvent) -> None:
        """Show one event of the run."""
        if self.notebook is not None:
            await self.notebook.on(event)
        view = self.view
        if isinstance(event, StepStarted):
            self.titles[event.step] = event.title
            await view.task(f"step-{event.step}", event.title, "in_progress")
            if self.assistant and event.title != PENDING_STEP_TITLE and event.step not in self.status_steps:
                self.status_steps.add(event.step)
                await view.set_status(WORKING_STATUS, event.title)
        elif isinstance(event, CodeWritten):
            self.code.append((event.step, event.language, event.code))
        elif isinstance(event, StepOutput):
            self.file_steps.update(dict.fromkeys(event.file_ids, event.step))
            status, output = step_summary(event)
            title = self.titles.get(event.step, f"Step {event.step}")
            await view.task(f"step-{event.step}", title, status, output, event.sources)
        elif isinstance(event, Retrying) and event.rate_limited:
            # Waiting out a rate limit uses up no attempt: one task, updated at each wait.
            await view.task("rate-limited", rate_limited_note(event.message, event.delay), "in_progress")
        elif isinstance(event, Retrying):
            await view.task(
                f"retry-{event.attempt}", f"{event.message} (attempt {event.attempt} of {event.of})", "in_progress"
            )
        elif isinstance(event, Preparing):
            await view.start(event.title)
            await self._offer_stop()
            if self.assistant:
                await self._title_pane()
        elif isinstance(event, FilesReady):
            await view.prepared()
            if self.assistant and event.columns:
                await self._suggest_prompts(event)
        elif isinstance(event, FilesRefused):
            await self.post(":information_source: " + "\n".join(event.reasons) + "\nI'll analyse the rest.")
        elif isinstance(event, Done):
            await self._done(event)
        elif isinstance(event, Failed):
            await self._withdraw_stop()
            await self.post_error(event.message)
        elif isinstance(event, Queued):
            await self._show_place(queued_note(event.position))
        elif isinstance(event, Started) and self.queue_ts:
            await self._show_place(QUEUE_LEFT)
        elif isinstance(event, QuestionTruncated):
            await self.note(truncated_note(event.limit))
        elif isinstance(event, FilesLeftOut):
            await self.note(left_out_note(event.names))
        elif isinstance(event, Cancelled):
            await self._withdraw_stop()
            await view.finish(f":black_square_for_stop: Stopped by <@{event.by}>.", ok=False)
        elif isinstance(event, Interrupted):
            await self._withdraw_stop()
            await self.note(RESTARTING)
        elif isinstance(event, Finished):
            await self._withdraw_stop()
            if self.message_ts:
                mark = FINAL_MARKS.get(event.status, "warning")
                await react(self.client, self.thread.channel_id, self.message_ts, mark, remove="eyes")

    async def _done(self, done: Done) -> None:
        charts = sum(f.mime_type.startswith("image/") for f in done.files)
        summary = f"Done: {done.steps} step{'s' if done.steps != 1 else ''}"
        if charts:
            summary += f", {charts} chart{'s' if charts != 1 else ''}"
        await self.view.finish(summary + ".", ok=True)
        await self._withdraw_stop()
        # Nothing to upload (no files, no code): the buttons have no links to wait for, so they
        # go out with the answer's last part instead of in a chat.update after it.
        uploads = bool(done.files or self.code)
        if done.answer or done.notes:
            messages = answer_messages(done.answer or "Here is what the analysis produced.", done.notes)
            for n, message in enumerate(messages, 1):
                blocks = message.blocks
                if n == len(messages) and not uploads and self.run_id is not None:
                    blocks = [*message.blocks, *answer_actions(self.run_id, {})]
                self.last_answer = (await self.post(message.text, blocks=blocks), message)
        await self.attachments.post_files(done.files)
        await self.attachments.post_code(self.code)
        if uploads:
            await self._offer_actions()

    # -- controls ----------------------------------------------------------------------

    async def _offer_stop(self) -> None:
        """The Stop button, in a message under the progress while the run goes."""
        if self.run_id is None:
            return
        try:
            self.control_ts = await post_message(
                self.client,
                self.thread.channel_id,
                "Stop this analysis",
                thread_ts=self.thread.thread_ts,
                blocks=stop_blocks(self.run_id),
            )
        except PROGRESS_ERRORS as error:
            log.warning("the Stop button could not be posted: %s", slack_error_code(error))

    async def _withdraw_stop(self) -> None:
        """The run is over (or no longer this process's): the Stop button goes."""
        ts, self.control_ts = self.control_ts, None
        if ts is None:
            return
        try:
            await self.client.chat_delete(channel=self.thread.channel_id, ts=ts)
        except PROGRESS_ERRORS as error:
            log.warning("the Stop button could not be removed: %s", slack_error_code(error))

    async def _offer_actions(self) -> None:
        """Feedback, delete, and links to the code and notebook, under the answer's last part
        (``chat.update`` once the files are posted, so the links can point at them)."""
        if self.last_answer is None or self.run_id is None:
            return
        ts, message = self.last_answer
        links = {str(f.get("name")): str(f.get("permalink")) for f in self.attachments.uploaded if f.get("permalink")}
        blocks = [*message.blocks, *answer_actions(self.run_id, links)]
        try:
            await self.client.chat_update(channel=self.thread.channel_id, ts=ts, text=message.text, blocks=blocks)
        except PROGRESS_ERRORS as error:
            log.warning("the answer's buttons could not be added: %s", slack_error_code(error))

    async def _title_pane(self) -> None:
        """Name a new assistant thread after its first question (or file); a thread that has a
        title keeps it. Failing to name it never fails the run."""
        if not self.pane_title:
            return
        channel, thread_ts = self.thread.channel_id, self.thread.thread_ts
        try:
            replies = await self.client.conversations_replies(channel=channel, ts=thread_ts, limit=1)
            root: dict[str, Any] = next(iter(replies.get("messages") or ()), {})
            if (root.get("assistant_app_thread") or {}).get("title"):
                return
            await self.client.assistant_threads_setTitle(channel_id=channel, thread_ts=thread_ts, title=self.pane_title)
        except PROGRESS_ERRORS as error:
            log.info("assistant thread title not set: %s", slack_error_code(error))

    async def _suggest_prompts(self, ready: FilesReady) -> None:
        """Prompts about the table just shared, in place of the generic ones."""
        prompts = column_prompts(
            ready.columns,
            file_name=display_name(ready.names[0]) if len(ready.names) == 1 else "",
            limit=MAX_SUGGESTED_PROMPTS,
            title_chars=PROMPT_TITLE_LIMIT,
        )
        try:
            await self.client.assistant_threads_setSuggestedPrompts(
                channel_id=self.thread.channel_id,
                thread_ts=self.thread.thread_ts,
                title="Ask about this table",
                prompts=[{"title": neutralize(p["title"]), "message": neutralize(p["message"])} for p in prompts],
            )
        except PROGRESS_ERRORS as error:
            log.info("suggested prompts not set: %s", slack_error_code(error))
