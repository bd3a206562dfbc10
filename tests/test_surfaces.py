"""Other ways in: DMs, the assistant pane, and /analyze with its subcommands."""

from __future__ import annotations

import re

from bot.quotas import run_tokens
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_models import Ephemeral, Message
from tests.harness import Harness


def bot_text(slack: FakeSlack, channel: str, thread_ts: str) -> str:
    return "\n".join(slack.visible_text(m) for m in slack.thread(channel, thread_ts) if m.bot_id)


# -- DMs ---------------------------------------------------------------------------------


async def test_a_file_sent_in_a_dm_is_analysed_there(harness: Harness, slack: FakeSlack, streaming_csv: bytes) -> None:
    csv = harness.file("streaming.csv", streaming_csv)
    message, envelope = slack.dm_message_event("U0ALICE", "what drives churn?", files=[csv])
    await harness.deliver(envelope)
    await harness.settle()
    channel = message["channel"]
    assert channel.startswith("D")
    text = bot_text(slack, channel, message["ts"])
    assert "Free" in text and "%" in text
    assert any(f["name"].endswith(".png") for m in slack.thread(channel, message["ts"]) for f in m.files)


async def test_a_dm_thread_continues_without_a_mention(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    message, envelope = slack.dm_message_event(
        "U0ALICE", "what drives churn?", files=[harness.file("s.csv", streaming_csv)]
    )
    await harness.deliver(envelope)
    await harness.settle()
    _, envelope = slack.dm_message_event("U0ALICE", "now split that by country", thread_ts=message["ts"])
    await harness.deliver(envelope)
    await harness.settle()
    body = claude.message_requests[-1].body
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["container"] == claude.responses[0]["container"]["id"]
    assert "country" in bot_text(slack, message["channel"], message["ts"]).lower()


# -- the assistant pane ------------------------------------------------------------------


async def test_opening_the_assistant_sets_suggested_prompts(harness: Harness, slack: FakeSlack) -> None:
    thread_ts, channel, envelope = slack.assistant_thread_started_event("U0ALICE")
    status, _ = await harness.deliver(envelope)
    assert status == 200
    await slack.wait_for(lambda: bool((t := slack.assistant_thread(channel, thread_ts)) and t.prompts))
    thread = slack.assistant_thread(channel, thread_ts)
    assert thread is not None
    titles = [p["title"] for p in thread.prompts]
    assert "Find the main drivers of churn" in titles and "Summarise this table" in titles
    assert "Share a data file" in bot_text(slack, channel, thread_ts)


async def test_a_message_in_the_assistant_pane_is_analysed_with_a_status(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes
) -> None:
    thread_ts, channel, envelope = slack.assistant_thread_started_event("U0ALICE")
    await harness.deliver(envelope)
    await harness.settle()
    _, envelope = slack.assistant_user_message_event(
        channel,
        "U0ALICE",
        "Find the main drivers of churn",
        thread_ts=thread_ts,
        files=[harness.file("s.csv", streaming_csv)],
    )
    await harness.deliver(envelope)
    await harness.settle()
    thread = slack.assistant_thread(channel, thread_ts)
    assert thread is not None and "is analysing your data…" in thread.status_history
    assert thread.status == ""  # cleared by the reply
    assert "Free" in bot_text(slack, channel, thread_ts)


# -- /analyze ----------------------------------------------------------------------------


async def command(harness: Harness, text: str, *, user: str = "U0ALICE") -> str:
    """Run /analyze; returns the immediate (3-second) answer the person saw."""
    status, _, _ = await harness.slack.deliver_command(harness.events_url, text=text, user_id=user)
    assert status == 200
    reply = harness.slack.command_replies[-1]
    await harness.settle()
    assert isinstance(reply.shown, Ephemeral)
    return harness.slack.visible_text(reply.shown)


def ephemeral_texts(slack: FakeSlack, user: str = "U0ALICE") -> list[str]:
    return [slack.visible_text(e) for e in slack.ephemerals("C0DATA", user)]


def command_root(slack: FakeSlack) -> Message:
    return next(m for m in reversed(slack.channel_messages("C0DATA")) if m.bot_id and "asked:" in m.text)


async def test_analyze_uses_the_file_the_caller_just_shared(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    csv = harness.file("streaming.csv", streaming_csv)
    _, envelope = slack.file_share_message_event("C0DATA", "U0ALICE", "our churn export", files=[csv])
    await harness.deliver(envelope)
    await harness.deliver(slack.file_shared_event(csv, channel="C0DATA", user="U0ALICE"))
    await harness.settle()
    assert claude.requests == []  # sharing alone asks nothing
    ack = await command(harness, "what drives churn?")
    assert "post the analysis in this channel" in ack
    root = command_root(slack)
    assert root.text == "<@U0ALICE> asked: what drives churn?"
    text = bot_text(slack, "C0DATA", root.ts)
    assert "Free" in text and "%" in text
    # Follow-ups work in the command's thread.
    await harness.mention("now split that by country", thread_ts=root.ts)
    assert "country" in bot_text(slack, "C0DATA", root.ts).lower()


async def test_analyze_with_a_file_link(harness: Harness, slack: FakeSlack, streaming_csv: bytes) -> None:
    csv = harness.file("streaming.csv", streaming_csv, user="U0BOB")
    slack.post_user_message("C0DATA", "U0BOB", "churn export", files=[csv], subtype="file_share")
    link = csv["permalink"]
    await command(harness, f"<{link}> what drives churn?")
    root = command_root(slack)
    assert root.text == "<@U0ALICE> asked: what drives churn?"
    assert "Free" in bot_text(slack, "C0DATA", root.ts)


async def test_analyze_without_any_file_explains_what_to_do(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    await command(harness, "what drives churn?")
    [how_to] = [t for t in ephemeral_texts(slack) if "don't see a file" in t]
    assert "Attach a data file" in how_to
    assert claude.requests == []
    assert not [m for m in slack.channel_messages("C0DATA") if m.bot_id]


async def test_analyze_only_uses_the_callers_own_recent_shares(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    csv = harness.file("streaming.csv", streaming_csv, user="U0BOB")
    _, envelope = slack.file_share_message_event("C0DATA", "U0BOB", "bob's file", files=[csv])
    await harness.deliver(envelope)
    await command(harness, "what drives churn?", user="U0ALICE")
    assert any("don't see a file" in t for t in ephemeral_texts(slack, "U0ALICE"))
    assert claude.requests == []


async def test_analyze_help(harness: Harness) -> None:
    text = await command(harness, "help")
    assert "/analyze usage" in text and "/analyze forget" in text and "100 MB" in text


async def test_analyze_usage_matches_the_ledger(harness: Harness, slack: FakeSlack, streaming_csv: bytes) -> None:
    await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])
    await harness.mention("summarise", files=[harness.file("s2.csv", streaming_csv)])
    await command(harness, "usage")
    [usage] = [t for t in ephemeral_texts(slack) if "Your analyses" in t]
    runs = [r for r in await harness.running.analyst.store.all_runs() if r["user_id"] == "U0ALICE"]
    total = sum(run_tokens(r) for r in runs)  # every input token, cached or not, and output
    assert f"last hour: 2 runs, {total:,} tokens" in usage
    assert re.search(r"≈ \$\d+\.\d\d", usage)


async def test_analyze_forget_deletes_files_and_history(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    asked = await harness.mention("what drives churn?", files=[harness.file("s.csv", streaming_csv)])
    bobs = await harness.mention("summarise", files=[harness.file("b.csv", b"a,b\n1,2\n3,4\n")], user="U0BOB")
    alice_files = {r["id"] for r in await harness.running.analyst.store.live_files_of_user("U0ALICE")}
    assert len(alice_files) >= 2  # her upload and the chart her analysis made
    await command(harness, "forget")
    [said] = [t for t in ephemeral_texts(slack) if "Deleted" in t]
    assert "1 file you shared" in said and "1 conversation" in said
    for file_id in alice_files:
        assert claude.files[file_id].deleted
    assert any(r.method == "DELETE" for r in claude.requests)
    conversations = harness.running.analyst.parts.conversations
    assert await conversations.get(f"C0DATA:{asked.thread_ts}") is None
    assert await conversations.get(f"C0DATA:{bobs.thread_ts}") is not None  # Bob's stays
