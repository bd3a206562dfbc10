"""The core on a surface that isn't Slack: bot/ runs a whole analysis through the protocols
of bot/surface.py alone, against the loopback Anthropic fake.

This is what keeps the core surface-free in practice: a second, in-memory surface (files
from disk, a recording publisher) sees the one stream of a run, in order, and the ledger
records the same run as the publisher saw.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.admission import HOW_TO
from bot.analyst import Analyst
from bot.clients import anthropic_client
from bot.errors import FileUnavailable, Problem
from bot.files_api import FilesApi
from bot.progress import Done, Failed, FilesReady, Finished, Preparing, RunEvent, Started, StepStarted
from bot.requests import AnalysisRequest, SharedFile
from bot.schema import PostKind
from bot.settings import Settings
from bot.store import Store
from bot.surface import DownloadedFile, PostLog, Publisher
from tests.conftest import STREAMING_CSV
from tests.fakes.anthropic import FakeAnthropic


class DiskFiles:
    """A FileSource over local files, each uploaded by U1 and shared in C1."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    async def lookup(self, file: SharedFile) -> SharedFile:
        path = self.files.get(file.id)
        if path is None:
            raise FileUnavailable("no such file", detail=f"lookup {file.id}")
        size = path.stat().st_size
        return SharedFile(file.id, path.name, size=size, url_private_download=str(path), owner="U1", shared_in=("C1",))

    async def download(self, file: SharedFile, *, max_bytes: int, directory: Path) -> DownloadedFile:
        source = self.files[file.id]
        target = directory / f"{file.id}.part"
        shutil.copyfile(source, target)
        data = target.read_bytes()
        return DownloadedFile(file.id, file.name, target, len(data), hashlib.sha256(data).hexdigest(), data[:8192])


class Everyone:
    """A Directory in which everyone is called Ann and belongs here."""

    async def name(self, user_id: str) -> str:
        return "Ann"

    async def names_in(self, text: str, *, skip: str | None = None) -> dict[str, str]:
        return {}

    async def is_external(self, user_id: str, *, team_id: str, user_team: str | None = None) -> bool | None:
        return False


@dataclass
class Recorder:
    """A Publisher that keeps every event it is shown."""

    posted: PostLog
    events: list[RunEvent] = field(default_factory=list)
    files_posted: int = 0

    async def on(self, event: RunEvent) -> None:
        self.events.append(event)
        if isinstance(event, Done):
            self.files_posted = len(event.files)
            await self.posted("message", f"answer-{len(self.events)}")


@dataclass
class MemorySurface:
    files: DiskFiles
    people: Everyone = field(default_factory=Everyone)
    bot_user_id: str | None = None
    team_id: str | None = None
    publishers: list[Recorder] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    reactions: list[str] = field(default_factory=list)

    async def connect(self) -> None:
        self.bot_user_id, self.team_id = "UBOT", "T1"

    def publisher(self, request: AnalysisRequest, run_id: int, posted: PostLog, outputs: FilesApi) -> Publisher:
        recorder = Recorder(posted)
        self.publishers.append(recorder)
        return recorder

    async def tell_thread(self, request: AnalysisRequest, text: str) -> None:
        self.said.append(text)

    async def tell_privately(self, request: AnalysisRequest, text: str) -> None:
        self.said.append(f"(privately) {text}")

    async def react(self, request: AnalysisRequest, name: str, *, remove: str | None = None) -> None:
        self.reactions.append(name)

    async def delete_replies(self, channel_id: str, thread_ts: str, *, messages: set[str], files: set[str]) -> None:
        self.said.append(f"deleted {sorted(messages)}")

    def describe_failure(self, error: BaseException) -> Problem | None:
        return None


@pytest.fixture
async def core(tmp_path: Path, claude: FakeAnthropic) -> AsyncIterator[tuple[Analyst, MemorySurface]]:
    settings = Settings.from_env(
        {
            "ANTHROPIC_API_KEY": claude.api_key,
            "ANTHROPIC_BASE_URL": claude.base_url,
            "ANALYST_DB": str(tmp_path / "core.db"),
        },
        slack=False,
    )
    surface = MemorySurface(DiskFiles({"F1": STREAMING_CSV}))
    client = anthropic_client(settings)
    async with Store(settings.db_path) as store:
        analyst = Analyst(settings, store, client, surface)
        await analyst.start()
        try:
            yield analyst, surface
        finally:
            await analyst.shutdown(grace=0)
            await client.close()


