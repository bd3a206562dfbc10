"""An in-memory scripted model: the parts of ``anthropic.AsyncAnthropic`` the engine uses.

For fast unit tests of :class:`bot.engine.Engine` — no network, no sandbox, no subprocess.
Each ``messages.stream`` call takes the next scripted :class:`Reply` and streams it as the
API does (``message_start``, each block's start, deltas and stop, ``message_delta``,
``message_stop``), as the SDK's own event types, through the SDK's own ``AsyncMessageStream``,
which accumulates them: the engine reads real ``Message`` and block models, not dicts. A
scripted exception is raised instead, as the SDK raises an error response. Requests are
checked against the SDK's request types (``tests/fakes/anthropic_contract.py``) and recorded.

The loopback fake (``tests/fakes/anthropic.py``) stays the one that models the API's rules.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import anthropic
import httpx2
import pydantic
from anthropic.lib.streaming import AsyncMessageStreamManager

from tests.fakes import anthropic_contract as contract

#: docs: build-with-claude/files — the Files API needs "anthropic-beta: files-api-2025-04-14".
FILES_API_BETA = "files-api-2025-04-14"
EXPIRES_AT = "2030-01-01T00:30:00Z"
REQUEST = httpx2.Request("POST", "https://api.anthropic.com/v1/messages")
_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)
_ids = itertools.count(1)
_STATUS_ERRORS: dict[int, type[anthropic.APIStatusError]] = {
    400: anthropic.BadRequestError,
    404: anthropic.NotFoundError,
    429: anthropic.RateLimitError,
    500: anthropic.InternalServerError,
    529: anthropic.OverloadedError,
}

Block = dict[str, Any]


def text(value: str) -> list[Block]:
    return [{"type": "text", "text": value}]


def bash(
    command: str,
    *,
    stdout: str = "",
    stderr: str = "",
    return_code: int = 0,
    file_ids: Iterable[str] = (),
    error_code: str | None = None,
) -> list[Block]:
    """One code-execution step with the bash tool: the ``server_tool_use`` and its result."""
    tool_id = f"srvtoolu_mem{next(_ids):04d}"
    result: Block = (
        {"type": "bash_code_execution_tool_result_error", "error_code": error_code}
        if error_code
        else {
            "type": "bash_code_execution_result",
            "stdout": stdout,
            "stderr": stderr,
            "return_code": return_code,
            "content": [{"type": "bash_code_execution_output", "file_id": f} for f in file_ids],
        }
    )
    return [
        {"type": "server_tool_use", "id": tool_id, "name": "bash_code_execution", "input": {"command": command}},
        {"type": "bash_code_execution_tool_result", "tool_use_id": tool_id, "content": result},
    ]


@dataclass
class Reply:
    """One scripted response. ``container`` None: the request's container, else a new one.
    ``drop_after``: the connection drops (``drop_with``) after that many blocks."""

    content: list[Block]
    stop_reason: str = "end_turn"
    usage: dict[str, Any] = field(default_factory=lambda: {"input_tokens": 100, "output_tokens": 20})
    container: str | None = None
    drop_after: int | None = None
    drop_with: Exception = field(default_factory=lambda: anthropic.APIConnectionError(request=REQUEST))
    headers: dict[str, str] = field(default_factory=dict)  # response headers (rate limits, say)


def reply(*parts: list[Block], **options: Any) -> Reply:
    return Reply([block for part in parts for block in part], **options)


def api_error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Exception:
    """What the SDK raises for an error response: its class by status; the body's type and message."""
    body = {"type": "error", "error": {"type": kind, "message": message}}
    response = httpx2.Response(status, headers={"request-id": "req_mem", **(headers or {})}, json=body, request=REQUEST)
    error_class = _STATUS_ERRORS.get(status, anthropic.APIStatusError)
    return error_class(f"Error code: {status} - {body}", response=response, body=body)


def _betas(extra_headers: Mapping[str, str] | None) -> list[str]:
    return [b.strip() for b in (extra_headers or {}).get("anthropic-beta", "").split(",") if b.strip()]


