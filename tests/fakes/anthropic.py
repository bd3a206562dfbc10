"""A stateful loopback fake of the Anthropic API: Files API + Messages with code execution.

The bot under test talks to it through its REAL ``anthropic`` SDK client, with
``ANTHROPIC_BASE_URL`` set to :attr:`FakeAnthropic.base_url`::

    async with FakeAnthropic() as api:
        client = anthropic.AsyncAnthropic(api_key=api.api_key, base_url=api.base_url)
        meta = await client.files.upload(file=("streaming.csv", data, "text/csv"))
        message = await client.messages.create(
            model="claude-sonnet-4-5", max_tokens=4096,
            tools=[{"type": "code_execution_20260521", "name": "code_execution"}],
            messages=[{"role": "user", "content": [
                {"type": "text", "text": "Why do customers churn?"},
                {"type": "container_upload", "file_id": meta.id},
            ]}],
        )

It is strict like the real service (auth and version headers, request validation, real error
JSON and status codes), keeps state a test can inspect (:attr:`~FakeAnthropic.requests`,
:attr:`~FakeAnthropic.files`, :attr:`~FakeAnthropic.uploads`, :attr:`~FakeAnthropic.containers`,
:attr:`~FakeAnthropic.responses`), and can inject faults (:meth:`~FakeAnthropic.fail_next`,
:meth:`~FakeAnthropic.break_stream_next`, :meth:`~FakeAnthropic.error_stream_next`,
:meth:`~FakeAnthropic.expire_container`).  The "model" is a script (``tests/fakes/scripts.py``)
whose code really runs in the warm forking sandbox (``tests/fakes/sandbox.py``).

Besides code execution it serves the server-side web tools (``web_search_*`` / ``web_fetch_*``
definitions next to a code-execution tool; scripted with :class:`~tests.fakes.scripts.WebSearch`
and :class:`~tests.fakes.scripts.WebFetch`, counted in ``usage.server_tool_use``), Agent Skills
in the container (``container={"id": ..., "skills": [...]}``, echoed in ``container.skills``),
multi-turn conversations in one container (a follow-up's ``container_upload`` blocks land in
the input directory next to the earlier files) and prompt caching across turns (at most four
``cache_control`` breakpoints, on blocks of any cacheable type; a cache hit is looked for at the
breakpoints and up to 20 blocks before each, as the real API does).

Where the real API's behaviour could not be confirmed, the choice made is the most plausible
one and is said so where it is implemented (see :data:`UNCONFIRMED`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import math
import mimetypes
import re
import secrets
import shlex
import shutil
import string
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from aiohttp import BodyPartReader, web

from . import anthropic_contract as contract
from . import sandbox
from .ratelimits import RateLimits, RateWindow
from .scripts import (
    Action,
    Code,
    CodeRun,
    GeneratedFile,
    Hold,
    MaxTokens,
    Pause,
    Refuse,
    Script,
    ScriptContext,
    Text,
    ToolError,
    Turn,
    WebFetch,
    WebFetchRun,
    WebResult,
    WebSearch,
    WebSearchRun,
    analyst,
)

__all__ = [
    "ANTHROPIC_SKILLS",
    "API_VERSION",
    "API_VERSIONS",
    "CODE_EXECUTION_TOOLS",
    "DEFAULT_API_KEY",
    "MAX_CACHE_BREAKPOINTS",
    "MAX_SKILLS",
    "UNCONFIRMED",
    "WEB_FETCH_TOOLS",
    "WEB_SEARCH_TOOLS",
    "ApiError",
    "ContainerState",
    "FakeAnthropic",
    "RateLimits",
    "RecordedRequest",
    "StoredFile",
    "UploadRecord",
]

API_VERSION = "2023-06-01"
#: ``anthropic-version`` values accepted: the long-standing one and the one anthropic 2.14 sends.
API_VERSIONS = frozenset({API_VERSION, "2026-10-21"})
DEFAULT_API_KEY = "sk-ant-test-key"
# How often a stalled stream (a Hold) sends a ping, which is how the fake notices a client that left.
PING_INTERVAL_S = 0.05

#: Code execution tool types -> the beta header each one still needs (None: generally available).
CODE_EXECUTION_TOOLS: dict[str, str | None] = {
    "code_execution_20250522": "code-execution-2025-05-22",  # Python only
    "code_execution_20250825": None,  # bash + text editor
    "code_execution_20260120": None,
    "code_execution_20260521": None,
}
PYTHON_ONLY_TOOL = "code_execution_20250522"

#: Server-side web tool versions (``types/web_search_tool_*_param.py``, ``web_fetch_tool_*``).
#: All generally available in anthropic 2.14 (they are in the non-beta ``ToolUnionParam``), so
#: no beta header is required; ``response_inclusion`` exists from the 20260318 versions on and
#: ``use_cache`` from web_fetch_20260309 on.
WEB_SEARCH_TOOLS = frozenset({"web_search_20250305", "web_search_20260209", "web_search_20260318"})
WEB_FETCH_TOOLS = frozenset({"web_fetch_20250910", "web_fetch_20260209", "web_fetch_20260309", "web_fetch_20260318"})
_WEB_TOOL_FIELDS: dict[str, frozenset[str]] = {
    "web_search": frozenset(
        {
            "name",
            "type",
            "allowed_callers",
            "allowed_domains",
            "blocked_domains",
            "cache_control",
            "defer_loading",
            "max_uses",
            "strict",
            "user_location",
        }
    ),
    "web_fetch": frozenset(
        {
            "name",
            "type",
            "allowed_callers",
            "allowed_domains",
            "blocked_domains",
            "cache_control",
            "citations",
            "defer_loading",
            "max_content_tokens",
            "max_uses",
            "strict",
            "url_sources",
        }
    ),
}
ALLOWED_CALLERS = ("direct", "code_execution_20250825", "code_execution_20260120", "code_execution_20260521")
WEB_SEARCH_ERROR_CODES = frozenset(
    {
        "invalid_tool_input",
        "unavailable",
        "max_uses_exceeded",
        "too_many_requests",
        "query_too_long",
        "request_too_large",
    }
)
WEB_FETCH_ERROR_CODES = frozenset(
    {
        "invalid_tool_input",
        "url_too_long",
        "url_not_allowed",
        "url_not_in_prior_context",
        "url_not_accessible",
        "unsupported_content_type",
        "too_many_requests",
        "max_uses_exceeded",
        "unavailable",
        "content_too_large",
    }
)
MAX_FETCH_URL_CHARS = 250

#: Anthropic's pre-built skills and their versions (date-based; ``latest`` resolves to the last).
ANTHROPIC_SKILLS: dict[str, tuple[str, ...]] = {
    "xlsx": ("20251002", "20251013"),
    "pptx": ("20251002", "20251013"),
    "docx": ("20251002", "20251013"),
    "pdf": ("20251002", "20251013"),
}
MAX_SKILLS = 8
#: docs: build-with-claude/files — "The Files API is currently in beta. To use the Files API, you'll
#: need to include the beta feature header: anthropic-beta: files-api-2025-04-14"; a Messages call
#: that references Files API files through container_upload blocks needs it too.
FILES_API_BETA = "files-api-2025-04-14"
#: docs: agents-and-tools/tool-use/web-search-tool — the _20260209 and later web tools
#: "require code_execution_20260120 or later".
WEB_TOOLS_NEEDING_NEW_CODE_EXECUTION = frozenset(
    {"web_search_20260209", "web_search_20260318", "web_fetch_20260209", "web_fetch_20260309", "web_fetch_20260318"}
)
NEW_WEB_TOOLS_MIN_CODE_EXECUTION = "code_execution_20260120"
#: docs: build-with-claude/prompt-caching — "You can define up to 4 cache breakpoints"; more
#: is a 400 "A maximum of 4 blocks with cache_control may be provided. Found N."
MAX_CACHE_BREAKPOINTS = 4
#: The models ``GET /v1/models/{model_id}`` knows: id -> display name.
MODELS: dict[str, str] = {
    "claude-sonnet-5-5": "Claude Sonnet 5.5",
    "claude-opus-5": "Claude Opus 5",
    "claude-haiku-4-5": "Claude Haiku 4.5",
}
#: docs: build-with-claude/prompt-caching — "the system automatically checks for cache hits at
#: all previous content block boundaries (up to approximately 20 blocks before your explicit
#: breakpoint)": the breakpoint itself and the 19 boundaries before it, 20 checks.
CACHE_LOOKBACK_BLOCKS = 20

#: Thinking, per model: the ``thinking.type`` values it accepts, whether it thinks when ``thinking``
#: is omitted, and its default ``display``. docs: models/sonnet-5-5/migration-guide ("Thinking is on
#: by default": Sonnet 5.5 accepts "adaptive" and "between_tools", thinks when the field is unset,
#: default display "omitted"); models/sonnet-5/migration-guide (Sonnet 5: adaptive on by default,
#: "enabled" is a 400); build-with-claude/thinking-troubleshooting (Opus 4.7: adaptive only, off
#: unless asked; Sonnet/Haiku 4.5: extended thinking only). Other models accept every type.
THINKING_MODELS: dict[str, tuple[frozenset[str], bool, str]] = {
    "claude-sonnet-5-5": (frozenset({"adaptive", "between_tools"}), True, "omitted"),
    "claude-sonnet-5": (frozenset({"adaptive", "disabled"}), True, "omitted"),
    "claude-opus-4-7": (frozenset({"adaptive", "disabled"}), False, "summarized"),
    "claude-sonnet-4-5": (frozenset({"enabled", "disabled"}), False, "summarized"),
    "claude-haiku-4-5": (frozenset({"enabled", "disabled"}), False, "summarized"),
}
THINKING_TYPES = frozenset({"adaptive", "enabled", "disabled", "between_tools"})
#: ``output_config.effort`` values (anthropic 2.17 types/output_config_param.py).
EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")
#: Output tokens one thinking block costs; they count toward ``max_tokens`` (docs: thinking).
THINKING_TOKENS = 24
SUMMARISED_THINKING = "Planning the analysis: load the data, check it, then compute what was asked."

#: What the fake does where the real API's behaviour could not be confirmed from the installed
#: SDK, the documentation or public reports; each is the most plausible reading.
UNCONFIRMED: dict[str, str] = {
    "skills_beta_header": (
        "Skills need no anthropic-beta header: anthropic 2.17 has `container.skills` in the GA MessageCreateParams "
        "and a GA `client.skills`; the 2025 docs asked for skills-2025-10-02 (still accepted, ignored)."
    ),
    "container_refusal": (
        "A container id the API no longer has is refused as 404 not_found_error (unknown id) or 400 "
        "invalid_request_error (past its 30 days), with no error code: the docs name none and anthropic 2.17's "
        "ErrorDetails lists none (the bot recognises the refusal without one)."
    ),
    "prompt_too_long": (
        "A prompt over the context window is a 400 invalid_request_error 'prompt is too long: N tokens > M "
        "maximum', as widely reported; there is no error code for it in ErrorDetails."
    ),
    "container_lifetime": "A container stays restorable for 30 days after its last use (brief: 30 days).",
    "thinking_signature": (
        "Signatures are opaque; the fake's is an HMAC of the model and the thinking text, so any change to an "
        "echoed block, or replaying it to another model, is refused as the API refuses a modified block."
    ),
    "skills_python_only_tool": "Skills are refused with code_execution_20250522 (docs: they need 2025-08-25 or later).",
    "skill_errors": "Wording of unknown-skill / duplicate-skill / too-many-skills errors; they are 400s here.",
    "skill_version": "`container.skills[].version` in responses is the resolved version (SDK: 'the resolved version').",
    "container_skills_empty": "`container.skills` is [] when a request loads no skills.",
    "skills_per_request": "Only the skills named in this request are loaded (reusing a container does not keep them).",
    "web_max_uses": "max_uses counts the live uses of one request (a pause_turn continuation starts again).",
    "web_usage": "usage.server_tool_use is present when the request has a web tool; errors are not counted.",
    "web_fetch_prior_context": (
        "Fetchable URLs: those in user text / client tool results and in web search or fetch results (incl. "
        "URLs inside fetched text), filtered by url_sources user_input / server_tool_results 'none'."
    ),
    "web_domain_match": "A domain matches itself and its subdomains; an optional path must prefix the URL's path.",
    "auto_cache_slot": "A top-level cache_control takes one of the 4 breakpoint slots unless the last block has one.",
    "cache_nested": "cache_control inside a tool_result's content counts as a breakpoint at that tool_result.",
}

#: Tool types the installed SDK knows (``types/tool_union_param.py``); "custom" is a client tool.
KNOWN_TOOL_TYPES = frozenset(
    {
        "custom",
        "bash_20250124",
        "memory_20250818",
        "web_fetch_20250910",
        "web_fetch_20260209",
        "web_fetch_20260309",
        "web_fetch_20260318",
        "web_search_20250305",
        "web_search_20260209",
        "web_search_20260318",
        "browser_toolset_20260801",
        "computer_toolset_20260801",
        "text_editor_20250124",
        "text_editor_20250429",
        "text_editor_20250728",
        "tool_search_tool_bm25_20251119",
        "tool_search_tool_bm25",
        "tool_search_tool_regex_20251119",
        "tool_search_tool_regex",
        *CODE_EXECUTION_TOOLS,
    }
)

#: Input content block types (``types/content_block_param.py``), in the SDK's order.
KNOWN_BLOCK_TYPES = (
    "text",
    "image",
    "document",
    "search_result",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "tool_result",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
    "container_upload",
)
TOOL_RESULT_BLOCK_TYPES = frozenset(
    {"code_execution_tool_result", "bash_code_execution_tool_result", "text_editor_code_execution_tool_result"}
)
#: Blocks that answer a ``tool_use`` / ``server_tool_use`` and so need a ``tool_use_id``.
_ANSWER_BLOCK_TYPES = frozenset(
    {"tool_result", "web_search_tool_result", "web_fetch_tool_result", "tool_search_tool_result"}
    | TOOL_RESULT_BLOCK_TYPES
)
#: Input blocks that cannot carry ``cache_control`` (``types/thinking_block_param.py`` has none).
_UNCACHEABLE_BLOCK_TYPES = frozenset({"thinking", "redacted_thinking"})

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
DEFAULT_ERROR_MESSAGES: dict[str, str] = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit.",
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
    "timeout_error": "Request timeout",
}
FaultEndpoint = Literal["messages", "files.upload", "files.list", "files.download", "files.retrieve", "files.delete"]
FAULT_ENDPOINTS: frozenset[str] = frozenset(FaultEndpoint.__args__)  # type: ignore[attr-defined]

MAX_REQUEST_BYTES = 32 * 1024 * 1024  # Messages API request size limit
MAX_FILE_BYTES = 500 * 1024 * 1024  # Files API per-file limit
MAX_OUTPUT_TOKENS = 128_000
#: A checkpointed container stays restorable this long after it was last used.
CONTAINER_LIFETIME = timedelta(days=30)
#: The container ``expires_at`` a response reports is a short, rolling value (now + this).
CONTAINER_REPORTED_TTL = timedelta(minutes=5)
STREAM_CHUNK_CHARS = 200
_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """An id shaped like the real ones, e.g. ``file_011CNha8iCJcU1wXNR6q4V8w``."""
    return f"{prefix}_011C" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _now() -> datetime:
    return datetime.now(UTC)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def estimate_tokens(value: Any) -> int:
    """Deterministic token estimate: one token per four characters of canonical JSON (text as-is)."""
    text = value if isinstance(value, str) else _canonical(value)
    return math.ceil(len(text) / 4)


# --------------------------------------------------------------------------------------------
# State a test can inspect
# --------------------------------------------------------------------------------------------


@dataclass
class StoredFile:
    """A Files API file: uploaded by the client or generated by code in a container."""

    id: str
    filename: str
    mime_type: str
    data: bytes
    origin: Literal["upload", "generated"]
    created_at: datetime = field(default_factory=_now)
    expires_at: datetime | None = None
    deleted: bool = False
    #: For generated files: the container and the path it came from, relative to the working directory.
    container_id: str | None = None
    path: str | None = None
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.data).hexdigest()

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    @property
    def downloadable(self) -> bool:
        """Only files generated by a tool can be downloaded, as on the real API."""
        return self.origin == "generated"

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= _now()

    def metadata(self) -> dict[str, Any]:
        """The ``FileMetadata`` JSON."""
        return {
            "id": self.id,
            "type": "file",
            "filename": self.filename,
            "mime_type": self.mime_type,
            "size_bytes": self.size_bytes,
            "created_at": rfc3339(self.created_at),
            "downloadable": self.downloadable,
            "expires_at": rfc3339(self.expires_at) if self.expires_at else None,
        }


@dataclass(frozen=True)
class UploadRecord:
    """One successful ``POST /v1/files`` (so tests can assert bytes arrived exactly once)."""

    file_id: str
    filename: str
    mime_type: str
    size_bytes: int
    sha256: str


@dataclass
class RecordedRequest:
    """One HTTP request as the fake received it (the API key header is left out)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    request_id: str
    #: Parsed JSON for messages; for uploads ``{"file": {filename, content_type, size_bytes,
    #: sha256}, "expires_in_seconds": ...}``; None for bodiless requests.
    body: Any = None
    status: int | None = None
    #: When it arrived and when its answer was sent (``time.monotonic``; a stream's at its end).
    arrived: float = field(default_factory=time.monotonic)
    answered: float | None = None
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def betas(self) -> list[str]:
        return [b.strip() for b in self.headers.get("anthropic-beta", "").split(",") if b.strip()]


