"""The Anthropic wire contract: the SDK's own types, checked strictly, on everything the fake sees and sends.

The first half drives the checker (tests/fakes/anthropic_contract.py) directly; the second half
goes through the REAL SDK client against the fake and shows that a request the SDK's types reject
is answered 400 and recorded, and that a response they don't declare is recorded too (the SDK
itself would have accepted it silently).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal, Optional

import aiohttp
import anthropic
import pytest
from anthropic.pagination import AsyncPageCursor
from anthropic.types import FileListParams, FileMetadata, Message, RawMessageStreamEvent
from anthropic.types.beta import message_create_params as beta_params
from anthropic.types.message_create_params import (
    MessageCreateParamsBase,
    MessageCreateParamsNonStreaming,
    MessageCreateParamsStreaming,
)

from tests.fakes import anthropic_contract as contract
from tests.fakes.anthropic import ContainerState, FakeAnthropic, StoredFile
from tests.fakes.anthropic_contract import Violation, problems, request_problems, response_problems
from tests.fakes.scripts import Text, scripted

MODEL = "claude-sonnet-5"
TOOL = {"type": "code_execution_20260521", "name": "code_execution"}
VIOLATES_CONTRACT = pytest.mark.anthropic_contract_violation


def body(**overrides: Any) -> dict[str, Any]:
    """A conforming streamed Messages body, like the bot's, with ``overrides``."""
    return {
        "model": MODEL,
        "max_tokens": 1000,
        "stream": True,
        "system": [{"type": "text", "text": "You analyse data.", "cache_control": {"type": "ephemeral"}}],
        "tools": [{**TOOL, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "container_upload", "file_id": "file_1"},
                    {"type": "text", "text": "What drives churn?", "cache_control": {"type": "ephemeral"}},
                ],
            }
        ],
        **overrides,
    }


def messages_problems(value: dict[str, Any]) -> list[str]:
    return request_problems("POST", "/v1/messages", query={}, body=value)


# --------------------------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        (1, int, []),
        (True, int, ["body: Input should be a valid integer"]),
        (1, float, []),
        ("1", float, ["body: Input should be a valid number"]),
        (None, Optional[str], []),  # noqa: UP045 - the SDK's own spelling
        (None, str, ["body: Input should be a valid string"]),
        (["a", 1], list[str], ["1: Input should be a valid string"]),
        (["a", 1], tuple[str, int], []),
        (["a"], tuple[str, int], ["body: Input should have 2 items, got 1"]),
        ({"k": 1}, dict[str, str], ["k: Input should be a valid string"]),
        ({"k": [1, {"x": None}]}, dict[str, object], []),
        ("b", Literal["a", "b"], []),
        ("c", Literal["a", "b"], ["body: Input should be 'a' or 'b'"]),
    ],
)
def test_plain_types(value: Any, annotation: Any, expected: list[str]) -> None:
    assert problems(value, annotation) == expected


def test_a_request_like_the_bots_conforms() -> None:
    assert messages_problems(body()) == []
    follow_up = body(container={"id": "container_1", "skills": [{"type": "anthropic", "skill_id": "xlsx"}]})
    assert messages_problems(follow_up) == []


