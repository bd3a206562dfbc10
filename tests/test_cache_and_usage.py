"""Prompt-cache placement across paused turns and threads, and counting every token.

The fake Anthropic computes cache reads and writes by prefix, with the 20-block lookback and
the limit of four breakpoints (docs: build-with-claude/prompt-caching); these tests read the
usage it reports, the requests it received, and what people see in Slack.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, cast

import anthropic
import pytest

from bot.conversation import cache_anchors, last_cacheable, with_cache_breakpoints
from bot.engine import Engine
from bot.files_api import FilesApi
from bot.pricing import estimated_cost, price_for
from bot.progress import Done, Usage
from bot.publish_terminal import TerminalPublisher
from bot.quotas import tokens_used
from bot.settings import Settings
from bot.store import Store
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.scripts import Action, Code, Pause, Text, WebFetch, WebSearch, scripted
from tests.fakes.slack import FakeSlack
from tests.harness import Harness

MODEL = "claude-sonnet-5-5"


def steps(count: int, tag: str) -> list[Action]:
    """``count`` sandbox steps (four blocks each with the bash tool versions), with some bulk."""
    return [Code(f"print('{tag} {i}: ' + 'analysis output ' * 40)") for i in range(count)]


def exchanges(claude: FakeAnthropic) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(request body, response) of every answered Messages call, in order."""
    answered = [r.body for r in claude.message_requests if r.status == 200]
    assert len(answered) == len(claude.responses)
    return list(zip(answered, claude.responses, strict=True))


def breakpoints(body: dict[str, Any]) -> int:
    """``cache_control`` markers anywhere in a request (tools, system, message blocks, nested)."""
    blocks = [*body.get("tools", []), *body.get("system", [])]
    for message in body["messages"]:
        for block in message["content"]:
            blocks += [block, *(b for b in block.get("content") or [] if isinstance(b, dict))]
    return sum("cache_control" in b for b in blocks) + ("cache_control" in body)


def split(response: dict[str, Any]) -> tuple[int, int, int]:
    """(read from cache, written to cache, neither) input tokens of a response."""
    usage = response["usage"]
    return usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"], usage["input_tokens"]


def read_share(response: dict[str, Any]) -> float:
    read, written, plain = split(response)
    return read / (read + written + plain)


def first_calls(claude: FakeAnthropic) -> list[dict[str, Any]]:
    """The response to the first call of each answer (its request ends with the question)."""
    return [response for body, response in exchanges(claude) if body["messages"][-1]["role"] == "user"]


# -- breakpoints across a paused turn ----------------------------------------------------------


async def test_a_paused_turn_reads_everything_it_echoes_from_the_cache(harness: Harness, claude: FakeAnthropic) -> None:
    # Five rounds of work, each 24 blocks: more than the 20 the lookback covers.
    rounds = [[*steps(6, f"round {n}"), Pause()] for n in range(4)]
    claude.script = scripted(*(action for r in rounds for action in r), *steps(6, "last"), Text("Done: 30 steps."))
    asked = await harness.mention("run the long analysis")
    assert "Done: 30 steps." in harness.thread_text(asked)
    calls = exchanges(claude)
    assert len(calls) == 5
    assert all(breakpoints(body) <= 4 for body, _ in calls)
    for (_, previous), (body, response) in pairwise(calls):
        read, written, plain = split(response)
        # Each continuation finds the previous call's entry and reads all that call cached…
        assert read >= sum(split(previous)[:2])
        # …and caches what it echoes (the newest breakpoint moved onto it): nothing is left uncached.
        assert written > 0 and plain <= 10
        assert "cache_control" in body["messages"][-1]["content"][-1]
    assert read_share(calls[-1][1]) >= 0.7  # the answer so far is mostly read back, not sent anew


# -- breakpoints across a thread ---------------------------------------------------------------