@dataclass
class ContainerState:
    """A code-execution container: a host directory standing for the container's ``/``.

    docs: the SDK's ContainerUploadBlockParam — "Files uploaded via this block will be available
    in the container's input directory" (no path, no environment variable); the code-execution
    docs — files Claude creates come back only as ``file_id`` s in the tool results
    (``code_execution_output`` / ``bash_code_execution_output``).  So uploads go to ``inputs/``,
    which is NOT the working directory code runs in (``work/``): code must find them by name.
    A generated file is one created or changed under the working directory during an execution
    (``outputs/churn.png`` there comes back; ``/tmp``, i.e. ``tmp/``, is scratch space).
    """

    id: str
    root: Path
    created_at: datetime = field(default_factory=_now)
    last_used: datetime = field(default_factory=_now)
    expired: bool = False
    #: Files API ids already copied into the input directory -> their path under ``root``.
    uploaded: dict[str, str] = field(default_factory=dict)
    #: Skills loaded by the latest request that used the container (``{"type", "skill_id", "version"}``).
    skills: list[dict[str, str]] = field(default_factory=list)

    @property
    def inputs(self) -> Path:
        """The input directory, where ``container_upload`` files land."""
        return self.root / "inputs"

    @property
    def workdir(self) -> Path:
        """The working directory code runs in; files created under it are returned."""
        return self.root / "work"

    @property
    def scratch(self) -> Path:
        """The container's ``/tmp``."""
        return self.root / "tmp"

    def host_path(self, path: str) -> Path:
        """A path as code in the container names it (absolute, or relative to the working directory)."""
        target = (self.root / path.lstrip("/")) if path.startswith("/") else (self.workdir / path)
        if not target.resolve().is_relative_to(self.root.resolve()):
            raise ScriptError(f"the path {path!r} is outside the container")
        return target

    @property
    def expires_at(self) -> datetime:
        """What responses report: a short rolling value, far shorter than the 30 days the
        container stays restorable (brief: "expires_at in a response is a short rolling value;
        a checkpointed container is restorable for 30 days")."""
        return self.last_used + CONTAINER_REPORTED_TTL

    def is_usable(self, now: datetime) -> bool:
        return not self.expired and now < self.last_used + CONTAINER_LIFETIME

    def response_json(self) -> dict[str, Any]:
        """The response's ``container``: id, expiry and the skills loaded for the request."""
        return {"id": self.id, "expires_at": rfc3339(self.expires_at), "skills": [dict(s) for s in self.skills]}


@dataclass
class _Fault:
    status: int
    error_type: str
    message: str
    retry_after: float | None
    should_retry: bool | None
    times: int
    error_code: str | None = None


@dataclass
class _StreamFault:
    after_events: int
    kind: Literal["break", "error"]
    error_type: str = "overloaded_error"
    message: str = "Overloaded"


_RECORD = web.RequestKey("record", RecordedRequest)
#: Endpoints without a body: the middleware checks their query against the SDK's types (handlers check bodies).
_BODILESS_ROUTES = frozenset({"list", "retrieve", "download", "delete", "model"})
_REQUEST_ID = web.RequestKey("request_id", str)


class ApiError(Exception):
    """Raised inside handlers; rendered as the real error JSON."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        error_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or ERROR_TYPES.get(status, "api_error")
        self.headers = dict(headers or {})
        self.error_code = error_code


def _invalid(message: str, **kwargs: Any) -> ApiError:
    return ApiError(400, message, **kwargs)


class ScriptError(RuntimeError):
    """The scripted model did something impossible (a bug in the test's script)."""


# --------------------------------------------------------------------------------------------
# Request parsing and validation
# --------------------------------------------------------------------------------------------


@dataclass
class _Upload:
    message_index: int
    block_index: int
    file_id: str


@dataclass
class _MessagesRequest:
    body: dict[str, Any]
    model: str
    max_tokens: int
    messages: list[dict[str, Any]]  # normalised: content is always a list of blocks
    system: str
    tools: list[dict[str, Any]]
    tool_type: str | None
    stream: bool
    container_ref: str | None
    turn_start: int
    uploads: list[_Upload]  # every container_upload in the request
    betas: set[str]
    #: ``web_search`` / ``web_fetch`` -> the tool definition in the request.
    web_tools: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``container.skills`` as sent (validated for shape; resolved by the server), or None.
    skills: list[dict[str, Any]] | None = None
    #: Whether the model thinks in this request, and how it shows it ("summarized" / "omitted").
    thinking: bool = False
    thinking_display: str = "summarized"

    @property
    def newest_uploads(self) -> list[_Upload]:
        return [u for u in self.uploads if u.message_index >= self.turn_start]

    def echoed_blocks(self) -> list[dict[str, Any]]:
        """Assistant content after the newest user turn (what a pause_turn client echoes back)."""
        return [
            block
            for message in self.messages[self.turn_start :]
            if message["role"] == "assistant"
            for block in message["content"]
        ]


def _type_name(value: Any) -> str:
    return {str: "string", int: "integer", bool: "boolean", list: "list", dict: "object"}.get(
        type(value), type(value).__name__
    )


def _expected_tags(tags: Sequence[str]) -> str:
    return ", ".join(f"'{t}'" for t in tags)


def _parse_messages_request(body: Any, betas: set[str]) -> _MessagesRequest:
    """Validate a Messages request the way the real API does (messages modelled on its wording)."""
    if not isinstance(body, dict):
        raise _invalid("Request body must be a JSON object")
    model = body.get("model")
    if model is None:
        raise _invalid("model: Field required")
    if not isinstance(model, str) or not model:
        raise _invalid("model: Input should be a valid string")
    if "max_tokens" not in body:
        raise _invalid("max_tokens: Field required")
    max_tokens = body["max_tokens"]
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise _invalid("max_tokens: Input should be a valid integer")
    if max_tokens < 0:
        raise _invalid("max_tokens: Input should be greater than or equal to 0")
    if max_tokens > MAX_OUTPUT_TOKENS:
        raise _invalid(
            f"max_tokens: {max_tokens} > {MAX_OUTPUT_TOKENS}, which is the maximum allowed number of "
            f"output tokens for {model}"
        )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _invalid("stream: Input should be a valid boolean")

    system = _parse_system(body.get("system"))
    tools, tool_type, web_tools = _parse_tools(body.get("tools"), betas)
    messages, extra_system = _parse_message_list(body.get("messages"))
    system = "\n\n".join(s for s in (system, extra_system) if s)
    _check_cache_controls(body, messages)
    container_ref, skills = _parse_container(body.get("container"))
    if skills and tool_type is None:
        raise _invalid("Skills beta requires the code_execution tool to be included in the request.")
    if skills and tool_type == PYTHON_ONLY_TOOL:
        raise _invalid(
            f"container.skills: Skills need a code execution tool that runs bash (code_execution_20250825 or "
            f"later), but {PYTHON_ONLY_TOOL} runs Python only"
        )
    uploads = [
        _Upload(i, j, block["file_id"])
        for i, message in enumerate(messages)
        for j, block in enumerate(message["content"])
        if block["type"] == "container_upload"
    ]
    if uploads and tool_type is None:
        u = uploads[0]
        raise _invalid(
            f"messages.{messages[u.message_index]['index']}.content.{u.block_index}: container_upload blocks "
            "can only be used with the code execution tool"
        )
    if uploads and FILES_API_BETA not in betas:
        u = uploads[0]
        raise _invalid(
            f"messages.{messages[u.message_index]['index']}.content.{u.block_index}: container_upload blocks "
            f"reference Files API files, which needs the 'anthropic-beta: {FILES_API_BETA}' header"
        )
    for web_tool in web_tools.values():
        if web_tool["type"] in WEB_TOOLS_NEEDING_NEW_CODE_EXECUTION and (
            tool_type is not None and tool_type < NEW_WEB_TOOLS_MIN_CODE_EXECUTION
        ):
            raise _invalid(
                f"tools: {web_tool['type']} requires {NEW_WEB_TOOLS_MIN_CODE_EXECUTION} or later, but the request "
                f"uses {tool_type}"
            )
    thinking, display = _parse_thinking(body, model, max_tokens)
    return _MessagesRequest(
        body=body,
        model=model,
        max_tokens=max_tokens,
        messages=messages,
        system=system,
        tools=tools,
        tool_type=tool_type,
        stream=stream,
        container_ref=container_ref,
        turn_start=_newest_user_turn(messages),
        uploads=uploads,
        betas=betas,
        web_tools=web_tools,
        skills=skills,
        thinking=thinking,
        thinking_display=display,
    )


def _parse_thinking(body: Mapping[str, Any], model: str, max_tokens: int) -> tuple[bool, str]:
    """``thinking`` and ``output_config.effort`` checked against the model; (thinks, display)."""
    accepted, on_by_default, default_display = THINKING_MODELS.get(model, (THINKING_TYPES, False, "summarized"))
    config = body.get("thinking")
    effort = None
    output_config = body.get("output_config")
    if output_config is not None:
        if not isinstance(output_config, dict):
            raise _invalid("output_config: Input should be an object")
        effort = output_config.get("effort")
        if effort is not None and effort not in EFFORT_LEVELS:
            raise _invalid(f"output_config.effort: Input should be {_expected_tags(EFFORT_LEVELS)}")
    if config is None:
        return on_by_default, default_display
    if not isinstance(config, dict) or config.get("type") not in THINKING_TYPES:
        raise _invalid(f"thinking.type: Input should be {_expected_tags(sorted(THINKING_TYPES))}")
    kind = str(config["type"])
    if kind not in accepted:
        raise _invalid(
            f"thinking.type: '{kind}' is not supported on {model}; use one of {_expected_tags(sorted(accepted))}"
        )
    display = config.get("display") or default_display
    if display not in ("summarized", "omitted"):
        raise _invalid("thinking.display: Input should be 'summarized' or 'omitted'")
    if kind == "enabled":
        budget = config.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool):
            raise _invalid("thinking.enabled.budget_tokens: Field required")
        if budget < 1024:
            raise _invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if budget >= max_tokens:
            raise _invalid("`max_tokens` must be greater than `thinking.budget_tokens`")
    if kind == "between_tools" and effort in ("xhigh", "max"):
        raise _invalid(f"thinking.type 'between_tools' is not available at effort '{effort}'; use 'adaptive'")
    return kind in ("adaptive", "enabled"), str(display)


