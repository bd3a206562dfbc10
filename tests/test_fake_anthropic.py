"""Tests of the fake Anthropic API, its sandbox and its scripted model, driven by the REAL SDK.

Everything here goes through ``anthropic.AsyncAnthropic`` pointed at the loopback fake, so these
tests also pin down that the fake speaks the wire format the installed SDK expects.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import httpx2
import pytest
from anthropic.types import Message

from tests.fakes import sandbox
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.scripts import (
    Action,
    Code,
    MaxTokens,
    Pause,
    Refuse,
    ScriptContext,
    Text,
    ToolError,
    scripted,
)

STREAMING_CSV = Path(__file__).parents[2] / "shared" / "data" / "streaming.csv"
MODEL = "claude-sonnet-5"
BASH_TOOL = {"type": "code_execution_20260521", "name": "code_execution"}
PYTHON_TOOL = {"type": "code_execution_20250522", "name": "code_execution"}
PYTHON_BETA = {"anthropic-beta": "code-execution-2025-05-22"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
QUESTION = "Why are customers churning?"


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture
async def api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
async def client(api: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(api_key=api.api_key, base_url=api.base_url, max_retries=0) as sdk:
        yield sdk


async def upload_csv(client: anthropic.AsyncAnthropic) -> str:
    meta = await client.files.upload(file=("streaming.csv", STREAMING_CSV.read_bytes(), "text/csv"))
    return meta.id


def ask(question: str, *file_ids: str) -> dict[str, Any]:
    """A user turn: the question plus one container_upload block per file."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": question}]
    blocks += [{"type": "container_upload", "file_id": file_id} for file_id in file_ids]
    return {"role": "user", "content": blocks}


def answer_text(message: Message) -> str:
    return "\n".join(block.text for block in message.content if block.type == "text")


def output_file_ids(message: Message) -> list[str]:
    """File ids in code_execution_output / bash_code_execution_output blocks."""
    ids = []
    for block in message.content:
        if block.type in ("code_execution_tool_result", "bash_code_execution_tool_result"):
            ids += [output.file_id for output in getattr(block.content, "content", [])]
    return ids


def stdouts(message: Message) -> list[str]:
    return [
        block.content.stdout
        for block in message.content
        if block.type in ("code_execution_tool_result", "bash_code_execution_tool_result")
        and hasattr(block.content, "stdout")
    ]


@dataclass
class RawResponse:
    status: int
    body: dict[str, Any]


async def raw_request(api: FakeAnthropic, method: str, path: str, headers: dict[str, str]) -> RawResponse:
    """A request without the SDK, for header checks the SDK would never get wrong."""
    async with aiohttp.ClientSession() as session, session.request(method, api.base_url + path, headers=headers) as r:
        return RawResponse(r.status, await r.json())


# --------------------------------------------------------------------------------------------
# Files API
# --------------------------------------------------------------------------------------------


