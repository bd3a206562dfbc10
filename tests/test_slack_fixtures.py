"""Slack's own published payloads, replayed through the running bot (HTTP mode, signed).

Each fixture in tests/fixtures/slack/ is an example from Slack's docs or from the
slackapi repos' tests (``_source``), with the ids changed to reach the fake workspace
(``_adapted`` says which). What only exists once the fake has it — the message a person
posted, a hosted file, a thread root — is filled in here, per fixture, as ``_adapted``
names it. Every replay must be acknowledged with 200; where the bot acts on the payload,
the test asserts what a person then sees.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_events import signature
from tests.fakes.slack_responses import parse_command_answer
from tests.harness import Harness

FIXTURES = Path(__file__).parent / "fixtures" / "slack"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def fixture(name: str) -> dict[str, Any]:
    """A fixture without its provenance keys (``_source``, ``_adapted``)."""
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    assert data.get("_source") and data.get("_adapted"), f"{name}: every fixture names its source and adaptations"
    return {key: value for key, value in data.items() if not key.startswith("_")}


def fresh(envelope: dict[str, Any], slack: FakeSlack) -> dict[str, Any]:
    """The envelope with an unused event id and a current time (the bot claims each event id once)."""
    replayed = copy.deepcopy(envelope)
    replayed["event_id"] = f"Ev0REPLAY{time.monotonic_ns()}"
    replayed["event_time"] = int(time.time())
    return replayed


def bot_messages(slack: FakeSlack, channel: str, thread_ts: str) -> list[str]:
    return [slack.visible_text(m) for m in slack.thread(channel, thread_ts) if m.bot_id]


async def post_command(slack: FakeSlack, url: str, fields: dict[str, str]) -> tuple[int, str, str]:
    """POST slash-command fields as Slack does (form-encoded, signed); (status, body, content type)."""
    body = urlencode(fields)
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature(slack.signing_secret, stamp, body),
    }
    async with aiohttp.ClientSession() as session, session.post(url, data=body.encode(), headers=headers) as answer:
        return answer.status, await answer.text(), answer.headers.get("Content-Type", "")


# --------------------------------------------------------------------------- events


async def test_app_mention_with_a_file_is_analysed_in_the_thread(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    envelope = fixture("event_app_mention")
    event = envelope["event"]
    csv = harness.file("streaming.csv", streaming_csv)
    posted = slack.post_user_message("C0DATA", "U0ALICE", event["text"], files=[csv])
    event["files"][0]["id"] = csv["id"]
    event["ts"] = event["event_ts"] = posted["ts"]

    status, _ = await harness.deliver(fresh(envelope, slack))
    await harness.settle()

    assert status == 200
    assert slack.message("C0DATA", posted["ts"]).reactions.get("white_check_mark") == ["UBOT"]
    replies = bot_messages(slack, "C0DATA", posted["ts"])
    assert any("streaming.csv" in text for text in replies)
    assert any(f["name"].endswith(".png") for m in slack.thread("C0DATA", posted["ts"]) for f in m.files)
    assert len(claude.message_requests) >= 1


async def test_message_file_share_without_a_mention_is_acknowledged_and_not_answered(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    envelope = fixture("event_message_file_share")
    event = envelope["event"]
    png = harness.file("file.png", PNG, mimetype="image/png", filetype="png")
    posted = slack.post_user_message("C0DATA", "U0ALICE", event["text"], files=[png], subtype="file_share")
    shared = event["files"][0]
    for key in ("id", "url_private", "url_private_download", "permalink"):
        shared[key] = png[key]
    event["ts"] = event["event_ts"] = posted["ts"]

    status, _ = await harness.deliver(fresh(envelope, slack))
    await harness.settle()

    assert status == 200
    assert bot_messages(slack, "C0DATA", posted["ts"]) == []  # a share without a mention is only remembered
    assert claude.requests == []


async def test_message_im_gets_an_answer_in_the_dm(harness: Harness, slack: FakeSlack) -> None:
    envelope = fixture("event_message_im")
    event = envelope["event"]
    dm = slack.open_dm("U0ALICE")
    posted = slack.post_user_message(dm, "U0ALICE", event["text"])
    event["channel"] = dm
    event["ts"] = event["event_ts"] = posted["ts"]

    status, _ = await harness.deliver(fresh(envelope, slack))
    await harness.settle()

    assert status == 200
    replies = bot_messages(slack, dm, posted["ts"])
    assert replies, "the bot answers a DM"
    assert any("file" in text.lower() for text in replies)  # no data yet: it says how to share some


async def test_file_shared_is_remembered_for_analyze(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    envelope = fixture("event_file_shared")
    event = envelope["event"]
    csv = harness.file("streaming.csv", streaming_csv)
    slack.post_user_message("C0DATA", "U0ALICE", "", files=[csv], subtype="file_share")
    event["file_id"] = event["file"]["id"] = csv["id"]
    event["event_ts"] = str(time.time())

    status, _ = await harness.deliver(fresh(envelope, slack))
    await harness.settle()
    assert status == 200
    assert claude.requests == []

    status, _, _ = await slack.deliver_command(harness.events_url, text="what drives churn?")
    await harness.settle()
    assert status == 200
    root = next(m for m in slack.channel_messages("C0DATA") if m.bot_id and "asked:" in m.text)
    assert "Free" in "\n".join(bot_messages(slack, "C0DATA", root.ts))


async def test_reaction_added_that_is_not_x_leaves_the_reply_alone(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes
) -> None:
    asked = await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])
    reply = harness.replies(asked)[-1]
    envelope = fixture("event_reaction_added")
    envelope["event"]["item"]["ts"] = reply.ts
    envelope["event"]["event_ts"] = str(time.time())
    before = [m.ts for m in harness.replies(asked)]

    status, _ = await harness.deliver(fresh(envelope, slack))
    await harness.settle()

    assert status == 200
    assert [m.ts for m in harness.replies(asked)] == before  # only :x: deletes replies


async def started_assistant_thread(slack: FakeSlack) -> tuple[str, str]:
    """A thread root the fake created as Slack does when the pane opens; (dm, thread_ts)."""
    thread_ts, dm, _ = slack.assistant_thread_started_event("U0ALICE", context_channel="C0DATA")
    return dm, thread_ts


async def test_assistant_thread_started_greets_and_suggests_prompts(harness: Harness, slack: FakeSlack) -> None:
    dm, thread_ts = await started_assistant_thread(slack)
    envelope = fixture("event_assistant_thread_started")
    envelope["event"]["assistant_thread"].update(channel_id=dm, thread_ts=thread_ts)
    envelope["event"]["event_ts"] = str(time.time())

    status, _ = await harness.deliver(fresh(envelope, slack))
    await slack.wait_for(lambda: bool((t := slack.assistant_thread(dm, thread_ts)) and t.prompts))

    assert status == 200
    thread = slack.assistant_thread(dm, thread_ts)
    assert thread is not None and "Find the main drivers of churn" in [p["title"] for p in thread.prompts]
    assert bot_messages(slack, dm, thread_ts), "the bot greets in the thread"


async def test_assistant_thread_context_changed_is_acknowledged(harness: Harness, slack: FakeSlack) -> None:
    slack.add_channel("C0SALES", "sales")
    dm, thread_ts = await started_assistant_thread(slack)
    started = fixture("event_assistant_thread_started")
    started["event"]["assistant_thread"].update(channel_id=dm, thread_ts=thread_ts)
    await harness.deliver(fresh(started, slack))
    await slack.wait_for(lambda: bool((t := slack.assistant_thread(dm, thread_ts)) and t.prompts))
    changed = fixture("event_assistant_thread_context_changed")
    changed["event"]["assistant_thread"].update(channel_id=dm, thread_ts=thread_ts)
    changed["event"]["event_ts"] = str(time.time())
    seen = len(slack.calls)

    status, _ = await harness.deliver(fresh(changed, slack))
    await harness.settle()

    assert status == 200
    failed = [c for c in slack.calls[seen:] if c.response and not c.response.get("ok")]
    assert failed == []


# --------------------------------------------------------------------------- slash commands


async def test_analyze_command_without_data_answers_at_once_with_a_how_to(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    fields = fixture("command_analyze")
    fields["response_url"] = slack.new_response_url(fields["channel_id"], fields["user_id"])
    fields["trigger_id"] = f"{time.monotonic_ns()}.T0TEAM.replayed"

    status, body, content_type = await post_command(slack, harness.events_url, fields)
    await harness.settle()

    assert status == 200
    answer, refused = parse_command_answer(status, body, content_type)
    assert refused is None and answer is not None
    assert answer.get("response_type") == "ephemeral"
    later = [slack.visible_text(e) for e in slack.ephemerals("C0DATA", "U0ALICE")]
    later += [str(post.payload.get("text", "")) for post in slack.responses]
    assert any("file" in text.lower() for text in later), (answer, later)
    assert claude.requests == []


# --------------------------------------------------------------------------- interactions


async def test_block_actions_are_acknowledged(harness: Harness, slack: FakeSlack) -> None:
    payload = fixture("interaction_block_actions")
    posted = slack.post_user_message("C0DATA", "U0ALICE", "something to click on")
    payload["container"]["message_ts"] = posted["ts"]
    payload["response_url"] = slack.new_response_url("C0DATA", "U0ALICE", message_ts=posted["ts"])

    status, _, _ = await slack.deliver_interaction(harness.events_url, payload)

    assert status == 200
