"""The Anthropic Files API side: each content uploaded once, outputs streamed back down.

The ``files`` table maps a SHA-256 to the Files API id of its upload. A known hash whose
file still exists at Anthropic is reused; one that Anthropic no longer has is uploaded
again (and the stale row marked deleted). An upload claims its content in the database first, so
runs bringing the same file at once — in one process or several — upload it once.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anthropic

from bot.filetypes import safe_filename
from bot.progress import OutputFile
from bot.store import Store

log = logging.getLogger(__name__)


# A file this close to its expiry is uploaded again rather than reused.
EXPIRY_MARGIN_S = 600
# How long an upload may hold its claim on a content before another run takes it over (its
# holder presumed gone: a crash between claiming and recording the upload).
UPLOAD_CLAIM_STALE_S = 900
# How often a run waiting for another's upload of the same content looks again.
UPLOAD_CLAIM_POLL_S = 0.25
# The Files API's own expiry accepts 1 hour to 90 days.
MIN_EXPIRY_S, MAX_EXPIRY_S = 3600, 7_776_000


@dataclass(frozen=True)
class Content:
    """One file to upload and what its ``files`` row records about it."""

    path: Path
    sha256: str
    filename: str
    mime_type: str
    size: int
    team_id: str | None
    user_id: str | None
    run_id: int | None


class FilesApi:
    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        store: Store,
        *,
        ttl_seconds: float | None = None,
        on_upload: Callable[[bool], None] | None = None,
    ) -> None:
        self.client = client
        self.store = store
        # Told of every file sent: True when the Files API already had it (bot.metrics).
        self.on_upload = on_upload
        # Uploads also carry an expiry at Anthropic (a safety net behind the sweeper).
        self.claim_poll_s = UPLOAD_CLAIM_POLL_S
        # Runs in this process bringing the same content queue here (no polling); the first
        # uploads, the others then find its record. Entries: sha256 → (lock, runs using it).
        self._same_content: dict[str, tuple[asyncio.Lock, int]] = {}
        self.expires_in = int(min(ttl_seconds, MAX_EXPIRY_S)) if ttl_seconds and ttl_seconds >= MIN_EXPIRY_S else None

    async def delete(self, file_id: str) -> Literal["deleted", "gone", "failed"]:
        """Delete a file at Anthropic and record it: "gone" when Anthropic no longer had it
        (recorded all the same), "failed" when it must be tried again later (logged)."""
        try:
            await self.client.files.delete(file_id)
            outcome: Literal["deleted", "gone"] = "deleted"
        except anthropic.NotFoundError:
            log.info("%s was already gone at Anthropic; updating our record", file_id)
            outcome = "gone"
        except anthropic.APIError as error:
            log.warning("could not delete %s yet: %r", file_id, error)
            return "failed"
        await self.store.mark_file_deleted(file_id)
        return outcome

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
        """The Files API id for this content, uploading it only if Anthropic lacks it.

        Uploading claims the content in the database first, so of several runs — in this process
        or another — that bring the same file at once, one uploads it and the others wait for its
        record and reuse the id.
        """
        content = Content(path, sha256, filename, mime_type, size, team_id, user_id, run_id)
        lock, users = self._same_content.get(sha256, (asyncio.Lock(), 0))
        self._same_content[sha256] = (lock, users + 1)
        try:
            async with lock:
                return await self._claim_and_upload(content)
        finally:
            lock, users = self._same_content[sha256]
            if users == 1:
                del self._same_content[sha256]
            else:
                self._same_content[sha256] = (lock, users - 1)

    async def _claim_and_upload(self, content: Content) -> str:
        """:meth:`ensure_uploaded` across processes: the database claim on the content."""
        sha256 = content.sha256
        key = f"upload:{sha256}"
        while True:
            known = await self._reusable(sha256)
            if known is not None:
                return known
            if await self.store.take_claim(key, stale_after=UPLOAD_CLAIM_STALE_S):
                try:
                    # Someone may have finished uploading it between our look and our claim.
                    known = await self._reusable(sha256)
                    if known is not None:
                        return known
                    return await self._upload(content)
                finally:
                    await self.store.release_claim(key)
            log.info("file %s is being uploaded by another run; waiting for it", sha256[:12])
            await asyncio.sleep(self.claim_poll_s)

    async def _reusable(self, sha256: str) -> str | None:
        """The id of our upload of this content, if Anthropic still has it (and not about to expire)."""
        known = await self.store.find_upload(sha256)
        if known is None:
            return None
        try:
            meta = await self.client.files.retrieve_metadata(known.id)
            if meta.expires_at is None or meta.expires_at.timestamp() > time.time() + EXPIRY_MARGIN_S:
                log.info("file %s already uploaded as %s", sha256[:12], known.id)
                if self.on_upload is not None:
                    self.on_upload(True)
                return known.id
            log.info("file %s (%s) is about to expire; uploading again", sha256[:12], known.id)
        except anthropic.NotFoundError:
            log.info("file %s (%s) is gone from the Files API; uploading again", sha256[:12], known.id)
        await self.store.mark_file_deleted(known.id)
        return None

    async def _upload(self, content: Content) -> str:
        name, mime_type = safe_filename(content.filename), content.mime_type
        with content.path.open("rb") as handle:
            if self.expires_in is not None:
                meta = await self.client.files.upload(
                    file=(name, handle, mime_type), expires_in_seconds=self.expires_in
                )
            else:
                meta = await self.client.files.upload(file=(name, handle, mime_type))
        await self.store.record_file(
            file_id=meta.id,
            origin="upload",
            filename=name,
            mime_type=mime_type,
            size_bytes=content.size,
            sha256=content.sha256,
            team_id=content.team_id,
            user_id=content.user_id,
            run_id=content.run_id,
        )
        if self.on_upload is not None:
            self.on_upload(False)
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
