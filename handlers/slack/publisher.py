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
from bot.sanitize import neutralize
from bot.surface import PostLog
from handlers.slack.clients import post_message
from handlers.slack.errors import slack_error_code
from handlers.slack.progress import PROGRESS_ERRORS, ProgressView, SlackThread, step_summary
from handlers.slack.render import answer_messages, code_listing, title_from_filename

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


RESTARTING = ":arrows_counterclockwise: I'm restarting; I'll pick this up again in a moment."


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
        elif isinstance(event, CodeWritten):
            self.code.append((event.step, event.language, event.code))
        elif isinstance(event, StepOutput):
            status, output = step_summary(event)
            await view.task(f"step-{event.step}", self.titles.get(event.step, f"Step {event.step}"), status, output)
        elif isinstance(event, Retrying):
            await view.task(
                f"retry-{event.attempt}", f"{event.message} (attempt {event.attempt} of {event.of})", "in_progress"
            )
        elif isinstance(event, Preparing):
            await view.start(event.title)
        elif isinstance(event, FilesReady):
            await view.prepared()
        elif isinstance(event, FilesRefused):
            await self.post(":information_source: " + "\n".join(event.reasons) + "\nI'll analyse the rest.")
        elif isinstance(event, Done):
            await self._done(event)
        elif isinstance(event, Failed):
            await self.post_error(event.message)
        elif isinstance(event, Queued):
            await self.note(queued_note(event.position))
        elif isinstance(event, QuestionTruncated):
            await self.note(truncated_note(event.limit))
        elif isinstance(event, FilesLeftOut):
            await self.note(left_out_note(event.names))
        elif isinstance(event, Interrupted):
            await self.note(RESTARTING)
        elif isinstance(event, Finished) and self.message_ts:
            mark = "white_check_mark" if event.status == "succeeded" else "warning"
            await react(self.client, self.thread.channel_id, self.message_ts, mark, remove="eyes")

    async def _done(self, done: Done) -> None:
        charts = sum(f.mime_type.startswith("image/") for f in done.files)
        summary = f"Done: {done.steps} step{'s' if done.steps != 1 else ''}"
        if charts:
            summary += f", {charts} chart{'s' if charts != 1 else ''}"
        await self.view.finish(summary + ".", ok=True)
        if done.answer or done.notes:
            for message in answer_messages(done.answer or "Here is what the analysis produced.", done.notes):
                await self.post(message.text, blocks=message.blocks)
        await self._post_files(done.files)
        await self._post_code()

    async def _post_files(self, files: tuple[OutputFile, ...]) -> None:
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
                    continue
                self._keep_chart(output, path)
                try:
                    await self._upload(file=str(path), filename=name, title=title_from_filename(name))
                    self.files_posted += 1
                except FILE_POST_ERRORS as error:
                    log.warning("upload of %s failed: %s", name, _failure_detail(error))
                    failures.append(f"*{neutralize(name)}* ({describe_file_failure(error)})")
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
