"""Analyse only what the asker may see: the file rule on every path that reads data.

The bot's token sees every conversation the bot is in — more than any one person. So a
file is analysed for someone only if they uploaded it, or it is shared in the conversation
the answer goes to (``bot.access.may_analyse_file``). These tests try each way in as a
person would and check what reached Slack's file hosting, Anthropic and the channel.
"""

from __future__ import annotations

from typing import Any

from bot.access import may_analyse_file
from bot.requests import AnalysisRequest, SharedFile
from handlers.slack.payloads import request_from_message
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.harness import Harness


def shared(harness: Harness, csv: bytes, *, by: str, channel: str) -> dict[str, Any]:
    """``by`` uploads streaming.csv and shares it in ``channel``; returns its file object."""
    file = harness.file("streaming.csv", csv, user=by)
    harness.slack.post_user_message(channel, by, "our churn export", files=[file], subtype="file_share")
    return file


def private_channel_with_a_file(slack: FakeSlack, harness: Harness, csv: bytes) -> dict[str, Any]:
    """#finance-private: Bob and the bot are members; Bob shares streaming.csv there."""
    slack.add_channel("C0SECRET", "finance-private", is_private=True, members=["U0BOB"])
    return shared(harness, csv, by="U0BOB", channel="C0SECRET")


async def analyze(harness: Harness, text: str, *, user: str = "U0ALICE", channel: str = "C0DATA") -> None:
    status, _, _ = await harness.slack.deliver_command(harness.events_url, text=text, user_id=user, channel_id=channel)
    assert status == 200
    await harness.settle()


def private_notes(slack: FakeSlack, user: str, channel: str = "C0DATA") -> list[str]:
    return [slack.visible_text(e) for e in slack.ephemerals(channel, user)]


def nothing_happened(slack: FakeSlack, claude: FakeAnthropic, channel: str = "C0DATA") -> None:
    """No download from Slack, nothing sent to Anthropic, nothing posted in public."""
    assert slack.downloads == []
    assert claude.uploads == [] and claude.message_requests == []
    assert [m for m in slack.channel_messages(channel) if m.bot_id] == []


# -- the rule itself --------------------------------------------------------------------------


def test_the_rule_is_own_upload_or_shared_here() -> None:
    file = SharedFile(id="F1", owner="U0BOB", shared_in=("C0SECRET",))
    assert not may_analyse_file(file, asker="U0ALICE", conversation_id="C0DATA")
    assert may_analyse_file(file, asker="U0BOB", conversation_id="C0DATA")  # their own upload
    assert may_analyse_file(file, asker="U0ALICE", conversation_id="C0SECRET")  # shared where it's asked
    assert not may_analyse_file(SharedFile(id="F2"), asker="", conversation_id="")  # knowing nothing is no


def test_shares_are_read_from_both_forms_of_the_file_object() -> None:
    """docs: api.slack.com/types/file lists shares as ``shares.public/private`` and as the flat
    ``channels``/``groups``/``ims``; a channel in either counts."""
    file = SharedFile.from_payload(
        {"id": "F1", "user": "U0BOB", "shares": {"private": {"C0SECRET": [{"ts": "1.0"}]}}, "ims": ["D0BOB"]}
    )
    assert file.owner == "U0BOB" and set(file.shared_in) == {"C0SECRET", "D0BOB"}


def test_a_messages_files_count_as_shared_in_its_conversation() -> None:
    """Mentions, DMs and the assistant pane: Slack delivers a message's files only to the
    conversation the message is in, so the event's channel is where they are shared."""
    event = {"type": "message", "channel": "D0ALICE", "channel_type": "im", "user": "U0ALICE", "ts": "1.1"}
    event["files"] = [{"id": "F1", "name": "a.csv", "user": "U0BOB"}]
    request = request_from_message(event, team_id="T1", bot_user_id="UBOT")
    assert request is not None
    [file] = request.files
    assert may_analyse_file(file, asker="U0ALICE", conversation_id="D0ALICE")
    assert not may_analyse_file(file, asker="U0ALICE", conversation_id="C0DATA")


