"""Tests of the fake Anthropic API, its sandbox and its scripted model, driven by the REAL SDK.

Everything here goes through ``anthropic.AsyncAnthropic`` pointed at the loopback fake, so these
tests also pin down that the fake speaks the wire format the installed SDK expects.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import httpx2
import openpyxl
import pandas as pd
import pytest
from anthropic.types import Message

from tests.fakes import sandbox
from tests.fakes.anthropic import FILES_API_BETA, FakeAnthropic
from tests.fakes.scripts import (
    STATE_FILE,
    Action,
    Code,
    MaxTokens,
    Pause,
    Refuse,
    ScriptContext,
    Text,
    ToolError,
    WebFetch,
    WebSearch,
    cite,
    output_files_code,
    scripted,
)

STREAMING_CSV = Path(__file__).parents[2] / "shared" / "data" / "streaming.csv"
MODEL = "claude-opus-4-7"  # thinks only when asked (docs: thinking-troubleshooting)
BASH_TOOL = {"type": "code_execution_20260521", "name": "code_execution"}
PYTHON_TOOL = {"type": "code_execution_20250522", "name": "code_execution"}
PYTHON_BETA = {"anthropic-beta": f"code-execution-2025-05-22,{FILES_API_BETA}"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
QUESTION = "Why are customers churning?"
WEB_SEARCH = {"type": "web_search_20260209", "name": "web_search"}
WEB_FETCH = {"type": "web_fetch_20260309", "name": "web_fetch"}
XLSX_SKILL = {"type": "anthropic", "skill_id": "xlsx", "version": "latest"}
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
OVERALL = round(float(pd.read_csv(STREAMING_CSV)["churned"].mean()), 4)  # 29.1 %
#: The request is one the SDK's types reject (tests/conftest.py then expects a recorded violation).
VIOLATES_CONTRACT = pytest.mark.anthropic_contract_violation


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture
async def api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
async def client(api: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        api_key=api.api_key,
        base_url=api.base_url,
        max_retries=0,
        default_headers={"anthropic-beta": FILES_API_BETA},  # the fake, like the API, requires it with uploads
    ) as sdk:
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


@VIOLATES_CONTRACT  # a form without a file part
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

    writer = "import os; os.makedirs('outputs')\nopen('outputs/report.md', 'w').write('# Report')"
    api.script = scripted(Code(writer), Text("Written."))
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
        "server_tool_use",  # text editor: create /tmp/analysis_1.py
        "text_editor_code_execution_tool_result",
        "server_tool_use",  # bash: python3 /tmp/analysis_1.py
        "bash_code_execution_tool_result",
        "server_tool_use",
        "text_editor_code_execution_tool_result",
        "server_tool_use",
        "bash_code_execution_tool_result",
        "text",
    ]
    assert message.content[0].input["path"] == "/tmp/analysis_1.py", "scripts stay out of the working directory"
    assert message.content[2].input == {"command": "python3 /tmp/analysis_1.py"}
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


#: Finds the upload by name as the system prompt says (``find /``: the fake's ``/`` is the container's
#: directory) and saves a chart under ``outputs/`` in the working directory.
FIND_BY_NAME_AND_CHART = """\
import os, subprocess, tempfile, matplotlib.pyplot as plt, pandas as pd
print(sorted(os.listdir(".")))
hits = subprocess.run(["find", {root!r}, "-name", "streaming.csv", "-not", "-path", "/proc/*"],
                      capture_output=True, text=True).stdout.split()
