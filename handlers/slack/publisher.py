"""The Slack publisher: shows one run in its thread, as a subscriber of the run's events.

Progress goes to a :class:`~handlers.slack.progress.ProgressView` (a streamed plan, one
task per sandbox step). When it's done the thread gets the interpretation (split across
messages when long), the files the analysis made (charts first) and the code it ran. A
file that can't be fetched or posted costs only that file: the thread says which, and
why. Notes (a truncated question, a place in the queue, files left out, a restart) never
fail a run. Everything Claude wrote is neutralised before it is posted; link unfurling is off.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import httpx2
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import describe_anthropic_error
from bot.files_api import FilesApi
from bot.filetypes import describe_size, display_name, safe_filename
from bot.notebook import NOTEBOOK_NAME, NotebookRecorder, build_notebook, notebook_json
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
    OutputFile,
    Preparing,
    QuestionTruncated,
    Queued,
    Retrying,
    RunEvent,
    StepOutput,
    StepStarted,
)
from bot.prompts import column_prompts
from bot.sanitize import clean_question, neutralize
from bot.surface import PostLog
from handlers.slack.clients import post_message
from handlers.slack.controls import answer_actions, stop_blocks
from handlers.slack.errors import slack_error_code
from handlers.slack.progress import PROGRESS_ERRORS, ProgressView, SlackThread, step_summary
from handlers.slack.render import SlackMessage, answer_messages, code_listing, title_from_filename

log = logging.getLogger(__name__)

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


def describe_file_failure(error: BaseException) -> str:
    """Why a generated file didn't reach the thread, in words for the person who asked."""
    if isinstance(error, anthropic.APIError | httpx2.HTTPError):
        return "fetching it from Claude's sandbox failed"
    if isinstance(error, SlackApiError):
        return f"Slack refused the upload (`{slack_error_code(error)}`)"
    if isinstance(error, TimeoutError):
        return "the upload to Slack timed out"
    return "the upload to Slack failed"


def queued_note(position: int) -> str:
    return (
        f":hourglass_flowing_sand: I'm busy with other analyses — yours is number {position} in the queue and "
        "will start as soon as a slot frees up."
    )


def truncated_note(limit: int) -> str:
    return f":scissors: Your question was longer than {limit:,} characters; I used the first part."


def left_out_note(names: tuple[str, ...]) -> str:
    shown = ", ".join(f"*{display_name(name)}*" for name in names)
    return (
        f":information_source: I couldn't bring {shown} back into this analysis: Slack no longer has it "
        "here (deleted, or no longer shared in this conversation). Share it again to include it."
    )


async def react(client: AsyncWebClient, channel_id: str, ts: str, name: str, *, remove: str | None = None) -> None:
    """Swap reactions on a message; a reaction failing never fails anything."""
    try:
        if remove:
            await client.reactions_remove(channel=channel_id, timestamp=ts, name=remove)
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
# How many files go into one message. Slack's clients attach at most 10 files to a message, and
# files.completeUploadExternal fails with ``internal_error`` beyond 14 (python-slack-sdk#1653).
MAX_FILES_PER_MESSAGE = 10
MAX_BYTES_PER_MESSAGE = 100 * 1024 * 1024
# docs: reference/methods/files.getUploadURLExternal — alt_txt: "Description of image for
# screen-reader", at most 1000 characters.
ALT_TEXT_LIMIT = 1000


def upload_batches(uploads: Sequence[tuple[dict[str, Any], int]]) -> list[list[dict[str, Any]]]:
    """Files (each with its size) in posting order, grouped into messages: at most
    :data:`MAX_FILES_PER_MESSAGE` files and, unless one file is larger, :data:`MAX_BYTES_PER_MESSAGE`
    each (files_upload_v2 holds a message's files in memory while it sends them)."""
    batches: list[list[dict[str, Any]]] = []
    size = 0
    for upload, upload_size in uploads:
        if not batches or len(batches[-1]) >= MAX_FILES_PER_MESSAGE or size + upload_size > MAX_BYTES_PER_MESSAGE:
            batches.append([])
            size = 0
        batches[-1].append(upload)
        size += upload_size
    return batches