def test_required_keys_come_from_the_annotations() -> None:
    # With postponed annotations the SDK's own bookkeeping misses every Required[...]:
    assert MessageCreateParamsBase.__required_keys__ == frozenset()
    assert sorted(problems({}, MessageCreateParamsStreaming)) == [
        "max_tokens: Field required",
        "messages: Field required",
        "model: Field required",
        "stream: Field required",
    ]
    assert problems({"model": MODEL, "max_tokens": 1, "messages": []}, MessageCreateParamsNonStreaming) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda b: b.update(temprature=0.2), "temprature: Extra inputs are not permitted"),
        (lambda b: b["messages"][0].update(name="alice"), "messages.0.name: Extra inputs are not permitted"),
        (
            lambda b: b["messages"][0]["content"][0].update(path="inputs/a.csv"),
            "messages.0.content.0.container_upload.path: Extra inputs are not permitted",
        ),
        (
            lambda b: b["messages"][0]["content"][1]["cache_control"].update(tll="1h"),
            "messages.0.content.1.text.cache_control.tll: Extra inputs are not permitted",
        ),
        (
            lambda b: b["tools"][0].update(timeout=30),
            "tools.0.code_execution_20260521.timeout: Extra inputs are not permitted",
        ),
        (lambda b: b["system"][0].update(role="system"), "system.0.role: Extra inputs are not permitted"),
        (lambda b: b.update(container={"skils": []}), "container.skils: Extra inputs are not permitted"),
        (
            lambda b: b.update(container={"skills": [{"type": "anthropic", "skill_id": "xlsx", "pinned": True}]}),
            "container.skills.0.pinned: Extra inputs are not permitted",
        ),
        (
            lambda b: b["messages"].extend(
                [
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "txt": "x"}]}
                        ],
                    },
                ]
            ),
            "messages.2.content.0.tool_result.content.0.text.txt: Extra inputs are not permitted",
        ),
    ],
    ids=["top", "message", "block", "cache_control", "tool", "system", "container", "skill", "tool_result"],
)
def test_unknown_keys_are_refused_at_every_level(change: Any, expected: str) -> None:
    request = body()
    change(request)
    assert expected in messages_problems(request)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"service_tier": "priority"}, "service_tier: Input should be 'auto' or 'standard_only'"),
        ({"tools": [{**TOOL, "name": "python"}]}, "tools.0.code_execution_20260521.name: Input should be"),
        ({"max_tokens": True}, "max_tokens: Input should be a valid integer"),
        ({"max_tokens": None}, "max_tokens: Input should be a valid integer"),
        ({"stream": "yes"}, "stream: Input should be false"),
        ({"messages": [{"role": "bot", "content": "hi"}]}, "messages.0: Input tag 'bot' found using 'role'"),
        ({"system": [{"type": "text"}]}, "system.0.text: Field required"),
        ({"messages": {"role": "user", "content": "hi"}}, "messages: Input should be a valid list"),
    ],
)
def test_wrong_values_are_refused(overrides: dict[str, Any], expected: str) -> None:
    found = messages_problems(body(**overrides))
    assert any(problem.startswith(expected) for problem in found), found


def test_a_block_type_no_variant_has_names_the_expected_tags() -> None:
    request = body(messages=[{"role": "user", "content": [{"type": "video", "url": "x"}]}])
    (problem,) = messages_problems(request)
    assert problem.startswith("messages.0.content.0: Input tag 'video' found using 'type' does not match")
    assert "'container_upload'" in problem and "'text'" in problem


def test_a_block_of_the_wrong_shape_names_what_is_wrong() -> None:
    upload = {"type": "container_upload", "file": "file_1"}
    request = body(messages=[{"role": "user", "content": [upload, {"type": "text", "text": "hi"}]}])
    assert messages_problems(request) == [
        "messages.0.content.0.container_upload.file: Extra inputs are not permitted",
        "messages.0.content.0.container_upload.file_id: Field required",
    ]


def test_beta_params_need_a_beta_header() -> None:
    beta_only = body(context_management={"edits": []})  # a beta-only Messages param
    assert "context_management" in beta_params.MessageCreateParamsBase.__annotations__
    assert messages_problems(beta_only) == ["context_management: Extra inputs are not permitted"]
    with_header = request_problems("POST", "/v1/messages", query={}, body=beta_only, betas=["context-management"])
    assert with_header == []