def _parse_system(system: Any) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise _invalid("system: Input should be a valid string or a list of text blocks")
    texts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise _invalid(f"system.{i}: Input should be a text block")
        texts.append(block["text"])
    return "\n".join(texts)


def _parse_tools(tools: Any, betas: set[str]) -> tuple[list[dict[str, Any]], str | None, dict[str, dict[str, Any]]]:
    """Validate ``tools``: the list, the code-execution tool type (or None), the web tools by name."""
    if tools is None:
        return [], None, {}
    if not isinstance(tools, list):
        raise _invalid(f"tools: Input should be a valid list, got {_type_name(tools)}")
    names: set[str] = set()
    code_tools: list[str] = []
    web_tools: dict[str, dict[str, Any]] = {}
    allowed = sorted(t for t in KNOWN_TOOL_TYPES if t not in CODE_EXECUTION_TOOLS or _beta_ok(t, betas))
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _invalid(f"tools.{i}: Input should be an object")
        tool_type = tool.get("type", "custom")
        if tool_type is None:
            tool_type = "custom"
        if tool_type not in allowed:
            raise _invalid(
                f"tools.{i}: Input tag '{tool_type}' found using 'type' does not match any of the expected "
                f"tags: {_expected_tags(allowed)}"
            )
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _invalid(f"tools.{i}.name: Field required")
        if tool_type == "custom" and not isinstance(tool.get("input_schema"), dict):
            raise _invalid(f"tools.{i}.custom.input_schema: Field required")
        if tool_type in CODE_EXECUTION_TOOLS:
            if name != "code_execution":
                raise _invalid(f"tools.{i}.{tool_type}.name: Input should be 'code_execution'")
            if code_tools:
                raise _invalid(f"tools.{i}: at most one code execution tool may be specified")
            code_tools.append(tool_type)
        if tool_type in WEB_SEARCH_TOOLS or tool_type in WEB_FETCH_TOOLS:
            _check_web_tool(tool, f"tools.{i}.{tool_type}")
            web_tools[str(tool["name"])] = tool
        if name in names:
            raise _invalid(f"tools: Tool names must be unique. Duplicate name: {name!r}")
        names.add(name)
    return tools, (code_tools[0] if code_tools else None), web_tools


def _check_web_tool(tool: Mapping[str, Any], where: str) -> None:
    """Field checks of a web search / fetch tool definition, worded like the real API's."""
    kind = "web_search" if str(tool["type"]).startswith("web_search_") else "web_fetch"
    if tool["name"] != kind:
        raise _invalid(f"{where}.name: Input should be '{kind}'")
    known = set(_WEB_TOOL_FIELDS[kind])
    if str(tool["type"]) in ("web_search_20260318", "web_fetch_20260318"):
        known.add("response_inclusion")
    if str(tool["type"]) in ("web_fetch_20260309", "web_fetch_20260318"):
        known.add("use_cache")
    for key in tool:
        if key not in known:
            raise _invalid(f"{where}.{key}: Extra inputs are not permitted")
    for key in ("max_uses", "max_content_tokens"):
        value = tool.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise _invalid(f"{where}.{key}: Input should be a valid integer")
        if value < 1:
            raise _invalid(f"{where}.{key}: Input should be greater than 0")
    for key in ("allowed_domains", "blocked_domains"):
        domains = tool.get(key)
        if domains is None:
            continue
        if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
            raise _invalid(f"{where}.{key}: Input should be a valid list of domain strings")
        if not domains:
            raise _invalid(f"{where}.{key}: Empty list of domains is ambiguous. Provide at least one domain or null.")
        for k, domain in enumerate(domains):
            if "://" in domain:
                raise _invalid(f"{where}.{key}.{k}: Domains must not include a scheme (http:// or https://)")
    if tool.get("allowed_domains") is not None and tool.get("blocked_domains") is not None:
        raise _invalid(f"{where}: Cannot specify both allowed_domains and blocked_domains in the same request")
    callers = tool.get("allowed_callers")
    if callers is not None and (not isinstance(callers, list) or any(c not in ALLOWED_CALLERS for c in callers)):
        raise _invalid(f"{where}.allowed_callers: Input should be a list of {_expected_tags(ALLOWED_CALLERS)}")
    inclusion = tool.get("response_inclusion")
    if inclusion is not None and inclusion not in ("full", "excluded"):
        raise _invalid(f"{where}.response_inclusion: Input should be 'full' or 'excluded'")
    location = tool.get("user_location")
    if location is not None and (not isinstance(location, dict) or location.get("type") != "approximate"):
        raise _invalid(f"{where}.user_location.type: Input should be 'approximate'")
    citations = tool.get("citations")
    if citations is not None and (
        not isinstance(citations, dict) or not isinstance(citations.get("enabled", False), bool)
    ):
        raise _invalid(f"{where}.citations.enabled: Input should be a valid boolean")
    for key in ("strict", "defer_loading", "use_cache"):
        if key in tool and not isinstance(tool[key], bool):
            raise _invalid(f"{where}.{key}: Input should be a valid boolean")


def _beta_ok(tool_type: str, betas: set[str]) -> bool:
    needed = CODE_EXECUTION_TOOLS.get(tool_type)
    return needed is None or needed in betas


def _parse_container(container: Any) -> tuple[str | None, list[dict[str, Any]] | None]:
    """``container``: an id string, or ``{"id": ..., "skills": [...]}`` (``ContainerParams``)."""
    if container is None:
        return None, None
    if isinstance(container, str):
        return container, None
    if not isinstance(container, dict):
        raise _invalid("container: Input should be a valid string or an object with an 'id'")
    for key in container:
        if key not in ("id", "skills"):
            raise _invalid(f"container.{key}: Extra inputs are not permitted")
    ref = container.get("id")
    if ref is not None and not isinstance(ref, str):
        raise _invalid("container.id: Input should be a valid string")
    skills = container.get("skills")
    if skills is None:
        return ref, None
    if not isinstance(skills, list):
        raise _invalid(f"container.skills: Input should be a valid list, got {_type_name(skills)}")
    if len(skills) > MAX_SKILLS:
        raise _invalid(
            f"container.skills: List should have at most {MAX_SKILLS} items after validation, not {len(skills)}"
        )
    seen: set[str] = set()
    for k, skill in enumerate(skills):
        where = f"container.skills.{k}"
        if not isinstance(skill, dict):
            raise _invalid(f"{where}: Input should be an object")
        for key in skill:
            if key not in ("type", "skill_id", "version"):
                raise _invalid(f"{where}.{key}: Extra inputs are not permitted")
        if "type" not in skill:
            raise _invalid(f"{where}.type: Field required")
        if skill["type"] not in ("anthropic", "custom"):
            raise _invalid(f"{where}.type: Input should be 'anthropic' or 'custom'")
        if not isinstance(skill.get("skill_id"), str) or not skill["skill_id"]:
            raise _invalid(f"{where}.skill_id: Field required")
        if "version" in skill and not isinstance(skill["version"], str):
            raise _invalid(f"{where}.version: Input should be a valid string")
        if skill["skill_id"] in seen:
            raise _invalid(f"container.skills: Duplicate skill_id '{skill['skill_id']}'")
        seen.add(skill["skill_id"])
    return ref, skills


def _parse_message_list(messages: Any) -> tuple[list[dict[str, Any]], str]:
    if messages is None:
        raise _invalid("messages: Field required")
    if not isinstance(messages, list):
        raise _invalid(f"messages: Input should be a valid list, got {_type_name(messages)}")
    normalised: list[dict[str, Any]] = []
    system_parts: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid(f"messages.{i}: Input should be an object")
        role = message.get("role")
        if role not in ("user", "assistant", "system"):
            raise _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise _invalid(f"messages.{i}.content: Field required")
        content = message["content"]
        if isinstance(content, str):
            blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
        elif isinstance(content, list):
            blocks = [_check_block(block, f"messages.{i}.content.{j}") for j, block in enumerate(content)]
        else:
            raise _invalid(f"messages.{i}.content: Input should be a valid string or list")
        if role == "system":
            system_parts.extend(b.get("text", "") for b in blocks)
            continue
        normalised.append({"role": role, "content": blocks, "index": i})
    if not normalised:
        raise _invalid("messages: at least one message is required")
    if normalised[0]["role"] != "user":
        raise _invalid('messages: first message must use the "user" role')
    last = len(normalised) - 1
    for k, message in enumerate(normalised):
        if not message["content"] and not (k == last and message["role"] == "assistant"):
            raise _invalid(
                f"messages.{message['index']}: all messages must have non-empty content except for the "
                "optional final assistant message"
            )
    _check_tool_use_pairs(normalised)
    return normalised, "\n".join(system_parts)


def _check_block(block: Any, where: str) -> dict[str, Any]:
    if not isinstance(block, dict):
        raise _invalid(f"{where}: Input should be an object")
    block_type = block.get("type")
    if block_type not in KNOWN_BLOCK_TYPES:
        raise _invalid(
            f"{where}: Input tag '{block_type}' found using 'type' does not match any of the expected tags: "
            f"{_expected_tags(KNOWN_BLOCK_TYPES)}"
        )
    if block_type == "text":
        if not isinstance(block.get("text"), str):
            raise _invalid(f"{where}.text: Field required")
        if not block["text"]:
            raise _invalid("messages: text content blocks must be non-empty")
    if block_type == "container_upload" and not isinstance(block.get("file_id"), str):
        raise _invalid(f"{where}.container_upload.file_id: Field required")
    if block_type in ("tool_use", "server_tool_use") and not isinstance(block.get("id"), str):
        raise _invalid(f"{where}.{block_type}.id: Field required")
    if block_type in _ANSWER_BLOCK_TYPES and not isinstance(block.get("tool_use_id"), str):
        raise _invalid(f"{where}.{block_type}.tool_use_id: Field required")
    return block


def _check_tool_use_pairs(messages: list[dict[str, Any]]) -> None:
    """Client ``tool_use`` blocks need ``tool_result`` blocks in the very next message."""
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        ids = [b["id"] for b in message["content"] if b["type"] == "tool_use"]
        if not ids or k == len(messages) - 1:
            continue
        answered = {b.get("tool_use_id") for b in messages[k + 1]["content"] if b["type"] == "tool_result"}
        missing = [i for i in ids if i not in answered]
        if missing:
            raise _invalid(
                f"messages.{messages[k + 1]['index']}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                "`tool_result` block in the next message."
            )