async def test_a_five_turn_thread_reads_most_of_its_input_from_the_cache(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    # Long answers that pause once, as long analyses do: 25 blocks each.
    claude.script = scripted(*steps(3, "first"), Pause(), *steps(3, "then"), Text("Here is what I found."))
    first = await harness.mention("what drives churn here?", files=[harness.file("streaming.csv", streaming_csv)])
    for question in ("split that by country", "and by device?", "what about tier?", "and by age?"):
        await harness.mention(question, thread_ts=first.thread_ts)
    assert len(first_calls(claude)) == 5
    assert all(breakpoints(body) <= 4 for body, _ in exchanges(claude))
    answers = first_calls(claude)
    # The first question is cached up to its text (the uploads come after it and are not
    # history), so even the first follow-up reads it back; from the second on, most input is.
    assert split(answers[1])[0] >= split(answers[0])[1], "the first follow-up reads what the first call wrote"
    for turn, response in enumerate(answers[2:], start=3):
        assert read_share(response) >= 0.7, (turn, split(response))
    runs = await harness.running.analyst.store.all_runs()
    assert [r["status"] for r in runs] == ["succeeded"] * 5
    assert runs[-1]["cache_read_tokens"] > 2 * (runs[-1]["input_tokens"] + runs[-1]["cache_write_tokens"])


async def test_a_long_answer_does_not_push_the_thread_out_of_the_caches_reach(
    harness: Harness, claude: FakeAnthropic
) -> None:
    # Answers of 25 blocks without a pause: the end of the history is more than 20 blocks past
    # the entry the previous answer wrote at its question, so only a breakpoint there finds it.
    claude.script = scripted(*steps(6, "step"), Text("Here is what I found."))
    first = await harness.mention("what drives churn?")
    for question in ("split that by country", "and by device?", "what about tier?"):
        await harness.mention(question, thread_ts=first.thread_ts)
    answers = first_calls(claude)
    assert len(answers) == 4
    for previous, response in pairwise(answers):
        read, written, _ = split(previous)
        assert split(response)[0] >= read + written  # everything up to the previous question
    assert all(breakpoints(body) <= 4 for body, _ in exchanges(claude))


def marked_at(messages: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(i, j) for i, m in enumerate(messages) for j, b in enumerate(m["content"]) if "cache_control" in b]


def test_breakpoints_go_on_the_end_and_the_newest_anchors_within_the_slots() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "first question"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "answer"}, {"type": "thinking", "thinking": "…"}]},
        {"role": "user", "content": [{"type": "text", "text": "second question"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "answer"}]},
        {
            "role": "user",
            "content": [{"type": "container_upload", "file_id": "file_1"}, {"type": "text", "text": "third"}],
        },
    ]
    anchors = cache_anchors(messages)
    assert anchors == [(0, 0), (2, 0)]  # the end of each earlier question
    marked = with_cache_breakpoints(messages, anchors, slots=2)
    assert marked_at(marked) == [(2, 0), (4, 1)]  # the previous question and the newest text, never the upload
    assert marked_at(messages) == []  # the input is left as it was
    assert marked_at(with_cache_breakpoints(messages, anchors, slots=3)) == [(0, 0), (2, 0), (4, 1)]
    assert with_cache_breakpoints(messages, anchors, slots=0) == messages
    # A paused call ending in a thinking block: the breakpoint goes on the last block that can take one.
    thinking = {"type": "thinking", "thinking": "y"}
    paused = [*messages, {"role": "assistant", "content": [{"type": "text", "text": "x"}, thinking]}]
    assert last_cacheable(paused) == (5, 0)


def test_the_request_counts_every_breakpoint_against_the_four(env: dict[str, str]) -> None:
    settings = Settings.from_env({**env, "ANALYST_WEB_SEARCH_MAX_USES": "2"}, http=True)
    engine = Engine(cast(anthropic.AsyncAnthropic, None), settings)
    messages = [
        {"role": "user", "content": [{"type": "text", "text": f"question {n}"}]}
        if n % 2 == 0
        else {"role": "assistant", "content": [{"type": "text", "text": f"answer {n}"}]}
        for n in range(9)
    ]
    params = engine.request_params(messages, None, cache_anchors(messages))
    assert breakpoints({**params}) == 4
    assert "cache_control" in params["system"][-1] and "cache_control" in params["tools"][-1]


