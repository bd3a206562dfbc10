"""The Anthropic Files API side: each content uploaded once, outputs streamed back down.

The ``files`` table maps a SHA-256 to the Files API id of its upload. A known hash whose
file still exists at Anthropic is reused; one that Anthropic no longer has is uploaded
again (and the stale row marked deleted).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import anthropic

from bot.events import OutputFile
from bot.filetypes import safe_filename
from bot.store import Store

log = logging.getLogger(__name__)


class FilesApi:
    def __init__(self, client: anthropic.AsyncAnthropic, store: Store) -> None:
        self.client = client
        self.store = store

    async def ensure_uploaded(
        self,
        path: Path,
        *,
        sha256: str,
        filename: str,
        mime_type: str,
        size: int,
        team_id: str | None = None,
        user_id: str | None = None,
        run_id: int | None = None,
    ) -> str:
        """The Files API id for this content, uploading it only if Anthropic lacks it."""
        known = await self.store.find_upload(sha256)
        if known is not None:
            try:
                await self.client.files.retrieve_metadata(known.id)
                log.info("file %s already uploaded as %s", sha256[:12], known.id)
                return known.id
            except anthropic.NotFoundError:
                log.info("file %s (%s) is gone from the Files API; uploading again", sha256[:12], known.id)
                await self.store.mark_file_deleted(known.id)
        name = safe_filename(filename)
        with path.open("rb") as handle:
            meta = await self.client.files.upload(file=(name, handle, mime_type))
        await self.store.record_file(
            file_id=meta.id,
            origin="upload",
            filename=name,
            mime_type=mime_type,
            size_bytes=size,
            sha256=sha256,
            team_id=team_id,
            user_id=user_id,
            run_id=run_id,
        )
        return meta.id

    async def download(self, output: OutputFile, directory: Path) -> Path:
        """Stream a generated file to ``directory``; returns the local path."""
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115
            dir=directory, prefix="out-", suffix="-" + safe_filename(output.filename), delete=False
        )
        path = Path(handle.name)
        try:
            with handle:
                async with self.client.files.with_streaming_response.download(output.file_id) as response:
                    async for chunk in response.iter_bytes():
                        handle.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    async def record_generated(self, output: OutputFile, *, team_id: str | None, run_id: int | None) -> None:
        await self.store.record_file(
            file_id=output.file_id,
            origin="generated",
            filename=output.filename,
            mime_type=output.mime_type,
            size_bytes=output.size_bytes,
            team_id=team_id,
            run_id=run_id,
        )


def digest_file(path: Path, *, sniff_bytes: int = 8192) -> tuple[str, int, bytes]:
    """(sha256, size, first bytes) of a local file, read in chunks."""
    import hashlib

    digest = hashlib.sha256()
    size = 0
    head = b""
    with path.open("rb") as handle:
        while chunk := handle.read(256 * 1024):
            if len(head) < sniff_bytes:
                head += chunk[: sniff_bytes - len(head)]
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size, head