def ask(
    text: str, *, ts: str = "1.000100", thread_ts: str | None = None, files: tuple[str, ...] = ()
) -> AnalysisRequest:
    return AnalysisRequest(
        "T1", "C1", "U1", ts, thread_ts or ts, text, files=tuple(SharedFile(id=f) for f in files), source="mention"
    )


async def test_a_run_is_one_stream_seen_in_order_by_the_publisher_and_the_ledger(
    core: tuple[Analyst, MemorySurface],
) -> None:
    analyst, surface = core
    assert await analyst.handle(ask("what drives churn?", files=("F1",))) == "succeeded"

    [events] = [p.events for p in surface.publishers]
    kinds = [type(e) for e in events]
    assert kinds[:3] == [Started, Preparing, FilesReady]
    assert kinds[-2:] == [Done, Finished]
    assert StepStarted in kinds
    done, finished = events[-2], events[-1]
    assert isinstance(done, Done) and isinstance(finished, Finished)
    assert "Free" in done.answer
    assert finished.status == "succeeded" and finished.code_runs == done.code_runs >= 1
    assert surface.reactions == ["eyes"]  # the surface marks the asking message; the publisher ends it

    [run] = await analyst.store.all_runs()
    assert run["status"] == "succeeded" and run["source"] == "mention"
    assert run["code_executions"] == done.code_runs
    assert run["files_out"] == len(done.files) and run["input_tokens"] == done.usage.input_tokens
    posts: list[tuple[PostKind, str]] = [(p["kind"], p["ref"]) for p in await analyst.store.posts_of_run(run["id"])]
    assert posts == [("message", f"answer-{len(events) - 1}")]  # what the publisher posted, in the ledger


async def test_admission_outcomes_reach_the_surface(core: tuple[Analyst, MemorySurface]) -> None:
    analyst, surface = core
    # Nothing to analyse: the how-to, in the thread, and no run.
    assert await analyst.handle(ask("", ts="2.000100")) == "how-to"
    assert surface.said == [HOW_TO] and surface.reactions == ["wave"]
    # The same message again (a second event for it): analysed once.
    assert await analyst.handle(ask("", ts="2.000100")) == "duplicate"
    # A file the source doesn't have: the run fails with the source's words, and says so.
    assert await analyst.handle(ask("and this?", ts="3.000100", files=("F9",))) == "failed"
    [failed_run] = await analyst.store.all_runs()
    assert failed_run["status"] == "failed" and failed_run["error"] == "lookup F9"
    events = surface.publishers[-1].events
    assert [type(e) for e in events] == [Started, Failed, Finished]
    assert isinstance(events[1], Failed) and events[1].message == "no such file"
    assert surface.reactions == ["wave", "eyes"]


class LookedUp(Everyone):
    """Everyone, telling when the asker's lookup (``users.info`` on Slack) began."""

    def __init__(self) -> None:
        self.began = asyncio.Event()

    async def is_external(self, user_id: str, *, team_id: str, user_team: str | None = None) -> bool | None:
        self.began.set()
        return False


async def test_the_askers_lookup_runs_alongside_the_claims(
    core: tuple[Analyst, MemorySurface], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first visible write (👀, or the how-to) waits for the asker's lookup and the
    request's claims together, not for one after the other."""
    analyst, surface = core
    people = surface.people = LookedUp()
    claim = analyst.gate.claim

    async def claim_during_the_lookup(request: AnalysisRequest) -> bool:
        # The lookup is under way before the claims finish (the limit only turns a hang into a failure).
        await asyncio.wait_for(people.began.wait(), timeout=10)
        return await claim(request)

    monkeypatch.setattr(analyst.gate, "claim", claim_during_the_lookup)
    assert await analyst.handle(ask("", ts="4.000100")) == "how-to"
    assert surface.reactions == ["wave"]
    assert await analyst.handle(ask("", ts="4.000100")) == "duplicate"  # its lookup is not waited for