def _newest_user_turn(messages: list[dict[str, Any]]) -> int:
    """Index of the message that opened the newest user turn.

    A user message holding only ``tool_result`` blocks continues a turn rather than opening
    one; consecutive user messages are one turn (the API merges them).
    """
    start = 0
    for k in range(len(messages) - 1, -1, -1):
        message = messages[k]
        if message["role"] == "user" and any(b["type"] != "tool_result" for b in message["content"]):
            start = k
            break
    while start > 0 and messages[start - 1]["role"] == "user":
        start -= 1
    return start


def _block_text(blocks: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")


# --------------------------------------------------------------------------------------------
# Prompt caching and usage
# --------------------------------------------------------------------------------------------


@dataclass
class _CacheLayout:
    """The request as cacheable units (tools, then system, then message blocks) and breakpoints."""

    units: list[Any]
    #: Unit index of each breakpoint, ascending and unique.
    breakpoints: list[int]
    #: The TTL ("5m" / "1h") of each breakpoint, by unit index.
    ttls: dict[int, str]


def _strip_cache_control(block: Any) -> Any:
    """A block without its ``cache_control`` (also inside a tool_result's content), for hashing."""
    if not isinstance(block, Mapping):
        return block
    out = {k: v for k, v in block.items() if k != "cache_control"}
    if isinstance(out.get("content"), list):
        out["content"] = [_strip_cache_control(b) for b in out["content"]]
    return out


def _nested_markers(block: Mapping[str, Any]) -> list[Any]:
    """``cache_control`` markers of a block and of the blocks in its ``content`` list."""
    markers = [block["cache_control"]] if block.get("cache_control") is not None else []
    content = block.get("content")
    if isinstance(content, list):
        markers += [
            b["cache_control"] for b in content if isinstance(b, Mapping) and b.get("cache_control") is not None
        ]
    return markers


def _cache_layout(body: Mapping[str, Any], messages: list[dict[str, Any]]) -> _CacheLayout:
    units: list[Any] = []
    ttls: dict[int, str] = {}

    def add(unit: Any, markers: Sequence[Any]) -> None:
        units.append(unit)
        for marker in markers:
            if isinstance(marker, Mapping):
                ttls[len(units) - 1] = str(marker.get("ttl") or "5m")

    for tool in body.get("tools") or []:
        add(["tool", _strip_cache_control(tool)], _nested_markers(tool))
    system = body.get("system")
    if isinstance(system, str) and system:
        add(["system", {"type": "text", "text": system}], [])
    elif isinstance(system, list):
        for block in system:
            add(["system", _strip_cache_control(block)], _nested_markers(block))
    for message in messages:
        for block in message["content"]:
            add([message["role"], _strip_cache_control(block)], _nested_markers(block))
    top = body.get("cache_control")
    if isinstance(top, Mapping) and units and (len(units) - 1) not in ttls:
        ttls[len(units) - 1] = str(top.get("ttl") or "5m")
    return _CacheLayout(units, sorted(ttls), ttls)


def _check_cache_controls(body: Mapping[str, Any], messages: list[dict[str, Any]]) -> None:
    """``cache_control`` shape, where it may appear, and the limit of four breakpoints."""
    found = 0

    def check(marker: Any, where: str) -> None:
        nonlocal found
        if marker is None:
            return
        if not isinstance(marker, Mapping) or marker.get("type") != "ephemeral":
            raise _invalid(f"{where}.cache_control.type: Input should be 'ephemeral'")
        if marker.get("ttl") is not None and marker.get("ttl") not in ("5m", "1h"):
            raise _invalid(f"{where}.cache_control.ttl: Input should be '5m' or '1h'")
        found += 1

    for i, tool in enumerate(body.get("tools") or []):
        if isinstance(tool, Mapping):
            check(tool.get("cache_control"), f"tools.{i}")
    system = body.get("system")
    if isinstance(system, list):
        for i, block in enumerate(system):
            check(block.get("cache_control"), f"system.{i}")
    last_marked = False
    for message in messages:
        for j, block in enumerate(message["content"]):
            where = f"messages.{message['index']}.content.{j}"
            if block["type"] in _UNCACHEABLE_BLOCK_TYPES and "cache_control" in block:
                raise _invalid(f"{where}.{block['type']}.cache_control: Extra inputs are not permitted")
            check(block.get("cache_control"), where)
            content = block.get("content")
            if isinstance(content, list):
                for k, inner in enumerate(content):
                    if isinstance(inner, Mapping):
                        check(inner.get("cache_control"), f"{where}.content.{k}")
            last_marked = block.get("cache_control") is not None
    top = body.get("cache_control")
    if top is not None:
        before = found
        check(top, "cache_control")
        if last_marked:  # the last block already has a breakpoint: automatic caching adds none
            found = before
    if found > MAX_CACHE_BREAKPOINTS:
        raise _invalid(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {found}."
        )


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class FakeAnthropic:
    """The fake API server; use as ``async with FakeAnthropic(...) as api``."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        script: Script | None = None,
        code_timeout: float = 60.0,
        min_cacheable_tokens: int = 0,
        max_output_file_bytes: int = 100 * 1024 * 1024,
        enforce_max_tokens: bool = True,
        host: str = "127.0.0.1",
        api_versions: frozenset[str] = API_VERSIONS,
    ) -> None:
        self.api_key = api_key
        self.api_versions = api_versions
        #: The scripted model; replace at any time (default: :func:`tests.fakes.scripts.analyst`).
        self.script: Script = script or analyst
        #: Seconds one code run may take before it yields ``execution_time_exceeded``.
        self.code_timeout = code_timeout
        #: Prefixes shorter than this are not cached (the real minimum is model-specific).
        self.min_cacheable_tokens = min_cacheable_tokens
        self.max_output_file_bytes = max_output_file_bytes
        #: Cut text that would exceed ``max_tokens`` and stop with ``stop_reason="max_tokens"``.
        self.enforce_max_tokens = enforce_max_tokens
        self.host = host

        #: Custom skills the workspace has: skill_id -> its versions, oldest first (epoch strings).
        self.custom_skills: dict[str, tuple[str, ...]] = {}
        #: Models this key may use (``GET /v1/models/{model_id}``): id -> display name.
        self.models: dict[str, str] = dict(MODELS)

        self.requests: list[RecordedRequest] = []
        self.files: dict[str, StoredFile] = {}
        self.uploads: list[UploadRecord] = []
        self.containers: dict[str, ContainerState] = {}
        #: The final Message JSON of every completed messages request (streamed or not).
        self.responses: list[dict[str, Any]] = []
        self.closed_by_client: list[str] = []  # ids of messages whose stream the client closed mid-way
        self.client_closed = asyncio.Event()  # set when a client closes a stream mid-way
        #: Exceptions raised by scripts (also reported to the client as 500 api_error).
        self.script_errors: list[BaseException] = []
        #: Requests and responses the SDK's own types reject (see tests/fakes/anthropic_contract.py).
        self.violations: list[contract.Violation] = []

        #: The organisation's rate limits: reported on every Messages response, enforced with 429s
        #: (generous unless :meth:`rate_limit` sets a budget; tests/fakes/ratelimits.py).
        self.rate_window = RateWindow(RateLimits())

        #: Added to the wall clock for container lifetimes (see :meth:`advance_clock`).
        self.clock_offset = timedelta(0)
        self._thinking_key = secrets.token_bytes(32)

        self._faults: dict[str, deque[_Fault]] = {name: deque() for name in FAULT_ENDPOINTS}
        self._stream_faults: deque[_StreamFault] = deque()
        self._download_breaks: deque[int] = deque()
        self._cache_seen: set[str] = set()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> FakeAnthropic:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen on ``host``:0 in the running event loop."""
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-anthropic-", ignore_cleanup_errors=True)
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_FILE_BYTES + (1 << 20))
        app.router.add_post("/v1/files", self._upload_file)
        app.router.add_get("/v1/files", self._list_files)
        app.router.add_get("/v1/files/{file_id}", self._retrieve_file)
        app.router.add_get("/v1/files/{file_id}/content", self._download_file)
        app.router.add_delete("/v1/files/{file_id}", self._delete_file)
        app.router.add_post("/v1/messages", self._create_message)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/v1/models/{model_id}", self._retrieve_model)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def base_url(self) -> str:
        """What goes into ``ANTHROPIC_BASE_URL``."""
        if self._port is None:
            raise RuntimeError("FakeAnthropic is not started")
        return f"http://{self.host}:{self._port}"

    # -- test controls -------------------------------------------------------------------------

    def fail_next(
        self,
        endpoint: FaultEndpoint,
        *,
        status: int,
        error_type: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
        times: int = 1,
        error_code: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls to ``endpoint`` with an error (checked after auth).

        ``error_code`` goes into ``error.details.error_code`` (the SDK's ``APIStatusError.error_code``).

        ``retry_after`` (seconds) sets ``retry-after`` and ``retry-after-ms``, which the SDK
        honours between retries; ``should_retry`` sets ``x-should-retry``.
        """
        if endpoint not in FAULT_ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {sorted(FAULT_ENDPOINTS)}")
        kind = error_type or ERROR_TYPES.get(status, "api_error")
        self._faults[endpoint].append(
            _Fault(
                status,
                kind,
                message or DEFAULT_ERROR_MESSAGES.get(kind, "Error"),
                retry_after,
                should_retry,
                times,
                error_code,
            )
        )

    def rate_limit(
        self,
        *,
        requests: int = 50_000,
        input_tokens: int = 100_000_000,
        output_tokens: int = 20_000_000,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Give the organisation this budget per window (a minute by default): once a limit is used up,
        Messages calls are answered 429 ``rate_limit_error`` with ``retry-after`` until the window refills."""
        self.rate_window = RateWindow(RateLimits(requests, input_tokens, output_tokens, window_s), clock)

    def retried_too_soon(self) -> list[tuple[RecordedRequest, RecordedRequest]]:
        """(refusal, retry) pairs: a Messages request answered 429/529 with ``retry-after``, and the same
        request (the same body) sent again before that many seconds had passed since the answer."""
        early = []
        requests = self.message_requests
        for index, refused in enumerate(requests):
            wait = refused.response_headers.get("retry-after")
            if refused.status not in (429, 529) or wait is None or refused.answered is None:
                continue
            again = next((r for r in requests[index + 1 :] if r.body == refused.body), None)
            if again is not None and again.arrived < refused.answered + float(wait):
                early.append((refused, again))
        return early

    def break_stream_next(self, after_events: int = 3) -> None:
        """Close the connection of the next streamed answer abruptly after ``after_events`` SSE events."""
        self._stream_faults.append(_StreamFault(after_events, "break"))

    def error_stream_next(
        self, after_events: int = 3, *, error_type: str = "overloaded_error", message: str = "Overloaded"
    ) -> None:
        """Send an ``error`` SSE event (and end the stream) after ``after_events`` events."""
        self._stream_faults.append(_StreamFault(after_events, "error", error_type, message))

    def break_download_next(self, after_bytes: int = 1024) -> None:
        """Close the connection of the next file download after ``after_bytes`` of its body
        (its headers announce the whole length, so the client sees a truncated body)."""
        self._download_breaks.append(after_bytes)

    def now(self) -> datetime:
        """The fake's clock: the wall clock plus :attr:`clock_offset`."""
        return _now() + self.clock_offset

    def advance_clock(self, delta: timedelta) -> None:
        """Let ``delta`` pass for containers (e.g. 31 days, past their restorable lifetime)."""
        self.clock_offset += delta

    def expire_container(self, container_id: str) -> None:
        """Expire a container now: its files are gone and reusing its id is a 400 invalid_request_error."""
        container = self.containers[container_id]
        container.expired = True
        shutil.rmtree(container.root, ignore_errors=True)

    def expire_file(self, file_id: str) -> None:
        """Make a file's ``expires_at`` pass."""
        self.files[file_id].expires_at = _now() - timedelta(seconds=1)

    def add_file(self, filename: str, data: bytes, *, mime_type: str | None = None) -> StoredFile:
        """Register an uploaded file directly (no HTTP request, not counted in :attr:`uploads`)."""
        stored = StoredFile(new_id("file"), filename, mime_type or _guess_mime(filename), bytes(data), "upload")
        self.files[stored.id] = stored
        return stored

    # -- convenience views ---------------------------------------------------------------------

    @property
    def message_requests(self) -> list[RecordedRequest]:
        """Recorded ``POST /v1/messages`` requests (including failed ones and SDK retries)."""
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/messages"]

    @property
    def generated_files(self) -> list[StoredFile]:
        return [f for f in self.files.values() if f.origin == "generated"]

    def uploads_of(self, data: bytes) -> list[UploadRecord]:
        """Upload calls that carried exactly these bytes."""
        digest = hashlib.sha256(data).hexdigest()
        return [u for u in self.uploads if u.sha256 == digest]

    # -- plumbing ------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        request_id = new_id("req")
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={
                k.lower(): v for k, v in request.headers.items() if k.lower() not in ("x-api-key", "authorization")
            },
            request_id=request_id,
        )
        self.requests.append(record)
        request[_RECORD] = record
        request[_REQUEST_ID] = request_id
        try:
            self._check_auth(request)
            if contract.route(request.method, request.path) in _BODILESS_ROUTES:
                self._conform(request, contract.request_problems(request.method, request.path, query=_query(request)))
            response = await handler(request)
        except ApiError as exc:
            response = self._error_response(exc, request_id)
        except web.HTTPException as exc:
            kind = "not_found_error" if exc.status == 404 else ERROR_TYPES.get(exc.status, "invalid_request_error")
            response = self._error_response(ApiError(exc.status, exc.reason, error_type=kind), request_id)
        if not response.prepared:
            response.headers["request-id"] = request_id
        record.status = response.status
        record.answered = time.monotonic()
        record.response_headers = {k.lower(): v for k, v in response.headers.items()}
        if isinstance(response, web.Response) and response.content_type == "application/json":
            answer = json.loads(response.body) if isinstance(response.body, bytes) else None
            self._conform_response(
                request,
                contract.response_problems(request.method, request.path, response.status, answer, betas=record.betas),
            )
        return response

    def _conform(self, request: web.Request, problems: list[str]) -> None:
        """A request the SDK's types reject is a violation, answered 400 as the real API does."""
        self._record_request_violation(request, problems)
        if problems:
            raise _invalid(problems[0])

    def _record_request_violation(self, request: web.Request, problems: list[str]) -> None:
        if problems:
            self._record_violation(contract.Violation("request", f"{request.method} {request.path}", tuple(problems)))

    def _conform_response(self, request: web.Request, problems: list[str], what: str = "") -> None:
        if problems:
            endpoint = f"{request.method} {request.path}" + (f" ({what})" if what else "")
            self._record_violation(contract.Violation("response", endpoint, tuple(problems)))

    def _conform_event(self, request: web.Request, event: str, data: Mapping[str, Any]) -> None:
        betas = request[_RECORD].betas
        self._conform_response(request, contract.stream_event_problems(event, data, betas=betas), f"{event} event")

    def _record_violation(self, violation: contract.Violation) -> None:
        self.violations.append(violation)
        contract.RECORDED.append(violation)

    def _check_auth(self, request: web.Request) -> None:
        key = request.headers.get("x-api-key")
        if key is None and request.headers.get("authorization", "").startswith("Bearer "):
            key = request.headers["authorization"][len("Bearer ") :]
        if not key:
            raise ApiError(401, "x-api-key header is required")
        if key != self.api_key:
            raise ApiError(401, "invalid x-api-key")
        version = request.headers.get("anthropic-version")
        if not version:
            raise _invalid("anthropic-version: header is required")
        if version not in self.api_versions:
            raise _invalid(f"anthropic-version: invalid version {version!r}")

    def _error_response(self, exc: ApiError, request_id: str) -> web.Response:
        error: dict[str, Any] = {"type": exc.error_type, "message": exc.message}
        if exc.error_code:
            error["details"] = {"error_code": exc.error_code}
        body = {"type": "error", "error": error, "request_id": request_id}
        return web.json_response(body, status=exc.status, headers={"request-id": request_id, **exc.headers})

    def _maybe_fail(self, endpoint: str) -> None:
        queue = self._faults[endpoint]
        if not queue:
            return
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.popleft()
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after"] = str(max(0, math.ceil(fault.retry_after)))
            headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
        if fault.should_retry is not None:
            headers["x-should-retry"] = "true" if fault.should_retry else "false"
        raise ApiError(
            fault.status, fault.message, error_type=fault.error_type, headers=headers, error_code=fault.error_code
        )

    def _file_or_404(self, file_id: str) -> StoredFile:
        stored = self.files.get(file_id)
        if stored is None or stored.deleted:
            raise ApiError(404, f"File not found: {file_id}")
        return stored

    # -- Models API ----------------------------------------------------------------------------

    async def _retrieve_model(self, request: web.Request) -> web.StreamResponse:
        """docs: api/models/retrieve — "Get a specific model"; an unknown id is a 404 ``not_found_error``.
        The body is ``ModelInfo`` (anthropic/types/model_info.py: id, type, display_name, created_at,
        lifecycle required)."""
        model_id = request.match_info["model_id"]
        if model_id not in self.models:
            raise ApiError(404, f"model: {model_id}")
        return web.json_response(
            {
                "type": "model",
                "id": model_id,
                "display_name": self.models[model_id],
                "created_at": "2026-01-01T00:00:00Z",
                "lifecycle": "active",
            }
        )

    # -- Files API -----------------------------------------------------------------------------

    async def _upload_file(self, request: web.Request) -> web.StreamResponse:
        self._maybe_fail("files.upload")
        if request.content_length is not None and request.content_length > MAX_FILE_BYTES:
            raise ApiError(413, "File exceeds the maximum allowed size of 500 MB.")
        if not request.content_type.startswith("multipart/"):
            raise _invalid("Request body must be multipart/form-data with a 'file' part")
        reader = await request.multipart()
        data: bytes | None = None
        raw_name, content_type = "", ""
        fields: dict[str, str] = {}
        file_parts: list[str] = []
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file" or part.filename is not None:
                file_parts.append(part.name or "")
            if part.name == "file":
                data = bytes(await part.read(decode=False))
                raw_name = part.filename or ""
                content_type = part.headers.get("Content-Type", "")
            elif part.name:
                fields[part.name] = await part.text()
        record: RecordedRequest = request[_RECORD]
        record.body = {
            "file": None
            if data is None
            else {
                "filename": raw_name,
                "content_type": content_type,
                "size_bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            },
            **fields,
        }
        form = {name: [text] for name, text in fields.items() if name not in file_parts}
        problems = contract.request_problems(
            request.method, request.path, query=_query(request), form=form, file_parts=file_parts
        )
        self._record_request_violation(request, problems)  # the fake's own, more specific wording wins below
        if data is None:
            raise _invalid("file: Field required")
        if not data:
            raise _invalid("file: The uploaded file is empty")
        if len(data) > MAX_FILE_BYTES:
            raise ApiError(413, "File exceeds the maximum allowed size of 500 MB.")
        expires_at = None
        if "expires_in_seconds" in fields:
            try:
                seconds = int(fields["expires_in_seconds"])
            except ValueError:
                raise _invalid("expires_in_seconds: Input should be a valid integer") from None
            if not 3600 <= seconds <= 7_776_000:
                raise _invalid("expires_in_seconds: must be between 3600 and 7776000")
            expires_at = _now() + timedelta(seconds=seconds)
        if problems:
            raise _invalid(problems[0])
        filename = re.split(r"[\\/]", raw_name)[-1].strip()
        mime = content_type.split(";")[0].strip().lower()
        if not mime or mime == "application/octet-stream":
            mime = _guess_mime(filename)
        if not filename:
            filename = "unnamed" + (mimetypes.guess_extension(mime) or "")
        stored = StoredFile(new_id("file"), filename, mime, data, "upload", expires_at=expires_at)
        self.files[stored.id] = stored
        self.uploads.append(UploadRecord(stored.id, filename, mime, stored.size_bytes, stored.sha256))
        return web.json_response(stored.metadata())

    async def _list_files(self, request: web.Request) -> web.StreamResponse:
        self._maybe_fail("files.list")
        query = request.query
        ids = [i for value in query.getall("ids[]", []) + query.getall("ids", []) for i in value.split(",") if i]
        order = sorted(enumerate(self.files.values()), key=lambda item: (item[1].created_at, item[0]), reverse=True)
        newest_first = [f for _, f in order]
        visible = [f for f in newest_first if not f.deleted]
        if ids:
            if "page" in query or "limit" in query:
                raise _invalid("ids: cannot be combined with page or limit")
            wanted = set(ids)
            page = [f for f in visible if f.id in wanted]
            return web.json_response(_page_json(page, None))
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            raise _invalid("limit: Input should be a valid integer") from None
        if not 1 <= limit <= 1000:
            raise _invalid("limit: Input should be between 1 and 1000")
        if query.get("page"):  # the cursor is the last file of the previous page (deleted or not)
            after = _decode_cursor(query["page"])
            positions = [k for k, f in enumerate(newest_first) if f.id == after]
            if after is None or not positions:
                raise _invalid("page: Invalid page token")
            visible = [f for f in newest_first[positions[0] + 1 :] if not f.deleted]
        page = visible[:limit]
        more = len(visible) > limit
        return web.json_response(_page_json(page, _encode_cursor(page[-1].id) if more else None))

    async def _retrieve_file(self, request: web.Request) -> web.StreamResponse:
        self._maybe_fail("files.retrieve")
        return web.json_response(self._file_or_404(request.match_info["file_id"]).metadata())

    async def _download_file(self, request: web.Request) -> web.StreamResponse:
        self._maybe_fail("files.download")
        stored = self._file_or_404(request.match_info["file_id"])
        if stored.expired:
            raise ApiError(404, "File has expired and its content is no longer available", error_code="file_expired")
        if not stored.downloadable:
            raise _invalid("File is not downloadable", error_code="file_not_downloadable")
        if self._download_breaks:
            return await self._broken_download(request, stored, self._download_breaks.popleft())
        return web.Response(
            body=stored.data,
            content_type=stored.mime_type,
            headers={"Content-Disposition": f'attachment; filename="{stored.filename}"'},
        )

    async def _broken_download(self, request: web.Request, stored: StoredFile, after_bytes: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": stored.mime_type})
        response.content_length = len(stored.data)
        await response.prepare(request)
        await response.write(stored.data[: min(after_bytes, len(stored.data) - 1)])
        if request.transport is not None:
            request.transport.abort()
        return response

    async def _delete_file(self, request: web.Request) -> web.StreamResponse:
        self._maybe_fail("files.delete")
        stored = self._file_or_404(request.match_info["file_id"])
        stored.deleted = True
        return web.json_response({"id": stored.id, "type": "file_deleted"})

    # -- Messages ------------------------------------------------------------------------------

    async def _read_json(self, request: web.Request) -> Any:
        if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
            raise ApiError(413, DEFAULT_ERROR_MESSAGES["request_too_large"])
        raw = await request.read()
        if len(raw) > MAX_REQUEST_BYTES:
            raise ApiError(413, DEFAULT_ERROR_MESSAGES["request_too_large"])
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise _invalid(f"There was an issue with your request body: invalid JSON ({exc})") from None
        request[_RECORD].body = body
        return body

    def _parse(self, request: web.Request, body: Any) -> _MessagesRequest:
        record: RecordedRequest = request[_RECORD]
        problems = contract.request_problems(
            request.method, request.path, query=_query(request), betas=record.betas, body=record.body
        )
        self._record_request_violation(request, problems)
        parsed = self._parse_checked(request, body)  # the fake's own, more specific wording wins
        if problems:
            raise _invalid(problems[0])
        return parsed

    def _parse_checked(self, request: web.Request, body: Any) -> _MessagesRequest:
        betas = {b.strip() for b in request.headers.get("anthropic-beta", "").split(",") if b.strip()}
        parsed = _parse_messages_request(body, betas)
        for upload in parsed.uploads:
            stored = self.files.get(upload.file_id)
            if stored is None or stored.deleted or stored.expired:
                raise _invalid(
                    f"messages.{parsed.messages[upload.message_index]['index']}.content.{upload.block_index}: "
                    f"File not found: {upload.file_id}"
                )
        if parsed.skills is not None:
            parsed.skills = [self._resolve_skill(k, skill) for k, skill in enumerate(parsed.skills)]
        self._check_thinking_blocks(parsed)
        return parsed

    def thinking_signature(self, model: str, thinking: str) -> str:
        """The opaque signature of a thinking block this fake wrote (see UNCONFIRMED)."""
        digest = hmac.new(self._thinking_key, f"{model}\n{thinking}".encode(), hashlib.sha256).digest()
        return "Er" + base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _check_thinking_blocks(self, parsed: _MessagesRequest) -> None:
        """docs: build-with-claude/thinking — thinking blocks are passed back unchanged (with the rest
        of the assistant turn); a modified block, or one written by another model (models/sonnet-5-5:
        "thinking blocks are tied to the model"), is a 400."""
        for message in parsed.messages:
            for j, block in enumerate(message["content"]):
                if block["type"] != "thinking":
                    continue
                where = f"messages.{message['index']}.content.{j}"
                extra = set(block) - {"type", "thinking", "signature"}
                if extra:
                    raise _invalid(f"{where}.thinking.{sorted(extra)[0]}: Extra inputs are not permitted")
                text, signature = block.get("thinking"), block.get("signature")
                if not isinstance(text, str) or not isinstance(signature, str):
                    raise _invalid(f"{where}.thinking: `thinking` and `signature` are required")
                if not hmac.compare_digest(signature, self.thinking_signature(parsed.model, text)):
                    raise _invalid(f"{where}: Invalid `signature` in `thinking` block")

    def _resolve_skill(self, k: int, skill: Mapping[str, Any]) -> dict[str, str]:
        """A requested skill -> what ``container.skills`` reports (the resolved version)."""
        skill_id, version = str(skill["skill_id"]), str(skill.get("version") or "latest")
        if skill["type"] == "anthropic":
            versions = ANTHROPIC_SKILLS.get(skill_id)
            if versions is None:
                raise _invalid(
                    f"container.skills.{k}.skill_id: Unknown Anthropic skill '{skill_id}'. "
                    f"Available skills: {', '.join(sorted(ANTHROPIC_SKILLS))}"
                )
        else:
            versions = self.custom_skills.get(skill_id)
            if versions is None:
                raise _invalid(f"container.skills.{k}.skill_id: Skill '{skill_id}' not found")
        if version == "latest":
            version = versions[-1]
        elif version not in versions:
            raise _invalid(f"container.skills.{k}.version: Version '{version}' of skill '{skill_id}' not found")
        return {"type": str(skill["type"]), "skill_id": skill_id, "version": version}

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        body = await self._read_json(request)
        if isinstance(body, dict):
            body = {"max_tokens": 1, **body}
        parsed = self._parse(request, body)
        units = _cache_layout(parsed.body, parsed.messages).units
        return web.json_response({"input_tokens": sum(estimate_tokens(u) for u in units) + 3})

    def _admit(self) -> None:
        """Count one Messages request against the rate limits, or refuse it when one is used up
        (docs: api/rate-limits; see tests/fakes/ratelimits.py)."""
        window = self.rate_window
        exhausted = window.exhausted()
        if exhausted is not None:
            headers = {**window.headers(), "retry-after": str(window.retry_after())}
            message = f"This request would exceed your organization's rate limit of {exhausted} per minute."
            raise ApiError(429, message, error_type="rate_limit_error", headers=headers)
        window.charge("requests", 1)

    async def _create_message(self, request: web.Request) -> web.StreamResponse:
        body = await self._read_json(request)  # read first, so even a refused request's body is recorded
        self._maybe_fail("messages")
        self._admit()
        parsed = self._parse(request, body)
        container = self._resolve_container(parsed)
        usage = self._input_usage(parsed)
        self.rate_window.charge("input-tokens", usage["input_tokens"] + usage["cache_creation_input_tokens"])
        ctx = self._script_context(parsed, container)
        message_id = new_id("msg")
        if parsed.stream:
            return await self._stream_message(request, parsed, ctx, container, usage, message_id)

        content: list[dict[str, Any]] = []

        async def collect(block: dict[str, Any]) -> None:
            content.append(block)

        turn = _TurnRunner(self, parsed, ctx, container, collect)
        try:
            await turn.run()
        except ScriptError as exc:
            raise ApiError(500, f"fake model script failed: {exc}", headers={"x-should-retry": "false"}) from exc
        message = self._message_json(message_id, parsed, container, content, turn, usage)
        self.responses.append(message)
        self.rate_window.charge("output-tokens", message["usage"]["output_tokens"])
        return web.json_response(message, headers={"request-id": request[_REQUEST_ID], **self.rate_window.headers()})

    def _resolve_container(self, parsed: _MessagesRequest) -> ContainerState | None:
        if parsed.container_ref is not None:
            container = self.containers.get(parsed.container_ref)
            if container is None:
                raise ApiError(404, f"container: Container '{parsed.container_ref}' not found")
            if not container.is_usable(self.now()):
                raise _invalid(
                    f"container: Container '{parsed.container_ref}' has expired and can no longer be used. "
                    "Send the request without `container` to get a new container."
                )
        elif parsed.tool_type is not None:
            assert self._tmp is not None
            container_id = new_id("container")
            container = ContainerState(container_id, Path(self._tmp.name) / container_id, created_at=self.now())
            for directory in (container.inputs, container.workdir, container.scratch):
                directory.mkdir(parents=True)
            self.containers[container_id] = container
        else:
            return None
        container.last_used = self.now()
        if parsed.tool_type is None:
            return container
        container.skills = list(parsed.skills or [])
        # Only the newest user turn's container_upload blocks are materialised: a block in an
        # earlier, finished turn is inert (a fresh container silently lacks that file).
        for upload in parsed.newest_uploads:
            if upload.file_id in container.uploaded:
                continue
            stored = self.files[upload.file_id]
            target = _unique_path(container.inputs, stored.filename)
            target.write_bytes(stored.data)
            container.uploaded[upload.file_id] = target.relative_to(container.root).as_posix()
        return container

    def _input_usage(self, parsed: _MessagesRequest) -> dict[str, Any]:
        """Input tokens split into cache reads, cache writes and the rest.

        The rules, all from docs: build-with-claude/prompt-caching:

        - "Prompt caching references the entire prompt - tools, system, and messages (in that
          order) up to and including the block designated with cache_control": an entry is the
          hash of that whole prefix (``cache_control`` itself left out), per model.
        - Every breakpoint whose prefix is long enough writes an entry ("Shorter prompts cannot
          be cached, even if marked with cache_control"; see ``min_cacheable_tokens``). Only
          breakpoints write: a prefix that merely lies inside a cached one is no entry.
        - A read is the longest earlier entry found at a breakpoint or at the block boundaries
          before it, :data:`CACHE_LOOKBACK_BLOCKS` checks in all ("If your prompt has more than
          20 content blocks before your cache breakpoint, content earlier than that won't be
          checked for cache hits unless you add additional breakpoints").
        - Usage: "cache_read_input_tokens" is what was read, "cache_creation_input_tokens" what
          was written, "input_tokens" the rest ("input tokens which were not read from or used
          to create a cache"); their sum is the whole input.
        """
        layout = _cache_layout(parsed.body, parsed.messages)
        units = layout.units
        cumulative = [0]
        for unit in units:
            cumulative.append(cumulative[-1] + estimate_tokens(unit))
        digests, running = [], hashlib.sha256(parsed.model.encode())
        for unit in units:
            running.update(_canonical(unit).encode())
            digests.append(running.copy().hexdigest())
        cacheable = [bp for bp in layout.breakpoints if cumulative[bp + 1] >= max(1, self.min_cacheable_tokens)]
        read_end = 0  # units [0, read_end) come from the cache
        for bp in cacheable:
            for j in range(bp, max(-1, bp - CACHE_LOOKBACK_BLOCKS), -1):
                if digests[j] in self._cache_seen:
                    read_end = max(read_end, j + 1)
                    break
        read = cumulative[read_end]
        written = {"5m": 0, "1h": 0}
        done = read_end
        for bp in cacheable:
            if bp + 1 > done:
                written[layout.ttls[bp]] += cumulative[bp + 1] - cumulative[done]
                done = bp + 1
        self._cache_seen.update(digests[bp] for bp in cacheable)
        creation = written["5m"] + written["1h"]
        uncached = cumulative[-1] - read - creation + 3  # + message framing overhead
        return {
            "input_tokens": uncached,
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": written["5m"],
                "ephemeral_1h_input_tokens": written["1h"],
            },
            "service_tier": "standard",
        }

    def _script_context(self, parsed: _MessagesRequest, container: ContainerState | None) -> ScriptContext:
        history = [
            Turn(m["role"], _block_text(m["content"]), tuple(m["content"]))
            for m in parsed.messages[: parsed.turn_start]
        ]
        question = "\n".join(
            _block_text(m["content"]) for m in parsed.messages[parsed.turn_start :] if m["role"] == "user"
        ).strip()
        root = container.root if container is not None and parsed.tool_type is not None else None
        return ScriptContext(
            question=question,
            tool_type=parsed.tool_type,
            history=history,
            container_dir=root,
            file_names=self._file_names(parsed),
            uploaded_file_ids=[u.file_id for u in parsed.newest_uploads],
            skills=[dict(skill) for skill in parsed.skills or []],
            model=parsed.model,
            system=parsed.system,
            max_tokens=parsed.max_tokens,
            request=parsed.body,
        )

    def _file_names(self, parsed: _MessagesRequest) -> list[str]:
        """The file names the model is told: ``<file name="...">`` in user turns, then the names
        of the files behind the request's ``container_upload`` blocks; in order, once each."""
        names = [
            html.unescape(match.group(2))
            for message in parsed.messages
            if message["role"] == "user"
            for match in _FILE_TAG.finditer(_block_text(message["content"]))
        ]
        names += [self.files[u.file_id].filename for u in parsed.uploads if u.file_id in self.files]
        return list(dict.fromkeys(names))

    def _message_json(
        self,
        message_id: str,
        parsed: _MessagesRequest,
        container: ContainerState | None,
        content: list[dict[str, Any]],
        turn: _TurnRunner,
        usage: Mapping[str, Any],
    ) -> dict[str, Any]:
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": parsed.model,
            "content": content,
            "stop_reason": turn.stop_reason,
            "stop_sequence": None,
            "stop_details": turn.stop_details,
            "usage": {**usage, "output_tokens": max(1, turn.output_tokens), **turn.server_tool_usage()},
            "container": container.response_json() if container is not None and parsed.tool_type else None,
        }

    async def _stream_message(
        self,
        request: web.Request,
        parsed: _MessagesRequest,
        ctx: ScriptContext,
        container: ContainerState | None,
        usage: dict[str, Any],
        message_id: str,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "request-id": request[_REQUEST_ID],
                **self.rate_window.headers(),
            }
        )
        request[_RECORD].status = response.status  # recorded now: the handler returns when the stream ends
        await response.prepare(request)
        fault = self._stream_faults.popleft() if self._stream_faults else None
        sse = _SseWriter(request, response, fault, self._conform_event)
        container_json = container.response_json() if container is not None and parsed.tool_type else None
        turn = _TurnRunner(self, parsed, ctx, container, sse.block, ping=lambda: sse.send("ping", {"type": "ping"}))
        try:
            start: dict[str, Any] = {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": parsed.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {**usage, "output_tokens": 1, **turn.server_tool_usage(final=False)},
                "container": container_json,
            }
            await sse.send("message_start", {"type": "message_start", "message": start})
            await sse.send("ping", {"type": "ping"})
            try:
                await turn.run()
            except ScriptError as exc:
                await sse.send("error", _error_event("api_error", f"fake model script failed: {exc}"))
                await response.write_eof()
                return response
            output_tokens = max(1, turn.output_tokens)
            self.rate_window.charge("output-tokens", output_tokens)
            delta_usage = {
                k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
            }
            await sse.send(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": turn.stop_reason,
                        "stop_sequence": None,
                        "stop_details": turn.stop_details,
                        "container": container_json,
                    },
                    "usage": {**delta_usage, "output_tokens": output_tokens, **turn.server_tool_usage()},
                },
            )
            self.responses.append(self._message_json(message_id, parsed, container, sse.content, turn, usage))
            await sse.send("message_stop", {"type": "message_stop"})
            await response.write_eof()
        except _StreamAborted:
            pass
        except ConnectionError:
            self.closed_by_client.append(message_id)  # the client went away mid-stream
            self.client_closed.set()
        return response

    # -- code execution ------------------------------------------------------------------------

    async def execute(
        self, container: ContainerState, *, python: str | None = None, bash: str | None = None
    ) -> tuple[CodeRun, str | None]:
        """Run code in a container; register new files. Returns the run and an error code (or None)."""
        source = python if python is not None else (bash or "")
        workdir = container.workdir
        env = sandbox.sandbox_env(container.root)
        before = sandbox.snapshot_files(workdir)
        try:
            if python is not None:
                result = await sandbox.run_python(python, cwd=workdir, env=env, timeout=self.code_timeout)
            else:
                result = await sandbox.run_bash(source, cwd=workdir, env=env, timeout=self.code_timeout)
        except sandbox.SandboxError:
            return CodeRun(source, error_code="unavailable"), "unavailable"
        if result.timed_out:
            return CodeRun(source, error_code="execution_time_exceeded"), "execution_time_exceeded"
        changed = sandbox.changed_files(before, sandbox.snapshot_files(workdir))
        if any((workdir / path).stat().st_size > self.max_output_file_bytes for path in changed):
            return CodeRun(source, error_code="output_file_too_large"), "output_file_too_large"
        files = [self._register_generated(container, path) for path in changed]
        run = CodeRun(source, result.stdout, result.stderr, result.return_code, files)
        return run, None

    def _register_generated(self, container: ContainerState, path: str) -> GeneratedFile:
        data = (container.workdir / path).read_bytes()
        name = Path(path).name
        stored = StoredFile(
            new_id("file"), name, _guess_mime(name), data, "generated", container_id=container.id, path=path
        )
        self.files[stored.id] = stored
        return GeneratedFile(stored.id, name, path)