def test_what_a_file_is_known_to_be_shared_in_survives_a_restart() -> None:
    request = AnalysisRequest(
        "T1", "C0DATA", "U0ALICE", "1.1", "1.1", "churn?", files=(SharedFile(id="F1", shared_in=("C0DATA",)),)
    )
    assert AnalysisRequest.from_json(request.to_json()) == request


# -- /analyze <file link> -----------------------------------------------------------------------


async def test_a_link_to_a_private_channels_file_is_refused_privately(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    """The leak: Alice isn't in #finance-private, the bot is. Pasting the link there must not
    get her (and the whole of #data) an analysis of Bob's private file."""
    file = private_channel_with_a_file(slack, harness, streaming_csv)
    await analyze(harness, f"<{file['permalink']}> summarise this")
    [note] = [t for t in private_notes(slack, "U0ALICE") if "only analyse" in t]
    assert "shared in this conversation" in note and "you uploaded yourself" in note
    assert "streaming.csv" not in note  # the private file isn't even named
    nothing_happened(slack, claude)
    assert "asked:" not in " ".join(m.text for m in slack.channel_messages("C0DATA"))


async def test_a_file_shared_in_another_channel_the_asker_is_in_is_still_refused(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    """Alice can open the file in #marketing, but the answer would go to #data, whose members
    maybe can't: only the conversation the command runs in counts."""
    slack.add_channel("C0MKT", "marketing", members=["U0ALICE", "U0BOB"])
    file = shared(harness, streaming_csv, by="U0BOB", channel="C0MKT")
    await analyze(harness, f"<{file['permalink']}> what drives churn?")
    assert any("only analyse" in t for t in private_notes(slack, "U0ALICE"))
    nothing_happened(slack, claude)


async def test_the_askers_own_file_shared_elsewhere_works_by_link(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    slack.add_channel("C0MKT", "marketing", members=["U0ALICE", "U0BOB"])
    file = shared(harness, streaming_csv, by="U0ALICE", channel="C0MKT")
    await analyze(harness, f"<{file['permalink']}> what drives churn?")
    root = next(m for m in slack.channel_messages("C0DATA") if m.bot_id and "asked:" in m.text)
    assert "Free" in " ".join(slack.visible_text(m) for m in slack.thread("C0DATA", root.ts))


async def test_the_askers_unshared_upload_works_by_link(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes
) -> None:
    file = harness.file("streaming.csv", streaming_csv, user="U0ALICE")
    await analyze(harness, f"<{file['permalink']}> what drives churn?")
    root = next(m for m in slack.channel_messages("C0DATA") if m.bot_id and "asked:" in m.text)
    assert root.text == "<@U0ALICE> asked: what drives churn?"
    assert "Free" in " ".join(slack.visible_text(m) for m in slack.thread("C0DATA", root.ts))


async def test_someone_elses_file_shared_in_this_channel_works_by_link(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes
) -> None:
    file = shared(harness, streaming_csv, by="U0BOB", channel="C0DATA")
    await analyze(harness, f"<{file['permalink']}> what drives churn?")
    root = next(m for m in slack.channel_messages("C0DATA") if m.bot_id and "asked:" in m.text)
    assert "Free" in " ".join(slack.visible_text(m) for m in slack.thread("C0DATA", root.ts))


async def test_one_forbidden_link_among_several_refuses_the_whole_command(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    mine = harness.file("mine.csv", b"a,b\n1,2\n", user="U0ALICE")
    secret = private_channel_with_a_file(slack, harness, streaming_csv)
    await analyze(harness, f"<{mine['permalink']}> <{secret['permalink']}> compare these")
    assert any("only analyse" in t for t in private_notes(slack, "U0ALICE"))
    nothing_happened(slack, claude)


async def test_a_link_to_a_file_that_does_not_exist_gets_a_clear_private_note(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    await analyze(harness, "<https://example.slack.com/files/U0BOB/F0NOSUCH99/churn.csv> what drives churn?")
    [note] = [t for t in private_notes(slack, "U0ALICE") if "couldn't find that file" in t]
    assert "deleted" in note
    nothing_happened(slack, claude)


async def test_a_link_to_a_deleted_file_gets_a_clear_private_note(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    file = shared(harness, streaming_csv, by="U0ALICE", channel="C0DATA")
    slack.delete_file(file["id"])
    await analyze(harness, f"<{file['permalink']}> what drives churn?")
    assert any("has been deleted" in t for t in private_notes(slack, "U0ALICE"))
    nothing_happened(slack, claude)


# -- the other ways data is read ------------------------------------------------------------------


async def test_the_file_i_just_shared_is_only_ever_the_askers_own_share(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    """``/analyze`` without a link takes the caller's latest share in this channel — never
    someone else's, even one shared a moment ago in the same channel."""
    bobs = harness.file("bobs.csv", streaming_csv, user="U0BOB")
    _, envelope = slack.file_share_message_event("C0DATA", "U0BOB", "bob's file", files=[bobs])
    await harness.deliver(envelope)
    await harness.deliver(slack.file_shared_event(bobs, channel="C0DATA", user="U0BOB"))
    await analyze(harness, "what drives churn?", user="U0ALICE")
    assert any("don't see a file" in t for t in private_notes(slack, "U0ALICE"))
    nothing_happened(slack, claude)


async def test_a_mention_in_a_thread_reuses_only_that_threads_files(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    """Follow-ups reuse the files of their own thread (everyone in it saw them shared there);
    a mention in another channel starts with none of them."""
    first = await harness.mention("what drives churn here?", files=[harness.file("streaming.csv", streaming_csv)])
    slack.add_channel("C0MKT", "marketing", members=["U0ALICE", "U0BOB"])
    other = await harness.mention("and what about its churn by country?", channel="C0MKT", user="U0BOB")
    body = claude.message_requests[-1].body
    assert "container" not in body  # not the #data thread's sandbox
    uploads = [b for m in body["messages"] for b in m["content"] if b.get("type") == "container_upload"]
    assert uploads == []
    assert other.thread_ts != first.thread_ts


async def test_re_attachment_leaves_out_a_file_deleted_in_slack(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    """When the container and the Files API copy are both gone, thread files are fetched from
    Slack again only if Slack still has them where the thread can see them: a file its owner
    deleted stays deleted."""
    file = harness.file("streaming.csv", streaming_csv)
    first = await harness.mention("what drives churn here?", files=[file])
    claude.expire_container(claude.responses[0]["container"]["id"])
    [upload] = claude.uploads_of(streaming_csv)
    claude.files[upload.file_id].deleted = True
    slack.delete_file(file["id"])
    await harness.mention("now split that by country", thread_ts=first.thread_ts)
    assert len(slack.downloads) == 1  # only the first, before the deletion
    assert len(claude.uploads_of(streaming_csv)) == 1
    body = claude.message_requests[-1].body
    assert not [b for m in body["messages"] for b in m["content"] if b.get("type") == "container_upload"]
    assert "couldn't bring *streaming.csv* back" in harness.thread_text(first)


async def test_the_assistant_panes_context_channel_is_never_read(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    """The pane tells the bot which channel the person is looking at. The bot reads nothing
    from it: only files sent in the pane's own thread are analysed."""
    private_channel_with_a_file(slack, harness, streaming_csv)
    thread_ts, channel, started = slack.assistant_thread_started_event("U0ALICE", context_channel="C0SECRET")
    await harness.deliver(started)
    _, envelope = slack.assistant_user_message_event(
        channel, "U0ALICE", "analyse the churn file here", thread_ts=thread_ts
    )
    await harness.deliver(envelope)
    await harness.settle()
    assert slack.downloads == [] and slack.calls_to("files.info") == []
    assert claude.uploads == []
    assert all(
        b.get("type") != "container_upload"
        for r in claude.message_requests
        for m in r.body["messages"]
        for b in m["content"]
        if isinstance(b, dict)
    )
