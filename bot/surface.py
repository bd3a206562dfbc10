"""What the core needs from a surface (Slack today), as small protocols.

``bot/`` never imports a surface's SDK: ``handlers/slack`` implements these for Slack,
and the core reaches the world only through them —
- a :class:`Publisher` shows one run (a subscriber of its progress events);
- a :class:`FileSource` looks files up and streams their bytes (again, for re-attachment);
- a :class:`Directory` knows people's names and organisations;
- the :class:`Surface` ties them together and says the bot's own words outside a run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bot.errors import Problem
from bot.files_api import FilesApi
from bot.progress import RunEvent
from bot.requests import AnalysisRequest, SharedFile
from bot.schema import PostKind

Clock = Callable[[], float]
"""Seconds since the epoch (``time.time`` in production; tests move it)."""

PostLog = Callable[[PostKind, str], Awaitable[None]]
"""Told about every message ("message", ts) and file ("file", id) a publisher posts."""


class Subscriber(Protocol):
    """Consumes a run's progress events, in order."""

    async def on(self, event: RunEvent) -> None: ...


async def broadcast(subscribers: Sequence[Subscriber], event: RunEvent) -> None:
    """Hand ``event`` to each subscriber in turn (the ledger first, by convention)."""
    for subscriber in subscribers:
        await subscriber.on(event)


class Publisher(Subscriber, Protocol):
    """Shows one run where it was asked for."""

    @property
    def files_posted(self) -> int:
        """The generated files it delivered (the ledger's ``files_out``)."""
        ...


@dataclass(frozen=True)
class DownloadedFile:
    """A shared file on local disk, hashed while it was streamed there."""

    slack_id: str
    name: str
    path: Path
    size: int
    sha256: str
    head: bytes  # the first bytes, for type sniffing


class FileSource(Protocol):
    async def lookup(self, file: SharedFile) -> SharedFile:
        """``file`` with what the event left out (name, size, download link, owner, shares).
        Raises :class:`bot.errors.FileUnavailable` when there is no such file for the bot."""
        ...

    async def download(self, file: SharedFile, *, max_bytes: int, directory: Path) -> DownloadedFile:
        """Stream ``file`` into ``directory``; raises :class:`bot.filetypes.FileRefused` past
        ``max_bytes`` and :class:`bot.errors.UserFacingError` when the surface won't serve it."""
        ...


class Directory(Protocol):
    async def name(self, user_id: str) -> str:
        """Display name, else real name, else handle; "" if unknown."""
        ...

    async def names_in(self, text: str, *, skip: str | None = None) -> dict[str, str]:
        """Names of the people ``text`` mentions (except ``skip``, the bot itself)."""
        ...

    async def is_external(self, user_id: str, *, team_id: str, user_team: str | None = None) -> bool | None:
        """Whether the person belongs to another organisation; None when unknown (fail closed)."""
        ...


class Surface(Protocol):
    """Where requests come from and answers go."""

    @property
    def files(self) -> FileSource: ...

    @property
    def people(self) -> Directory: ...

    @property
    def bot_user_id(self) -> str | None:
        """The bot's own user id, once connected."""
        ...

    @property
    def team_id(self) -> str | None:
        """The workspace the bot is installed in, once connected."""
        ...

    async def connect(self) -> None:
        """Check the credentials and learn who the bot is (``bot_user_id``, ``team_id``)."""
        ...

    def publisher(self, request: AnalysisRequest, run_id: int, posted: PostLog, outputs: FilesApi) -> Publisher:
        """A publisher for run ``run_id`` of ``request``: every post it makes is told to
        ``posted``; the files the analysis generates are fetched from ``outputs``."""
        ...

    async def tell_thread(self, request: AnalysisRequest, text: str) -> None:
        """The bot's words in the request's thread. Never raises."""
        ...

    async def tell_privately(self, request: AnalysisRequest, text: str) -> None:
        """Words only the asker sees (in the thread, where the surface can't). Never raises."""
        ...

    async def react(self, request: AnalysisRequest, name: str, *, remove: str | None = None) -> None:
        """Mark the asking message (``name``), taking ``remove`` off first. Never raises."""
        ...

    async def delete_replies(self, channel_id: str, thread_ts: str, *, messages: set[str], files: set[str]) -> None:
        """Delete the bot's replies in a thread: ``messages`` by ts, ``files`` by id, and
        whatever messages carry those files. Never raises."""
        ...

    def describe_failure(self, error: BaseException) -> Problem | None:
        """The surface's own failures (an API refusal, a network error) in words for the
        asker; None for anything that isn't the surface's."""
        ...