class MemoryModel:
    """Serves the scripted replies in order; records every request's params and options."""

    def __init__(self, *script: Reply | Exception) -> None:
        self.script: deque[Reply | Exception] = deque(script)
        self.requests: list[dict[str, Any]] = []
        self.options: list[dict[str, Any]] = []
        self.stored: dict[str, anthropic.types.FileMetadata] = {}
        self.messages = _Messages(self)
        self.files = _Files(self)

    def with_options(self, **options: Any) -> MemoryModel:
        self.options.append(options)
        return self

    def add_file(self, filename: str, mime_type: str = "image/png", size_bytes: int = 2048) -> str:
        """A file the sandbox produced, for a step's ``file_ids``; returns its id."""
        file_id = f"file_mem{next(_ids):04d}"
        created = datetime.now(UTC)
        self.stored[file_id] = anthropic.types.FileMetadata(
            id=file_id, created_at=created, filename=filename, mime_type=mime_type, size_bytes=size_bytes, type="file"
        )
        return file_id

    async def respond(self, params: dict[str, Any]) -> _Stream:
        self.requests.append(copy.deepcopy(params))
        betas = _betas(params.get("extra_headers"))
        body = json.loads(json.dumps({**{k: v for k, v in params.items() if k != "extra_headers"}, "stream": True}))
        problems = contract.request_problems("POST", "/v1/messages", query={}, betas=betas, body=body)
        if problems:
            contract.RECORDED.append(contract.Violation("request", "messages.stream (memory model)", tuple(problems)))
            raise api_error(400, "invalid_request_error", problems[0])
        assert self.script, f"the script has no reply for request {len(self.requests)}"
        scripted = self.script.popleft()
        if isinstance(scripted, Exception):
            raise scripted
        sent = params.get("container")
        container = scripted.container or (sent.get("id") if isinstance(sent, dict) else sent)
        return _Stream(scripted, params["model"], container or f"container_mem{next(_ids):04d}")


class _Messages:
    def __init__(self, model: MemoryModel) -> None:
        self.model = model

    def stream(self, **params: Any) -> AsyncMessageStreamManager[None]:
        return AsyncMessageStreamManager(cast(Any, self.model.respond(params)))


class _Files:
    def __init__(self, model: MemoryModel) -> None:
        self.model = model

    async def retrieve_metadata(
        self, file_id: str, *, extra_headers: Mapping[str, str] | None = None
    ) -> anthropic.types.FileMetadata:
        if FILES_API_BETA not in _betas(extra_headers):
            raise api_error(400, "invalid_request_error", f"the Files API needs 'anthropic-beta: {FILES_API_BETA}'")
        if file_id not in self.model.stored:
            raise api_error(404, "not_found_error", f"File not found: {file_id}")
        return self.model.stored[file_id]


class _Stream:
    """The raw event stream of one reply, as ``AsyncMessageStream`` reads the SDK's own."""

    def __init__(self, scripted: Reply, model: str, container: str) -> None:
        self.scripted = scripted
        self.model = model
        self.container = {"id": container, "expires_at": EXPIRES_AT}
        self.response = httpx2.Response(200, headers={"request-id": "req_mem", **scripted.headers}, request=REQUEST)

    async def close(self) -> None:
        return None

    async def __aiter__(self) -> AsyncIterator[Any]:
        blocks = 0
        for event in self._events():
            problems = contract.stream_event_problems(event["type"], event)
            assert not problems, f"scripted {event['type']} event doesn't conform: {problems}"
            if event["type"] in ("content_block_start", "message_delta") and blocks == self.scripted.drop_after:
                raise self.scripted.drop_with
            blocks += event["type"] == "content_block_stop"
            yield _EVENT.validate_python(event)

    def _events(self) -> Iterator[dict[str, Any]]:
        usage = self.scripted.usage
        start = {"id": f"msg_mem{next(_ids):04d}", "type": "message", "role": "assistant", "model": self.model}
        start |= {"content": [], "stop_reason": None, "stop_sequence": None, "container": self.container}
        yield {"type": "message_start", "message": {**start, "usage": {**usage, "output_tokens": 1}}}
        for index, block in enumerate(self.scripted.content):
            first, deltas = _streamed(block)
            yield {"type": "content_block_start", "index": index, "content_block": first}
            yield from ({"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas)
            yield {"type": "content_block_stop", "index": index}
        delta = {"stop_reason": self.scripted.stop_reason, "stop_sequence": None, "container": self.container}
        yield {"type": "message_delta", "delta": delta, "usage": usage}
        yield {"type": "message_stop"}


def _streamed(block: Block) -> tuple[Block, list[Block]]:
    """A block as its ``content_block_start`` carries it, and its deltas: text and tool input
    arrive in deltas, tool results whole."""
    if block["type"] == "text":
        return {**block, "text": ""}, [{"type": "text_delta", "text": block["text"]}]
    if block["type"] == "server_tool_use":
        return {**block, "input": {}}, [{"type": "input_json_delta", "partial_json": json.dumps(block["input"])}]
    return block, []
