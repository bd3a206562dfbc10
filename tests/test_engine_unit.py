"""The engine's behaviour, driven through the in-memory scripted model (tests/fakes/memory_model.py).

No network, no sandbox: each test scripts the API's replies, runs one :class:`Job` and asserts on
the events the engine yields and on the requests it made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import anthropic
import pytest

from bot import engine as engine_module
from bot.conversation import SHORTENED_NOTE, halved
from bot.engine import Engine, InputFile, Job
from bot.progress import AnalysisEvent as Event
from bot.progress import CodeWritten, Done, Failed, OutputFile, Retrying, StepOutput, StepStarted, TextWritten
from bot.progress import Usage as RunUsage
from bot.settings import Settings
from tests.fakes.memory_model import MemoryModel, api_error, bash, reply, text

CSV = InputFile("file_csv", "streaming.csv", "csv", 5000)


def settings(**env: str) -> Settings:
    return Settings.from_env({"ANTHROPIC_API_KEY": "sk-ant-test", **env}, slack=False)


async def run(model: MemoryModel, job: Job, **env: str) -> list[Event]:
    engine = Engine(cast(anthropic.AsyncAnthropic, model), settings(**env))
    return [event async for event in engine.run(job)]


def outcome(events: Sequence[Event]) -> Done | Failed:
    last = events[-1]
    assert isinstance(last, Done | Failed), last
    return last


def done(events: Sequence[Event]) -> Done:
    last = outcome(events)
    assert isinstance(last, Done), last
    return last


def failed(events: Sequence[Event]) -> Failed:
    last = outcome(events)
    assert isinstance(last, Failed), last
    return last


def without_cache_marks(blocks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in block.items() if k != "cache_control"} for block in blocks]


def history(exchanges: int) -> list[dict[str, Any]]:
    return [
        message
        for n in range(exchanges)
        for message in (
            {"role": "user", "content": text(f"question {n}")},
            {"role": "assistant", "content": text(f"answer {n}")},
        )
    ]


# -- one answer ------------------------------------------------------------------------------------


async def test_a_bash_step_yields_its_step_code_output_and_files() -> None:
    model = MemoryModel()
    chart = model.add_file("churn_by_tier.png", size_bytes=4096)
    command = "python3 /tmp/analysis_1.py"
    model.script.extend([reply(bash(command, stdout="churn 29.1%\n", file_ids=[chart]), text("Churn is 29.1%."))])
    events = await run(model, Job("what drives churn?", files=[CSV]))
    steps = [e for e in events if isinstance(e, StepStarted | CodeWritten | StepOutput | OutputFile)]
    assert steps == [
        StepStarted(1, "Working in the sandbox"),
        StepStarted(1, "Running analysis_1.py", runs_code=True),
        CodeWritten(1, "bash", command),
        StepOutput(1, stdout="churn 29.1%\n", return_code=0, file_ids=(chart,)),
        OutputFile(chart, "churn_by_tier.png", "image/png", 4096),
    ]
    result = done(events)
    assert (result.answer, result.steps, result.files) == ("Churn is 29.1%.", 1, (steps[-1],))
    assert result.code_runs == 1  # the step ran code (the ledger's code_executions)
    assert model.options == [{"max_retries": 0}]  # the engine retries itself, announcing it


async def test_text_before_a_step_is_narration_not_the_answer() -> None:
    model = MemoryModel(reply(text("Let me load the file."), bash("ls"), text("Free-tier users churn most.")))
    events = await run(model, Job("who churns?", files=[CSV]))
    assert [e.text for e in events if isinstance(e, TextWritten)] == [
        "Let me load the file.",
        "Free-tier users churn most.",
    ]
    assert done(events).answer == "Free-tier users churn most."


async def test_a_failed_step_becomes_a_note_under_the_answer() -> None:
    model = MemoryModel(
        reply(bash("python3 slow.py", error_code="execution_time_exceeded"), text("From the sample: 29%."))
    )
    events = await run(model, Job("churn?", files=[CSV]))
    assert StepOutput(1, error_code="execution_time_exceeded") in events
    assert done(events).notes == ("Some steps failed: a step of the analysis ran longer than the sandbox allows.",)


async def test_an_answer_cut_at_max_tokens_says_so() -> None:
    events = await run(MemoryModel(reply(text("Churn is driven by"), stop_reason="max_tokens")), Job("churn?"))
    result = done(events)
    assert result.answer == "Churn is driven by"
    assert result.notes == ("The answer hit the length limit and was cut off; ask a narrower follow-up for the rest.",)


async def test_a_refusal_fails_and_is_not_worth_retrying() -> None:
    events = await run(MemoryModel(reply(text(""), stop_reason="refusal")), Job("churn?"))
    result = failed(events)
    assert not result.retryable and result.message.startswith("Claude declined to carry out this analysis.")


async def test_an_answer_without_text_or_files_fails_retryably() -> None:
    events = await run(MemoryModel(reply(bash("ls"))), Job("churn?", files=[CSV]))
    result = failed(events)
    assert result.retryable and result.message.startswith("The analysis finished without an answer.")
    assert result.steps == 1 and result.code_runs == 1


# -- paused turns and usage ------------------------------------------------------------------------


async def test_a_paused_turn_is_echoed_back_and_continued_in_the_same_container() -> None:
    first = reply(text("Loading."), bash("head data.csv", stdout="id,churned"), stop_reason="pause_turn")
    model = MemoryModel(first, reply(text("Churn is 29.1%.")))
    events = await run(model, Job("churn?", files=[CSV]))
    assert done(events).answer == "Churn is 29.1%."
    assert len(model.requests) == 2
    echoed = model.requests[1]["messages"][-1]
    assert echoed["role"] == "assistant" and without_cache_marks(echoed["content"]) == first.content
    assert model.requests[1]["messages"][:-1] == model.requests[0]["messages"]
    assert model.requests[1]["container"] == done(events).container_id


async def test_pausing_past_the_cap_stops_with_a_note() -> None:
    model = MemoryModel(*(reply(bash(f"step {n}"), text(f"so far {n}"), stop_reason="pause_turn") for n in range(2)))
    events = await run(model, Job("churn?", files=[CSV]), ANALYST_MAX_CONTINUATIONS="1")
    result = done(events)
    assert len(model.requests) == 2 and result.answer == "so far 1"
    assert result.notes == ("The analysis was stopped after 2 rounds of work; the answer may be incomplete.",)


async def test_every_calls_usage_is_summed_into_the_outcome() -> None:
    usage = [
        {"input_tokens": 1200, "output_tokens": 300, "cache_creation_input_tokens": 5000},
        {"input_tokens": 40, "output_tokens": 250, "cache_read_input_tokens": 5000},
    ]
    model = MemoryModel(reply(bash("ls"), stop_reason="pause_turn", usage=usage[0]), reply(text("ok"), usage=usage[1]))
    events = await run(model, Job("churn?", files=[CSV]))
    per_call = [RunUsage(1200, 300, cache_write_tokens=5000), RunUsage(40, 250, cache_read_tokens=5000)]
    assert [e for e in events if isinstance(e, RunUsage)] == per_call
    assert done(events).usage == RunUsage(1240, 550, cache_read_tokens=5000, cache_write_tokens=5000)


# -- refusals and faults ---------------------------------------------------------------------------


async def test_a_refused_container_is_replaced_once_with_the_files_reattached() -> None:
    reattached = InputFile("file_again", "streaming.csv", "csv", 5000)
    calls: list[str] = []

    async def reattach() -> Sequence[InputFile]:
        calls.append("reattach")
        return [reattached]

    refused = api_error(400, "invalid_request_error", "container expired")
    model = MemoryModel(refused, reply(text("Churn is 29.1%.")))
    job = Job("and by tier?", thread_files=[CSV], history=history(1), container_id="container_old", reattach=reattach)
    events = await run(model, job)
    assert done(events).answer == "Churn is 29.1%." and calls == ["reattach"]
    assert model.requests[0]["container"] == "container_old" and "container" not in model.requests[1]
    newest = model.requests[1]["messages"][-1]["content"]
    assert {"type": "container_upload", "file_id": "file_again"} in without_cache_marks(newest)
    assert newest[0]["text"].startswith("(Your sandbox was reset since the last answer")


async def test_a_container_is_replaced_only_once() -> None:
    refusals = [api_error(400, "invalid_request_error", "container expired") for _ in range(2)]
    model = MemoryModel(*refusals, reply(text("never sent")))
    events = await run(model, Job("churn?", thread_files=[CSV], history=history(1), container_id="container_old"))
    assert len(model.requests) == 2 and not failed(events).retryable


async def test_a_prompt_too_long_halves_the_history_and_asks_again() -> None:
    too_long = api_error(400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum")
    model = MemoryModel(too_long, reply(text("Still 29.1%.")))
    earlier = history(4)
    events = await run(model, Job("and now?", history=earlier, container_id="container_1"))
    assert done(events).answer == "Still 29.1%."
    first, second = (request["messages"] for request in model.requests)
    assert len(first) == 9 and len(second) == len(halved(earlier)) + 1 == 5
    assert second[0]["content"][0]["text"] == SHORTENED_NOTE
    assert without_cache_marks(second[-1]["content"]) == without_cache_marks(first[-1]["content"])


async def test_an_overloaded_api_is_retried_after_saying_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "retry_delay", lambda error, attempt: 0.0)
    model = MemoryModel(api_error(529, "overloaded_error", "Overloaded"), reply(text("Churn is 29.1%.")))
    events = await run(model, Job("churn?"))
    retries = [e for e in events if isinstance(e, Retrying)]
    assert retries == [
        Retrying("Claude is busy right now — trying again", attempt=2, of=5, delay=0.0, kind="overloaded")
    ]
    assert done(events).answer == "Churn is 29.1%." and len(model.requests) == 2


async def test_a_dropped_stream_is_retried_and_its_partial_answer_discarded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "retry_delay", lambda error, attempt: 0.0)
    dropped = reply(text("Churn is half"), text("written"), drop_after=1)
    model = MemoryModel(dropped, reply(text("Churn is 29.1%.")))
    events = await run(model, Job("churn?"))
    result = done(events)
    assert [e.message for e in events if isinstance(e, Retrying)] == ["The connection to Claude dropped — trying again"]
    assert result.answer == "Churn is 29.1%." and result.assistant_content == text("Churn is 29.1%.")


async def test_a_request_the_api_rejects_fails_with_a_message_for_the_person() -> None:
    model = MemoryModel(api_error(400, "invalid_request_error", "messages: bad block"), reply(text("never sent")))
    result = failed(await run(model, Job("churn?")))
    assert not result.retryable and result.message.startswith("Claude rejected the request")
    assert len(model.requests) == 1


# -- the memory model rejects what the API rejects -------------------------------------------------


@pytest.mark.anthropic_contract_violation
async def test_the_memory_model_rejects_requests_the_sdks_types_do_not_allow() -> None:
    model = MemoryModel(reply(text("never sent")))
    with pytest.raises(anthropic.BadRequestError, match="temperatur: Extra inputs are not permitted"):
        async with model.messages.stream(model="claude-sonnet-5-5", max_tokens=10, messages=[], temperatur=1):
            pass
    file_id = model.add_file("chart.png")
    with pytest.raises(anthropic.BadRequestError, match="anthropic-beta"):
        await model.files.retrieve_metadata(file_id)
    assert len(model.script) == 1


# -- rate limits: the pacer is told, and a refusal's retry-after is waited out -------------------------


class Pacer:
    """Records what the engine tells the pacer, and the order of gates and calls."""

    def __init__(self, model: MemoryModel) -> None:
        self.model = model
        self.log: list[str] = []
        self.accepted_headers: list[dict[str, str]] = []

    async def gate(self) -> None:
        self.log.append(f"gate before request {len(self.model.requests) + 1}")

    def accepted(self, headers: Mapping[str, str]) -> None:
        self.log.append("accepted")
        self.accepted_headers.append(dict(headers))

    def refused(self, headers: Mapping[str, str]) -> None:
        self.log.append(f"refused, retry-after {headers.get('retry-after')}")


class Clock:
    """The engine's clock and sleep: sleeping moves the clock, nothing really waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def paced_run(model: MemoryModel, job: Job, **env: str) -> tuple[list[Event], Pacer, Clock]:
    pacer, clock = Pacer(model), Clock()
    engine = Engine(cast(anthropic.AsyncAnthropic, model), settings(**env), pacer=pacer)
    engine.clock, engine.sleep = clock, clock.sleep
    return [event async for event in engine.run(job)], pacer, clock