def test_files_endpoints_check_their_query_and_form() -> None:
    assert request_problems("GET", "/v1/files", query={"ids[]": ["file_a", "file_b"]}) == []
    assert request_problems("GET", "/v1/files", query={"limit": ["20"], "page": ["page_x"]}) == []
    assert request_problems("GET", "/v1/files", query={"limit": ["many"], "order": ["asc"]}) == [
        "limit: Input should be a valid integer",
        "order: Extra inputs are not permitted",
    ]
    assert request_problems("DELETE", "/v1/files/file_a", query={"force": ["true"]}) == [
        "force: Extra inputs are not permitted"
    ]
    assert request_problems("GET", "/v1/models/claude-sonnet-5", query={}) == []
    upload = {"query": {}, "file_parts": ["file"]}
    assert request_problems("POST", "/v1/files", form={"expires_in_seconds": ["3600"]}, **upload) == []
    assert request_problems("POST", "/v1/files", form={"purpose": ["analysis"]}, **upload) == [
        "purpose: Extra inputs are not permitted"
    ]
    assert request_problems("POST", "/v1/files", query={}, form={}, file_parts=["document"]) == [
        "document: Extra inputs are not permitted",
        "file: Field required",
    ]
    assert "ids" in FileListParams.__annotations__


def message_json(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 2},
        "container": None,
        **overrides,
    }


def test_responses_are_checked_strictly_although_the_sdk_keeps_unknown_keys_silently() -> None:
    assert problems(message_json(), Message) == []
    odd = message_json(usage={"input_tokens": 10, "output_tokens": 2, "thinking_tokens": 5})
    parsed = Message.model_validate(odd)  # the SDK takes it...
    assert parsed.usage.model_extra == {"thinking_tokens": 5}
    assert problems(odd, Message) == [
        "usage.thinking_tokens: Extra inputs are not permitted"
    ]  # ...the contract doesn't
    assert problems(message_json(stop_reason="done"), Message)[0].startswith("stop_reason: Input should be")
    assert problems(message_json(id=None), Message) == ["id: Input should be a valid string"]


def test_stream_events_and_pages_are_checked() -> None:
    start = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert problems(start, RawMessageStreamEvent) == []
    assert contract.stream_event_problems("content_block_start", start) == []
    assert contract.stream_event_problems("message_stop", start) == [
        "event 'message_stop' carries data of type 'content_block_start'"
    ]
    assert contract.stream_event_problems("ping", {"type": "ping", "at": 1}) == ["at: Extra inputs are not permitted"]
    meta = {
        "id": "file_1",
        "type": "file",
        "filename": "a.csv",
        "mime_type": "text/csv",
        "size_bytes": 4,
        "created_at": "2026-01-02T03:04:05Z",
    }
    assert problems({"data": [meta], "next_page": None}, AsyncPageCursor[FileMetadata]) == []
    assert problems({"data": [meta], "next_page": None, "has_more": False}, AsyncPageCursor[FileMetadata]) == [
        "has_more: Extra inputs are not permitted"
    ]
    assert problems({**meta, "created_at": "yesterday"}, FileMetadata) == [
        "created_at: Input should be a valid RFC 3339 datetime, got 'yesterday'"
    ]


def test_errors_may_carry_the_details_the_sdk_reads() -> None:
    expired = {
        "type": "error",
        "error": {"type": "not_found_error", "message": "gone", "details": {"error_code": "file_expired"}},
        "request_id": "req_1",
    }
    assert response_problems("GET", "/v1/files/file_1/content", 404, expired) == []
    unknown = {"type": "error", "error": {"type": "meltdown_error", "message": "?"}}
    (problem,) = response_problems("POST", "/v1/messages", 500, unknown)
    assert problem.startswith("error: Input tag 'meltdown_error' found using 'type' does not match")


def test_every_sdk_annotation_under_the_contract_has_a_rule() -> None:
    roots = [
        MessageCreateParamsStreaming,
        MessageCreateParamsNonStreaming,
        beta_params.MessageCreateParamsStreaming,
        anthropic.types.MessageCountTokensParams,
        anthropic.types.FileUploadParams,
        FileListParams,
        Message,
        RawMessageStreamEvent,
        AsyncPageCursor[FileMetadata],
        anthropic.types.DeletedFile,
        anthropic.types.MessageTokensCount,
        anthropic.types.ModelInfo,
        contract.ErrorResponse,
        contract.ErrorDetails,
    ]
    for root in roots:
        for annotation in contract.annotations_under(root):
            problems(None, annotation)  # raises TypeError for an annotation it has no rule for


