"""Fetching the files people share: metadata from Slack, bytes streamed to disk (the
core's :class:`bot.surface.FileSource`, for Slack).

A download never holds the file in memory: it is streamed in chunks into a temporary
file while its SHA-256 is computed and its size is checked against the limit (Slack's
claimed size can be wrong, so the limit is enforced on the bytes actually received).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import FileUnavailable, UserFacingError
from bot.filetypes import FileRefused, describe_size, display_name
from bot.requests import SharedFile
from bot.surface import DownloadedFile
from handlers.slack.errors import describe_slack_error

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
SNIFF_BYTES = 8 * 1024


# files.info's documented errors for a file that isn't there (docs: api.slack.com/methods/files.info).
UNAVAILABLE = {
    "file_deleted": "That file has been deleted in Slack, so I can't analyse it.",
    "file_not_found": (
        "I couldn't find that file: the link may be mistyped, or the file was deleted or is in a conversation "
        "I'm not in."
    ),
}


async def complete_file(client: AsyncWebClient, file: SharedFile) -> SharedFile:
    """Fill in what the event left out (name, size, download URL, owner, shares) from ``files.info``."""
    if file.complete:
        return file
    try:
        response = await client.files_info(file=file.id)
    except SlackApiError as error:
        code = str(error.response.get("error", "unknown"))
        if code in UNAVAILABLE:
            raise FileUnavailable(UNAVAILABLE[code], detail=f"files.info {file.id}: {code}") from error
        problem = describe_slack_error(code)
        raise UserFacingError(
            f"I couldn't look up a shared file: {problem.message}",
            retryable=problem.retryable,
            detail=problem.detail,
        ) from error
    info = response.get("file") or {}
    return SharedFile.from_payload({**info, "id": file.id}, shared_in=file.shared_in)


async def download(
    session: aiohttp.ClientSession,
    file: SharedFile,
    *,
    token: str,
    max_bytes: int,
    directory: Path,
) -> DownloadedFile:
    """Stream ``file`` into ``directory``, hashing as it goes. Refuses oversize files mid-stream."""
    shown = display_name(file.name)
    if not file.url_private_download:
        raise UserFacingError(f"Slack didn't give me a download link for *{shown}*. Share it again.")
    digest = hashlib.sha256()
    size = 0
    head = b""
    handle = tempfile.NamedTemporaryFile(dir=directory, prefix="slack-", delete=False)  # noqa: SIM115
    path = Path(handle.name)
    try:
        with handle:
            async with session.get(
                file.url_private_download,
                headers={"Authorization": f"Bearer {token}"},
                allow_redirects=True,
            ) as response:
                if response.status != 200:
                    raise UserFacingError(
                        f"Slack wouldn't let me download *{shown}* (HTTP {response.status}). Try again, "
                        "or share the file again.",
                        retryable=response.status >= 500 or response.status == 429,
                        detail=f"slack download status {response.status}",
                    )
                if response.content_type == "text/html":
                    # Slack answers a download without valid auth with its login page.
                    raise UserFacingError(
                        f"Slack sent a sign-in page instead of *{shown}*: the bot isn't allowed to read "
                        "this file. Ask whoever runs the bot to check it has the `files:read` scope.",
                        detail="slack download returned text/html",
                    )
                async for chunk in response.content.iter_chunked(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise FileRefused(
                            f"*{shown}* is larger than this workspace's limit of {describe_size(max_bytes)}. "
                            "Share a smaller extract."
                        )
                    if len(head) < SNIFF_BYTES:
                        head += chunk[: SNIFF_BYTES - len(head)]
                    digest.update(chunk)
                    handle.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return DownloadedFile(file.id, file.name, path, size, digest.hexdigest(), head)


class SlackFiles:
    """The :class:`bot.surface.FileSource` of a Slack workspace."""

    def __init__(self, client: AsyncWebClient, http: aiohttp.ClientSession, *, token: str) -> None:
        self.client = client
        self.http = http
        self._token = token

    async def lookup(self, file: SharedFile) -> SharedFile:
        return await complete_file(self.client, file)

    async def download(self, file: SharedFile, *, max_bytes: int, directory: Path) -> DownloadedFile:
        return await download(self.http, file, token=self._token, max_bytes=max_bytes, directory=directory)
