"""The fakes' rules for streams, chunk limits, stream recipients and failing file transfers,
driven by the real SDK clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
import anthropic
import httpx2
import pytest
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_web_api import STREAM_LIFETIME_S


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def api_error(call: Awaitable[Any]) -> str:
    with pytest.raises(SlackApiError) as raised:
        await call
    return str(raised.value.response["error"])


async def started_stream(slack: FakeSlack, client: AsyncWebClient, **extra: Any) -> str:
    root = slack.post_user_message("C0DATA", "U0ALICE", "go")
    started = await client.chat_startStream(
        channel="C0DATA", thread_ts=root["ts"], recipient_team_id="T0TEAM", recipient_user_id="U0ALICE", **extra
    )
    return str(started["ts"])


async def test_a_stream_closes_five_minutes_after_it_started(slack: FakeSlack, client: AsyncWebClient) -> None:
    ts = await started_stream(slack, client, markdown_text="Working")
    slack.advance(STREAM_LIFETIME_S - 1)
    await client.chat_appendStream(channel="C0DATA", ts=ts, markdown_text=" still")  # busy or not, it counts from start
    slack.advance(1)
    assert await api_error(client.chat_appendStream(channel="C0DATA", ts=ts, markdown_text="…")) == (
        "message_not_in_streaming_state"
    )
    assert await api_error(client.chat_stopStream(channel="C0DATA", ts=ts)) == "message_not_in_streaming_state"
    message = slack.message("C0DATA", ts)
    assert message.stream is not None and message.stream.stopped_by == "timeout"
    assert slack.visible_text(message) == "Working still"
    # chat.update on the same ts is what changes it from now on.
    await client.chat_update(channel="C0DATA", ts=ts, text="*Done*")
    assert slack.visible_text(message) == "*Done*"


@pytest.mark.parametrize(
    ("chunk", "ok"),
    [
        ({"type": "task_update", "id": "t", "title": "T", "status": "complete", "output": "o" * 256}, True),
        ({"type": "task_update", "id": "t", "title": "T", "status": "complete", "output": "o" * 257}, False),
        ({"type": "task_update", "id": "t", "title": "T", "status": "complete", "details": "d" * 257}, False),
        ({"type": "plan_update", "title": "p" * 257}, False),
    ],
)
async def test_task_and_plan_fields_are_at_most_256_characters(
    chunk: dict[str, Any], ok: bool, slack: FakeSlack, client: AsyncWebClient
) -> None:
    ts = await started_stream(slack, client)
    call = client.chat_appendStream(channel="C0DATA", ts=ts, chunks=[chunk])
    if ok:
        await call
    else:
        assert await api_error(call) == "invalid_chunks"


async def test_a_stream_recipient_comes_with_their_own_team(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.add_user("U0EXT", "erin", team_id="T0PARTNER")
    slack.add_channel("C0SHARED", "shared", is_ext_shared=True)
    root = slack.post_user_message("C0SHARED", "U0EXT", "go")
    wrong = client.chat_startStream(
        channel="C0SHARED", thread_ts=root["ts"], recipient_team_id="T0TEAM", recipient_user_id="U0EXT"
    )
    assert await api_error(wrong) == "invalid_arguments"
    await client.chat_startStream(
        channel="C0SHARED", thread_ts=root["ts"], recipient_team_id="T0PARTNER", recipient_user_id="U0EXT"
    )


async def test_uploads_that_drop_or_stall(slack: FakeSlack) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, timeout=1)
    slack.fail_next("upload", mode="drop", times=2)  # the client's default handler retries once
    with pytest.raises(aiohttp.ClientError):
        await client.files_upload_v2(content="a,b\n", filename="t.csv")
    slack.fail_next("upload", status=400, error="bad upload")
    with pytest.raises(SlackRequestError):
        await client.files_upload_v2(content="a,b\n", filename="t.csv")
    slack.fail_next("upload", mode="stall")
    with pytest.raises(TimeoutError):
        await client.files_upload_v2(content="a,b\n", filename="t.csv")
    assert [u.reason for u in slack.uploads] == ["fault: drop", "fault: drop", "fault: 400", "fault: stall"]
    with pytest.raises(ValueError, match="only uploads"):
        slack.fail_next("chat.postMessage", mode="drop")


@pytest.fixture
async def api(claude: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(api_key=claude.api_key, base_url=claude.base_url, max_retries=0) as client:
        yield client


async def test_a_download_that_breaks_mid_body(claude: FakeAnthropic, api: anthropic.AsyncAnthropic) -> None:
    stored = claude.add_file("chart.png", b"\x89PNG" + bytes(5000))
    stored.origin = "generated"  # only generated files are downloadable
    claude.break_download_next(after_bytes=100)
    received = b""
    with pytest.raises(httpx2.TransportError):
        async with api.files.with_streaming_response.download(stored.id) as response:
            async for chunk in response.iter_bytes():
                received += chunk
    assert len(received) < len(stored.data)
    # the next download is whole
    async with api.files.with_streaming_response.download(stored.id) as response:
        assert await response.read() == stored.data