# -- the fake models the documented rules ----------------------------------------------------


async def test_the_fake_reads_only_entries_written_within_twenty_blocks(claude: FakeAnthropic) -> None:
    claude.script = scripted(Text("ok"))
    client = anthropic.AsyncAnthropic(api_key=claude.api_key, base_url=claude.base_url, max_retries=0)
    marked = {"type": "ephemeral"}

    def blocks(count: int, mark: Sequence[int] = ()) -> list[dict[str, Any]]:
        return [
            {"type": "text", "text": f"part {i} " + "words " * 50, **({"cache_control": marked} if i in mark else {})}
            for i in range(count)
        ]

    async def usage(content: list[dict[str, Any]]) -> tuple[int, int]:
        message = await client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": content}]
        )
        return message.usage.cache_read_input_tokens or 0, message.usage.cache_creation_input_tokens or 0

    try:
        read, written = await usage(blocks(10, mark=[9]))
        assert read == 0 and written > 0
        # The same ten blocks and thirty more, a breakpoint at the end: the entry is out of reach.
        assert (await usage(blocks(40, mark=[39])))[0] == 0
        # Fifteen more, a breakpoint at the end: the entry 15 blocks back is in reach.
        assert (await usage(blocks(25, mark=[24])))[0] == written
        # A prefix of an entry that was never marked itself is not an entry.
        assert (await usage(blocks(5, mark=[4])))[0] == 0
        # Five breakpoints are refused as the API refuses them.
        with pytest.raises(anthropic.BadRequestError, match="A maximum of 4 blocks with cache_control"):
            await usage(blocks(5, mark=range(5)))
    finally:
        await client.close()


# -- quotas, the ledger and /analyze usage count every token ---------------------------------


def test_tokens_used_counts_cached_input() -> None:
    assert tokens_used(input_tokens=3, output_tokens=100, cache_read_tokens=5_000, cache_write_tokens=900) == 6_003


