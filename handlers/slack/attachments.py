"""What an answer brings into the thread besides its text: the files the analysis made (in
as few messages as Slack allows, charts first, titled and described from the step that drew
them), the code it ran and the notebook of the run. A file that can't be fetched or posted
costs only that file: the thread says which, and why.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import httpx2
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import describe_anthropic_error
from bot.files_api import FilesApi
from bot.filetypes import describe_size, safe_filename
from bot.notebook import NOTEBOOK_NAME, NotebookRecorder, build_notebook, notebook_json
from bot.progress import PENDING_STEP_TITLE, OutputFile
from bot.sanitize import neutralize
from bot.surface import PostLog
from handlers.slack.errors import slack_error_code
from handlers.slack.progress import SlackThread
from handlers.slack.render import code_listing, title_from_filename

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


# How many files go into one message. Slack's clients attach at most 10 files to a message, and
# files.completeUploadExternal fails with ``internal_error`` beyond 14 (python-slack-sdk#1653).
MAX_FILES_PER_MESSAGE = 10
MAX_BYTES_PER_MESSAGE = 100 * 1024 * 1024
# docs: reference/methods/files.getUploadURLExternal — alt_txt: "Description of image for
# screen-reader", at most 1000 characters.
ALT_TEXT_LIMIT = 1000


def describe_file_failure(error: BaseException) -> str:
    """Why a generated file didn't reach the thread, in words for the person who asked."""
    if isinstance(error, anthropic.APIError | httpx2.HTTPError):
        return "fetching it from Claude's sandbox failed"
    if isinstance(error, SlackApiError):
        return f"Slack refused the upload (`{slack_error_code(error)}`)"
    if isinstance(error, TimeoutError):
        return "the upload to Slack timed out"
    return "the upload to Slack failed"


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


def chart_labels(filename: str, step: int | None, step_title: str | None) -> tuple[str, str]:
    """(title, alt text) of a chart: what its file name says, and the step that drew it."""
    readable = title_from_filename(filename)
    if step is None or not step_title or step_title == PENDING_STEP_TITLE:
        return readable, f"Chart: {readable}."
    drawn_by = neutralize(step_title)
    alt = f"Chart: {readable}. Drawn in step {step} of the analysis ({drawn_by})."
    return f"{readable} · {drawn_by}", alt[:ALT_TEXT_LIMIT]


class Attachments:
    """Posts one answer's files, code and notebook into its thread (``files_upload_v2``),
    telling ``on_post`` of every file and counting the generated files delivered."""

    def __init__(
        self,
        uploads: AsyncWebClient,
        files_api: FilesApi,
        thread: SlackThread,
        *,
        post: Callable[[str], Awaitable[str]],
        max_files: int,
        max_file_bytes: int,
        workdir: Path | None,
        on_post: PostLog | None,
        notebook: NotebookRecorder | None,
        titles: dict[int, str],
        file_steps: dict[str, int],
    ) -> None:
        self.uploads = uploads
        self.files_api = files_api
        self.thread = thread
        self.post = post  # a message in the thread (for notes about files that didn't arrive)
        self.max_files = max_files
        self.max_file_bytes = max_file_bytes
        self.workdir = workdir
        self.on_post = on_post
        self.notebook = notebook
        self.titles = titles  # step → title, as the publisher saw them
        self.file_steps = file_steps  # generated file id → the step that made it
        self.files_posted = 0
        self.uploaded: list[dict[str, Any]] = []  # every file posted, as Slack describes it
        # The charts post_files downloaded, kept to embed them in the notebook.
        self.chart_bytes: dict[str, bytes] = {}

    async def upload(self, **kwargs: Any) -> None:
        """files_upload_v2 into the thread, remembering the files it created."""
        response = await self.uploads.files_upload_v2(
            channel=self.thread.channel_id, thread_ts=self.thread.thread_ts, **kwargs
        )
        for file in response.get("files") or ():
            self.uploaded.append(file)
            if file.get("id") and self.on_post is not None:
                await self.on_post("file", str(file["id"]))

    async def post_files(self, files: tuple[OutputFile, ...]) -> None:
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
            await self.upload(file_uploads=uploads)
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

    async def post_code(self, code: list[tuple[int, str, str]]) -> None:
        """The code the analysis ran, as one Python file, then the notebook (when there is one)."""
        if not code:
            return
        listing = code_listing(code)
        try:
            await self.upload(
                content=listing, filename="analysis_code.py", title="Code the analysis ran", snippet_type="python"
            )
        except FILE_POST_ERRORS as error:
            log.warning("code upload failed: %s", _failure_detail(error))
            await self.post(
                f":paperclip: I couldn't attach the code the analysis ran ({describe_file_failure(error)}); "
                "ask me in this thread if you need it."
            )
        await self.post_notebook()

    def _keep_chart(self, output: OutputFile, path: Path) -> None:
        """Keep a downloaded chart's bytes for the notebook (when there is one)."""
        if self.notebook is not None and output.mime_type in ("image/png", "image/jpeg"):
            self.chart_bytes[output.file_id] = path.read_bytes()

    async def post_notebook(self) -> None:
        """analysis.ipynb, next to the code: the steps that ran, their output and charts."""
        run = self.notebook.record() if self.notebook is not None else None
        if run is None:
            return
        try:
            await self.upload(
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