def test_a_test_fails_on_an_unexpected_violation_and_on_a_missing_expected_one() -> None:
    found = [Violation("request", "POST /v1/messages", ("temprature: Extra inputs are not permitted",))]
    assert contract.verdict([], expected=False) is None
    assert contract.verdict(found, expected=True) is None
    failure = contract.verdict(found, expected=False)
    assert failure is not None and "request POST /v1/messages: temprature: Extra inputs are not permitted" in failure
    assert contract.verdict([], expected=True) == (
        "expected a conformance violation, but every request and response conformed"
    )


# --------------------------------------------------------------------------------------------
# Through the SDK, against the fake
# --------------------------------------------------------------------------------------------


@pytest.fixture
async def client(claude: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(api_key=claude.api_key, base_url=claude.base_url, max_retries=0) as sdk:
        yield sdk


async def refused(claude: FakeAnthropic, call: Any) -> anthropic.BadRequestError:
    """The 400 a non-conforming call gets; the fake recorded the request as a violation."""
    before = len(claude.violations)
    with pytest.raises(anthropic.BadRequestError) as rejected:
        await call
    assert rejected.value.status_code == 400 and rejected.value.body["error"]["type"] == "invalid_request_error"
    assert len(claude.violations) == before + 1 and claude.violations[-1].direction == "request"
    return rejected.value


@VIOLATES_CONTRACT
async def test_a_misspelled_field_is_a_400_and_a_violation(
    claude: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    claude.script = scripted(Text("ok"))
    call = client.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}], extra_body={"temprature": 0.2}
    )
    error = await refused(claude, call)
    assert error.api_message == "temprature: Extra inputs are not permitted"
    assert claude.violations[-1].endpoint == "POST /v1/messages"
    assert claude.responses == [], "nothing ran"


@VIOLATES_CONTRACT
async def test_a_container_upload_with_file_instead_of_file_id(
    claude: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    upload: Any = {"type": "container_upload", "file": "file_x"}
    call = client.messages.create(
        model=MODEL, max_tokens=100, tools=[TOOL], messages=[{"role": "user", "content": [upload]}]
    )
    await refused(claude, call)
    assert claude.violations[-1].problems == (
        "messages.0.content.0.container_upload.file: Extra inputs are not permitted",
        "messages.0.content.0.container_upload.file_id: Field required",
    )


@VIOLATES_CONTRACT
async def test_an_unknown_key_inside_a_tool_definition(claude: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    claude.script = scripted(Text("ok"))
    tool: Any = {**TOOL, "timeout": 30}
    call = client.messages.create(
        model=MODEL, max_tokens=100, tools=[tool], messages=[{"role": "user", "content": "hi"}]
    )
    error = await refused(claude, call)
    assert error.api_message == "tools.0.code_execution_20260521.timeout: Extra inputs are not permitted"
    assert claude.containers == {}, "no container was started for a refused request"


@VIOLATES_CONTRACT
async def test_a_bad_literal(claude: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    claude.script = scripted(Text("ok"))
    tier: Any = "priority"
    call = client.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}], service_tier=tier
    )
    error = await refused(claude, call)
    assert error.api_message == "service_tier: Input should be 'auto' or 'standard_only'"


@VIOLATES_CONTRACT
async def test_a_misspelled_key_in_a_raw_streamed_request(claude: FakeAnthropic) -> None:
    """Without the SDK: a request whose cache_control deep in a block is misspelled."""
    request = body(stream=True)
    request["messages"][0]["content"] = [
        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "tll": "1h"}}
    ]
    headers = {"x-api-key": claude.api_key, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(claude.base_url + "/v1/messages", data=json.dumps(request), headers=headers) as response,
    ):
        assert response.status == 400
        answer = await response.json()
    assert answer["error"] == {
        "type": "invalid_request_error",
        "message": "messages.0.content.0.text.cache_control.tll: Extra inputs are not permitted",
    }
    assert [v.problems for v in claude.violations] == [(answer["error"]["message"],)]


