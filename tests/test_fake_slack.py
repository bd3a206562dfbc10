"""The fake Slack, driven by the real slack-sdk clients it stands in for."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp, AsyncAssistant
from slack_bolt.context.say.async_say import AsyncSay
from slack_bolt.context.say_stream.async_say_stream import AsyncSayStream
from slack_bolt.context.set_status.async_set_status import AsyncSetStatus
from slack_bolt.context.set_suggested_prompts.async_set_suggested_prompts import AsyncSetSuggestedPrompts
from slack_bolt.context.set_title.async_set_title import AsyncSetTitle
from slack_bolt.request import payload_utils
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack import FakeSlack
from tests.fakes.slack_contract import ConformanceLog
from tests.fakes.slack_models import ts_key

JSON = dict[str, Any]


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


@contextlib.asynccontextmanager
async def serve(app: AsyncApp) -> AsyncIterator[str]:
    """Serve a Bolt app over HTTP on 127.0.0.1; yields its events URL."""
    runner = web.AppRunner(app.web_app(path="/slack/events"))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    finally:
        await runner.cleanup()


async def api_error(call: Any) -> str:
    """The Slack error code a Web API call fails with."""
    with pytest.raises(SlackApiError) as raised:
        await call
    return str(raised.value.response["error"])


class Receiver:
    """A stand-in for the bot's HTTP endpoint: records what Slack POSTs to it.

    ``answer`` builds the HTTP response (an empty 200 by default); it may wait forever.
    """

    def __init__(self, answer: Callable[[], Awaitable[web.StreamResponse]] | None = None) -> None:
        self.requests: list[tuple[bytes, dict[str, str]]] = []
        self._runner: web.AppRunner | None = None
        self._answer = answer
        self.url = ""

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/slack/events", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/slack/events"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((await request.read(), dict(request.headers)))
        return await self._answer() if self._answer else web.Response(text="")


# --------------------------------------------------------------------------- messages


async def test_post_update_delete_in_a_thread(slack: FakeSlack, client: AsyncWebClient) -> None:
    root = slack.post_user_message("C0DATA", "U0ALICE", "How did sales do?")

    posted = await client.chat_postMessage(channel="C0DATA", text="Looking…", thread_ts=root["ts"])
    assert posted["message"]["thread_ts"] == root["ts"]
    await client.chat_update(channel="C0DATA", ts=posted["ts"], text="Sales rose 4%.")
    second = await client.chat_postMessage(channel="C0DATA", text="(scratch)", thread_ts=root["ts"])
    await client.chat_delete(channel="C0DATA", ts=second["ts"])

    assert [slack.visible_text(m) for m in slack.thread("C0DATA", root["ts"])] == [
        "How did sales do?",
        "Sales rose 4%.",
    ]
    edited = slack.message("C0DATA", posted["ts"])
    assert [(e.old_text, e.new_text) for e in edited.edits] == [("Looking…", "Sales rose 4%.")]
    assert slack.message("C0DATA", second["ts"]).deleted
    replies = await client.conversations_replies(channel="C0DATA", ts=root["ts"])
    assert [m["text"] for m in replies["messages"]] == ["How did sales do?", "Sales rose 4%."]
    assert replies["messages"][0]["reply_count"] == 1


async def test_update_and_delete_refuse_other_peoples_and_missing_messages(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    alice = slack.post_user_message("C0DATA", "U0ALICE", "mine")

    assert await api_error(client.chat_update(channel="C0DATA", ts=alice["ts"], text="x")) == "cant_update_message"
    assert await api_error(client.chat_delete(channel="C0DATA", ts=alice["ts"])) == "cant_delete_message"
    assert await api_error(client.chat_delete(channel="C0DATA", ts="1700000000.000001")) == "message_not_found"
    assert await api_error(client.chat_postMessage(channel="C0NOPE", text="x")) == "channel_not_found"


async def test_a_reply_to_a_thread_that_does_not_exist_lands_at_the_channel_root(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C0DATA", text="orphan", thread_ts="1700000000.000100")

    assert "thread_ts" not in posted["message"]
    message = slack.message("C0DATA", posted["ts"])
    assert message.thread_ts is None and message.requested_thread_ts == "1700000000.000100"
    assert message in slack.channel_messages("C0DATA")


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
        ({"blocks": [{"type": "markdown", "text": "x" * 13_000}]}, "invalid_blocks"),
        (
            {"blocks": [{"type": "markdown", "text": "x" * 7000}, {"type": "markdown", "text": "y" * 7000}]},
            "invalid_blocks",
        ),
        ({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]}, "invalid_blocks"),
        ({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]}, "invalid_blocks"),
        ({"blocks": [{"type": "sparkles"}]}, "invalid_blocks"),
        ({"blocks": "[{not json"}, "invalid_blocks_format"),
        ({"text": "x" * 40_001}, "msg_too_long"),
        ({}, "no_text"),
    ],
)
async def test_messages_slack_would_refuse_are_refused(
    slack: FakeSlack, client: AsyncWebClient, arguments: JSON, error: str, slack_conformance: ConformanceLog
) -> None:
    arguments = {"text": "fallback", **arguments} if "blocks" in arguments else arguments
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # slack-sdk's "text is missing" for the no_text case
        assert await api_error(client.chat_postMessage(channel="C0DATA", **arguments)) == error
    assert slack.channel_messages("C0DATA") == []
    expected = ["blocks"] if "blocks" in arguments else []
    assert [violation.kind for violation in slack_conformance.take()] == expected


async def test_blocks_within_limits_are_accepted_and_rendered(slack: FakeSlack, client: AsyncWebClient) -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Result"}},
        {"type": "markdown", "text": "**Sales** rose 4%"},
        {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3000}},
    ]
    posted = await client.chat_postMessage(channel="C0DATA", text="Result", blocks=json.dumps(blocks))

    assert slack.visible_text(slack.message("C0DATA", posted["ts"])) == "Result\n**Sales** rose 4%\n" + "x" * 3000
    assert slack.calls_to("chat.postMessage")[0].params["blocks"] == blocks  # decoded for assertions


async def test_ephemeral_messages_only_reach_members(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.add_user("U0CAROL", "carol")

    await client.chat_postEphemeral(channel="C0DATA", user="U0BOB", text="only you")
    error = await api_error(client.chat_postEphemeral(channel="C0DATA", user="U0CAROL", text="x"))

    assert error == "user_not_in_channel"
    assert [e.text for e in slack.ephemerals(user="U0BOB")] == ["only you"]
    assert slack.channel_messages("C0DATA") == []


# --------------------------------------------------------------------------- streaming


async def test_chat_stream_helper_end_to_end(slack: FakeSlack, client: AsyncWebClient) -> None:
    root = slack.post_user_message("C0DATA", "U0ALICE", "Analyse this")
    stream = await client.chat_stream(
        channel="C0DATA", thread_ts=root["ts"], recipient_team_id="T0TEAM", recipient_user_id="U0ALICE"
    )

    await stream.append(chunks=[{"type": "plan_update", "title": "Analysing sales.csv"}])
    await stream.append(chunks=[{"type": "task_update", "id": "load", "title": "Load data", "status": "in_progress"}])
    await stream.append(markdown_text="Sales rose ")
    await stream.append(
        chunks=[{"type": "task_update", "id": "load", "title": "Load data", "status": "complete", "output": "12 rows"}]
    )
    await stream.stop(
        markdown_text="4%.", blocks=[{"type": "context", "elements": [{"type": "mrkdwn", "text": "Claude"}]}]
    )

    assert stream.ts is not None
    message = slack.message("C0DATA", stream.ts)
    assert message.thread_ts == root["ts"] and message.by_bot
    assert message.stream is not None and message.stream.state == "stopped"
    assert message.stream.markdown == "Sales rose 4%."
    assert message.stream.plan_title == "Analysing sales.csv"
    load = message.stream.tasks["load"]
    assert (load.status, load.output) == ("complete", "12 rows")
    assert [update["status"] for update in load.history] == ["in_progress", "complete"]
    assert slack.visible_text(message) == "Analysing sales.csv\n✓ Load data\n  12 rows\nSales rose 4%.\nClaude"
    # the helper buffers markdown (256 chars by default): "Sales rose " went out with the next chunk
    methods = [c.method for c in slack.calls if c.method.startswith("chat.")]
    assert methods == ["chat.startStream", "chat.appendStream", "chat.appendStream", "chat.stopStream"]


async def test_stream_errors(slack: FakeSlack, client: AsyncWebClient) -> None:
    root = slack.post_user_message("C0DATA", "U0ALICE", "go")

    no_recipient = client.chat_startStream(channel="C0DATA", thread_ts=root["ts"])
    assert await api_error(no_recipient) == "missing_recipient_team_id"
    no_user = client.chat_startStream(channel="C0DATA", thread_ts=root["ts"], recipient_team_id="T0TEAM")
    assert await api_error(no_user) == "missing_recipient_user_id"
    too_long = client.chat_startStream(
        channel="C0DATA",
        thread_ts=root["ts"],
        recipient_team_id="T0TEAM",
        recipient_user_id="U0ALICE",
        markdown_text="x" * 12_001,
    )
    assert await api_error(too_long) == "msg_too_long"
    bad_task = client.chat_startStream(
        channel="C0DATA",
        thread_ts=root["ts"],
        recipient_team_id="T0TEAM",
        recipient_user_id="U0ALICE",
        chunks=[{"type": "task_update", "id": "t", "title": "T", "status": "done"}],
    )
    assert await api_error(bad_task) == "invalid_chunks"

    plain = await client.chat_postMessage(channel="C0DATA", text="not streaming", thread_ts=root["ts"])
    assert await api_error(client.chat_appendStream(channel="C0DATA", ts=plain["ts"], markdown_text="x")) == (
        "message_not_in_streaming_state"
    )
    assert await api_error(client.chat_stopStream(channel="C0DATA", ts=root["ts"])) == "message_not_owned_by_app"


async def test_streams_in_dms_need_no_recipient_and_can_expire(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.add_channel("D0ALICE", "", is_im=True, members=["U0ALICE"])
    question = slack.post_user_message("D0ALICE", "U0ALICE", "hi")
    started = await client.chat_startStream(channel="D0ALICE", thread_ts=question["ts"], markdown_text="Hel")

    slack.expire_stream("D0ALICE", started["ts"])

    error = await api_error(client.chat_appendStream(channel="D0ALICE", ts=started["ts"], markdown_text="lo"))
    assert error == "message_not_in_streaming_state"
    await client.chat_update(channel="D0ALICE", ts=started["ts"], text="Hello")  # the documented fallback
    assert slack.message("D0ALICE", started["ts"]).text == "Hello"


# --------------------------------------------------------------------------- reactions


async def test_reactions(slack: FakeSlack, client: AsyncWebClient) -> None:
    message = slack.post_user_message("C0DATA", "U0ALICE", "look")

    await client.reactions_add(channel="C0DATA", timestamp=message["ts"], name="eyes")
    twice = client.reactions_add(channel="C0DATA", timestamp=message["ts"], name="eyes")
    assert await api_error(twice) == "already_reacted"
    assert slack.message("C0DATA", message["ts"]).reactions == {"eyes": ["UBOT"]}

    await client.reactions_remove(channel="C0DATA", timestamp=message["ts"], name="eyes")
    assert await api_error(client.reactions_remove(channel="C0DATA", timestamp=message["ts"], name="eyes")) == (
        "no_reaction"
    )
    assert await api_error(client.reactions_add(channel="C0DATA", timestamp=message["ts"], name=":tada:")) == (
        "invalid_name"
    )
    missing = client.reactions_add(channel="C0DATA", timestamp="1700000000.000001", name="tada")
    assert await api_error(missing) == "message_not_found"


# --------------------------------------------------------------------------- files


async def test_files_upload_v2_into_a_thread_shows_the_file(slack: FakeSlack, client: AsyncWebClient) -> None:
    root = slack.post_user_message("C0DATA", "U0ALICE", "chart please")
    png = b"\x89PNG\r\n\x1a\n" + bytes(2000)

    result = await client.files_upload_v2(
        channel="C0DATA", thread_ts=root["ts"], file=png, filename="chart.png", title="Sales by month"
    )

    reply = slack.thread("C0DATA", root["ts"])[-1]
    assert reply.by_bot and [f["id"] for f in reply.files] == [result["file"]["id"]]
    shown = reply.files[0]
    assert (shown["name"], shown["title"], shown["mimetype"], shown["size"]) == (
        "chart.png",
        "Sales by month",
        "image/png",
        len(png),
    )
    assert slack.visible_text(reply) == "[file: Sales by month]"
    info = await client.files_info(file=result["file"]["id"])
    assert info["file"]["url_private_download"] == shown["url_private_download"]
    assert slack.uploads[0].accepted and slack.file(shown["id"]).content == png
    async with (
        aiohttp.ClientSession() as session,
        session.get(shown["url_private_download"], headers={"Authorization": f"Bearer {slack.bot_token}"}) as got,
    ):
        assert await got.read() == png


async def test_an_upload_without_a_channel_stays_private(slack: FakeSlack, client: AsyncWebClient) -> None:
    result = await client.files_upload_v2(content="a,b\n1,2\n", filename="out.csv")

    assert result["file"]["channels"] == [] and slack.channel_messages("C0DATA") == []


async def test_upload_flow_errors(slack: FakeSlack, client: AsyncWebClient) -> None:
    assert await api_error(client.files_getUploadURLExternal(filename="", length=3)) == "invalid_arguments"
    assert await api_error(client.files_getUploadURLExternal(filename="a.csv", length=0)) == "missing_argument"
    ticket = await client.files_getUploadURLExternal(filename="a.csv", length=3)
    not_uploaded = client.files_completeUploadExternal(files=[{"id": ticket["file_id"]}], channel_id="C0DATA")
    assert await api_error(not_uploaded) == "file_not_found"
    unknown = client.files_completeUploadExternal(files=[{"id": "F0NOPE"}])
    assert await api_error(unknown) == "file_not_found"

    async with aiohttp.ClientSession() as session:
        async with session.post(ticket["upload_url"], data=b"toolong") as wrong:
            assert wrong.status == 400
        async with session.post(ticket["upload_url"], data=b"a,b") as right:
            assert (right.status, await right.text()) == (200, "OK - 3")
        async with session.post(ticket["upload_url"], data=b"a,b") as again:
            assert again.status == 400
    assert [(u.received, u.accepted) for u in slack.uploads] == [(7, False), (3, True), (3, False)]


async def test_hosted_files_need_the_bot_token(slack: FakeSlack, client: AsyncWebClient) -> None:
    content = bytes(range(256)) * 12_000  # ~3 MB, streamed in chunks
    shared = slack.host_file(name="big.bin", content=content, size=150 * 1024 * 1024)
    assert shared["size"] == 150 * 1024 * 1024 and shared["user"] == "U0ALICE"

    async with aiohttp.ClientSession() as session:
        async with session.get(shared["url_private"]) as anonymous:
            page = await anonymous.text()
            assert (anonymous.status, anonymous.content_type) == (200, "text/html")
            assert "Sign in to Acme" in page
        auth = {"Authorization": f"Bearer {slack.bot_token}"}
        async with session.get(shared["url_private_download"], headers=auth) as authorized:
            assert authorized.status == 200 and await authorized.read() == content
        wrong = {"Authorization": f"Bearer {slack.app_token}"}
        async with session.get(shared["url_private_download"], headers=wrong) as with_app_token:
            assert with_app_token.content_type == "text/html"

    assert [(d.file_id, d.authorized) for d in slack.downloads] == [
        (shared["id"], False),
        (shared["id"], True),
        (shared["id"], False),
    ]
    assert (await client.files_info(file=shared["id"]))["file"]["name"] == "big.bin"
    slack.delete_file(shared["id"])
    assert await api_error(client.files_info(file=shared["id"])) == "file_deleted"


async def test_download_faults(slack: FakeSlack) -> None:
    shared = slack.host_file(name="a.csv", content=b"a\n1\n")
    slack.fail_next("download", status=503)
    auth = {"Authorization": f"Bearer {slack.bot_token}"}

    async with aiohttp.ClientSession() as session:
        async with session.get(shared["url_private_download"], headers=auth) as failed:
            assert failed.status == 503
        async with session.get(shared["url_private_download"], headers=auth) as fine:
            assert await fine.read() == b"a\n1\n"


# --------------------------------------------------------------------------- auth, faults


async def test_tokens_are_checked(slack: FakeSlack, slack_conformance: ConformanceLog) -> None:
    anonymous = AsyncWebClient(base_url=slack.api_url)
    stranger = AsyncWebClient(token="xoxb-someone-else", base_url=slack.api_url)
    app_level = AsyncWebClient(token=slack.app_token, base_url=slack.api_url)
    bot = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)

    assert await api_error(anonymous.auth_test()) == "not_authed"
    assert await api_error(stranger.auth_test()) == "invalid_auth"
    assert await api_error(app_level.chat_postMessage(channel="C0DATA", text="x")) == "not_allowed_token_type"
    assert await api_error(bot.apps_connections_open(app_token=slack.bot_token)) == "not_allowed_token_type"
    assert await api_error(bot.api_call("chat.frobnicate")) == "unknown_method"
    assert [v.method for v in slack_conformance.take()] == ["chat.frobnicate"]  # slack_sdk has no such method
    opened = await app_level.apps_connections_open(app_token=slack.app_token)
    assert opened["url"].startswith(f"ws://127.0.0.1:{slack.port}/socket-mode?")
    assert [c.token for c in slack.calls_to("auth.test")] == [None, "xoxb-someone-else"]


async def test_rate_limit_is_retried_by_the_sdk_handler(slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("slack_sdk.http_retry.builtin_async_handlers.random.random", lambda: 0.0)  # no jitter
    client = AsyncWebClient(
        token=slack.bot_token,
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    slack.fail_next("chat.postMessage", status=429, retry_after=0)

    posted = await client.chat_postMessage(channel="C0DATA", text="eventually")

    assert posted["ok"]
    calls = slack.calls_to("chat.postMessage")
    assert [(c.http_status, c.error) for c in calls] == [(429, "ratelimited"), (200, None)]


async def test_other_faults(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.fail_next("chat.postMessage", status=500)
    slack.fail_next("reactions.add", error="fatal_error", times=2)

    with pytest.raises(SlackApiError) as server_error:
        await client.chat_postMessage(channel="C0DATA", text="x")
    assert server_error.value.response.status_code == 500
    message = await client.chat_postMessage(channel="C0DATA", text="x")
    for _ in range(2):
        assert await api_error(client.reactions_add(channel="C0DATA", timestamp=message["ts"], name="eyes")) == (
            "fatal_error"
        )
    await client.reactions_add(channel="C0DATA", timestamp=message["ts"], name="eyes")


# --------------------------------------------------------------------------- conversations, users, assistant


async def test_conversations_and_users(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.add_user("U0EXT", "erin", team_id="T0OTHER")
    slack.add_channel("C0SHARED", "shared", is_ext_shared=True, members=["U0ALICE", "U0EXT"])

    erin = (await client.users_info(user="U0EXT"))["user"]
    bot = (await client.users_info(user="UBOT"))["user"]

    assert (erin["team_id"], erin["profile"]["display_name"], "is_stranger" in erin) == ("T0OTHER", "erin", False)
    assert bot["is_bot"]
    assert await api_error(client.users_info(user="U0NOBODY")) == "user_not_found"
    assert await api_error(client.conversations_replies(channel="C0DATA", ts="1700000000.000001")) == (
        "thread_not_found"
    )


async def test_assistant_thread_settings_are_stored(slack: FakeSlack, client: AsyncWebClient) -> None:
    thread_ts, dm, _ = slack.assistant_thread_started_event("U0ALICE")

    await client.assistant_threads_setStatus(
        channel_id=dm, thread_ts=thread_ts, status="is analysing…", loading_messages=["Reading the file"]
    )
    await client.assistant_threads_setSuggestedPrompts(
        channel_id=dm, thread_ts=thread_ts, prompts=[{"title": "Trend", "message": "Show the trend"}]
    )
    await client.assistant_threads_setTitle(channel_id=dm, thread_ts=thread_ts, title="Sales")
    await client.assistant_threads_setStatus(channel_id=dm, thread_ts=thread_ts, status="")

    thread = slack.assistant_thread(dm, thread_ts)
    assert thread is not None
    assert thread.statuses == thread.status_history == ["is analysing…", ""] and thread.status == ""
    assert thread.title == "Sales"
    assert thread.prompts == [{"title": "Trend", "message": "Show the trend"}]
    root = slack.message(dm, thread_ts)
    assert root.to_api()["assistant_app_thread"] == {"title": "Sales", "title_blocks": [], "artifacts": []}
    missing = client.assistant_threads_setStatus(channel_id=dm, thread_ts="1700000000.000001", status="x")
    assert await api_error(missing) == "invalid_thread_ts"


# --------------------------------------------------------------------------- events to the bot


async def test_mention_and_file_share_events_look_like_slacks(slack: FakeSlack) -> None:
    csv = slack.host_file(name="sales.csv", content=b"month,total\n1,10\n")

    mention, envelope = slack.mention_event("C0DATA", "U0ALICE", "what's in this?", files=[csv])
    shared, share_envelope = slack.file_share_message_event(
        "C0DATA", "U0BOB", "", files=[csv], thread_ts=mention["ts"], file_access="check_file_info"
    )

    event = envelope["event"]
    assert envelope["type"] == "event_callback" and envelope["event_id"].startswith("Ev")
    assert envelope["authorizations"] == [
        {"enterprise_id": None, "team_id": "T0TEAM", "user_id": "UBOT", "is_bot": True, "is_enterprise_install": False}
    ]
    assert (event["type"], event["text"], event["channel"]) == ("app_mention", "<@UBOT> what's in this?", "C0DATA")
    assert event["files"][0]["url_private_download"] == csv["url_private_download"]
    share = share_envelope["event"]
    assert (share["subtype"], share["upload"], share["display_as_bot"], share["channel_type"]) == (
        "file_share",
        True,
        False,
        "channel",
    )
    assert share["thread_ts"] == mention["ts"] and share["files"] == [slack.file(csv["id"]).stub()]
    assert envelope["event_id"] != share_envelope["event_id"]
    assert [m.ts for m in slack.thread("C0DATA", mention["ts"])] == [mention["ts"], shared["ts"]]


async def test_deliver_http_is_signed_like_slack(slack: FakeSlack) -> None:
    verifier = SignatureVerifier(slack.signing_secret)
    _, envelope = slack.mention_event("C0DATA", "U0ALICE", "hi")

    async with Receiver() as bot:
        status, _, _ = await slack.deliver_http(bot.url, envelope, retry_num=1, retry_reason="http_timeout")
        await slack.deliver_http(bot.url, envelope, secret="not-the-secret")
        await slack.deliver_http(bot.url, envelope, timestamp=int(time.time()) - 600)
        await slack.deliver_http(bot.url, envelope, sign=False)

    assert status == 200
    (body, headers), forged, stale, unsigned = bot.requests
    assert json.loads(body) == envelope
    assert verifier.is_valid_request(body, headers)
    assert (headers["X-Slack-Retry-Num"], headers["X-Slack-Retry-Reason"]) == ("1", "http_timeout")
    assert not verifier.is_valid_request(*forged)
    assert not verifier.is_valid_request(*stale)
    assert "X-Slack-Signature" not in unsigned[1]


async def test_slash_command_and_its_response_url(slack: FakeSlack) -> None:
    verifier = SignatureVerifier(slack.signing_secret)

    async with Receiver() as bot:
        await slack.deliver_command(bot.url, text="sales.csv trend")
    body, headers = bot.requests[0]
    fields = {name: values[0] for name, values in parse_qs(body.decode()).items()}
    respond = AsyncWebhookClient(fields["response_url"])
    await respond.send(text="Working on it…")
    await respond.send(text="Done: sales rose 4%.", response_type="in_channel")

    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert verifier.is_valid_request(body, headers)
    assert (fields["command"], fields["text"], fields["user_id"], fields["channel_name"]) == (
        "/analyze",
        "sales.csv trend",
        "U0ALICE",
        "data",
    )
    assert [r.payload["text"] for r in slack.responses] == ["Working on it…", "Done: sales rose 4%."]
    assert [e.text for e in slack.ephemerals(user="U0ALICE")] == ["Working on it…"]
    assert [slack.visible_text(m) for m in slack.channel_messages("C0DATA")] == ["Done: sales rose 4%."]


async def test_interactions_are_form_encoded_and_signed(slack: FakeSlack) -> None:
    payload = {"type": "block_actions", "user": {"id": "U0ALICE"}, "actions": [{"action_id": "retry"}]}

    async with Receiver() as bot:
        await slack.deliver_interaction(bot.url, payload)

    body, headers = bot.requests[0]
    assert SignatureVerifier(slack.signing_secret).is_valid_request(body, headers)
    parsed = parse_qs(body.decode())
    assert json.loads(parsed["payload"][0]) == payload


async def test_socket_mode_round_trip_and_reconnect(slack: FakeSlack) -> None:
    received: list[SocketModeRequest] = []

    async def ack(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        received.append(request)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))

    socket_client = SocketModeClient(
        app_token=slack.app_token, web_client=AsyncWebClient(base_url=slack.api_url), auto_reconnect_enabled=True
    )
    socket_client.socket_mode_request_listeners.append(ack)
    try:
        await socket_client.connect()  # type: ignore[no-untyped-call]
        await slack.wait_socket_connected()
        _, envelope = slack.mention_event("C0DATA", "U0ALICE", "hi")

        acked = await slack.deliver_socket(envelope, retry_attempt=1, retry_reason="timeout")

        assert acked["envelope_id"] == received[0].envelope_id
        assert (received[0].type, received[0].retry_attempt, received[0].payload) == ("events_api", 1, envelope)
        await slack.socket_disconnect()
        await slack.wait_for(lambda: slack.socket_connects == 2 and slack.socket_connections == 1)
        assert (await slack.deliver_socket(envelope))["envelope_id"] != acked["envelope_id"]
    finally:
        await socket_client.close()  # type: ignore[no-untyped-call]


async def test_wait_for_reports_recent_calls_on_timeout(slack: FakeSlack, client: AsyncWebClient) -> None:
    await client.auth_test()

    with pytest.raises(AssertionError, match=r"(?s)a reply.*auth\.test\(\) -> ok"):
        await slack.wait_for(lambda: False, timeout=0.01, what="a reply")


async def test_wait_for_wakes_on_the_change(slack: FakeSlack, client: AsyncWebClient) -> None:
    async def post_later() -> None:
        await client.chat_postMessage(channel="C0DATA", text="late")

    task = asyncio.ensure_future(post_later())
    call = await slack.wait_for_call("chat.postMessage")
    await task

    assert call.ok and call.params == {"channel": "C0DATA", "text": "late"}


async def test_a_bolt_app_streams_its_answer_into_the_thread(slack: FakeSlack) -> None:
    app = AsyncApp(
        signing_secret=slack.signing_secret, client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    )

    @app.event("app_mention")
    async def answer(set_status: AsyncSetStatus, say_stream: AsyncSayStream) -> None:
        await set_status("is analysing…")
        stream = await say_stream()
        await stream.append(markdown_text="Sales rose 4%.")
        await stream.stop()

    runner = web.AppRunner(app.web_app(path="/slack/events"))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    try:
        question, envelope = slack.mention_event("C0DATA", "U0ALICE", "how are sales?")
        forged_status, _, _ = await slack.deliver_http(url, envelope, secret="wrong")
        status, _, _ = await slack.deliver_http(url, envelope)
        await slack.wait_for(lambda: slack.calls_to("chat.stopStream") != [], what="the streamed answer")
    finally:
        await runner.cleanup()

    assert (forged_status, status) == (401, 200)
    assert [slack.visible_text(m) for m in slack.thread("C0DATA", question["ts"])] == [
        "<@UBOT> how are sales?",
        "Sales rose 4%.",
    ]
    thread = slack.assistant_thread("C0DATA", question["ts"])
    assert thread is not None and thread.status_history == ["is analysing…"]


# --------------------------------------------------------------------------- DMs with the bot


async def test_open_dm_opens_one_dm_per_person(slack: FakeSlack) -> None:
    dm = slack.open_dm("U0ALICE")

    assert dm.startswith("D") and slack.open_dm("U0ALICE") == dm
    assert slack.open_dm("U0BOB") != dm


async def test_dm_message_events_look_like_slacks(slack: FakeSlack, client: AsyncWebClient) -> None:
    csv = slack.host_file(name="sales.csv", content=b"a\n1\n")

    text, envelope = slack.dm_message_event("U0ALICE", "hello")
    shared, share_envelope = slack.dm_message_event("U0ALICE", "this one", files=[csv])

    dm = slack.open_dm("U0ALICE")
    event, share = envelope["event"], share_envelope["event"]
    assert (event["type"], event["channel"], event["channel_type"], event["text"]) == ("message", dm, "im", "hello")
    assert "subtype" not in event and event["team"] == "T0TEAM" and event["ts"] == text["ts"]
    assert (share["subtype"], share["upload"], share["display_as_bot"], share["channel_type"]) == (
        "file_share",
        True,
        False,
        "im",
    )
    assert [f["id"] for f in share["files"]] == [csv["id"]] and "team" not in share
    assert payload_utils.is_im_message_event(envelope) and payload_utils.is_im_message_event(share_envelope)
    assert [m.ts for m in slack.channel_messages(dm)] == [text["ts"], shared["ts"]]
    assert (await client.files_info(file=csv["id"]))["file"]["ims"] == [dm]


# --------------------------------------------------------------------------- the assistant pane


async def test_assistant_thread_started_creates_the_root_and_the_event(slack: FakeSlack) -> None:
    thread_ts, dm, envelope = slack.assistant_thread_started_event("U0ALICE", context_channel="C0DATA")

    assert dm == slack.open_dm("U0ALICE")
    assert envelope["event"] == {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": "U0ALICE",
            "context": {"channel_id": "C0DATA", "team_id": "T0TEAM", "enterprise_id": None},
            "channel_id": dm,
            "thread_ts": thread_ts,
        },
        "event_ts": envelope["event"]["event_ts"],
    }
    assert payload_utils.is_assistant_thread_started_event(envelope)
    root = slack.message(dm, thread_ts)
    assert (root.subtype, root.user, root.bot_id) == ("assistant_app_thread", "UBOT", None)
    assert slack.bot_messages(dm) == []  # the root is Slack's, not one of the bot's replies
    thread = slack.assistant_thread(dm, thread_ts)
    assert thread is not None and (thread.user_id, thread.context["channel_id"]) == ("U0ALICE", "C0DATA")


async def test_assistant_messages_and_context_changes_route_like_bolt_expects(slack: FakeSlack) -> None:
    csv = slack.host_file(name="sales.csv", content=b"a\n1\n")
    thread_ts, dm, _ = slack.assistant_thread_started_event("U0ALICE")

    message, envelope = slack.assistant_user_message_event(dm, "U0ALICE", "what's the trend?", thread_ts=thread_ts)
    _, with_file = slack.assistant_user_message_event(dm, "U0ALICE", "and here", thread_ts=thread_ts, files=[csv])
    changed = slack.assistant_thread_context_changed_event(dm, thread_ts, context_channel="C0DATA")

    event = envelope["event"]
    assert (event["channel_type"], event["thread_ts"], event["parent_user_id"]) == ("im", thread_ts, "UBOT")
    assert event["assistant_thread"]["action_token"].count(".") == 2 and "bot_id" not in event
    assert payload_utils.is_user_message_event_in_assistant_thread(envelope)
    assert payload_utils.is_user_message_event_in_assistant_thread(with_file)
    assert with_file["event"]["subtype"] == "file_share"
    assert payload_utils.is_assistant_thread_context_changed_event(changed)
    assert changed["event"]["assistant_thread"]["context"]["channel_id"] == "C0DATA"
    thread = slack.assistant_thread(dm, thread_ts)
    assert thread is not None and [c.get("channel_id") for c in thread.context_history] == [None, "C0DATA"]
    assert [m.ts for m in slack.thread(dm, thread_ts)][1] == message["ts"]
    with pytest.raises(ValueError, match="belongs to U0ALICE"):
        slack.assistant_user_message_event(dm, "U0BOB", "me too", thread_ts=thread_ts)


async def test_a_bolt_assistant_runs_against_the_fake(slack: FakeSlack) -> None:
    app = AsyncApp(
        signing_secret=slack.signing_secret, client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    )
    assistant = AsyncAssistant()
    contexts: list[Any] = []

    @assistant.thread_started
    async def greet(say: AsyncSay, set_suggested_prompts: AsyncSetSuggestedPrompts) -> None:
        await say("Hi! Share a file.")
        await set_suggested_prompts(prompts=["Summarise sales.csv"], title="Try")

    @assistant.user_message
    async def answer(
        say: AsyncSay, set_status: AsyncSetStatus, set_title: AsyncSetTitle, get_thread_context: Any
    ) -> None:
        await set_title("Sales trend")
        await set_status("is analysing…")
        contexts.append(await get_thread_context())
        await say("Sales rose 4%.")

    app.assistant(assistant)
    async with serve(app) as url:
        thread_ts, dm, started = slack.assistant_thread_started_event("U0ALICE", context_channel="C0DATA")
        await slack.deliver_http(url, started)
        await slack.wait_for(lambda: len(slack.bot_messages(dm, thread_ts)) == 1, what="the greeting")
        _, message = slack.assistant_user_message_event(dm, "U0ALICE", "trend?", thread_ts=thread_ts)
        await slack.deliver_http(url, message)
        await slack.wait_for(lambda: len(slack.bot_messages(dm, thread_ts)) == 2, what="the answer")

    thread = slack.assistant_thread(dm, thread_ts)
    assert thread is not None
    assert thread.prompts == [{"title": "Summarise sales.csv", "message": "Summarise sales.csv"}]
    assert (thread.prompts_title, thread.title, thread.statuses) == ("Try", "Sales trend", ["is analysing…"])
    answer_ts = slack.bot_messages(dm, thread_ts)[-1].ts
    assert (thread.status, thread.cleared_by) == ("", answer_ts)  # Slack clears the status on the reply
    assert [slack.visible_text(m) for m in slack.bot_messages(dm, thread_ts)] == ["Hi! Share a file.", "Sales rose 4%."]
    assert contexts == [{"channel_id": "C0DATA", "team_id": "T0TEAM", "enterprise_id": None}]


async def test_assistant_calls_are_validated_like_slack(
    slack: FakeSlack, client: AsyncWebClient, slack_conformance: ConformanceLog
) -> None:
    thread_ts, dm, _ = slack.assistant_thread_started_event("U0ALICE")
    in_channel = slack.post_user_message("C0DATA", "U0ALICE", "hi")
    slack.add_channel("D0BOB", "", is_im=True, members=["U0BOB"], bot_is_member=False)
    prompt = {"title": "Trend", "message": "Show the trend"}

    async def prompts_error(**arguments: Any) -> str:
        return await api_error(client.api_call("assistant.threads.setSuggestedPrompts", json=arguments))

    assert await prompts_error(channel_id="C0DATA", thread_ts=in_channel["ts"], prompts=[prompt]) == (
        "channel_not_found"
    )
    assert await prompts_error(channel_id="D0BOB", thread_ts=thread_ts, prompts=[prompt]) == "channel_not_found"
    assert await prompts_error(channel_id=dm, thread_ts="1700000000.000001", prompts=[prompt]) == "invalid_thread_ts"
    assert await prompts_error(channel_id=dm, thread_ts=thread_ts, prompts=[prompt] * 5) == "invalid_arguments"
    assert await prompts_error(channel_id=dm, thread_ts=thread_ts, prompts=[{"title": "x"}]) == "invalid_arguments"
    assert await prompts_error(channel_id=dm, thread_ts=thread_ts, prompts=[]) == "invalid_arguments"
    title_in_channel = client.assistant_threads_setTitle(channel_id="C0DATA", thread_ts=in_channel["ts"], title="x")
    assert await api_error(title_in_channel) == "channel_not_found"
    no_title = client.api_call("assistant.threads.setTitle", json={"channel_id": dm, "thread_ts": thread_ts})
    assert await api_error(no_title) == "invalid_arguments"
    no_thread = client.api_call("assistant.threads.setStatus", json={"channel_id": dm, "status": "x"})
    assert await api_error(no_thread) == "invalid_arguments"
    missing = [(v.method, v.problems[0].split(" (")[0]) for v in slack_conformance.take()]
    assert missing == [
        ("assistant.threads.setTitle", "[ERROR] missing required field: title"),
        ("assistant.threads.setStatus", "[ERROR] missing required field: thread_ts"),
    ]
    too_many = client.assistant_threads_setStatus(
        channel_id=dm, thread_ts=thread_ts, status="x", loading_messages=["."] * 11
    )
    assert await api_error(too_many) == "invalid_arguments"

    # loading states work in channel threads too (chat:write apps, 2026-03 changelog)
    await client.assistant_threads_setStatus(channel_id="C0DATA", thread_ts=in_channel["ts"], status="is reading…")
    # without thread_ts the prompts go to the DM's latest message
    await client.api_call("assistant.threads.setSuggestedPrompts", json={"channel_id": dm, "prompts": [prompt]})
    thread = slack.assistant_thread(dm, thread_ts)
    assert thread is not None and thread.prompts == [prompt]


async def test_the_status_clears_when_the_app_replies_in_the_thread(slack: FakeSlack, client: AsyncWebClient) -> None:
    thread_ts, dm, _ = slack.assistant_thread_started_event("U0ALICE")
    elsewhere, _ = slack.dm_message_event("U0ALICE", "unrelated")

    await client.assistant_threads_setStatus(channel_id=dm, thread_ts=thread_ts, status="is thinking…")
    await client.chat_postMessage(channel=dm, thread_ts=elsewhere["ts"], text="not this thread")
    thread = slack.assistant_thread(dm, thread_ts)
    assert thread is not None and thread.status == "is thinking…"

    reply = await client.chat_postMessage(channel=dm, thread_ts=thread_ts, text="Done.")
    assert (thread.status, thread.cleared_by, thread.loading_messages) == ("", reply["ts"], None)
    await client.assistant_threads_setStatus(channel_id=dm, thread_ts=thread_ts, status="is charting…")
    stream = await client.chat_startStream(channel=dm, thread_ts=thread_ts, markdown_text="Here")
    assert (thread.status, thread.cleared_by) == ("", stream["ts"])
    assert thread.statuses == ["is thinking…", "is charting…"]


async def test_metadata_is_listed_only_when_asked_for(slack: FakeSlack, client: AsyncWebClient) -> None:
    root = slack.post_user_message("C0DATA", "U0ALICE", "hi")
    metadata = {"event_type": "assistant_thread_context", "event_payload": {"channel_id": "C0DATA"}}
    await client.chat_postMessage(channel="C0DATA", thread_ts=root["ts"], text="x", metadata=metadata)

    plain = await client.conversations_replies(channel="C0DATA", ts=root["ts"])
    full = await client.conversations_replies(channel="C0DATA", ts=root["ts"], include_all_metadata=True)

    assert "metadata" not in plain["messages"][1] and full["messages"][1]["metadata"] == metadata


# --------------------------------------------------------------------------- file_shared, permalinks


async def test_file_shared_events_and_permalinks(slack: FakeSlack, client: AsyncWebClient) -> None:
    csv = slack.host_file(name="Q3 Sales (final).csv", content=b"a\n1\n")

    envelope = slack.file_shared_event(csv, channel="C0DATA", user="U0ALICE")
    info = (await client.files_info(file=csv["id"]))["file"]

    assert envelope["event"] == {
        "type": "file_shared",
        "channel_id": "C0DATA",
        "file_id": csv["id"],
        "user_id": "U0ALICE",
        "file": {"id": csv["id"]},
        "event_ts": envelope["event"]["event_ts"],
    }
    assert info["permalink"] == f"https://acme.slack.com/files/U0ALICE/{csv['id']}/q3_sales__final_.csv"
    assert re.fullmatch(rf"https://slack-files\.com/T0TEAM-{csv['id']}-[0-9a-f]{{10}}", info["permalink_public"])
    assert (csv["permalink"], csv["permalink_public"]) == (info["permalink"], info["permalink_public"])
    # the form a person's pasted link takes in a slash command's text
    link = f"<{info['permalink']}>"
    assert re.fullmatch(r"<https://acme\.slack\.com/files/U\w+/(F\w+)/[^>]+>", link)


async def test_files_shared_only_where_the_bot_is_not_stay_hidden(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.add_channel("G0SECRET", "secret", is_private=True, bot_is_member=False)
    secret = slack.host_file(name="secret.csv", content=b"a\n")
    slack.post_user_message("G0SECRET", "U0ALICE", "", files=[secret])

    assert await api_error(client.files_info(file=secret["id"])) == "file_not_found"


# --------------------------------------------------------------------------- slash commands


def answer_with(response: web.StreamResponse) -> Callable[[], Awaitable[web.StreamResponse]]:
    async def answer() -> web.StreamResponse:
        return response

    return answer


@pytest.mark.parametrize(
    ("response", "shown_to_alice", "shown_to_bob"),
    [
        (web.Response(text=""), [], []),
        (web.Response(text="Working on it…"), ["Working on it…"], []),
        (web.json_response({"text": "Only you", "response_type": "ephemeral"}), ["Only you"], []),
        (
            web.json_response({"text": "Analysing…", "response_type": "in_channel"}),
            ["/analyze sales.csv", "Analysing…"],
            ["/analyze sales.csv", "Analysing…"],
        ),
        (web.json_response({"response_type": "in_channel"}), ["/analyze sales.csv"], ["/analyze sales.csv"]),
        (web.Response(status=500, text="boom"), ['/analyze failed with the error "http_service_error"'], []),
    ],
)
async def test_the_immediate_answer_to_a_command_is_shown_like_slack(
    slack: FakeSlack, response: web.StreamResponse, shown_to_alice: list[str], shown_to_bob: list[str]
) -> None:
    async with Receiver(answer_with(response)) as bot:
        await slack.deliver_command(bot.url, text="sales.csv")

    (reply,) = slack.command_replies
    assert (reply.command, reply.text, reply.user_id, reply.via) == ("/analyze", "sales.csv", "U0ALICE", "http")
    assert [slack.visible_text(m) for m in slack.visible_to("U0ALICE", "C0DATA")] == shown_to_alice
    assert [slack.visible_text(m) for m in slack.visible_to("U0BOB", "C0DATA")] == shown_to_bob


async def test_a_command_answered_too_late_shows_slacks_timeout(slack: FakeSlack) -> None:
    release = asyncio.Event()

    async def never() -> web.StreamResponse:
        await release.wait()
        return web.Response(text="too late")

    async with Receiver(never) as bot:
        try:
            status, _, _ = await slack.deliver_command(bot.url, ack_timeout=0.05)
        finally:
            release.set()

    assert status == 0 and slack.command_replies[0].error == "operation_timeout"
    assert [e.text for e in slack.ephemerals("C0DATA", "U0ALICE")] == [
        '/analyze failed with the error "operation_timeout"'
    ]


async def test_response_urls_replace_delete_and_run_out(slack: FakeSlack) -> None:
    async with Receiver(answer_with(web.Response(text="Queued."))) as bot:
        await slack.deliver_command(bot.url, text="sales.csv")
    respond = AsyncWebhookClient(slack.command_replies[0].response_url)

    replaced = await respond.send(text="Analysing sales.csv…", replace_original=True)
    assert [slack.visible_text(e) for e in slack.ephemerals("C0DATA", "U0ALICE")] == ["Analysing sales.csv…"]
    assert [(e.old_text, e.new_text) for e in slack.ephemerals()[0].edits] == [("Queued.", "Analysing sales.csv…")]
    await respond.send(text="Sales rose 4%.", response_type="in_channel")
    await respond.send(text="Edited: sales rose 5%.", replace_original=True)
    assert [slack.visible_text(m) for m in slack.visible_to("U0BOB", "C0DATA")] == ["Edited: sales rose 5%."]
    await respond.send(delete_original=True)
    assert slack.channel_messages("C0DATA") == []
    fifth = await respond.send(text="one more")
    sixth = await respond.send(text="too many")

    assert (replaced.status_code, fifth.status_code) == (200, 200)
    assert (sixth.status_code, sixth.body) == (404, "expired_url")
    assert [(r.http_status, r.error) for r in slack.responses][-2:] == [(200, None), (404, "expired_url")]
    assert [e.text for e in slack.ephemerals("C0DATA", "U0ALICE")] == ["Analysing sales.csv…", "one more"]


async def test_an_interactions_response_url_acts_on_the_clicked_message(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    clicked = await client.chat_postMessage(channel="C0DATA", text="Retry?")
    respond = AsyncWebhookClient(slack.new_response_url("C0DATA", "U0ALICE", message_ts=clicked["ts"]))

    await respond.send(text="Retrying…", replace_original=True)
    await respond.send(text="Started the retry.")  # a new ephemeral, not the new original
    await respond.send(text="Retried.", replace_original=True)

    assert slack.visible_text(slack.message("C0DATA", clicked["ts"])) == "Retried."
    assert [e.text for e in slack.ephemerals("C0DATA", "U0ALICE")] == ["Started the retry."]
    await respond.send(delete_original=True)
    assert slack.message("C0DATA", clicked["ts"]).deleted


async def test_a_response_url_expires_after_thirty_minutes(slack: FakeSlack) -> None:
    url = slack.new_response_url("C0DATA", "U0ALICE")
    slack.expire_response_url(url)

    late = await AsyncWebhookClient(url).send(text="late")

    assert (late.status_code, late.body) == (404, "expired_url") and slack.ephemerals() == []


async def test_socket_mode_command_acks_are_shown_too(slack: FakeSlack) -> None:
    async def ack(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        answer = {"response_type": "in_channel", "text": "On it."}
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=answer))

    socket_client = SocketModeClient(app_token=slack.app_token, web_client=AsyncWebClient(base_url=slack.api_url))
    socket_client.socket_mode_request_listeners.append(ack)
    try:
        await socket_client.connect()  # type: ignore[no-untyped-call]
        await slack.wait_socket_connected()
        await slack.deliver_socket(slack.command_payload(text="sales.csv"), envelope_type="slash_commands")
    finally:
        await socket_client.close()  # type: ignore[no-untyped-call]

    (reply,) = slack.command_replies
    assert (reply.via, reply.response_type) == ("socket", "in_channel")
    assert [slack.visible_text(m) for m in slack.visible_to("U0BOB", "C0DATA")] == ["/analyze sales.csv", "On it."]


async def test_visible_to_interleaves_ephemerals_with_messages(slack: FakeSlack, client: AsyncWebClient) -> None:
    question = slack.post_user_message("C0DATA", "U0ALICE", "sales?")
    await client.chat_postEphemeral(channel="C0DATA", user="U0ALICE", text="Only Alice sees this")
    await client.chat_postMessage(channel="C0DATA", text="Everyone sees this")
    await client.chat_postEphemeral(channel="C0DATA", user="U0ALICE", thread_ts=question["ts"], text="In the thread")
    slack.add_channel("G0SECRET", "secret", is_private=True, members=["U0BOB"])

    assert [slack.visible_text(m) for m in slack.visible_to("U0ALICE", "C0DATA")] == [
        "sales?",
        "Only Alice sees this",
        "Everyone sees this",
    ]
    assert [slack.visible_text(m) for m in slack.visible_to("U0BOB", "C0DATA")] == ["sales?", "Everyone sees this"]
    in_thread = slack.visible_to("U0ALICE", "C0DATA", thread_ts=question["ts"])
    assert [slack.visible_text(m) for m in in_thread] == ["sales?", "In the thread"]
    assert slack.visible_to("U0ALICE", "G0SECRET") == []
    assert [e.text for e in slack.ephemerals("C0DATA", "U0ALICE")] == ["Only Alice sees this", "In the thread"]


# --------------------------------------------------------------------------- uploads of generated outputs


async def test_files_upload_v2_with_several_files_snippets_and_alt_text(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    question = slack.post_user_message("C0DATA", "U0ALICE", "chart and code please")
    png = b"\x89PNG\r\n\x1a\n" + bytes(100)

    result = await client.files_upload_v2(
        channel="C0DATA",
        thread_ts=question["ts"],
        initial_comment="Here are the chart and the script.",
        file_uploads=[
            {"file": png, "filename": "chart.png", "title": "Sales by month", "alt_txt": "Bar chart of sales"},
            {"content": "print(42)\n", "filename": "analysis.py", "title": "Script", "snippet_type": "python"},
        ],
    )

    reply = slack.thread("C0DATA", question["ts"])[-1]
    assert reply.by_bot and reply.text == "Here are the chart and the script."
    assert slack.visible_text(reply) == "Here are the chart and the script.\n[file: Sales by month]\n[file: Script]"
    chart, script = [await client.files_info(file=f["id"]) for f in result["files"]]
    assert (chart["file"]["alt_txt"], chart["file"]["mimetype"]) == ("Bar chart of sales", "image/png")
    assert (script["file"]["mode"], script["file"]["filetype"]) == ("snippet", "python")
    assert slack.file(script["file"]["id"]).content == b"print(42)\n"
    assert [c.method for c in slack.calls if c.method.startswith("files.")].count("files.completeUploadExternal") == 1
    assert [c.params.get("snippet_type") for c in slack.calls_to("files.getUploadURLExternal")] == [None, "python"]


# --------------------------------------------------------------------------- people from elsewhere


async def test_guests_external_and_enterprise_users_look_like_slacks(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.add_user("U0GUEST", "gail", guest="multi_channel")
    slack.add_user("U0SINGLE", "sam", guest="single_channel")
    slack.add_user("W0GRID", "gus", team_id="T0GRID", enterprise_id="E0ORG", enterprise_name="Globex")
    slack.add_user("U0STRANGER", "stan", team_id="T0FAR")
    slack.add_channel("C0SHARED", "shared", is_ext_shared=True, members=["U0ALICE", "W0GRID"])

    async def user(user_id: str) -> JSON:
        return dict((await client.users_info(user=user_id))["user"])

    guest, single, grid, stranger, alice = [
        await user(u) for u in ("U0GUEST", "U0SINGLE", "W0GRID", "U0STRANGER", "U0ALICE")
    ]
    assert (guest["is_restricted"], guest["is_ultra_restricted"]) == (True, False)
    assert (single["is_restricted"], single["is_ultra_restricted"]) == (True, True)
    assert (alice["is_restricted"], alice["is_ultra_restricted"], "enterprise_user" in alice) == (False, False, False)
    assert (grid["team_id"], grid["profile"]["team"], "is_stranger" in grid) == ("T0GRID", "T0GRID", False)
    assert grid["enterprise_user"] == {
        "id": "W0GRID",
        "enterprise_id": "E0ORG",
        "enterprise_name": "Globex",
        "is_admin": False,
        "is_owner": False,
        "teams": ["T0GRID"],
    }
    assert (stranger["team_id"], stranger["is_stranger"]) == ("T0FAR", True)


async def test_mentioned_people_resolve_through_users_info(slack: FakeSlack, client: AsyncWebClient) -> None:
    message, envelope = slack.mention_event("C0DATA", "U0ALICE", "compare with <@U0BOB>'s numbers")

    mentioned = re.findall(r"<@(U\w+)>", envelope["event"]["text"])
    names = [(await client.users_info(user=u))["user"]["name"] for u in mentioned]

    assert names == ["analyst", "bob"] and message["text"].startswith("<@UBOT> ")


# --------------------------------------------------------------------------- deleting files


async def test_files_delete_leaves_a_tombstone_where_the_file_was(slack: FakeSlack, client: AsyncWebClient) -> None:
    question = slack.post_user_message("C0DATA", "U0ALICE", "chart please")
    chart = await client.files_upload_v2(
        channel="C0DATA",
        thread_ts=question["ts"],
        file=b"\x89PNG\r\n\x1a\n" + bytes(100),
        filename="chart.png",
        title="Sales",
        initial_comment="Here it is.",
    )
    table = await client.files_upload_v2(channel="C0DATA", thread_ts=question["ts"], content="a,b\n", filename="t.csv")
    chart_id, table_id = chart["file"]["id"], table["file"]["id"]

    assert (await client.files_delete(file=chart_id)).data == {"ok": True}
    await client.files_delete(file=table_id)

    with_comment, only_the_file = slack.thread("C0DATA", question["ts"])[1:]
    assert with_comment.files == [{"id": chart_id, "mode": "tombstone"}]
    assert slack.visible_text(with_comment) == "Here it is.\nThis file was deleted."
    assert slack.visible_text(only_the_file) == "This file was deleted."  # the message stays, as in Slack
    listed = (await client.conversations_replies(channel="C0DATA", ts=question["ts"]))["messages"]
    assert [m.get("files") for m in listed] == [
        None,
        [{"id": chart_id, "mode": "tombstone"}],
        [{"id": table_id, "mode": "tombstone"}],
    ]
    assert await api_error(client.files_info(file=chart_id)) == "file_deleted"
    assert await api_error(client.files_delete(file=chart_id)) == "file_deleted"
    auth = {"Authorization": f"Bearer {slack.bot_token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(chart["file"]["url_private_download"], headers=auth) as gone,
    ):
        assert gone.status == 404
    assert [(d.file_id, d.user, d.via, d.messages) for d in slack.file_deletions] == [
        (chart_id, "UBOT", "files.delete", [("C0DATA", with_comment.ts)]),
        (table_id, "UBOT", "files.delete", [("C0DATA", only_the_file.ts)]),
    ]
    deleted = slack.file_deleted_event(chart_id)
    assert deleted["event"] == {"type": "file_deleted", "file_id": chart_id, "event_ts": deleted["event"]["event_ts"]}


async def test_files_delete_refuses_other_peoples_and_unknown_files(
    slack: FakeSlack, client: AsyncWebClient, slack_conformance: ConformanceLog
) -> None:
    shared = slack.host_file(name="sales.csv", content=b"a\n1\n")
    message = slack.post_user_message("C0DATA", "U0ALICE", "here", files=[shared])
    slack.add_channel("G0SECRET", "secret", is_private=True, bot_is_member=False)
    secret = slack.host_file(name="secret.csv", content=b"a\n")
    slack.post_user_message("G0SECRET", "U0ALICE", "", files=[secret])
    pending = await client.files_getUploadURLExternal(filename="never.csv", length=3)

    assert await api_error(client.files_delete(file=shared["id"])) == "cant_delete_file"
    assert await api_error(client.files_delete(file="F0NOPE")) == "file_not_found"
    assert await api_error(client.files_delete(file=secret["id"])) == "file_not_found"
    assert await api_error(client.files_delete(file=pending["file_id"])) == "file_not_found"
    assert await api_error(client.api_call("files.delete")) == "invalid_arguments"
    assert [v.method for v in slack_conformance.take()] == ["files.delete"]
    assert slack.file_deletions == [] and (await client.files_info(file=shared["id"]))["ok"]

    deletion = slack.delete_file(shared["id"])  # Alice deletes her own file

    assert (deletion.user, deletion.via, deletion.messages) == ("U0ALICE", "person", [("C0DATA", message["ts"])])
    assert slack.visible_text(message) == "here\nThis file was deleted."
    assert await api_error(client.files_info(file=shared["id"])) == "file_deleted"
    with pytest.raises(ValueError, match="already deleted"):
        slack.delete_file(shared["id"])
    with pytest.raises(ValueError, match="not deleted"):
        slack.file_deleted_event(secret["id"])


# --------------------------------------------------------------------------- reactions from people


async def test_reaction_events_look_like_slacks_and_record_the_reaction(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    question = slack.post_user_message("C0DATA", "U0ALICE", "sales?")
    answer = await client.chat_postMessage(channel="C0DATA", thread_ts=question["ts"], text="Up 4%.")

    added = slack.reaction_added_event("U0BOB", "C0DATA", answer["ts"], "thumbsup")
    await client.reactions_add(channel="C0DATA", timestamp=answer["ts"], name="thumbsup")
    on_question = slack.reaction_added_event("U0BOB", "C0DATA", question["ts"], "eyes")

    assert added["type"] == "event_callback" and added["is_ext_shared_channel"] is False
    assert added["event"] == {
        "type": "reaction_added",
        "user": "U0BOB",
        "reaction": "thumbsup",
        "item_user": "UBOT",
        "item": {"type": "message", "channel": "C0DATA", "ts": answer["ts"]},
        "event_ts": added["event"]["event_ts"],
    }
    assert on_question["event"]["item_user"] == "U0ALICE"
    assert slack.message("C0DATA", answer["ts"]).reactions == {"thumbsup": ["U0BOB", "UBOT"]}
    listed = (await client.conversations_replies(channel="C0DATA", ts=question["ts"]))["messages"][1]
    assert listed["reactions"] == [{"name": "thumbsup", "users": ["U0BOB", "UBOT"], "count": 2}]

    removed = slack.reaction_removed_event("U0BOB", "C0DATA", answer["ts"], "thumbsup")
    assert removed["event"]["type"] == "reaction_removed" and removed["event"]["item"] == added["event"]["item"]
    assert slack.message("C0DATA", answer["ts"]).reactions == {"thumbsup": ["UBOT"]}
    assert removed["event_id"] != added["event_id"]

    slack.add_user("U0CAROL", "carol")
    refusals: list[tuple[Callable[[], JSON], str]] = [
        (lambda: slack.reaction_added_event("U0BOB", "C0DATA", question["ts"], "eyes"), "already reacted"),
        (lambda: slack.reaction_removed_event("U0BOB", "C0DATA", answer["ts"], "thumbsup"), "no :thumbsup:"),
        (lambda: slack.reaction_added_event("U0CAROL", "C0DATA", answer["ts"], "eyes"), "not a member"),
        (lambda: slack.reaction_added_event("U0BOB", "C0DATA", answer["ts"], ":tada:"), "not an emoji name"),
        (lambda: slack.reaction_added_event("U0BOB", "C0DATA", "1700000000.000001", "tada"), "no message"),
    ]
    for refused, match in refusals:
        with pytest.raises(ValueError, match=match):
            refused()


async def test_a_bolt_app_hears_reactions(slack: FakeSlack) -> None:
    app = AsyncApp(
        signing_secret=slack.signing_secret, client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    )

    @app.event("reaction_added")
    async def thank(event: JSON, say: AsyncSay) -> None:
        await say(text=f"Thanks for the :{event['reaction']}:", thread_ts=event["item"]["ts"])

    @app.event("reaction_removed")
    async def noted(event: JSON, say: AsyncSay) -> None:
        await say(text="Noted.", thread_ts=event["item"]["ts"])

    answer = slack.post_user_message("C0DATA", "U0ALICE", "Sales rose 4%.")
    async with serve(app) as url:
        await slack.deliver_http(url, slack.reaction_added_event("U0BOB", "C0DATA", answer["ts"], "tada"))
        await slack.wait_for(lambda: len(slack.bot_messages("C0DATA", answer["ts"])) == 1, what="the thanks")
        await slack.deliver_http(url, slack.reaction_removed_event("U0BOB", "C0DATA", answer["ts"], "tada"))
        await slack.wait_for(lambda: len(slack.bot_messages("C0DATA", answer["ts"])) == 2, what="the note")

    assert [slack.visible_text(m) for m in slack.bot_messages("C0DATA", answer["ts"])] == [
        "Thanks for the :tada:",
        "Noted.",
    ]


# --------------------------------------------------------------------------- Slack Connect


async def test_an_external_person_mentions_the_bot_in_a_shared_channel(slack: FakeSlack) -> None:
    slack.add_user("U0EXT", "erin", team_id="T0OTHER", real_name="Erin Example")
    slack.add_channel("C0SHARED", "shared", is_ext_shared=True)  # everyone, Erin included
    app = AsyncApp(
        signing_secret=slack.signing_secret, client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    )
    actors: list[tuple[str | None, str | None, str | None]] = []

    @app.event("app_mention")
    async def answer(event: JSON, context: Any, say: AsyncSay, client: AsyncWebClient) -> None:
        actors.append((context.team_id, context.actor_team_id, context.actor_user_id))
        person = (await client.users_info(user=event["user"]))["user"]
        await say(text=f"Hi {person['name']} of {person['team_id']}", thread_ts=event["ts"])

    async with serve(app) as url:
        question, envelope = slack.mention_event("C0SHARED", "U0EXT", "what's in the Q3 numbers?")
        status, _, _ = await slack.deliver_http(url, envelope)
        await slack.wait_for(lambda: len(slack.thread("C0SHARED", question["ts"])) == 2, what="the answer")

    event = envelope["event"]
    assert status == 200 and envelope["is_ext_shared_channel"] is True
    assert (envelope["team_id"], envelope["authorizations"][0]["team_id"]) == ("T0TEAM", "T0TEAM")
    assert (event["user"], event["team"], event["user_team"], event["source_team"]) == (
        "U0EXT",
        "T0OTHER",
        "T0OTHER",
        "T0OTHER",
    )
    assert event["user_profile"] == {
        "avatar_hash": event["user_profile"]["avatar_hash"],
        "image_72": "https://avatars.example/U0EXT_72.png",
        "first_name": "Erin",
        "real_name": "Erin Example",
        "display_name": "erin",
        "team": "T0OTHER",
        "name": "erin",
        "is_restricted": False,
        "is_ultra_restricted": False,
    }
    assert actors == [("T0TEAM", "T0OTHER", "U0EXT")]  # Bolt reads the acting org from user_team
    assert slack.visible_text(slack.thread("C0SHARED", question["ts"])[-1]) == "Hi erin of T0OTHER"


async def test_slack_connect_fields_appear_where_slack_sends_them(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.add_user("U0EXT", "erin", team_id="T0OTHER")
    slack.add_user("U0FAR", "stan", team_id="T0FAR")
    slack.add_channel("C0SHARED", "shared", is_ext_shared=True, members=["U0ALICE", "U0EXT"])
    csv = slack.host_file(name="q3.csv", content=b"a\n1\n", user="U0EXT")

    _, local = slack.message_event("C0SHARED", "U0ALICE", "morning")
    _, plain = slack.message_event("C0DATA", "U0ALICE", "morning")
    _, shared_file = slack.file_share_message_event("C0SHARED", "U0EXT", "numbers", files=[csv])
    _, in_dm = slack.dm_message_event("U0EXT", "hello")
    reaction = slack.reaction_added_event("U0EXT", "C0SHARED", local["event"]["ts"], "wave")

    assert (local["event"]["user_team"], local["event"]["source_team"], "user_profile" in local["event"]) == (
        "T0TEAM",
        "T0TEAM",
        False,
    )
    assert not {"user_team", "source_team", "user_profile"} & plain["event"].keys()
    assert plain["is_ext_shared_channel"] is False
    assert (shared_file["event"]["user_team"], shared_file["event"]["user_profile"]["team"]) == ("T0OTHER", "T0OTHER")
    assert in_dm["is_ext_shared_channel"] is True and in_dm["event"]["user_team"] == "T0OTHER"
    assert reaction["is_ext_shared_channel"] is True and reaction["event"]["item_user"] == "U0ALICE"

    erin = (await client.users_info(user="U0EXT"))["user"]
    stan = (await client.users_info(user="U0FAR"))["user"]
    assert (erin["team_id"], erin["profile"]["team"], "is_stranger" in erin) == ("T0OTHER", "T0OTHER", False)
    assert (stan["team_id"], stan["is_stranger"]) == ("T0FAR", True)  # shares no conversation with the bot
    with pytest.raises(ValueError, match="another organisation"):
        slack.add_channel("C0PLAIN", "plain", members=["U0ALICE", "U0FAR"])
    with pytest.raises(ValueError, match="not a member"):
        slack.mention_event("C0DATA", "U0EXT", "let me in")


# --------------------------------------------------------------------------- ephemerals in threads and DMs


async def test_ephemerals_in_threads_dms_and_shared_channels(slack: FakeSlack, client: AsyncWebClient) -> None:
    question = slack.post_user_message("C0DATA", "U0ALICE", "sales?")
    follow_up = slack.post_user_message("C0DATA", "U0BOB", "me too", thread_ts=question["ts"])

    posted = await client.chat_postEphemeral(
        channel="C0DATA", user="U0ALICE", thread_ts=follow_up["ts"], text="Working on it"
    )

    (shown,) = slack.ephemerals("C0DATA", "U0ALICE", thread_ts=question["ts"])
    assert (shown.ts, shown.thread_ts, shown.source) == (posted["message_ts"], question["ts"], "chat.postEphemeral")
    assert slack.ephemerals("C0DATA", thread_ts=follow_up["ts"]) == [shown]  # a reply's ts names its thread
    assert slack.ephemerals("C0DATA", "U0BOB", thread_ts=question["ts"]) == []
    assert [slack.visible_text(m) for m in slack.visible_to("U0ALICE", "C0DATA", thread_ts=question["ts"])] == [
        "sales?",
        "me too",
        "Working on it",
    ]
    assert [slack.visible_text(m) for m in slack.visible_to("U0ALICE", "C0DATA")] == ["sales?"]

    # the bot's DM with a person: only that person can be shown an ephemeral there
    dm = slack.open_dm("U0ALICE")
    await client.chat_postEphemeral(channel=dm, user="U0ALICE", text="Just for you")
    assert [e.text for e in slack.ephemerals(dm, "U0ALICE")] == ["Just for you"]
    assert await api_error(client.chat_postEphemeral(channel=dm, user="U0BOB", text="x")) == "user_not_in_channel"
    # a DM between people, without the bot (python-slack-sdk#734)
    slack.add_channel("D0PEOPLE", "", is_im=True, members=["U0ALICE", "U0BOB"], bot_is_member=False)
    assert await api_error(client.chat_postEphemeral(channel="D0PEOPLE", user="U0ALICE", text="x")) == (
        "channel_not_found"
    )

    # an external member of a shared channel can be shown one; not in a channel they are not in
    slack.add_user("U0EXT", "erin", team_id="T0OTHER")
    slack.add_channel("C0SHARED", "shared", is_ext_shared=True, members=["U0ALICE", "U0EXT"])
    await client.chat_postEphemeral(channel="C0SHARED", user="U0EXT", text="Only Erin")
    assert await api_error(client.chat_postEphemeral(channel="C0DATA", user="U0EXT", text="x")) == (
        "user_not_in_channel"
    )
    assert [e.text for e in slack.ephemerals(user="U0EXT")] == ["Only Erin"]


# --------------------------------------------------------------------------- many at once


async def test_fifty_concurrent_posts_all_land_with_unique_ts(slack: FakeSlack, client: AsyncWebClient) -> None:
    texts = [f"message {n}" for n in range(50)]

    posted = await asyncio.gather(*(client.chat_postMessage(channel="C0DATA", text=text) for text in texts))

    stamps = [response["ts"] for response in posted]
    assert len(set(stamps)) == 50
    assert sorted(m.text for m in slack.channel_messages("C0DATA")) == sorted(texts)
    assert {m.ts for m in slack.channel_messages("C0DATA")} == set(stamps)
    assert [m.ts for m in slack.channel_messages("C0DATA")] == sorted(stamps, key=ts_key)
    calls = slack.calls_to("chat.postMessage")
    assert len(calls) == 50 and all(call.ok for call in calls)
    for response in posted:  # each answer names its own message
        assert slack.message("C0DATA", response["ts"]).text == response["message"]["text"]


async def test_concurrent_deliveries_each_get_their_answer(slack: FakeSlack) -> None:
    app = AsyncApp(
        signing_secret=slack.signing_secret, client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    )

    @app.event("app_mention")
    async def answer(event: JSON, say: AsyncSay, client: AsyncWebClient) -> None:
        await client.reactions_add(channel=event["channel"], timestamp=event["ts"], name="eyes")
        await say(text=f"re: {event['text'].split()[-1]}", thread_ts=event["ts"])

    mentions = [slack.mention_event("C0DATA", "U0ALICE", f"question-{n}") for n in range(30)]
    async with serve(app) as url:
        statuses = await asyncio.gather(*(slack.deliver_http(url, envelope) for _, envelope in mentions))
        await slack.wait_for(
            lambda: all(len(slack.thread("C0DATA", m["ts"])) == 2 for m, _ in mentions), what="30 answers"
        )

    assert [status for status, _, _ in statuses] == [200] * 30
    for n, (message, _) in enumerate(mentions):
        question, reply = slack.thread("C0DATA", message["ts"])
        assert slack.visible_text(reply) == f"re: question-{n}"
        assert question.reactions == {"eyes": ["UBOT"]}
    assert len({envelope["event_id"] for _, envelope in mentions}) == 30


async def test_concurrent_socket_mode_deliveries_are_acked_by_envelope(slack: FakeSlack) -> None:
    received: list[str] = []

    async def ack(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        received.append(request.envelope_id)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))

    socket_client = SocketModeClient(app_token=slack.app_token, web_client=AsyncWebClient(base_url=slack.api_url))
    socket_client.socket_mode_request_listeners.append(ack)
    envelopes = [slack.mention_event("C0DATA", "U0BOB", f"ping {n}")[1] for n in range(25)]
    try:
        await socket_client.connect()  # type: ignore[no-untyped-call]
        await slack.wait_socket_connected()
        acks = await asyncio.gather(
            *(slack.deliver_socket(envelope, envelope_id=f"env-{n}") for n, envelope in enumerate(envelopes))
        )
    finally:
        await socket_client.close()  # type: ignore[no-untyped-call]

    assert [a["envelope_id"] for a in acks] == [f"env-{n}" for n in range(25)]
    assert sorted(received) == sorted(f"env-{n}" for n in range(25))
    assert len(slack.socket_acks) == 25