# --------------------------------------------------------------------------------------------
# Playing a script: replaying echoed content, running live actions
# --------------------------------------------------------------------------------------------


class _StreamAborted(Exception):
    """The stream was cut by an injected fault; stop producing content."""


class _TurnRunner:
    """Plays the script for one response, replaying what the client echoed back first."""

    def __init__(
        self,
        api: FakeAnthropic,
        parsed: _MessagesRequest,
        ctx: ScriptContext,
        container: ContainerState | None,
        emit: Callable[[dict[str, Any]], Awaitable[None]],
        *,
        ping: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.api = api
        self.parsed = parsed
        self.ctx = ctx
        self.container = container
        self._emit = emit
        self._ping = ping
        self.stop_reason = "end_turn"
        self.stop_details: dict[str, Any] | None = None
        self.output_tokens = 0
        #: Text tokens so far: ``max_tokens`` is enforced on text only, so a modest limit never
        #: cuts the (long) code a script writes.
        self.text_tokens = 0
        self.blocks_emitted = 0
        #: Live uses of each web tool in this request (for ``max_uses``) and the billed ones.
        self.web_uses = {"web_search": 0, "web_fetch": 0}
        self.web_requests = {"web_search_requests": 0, "web_fetch_requests": 0}
        self._fetchable: set[str] | None = None
        self._thought = False

    def server_tool_usage(self, *, final: bool = True) -> dict[str, Any]:
        """``{"server_tool_use": {...}}`` when the request has a web tool, else ``{}``."""
        if not self.parsed.web_tools:
            return {}
        counts = dict(self.web_requests) if final else {"web_search_requests": 0, "web_fetch_requests": 0}
        return {"server_tool_use": counts}

    async def emit(self, block: dict[str, Any]) -> None:
        if block["type"] == "thinking":
            self.output_tokens += THINKING_TOKENS
            self.text_tokens += THINKING_TOKENS  # thinking counts toward max_tokens
        elif block["type"] == "text":
            self.output_tokens += estimate_tokens(block["text"])
            self.text_tokens += estimate_tokens(block["text"])
        elif block["type"] == "server_tool_use":
            self.output_tokens += estimate_tokens(block["input"])
        self.blocks_emitted += 1
        await self._emit(block)

    async def run(self) -> None:
        if self.parsed.max_tokens == 0:  # cache pre-warming: no output
            self.stop_reason = "max_tokens"
            return
        # Thinking blocks were checked (signatures) when the request was parsed; the script replays
        # against the rest of what the client echoed.
        echoed = [b for b in self.parsed.echoed_blocks() if b.get("type") not in ("thinking", "redacted_thinking")]
        position, last_pause, replaying = 0, 0, bool(echoed)
        try:
            actions: Iterator[Action] = iter(self.api.script(self.ctx))
            for action in actions:
                if replaying:
                    if isinstance(action, Pause):
                        if position > last_pause:  # the earlier response ended here
                            last_pause = position
                            continue
                    else:
                        matched = self._replay(action, echoed, position)
                        if matched is not None:
                            position = matched
                            continue
                    replaying = False  # echo exhausted (or the client changed it): go live
                if await self._play(action):
                    return
        except (ScriptError, _StreamAborted, ConnectionError):
            raise
        except Exception as exc:
            self.api.script_errors.append(exc)
            raise ScriptError("".join(traceback.format_exception_only(type(exc), exc)).strip()) from exc

    # replay ------------------------------------------------------------------------------------

    def _replay(self, action: Action, echoed: list[dict[str, Any]], position: int) -> int | None:
        """Match ``action`` against echoed blocks at ``position``; the new position or None."""
        if isinstance(action, Hold):
            return position  # a hold leaves no content behind
        if isinstance(action, Text | MaxTokens):
            if position < len(echoed) and echoed[position].get("type") == "text":
                self.ctx.texts.append(str(echoed[position].get("text", "")))
                return position + 1
            return None
        if isinstance(action, Code | ToolError):
            matched = self._match_code(echoed, position)
            if matched is None:
                return None
            position, run = matched
            self.ctx.runs.append(run)
            return position
        if isinstance(action, WebSearch | WebFetch):
            name = "web_search" if isinstance(action, WebSearch) else "web_fetch"
            if position + 1 >= len(echoed):
                return None
            use, result = echoed[position], echoed[position + 1]
            if use.get("type") != "server_tool_use" or use.get("name") != name:
                return None
            if result.get("type") != f"{name}_tool_result" or result.get("tool_use_id") != use.get("id"):
                return None
            tool_input = use.get("input") or {}
            content = result.get("content")
            if name == "web_search":
                self.ctx.web_searches.append(_search_run_from_result(str(tool_input.get("query", "")), content))
            else:
                self.ctx.web_fetches.append(_fetch_run_from_result(str(tool_input.get("url", "")), content))
            return position + 2
        return None

    def _match_code(self, echoed: list[dict[str, Any]], position: int) -> tuple[int, CodeRun] | None:
        source = ""
        while position + 1 < len(echoed):
            use, result = echoed[position], echoed[position + 1]
            if use.get("type") != "server_tool_use" or result.get("type") not in TOOL_RESULT_BLOCK_TYPES:
                return None
            if result.get("tool_use_id") != use.get("id"):
                return None
            tool_input = use.get("input") or {}
            position += 2
            if use.get("name") == "text_editor_code_execution":
                source = str(tool_input.get("file_text", source))
                continue
            if use.get("name") == "code_execution":
                source = str(tool_input.get("code", ""))
            return position, self._run_from_result(source or str(tool_input.get("command", "")), result)
        return None

    async def _hold(self, gate: asyncio.Event) -> None:
        """Stall until ``gate`` is set, sending ``ping`` events meanwhile as the real API does on a
        long stream (docs: build-with-claude/streaming — "Event streams may also include any number
        of ping events"). A client that closed the stream makes the next ping fail: the stream ends
        there (recorded in ``closed_by_client``)."""
        while not gate.is_set():
            try:
                await asyncio.wait_for(gate.wait(), timeout=PING_INTERVAL_S)
            except TimeoutError:
                if self._ping is not None:
                    await self._ping()

    def _run_from_result(self, source: str, result: Mapping[str, Any]) -> CodeRun:
        content = result.get("content") or {}
        if str(content.get("type", "")).endswith("_error"):
            return CodeRun(source, error_code=str(content.get("error_code")), replayed=True)
        files = []
        for output in content.get("content") or []:
            stored = self.api.files.get(str(output.get("file_id")))
            file_id = str(output.get("file_id"))
            files.append(
                GeneratedFile(file_id, stored.filename, stored.path or "") if stored else GeneratedFile(file_id, "")
            )
        return CodeRun(
            source,
            stdout=str(content.get("stdout", "")),
            stderr=str(content.get("stderr", "")),
            return_code=int(content.get("return_code", 0)),
            files=files,
            replayed=True,
        )

    # live --------------------------------------------------------------------------------------

    async def _play(self, action: Action) -> bool:
        """Perform one action live; True when the response ends here."""
        ctx = self.ctx
        if self.parsed.thinking and not self._thought:
            self._thought = True
            text = "" if self.parsed.thinking_display == "omitted" else SUMMARISED_THINKING
            signature = self.api.thinking_signature(self.parsed.model, text)
            await self.emit({"type": "thinking", "thinking": text, "signature": signature})
        if isinstance(action, Text):
            text = action.text(ctx) if callable(action.text) else action.text
            citations = action.citations(ctx) if callable(action.citations) else action.citations
            return await self._text(str(text), [dict(c) for c in citations or ()])
        if isinstance(action, WebSearch):
            await self._web_search(action)
            return False
        if isinstance(action, WebFetch):
            await self._web_fetch(action)
            return False
        if isinstance(action, Code):
            source = action.source(ctx) if callable(action.source) else action.source
            await self._code(str(source), action.filename)
            return False
        if isinstance(action, ToolError):
            await self._tool_error(action)
            return False
        if isinstance(action, Hold):
            action.reached.set()
            await self._hold(action.gate)
            return False
        if isinstance(action, Pause):
            if self.blocks_emitted == 0:
                raise ScriptError("Pause() with no content since the previous pause (the real API never does that)")
            self.stop_reason = "pause_turn"
            return True
        if isinstance(action, Refuse):
            if action.text:
                await self.emit({"type": "text", "text": action.text})
            self.stop_reason = "refusal"
            self.stop_details = {"type": "refusal", "category": action.category, "explanation": action.explanation}
            return True
        if isinstance(action, MaxTokens):
            if action.text:
                await self.emit({"type": "text", "text": action.text})
            self.stop_reason = "max_tokens"
            return True
        raise ScriptError(f"unknown action {action!r}")

    async def _text(self, text: str, citations: list[dict[str, Any]] | None = None) -> bool:
        if not text:
            return False
        budget = self.parsed.max_tokens - self.text_tokens
        if self.api.enforce_max_tokens and estimate_tokens(text) > budget:
            if budget > 0:
                await self.emit({"type": "text", "text": text[: budget * 4]})
            self.stop_reason = "max_tokens"
            return True
        block: dict[str, Any] = {"type": "text", "text": text}
        if citations:
            block["citations"] = citations
        await self.emit(block)
        self.ctx.texts.append(text)
        return False

    # web tools -----------------------------------------------------------------------------

    def _web_tool(self, name: str) -> dict[str, Any]:
        tool = self.parsed.web_tools.get(name)
        if tool is None:
            verb = "searched the web" if name == "web_search" else "fetched a web page"
            raise ScriptError(f"the script {verb}, but the request has no {name} tool")
        callers = tool.get("allowed_callers")
        if callers is not None and "direct" not in callers:
            raise ScriptError(f"the script called {name} directly, but its allowed_callers are {callers}")
        return tool

    def _use_allowed(self, name: str, tool: Mapping[str, Any]) -> bool:
        """Count one use; False when it is past the tool's ``max_uses``."""
        limit = tool.get("max_uses")
        if limit is not None and self.web_uses[name] >= limit:
            return False
        self.web_uses[name] += 1
        return True

    async def _web_search(self, action: WebSearch) -> None:
        tool = self._web_tool("web_search")
        query = str(action.query(self.ctx) if callable(action.query) else action.query)
        if action.error is not None and action.error not in WEB_SEARCH_ERROR_CODES:
            raise ScriptError(f"unknown web search error code {action.error!r}")
        use = _server_tool_use("web_search", {"query": query})
        await self.emit(use)
        error = action.error if self._use_allowed("web_search", tool) else "max_uses_exceeded"
        if error is not None:
            run = WebSearchRun(query, [], error_code=error)
            content: Any = {"type": "web_search_tool_result_error", "error_code": error}
        else:
            results = [r for r in map(_web_result, action.results) if _domain_allowed(r.url, tool)]
            run = WebSearchRun(query, results)
            content = [_search_result_json(r) for r in results]
            self.web_requests["web_search_requests"] += 1
        await self.emit({"type": "web_search_tool_result", "tool_use_id": use["id"], "content": content})
        self.ctx.web_searches.append(run)
        if run.ok and self._fetchable is not None:
            self._fetchable.update(_normal_url(r.url) for r in run.results)

    async def _web_fetch(self, action: WebFetch) -> None:
        tool = self._web_tool("web_fetch")
        url = str(action.url(self.ctx) if callable(action.url) else action.url)
        if action.error is not None and action.error not in WEB_FETCH_ERROR_CODES:
            raise ScriptError(f"unknown web fetch error code {action.error!r}")
        use = _server_tool_use("web_fetch", {"url": url})
        await self.emit(use)
        error = action.error
        if not self._use_allowed("web_fetch", tool):
            error = "max_uses_exceeded"
        elif error is None and len(url) > MAX_FETCH_URL_CHARS:
            error = "url_too_long"
        elif error is None and not _domain_allowed(url, tool):
            error = "url_not_allowed"
        elif error is None and _normal_url(url) not in self._fetchable_urls(tool):
            error = "url_not_in_prior_context"
        if error is not None:
            run = WebFetchRun(url, error_code=error)
            content: dict[str, Any] = {"type": "web_fetch_tool_result_error", "error_code": error}
        else:
            text = action.text
            limit = tool.get("max_content_tokens")
            if limit is not None and estimate_tokens(text) > limit:
                text = text[: limit * 4]
            document: dict[str, Any] = {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": text},
                "title": action.title,
            }
            if (tool.get("citations") or {}).get("enabled"):
                document["citations"] = {"enabled": True}
            content = {"type": "web_fetch_result", "url": url, "content": document, "retrieved_at": rfc3339(_now())}
            run = WebFetchRun(url, text, action.title)
            self.web_requests["web_fetch_requests"] += 1
            self._fetchable_urls(tool).update(_normal_url(u) for u in [url, *_URL_PATTERN.findall(text)])
        await self.emit({"type": "web_fetch_tool_result", "tool_use_id": use["id"], "content": content})
        self.ctx.web_fetches.append(run)

    def _fetchable_urls(self, tool: Mapping[str, Any]) -> set[str]:
        """URLs web fetch may fetch: from the user and from earlier web results (``url_sources``)."""
        if self._fetchable is None:
            sources = tool.get("url_sources") or {}
            users = (sources.get("user_input") or {}).get("type") != "none"
            clients = (sources.get("client_tool_results") or {}).get("type") != "none"
            servers = (sources.get("server_tool_results") or {}).get("type") != "none"
            found: set[str] = set()
            for message in self.parsed.messages:
                for block in message["content"]:
                    kind = block.get("type")
                    if message["role"] == "user" and kind == "text" and users:
                        found.update(_URL_PATTERN.findall(str(block.get("text", ""))))
                    elif (kind == "tool_result" and clients) or (kind in _WEB_RESULT_TYPES and servers):
                        found.update(_URL_PATTERN.findall(_canonical(block.get("content"))))
            if servers:
                for search in self.ctx.web_searches:
                    found.update(r.url for r in search.results)
                for fetch in self.ctx.web_fetches:
                    if fetch.ok:
                        found.update([fetch.url, *_URL_PATTERN.findall(fetch.text)])
            self._fetchable = {_normal_url(u) for u in found}
        return self._fetchable

    def _require_container(self) -> ContainerState:
        if self.container is None or self.parsed.tool_type is None:
            raise ScriptError("the script ran code, but the request has no code execution tool")
        return self.container

    async def _code(self, source: str, filename: str | None) -> None:
        container = self._require_container()
        if self.parsed.tool_type == PYTHON_ONLY_TOOL:
            use = _server_tool_use("code_execution", {"code": source})
            await self.emit(use)
            run, error = await self.api.execute(container, python=source)
            await self.emit(_result_block("code_execution", use["id"], run, error))
        else:
            # Scripts go to /tmp unless the script names a path: outside the working directory,
            # they are never returned as generated files.
            name = filename or _next_script_name(container.scratch)
            script_path = container.host_path(name)
            edit = _server_tool_use(
                "text_editor_code_execution", {"command": "create", "path": name, "file_text": source}
            )
            await self.emit(edit)
            is_update = script_path.exists()
            script_path.parent.mkdir(parents=True, exist_ok=True)
            script_path.write_text(source, encoding="utf-8")
            await self.emit(
                {
                    "type": "text_editor_code_execution_tool_result",
                    "tool_use_id": edit["id"],
                    "content": {"type": "text_editor_code_execution_create_result", "is_file_update": is_update},
                }
            )
            command = f"python3 {name}"
            use = _server_tool_use("bash_code_execution", {"command": command})
            await self.emit(use)
            run, error = await self.api.execute(container, bash=f"python3 {shlex.quote(str(script_path))}")
            run.source = source
            await self.emit(_result_block("bash_code_execution", use["id"], run, error))
        self.ctx.runs.append(run)

    async def _tool_error(self, action: ToolError) -> None:
        self._require_container()
        if self.parsed.tool_type == PYTHON_ONLY_TOOL:
            use = _server_tool_use("code_execution", {"code": action.source})
            kind = "code_execution"
        else:
            use = _server_tool_use("bash_code_execution", {"command": f"python3 -c {json.dumps(action.source)}"})
            kind = "bash_code_execution"
        await self.emit(use)
        run = CodeRun(action.source, error_code=action.error_code)
        await self.emit(_result_block(kind, use["id"], run, action.error_code))
        self.ctx.runs.append(run)


def _server_tool_use(name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "server_tool_use", "id": new_id("srvtoolu"), "name": name, "input": tool_input}


_WEB_RESULT_TYPES = ("web_search_tool_result", "web_fetch_tool_result")
_URL_PATTERN = re.compile(r"https?://[^\s<>\"'`|\\\]\[(){}]+")


def _normal_url(url: str) -> str:
    """A URL as compared for "already in the conversation": no fragment, trailing punctuation or slash."""
    return url.split("#", 1)[0].rstrip(".,;:!?").rstrip("/")


def _web_result(item: WebResult | Sequence[Any]) -> WebResult:
    if isinstance(item, WebResult):
        return item
    values = list(item)
    if not 2 <= len(values) <= 4:
        raise ScriptError(f"a web result is (title, url[, snippet[, page_age]]), got {item!r}")
    snippet = values[2] if len(values) > 2 else ""
    page_age = values[3] if len(values) > 3 else None
    return WebResult(str(values[0]), str(values[1]), str(snippet or ""), None if page_age is None else str(page_age))


def _domain_allowed(url: str, tool: Mapping[str, Any]) -> bool:
    """``allowed_domains`` / ``blocked_domains``: a domain covers its subdomains; a path, its sub-paths."""
    match = re.match(r"^[a-z][a-z0-9+.-]*://([^/?#:]+)(?::\d+)?([^?#]*)", url, re.IGNORECASE)
    if match is None:
        return False
    host, path = match.group(1).lower(), match.group(2) or "/"

    def covers(domain: str) -> bool:
        d_host, _, d_path = domain.lower().partition("/")
        if not (host == d_host or host.endswith("." + d_host)):
            return False
        return not d_path or path.lstrip("/").startswith(d_path.rstrip("/"))

    allowed, blocked = tool.get("allowed_domains"), tool.get("blocked_domains")
    if allowed is not None:
        return any(covers(d) for d in allowed)
    return not any(covers(d) for d in blocked or [])


def _encrypted(payload: Mapping[str, Any]) -> str:
    """An opaque string like the real ``encrypted_content`` (the fake can read it back)."""
    return "Eo" + base64.urlsafe_b64encode(_canonical(payload).encode()).decode().rstrip("=")


def _decrypted(token: Any) -> dict[str, Any]:
    if not isinstance(token, str) or not token.startswith("Eo"):
        return {}
    raw = token[2:]
    try:
        value = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _search_result_json(result: WebResult) -> dict[str, Any]:
    return {
        "type": "web_search_result",
        "url": result.url,
        "title": result.title,
        "encrypted_content": _encrypted({"url": result.url, "snippet": result.snippet}),
        "page_age": result.page_age,
    }


def _search_run_from_result(query: str, content: Any) -> WebSearchRun:
    if isinstance(content, Mapping):
        return WebSearchRun(query, [], error_code=str(content.get("error_code")), replayed=True)
    results = [
        WebResult(
            str(item.get("title", "")),
            str(item.get("url", "")),
            str(_decrypted(item.get("encrypted_content")).get("snippet", "")),
            item.get("page_age"),
        )
        for item in content or []
        if isinstance(item, Mapping)
    ]
    return WebSearchRun(query, results, replayed=True)


def _fetch_run_from_result(url: str, content: Any) -> WebFetchRun:
    if not isinstance(content, Mapping) or content.get("type") != "web_fetch_result":
        code = content.get("error_code") if isinstance(content, Mapping) else "unavailable"
        return WebFetchRun(url, error_code=str(code), replayed=True)
    document = content.get("content") or {}
    source = document.get("source") or {}
    return WebFetchRun(str(content.get("url", url)), str(source.get("data", "")), document.get("title"), replayed=True)


def _result_block(kind: str, tool_use_id: str, run: CodeRun, error: str | None) -> dict[str, Any]:
    """``code_execution_tool_result`` / ``bash_code_execution_tool_result`` for a run."""
    if error is not None:
        content: dict[str, Any] = {"type": f"{kind}_tool_result_error", "error_code": error}
    else:
        content = {
            "type": f"{kind}_result",
            "stdout": run.stdout,
            "stderr": run.stderr,
            "return_code": run.return_code,
            "content": [{"type": f"{kind}_output", "file_id": f.file_id} for f in run.files],
        }
    return {"type": f"{kind}_tool_result", "tool_use_id": tool_use_id, "content": content}


def _next_script_name(scratch: Path) -> str:
    """``/tmp/analysis_<n>.py``, the first one not yet written in the container's ``/tmp``."""
    taken = {p.name for p in scratch.glob("analysis_*.py")}
    n = 1
    while f"analysis_{n}.py" in taken:
        n += 1
    return f"/tmp/analysis_{n}.py"


class _SseWriter:
    """Writes content blocks as the SSE events the SDK's stream accumulator expects."""

    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        fault: _StreamFault | None,
        check: Callable[[web.Request, str, Mapping[str, Any]], None],
    ) -> None:
        self.request = request
        self.response = response
        self.fault = fault
        self.check = check  # the SDK's types must accept every event
        self.events = 0
        self.index = 0
        self.content: list[dict[str, Any]] = []

    async def send(self, event: str, data: Mapping[str, Any]) -> None:
        await self._fault_check()
        self.check(self.request, event, data)
        payload = f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
        await self.response.write(payload)
        self.events += 1

    async def _fault_check(self) -> None:
        fault = self.fault
        if fault is None or self.events < fault.after_events:
            return
        self.fault = None
        if fault.kind == "break":
            transport = self.request.transport
            if transport is not None:
                transport.abort()  # no terminating chunk: the client sees a truncated body
            raise _StreamAborted
        error = _error_event(fault.error_type, fault.message)
        self.check(self.request, "error", error)
        payload = json.dumps(error)
        await self.response.write(f"event: error\ndata: {payload}\n\n".encode())
        await self.response.write_eof()
        raise _StreamAborted

    async def block(self, block: dict[str, Any]) -> None:
        index = self.index
        self.index += 1
        self.content.append(block)
        if block["type"] == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            if block.get("citations"):
                start["citations"] = []
            await self.send(
                "content_block_start", {"type": "content_block_start", "index": index, "content_block": start}
            )
            for citation in block.get("citations") or []:
                delta = {"type": "citations_delta", "citation": citation}
                await self.send("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            for chunk in _chunks(block["text"]):
                delta = {"type": "text_delta", "text": chunk}
                await self.send("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        elif block["type"] == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            await self.send(
                "content_block_start", {"type": "content_block_start", "index": index, "content_block": start}
            )
            for chunk in _chunks(block["thinking"]):
                delta = {"type": "thinking_delta", "thinking": chunk}
                await self.send("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            delta = {"type": "signature_delta", "signature": block["signature"]}
            await self.send("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        elif block["type"] == "server_tool_use":
            await self.send(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}},
            )
            for chunk in _chunks(json.dumps(block["input"], ensure_ascii=False)):
                delta = {"type": "input_json_delta", "partial_json": chunk}
                await self.send("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        else:  # tool results arrive whole
            await self.send(
                "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
            )
        await self.send("content_block_stop", {"type": "content_block_stop", "index": index})


def _error_event(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _chunks(text: str, size: int = STREAM_CHUNK_CHARS) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

_EXTRA_MIME = {
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".md": "text/markdown",
    ".json": "application/json",
    ".parquet": "application/vnd.apache.parquet",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".xls": "application/vnd.ms-excel",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".svg": "image/svg+xml",
    ".pdf": "application/pdf",
    ".eps": "application/postscript",
    ".ps": "application/postscript",
    ".txt": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
    ".py": "text/x-python",
    ".zip": "application/zip",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}


def _guess_mime(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return _EXTRA_MIME.get(suffix) or mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _unique_path(directory: Path, filename: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    candidate = directory / filename
    stem, suffix, n = Path(filename).stem, Path(filename).suffix, 1
    while candidate.exists():
        candidate = directory / f"{stem}_{n}{suffix}"
        n += 1
    return candidate


#: A file as the bot's user prompt introduces it: ``<file name="streaming.csv" .../>``.
_FILE_TAG = re.compile(r"""<file\s+name=(["'])(.*?)\1""")


def _page_json(page: list[StoredFile], next_page: str | None) -> dict[str, Any]:
    # SDK: anthropic/pagination.py — the Files list is a PageCursor, declaring `data` and `next_page` only.
    return {"data": [f.metadata() for f in page], "next_page": next_page}


def _query(request: web.Request) -> dict[str, list[str]]:
    """The query string, each parameter with all its values."""
    return {key: request.query.getall(key) for key in request.query}


def _encode_cursor(file_id: str) -> str:
    return "page_" + base64.urlsafe_b64encode(file_id.encode()).decode().rstrip("=")


def _decode_cursor(token: str) -> str | None:
    if not token.startswith("page_"):
        return None
    raw = token[len("page_") :]
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