@VIOLATES_CONTRACT
async def test_an_upload_with_an_unknown_form_field(claude: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    call = client.files.upload(file=("a.csv", b"a\n1\n", "text/csv"), extra_body={"purpose": "analysis"})
    error = await refused(claude, call)
    assert error.api_message == "purpose: Extra inputs are not permitted"
    assert claude.uploads == [], "the file was not stored"


@VIOLATES_CONTRACT
async def test_a_file_listing_with_an_unknown_query_parameter(
    claude: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    error = await refused(claude, client.files.list(extra_query={"order": "asc"}))
    assert error.api_message == "order: Extra inputs are not permitted"
    assert claude.violations[-1].endpoint == "GET /v1/files"


async def test_the_files_calls_the_bot_makes_conform(claude: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    metas = [
        await client.files.upload(file=(f"f{i}.csv", b"a\n1\n", "text/csv"), expires_in_seconds=3600) for i in range(3)
    ]
    assert sorted([m.id async for m in client.files.list(limit=2)]) == sorted(m.id for m in metas)
    page = await client.files.list(ids=[metas[0].id])
    assert set(page.to_dict()) == {"data", "next_page"}, "only the keys the SDK's PageCursor declares"
    await client.files.retrieve_metadata(metas[0].id)
    await client.files.delete(metas[0].id)
    assert claude.violations == []


# -- responses ---------------------------------------------------------------------------------


@VIOLATES_CONTRACT
async def test_an_undeclared_key_in_file_metadata_is_recorded(
    claude: FakeAnthropic, client: anthropic.AsyncAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    metadata = StoredFile.metadata
    monkeypatch.setattr(StoredFile, "metadata", lambda self: {**metadata(self), "purpose": "analysis"})
    meta = await client.files.upload(file=("a.csv", b"a\n1\n", "text/csv"))
    assert meta.model_extra == {"purpose": "analysis"}, "the SDK takes it silently"
    assert claude.violations == [Violation("response", "POST /v1/files", ("purpose: Extra inputs are not permitted",))]


@VIOLATES_CONTRACT
@pytest.mark.parametrize("stream", [False, True])
async def test_an_undeclared_key_in_a_message_is_recorded(
    claude: FakeAnthropic, client: anthropic.AsyncAnthropic, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    response_json = ContainerState.response_json
    monkeypatch.setattr(ContainerState, "response_json", lambda self: {**response_json(self), "state": "running"})
    claude.script = scripted(Text("ok"))
    request: Any = {"model": MODEL, "max_tokens": 100, "tools": [TOOL], "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        async with client.messages.stream(**request) as events:
            message = await events.get_final_message()
    else:
        message = await client.messages.create(**request)
    assert message.container is not None and message.container.model_extra == {"state": "running"}
    expected = (
        [
            Violation(
                "response",
                "POST /v1/messages (message_start event)",
                ("message_start.message.container.state: Extra inputs are not permitted",),
            ),
            Violation(
                "response",
                "POST /v1/messages (message_delta event)",
                ("message_delta.delta.container.state: Extra inputs are not permitted",),
            ),
        ]
        if stream
        else [Violation("response", "POST /v1/messages", ("container.state: Extra inputs are not permitted",))]
    )
    assert claude.violations == expected


@VIOLATES_CONTRACT
async def test_an_error_of_a_type_the_sdk_does_not_know_is_recorded(
    claude: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    claude.fail_next("files.list", status=500, error_type="meltdown_error", message="?")
    with pytest.raises(anthropic.InternalServerError):
        await client.files.list()
    (violation,) = claude.violations
    assert violation.direction == "response" and violation.endpoint == "GET /v1/files"
    assert violation.problems[0].startswith("error: Input tag 'meltdown_error' found using 'type' does not match")


@VIOLATES_CONTRACT
async def test_a_stream_error_event_of_an_unknown_type_is_recorded(
    claude: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    claude.script = scripted(Text("ok"))
    claude.error_stream_next(after_events=2, error_type="meltdown_error")
    with pytest.raises(anthropic.APIStatusError):
        async with client.messages.stream(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as events:
            await events.get_final_message()
    (violation,) = claude.violations
    assert violation.endpoint == "POST /v1/messages (error event)"