df = pd.read_csv(hits[0])
os.makedirs("outputs", exist_ok=True)
df["tier"].value_counts().plot.bar().figure.savefig("outputs/chart.png")
open(os.path.join(tempfile.gettempdir(), "scratch.txt"), "w").write("scratch space is not returned")
print(len(df))
"""


@pytest.mark.parametrize(("tool", "headers"), [(BASH_TOOL, {}), (PYTHON_TOOL, PYTHON_BETA)])
async def test_uploads_are_found_by_name_and_charts_under_outputs_come_back(
    tool: dict[str, str], headers: dict[str, str], api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    # docs: the SDK's ContainerUploadBlockParam — uploads are "available in the container's input directory"
    # (no path, no variable); code-execution docs — created files come back only as file_ids in tool results.
    file_id = await upload_csv(client)
    api.script = scripted(
        Code("import os, pandas as pd\nprint(len(pd.read_csv(os.environ['INPUT_DIR'] + '/streaming.csv')))"),
        Code("import pandas as pd\nprint(len(pd.read_csv('streaming.csv')))"),
        Code(lambda ctx: FIND_BY_NAME_AND_CHART.format(root=str(ctx.container_dir))),
        Text("Charted."),
    )
    message = await client.messages.create(
        model=MODEL, max_tokens=1024, tools=[tool], messages=[ask("Chart tiers", file_id)], extra_headers=headers
    )
    kinds = ("code_execution_tool_result", "bash_code_execution_tool_result")
    results = [b.content for b in message.content if b.type in kinds]
    by_variable, in_working_dir, by_name = results

    assert by_variable.return_code == 1 and "KeyError: 'INPUT_DIR'" in by_variable.stderr, "no such variable"
    assert in_working_dir.return_code == 1 and "FileNotFoundError" in in_working_dir.stderr, "uploads are elsewhere"
    assert (by_name.return_code, by_name.stdout.splitlines()) == (0, ["[]", "5000"]), by_name.stderr
    kind = "code_execution" if tool is PYTHON_TOOL else "bash_code_execution"
    assert [item.type for item in by_name.content] == [f"{kind}_output"], "only the chart comes back"
    (chart_id,) = output_file_ids(message)
    assert api.files[chart_id].filename == "chart.png" and api.files[chart_id].path == "outputs/chart.png"
    assert (await (await client.files.download(chart_id)).read()).startswith(PNG_MAGIC)


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
    assert streamed.content[2].input == {"command": "python3 /tmp/analysis_1.py"}, "input_json_delta is accumulated"
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
    assert answer.startswith("## Churn by device"), "the CSV uploaded in the first turn is still in inputs/"
    assert "still available: churn_by_tier.png" in answer

    api.script = scripted(
        Code(
            lambda ctx: (
                "import os, pandas as pd, subprocess\n"
                f"found = subprocess.run(['find', {str(ctx.container_dir)!r}, '-name', 'streaming.csv'],"
                " capture_output=True, text=True).stdout.split()\n"
                "print(sorted(os.listdir('outputs')), len(pd.read_csv(found[0])))"
            )
        ),
        Text(lambda ctx: ctx.last.stdout.strip()),
    )
    history += [{"role": "assistant", "content": second.content}, ask("List your files")]
    third = await client.messages.create(
        model=MODEL, max_tokens=4096, tools=[BASH_TOOL], messages=history, container=first.container.id
    )
    assert answer_text(third) == "['churn_by_device.png', 'churn_by_tier.png'] 5000"


async def test_custom_scripts_write_many_files_and_quote_stdout(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    api.script = scripted(
        Code(
            "import os; os.makedirs('outputs')\n"
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
    api.script = scripted(Code("open('note.txt', 'w').write('hi')"), Text("done"))
    first = await client.messages.create(model=MODEL, max_tokens=1024, tools=[BASH_TOOL], messages=[ask("Write")])
    assert first.container is not None
    api.expire_container(first.container.id)

    with pytest.raises(anthropic.BadRequestError) as expired:
        await client.messages.create(
            model=MODEL, max_tokens=1024, tools=[BASH_TOOL], messages=[ask("Again")], container=first.container.id
        )
    assert expired.value.type == "invalid_request_error" and "expired" in str(expired.value.message)
    with pytest.raises(anthropic.NotFoundError) as unknown:
        await client.messages.create(
            model=MODEL, max_tokens=1024, tools=[BASH_TOOL], messages=[ask("Again")], container="container_nope"
        )
    assert unknown.value.type == "not_found_error"


async def test_a_used_container_stays_restorable_for_30_days_whatever_expires_at_said(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    api.script = scripted(Code("open('note.txt', 'w').write('hi')"), Text("done"))
    first = await client.messages.create(model=MODEL, max_tokens=1024, tools=[BASH_TOOL], messages=[ask("Write")])
    assert first.container is not None
    assert first.container.expires_at - datetime.now(UTC) < timedelta(hours=1), "a short, rolling value"
    api.advance_clock(timedelta(days=29))
    again = await client.messages.create(
        model=MODEL, max_tokens=1024, tools=[BASH_TOOL], messages=[ask("Again")], container=first.container.id
    )
    assert again.container is not None and again.container.id == first.container.id
    assert again.container.expires_at > first.container.expires_at + timedelta(days=28), "it rolls on with use"
    api.advance_clock(timedelta(days=31))
    with pytest.raises(anthropic.BadRequestError) as refused:
        await client.messages.create(
            model=MODEL, max_tokens=1024, tools=[BASH_TOOL], messages=[ask("Later")], container=first.container.id
        )
    assert refused.value.type == "invalid_request_error"


async def test_container_uploads_need_the_files_api_beta(api: FakeAnthropic) -> None:
    async with anthropic.AsyncAnthropic(api_key=api.api_key, base_url=api.base_url, max_retries=0) as plain:
        meta = await plain.files.upload(file=("s.csv", STREAMING_CSV.read_bytes(), "text/csv"))
        request: dict[str, Any] = {
            "model": MODEL,
            "max_tokens": 1024,
            "tools": [BASH_TOOL],
            "messages": [ask("Summarise", meta.id)],
        }
        with pytest.raises(anthropic.BadRequestError, match="files-api-2025-04-14") as refused:
            await plain.messages.create(**request)
        assert refused.value.type == "invalid_request_error"
        api.script = scripted(Text("ok"))
        message = await plain.messages.create(**request, extra_headers={"anthropic-beta": FILES_API_BETA})
        assert answer_text(message) == "ok"


@pytest.mark.parametrize(
    ("code_tool", "web_tool", "ok"),
    [
        ("code_execution_20250825", "web_search_20260209", False),
        ("code_execution_20250825", "web_fetch_20260318", False),
        ("code_execution_20250825", "web_search_20250305", True),
        ("code_execution_20260120", "web_search_20260318", True),
    ],
)
async def test_newer_web_tools_need_a_newer_code_execution_tool(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic, code_tool: str, web_tool: str, ok: bool
) -> None:
    api.script = scripted(Text("ok"))
    name = web_tool.rsplit("_", 1)[0]
    request: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "tools": [{"type": code_tool, "name": "code_execution"}, {"type": web_tool, "name": name}],
        "messages": [ask("hi")],
    }
    if ok:
        assert answer_text(await client.messages.create(**request)) == "ok"
        return
    with pytest.raises(anthropic.BadRequestError, match="requires code_execution_20260120"):
        await client.messages.create(**request)


@VIOLATES_CONTRACT  # it sends an effort the SDK's types don't allow, on purpose
async def test_thinking_follows_the_model_and_comes_back_byte_identical(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    api.script = scripted(Code("print(6 * 7)"), Pause(), Text("42"))
    request: dict[str, Any] = {"model": "claude-sonnet-5-5", "max_tokens": 4096, "tools": [BASH_TOOL]}
    paused = await client.messages.create(**request, messages=[ask("Compute")])
    thinking = paused.content[0]
    assert thinking.type == "thinking" and thinking.thinking == "" and thinking.signature  # on, display omitted
    echoed = [b.to_dict(mode="json") for b in paused.content]
    container = paused.container.id  # type: ignore[union-attr]
    done = await client.messages.create(
        **request, container=container, messages=[ask("Compute"), {"role": "assistant", "content": echoed}]
    )
    assert answer_text(done) == "42"
    tampered = [dict(echoed[0], thinking="I will say 41"), *echoed[1:]]
    with pytest.raises(anthropic.BadRequestError, match="signature"):
        await client.messages.create(
            **request, container=container, messages=[ask("Compute"), {"role": "assistant", "content": tampered}]
        )
    with pytest.raises(anthropic.BadRequestError, match="signature"):  # tied to the model that wrote it
        await client.messages.create(
            **{**request, "model": "claude-sonnet-5"},
            container=container,
            messages=[ask("Compute"), {"role": "assistant", "content": echoed}],
        )
    with pytest.raises(anthropic.BadRequestError, match="between_tools"):
        await client.messages.create(**request, thinking={"type": "disabled"}, messages=[ask("x")])
    with pytest.raises(anthropic.BadRequestError, match="not supported"):
        await client.messages.create(
            **request, thinking={"type": "enabled", "budget_tokens": 2048}, messages=[ask("x")]
        )
    with pytest.raises(anthropic.BadRequestError, match=r"output_config\.effort"):
        await client.messages.create(**request, output_config={"effort": "huge"}, messages=[ask("x")])  # type: ignore[typeddict-item]


async def test_upload_in_an_older_turn_is_missing_from_a_fresh_container(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    file_id = await upload_csv(client)
    history = [
        ask(QUESTION, file_id),
        {"role": "assistant", "content": "Free-tier users churn most (see streaming.csv)."},
        ask("Show me the churn by country"),  # no container= and no re-attached file: a broken client
    ]
    message = await client.messages.create(model=MODEL, max_tokens=4096, tools=[BASH_TOOL], messages=history)

    assert "NO_INPUT_FILES" in stdouts(message)[0], "the code cannot see the file"
    assert "NO_STATE" in stdouts(message)[0]
    answer = answer_text(message)
    assert answer.startswith("## I can't find the data file"), "a broken client is caught visibly"
    assert "`streaming.csv`" in answer and "attach the file again" in answer
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
    # anthropic <= 2.16 lets the transport error through; 2.17 wraps it in APIConnectionError.
    with pytest.raises((httpx2.TransportError, anthropic.APIConnectionError)):
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
        pytest.param(
            {"model": MODEL, "max_tokens": 0.5, "messages": [ask("hi")]},
            "max_tokens: Input should be a valid integer",
            marks=VIOLATES_CONTRACT,
        ),
        ({"model": MODEL, "max_tokens": 10, "messages": []}, "at least one message"),
        ({"model": MODEL, "max_tokens": 10, "messages": [{"role": "assistant", "content": "x"}]}, "first message"),
        pytest.param(
            {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "Input tag 'video'",
            marks=VIOLATES_CONTRACT,
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
        pytest.param(
            {"model": MODEL, "max_tokens": 10, "tools": [{"type": "magic"}], "messages": [ask("hi")]},
            "'magic'",
            marks=VIOLATES_CONTRACT,
        ),
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
    assert recorded.betas == ["code-execution-2025-05-22", FILES_API_BETA]
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
    job = "import os, sys, tempfile\nprint(tempfile.gettempdir(), os.getcwd(), sys.argv[0])\n"
    (tmp_path / "job.py").write_text(job)

    warm = await sandbox.run_bash("python3 job.py", cwd=tmp_path, env=env)
    assert warm.stdout.split() == [str(tmp_path / "tmp"), str(tmp_path), str(tmp_path / "job.py")]
    assert not {"INPUT_DIR", "OUTPUT_DIR"} & set(env), "the real container defines no such variables"

    shell = await sandbox.run_bash("echo $EXTRA && ls *.py && exit 3", cwd=tmp_path, env=env)
    assert (shell.return_code, shell.stdout) == (3, "1\njob.py\n")
    assert "ANTHROPIC_API_KEY" not in json.dumps(env)


# --------------------------------------------------------------------------------------------
# Conversations: follow-ups with state, expired containers, files added later
# --------------------------------------------------------------------------------------------


@dataclass
class Conversation:
    """A Slack-thread-like conversation: history echoed back, the container reused."""

    client: anthropic.AsyncAnthropic
    tools: list[dict[str, Any]] = field(default_factory=lambda: [BASH_TOOL])
    skills: list[dict[str, Any]] | None = None
    history: list[Any] = field(default_factory=list)
    container_id: str | None = None

    async def ask(self, question: str, *file_ids: str, reuse: bool = True, **extra: Any) -> Message:
        self.history.append(ask(question, *file_ids))
        container: Any = self.container_id if reuse else None
        if self.skills is not None:
            container = {"skills": self.skills, **({"id": container} if container else {})}
        if container is not None:
            extra["container"] = container
        message = await self.client.messages.create(
            model=MODEL, max_tokens=4096, tools=self.tools, messages=self.history, **extra
        )
        self.history.append({"role": "assistant", "content": message.content})
        assert message.container is not None
        self.container_id = message.container.id
        return message


def expected_table(by: str, **filters: str) -> list[str]:
    """The Markdown table rows of a churn breakdown, computed independently with pandas."""
    df = pd.read_csv(STREAMING_CSV)
    for col, value in filters.items():
        df = df[df[col].astype(str) == value]
    grouped = df.groupby(df[by].astype(str))["churned"].agg(["mean", "size"]).sort_values("mean", ascending=False)
    return [f"| {value} | {int(row['size']):,} | {row['mean'] * 100:.1f}% |" for value, row in grouped.iterrows()]


def without_earlier_files(answer: str) -> str:
    return "\n\n".join(p for p in answer.split("\n\n") if not p.startswith("Files from earlier"))


async def test_follow_ups_reuse_the_state_the_first_turn_left(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    chat = Conversation(client)
    first = await chat.ask(QUESTION, await upload_csv(client))
    assert len(output_file_ids(first)) == 1, "the state file is not a generated file"
    container = api.containers[first.container.id]  # type: ignore[union-attr]
    state = json.loads((container.scratch / STATE_FILE).read_text())
    assert state["kind"] == "churn" and state["plan"]["file"] == "streaming.csv"
    assert state["plan"]["target"] == "churned" and state["overall"] == OVERALL
    assert f"STATE saved {STATE_FILE}" in stdouts(first)[1]

    by_country = await chat.ask("Now split that by country")
    assert f"STATE reused {STATE_FILE}" in stdouts(by_country)[0]
    answer = answer_text(by_country)
    assert answer.startswith("## Churn by country\n\nOverall churn is **29.1%** across **5,000** customers.")
    assert "barely varies by country" in answer
    for row in expected_table("country"):
        assert row in answer
    (png_id,) = output_file_ids(by_country)
    assert api.files[png_id].filename == "churn_by_country.png"
    assert (await (await client.files.download(png_id)).read()).startswith(PNG_MAGIC)

    by_device = await chat.ask("by device?")
    assert all(row in answer_text(by_device) for row in expected_table("device"))

    premium = await chat.ask("What about Premium users?")
    answer = answer_text(premium)
    assert answer.startswith("## Churn by device for Premium customers"), "the breakdown asked for last"
    assert "**Premium** customers (tier = Premium) churn at **8.8%** (988 customers), vs **29.1%** overall." in answer
    for row in expected_table("device", tier="Premium"):
        assert row in answer
    assert [api.files[i].filename for i in output_file_ids(premium)] == ["churn_by_device_premium.png"]
    state = json.loads((container.scratch / STATE_FILE).read_text())
    assert [(b["by"], b["filters"]) for b in state["breakdowns"]] == [
        ("country", {}),
        ("device", {}),
        ("device", {"tier": "Premium"}),
    ]
    assert sorted(p.name for p in container.inputs.iterdir()) == ["streaming.csv"]


async def test_after_expiry_a_follow_up_recomputes_the_same_numbers(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    file_id = await upload_csv(client)
    kept = Conversation(client)
    await kept.ask(QUESTION, file_id)
    reused = await kept.ask("Now split that by country")

    fresh = Conversation(client)
    first = await fresh.ask(QUESTION, file_id)
    api.expire_container(first.container.id)  # type: ignore[union-attr]
    with pytest.raises(anthropic.BadRequestError, match="expired"):
        await fresh.client.messages.create(
            model=MODEL,
            max_tokens=4096,
            tools=[BASH_TOOL],
            messages=[*fresh.history, ask("Now split that by country")],
            container=fresh.container_id,
        )
    # What the bot does: no container id, every file of the thread re-attached in the newest turn.
    recomputed = await fresh.ask("Now split that by country", file_id, reuse=False)

    assert recomputed.container is not None and recomputed.container.id != first.container.id  # type: ignore[union-attr]
    probe = stdouts(recomputed)[0]
    assert "STATE reused" not in probe and "NO_STATE" in probe
    assert without_earlier_files(answer_text(recomputed)) == without_earlier_files(answer_text(reused))
    assert all(row in answer_text(recomputed) for row in expected_table("country"))
    new_container = api.containers[recomputed.container.id]
    assert new_container.uploaded == {file_id: "inputs/streaming.csv"}
    assert (new_container.scratch / STATE_FILE).is_file(), "the next follow-up can reuse state again"
    assert f"STATE reused {STATE_FILE}" in stdouts(await fresh.ask("and by device"))[0]


async def test_files_attached_to_a_follow_up_join_the_earlier_ones(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    chat = Conversation(client)
    await chat.ask(QUESTION, await upload_csv(client))
    regions = b"country,region\nUS,Americas\nBR,Americas\nDE,Europe\nIN,Asia\nJP,Asia\nVN,Asia\n"
    regions_id = (await client.files.upload(file=("regions.csv", regions, "text/csv"))).id

    message = await chat.ask("Here is a country-to-region mapping: split that by region", regions_id)

    container = api.containers[chat.container_id]  # type: ignore[index]
    assert sorted(p.name for p in container.inputs.iterdir()) == ["regions.csv", "streaming.csv"]
    assert (container.inputs / "regions.csv").read_bytes() == regions
    assert "JOINED regions.csv on country" in stdouts(message)[1]
    answer = answer_text(message)
    df = pd.read_csv(STREAMING_CSV).merge(pd.read_csv(io.BytesIO(regions)), on="country")
    for region, group in df.groupby("region"):
        assert f"| {region} | {len(group):,} | {group['churned'].mean() * 100:.1f}% |" in answer
    assert "`region` comes from `regions.csv`, joined to `streaming.csv`." in answer


async def test_a_follow_up_that_is_not_a_breakdown_gets_the_full_analysis(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    chat = Conversation(client)
    first = await chat.ask(QUESTION, await upload_csv(client))
    again = await chat.ask("Can you summarise the main drivers again?")
    assert f"STATE reused {STATE_FILE}" in stdouts(again)[0]
    assert answer_text(again).split("\n\nFiles from earlier")[0] == answer_text(first)


# --------------------------------------------------------------------------------------------
# Web search and web fetch
# --------------------------------------------------------------------------------------------

BENCHMARK = (
    "Streaming churn benchmarks 2026",
    "https://research.example.com/churn",
    "Average churn is 5.5%.",
    "2 days",
)


def web_script(ctx: ScriptContext) -> Iterator[Action]:
    yield WebSearch("streaming subscription churn benchmark", results=[BENCHMARK, ("Blog", "https://blog.other.org/x")])
    yield WebFetch(
        lambda c: c.web_searches[0].results[0].url, text="Industry churn averages 5.5% a month.", title="Report"
    )
    yield Code("print(round(0.2906 / 0.055, 1))")
    yield Text(
        lambda c: f"Your churn is {c.last.stdout.strip()}× the benchmark ({c.web_fetches[0].text})",
        citations=lambda c: [cite(c.web_searches[0].results[0])],
    )


async def test_web_search_and_fetch_produce_the_real_blocks_and_usage(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    api.script = web_script
    request: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 1024,
        "tools": [BASH_TOOL, {**WEB_SEARCH, "max_uses": 3}, {**WEB_FETCH, "citations": {"enabled": True}}],
        "messages": [ask("How does our churn compare with the industry?")],
    }
    message = await client.messages.create(**request)

    types = [b.type for b in message.content]
    assert types[:4] == ["server_tool_use", "web_search_tool_result", "server_tool_use", "web_fetch_tool_result"]
    search_use, search, fetch_use, fetch = message.content[:4]
    assert (search_use.name, search_use.input) == ("web_search", {"query": "streaming subscription churn benchmark"})
    assert search.tool_use_id == search_use.id
    first_hit = search.content[0]
    assert (first_hit.type, first_hit.title, first_hit.url, first_hit.page_age) == (
        "web_search_result",
        BENCHMARK[0],
        BENCHMARK[1],
        "2 days",
    )
    assert first_hit.encrypted_content and "5.5%" not in first_hit.encrypted_content
    assert search.content[1].page_age is None
    assert (fetch_use.name, fetch_use.input) == ("web_fetch", {"url": BENCHMARK[1]})
    assert fetch.content.type == "web_fetch_result" and fetch.content.url == BENCHMARK[1]
    document = fetch.content.content
    assert (document.type, document.title, document.source.type, document.source.media_type) == (
        "document",
        "Report",
        "text",
        "text/plain",
    )
    assert document.source.data == "Industry churn averages 5.5% a month."
    assert document.citations is not None and document.citations.enabled
    assert fetch.content.retrieved_at
    text = message.content[-1]
    assert text.text == "Your churn is 5.3× the benchmark (Industry churn averages 5.5% a month.)"
    assert text.citations is not None and text.citations[0].url == BENCHMARK[1]
    assert message.usage.server_tool_use is not None
    assert (message.usage.server_tool_use.web_search_requests, message.usage.server_tool_use.web_fetch_requests) == (
        1,
        1,
    )

    async with client.messages.stream(**request) as stream:
        streamed = await stream.get_final_message()
    assert [b.type for b in streamed.content] == types
    assert streamed.content[0].input == search_use.input
    assert streamed.content[-1].citations == text.citations
    assert streamed.usage.server_tool_use == message.usage.server_tool_use


async def test_web_tool_limits_domains_and_prior_context(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    api.script = scripted(
        WebSearch("one", results=[BENCHMARK, ("Other", "https://other.org/a", "x")]),
        WebSearch("two", results=[BENCHMARK]),
        WebFetch("https://research.example.com/churn", text="page"),
        WebFetch("https://unknown.example.com/never-mentioned", text="page"),
        WebFetch("https://research.example.com/user-link", text="page"),
        WebFetch("https://other.org/a", text="page"),
        Text(
            lambda c: json.dumps(
                [[len(s.results), s.error_code] for s in c.web_searches] + [f.error_code for f in c.web_fetches]
            )
        ),
    )
    tools = [
        {**WEB_SEARCH, "max_uses": 1, "allowed_domains": ["example.com"]},
        {**WEB_FETCH, "blocked_domains": ["other.org"]},
    ]
    message = await client.messages.create(
        model=MODEL,
        max_tokens=1024,
        tools=tools,
        messages=[ask("Read https://research.example.com/user-link and compare")],
    )
    assert json.loads(answer_text(message)) == [
        [1, None],  # other.org is not in allowed_domains: dropped
        [0, "max_uses_exceeded"],
        None,  # a URL from the search results
        "url_not_in_prior_context",
        None,  # a URL the user gave
        "url_not_allowed",
    ]
    second_search = message.content[3]
    assert second_search.content.type == "web_search_tool_result_error"
    assert second_search.content.error_code == "max_uses_exceeded"
    assert message.usage.server_tool_use is not None
    assert message.usage.server_tool_use.web_search_requests == 1
    assert message.usage.server_tool_use.web_fetch_requests == 2
    assert message.container is None, "no code execution tool, no container"


async def test_a_paused_turn_replays_web_results_from_the_echo(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    api.script = scripted(
        WebSearch("benchmark", results=[BENCHMARK]),
        Pause(),
        Text(lambda c: f"{c.web_searches[0].results[0].snippet} (replayed: {c.web_searches[0].replayed})"),
    )
    messages: list[Any] = [ask("Benchmark?")]
    first = await client.messages.create(model=MODEL, max_tokens=512, tools=[WEB_SEARCH], messages=messages)
    assert first.stop_reason == "pause_turn"
    messages.append({"role": "assistant", "content": first.content})
    second = await client.messages.create(model=MODEL, max_tokens=512, tools=[WEB_SEARCH], messages=messages)
    assert [b.type for b in second.content] == ["text"]
    assert answer_text(second) == "Average churn is 5.5%. (replayed: True)"
    assert second.usage.server_tool_use is not None and second.usage.server_tool_use.web_search_requests == 0


async def test_a_web_action_without_its_tool_is_a_script_bug(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    api.script = scripted(WebFetch("https://example.com"), Text("never"))
    with pytest.raises(anthropic.InternalServerError, match="no web_fetch tool"):
        await client.messages.create(model=MODEL, max_tokens=100, tools=[BASH_TOOL, WEB_SEARCH], messages=[ask("Hi")])
    assert api.message_requests[-1].status == 500


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        ({**WEB_SEARCH, "max_uses": 0}, "tools.0.web_search_20260209.max_uses: Input should be greater than 0"),
        (
            {**WEB_SEARCH, "allowed_domains": ["a.com"], "blocked_domains": ["b.com"]},
            "Cannot specify both allowed_domains and blocked_domains in the same request",
        ),
        ({**WEB_FETCH, "blocked_domains": []}, "Empty list of domains is ambiguous"),
        pytest.param(
            {**WEB_SEARCH, "name": "search"},
            "tools.0.web_search_20260209.name: Input should be 'web_search'",
            marks=VIOLATES_CONTRACT,
        ),
        pytest.param(
            {"type": "web_fetch_20250910", "name": "web_fetch", "use_cache": False},
            "use_cache: Extra inputs",
            marks=VIOLATES_CONTRACT,
        ),
        ({**WEB_FETCH, "max_content_tokens": -5}, "max_content_tokens: Input should be greater than 0"),
        ({**WEB_SEARCH, "allowed_domains": ["https://a.com"]}, "must not include a scheme"),
        pytest.param({**WEB_SEARCH, "allowed_callers": ["nobody"]}, "allowed_callers", marks=VIOLATES_CONTRACT),
        pytest.param(
            {"type": "web_search_20990101", "name": "web_search"},
            "Input tag 'web_search_20990101'",
            marks=VIOLATES_CONTRACT,
        ),
    ],
)
async def test_web_tool_definitions_are_validated(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic, tool: dict[str, Any], message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as rejected:
        await client.messages.create(model=MODEL, max_tokens=10, tools=[tool, BASH_TOOL], messages=[ask("hi")])
    assert message in str(rejected.value.api_message)


@pytest.mark.parametrize(
    "tool",
    [
        {"type": t, "name": "web_search", "max_uses": 5, "user_location": {"type": "approximate", "country": "DE"}}
        for t in ("web_search_20250305", "web_search_20260209", "web_search_20260318")
    ]
    + [
        {"type": t, "name": "web_fetch", "max_uses": 2, "max_content_tokens": 1000, "citations": {"enabled": False}}
        for t in ("web_fetch_20250910", "web_fetch_20260209", "web_fetch_20260309", "web_fetch_20260318")
    ],
)
async def test_every_web_tool_version_is_accepted_next_to_code_execution(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic, tool: dict[str, Any]
) -> None:
    api.script = scripted(Text("ok"))
    message = await client.messages.create(model=MODEL, max_tokens=10, tools=[BASH_TOOL, tool], messages=[ask("hi")])
    assert answer_text(message) == "ok"
    assert message.usage.server_tool_use is not None and api.message_requests[-1].betas == [FILES_API_BETA]


# --------------------------------------------------------------------------------------------
# Skills
# --------------------------------------------------------------------------------------------


async def test_skills_are_loaded_echoed_and_visible_to_scripts(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    api.script = scripted(Text(lambda c: json.dumps(c.skills)))
    skills = [XLSX_SKILL, {"type": "anthropic", "skill_id": "pdf", "version": "20251002"}]
    first = await client.messages.create(
        model=MODEL, max_tokens=100, tools=[BASH_TOOL], messages=[ask("hi")], container={"skills": skills}
    )
    assert first.container is not None and first.container.skills is not None
    loaded = [(s.type, s.skill_id, s.version) for s in first.container.skills]
    assert loaded == [("anthropic", "xlsx", "20251013"), ("anthropic", "pdf", "20251002")]
    assert json.loads(answer_text(first))[0] == {"type": "anthropic", "skill_id": "xlsx", "version": "20251013"}
    assert api.message_requests[-1].betas == [FILES_API_BETA], (
        "skills need no beta header of their own (anthropic 2.17)"
    )

    again = await client.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[BASH_TOOL],
        messages=[ask("hi")],
        container={"id": first.container.id, "skills": [XLSX_SKILL]},
        extra_headers={"anthropic-beta": "skills-2025-10-02"},
    )
    assert again.container is not None and again.container.id == first.container.id
    assert [s.skill_id for s in again.container.skills or []] == ["xlsx"]
    plain = await client.messages.create(
        model=MODEL, max_tokens=100, tools=[BASH_TOOL], messages=[ask("hi")], container=first.container.id
    )
    assert plain.container is not None and plain.container.skills == [] and answer_text(plain) == "[]"

    api.custom_skills["skill_01AbCdEfGhIjKlMnOpQrStUv"] = ("1759178010641129",)
    custom = await client.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[BASH_TOOL],
        messages=[ask("hi")],
        container={"skills": [{"type": "custom", "skill_id": "skill_01AbCdEfGhIjKlMnOpQrStUv"}]},
    )
    assert custom.container is not None and custom.container.skills is not None
    assert custom.container.skills[0].version == "1759178010641129"


@pytest.mark.parametrize(
    ("tools", "container", "message"),
    [
        ([], {"skills": [XLSX_SKILL]}, "Skills beta requires the code_execution tool to be included in the request."),
        ([WEB_SEARCH], {"skills": [XLSX_SKILL]}, "requires the code_execution tool"),
        ([PYTHON_TOOL], {"skills": [XLSX_SKILL]}, "runs Python only"),
        ([BASH_TOOL], {"skills": [{"type": "anthropic", "skill_id": "csv"}]}, "Unknown Anthropic skill 'csv'"),
        ([BASH_TOOL], {"skills": [{"type": "custom", "skill_id": "skill_x"}]}, "Skill 'skill_x' not found"),
        pytest.param(
            [BASH_TOOL],
            {"skills": [{"type": "builtin", "skill_id": "xlsx"}]},
            "Input should be 'anthropic' or 'custom'",
            marks=VIOLATES_CONTRACT,
        ),
        ([BASH_TOOL], {"skills": [XLSX_SKILL, XLSX_SKILL]}, "Duplicate skill_id 'xlsx'"),
        ([BASH_TOOL], {"skills": [{**XLSX_SKILL, "version": "1999"}]}, "Version '1999' of skill 'xlsx' not found"),
        pytest.param(
            [BASH_TOOL],
            {"skills": [{"type": "anthropic"}]},
            "container.skills.0.skill_id: Field required",
            marks=VIOLATES_CONTRACT,
        ),
        ([BASH_TOOL], {"skills": [XLSX_SKILL] * 9}, "List should have at most 8 items after validation, not 9"),
        pytest.param(
            [BASH_TOOL],
            {"skills": [XLSX_SKILL], "memory": True},
            "container.memory: Extra inputs are not permitted",
            marks=VIOLATES_CONTRACT,
        ),
    ],
)
async def test_skills_are_validated(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic, tools: list[Any], container: Any, message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as rejected:
        await client.messages.create(
            model=MODEL,
            max_tokens=10,
            tools=tools,
            messages=[ask("hi")],
            container=container,
            extra_headers=PYTHON_BETA,
        )
    assert message in str(rejected.value.api_message)


async def test_with_the_xlsx_skill_an_excel_request_gets_a_real_workbook(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    chat = Conversation(client, skills=[XLSX_SKILL])
    message = await chat.ask(QUESTION + " Please put the summary in an Excel workbook.", await upload_csv(client))

    files = {api.files[i].filename: api.files[i] for i in output_file_ids(message)}
    assert sorted(files) == ["churn_by_tier.png", "churn_summary.xlsx"]
    meta = await client.files.retrieve_metadata(files["churn_summary.xlsx"].id)
    assert (meta.mime_type, meta.downloadable) == (XLSX_MIME, True)
    data = await (await client.files.download(meta.id)).read()
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["Summary", "By country", "By device", "By watch_hours", "By account_age_months"]
    summary = book["Summary"]
    assert summary["A1"].value == "Churn analysis of streaming.csv" and summary["A1"].font.b
    assert (summary["B3"].value, summary["B3"].number_format) == (OVERALL, "0.0%")
    header = next(row for row in summary.iter_rows() if row[0].value == "tier")
    assert [c.value for c in header[:3]] == ["tier", "Customers", "Churn rate"] and header[0].font.b
    free = next(row for row in summary.iter_rows() if row[0].value == "Free")
    assert (free[1].value, free[2].value, free[2].number_format) == (2282, 0.4527, "0.0%")
    assert len(summary._charts) == 1 and type(summary._charts[0]).__name__ == "BarChart"
    assert summary.freeze_panes is not None
    answer = answer_text(message)
    assert "Workbook: `churn_summary.xlsx`" in answer and "native Excel bar chart" in answer
    assert "45.3%" in answer

    follow_up = await chat.ask("Now split that by country, as a spreadsheet please")
    names = [api.files[i].filename for i in output_file_ids(follow_up)]
    assert names == ["churn_by_country.png", "churn_by_country.xlsx"]
    assert "Workbook: `churn_by_country.xlsx`" in answer_text(follow_up)


async def test_without_the_skill_an_excel_request_gets_a_csv_and_says_so(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    chat = Conversation(client)
    message = await chat.ask(QUESTION + " I need it as an Excel spreadsheet.", await upload_csv(client))
    files = {api.files[i].filename: api.files[i] for i in output_file_ids(message)}
    assert sorted(files) == ["churn_by_tier.png", "churn_summary.csv"]
    assert files["churn_summary.csv"].mime_type == "text/csv"
    table = pd.read_csv(io.BytesIO(files["churn_summary.csv"].data))
    assert list(table.columns) == ["breakdown", "group", "customers", "churn_rate"]
    assert table[(table.breakdown == "tier") & (table.group == "Free")].churn_rate.item() == 0.4527
    answer = answer_text(message)
    assert "xlsx skill isn't enabled" in answer and "`churn_summary.csv`" in answer
    assert answer.startswith("## Churn analysis of streaming.csv")


# --------------------------------------------------------------------------------------------
# Output types
# --------------------------------------------------------------------------------------------

OUTPUT_TYPES = {
    "chart.png": ("image/png", b"\x89PNG"),
    "chart.jpg": ("image/jpeg", b"\xff\xd8\xff"),
    "chart.svg": ("image/svg+xml", b"<?xml"),
    "chart.webp": ("image/webp", b"RIFF"),
    "report.pdf": ("application/pdf", b"%PDF-"),
    "table.csv": ("text/csv", b"tier,churn_rate\n"),
    "table.tsv": ("text/tab-separated-values", b"tier\tchurn_rate\n"),
    "book.xlsx": (XLSX_MIME, b"PK\x03\x04"),
    "data.json": ("application/json", b"{"),
    "notes.md": ("text/markdown", b"# Churn"),
    "page.html": ("text/html", b"<!doctype html>"),
    "notes.txt": ("text/plain", b"Free: 45.3%"),
    "nested/more.csv": ("text/csv", b"tier"),
}


async def test_generated_files_of_every_type_have_the_right_mime_type(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    api.script = scripted(Code(output_files_code(*OUTPUT_TYPES)), Text(lambda c: f"{len(c.last.files)} files"))
    message = await client.messages.create(model=MODEL, max_tokens=100, tools=[BASH_TOOL], messages=[ask("Go")])
    assert answer_text(message) == f"{len(OUTPUT_TYPES)} files"
    by_path = {api.files[i].path: api.files[i] for i in output_file_ids(message)}
    for name, (mime, magic) in OUTPUT_TYPES.items():
        stored = by_path[f"outputs/{name}"]
        meta = await client.files.retrieve_metadata(stored.id)
        assert (meta.filename, meta.mime_type) == (Path(name).name, mime), name
        assert (await (await client.files.download(stored.id)).read()).startswith(magic), name
    pdf = by_path["outputs/report.pdf"].data
    assert pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") == 2, "PdfPages wrote two pages"
    workbook = openpyxl.load_workbook(io.BytesIO(by_path["outputs/book.xlsx"].data))
    assert len(workbook["Churn"]._charts) == 1


# --------------------------------------------------------------------------------------------
# Prompt caching across turns
# --------------------------------------------------------------------------------------------

SYSTEM = "You are a careful data analyst. " * 100
CACHED = {"type": "ephemeral"}


def with_cache(block: Any) -> dict[str, Any]:
    """An echoed block (SDK model or dict) as JSON with a cache_control breakpoint."""
    data = block.model_dump(exclude_none=True) if hasattr(block, "model_dump") else dict(block)
    return {**data, "cache_control": CACHED}


def plain(blocks: list[Any]) -> list[dict[str, Any]]:
    return [b.model_dump(exclude_none=True) if hasattr(b, "model_dump") else dict(b) for b in blocks]


async def test_a_follow_up_reads_the_cached_prefix_of_the_previous_turn(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    file_id = await upload_csv(client)
    system = [{"type": "text", "text": SYSTEM, "cache_control": CACHED}]
    tools = [{**WEB_SEARCH}, {**BASH_TOOL, "cache_control": CACHED}]
    turn_one = {
        "role": "user",
        "content": [{"type": "text", "text": QUESTION}, with_cache({"type": "container_upload", "file_id": file_id})],
    }
    first = await client.messages.create(model=MODEL, max_tokens=4096, system=system, tools=tools, messages=[turn_one])
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation_input_tokens and first.usage.cache_creation_input_tokens > 500

    # The bot's follow-up: breakpoints on the system prompt, the tool list, the last block of the
    # prior conversation (here the answer's text) and the last block of the newest turn.
    prior = [
        {
            "role": "user",
            "content": [{"type": "text", "text": QUESTION}, {"type": "container_upload", "file_id": file_id}],
        },
        {"role": "assistant", "content": [*plain(first.content[:-1]), with_cache(first.content[-1])]},
    ]
    newest = {"role": "user", "content": [with_cache({"type": "text", "text": "Now split that by country"})]}
    assert len(first.content) < 20, "the previous breakpoint is within the 20-block lookback"
    second = await client.messages.create(
        model=MODEL,
        max_tokens=4096,
        system=system,
        tools=tools,
        messages=[*prior, newest],
        container=first.container.id,  # type: ignore[union-attr]
    )
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens and second.usage.cache_creation_input_tokens > 0
    assert "## Churn by country" in answer_text(second)

    # A third turn whose prior conversation ends at the second request's newest-turn breakpoint
    # (moved to the answer) reads everything up to the end of the second answer's prefix.
    third = await client.messages.create(
        model=MODEL,
        max_tokens=4096,
        system=system,
        tools=tools,
        messages=[
            *prior[:1],
            {"role": "assistant", "content": plain(first.content)},
            {"role": "user", "content": [{"type": "text", "text": "Now split that by country"}]},
            {"role": "assistant", "content": [*plain(second.content[:-1]), with_cache(second.content[-1])]},
            {"role": "user", "content": [with_cache({"type": "text", "text": "by device?"})]},
        ],
        container=first.container.id,  # type: ignore[union-attr]
    )
    assert third.usage.cache_read_input_tokens is not None
    assert third.usage.cache_read_input_tokens > (second.usage.cache_read_input_tokens or 0)


@pytest.mark.parametrize("index", range(9), ids=lambda i: f"block{i}")
async def test_breakpoints_work_on_every_kind_of_echoed_block(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic, index: int
) -> None:
    file_id = await upload_csv(client)
    first = await client.messages.create(
        model=MODEL, max_tokens=4096, tools=[BASH_TOOL], messages=[ask(QUESTION, file_id)]
    )
    blocks = plain(first.content)
    assert len(blocks) == 9
    marked = [*blocks[:index], {**blocks[index], "cache_control": CACHED}, *blocks[index + 1 :]]
    api.script = scripted(Text("ok"))
    request: dict[str, Any] = {"model": MODEL, "max_tokens": 100, "tools": [BASH_TOOL], "container": first.container.id}  # type: ignore[union-attr]
    messages = [ask(QUESTION, file_id), {"role": "assistant", "content": marked}, ask("more?")]
    written = await client.messages.create(**request, messages=messages)
    assert written.usage.cache_creation_input_tokens and written.usage.cache_read_input_tokens == 0
    # The same prefix, the breakpoint moved to the newest turn: read through the lookback.
    unmarked = [ask(QUESTION, file_id), {"role": "assistant", "content": blocks}]
    newest = {"role": "user", "content": [with_cache({"type": "text", "text": "more?"})]}
    read = await client.messages.create(**request, messages=[*unmarked, newest])
    assert read.usage.cache_read_input_tokens == written.usage.cache_creation_input_tokens


@VIOLATES_CONTRACT  # cache_control on a thinking block; a ttl of 2h
async def test_cache_control_limits_are_the_real_ones(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    api.script = scripted(Text("ok"))
    blocks = [{"type": "text", "text": f"part {i}", "cache_control": CACHED} for i in range(4)]
    system = [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    with pytest.raises(anthropic.BadRequestError) as rejected:
        await client.messages.create(
            model=MODEL, max_tokens=10, system=system, messages=[{"role": "user", "content": blocks}]
        )
    assert rejected.value.api_message == "A maximum of 4 blocks with cache_control may be provided. Found 5."

    ok = await client.messages.create(
        model=MODEL, max_tokens=10, system=system, messages=[{"role": "user", "content": blocks[:3]}]
    )
    assert ok.usage.cache_creation is not None and ok.usage.cache_creation.ephemeral_1h_input_tokens > 0
    assert ok.usage.cache_creation.ephemeral_5m_input_tokens > 0

    with pytest.raises(anthropic.BadRequestError, match="A maximum of 4 blocks"):  # automatic caching takes a slot
        await client.messages.create(
            model=MODEL,
            max_tokens=10,
            system=system,
            messages=[{"role": "user", "content": [*blocks[:3], {"type": "text", "text": "last"}]}],
            cache_control=CACHED,
        )
    thinking = {"type": "thinking", "thinking": "hmm", "signature": "sig", "cache_control": CACHED}
    with pytest.raises(anthropic.BadRequestError) as rejected:
        await client.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=[ask("a"), {"role": "assistant", "content": [thinking, {"type": "text", "text": "b"}]}, ask("c")],
        )
    assert rejected.value.api_message == "messages.1.content.0.thinking.cache_control: Extra inputs are not permitted"
    with pytest.raises(anthropic.BadRequestError, match="ttl: Input should be '5m' or '1h'"):
        await client.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "2h"}}],
                }
            ],
        )


# --------------------------------------------------------------------------------------------
# Rate limits (docs: api/rate-limits)
# --------------------------------------------------------------------------------------------


class Minutes:
    """The rate window's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def ratelimit_headers(headers: httpx2.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("anthropic-ratelimit-")}