async def test_a_cached_follow_up_counts_its_cache_reads_against_the_daily_quota(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    async with Harness(env, slack, claude) as harness:
        first = await harness.mention("what drives churn here?", files=[harness.file("s.csv", streaming_csv)])
        await harness.mention("now split that by country", thread_ts=first.thread_ts)
        runs = await harness.running.analyst.store.all_runs()
    assert runs[1]["cache_read_tokens"] > runs[1]["input_tokens"]  # the follow-up was mostly cached
    uncached = sum(r["input_tokens"] + r["output_tokens"] for r in runs)
    used = sum(r["input_tokens"] + r["cache_read_tokens"] + r["cache_write_tokens"] + r["output_tokens"] for r in runs)
    assert used > uncached
    limit = (used + uncached) // 2  # under what was used, over what the uncached part alone comes to
    calls = len(claude.requests)
    async with Harness({**env, "ANALYST_DAILY_TOKENS_PER_USER": str(limit)}, slack, claude) as harness:
        refused = await harness.mention("and by device?", thread_ts=first.thread_ts)
        notes = [e.text for e in slack.ephemerals("C0DATA", "U0ALICE") if "tokens for the last 24 hours" in e.text]
        assert len(notes) == 1 and f"You've used {used:,} of your {limit:,} tokens for the last 24 hours." in notes[0]
        assert len(claude.requests) == calls  # refused before any Anthropic call
        assert "no_entry_sign" in slack.message("C0DATA", refused.ts).reactions
        await slack.deliver_command(harness.events_url, text="usage")
        await harness.settle()
    [usage] = [e.text for e in slack.ephemerals("C0DATA", "U0ALICE") if "Your limits" in e.text]
    assert f"{used:,} of {limit:,} tokens in the last 24 h" in usage
    assert f"2 runs, {used:,} tokens" in usage
    assert f"{sum(r['cache_read_tokens'] for r in runs):,} of them from the cache" in usage


# -- server tools in the Usage event and the ledger -------------------------------------------


async def test_web_searches_and_fetches_reach_the_ledger_and_the_cost(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = scripted(
        WebSearch("streaming churn benchmarks", results=[("Churn report", "https://example.com/churn", "8% avg")]),
        WebSearch("streaming churn 2026", results=[("Churn 2026", "https://example.com/2026", "7%")]),
        WebFetch("https://example.com/churn", text="Average monthly churn: 8%."),
        Pause(),
        WebSearch("churn by tier", results=[("Tiers", "https://example.com/tiers", "Free tiers churn most")]),
        Text("Your churn is well above the industry's 8%."),
    )
    async with Harness(
        {**env, "ANALYST_WEB_SEARCH_MAX_USES": "5", "ANALYST_WEB_FETCH_MAX_USES": "2"}, slack, claude
    ) as harness:
        asked = await harness.mention("how does our churn compare with the industry?")
        assert "above the industry" in harness.thread_text(asked)
        [run] = await harness.running.analyst.store.all_runs()
        await slack.deliver_command(harness.events_url, text="usage")
        await harness.settle()
    assert (run["web_search_requests"], run["web_fetch_requests"]) == (3, 1)  # over both calls
    reported = [r["usage"]["server_tool_use"] for r in claude.responses]
    assert sum(u["web_search_requests"] for u in reported) == 3
    tokens_only = estimated_cost(
        run["model"],
        input_tokens=run["input_tokens"],
        output_tokens=run["output_tokens"],
        cache_read_tokens=run["cache_read_tokens"],
        cache_write_tokens=run["cache_write_tokens"],
    )
    [usage] = [e.text for e in slack.ephemerals("C0DATA", "U0ALICE") if "Your analyses" in e.text]
    assert "3 web searches" in usage
    assert f"≈ ${tokens_only + 0.03:,.2f}" in usage


def test_usage_events_add_up_server_tool_use() -> None:
    total = Usage(input_tokens=1, web_search_requests=2) + Usage(output_tokens=5, web_fetch_requests=1)
    assert total == Usage(input_tokens=1, output_tokens=5, web_search_requests=2, web_fetch_requests=1)


async def test_the_terminal_shows_every_token_of_a_call(tmp_path: Path) -> None:
    out = io.StringIO()
    publisher = TerminalPublisher(out, cast(FilesApi, None), tmp_path)
    await publisher.on(Usage(input_tokens=3, output_tokens=200, cache_read_tokens=9_000, cache_write_tokens=1_000))
    await publisher.on(Done(answer="ok", container_id=None, usage=Usage(), steps=0))
    assert "tokens: 10,203 (9,000 read from the cache, 200 out)" in out.getvalue()


async def test_an_older_ledger_gains_the_server_tool_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, user_id TEXT, input_tokens INTEGER)")
        conn.execute("INSERT INTO runs (user_id, input_tokens) VALUES ('U0ALICE', 10)")
    async with Store(path) as store:
        [row] = await store.all_runs()
    assert row["input_tokens"] == 10 and row["web_search_requests"] is None and "web_fetch_requests" in row


# -- prices ----------------------------------------------------------------------------------


def test_costs_use_the_current_list_prices() -> None:
    sonnet = price_for("claude-sonnet-5-5")
    assert (sonnet.input_per_mtok, sonnet.output_per_mtok, sonnet.cache_read_per_mtok) == (2.0, 10.0, 0.10)
    assert sonnet.cache_write_per_mtok == 2.5 and sonnet.known
    assert price_for("claude-sonnet-5-5-20261001") == sonnet  # dated ids take their model's row
    assert price_for("claude-opus-5").input_per_mtok == 5.0 and price_for("claude-opus-5-5").input_per_mtok == 4.0
    assert price_for("claude-haiku-5-5").output_per_mtok == 0.5
    assert not price_for("some-future-model").known
    cost = estimated_cost(
        MODEL,
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_read_tokens=1_000_000,
        cache_write_tokens=1_000_000,
        web_search_requests=1_000,
    )
    assert cost == pytest.approx(2.0 + 10.0 + 0.10 + 2.50 + 10.0)
