"""The fake Slack, driven by the real slack-sdk clients it stands in for."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.say_stream.async_say_stream import AsyncSayStream
from slack_bolt.context.set_status.async_set_status import AsyncSetStatus
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

JSON = dict[str, Any]


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def api_error(call: Any) -> str:
    """The Slack error code a Web API call fails with."""
    with pytest.raises(SlackApiError) as raised:
        await call
    return str(raised.value.response["error"])


class Receiver:
    """A stand-in for the bot's HTTP endpoint: records what Slack POSTs to it."""

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, dict[str, str]]] = []
        self._runner: web.AppRunner | None = None
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

    async def _receive(self, request: web.Request) -> web.Response:
        self.requests.append((await request.read(), dict(request.headers)))
        return web.Response(text="")


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
    slack: FakeSlack, client: AsyncWebClient, arguments: JSON, error: str
) -> None:
    arguments = {"text": "fallback", **arguments} if "blocks" in arguments else arguments
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # slack-sdk's "text is missing" for the no_text case
        assert await api_error(client.chat_postMessage(channel="C0DATA", **arguments)) == error
    assert slack.channel_messages("C0DATA") == []


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
    assert await api_error(client.files_info(file=shared["id"])) == "file_not_found"


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


async def test_tokens_are_checked(slack: FakeSlack) -> None:
    anonymous = AsyncWebClient(base_url=slack.api_url)
    stranger = AsyncWebClient(token="xoxb-someone-else", base_url=slack.api_url)
    app_level = AsyncWebClient(token=slack.app_token, base_url=slack.api_url)
    bot = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)

    assert await api_error(anonymous.auth_test()) == "not_authed"
    assert await api_error(stranger.auth_test()) == "invalid_auth"
    assert await api_error(app_level.chat_postMessage(channel="C0DATA", text="x")) == "not_allowed_token_type"
    assert await api_error(bot.apps_connections_open(app_token=slack.bot_token)) == "not_allowed_token_type"
    assert await api_error(bot.api_call("chat.frobnicate")) == "unknown_method"
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
    slack.add_channel("D0BOB", "", is_im=True, members=["U0BOB"])
    slack.add_channel("G0SECRET", "secret", is_private=True, bot_is_member=False)

    shared = (await client.conversations_info(channel="C0SHARED"))["channel"]
    dm = (await client.conversations_info(channel="D0BOB"))["channel"]
    erin = (await client.users_info(user="U0EXT"))["user"]
    bot = (await client.users_info(user="UBOT"))["user"]

    assert (shared["is_ext_shared"], shared["is_private"], shared["is_im"]) == (True, False, False)
    assert (dm["is_im"], dm["user"]) == (True, "U0BOB")
    assert (erin["team_id"], erin["profile"]["display_name"], "is_stranger" in erin) == ("T0OTHER", "erin", False)
    assert bot["is_bot"]
    assert await api_error(client.conversations_info(channel="G0SECRET")) == "channel_not_found"
    assert await api_error(client.users_info(user="U0NOBODY")) == "user_not_found"
    assert await api_error(client.conversations_replies(channel="C0DATA", ts="1700000000.000001")) == (
        "thread_not_found"
    )
    first = slack.post_user_message("C0DATA", "U0ALICE", "one")
    slack.post_user_message("C0DATA", "U0BOB", "reply", thread_ts=first["ts"])
    slack.post_user_message("C0DATA", "U0BOB", "two")
    history = await client.conversations_history(channel="C0DATA")
    assert [m["text"] for m in history["messages"]] == ["two", "one"]


async def test_assistant_thread_settings_are_stored(slack: FakeSlack, client: AsyncWebClient) -> None:
    root = slack.post_user_message("C0DATA", "U0ALICE", "hi")

    await client.assistant_threads_setStatus(
        channel_id="C0DATA", thread_ts=root["ts"], status="is analysing…", loading_messages=["Reading the file"]
    )
    await client.assistant_threads_setSuggestedPrompts(
        channel_id="C0DATA", thread_ts=root["ts"], prompts=[{"title": "Trend", "message": "Show the trend"}]
    )
    await client.assistant_threads_setTitle(channel_id="C0DATA", thread_ts=root["ts"], title="Sales")
    await client.assistant_threads_setStatus(channel_id="C0DATA", thread_ts=root["ts"], status="")

    thread = slack.assistant_thread("C0DATA", root["ts"])
    assert thread is not None
    assert thread.status_history == ["is analysing…", ""] and thread.title == "Sales"
    assert thread.prompts == [{"title": "Trend", "message": "Show the trend"}]
    missing = client.assistant_threads_setStatus(channel_id="C0DATA", thread_ts="1700000000.000001", status="x")
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
