"""Getting a request's files into the Files API: checked, streamed, uploaded once.

Every file is looked up and prechecked before anything is downloaded; accepted ones are
streamed from the surface (:class:`bot.surface.FileSource`) to a temporary file, checked
by content and uploaded once per content. A conversation's files that Anthropic no longer
has are fetched again from the surface when a fresh container needs them.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import anthropic

from bot.access import NOT_YOURS_TO_ANALYSE, may_analyse_file
from bot.columns import header_columns
from bot.engine import InputFile
from bot.errors import FileUnavailable
from bot.files_api import FilesApi
from bot.filetypes import FileRefused, Kind, mime_type_for, precheck, safe_filename, sniff
from bot.requests import SharedFile
from bot.settings import Settings
from bot.store import ThreadFile
from bot.surface import FileSource

log = logging.getLogger(__name__)


def as_input(file: ThreadFile) -> InputFile:
    return InputFile(file.file_id, file.filename, file.kind, file.size_bytes)


class FileIntake:
    def __init__(self, settings: Settings, source: FileSource, files_api: FilesApi) -> None:
        self.settings = settings
        self.source = source
        self.files_api = files_api

    async def precheck(
        self, files: tuple[SharedFile, ...], *, asker: str, conversation_id: str
    ) -> tuple[list[tuple[SharedFile, Kind]], list[str]]:
        """Look every file up and refuse, before any download, those we can't take — first
        of all any that ``asker`` may not have analysed in ``conversation_id`` (the file rule,
        ``bot.access.may_analyse_file``: their own upload, or shared in that conversation)."""
        accepted: list[tuple[SharedFile, Kind]] = []
        refusals: list[str] = []
        for shared in files:
            file = await self.source.lookup(shared)
            if not may_analyse_file(file, asker=asker, conversation_id=conversation_id):
                log.warning(
                    "refused file %s for %s in %s: not theirs, not shared here", file.id, asker, conversation_id
                )
                refusals.append(NOT_YOURS_TO_ANALYSE)  # no file name: it may be private
                continue
            try:
                accepted.append((file, precheck(file.name, file.filetype, file.size, self.settings.max_file_bytes)))
            except FileRefused as refusal:
                refusals.append(str(refusal))
        return accepted, refusals

    async def fetch(
        self,
        files: list[tuple[SharedFile, Kind]],
        *,
        team_id: str,
        user_id: str,
        run_id: int | None,
        refusals: list[str],
    ) -> list[ThreadFile]:
        """Download, check and upload each file; refusals are appended to ``refusals``."""
        uploaded: list[ThreadFile] = []
        with tempfile.TemporaryDirectory(prefix="analyst-") as workdir:
            for file, kind in files:
                try:
                    uploaded.append(await self._fetch_one(file, kind, Path(workdir), team_id, user_id, run_id))
                except FileRefused as refusal:
                    refusals.append(str(refusal))
        return uploaded

    async def _fetch_one(
        self, file: SharedFile, kind: Kind, workdir: Path, team_id: str, user_id: str, run_id: int | None
    ) -> ThreadFile:
        local = await self.source.download(file, max_bytes=self.settings.max_file_bytes, directory=workdir)
        try:
            sniff(file.name, kind, local.head)
            file_id = await self.files_api.ensure_uploaded(
                local.path,
                sha256=local.sha256,
                filename=file.name,
                mime_type=mime_type_for(file.name, kind),
                size=local.size,
                team_id=team_id,
                user_id=user_id,
                run_id=run_id,
            )
        finally:
            local.path.unlink(missing_ok=True)
        columns = header_columns(local.head, kind.name)
        return ThreadFile(local.sha256, file_id, file.id, safe_filename(file.name), kind.name, local.size, columns)

    async def still_available(
        self,
        files: tuple[ThreadFile, ...],
        *,
        team_id: str,
        user_id: str,
        run_id: int | None,
        conversation_id: str,
        owner: str,
    ) -> list[ThreadFile]:
        """The conversation's files, each uploaded again from Slack if Anthropic lost it.

        Only files that already joined this conversation come here. One fetched again from
        Slack must still pass the file rule for the conversation (shared in it, or uploaded
        by ``owner``, who started it); one deleted in Slack meanwhile is left out: its owner
        took it back."""
        available: list[ThreadFile] = []
        for file in files:
            try:
                await self.files_api.client.files.retrieve_metadata(file.file_id)
                available.append(file)
                continue
            except anthropic.NotFoundError:
                log.info("thread file %s (%s) is gone from the Files API", file.filename, file.file_id)
                await self.files_api.store.mark_file_deleted(file.file_id)
            if not file.slack_file_id:
                continue
            try:
                accepted, refusals = await self.precheck(
                    (SharedFile(id=file.slack_file_id),), asker=owner, conversation_id=conversation_id
                )
            except FileUnavailable as gone:
                log.info("thread file %s can't be fetched again: %s", file.filename, gone.detail)
                continue
            again = await self.fetch(accepted, team_id=team_id, user_id=user_id, run_id=run_id, refusals=refusals)
            if refusals:
                log.warning("could not fetch %s again: %s", file.filename, refusals)
            available.extend(again)
        return available