def rate_limited(retry_after: str | None = "20", status: int = 429) -> Exception:
    kind = "rate_limit_error" if status == 429 else "overloaded_error"
    return api_error(
        status,
        kind,
        "Number of request tokens has exceeded your per-minute rate limit",
        ({"retry-after": retry_after} if retry_after is not None else {}),
    )


async def test_refusals_that_say_when_to_come_back_are_waited_out_without_using_up_retries() -> None:
    limits = {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49"}
    model = MemoryModel(
        rate_limited("20"), rate_limited("7", status=529), rate_limited("20"), reply(text("29.1%."), headers=limits)
    )
    events, pacer, clock = await paced_run(model, Job("churn?"), ANALYST_ANTHROPIC_MAX_RETRIES="0")
    assert done(events).answer == "29.1%." and len(model.requests) == 4
    # Each wait is at least what the API asked (and at most a tenth more, so refused calls spread out).
    assert [20 <= clock.slept[0] <= 22, 7 <= clock.slept[1] <= 7.7, 20 <= clock.slept[2] <= 22] == [True] * 3
    retries = [e for e in events if isinstance(e, Retrying)]
    assert [(e.message, e.attempt, e.rate_limited) for e in retries] == [
        ("Claude is busy right now — trying again", 1, True)
    ] * 3
    assert [e.kind for e in retries] == ["rate_limit", "overloaded", "rate_limit"]
    assert pacer.log == [
        "gate before request 1",
        "refused, retry-after 20",
        "gate before request 2",
        "refused, retry-after 7",
        "gate before request 3",
        "refused, retry-after 20",
        "gate before request 4",
        "accepted",
    ]
    assert pacer.accepted_headers[0]["anthropic-ratelimit-requests-remaining"] == "49"


async def test_a_rate_limit_longer_than_the_run_may_take_fails_at_once_saying_so() -> None:
    model = MemoryModel(rate_limited("20"), rate_limited("3600"), reply(text("never sent")))
    events, _, clock = await paced_run(model, Job("churn?"), ANALYST_RUN_DEADLINE_S="600")
    result = failed(events)
    assert result.message == "This workspace has hit its Anthropic rate limit. Try again in a few minutes."
    assert result.kind == "rate_limit" and len(model.requests) == 2 and len(clock.slept) == 1


async def test_a_rate_limit_without_retry_after_uses_up_a_retry_and_still_narrows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_module, "retry_delay", lambda error, attempt: 0.5)
    model = MemoryModel(rate_limited(None), rate_limited(None), reply(text("never sent")))
    events, pacer, clock = await paced_run(model, Job("churn?"), ANALYST_ANTHROPIC_MAX_RETRIES="1")
    assert failed(events).kind == "rate_limit" and len(model.requests) == 2
    assert [e.rate_limited for e in events if isinstance(e, Retrying)] == [False]
    assert pacer.log.count("refused, retry-after None") == 2 and clock.slept == [0.5]


async def test_a_refusal_that_says_not_to_retry_is_not_retried() -> None:
    refusal = api_error(429, "rate_limit_error", "no", {"retry-after": "1", "x-should-retry": "false"})
    model = MemoryModel(refusal, reply(text("never sent")))
    events, _, clock = await paced_run(model, Job("churn?"))
    assert failed(events).kind == "rate_limit" and len(model.requests) == 1 and clock.slept == []