def pane_title(question: str, file_names: Sequence[str]) -> str | None:
    """An assistant thread's title: its first question, else the file it is about."""
    text = " ".join(clean_question(question).text.split())
    if not text and file_names:
        text = display_name(file_names[0]) if len(file_names) == 1 else f"{len(file_names)} files"
    if not text:
        return None
    text = neutralize(text)
    return text if len(text) <= PANE_TITLE_LIMIT else text[: PANE_TITLE_LIMIT - 1].rstrip() + "…"


def chart_labels(filename: str, step: int | None, step_title: str | None) -> tuple[str, str]:
    """(title, alt text) of a chart: what its file name says, and the step that drew it."""
    readable = title_from_filename(filename)
    if step is None or not step_title or step_title == PENDING_STEP_TITLE:
        return readable, f"Chart: {readable}."
    drawn_by = neutralize(step_title)
    alt = f"Chart: {readable}. Drawn in step {step} of the analysis ({drawn_by})."
    return f"{readable} · {drawn_by}", alt[:ALT_TEXT_LIMIT]


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
        self.files_posted = 0
        self.message_ts = message_ts  # the asking message, marked when the run ends
        self.run_id = run_id  # carried by the buttons (Stop, feedback, delete), which work after a restart
        self.control_ts: str | None = None  # the message with the Stop button, while the run goes
        self.uploaded: list[dict[str, Any]] = []  # every file this publisher posted, as Slack describes it
        self.last_answer: tuple[str, SlackMessage] | None = None  # (ts, message) of the answer's last part
        self.assistant = assistant
        self.pane_title = pane_title  # what an untitled assistant thread is named after
        self.status_steps: set[int] = set()  # steps the pane's status has named
        self.file_steps: dict[str, int] = {}  # generated file id → the step that made it
        # analysis.ipynb (None when ANALYST_NOTEBOOK is off): the recorder sees every event,
        # and the charts _post_files downloads are kept to embed them.
        self.notebook = notebook
        self.chart_bytes: dict[str, bytes] = {}

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

    async def _posted_message(self, ts: str | None) -> None:
        if ts and self.on_post is not None:
            await self.on_post("message", ts)

    async def _upload(self, **kwargs: Any) -> None:
        """files_upload_v2 into the thread, remembering the files it created."""
        response = await self.uploads.files_upload_v2(
            channel=self.thread.channel_id, thread_ts=self.thread.thread_ts, **kwargs
        )
        for file in response.get("files") or ():
            self.uploaded.append(file)
            if file.get("id") and self.on_post is not None:
                await self.on_post("file", str(file["id"]))

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
            await self.note(queued_note(event.position))
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
                mark = {"succeeded": "white_check_mark", "cancelled": "black_square_for_stop"}.get(
                    event.status, "warning"
                )
                await react(self.client, self.thread.channel_id, self.message_ts, mark, remove="eyes")

    async def _done(self, done: Done) -> None:
        charts = sum(f.mime_type.startswith("image/") for f in done.files)
        summary = f"Done: {done.steps} step{'s' if done.steps != 1 else ''}"
        if charts:
            summary += f", {charts} chart{'s' if charts != 1 else ''}"
        await self.view.finish(summary + ".", ok=True)
        await self._withdraw_stop()
        if done.answer or done.notes:
            for message in answer_messages(done.answer or "Here is what the analysis produced.", done.notes):
                self.last_answer = (await self.post(message.text, blocks=message.blocks), message)
        await self._post_files(done.files)
        await self._post_code()
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
        links = {str(f.get("name")): str(f.get("permalink")) for f in self.uploaded if f.get("permalink")}
        blocks = [*message.blocks, *answer_actions(self.run_id, links)]
        try:
            await self.client.chat_update(channel=self.thread.channel_id, ts=ts, text=message.text, blocks=blocks)
        except PROGRESS_ERRORS as error:
            log.warning("the answer's buttons could not be added: %s", slack_error_code(error))

    async def _post_files(self, files: tuple[OutputFile, ...]) -> None:
        """The answer's files, charts first, in as few messages as Slack allows (one, for up to
        :data:`MAX_FILES_PER_MESSAGE`); each chart titled and described from the step that drew it."""
        ordered = sorted(files, key=lambda f: not f.mime_type.startswith("image/"))
        shown, held = ordered[: self.max_files], ordered[self.max_files :]
        too_big = [f for f in shown if f.size_bytes > self.max_file_bytes]
        shown = [f for f in shown if f.size_bytes <= self.max_file_bytes]
        failures: list[str] = []
        with tempfile.TemporaryDirectory(dir=self.workdir, prefix="outputs-") as tmp:
            uploads: list[tuple[dict[str, Any], int]] = []
            for output in shown:
                name = safe_filename(output.filename, fallback="output")
                try:
                    path = await self.files_api.download(output, Path(tmp))
                except FILE_POST_ERRORS as error:
                    log.warning("download of %s (%s) failed: %s", output.file_id, name, _failure_detail(error))
                    failures.append(f"*{neutralize(name)}* ({describe_file_failure(error)})")
                    continue
                self._keep_chart(output, path)
                uploads.append((self._file_upload(output, name, path), output.size_bytes))
            for batch in upload_batches(uploads):
                failures += await self._upload_together(batch)
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

    def _file_upload(self, output: OutputFile, name: str, path: Path) -> dict[str, Any]:
        """One entry of ``files_upload_v2(file_uploads=...)``. Only images get alt text: it
        describes an image, and on other files it has kept Slack from sharing them
        (python-slack-sdk#1818)."""
        if not output.mime_type.startswith("image/"):
            return {"file": str(path), "filename": name, "title": title_from_filename(name)}
        step = self.file_steps.get(output.file_id)
        title, alt = chart_labels(name, step, self.titles.get(step) if step is not None else None)
        return {"file": str(path), "filename": name, "title": title, "alt_txt": alt}

    async def _upload_together(self, uploads: list[dict[str, Any]]) -> list[str]:
        """Post ``uploads`` as one message; the failures, in words. When Slack refuses the
        message, each file is tried on its own, so one bad file costs only itself."""
        try:
            await self._upload(file_uploads=uploads)
            self.files_posted += len(uploads)
            return []
        except FILE_POST_ERRORS as error:
            if len(uploads) == 1:
                log.warning("upload of %s failed: %s", uploads[0]["filename"], _failure_detail(error))
                return [f"*{neutralize(uploads[0]['filename'])}* ({describe_file_failure(error)})"]
            log.warning("upload of %d files failed (%s); posting them one by one", len(uploads), _failure_detail(error))
        failures: list[str] = []
        for upload in uploads:
            failures += await self._upload_together([upload])
        return failures

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
        await self._post_notebook()

    def _keep_chart(self, output: OutputFile, path: Path) -> None:
        """Keep a downloaded chart's bytes for the notebook (when there is one)."""
        if self.notebook is not None and output.mime_type in ("image/png", "image/jpeg"):
            self.chart_bytes[output.file_id] = path.read_bytes()

    async def _post_notebook(self) -> None:
        """analysis.ipynb, next to the code: the steps that ran, their output and charts."""
        run = self.notebook.record() if self.notebook is not None else None
        if run is None:
            return
        try:
            await self._upload(
                content=notebook_json(build_notebook(run, self.chart_bytes)),
                filename=NOTEBOOK_NAME,
                title="Notebook of the analysis (rerun it next to the data file)",
            )
        except FILE_POST_ERRORS as error:
            log.warning("notebook upload failed: %s", _failure_detail(error))
            await self.post(
                f":paperclip: I couldn't attach the notebook of the analysis ({describe_file_failure(error)}); "
                "ask me in this thread if you need it."
            )


def _failure_detail(error: BaseException) -> str:
    """A failed download or upload, for the log (never shown)."""
    if isinstance(error, anthropic.APIError):
        return describe_anthropic_error(error).detail
    return f"{slack_error_code(error)}: {error}"
