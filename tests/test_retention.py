"""Retention: the sweeper deletes expired files at the Files API (idempotently, across
restarts) and old history; :x: on a reply deletes that analysis's replies. Every test runs
with the bot's database on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.harness import Harness


@pytest.fixture
def env(env: dict[str, str], store_target: Path | str) -> dict[str, str]:
    """The bot's environment (conftest's), with its database on each backend in turn."""
    return {**env, "ANALYST_DB": str(store_target)}


def later(harness: Harness, seconds: float) -> None:
    """Move the bot's clock forward (the ledger's and the sweeper's notion of now)."""
    store = harness.running.analyst.store
    start = store.clock()
    store.clock = lambda: start + seconds


async def test_the_sweeper_deletes_expired_files_and_is_idempotent(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])
    ours = {r["id"] for r in await harness.running.analyst.store.files()}
    assert len(ours) >= 2  # the upload and the chart
    sweeper = harness.running.analyst.sweeper
    report = await sweeper.sweep_once()
    assert report.files_deleted == 0  # nothing is old enough yet
    later(harness, 25 * 3600)
    report = await sweeper.sweep_once()
    assert report.files_deleted == len(ours)
    assert all(claude.files[file_id].deleted for file_id in ours)
    deletes = sum(r.method == "DELETE" for r in claude.requests)
    again = await sweeper.sweep_once()
    assert again.files_deleted == 0 and again.files_failed == 0
    assert sum(r.method == "DELETE" for r in claude.requests) == deletes  # no second delete


async def test_a_file_already_gone_at_anthropic_is_just_recorded(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])
    [upload] = claude.uploads_of(streaming_csv)
    claude.files[upload.file_id].deleted = True
    later(harness, 25 * 3600)
    report = await harness.running.analyst.sweeper.sweep_once()
    assert report.files_already_gone == 1 and report.files_failed == 0
    rows = {r["id"]: r for r in await harness.running.analyst.store.files()}
    assert rows[upload.file_id]["deleted_at"] is not None


async def test_a_failed_delete_is_retried_on_the_next_sweep(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])
    later(harness, 25 * 3600)
    claude.fail_next("files.delete", status=400, times=1)
    first = await harness.running.analyst.sweeper.sweep_once()
    assert first.files_failed == 1
    second = await harness.running.analyst.sweeper.sweep_once()
    assert second.files_deleted == 1 and all(f.deleted for f in claude.files.values())


async def test_fractional_ttl_and_the_sweep_survives_a_restart(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    settings = {**env, "ANALYST_FILE_TTL_HOURS": "0.5"}
    async with Harness(settings, slack, claude) as harness:
        await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])
        # Uploads also expire at Anthropic on their own (30 min is under the API's 1 h minimum: not set).
        upload = next(r for r in claude.requests if r.path == "/v1/files" and r.method == "POST")
        assert "expires_in_seconds" not in upload.body
    # Restarted an hour later: the new process's first sweep finds the old files.
    restarted = Harness(settings, slack, claude)
    restarted.clock_offset = 3600
    async with restarted:
        sweeper = restarted.running.analyst.sweeper
        await asyncio.wait_for(sweeper.swept.wait(), timeout=30)
    assert all(f.deleted for f in claude.files.values())


async def test_uploads_carry_an_expiry_when_the_ttl_allows(harness: Harness, claude: FakeAnthropic) -> None:
    await harness.mention("sum it", files=[harness.file("a.csv", b"a\n1\n2\n")])
    upload = next(r for r in claude.requests if r.path == "/v1/files" and r.method == "POST")
    assert upload.body["expires_in_seconds"] == str(24 * 3600)  # a multipart form field


async def test_history_is_deleted_after_its_days(harness: Harness, streaming_csv: bytes) -> None:
    asked = await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])
    conversations = harness.running.analyst.parts.conversations
    key = f"C0DATA:{asked.thread_ts}"
    later(harness, 29 * 86400)
    await harness.running.analyst.sweeper.sweep_once()
    assert await conversations.get(key) is not None
    later(harness, 31 * 86400)
    report = await harness.running.analyst.sweeper.sweep_once()
    assert report.conversations_deleted == 1 and await conversations.get(key) is None


# -- :x: on a reply -------------------------------------------------------------------------


async def test_the_asker_reacting_x_deletes_the_reply_and_its_charts(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes
) -> None:
    asked = await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])
    replies = harness.replies(asked)
    answer = next(m for m in replies if m.blocks and m.blocks[0]["type"] == "markdown")
    bot_files = [f["id"] for m in replies for f in m.files]
    assert bot_files
    await harness.deliver(slack.reaction_added_event("U0ALICE", "C0DATA", answer.ts, "x"))
    await harness.settle()
    assert harness.replies(asked) == []
    assert {d.file_id for d in slack.file_deletions} == set(bot_files)


async def test_someone_else_reacting_x_changes_nothing(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes
) -> None:
    asked = await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])
    before = [m.ts for m in harness.replies(asked)]
    answer = next(m for m in harness.replies(asked) if m.blocks and m.blocks[0]["type"] == "markdown")
    await harness.deliver(slack.reaction_added_event("U0BOB", "C0DATA", answer.ts, "x"))
    await harness.deliver(slack.reaction_added_event("U0ALICE", "C0DATA", answer.ts, "thumbsup"))
    await harness.settle()
    assert [m.ts for m in harness.replies(asked)] == before
    assert slack.file_deletions == []


async def test_an_admin_may_delete_any_reply(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    async with Harness({**env, "ANALYST_ADMINS": "U0BOB"}, slack, claude) as harness:
        asked = await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])
        progress = harness.replies(asked)[0]
        await harness.deliver(slack.reaction_added_event("U0BOB", "C0DATA", progress.ts, "x"))
        await harness.settle()
        assert harness.replies(asked) == []
