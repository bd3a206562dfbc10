"""End to end against the real services: a person mentions the bot with streaming.csv and
gets an answer, a chart and ledger entries; a follow-up in the thread reuses the container.

The bot runs in this process (RunningBot over Socket Mode); the person is driven with their
user token. Replies are polled from Slack with a bounded deadline: a real-world wait on real
services, which is why this suite never runs by default.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.schema import TERMINAL_STATUSES
from bot.settings import Settings
from bot.store import thread_key
from handlers.server import RunningBot
from tests.conftest import STREAMING_CSV

pytestmark = pytest.mark.live

#: How long one analysis may take before the suite gives up on it.
ANSWER_DEADLINE_S = 600.0
POLL_EVERY_S = 5.0


async def eventually(check: Callable[[], Awaitable[Any]], *, what: str, deadline: float = ANSWER_DEADLINE_S) -> Any:
    """Poll ``check`` until it returns something truthy, or fail after ``deadline`` seconds."""
    give_up = time.monotonic() + deadline
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > give_up:
            raise AssertionError(f"no {what} within {deadline:.0f} s")
        await asyncio.sleep(POLL_EVERY_S)


@pytest.fixture
async def bot(live_env: dict[str, str], tmp_path: Path) -> AsyncIterator[RunningBot]:
    env = {
        "SLACK_BOT_TOKEN": live_env["LIVE_SLACK_BOT_TOKEN"],
        "SLACK_APP_TOKEN": live_env["LIVE_SLACK_APP_TOKEN"],
        "ANTHROPIC_API_KEY": live_env["ANTHROPIC_API_KEY"],
        "ANALYST_DB": str(tmp_path / "analyst.db"),
        "ANALYST_ALLOWED_CHANNELS": live_env["LIVE_SLACK_CHANNEL"],
    }
    for optional in ("ANALYST_MODEL", "ANALYST_CODE_EXECUTION", "ANTHROPIC_BASE_URL"):
        if os.environ.get(optional):
            env[optional] = os.environ[optional]
    running = await RunningBot(Settings.from_env(env), http=False).start()
    try:
        yield running
    finally:
        await running.stop(grace=120)
        await forget_files(running)


async def forget_files(running: RunningBot) -> None:
    """Delete what the run left in the Files API (the retention sweep would, a day later)."""
    store = running.analyst.store
    for row in await store.files():
        if not row.get("deleted_at"):
            try:
                await running.analyst.parts.files_api.client.files.delete(row["id"])
            except anthropic.APIError as error:  # cleanup must not hide the test's outcome
                print(f"could not delete {row['id']}: {error!r}")


async def bot_replies(person: AsyncWebClient, channel: str, thread_ts: str, bot_user: str) -> list[dict[str, Any]]:
    response = await person.conversations_replies(channel=channel, ts=thread_ts, limit=200)
    return [m for m in response["messages"] if m.get("user") == bot_user and m["ts"] != thread_ts]


async def finished_run(running: RunningBot, after: int) -> dict[str, Any] | None:
    runs = [r for r in await running.analyst.store.all_runs() if r["id"] > after and r["status"] in TERMINAL_STATUSES]
    return runs[-1] if runs else None


async def test_a_mention_with_a_csv_is_answered_and_a_follow_up_reuses_the_container(
    live_env: dict[str, str], bot: RunningBot
) -> None:
    channel = live_env["LIVE_SLACK_CHANNEL"]
    person = AsyncWebClient(token=live_env["LIVE_SLACK_USER_TOKEN"])
    bot_user = (await bot.surface.client.auth_test())["user_id"]

    # A person shares streaming.csv with a mention of the bot.
    upload = await person.files_upload_v2(
        channel=channel,
        file=str(STREAMING_CSV),
        filename="streaming.csv",
        initial_comment=f"<@{bot_user}> what drives churn here?",
    )
    file_id = upload["files"][0]["id"]

    async def shared_ts() -> str | None:
        shares = (await person.files_info(file=file_id))["file"].get("shares", {})
        posts = [p for kind in ("public", "private") for p in shares.get(kind, {}).get(channel, [])]
        return str(posts[0]["ts"]) if posts else None

    thread_ts = await eventually(shared_ts, what="share of streaming.csv", deadline=60)

    # The answer, a chart and the ledger.
    first = await eventually(lambda: finished_run(bot, 0), what="finished analysis")
    assert first["status"] == "succeeded", first["error"]
    replies = await eventually(
        lambda: bot_replies(person, channel, thread_ts, bot_user), what="reply in the thread", deadline=60
    )
    text = "\n".join(m.get("text", "") for m in replies)
    assert "churn" in text.lower() and "%" in text, text[:2000]
    charts = [f for m in replies for f in m.get("files", []) if f.get("mimetype", "").startswith("image/")]
    assert charts, "no chart in the thread"
    posts = await bot.analyst.store.posts_of_run(first["id"])
    assert {p["kind"] for p in posts} >= {"message", "file"}, posts
    files = await bot.analyst.store.files()
    assert {f["origin"] for f in files} >= {"upload", "generated"}, files
    assert first["input_tokens"] > 0 and first["code_executions"] > 0
    conversation = await bot.analyst.parts.conversations.get(thread_key(channel, thread_ts))
    assert conversation is not None and conversation.container_id

    # A follow-up in the thread runs in the same container.
    await person.chat_postMessage(
        channel=channel, thread_ts=thread_ts, text=f"<@{bot_user}> now break churn down by tier"
    )
    second = await eventually(lambda: finished_run(bot, first["id"]), what="finished follow-up")
    assert second["status"] == "succeeded", second["error"]
    assert second["container_id"] == first["container_id"]
    later = await eventually(
        lambda: bot_replies(person, channel, thread_ts, bot_user),
        what="follow-up reply",
        deadline=60,
    )
    assert len(later) > len(replies)