async def test_upload_returns_file_metadata(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    data = STREAMING_CSV.read_bytes()
    meta = await client.files.upload(file=("exports/2026/streaming.csv", data, "text/csv"))

    assert meta.id.startswith("file_")
    assert meta.type == "file"
    assert meta.filename == "streaming.csv", "only the final path component is kept"
    assert meta.mime_type == "text/csv"
    assert meta.size_bytes == len(data)
    assert meta.downloadable is False
    assert meta.created_at.tzinfo is not None
    assert len(api.uploads_of(data)) == 1, "the bytes arrived exactly once"
    assert api.files[meta.id].data == data


async def test_upload_validation(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="empty"):
        await client.files.upload(file=("empty.csv", b"", "text/csv"))
    with pytest.raises(anthropic.BadRequestError, match="expires_in_seconds"):
        await client.files.upload(file=("a.csv", b"a\n1\n", "text/csv"), expires_in_seconds=60)

    form = aiohttp.FormData({"purpose": "analysis"}, default_to_multipart=True)
    async with (
        aiohttp.ClientSession(headers={"x-api-key": api.api_key, "anthropic-version": "2023-06-01"}) as session,
        session.post(api.base_url + "/v1/files", data=form()) as no_file,
    ):
        assert no_file.status == 400
        assert (await no_file.json())["error"]["message"] == "file: Field required"

    meta = await client.files.upload(file=("a.csv", b"a\n1\n", "text/csv"), expires_in_seconds=3600)
    assert meta.expires_at is not None and meta.expires_at > meta.created_at
    assert api.uploads[-1].file_id == meta.id and len(api.uploads) == 1


async def test_list_retrieve_and_delete(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    ids = [(await client.files.upload(file=(f"f{i}.csv", b"x\n1\n", "text/csv"))).id for i in range(3)]

    listed = [meta.id async for meta in client.files.list(limit=2)]  # two pages
    assert sorted(listed) == sorted(ids)
    assert sum(1 for r in api.requests if r.path == "/v1/files" and r.method == "GET") == 2

    meta = await client.files.retrieve_metadata(ids[0])
    assert meta.filename == "f0.csv"

    deleted = await client.files.delete(ids[0])
    assert (deleted.id, deleted.type) == (ids[0], "file_deleted")
    assert api.files[ids[0]].deleted
    with pytest.raises(anthropic.NotFoundError):
        await client.files.retrieve_metadata(ids[0])
    with pytest.raises(anthropic.NotFoundError):
        await client.files.delete(ids[0])
    assert ids[0] not in [meta.id async for meta in client.files.list()]


async def test_only_generated_files_are_downloadable(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    file_id = await upload_csv(client)
    with pytest.raises(anthropic.BadRequestError) as refused:
        await client.files.download(file_id)
    assert isinstance(refused.value, anthropic.types.FileNotDownloadableError)
    assert refused.value.error_code == "file_not_downloadable"

    api.script = scripted(Code("open('outputs/report.md', 'w').write('# Report')"), Text("Written."))
    message = await client.messages.create(model=MODEL, max_tokens=100, tools=[BASH_TOOL], messages=[ask("Go")])
    (report_id,) = output_file_ids(message)
    assert await (await client.files.download(report_id)).read() == b"# Report"
    assert api.files[report_id].origin == "generated" and api.files[report_id].path == "outputs/report.md"

    api.expire_file(report_id)
    with pytest.raises(anthropic.types.FileExpiredError):
        await client.files.download(report_id)
    with pytest.raises(anthropic.NotFoundError):
        await client.files.download("file_does_not_exist")


async def test_every_request_needs_key_and_version(api: FakeAnthropic) -> None:
    no_key = await raw_request(api, "GET", "/v1/files", {"anthropic-version": "2023-06-01"})
    assert no_key.status == 401
    assert no_key.body["type"] == "error" and no_key.body["error"]["type"] == "authentication_error"
    assert no_key.body["request_id"].startswith("req_")

    no_version = await raw_request(api, "GET", "/v1/files", {"x-api-key": api.api_key})
    assert no_version.status == 400 and "anthropic-version" in no_version.body["error"]["message"]

    unknown = await raw_request(api, "GET", "/v1/nope", {"x-api-key": api.api_key, "anthropic-version": "2023-06-01"})
    assert unknown.status == 404 and unknown.body["error"]["type"] == "not_found_error"

    async with anthropic.AsyncAnthropic(api_key="sk-ant-wrong", base_url=api.base_url, max_retries=0) as wrong:
        with pytest.raises(anthropic.AuthenticationError):
            await wrong.files.list()
    assert all("x-api-key" not in r.headers for r in api.requests), "the key is never recorded"


# --------------------------------------------------------------------------------------------
# Messages with code execution and the default analyst script
# --------------------------------------------------------------------------------------------


async def test_default_analyst_with_bash_code_execution(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    file_id = await upload_csv(client)
    message = await client.messages.create(
        model=MODEL, max_tokens=4096, tools=[BASH_TOOL], messages=[ask(QUESTION, file_id)]
    )

    assert message.stop_reason == "end_turn"
    assert [b.type for b in message.content] == [
        "server_tool_use",  # text editor: create analysis_1.py
        "text_editor_code_execution_tool_result",
        "server_tool_use",  # bash: python3 analysis_1.py
        "bash_code_execution_tool_result",
        "server_tool_use",
        "text_editor_code_execution_tool_result",
        "server_tool_use",
        "bash_code_execution_tool_result",
        "text",
    ]
    assert message.content[2].input == {"command": "python3 analysis_1.py"}
    assert all(b.id.startswith("srvtoolu_") for b in message.content if b.type == "server_tool_use")

    answer = answer_text(message)
    assert answer.startswith("## Churn analysis of streaming.csv")
    for figure in ("45.3%", "19.2%", "8.8%", "57.7%", "47.5%"):  # Free/Basic/Premium, <10 h, <3 months
        assert figure in answer
    assert "| Free | 2,282 | 45.3% |" in answer

    (png_id,) = output_file_ids(message)
    png = await (await client.files.download(png_id)).read()
    assert png.startswith(PNG_MAGIC)
    meta = await client.files.retrieve_metadata(png_id)
    assert (meta.filename, meta.mime_type, meta.downloadable) == ("churn_by_tier.png", "image/png", True)

    assert message.container is not None
    container = api.containers[message.container.id]
    assert (container.inputs / "streaming.csv").read_bytes() == STREAMING_CSV.read_bytes()
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


async def test_default_analyst_describes_data_without_churn(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    rows = [{"city": f"c{i % 4}", "temperature": 10 + i % 7, "rainfall": i * 1.5} for i in range(40)]
    meta = await client.files.upload(file=("weather.json", json.dumps(rows).encode(), "application/json"))
    message = await client.messages.create(
        model=MODEL, max_tokens=4096, tools=[BASH_TOOL], messages=[ask("Summarise this", meta.id)]
    )
    answer = answer_text(message)
    assert answer.startswith("## Summary of weather.json")
    assert "| temperature | 12.875 | 13 | 10 | 16 |" in answer
    (png_id,) = output_file_ids(message)
    assert api.files[png_id].filename == "hist_rainfall.png"


async def test_python_only_tool_needs_its_beta_header(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    file_id = await upload_csv(client)
    request: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 4096,
        "tools": [PYTHON_TOOL],
        "messages": [ask(QUESTION, file_id)],
    }

    with pytest.raises(anthropic.BadRequestError, match="code_execution_20250522"):
        await client.messages.create(**request)

    message = await client.messages.create(**request, extra_headers=PYTHON_BETA)
    assert [b.type for b in message.content] == [
        "server_tool_use",
        "code_execution_tool_result",
        "server_tool_use",
        "code_execution_tool_result",
        "text",
    ]
    assert message.content[0].name == "code_execution" and "read_table" in message.content[0].input["code"]
    assert message.content[1].content.type == "code_execution_result"
    assert "45.3%" in answer_text(message)
    (png_id,) = output_file_ids(message)
    assert (await (await client.files.download(png_id)).read()).startswith(PNG_MAGIC)


async def test_streaming_accumulates_the_same_message(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    file_id = await upload_csv(client)
    request: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 4096,
        "tools": [BASH_TOOL],
        "messages": [ask(QUESTION, file_id)],
    }
    created = await client.messages.create(**request)

    chunks: list[str] = []
    async with client.messages.stream(**request) as stream:
        async for text in stream.text_stream:
            chunks.append(text)
        streamed = await stream.get_final_message()

    assert [b.type for b in streamed.content] == [b.type for b in created.content]
    assert answer_text(streamed) == answer_text(created) == "".join(chunks)
    assert len(chunks) > 1, "text arrives in several deltas"
    assert streamed.content[2].input == {"command": "python3 analysis_1.py"}, "input_json_delta is accumulated"
    assert stdouts(streamed) == stdouts(created)
    assert streamed.stop_reason == "end_turn"
    assert streamed.usage.output_tokens == created.usage.output_tokens
    assert streamed.container is not None and streamed.container.id != created.container.id  # type: ignore[union-attr]
    assert api.responses[-1]["content"][-1]["text"] == answer_text(streamed)


# --------------------------------------------------------------------------------------------
# pause_turn, containers, uploads across turns
# --------------------------------------------------------------------------------------------


def pausing_script(ctx: ScriptContext) -> Iterator[Action]:
    """Runs code, pauses, and then answers from what the code printed."""
    yield Code("print(6 * 7)")
    yield Pause()
    yield Code("print(sum(range(10)))")
    yield Pause()
    yield Text(lambda c: f"The answers are {c.runs[0].stdout.strip()} and {c.runs[1].stdout.strip()}.")


async def test_pause_turn_continues_when_content_is_echoed(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    api.script = pausing_script
    messages: list[Any] = [ask("Compute things")]
    first = await client.messages.create(model=MODEL, max_tokens=1024, tools=[BASH_TOOL], messages=messages)
    assert first.stop_reason == "pause_turn"
    assert stdouts(first) == ["42\n"]
    assert first.container is not None

    responses = [first]
    while responses[-1].stop_reason == "pause_turn":
        messages = [*messages, {"role": "assistant", "content": responses[-1].content}]
        responses.append(
            await client.messages.create(
                model=MODEL, max_tokens=1024, tools=[BASH_TOOL], messages=messages, container=first.container.id
            )
        )

    assert [r.stop_reason for r in responses] == ["pause_turn", "pause_turn", "end_turn"]
    assert stdouts(responses[1]) == ["45\n"], "the continuation runs only the next step"
    assert answer_text(responses[2]) == "The answers are 42 and 45."
    assert [b.type for b in responses[2].content] == ["text"]


async def test_pause_turn_without_echo_restarts_the_turn(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    api.script = pausing_script
    request: dict[str, Any] = {"model": MODEL, "max_tokens": 1024, "tools": [BASH_TOOL], "messages": [ask("Compute")]}
    first = await client.messages.create(**request)
    again = await client.messages.create(**request)  # the client forgot to echo the content
    assert first.stop_reason == again.stop_reason == "pause_turn"
    assert stdouts(again) == stdouts(first) == ["42\n"]


async def test_container_reuse_keeps_files_between_turns(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    file_id = await upload_csv(client)
    history: list[Any] = [ask(QUESTION, file_id)]
    first = await client.messages.create(model=MODEL, max_tokens=4096, tools=[BASH_TOOL], messages=history)
    assert first.container is not None

    history += [{"role": "assistant", "content": first.content}, ask("And what about device?")]
    second = await client.messages.create(
        model=MODEL, max_tokens=4096, tools=[BASH_TOOL], messages=history, container=first.container.id
    )
    assert second.container is not None and second.container.id == first.container.id
    answer = answer_text(second)
    assert "45.3%" in answer, "the CSV uploaded in the first turn is still in inputs/"
    assert "**device**" in answer.splitlines()[4], "the follow-up's column comes first"
    assert "still available: churn_by_tier.png" in answer

    api.script = scripted(
        Code("import pandas as pd, os\nprint(sorted(os.listdir('outputs')), len(pd.read_csv('inputs/streaming.csv')))"),
        Text(lambda ctx: ctx.last.stdout.strip()),
    )
    history += [{"role": "assistant", "content": second.content}, ask("List your files")]
    third = await client.messages.create(
        model=MODEL, max_tokens=4096, tools=[BASH_TOOL], messages=history, container=first.container.id
    )
    assert answer_text(third) == "['churn_by_tier.png'] 5000"


async def test_custom_scripts_write_many_files_and_quote_stdout(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    api.script = scripted(
        Code(
            "for i in range(12):\n    open(f'outputs/part_{i:02}.csv', 'w').write(f'n\\n{i}\\n')\nprint('<!channel>')"
        ),
        Text(lambda ctx: f"{ctx.last.stdout.strip()} wrote {len(ctx.last.files)} files"),
    )
    message = await client.messages.create(model=MODEL, max_tokens=1024, tools=[BASH_TOOL], messages=[ask("Split")])

    assert answer_text(message) == "<!channel> wrote 12 files"
    file_ids = output_file_ids(message)
    assert [api.files[i].filename for i in file_ids] == [f"part_{i:02}.csv" for i in range(12)]
    assert all(api.files[i].mime_type == "text/csv" for i in file_ids)


async def test_expired_or_unknown_container_is_rejected(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    api.script = scripted(Code("open('outputs/note.txt', 'w').write('hi')"), Text("done"))
    first = await client.messages.create(model=MODEL, max_tokens=1024, tools=[BASH_TOOL], messages=[ask("Write")])
    assert first.container is not None
    api.expire_container(first.container.id)

    with pytest.raises(anthropic.BadRequestError, match="expired"):
        await client.messages.create(
            model=MODEL, max_tokens=1024, tools=[BASH_TOOL], messages=[ask("Again")], container=first.container.id
        )
    with pytest.raises(anthropic.BadRequestError, match="not found"):
        await client.messages.create(
            model=MODEL, max_tokens=1024, tools=[BASH_TOOL], messages=[ask("Again")], container="container_nope"
        )


async def test_upload_in_an_older_turn_is_missing_from_a_fresh_container(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    file_id = await upload_csv(client)
    history = [
        ask(QUESTION, file_id),
        {"role": "assistant", "content": "Free-tier users churn most."},
        ask("Show me the churn by country"),  # no container= : the API creates a fresh one
    ]
    message = await client.messages.create(model=MODEL, max_tokens=4096, tools=[BASH_TOOL], messages=history)

    assert "NO_INPUT_FILES" in stdouts(message)[0], "the code cannot see the file"
    assert answer_text(message).startswith("## No data found")
    assert message.container is not None
    assert list(api.containers[message.container.id].inputs.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Faults, retries, streams, timeouts, stop reasons
# --------------------------------------------------------------------------------------------


async def test_overloaded_twice_then_success_is_retried_by_the_sdk(api: FakeAnthropic) -> None:
    api.script = scripted(Text("Hello!"))
    api.fail_next("messages", status=529, times=2, retry_after=0.01)
    async with anthropic.AsyncAnthropic(api_key=api.api_key, base_url=api.base_url, max_retries=2) as retrying:
        message = await retrying.messages.create(model=MODEL, max_tokens=100, messages=[ask("Hi")])

    assert answer_text(message) == "Hello!"
    attempts = api.message_requests
    assert [r.status for r in attempts] == [529, 529, 200]
    assert [r.headers["x-stainless-retry-count"] for r in attempts] == ["0", "1", "2"]


async def test_injected_errors_map_to_sdk_exceptions(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    api.fail_next("files.upload", status=429, retry_after=5)
    with pytest.raises(anthropic.RateLimitError) as limited:
        await client.files.upload(file=("a.csv", b"a\n1\n", "text/csv"))
    assert limited.value.response.headers["retry-after"] == "5"
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]

    api.fail_next("messages", status=500)
    with pytest.raises(anthropic.InternalServerError):
        await client.messages.create(model=MODEL, max_tokens=10, messages=[ask("Hi")])
    assert api.uploads == [], "the failed upload stored nothing"


async def test_mid_stream_failures_raise_in_the_sdk(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    api.script = scripted(Text("word " * 500))
    request: dict[str, Any] = {"model": MODEL, "max_tokens": 4096, "messages": [ask("Talk")]}

    api.break_stream_next(after_events=4)
    with pytest.raises(httpx2.RemoteProtocolError):
        async with client.messages.stream(**request) as stream:
            await stream.get_final_message()

    api.error_stream_next(after_events=4)
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        async with client.messages.stream(**request) as stream:
            await stream.get_final_message()
    assert overloaded.value.type == "overloaded_error"

    async with client.messages.stream(**request) as stream:  # faults are one-shot
        assert answer_text(await stream.get_final_message()) == "word " * 500


async def test_code_timeout_yields_execution_time_exceeded(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    api.code_timeout = 0.5
    api.script = scripted(Code("import time\ntime.sleep(60)"), Text(lambda ctx: f"error: {ctx.last.error_code}"))
    message = await client.messages.create(model=MODEL, max_tokens=1024, tools=[BASH_TOOL], messages=[ask("Slow")])

    result = message.content[3]
    assert result.type == "bash_code_execution_tool_result"
    assert result.content.type == "bash_code_execution_tool_result_error"
    assert result.content.error_code == "execution_time_exceeded"
    assert answer_text(message) == "error: execution_time_exceeded"


async def test_failing_code_reports_a_traceback(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    api.script = scripted(Code("import pandas as pd\npd.read_csv('inputs/missing.csv')"))
    message = await client.messages.create(
        model=MODEL, max_tokens=1024, tools=[PYTHON_TOOL], messages=[ask("Fail")], extra_headers=PYTHON_BETA
    )
    result = message.content[1].content
    assert result.type == "code_execution_result"
    assert result.return_code == 1
    assert "Traceback" in result.stderr and "FileNotFoundError" in result.stderr


async def test_refusal_max_tokens_and_tool_errors(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    request: dict[str, Any] = {"model": MODEL, "max_tokens": 1000, "tools": [BASH_TOOL], "messages": [ask("Go")]}

    api.script = scripted(Refuse())
    refused = await client.messages.create(**request)
    assert refused.stop_reason == "refusal" and refused.content == []
    assert refused.stop_details is not None and refused.stop_details.type == "refusal"

    api.script = scripted(Text("x" * 30_000))  # ~7,500 tokens do not fit in max_tokens=1000
    long = await client.messages.create(**request)
    assert long.stop_reason == "max_tokens" and len(answer_text(long)) == 4_000

    api.script = scripted(MaxTokens("The analysis was"))
    assert (await client.messages.create(**request)).stop_reason == "max_tokens"

    api.script = scripted(ToolError("output_file_too_large"), Text("too big"))
    errored = await client.messages.create(**request)
    assert errored.content[1].content.error_code == "output_file_too_large"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": MODEL, "max_tokens": 0.5, "messages": [ask("hi")]}, "max_tokens: Input should be a valid integer"),
        ({"model": MODEL, "max_tokens": 10, "messages": []}, "at least one message"),
        ({"model": MODEL, "max_tokens": 10, "messages": [{"role": "assistant", "content": "x"}]}, "first message"),
        (
            {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "Input tag 'video'",
        ),
        (
            {"model": MODEL, "max_tokens": 10, "messages": [ask("hi", "file_x")]},
            "container_upload blocks can only be used with the code execution tool",
        ),
        (
            {"model": MODEL, "max_tokens": 10, "tools": [BASH_TOOL], "messages": [ask("hi", "file_x")]},
            "File not found: file_x",
        ),
        (
            {
                "model": MODEL,
                "max_tokens": 10,
                "tools": [BASH_TOOL, {"type": "code_execution_20250825", "name": "code_execution"}],
                "messages": [ask("hi")],
            },
            "at most one code execution tool",
        ),
        ({"model": MODEL, "max_tokens": 10, "tools": [{"type": "magic"}], "messages": [ask("hi")]}, "'magic'"),
    ],
)
async def test_invalid_requests_are_rejected(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as rejected:
        await client.messages.create(**body)
    assert message in str(rejected.value.api_message)
    assert api.message_requests[-1].status == 400


async def test_prompt_caching_reads_a_repeated_prefix(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    api.script = scripted(Text("ok"))
    system = [{"type": "text", "text": "You are a data analyst. " * 200, "cache_control": {"type": "ephemeral"}}]

    first = await client.messages.create(model=MODEL, max_tokens=100, system=system, messages=[ask("One")])
    second = await client.messages.create(model=MODEL, max_tokens=100, system=system, messages=[ask("Two")])
    plain = await client.messages.create(model=MODEL, max_tokens=100, messages=[ask("Three")])

    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation_input_tokens and first.usage.cache_creation_input_tokens > 1000
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == first.usage.input_tokens, "the uncached suffixes are the same size"
    assert plain.usage.cache_read_input_tokens == plain.usage.cache_creation_input_tokens == 0


async def test_requests_are_recorded(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    api.script = scripted(Text("ok"))
    await client.messages.create(model=MODEL, max_tokens=10, messages=[ask("Hi")], extra_headers=PYTHON_BETA)
    (recorded,) = api.message_requests
    assert recorded.body["messages"][0]["content"][0]["text"] == "Hi"
    assert recorded.betas == ["code-execution-2025-05-22"]
    assert recorded.headers["anthropic-version"]
    assert recorded.status == 200

    counted = await client.messages.count_tokens(model=MODEL, messages=[ask("Hi")])
    assert counted.input_tokens > 0


async def test_a_broken_script_is_a_500_the_sdk_does_not_retry(api: FakeAnthropic) -> None:
    def broken(ctx: ScriptContext) -> Iterator[Action]:
        yield Text(str(1 / 0))

    api.script = broken
    async with anthropic.AsyncAnthropic(api_key=api.api_key, base_url=api.base_url, max_retries=2) as sdk:
        with pytest.raises(anthropic.InternalServerError, match="ZeroDivisionError"):
            await sdk.messages.create(model=MODEL, max_tokens=10, messages=[ask("Hi")])
    assert len(api.message_requests) == 1, "x-should-retry: false"
    assert isinstance(api.script_errors[0], ZeroDivisionError)


# --------------------------------------------------------------------------------------------
# The warm sandbox itself
# --------------------------------------------------------------------------------------------


async def test_sandbox_survives_crashes_and_runs_children_concurrently(tmp_path: Path) -> None:
    env = sandbox.sandbox_env(tmp_path)
    crashed = await sandbox.run_python("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", cwd=tmp_path, env=env)
    assert crashed.signal is not None and crashed.return_code == 139
    server = sandbox.get_sandbox().server_pid

    # Each child waits for the next one's file: this only finishes if all five run at once.
    chain = (
        "import os, time\n"
        "open('ready_{i}', 'w').close()\n"
        "while not os.path.exists('ready_{j}'):\n"
        "    time.sleep(0.01)\n"
        "print({i})"
    )
    results = await asyncio.gather(
        *(sandbox.run_python(chain.format(i=i, j=(i + 1) % 5), cwd=tmp_path, env=env, timeout=20) for i in range(5))
    )
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(5)]

    exited = await sandbox.run_python("import os\nos._exit(7)", cwd=tmp_path, env=env)
    assert exited.return_code == 7
    assert sandbox.get_sandbox().server_pid == server, "the warm server is still the same process"


async def test_sandbox_bash_routes_and_environment(tmp_path: Path) -> None:
    env = sandbox.sandbox_env(tmp_path, {"EXTRA": "1"})
    (tmp_path / "job.py").write_text("import os, sys\nprint(os.environ['OUTPUT_DIR'], os.getcwd(), sys.argv[0])\n")

    warm = await sandbox.run_bash("python3 job.py", cwd=tmp_path, env=env)
    assert warm.stdout.split() == [str(tmp_path / "outputs"), str(tmp_path), str(tmp_path / "job.py")]

    shell = await sandbox.run_bash("echo $EXTRA && ls *.py && exit 3", cwd=tmp_path, env=env)
    assert (shell.return_code, shell.stdout) == (3, "1\njob.py\n")
    assert "ANTHROPIC_API_KEY" not in json.dumps(env)