async def test_every_messages_response_reports_the_rate_limits(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    api.script = scripted(Text("Hello!"))
    raw = await client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=[ask("Hi")])
    first = ratelimit_headers(raw.headers)
    async with client.messages.stream(model=MODEL, max_tokens=100, messages=[ask("Hi")]) as stream:
        second = ratelimit_headers(stream.response.headers)
        await stream.get_final_message()
    for name in ("requests", "input-tokens", "output-tokens", "tokens"):
        for headers in (first, second):
            assert int(headers[f"anthropic-ratelimit-{name}-remaining"]) < int(
                headers[f"anthropic-ratelimit-{name}-limit"]
            )
            assert datetime.fromisoformat(headers[f"anthropic-ratelimit-{name}-reset"]) > datetime.now(UTC)
    assert (
        int(second["anthropic-ratelimit-requests-remaining"])
        == int(first["anthropic-ratelimit-requests-remaining"]) - 1
    )
    used = int(first["anthropic-ratelimit-input-tokens-limit"]) - int(
        first["anthropic-ratelimit-input-tokens-remaining"]
    )
    assert used == (await raw.parse()).usage.input_tokens  # counted when the request came in


async def test_a_used_up_budget_is_a_429_with_retry_after_until_the_window_refills(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    api.script = scripted(Text("Hello!"))
    minutes = Minutes()
    api.rate_limit(requests=2, window_s=60, clock=minutes)
    for _ in range(2):
        await client.messages.create(model=MODEL, max_tokens=100, messages=[ask("Hi")])
    minutes.now = 20.4
    with pytest.raises(anthropic.RateLimitError) as limited:
        await client.messages.create(model=MODEL, max_tokens=100, messages=[ask("Hi")])
    headers = limited.value.response.headers
    assert headers["retry-after"] == "40"  # whole seconds, rounded up: never too early
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    minutes.now = 60.0
    message = await client.messages.create(model=MODEL, max_tokens=100, messages=[ask("Hi")])
    assert answer_text(message) == "Hello!"
    assert [r.status for r in api.message_requests] == [200, 200, 429, 200]


async def test_an_output_token_budget_runs_out_too(api: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    api.script = scripted(Text("word " * 50))
    api.rate_limit(output_tokens=10, clock=Minutes())
    await client.messages.create(model=MODEL, max_tokens=1000, messages=[ask("Talk")])
    with pytest.raises(anthropic.RateLimitError, match="output-tokens"):
        await client.messages.create(model=MODEL, max_tokens=1000, messages=[ask("Talk")])


async def test_the_fake_names_retries_that_came_before_their_retry_after(
    api: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    api.script = scripted(Text("Hello!"))
    api.fail_next("messages", status=429, retry_after=30)
    request: dict[str, Any] = {"model": MODEL, "max_tokens": 100, "messages": [ask("Hi")]}
    with pytest.raises(anthropic.RateLimitError):
        await client.messages.create(**request)
    await client.messages.create(**request)  # at once: 30 s too early
    [(refused, retry)] = api.retried_too_soon()
    assert (refused.status, retry.status) == (429, 200) and retry.arrived >= refused.arrived
    await client.messages.create(model=MODEL, max_tokens=100, messages=[ask("Something else")])
    assert len(api.retried_too_soon()) == 1  # another request is no retry
