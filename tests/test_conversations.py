"""Follow-ups in a thread: history from the store, the same container, files uploaded once,
expired containers replaced transparently, bounded history and prompt caching."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pandas as pd

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.harness import Asked, Harness, prompt_text


def uploads_in_newest_turn(body: dict[str, Any]) -> list[str]:
    newest = [m for m in body["messages"] if m["role"] == "user"][-1]
    return [b["file_id"] for b in newest["content"] if b["type"] == "container_upload"]


def churn_by_country(csv: bytes) -> dict[str, float]:
    """The figures a correct follow-up must quote, computed independently."""
    frame = pd.read_csv(io.BytesIO(csv))
    return {str(k): round(float(v) * 100, 1) for k, v in frame.groupby("country")["churned"].mean().items()}


def quotes_country_figures(answer: str, csv: bytes) -> bool:
    return all(f"{rate:.1f}%" in answer for rate in churn_by_country(csv).values())


def answers(harness: Harness, asked: Asked) -> list[str]:
    """The interpretations posted in the thread, oldest first."""
    return [
        harness.slack.visible_text(m) for m in harness.replies(asked) if m.blocks and m.blocks[0]["type"] == "markdown"
    ]


async def ask_then_follow_up(harness: Harness, csv: bytes, follow_up: str = "now split that by country") -> Asked:
    first = await harness.mention("what drives churn here?", files=[harness.file("streaming.csv", csv)])
    await harness.mention(follow_up, thread_ts=first.thread_ts)
    return first


async def test_a_follow_up_reuses_the_container_and_uploads_nothing(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    first = await ask_then_follow_up(harness, streaming_csv)
    requests = [r for r in claude.message_requests if r.status == 200]
    container = claude.responses[0]["container"]["id"]
    follow_up = requests[-1].body
    assert follow_up["container"] == container
    assert uploads_in_newest_turn(follow_up) == []
    assert len(claude.uploads_of(streaming_csv)) == 1
    # The earlier exchange came from the store, whole, before the new question.
    roles = [m["role"] for m in follow_up["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert "split that by country" in prompt_text(follow_up["messages"][-1])
    # The answer is about countries, computed from the state the first turn left behind.
    replies = answers(harness, first)
    assert len(replies) == 2
    assert quotes_country_figures(replies[1], streaming_csv), replies[1]
    stdout = "\n".join(
        b["content"].get("stdout", "")
        for b in claude.responses[-1]["content"]
        if b["type"].endswith("code_execution_tool_result") and isinstance(b.get("content"), dict)
    )
    assert "STATE reused" in stdout


async def test_a_follow_up_reads_most_of_its_input_from_the_cache(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    await ask_then_follow_up(harness, streaming_csv)
    _, second = await harness.running.analyst.store.all_runs()
    assert second["cache_read_tokens"] > 0
    assert second["cache_read_tokens"] > second["input_tokens"]
    body = claude.message_requests[-1].body
    marked = [b for m in body["messages"] for b in m["content"] if "cache_control" in b]
    assert len(marked) == 2  # the previous question + the newest turn (system and tools carry the other two)
    assert "cache_control" in body["system"][-1] and "cache_control" in body["tools"][-1]


async def test_an_expired_container_is_replaced_without_the_user_noticing(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    first = await harness.mention("what drives churn here?", files=[harness.file("streaming.csv", streaming_csv)])
    old = claude.responses[0]["container"]["id"]
    claude.expire_container(old)
    await harness.mention("now split that by country", thread_ts=first.thread_ts)
    text = harness.thread_text(first)
    assert ":warning:" not in text
    replies = answers(harness, first)
    assert quotes_country_figures(replies[-1], streaming_csv), replies[-1]  # as good as with the old container
    refused, retried = claude.message_requests[-2:]
    assert refused.status == 400 and refused.body["container"] == old
    assert "container" not in retried.body
    assert len(uploads_in_newest_turn(retried.body)) == 1  # the thread's file, attached again
    assert "sandbox was reset" in prompt_text(retried.body["messages"][-1])
    assert len(claude.uploads_of(streaming_csv)) == 1  # still at the Files API: not uploaded again
    runs = await harness.running.analyst.store.all_runs()
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    assert runs[1]["container_id"] != old


async def test_a_container_past_its_reported_expiry_is_still_reused(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    first = await harness.mention("what drives churn here?", files=[harness.file("streaming.csv", streaming_csv)])
    container = claude.responses[0]["container"]["id"]
    store = harness.running.analyst.store
    await store.database.execute("UPDATE threads SET container_expires_at = '2020-01-01T00:00:00+00:00'")
    claude.advance_clock(timedelta(days=20))  # long past expires_at, well within the 30 days it stays restorable
    await harness.mention("now split that by country", thread_ts=first.thread_ts)
    assert all(r.status == 200 for r in claude.message_requests)
    assert claude.message_requests[-1].body["container"] == container
    assert "sandbox was reset" not in prompt_text(claude.message_requests[-1].body["messages"][-1])
    assert quotes_country_figures(answers(harness, first)[-1], streaming_csv)


async def test_a_container_older_than_30_days_is_refused_and_replaced(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    first = await harness.mention("what drives churn here?", files=[harness.file("streaming.csv", streaming_csv)])
    old = claude.responses[0]["container"]["id"]
    claude.advance_clock(timedelta(days=31))
    await harness.mention("now split that by country", thread_ts=first.thread_ts)
    refused, retried = claude.message_requests[-2:]
    assert refused.status == 400 and refused.body["container"] == old
    assert "container" not in retried.body
    assert quotes_country_figures(answers(harness, first)[-1], streaming_csv)
    assert ":warning:" not in harness.thread_text(first)


async def test_a_file_lost_by_the_files_api_is_uploaded_again_from_slack(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    first = await harness.mention("what drives churn here?", files=[harness.file("streaming.csv", streaming_csv)])
    claude.expire_container(claude.responses[0]["container"]["id"])
    [upload] = claude.uploads_of(streaming_csv)
    claude.files[upload.file_id].deleted = True
    await harness.mention("now split that by country", thread_ts=first.thread_ts)
    assert len(claude.uploads_of(streaming_csv)) == 2
    assert len(slack.downloads) == 2
    assert "country" in answers(harness, first)[-1].lower()


async def test_files_attached_to_a_follow_up_join_the_thread(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    first = await harness.mention("what drives churn here?", files=[harness.file("streaming.csv", streaming_csv)])
    prices = b"tier,list_price\nFree,0\nBasic,8.99\nPremium,15.99\n"
    await harness.mention(
        "here are the prices too", files=[harness.file("prices.csv", prices)], thread_ts=first.thread_ts
    )
    body = claude.message_requests[-1].body
    [new_upload] = uploads_in_newest_turn(body)
    assert claude.files[new_upload].data == prices
    assert body["container"] == claude.responses[0]["container"]["id"]
    conversation = await harness.running.analyst.parts.conversations.get(f"C0DATA:{first.thread_ts}")
    assert conversation is not None
    assert sorted(f.filename for f in conversation.files) == ["prices.csv", "streaming.csv"]
    container = claude.containers[body["container"]]
    assert sorted(p.name for p in container.inputs.iterdir()) == ["prices.csv", "streaming.csv"]


async def test_history_is_bounded_and_keeps_the_newest(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    async with Harness({**env, "ANALYST_HISTORY_MESSAGES": "2"}, slack, claude) as harness:
        first = await harness.mention("what drives churn here?", files=[harness.file("s.csv", streaming_csv)])
        await harness.mention("now split that by country", thread_ts=first.thread_ts)
        await harness.mention("and by device?", thread_ts=first.thread_ts)
        body = claude.message_requests[-1].body
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
        kept = " ".join(b.get("text", "") for b in body["messages"][0]["content"])
        assert "left out" in kept and "split that by country" in kept and "what drives churn" not in kept
        assert ":warning:" not in harness.thread_text(first)


async def test_someone_else_in_the_thread_is_marked_as_another_participant(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    first = await harness.mention("what drives churn here?", files=[harness.file("s.csv", streaming_csv)])
    await harness.mention("what about Premium users?", thread_ts=first.thread_ts, user="U0BOB")
    prompt = prompt_text(claude.message_requests[-1].body["messages"][-1])
    assert 'role="another participant in the thread"' in prompt
    first_prompt = prompt_text(claude.message_requests[0].body["messages"][-1])
    assert 'role="the person you are helping"' in first_prompt


async def test_a_mention_with_nothing_in_a_known_thread_suggests_a_follow_up(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    first = await harness.mention("what drives churn here?", files=[harness.file("s.csv", streaming_csv)])
    calls = len(claude.message_requests)
    await harness.mention("", thread_ts=first.thread_ts)
    assert "follow-up" in harness.thread_text(first)
    assert len(claude.message_requests) == calls


async def test_a_prompt_too_long_for_the_model_sheds_old_history_instead_of_failing(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    first = await harness.mention("what drives churn here?", files=[harness.file("s.csv", streaming_csv)])
    await harness.mention("now split that by country", thread_ts=first.thread_ts)
    claude.fail_next("messages", status=400, message="prompt is too long: 210311 tokens > 200000 maximum")
    await harness.mention("and by device?", thread_ts=first.thread_ts)
    refused, retried = claude.message_requests[-2:]
    assert refused.status == 400
    assert len(retried.body["messages"]) == 3
    assert "left out" in retried.body["messages"][0]["content"][0]["text"]
    assert ":warning:" not in harness.thread_text(first)
    assert "device" in answers(harness, first)[-1].lower()
