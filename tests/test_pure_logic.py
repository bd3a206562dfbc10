"""The engine's and the ledger's pure functions, called directly: no fakes, no I/O."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import anthropic
import httpx2

from bot.conversation import SHORTENED_NOTE, replay
from bot.engine import MAX_RETRY_DELAY_S, retry_delay, step_title
from bot.errors import StreamBroken
from bot.usage import WINDOWS, tally

MODEL = "claude-sonnet-5-5"


def turn(role: str, *blocks: dict[str, Any], model: str = MODEL) -> dict[str, Any]:
    return {"role": role, "content": list(blocks), "model": model}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def exchange(question: str, answer: str, *extra: dict[str, Any], model: str = MODEL) -> list[dict[str, Any]]:
    return [turn("user", text(question)), turn("assistant", *extra, text(answer), model=model)]


# -- conversation.replay ---------------------------------------------------------------------------


def test_replay_keeps_whole_exchanges_and_drops_a_half_recorded_one() -> None:
    turns = [*exchange("q1", "a1"), turn("user", text("q2, never answered")), *exchange("q3", "a3")]
    history = replay(turns, model=MODEL, max_messages=20, max_tokens=100_000)
    assert [m["role"] for m in history.messages] == ["user", "assistant", "user", "assistant"]
    assert history.messages[2]["content"] == [text("q3")]
    assert history.dropped_turns == 0


def test_replay_keeps_the_newest_exchanges_and_says_older_ones_were_left_out() -> None:
    turns = [m for n in range(5) for m in exchange(f"q{n}", f"a{n}")]
    history = replay(turns, model=MODEL, max_messages=4, max_tokens=100_000)
    assert history.dropped_turns == 3
    assert history.messages[0]["content"][0]["text"] == SHORTENED_NOTE
    assert history.messages[0]["content"][1] == text("q3") and history.messages[-1]["content"] == [text("a4")]


def test_replay_shortens_old_answers_to_their_text_before_dropping_them() -> None:
    tool = {
        "type": "server_tool_use",
        "id": "srvtoolu_1",
        "name": "bash_code_execution",
        "input": {"command": "x" * 4000},
    }
    turns = [*exchange("q1", "a1", tool), *exchange("q2", "a2")]
    history = replay(turns, model=MODEL, max_messages=20, max_tokens=600)
    assert history.shortened_turns == 1 and history.dropped_turns == 0
    assert history.messages[1]["content"] == [text("a1")]


def test_replay_leaves_out_thinking_another_model_wrote() -> None:
    thinking = {"type": "thinking", "thinking": "plan", "signature": "sig"}
    turns = exchange("q1", "a1", thinking, model="claude-opus-5")
    history = replay(turns, model=MODEL, max_messages=20, max_tokens=100_000)
    assert thinking not in history.messages[1]["content"]
    same_model = replay(exchange("q1", "a1", thinking), model=MODEL, max_messages=20, max_tokens=100_000)
    assert thinking in same_model.messages[1]["content"]  # echoed unchanged to the model that wrote it


# -- engine.step_title -----------------------------------------------------------------------------


def block(name: str, **tool_input: Any) -> SimpleNamespace:
    return SimpleNamespace(name=name, input=tool_input)


def test_step_titles_name_what_each_tool_version_does() -> None:
    assert step_title(block("code_execution", code="print(1)")) == ("Running Python", "python", "print(1)")
    assert step_title(block("bash_code_execution", command="python3 /tmp/analysis_2.py"))[0] == "Running analysis_2.py"
    assert step_title(block("bash_code_execution", command="ls -la"))[:2] == ("Running a command", "bash")
    created = block("text_editor_code_execution", command="create", path="/tmp/a.py", file_text="x = 1")
    assert step_title(created) == ("Writing a.py", "python", "x = 1")
    assert (
        step_title(block("text_editor_code_execution", command="view", path="/tmp/notes.txt"))[0] == "Reading notes.txt"
    )
    assert step_title(block("web_search", query="churn benchmarks"))[0] == "Searching the web for “churn benchmarks”"
    assert step_title(block("mystery"))[0] == "Using mystery"


# -- engine.retry_delay ----------------------------------------------------------------------------


def status_error(status: int, headers: dict[str, str]) -> anthropic.APIStatusError:
    request = httpx2.Request("POST", "https://api.anthropic.test/v1/messages")
    response = httpx2.Response(status, headers=headers, request=request)
    return anthropic.APIStatusError("busy", response=response, body=None)


def test_retry_delay_honours_the_servers_retry_after_within_a_ceiling() -> None:
    assert retry_delay(status_error(429, {"retry-after": "7"}), 1) == 7.0
    assert retry_delay(status_error(429, {"retry-after-ms": "1500"}), 1) == 1.5
    assert retry_delay(status_error(429, {"retry-after": "3600"}), 1) == MAX_RETRY_DELAY_S


def test_retry_delay_backs_off_exponentially_without_a_hint() -> None:
    broken = StreamBroken("dropped")
    first, third, tenth = (retry_delay(broken, n) for n in (1, 3, 10))
    assert 0.375 <= first <= 0.5 and 1.5 <= third <= 2.0 and 6.0 <= tenth <= 8.0


# -- usage.tally -----------------------------------------------------------------------------------


def row(run_id: int, **fields: Any) -> dict[str, Any]:
    base = {
        "id": run_id,
        "model": MODEL,
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "web_search_requests": 0,
        "web_fetch_requests": 0,
    }
    return {**base, **fields}


def test_tally_counts_every_token_per_window() -> None:
    now = 1_000_000.0
    rows = [
        row(1, input_tokens=100, cache_read_tokens=900, cache_write_tokens=50, output_tokens=200),
        row(2, input_tokens=10, output_tokens=20, web_search_requests=2),
    ]
    started = {1: now - 600, 2: now - 2 * 86_400}  # ten minutes ago; two days ago
    hour, day, month = tally(rows, now=now, started=started)
    assert [t.label for t in (hour, day, month)] == [label for label, _ in WINDOWS]
    assert (hour.runs, hour.tokens, hour.cached_tokens, hour.output_tokens) == (1, 1250, 900, 200)
    assert hour.input_tokens == 1050  # cached input counts as input
    assert (month.runs, month.tokens, month.web_searches) == (2, 1280, 2)
    assert month.cost > day.cost > 0
