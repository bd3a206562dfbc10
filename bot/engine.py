"""The analysis engine: one question → Claude with code execution → progress events.

It streams ``messages`` with the code-execution tool, continues the turn while the API
answers ``pause_turn`` (echoing the content back, same container, up to a cap), and turns
the blocks of every tool version into the same events. It knows nothing of Slack.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import anthropic
import httpx2

from bot.conversation import (
    MAX_CACHE_BREAKPOINTS,
    Position,
    cache_anchors,
    halved,
    last_cacheable,
    storable,
    with_cache_breakpoints,
)
from bot.errors import (
    AnthropicFailure,
    StreamBroken,
    anthropic_error_kind,
    api_message,
    describe_anthropic_error,
    describe_tool_error,
    error_type,
)
from bot.progress import (
    PENDING_STEP_TITLE,
    AnalysisEvent,
    CodeWritten,
    Done,
    Failed,
    OutputFile,
    Retrying,
    StepOutput,
    StepStarted,
    TextWritten,
    Usage,
)
from bot.prompts import SYSTEM_PROMPT, FileNote, user_prompt
from bot.ratelimits import Pacer, Unpaced, retry_after
from bot.settings import FILES_API_BETA, Settings
from bot.thinking import thinking_plan

log = logging.getLogger(__name__)

# The Files API calls the engine makes itself (generated files' metadata) carry its beta too.
FILES_API_HEADERS = {"anthropic-beta": FILES_API_BETA}

WEB_RESULT_TYPES = frozenset({"web_search_tool_result", "web_fetch_tool_result"})
TOOL_RESULT_TYPES = frozenset(
    {
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
    }
)


@dataclass(frozen=True)
class InputFile:
    """A file already in the Files API, to be placed in the sandbox."""

    file_id: str
    filename: str
    kind: str
    size_bytes: int


@dataclass(frozen=True)
class Job:
    """One question, in a new conversation or continuing one.

    ``files`` are new with this question; ``thread_files`` are all the conversation's
    files (new ones included), attached whenever the work starts in a fresh container.
    ``history`` holds the earlier turns as API messages; ``container_id`` the container
    they ran in, tried whatever expiry a response reported (None when there is none:
    ``container_reset`` then tells Claude its earlier sandbox state is gone).
    """

    question: str
    files: Sequence[InputFile] = ()
    thread_files: Sequence[InputFile] = ()
    history: Sequence[dict[str, Any]] = ()
    container_id: str | None = None
    container_reset: bool = False
    question_truncated: bool = False
    asked_by: str | None = None
    other_participant: bool = False
    # Called when the container turns out to be gone: the thread's files, each made
    # available in the Files API again (the engine can't fetch them from Slack itself).
    reattach: Callable[[], Awaitable[Sequence[InputFile]]] | None = field(default=None, compare=False)
    # Told what the API call being streamed has used so far, as it grows, and Usage() once the
    # call's whole usage has been reported (as a Usage event): a run stopped midway counts it too.
    meter: Callable[[Usage], None] | None = field(default=None, compare=False)


@dataclass
class _Turn:
    """What the engine has learned so far in one analysis."""

    usage: Usage = field(default_factory=Usage)
    steps: int = 0
    code_steps: set[int] = field(default_factory=set)  # steps that executed code
    meter: Callable[[Usage], None] | None = None  # Job.meter
    step_of_tool_use: dict[str, int] = field(default_factory=dict)
    answer_parts: list[str] = field(default_factory=list)
    tool_errors: list[str] = field(default_factory=list)
    files: list[OutputFile] = field(default_factory=list)
    container_id: str | None = None
    container_expires_at: str | None = None
    content: list[dict[str, Any]] = field(default_factory=list)  # every block of the answer, as JSON
    # Where this conversation's earlier requests wrote cache entries (see with_cache_breakpoints).
    cache_anchors: list[Position] = field(default_factory=list)
    # When waiting out rate limits is no longer worth it: the run's deadline (engine clock).
    give_up_at: float = math.inf

    @property
    def answer(self) -> str:
        return "\n\n".join(part.strip() for part in self.answer_parts if part.strip())


_RUN_SCRIPT = re.compile(r"^\s*python3?\s+(?:-u\s+)?(\S+\.py)\s*$")


def is_container_problem(error: anthropic.APIStatusError) -> bool:
    """Whether a refusal may be the API declining the container we asked to reuse.

    docs (agents-and-tools/tool-use/code-execution-tool): "A container that has expired can't
    be reused. Send the request again without the container parameter." The docs give that
    refusal no error code (anthropic 2.17's ``ErrorDetails`` lists none either), so the engine
    doesn't guess one: a request that carried a container id and was refused as invalid or not
    found, before any work began, is tried once more in a fresh container. If it was not the
    container, that second request fails the same way and its error is reported.
    """
    return error_type(error) in ("invalid_request_error", "not_found_error")


def is_retryable(error: AnthropicFailure) -> bool:
    """Overloads, rate limits, server errors, timeouts and dropped connections."""
    if isinstance(error, StreamBroken | httpx2.TransportError | anthropic.APIConnectionError):
        return True
    if not isinstance(error, anthropic.APIStatusError):
        return False
    if error.response is not None and error.response.headers.get("x-should-retry") == "false":
        return False
    kind = error_type(error)
    return error.status_code in (408, 409, 429) or error.status_code >= 500 or kind in RETRYABLE_ERROR_TYPES


RETRYABLE_ERROR_TYPES = frozenset({"overloaded_error", "rate_limit_error", "api_error", "timeout_error"})
MAX_RETRY_DELAY_S = 60.0


def retry_delay(error: AnthropicFailure, attempt: int) -> float:
    """The server's ``retry-after`` when it gives one, else exponential backoff with jitter."""
    response = getattr(error, "response", None)
    if response is not None:
        headers = response.headers
        for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            value = headers.get(header)
            if value is not None:
                try:
                    return min(max(float(value) * scale, 0.0), MAX_RETRY_DELAY_S)
                except ValueError:
                    continue
    backoff: float = min(0.5 * 2 ** (attempt - 1), 8.0)
    return backoff * random.uniform(0.75, 1.0)


def is_rate_limited(error: AnthropicFailure) -> bool:
    """A 429 (the organisation's rate limit) or 529 (the API overloaded)."""
    return isinstance(error, anthropic.APIStatusError) and (
        error.status_code in (429, 529) or error_type(error) in ("rate_limit_error", "overloaded_error")
    )


def rate_limit_wait(error: AnthropicFailure) -> float | None:
    """How long to wait after a 429/529 that said when to come back (``retry-after``): never less than
    it asked, plus up to a tenth more so refused calls don't all return at once. None when it didn't say.

    Such a refusal doesn't use up the call's retries: sustained rate limiting makes a run wait (as
    long as its deadline allows), not fail.
    """
    if not is_rate_limited(error):
        return None
    response = getattr(error, "response", None)
    wait = retry_after(response.headers) if response is not None else None
    if wait is None:
        return None
    return wait + random.uniform(0.0, 0.1 * wait)


def retry_notice(error: AnthropicFailure) -> str:
    if isinstance(error, StreamBroken | httpx2.TransportError | anthropic.APIConnectionError):
        return "The connection to Claude dropped — trying again"
    if isinstance(error, anthropic.APIStatusError) and (
        error.status_code in (429, 529) or error_type(error) in ("overloaded_error", "rate_limit_error")
    ):
        return "Claude is busy right now — trying again"
    return "Claude's service had a hiccup — trying again"


# The API's documented wording for a request over the context window: "prompt is too long:
# N tokens > M maximum" (error.message, the SDK's ``APIStatusError.api_message``). No error code
# exists for it in the API's ErrorDetails, so the structured fields are the type and that message.
PROMPT_TOO_LONG = re.compile(r"^prompt is too long\b", re.IGNORECASE)


def is_too_long(error: anthropic.APIStatusError) -> bool:
    """Whether the API refused the request for not fitting the model's context window."""
    return error_type(error) == "invalid_request_error" and bool(PROMPT_TOO_LONG.match(api_message(error)))


def step_title(block: Any) -> tuple[str, str, str]:
    """(title, language, code) for a ``server_tool_use`` block of any tool version."""
    tool_input = block.input if isinstance(block.input, dict) else {}
    if block.name == "code_execution":
        return "Running Python", "python", str(tool_input.get("code", ""))
    if block.name == "bash_code_execution":
        command = str(tool_input.get("command", ""))
        script = _RUN_SCRIPT.match(command)
        title = f"Running {script.group(1).rsplit('/', 1)[-1]}" if script else "Running a command"
        return title, "bash", command
    if block.name == "text_editor_code_execution":
        path = str(tool_input.get("path", ""))
        action = str(tool_input.get("command", ""))
        name = path.rsplit("/", 1)[-1] or "a file"
        if action == "create":
            language = "python" if path.endswith(".py") else "text"
            return f"Writing {name}", language, str(tool_input.get("file_text", ""))
        if action == "str_replace":
            return f"Editing {name}", "text", str(tool_input.get("new_str", ""))
        return f"Reading {name}", "text", ""
    if block.name == "web_search":
        return f"Searching the web for “{tool_input.get('query', '')}”", "text", ""
    if block.name == "web_fetch":
        return f"Reading {tool_input.get('url', 'a web page')}", "text", ""
    return f"Using {block.name}", "text", ""


def result_output(step: int, block: Any) -> StepOutput:
    """The :class:`StepOutput` of any code-execution tool-result block."""
    content = block.content
    content_type = getattr(content, "type", "")
    if content_type.endswith("_error"):
        return StepOutput(step=step, error_code=str(getattr(content, "error_code", "unknown")))
    if content_type in (
        "code_execution_result",
        "bash_code_execution_result",
        "encrypted_code_execution_result",
    ):
        return StepOutput(
            step=step,
            stdout=str(getattr(content, "stdout", "") or ""),
            stderr=str(content.stderr or ""),
            return_code=int(content.return_code),
            file_ids=tuple(item.file_id for item in content.content or ()),
        )
    return StepOutput(step=step)


def web_sources(block: Any) -> tuple[tuple[str, str], ...]:
    """The pages of a web search or web fetch result block, as (url, title); none for an error."""
    content = block.content
    if isinstance(content, list):  # web search: the results
        return tuple((str(r.url), str(getattr(r, "title", "") or r.url)) for r in content if getattr(r, "url", None))
    if getattr(content, "type", "") == "web_fetch_result":
        title = getattr(getattr(content, "content", None), "title", None)
        return ((str(content.url), str(title or content.url)),)
    return ()


class Engine:
    """Runs analyses against the Anthropic API. One instance serves many analyses."""

    def __init__(self, client: anthropic.AsyncAnthropic, settings: Settings, *, pacer: Pacer | None = None) -> None:
        self.client = client
        self.settings = settings
        # Told every response and refusal; every call passes its gate first (bot/limiter.py).
        self.pacer: Pacer = pacer or Unpaced()
        self.clock: Callable[[], float] = time.monotonic  # for the run's deadline (tests move it)
        self.sleep: Callable[[float], Awaitable[object]] = asyncio.sleep  # between attempts

    def tools(self) -> list[dict[str, Any]]:
        """The tool list: code execution, plus web search/fetch when configured."""
        settings = self.settings
        tools: list[dict[str, Any]] = [dict(settings.code_execution.definition)]
        search, fetch = settings.web_tool_types
        if settings.web_search_max_uses:
            tools.append({"type": search, "name": "web_search", "max_uses": settings.web_search_max_uses})
        if settings.web_fetch_max_uses:
            tools.append({"type": fetch, "name": "web_fetch", "max_uses": settings.web_fetch_max_uses})
        tools[-1]["cache_control"] = {"type": "ephemeral"}
        return tools

    def request_params(
        self, messages: list[dict[str, Any]], container_id: str | None, cache_anchors: Sequence[Position] = ()
    ) -> dict[str, Any]:
        settings = self.settings
        params: dict[str, Any] = {
            "model": settings.model,
            "max_tokens": settings.max_tokens,
            "system": [{"type": "text", "text": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}}],
            "tools": self.tools(),
        }
        # The four breakpoints are counted across the whole request: messages get what's left.
        fixed = sum("cache_control" in block for key in ("system", "tools") for block in params[key])
        params["messages"] = with_cache_breakpoints(messages, cache_anchors, slots=MAX_CACHE_BREAKPOINTS - fixed)
        plan = thinking_plan(settings.model, settings.max_tokens)
        if plan.thinking is not None:
            params["thinking"] = plan.thinking
        if plan.effort:
            params["output_config"] = {"effort": settings.effort}
        if settings.skills:
            container: dict[str, Any] = {
                "skills": [{"type": "anthropic", "skill_id": skill, "version": "latest"} for skill in settings.skills]
            }
            if container_id:
                container["id"] = container_id
            params["container"] = container
        elif container_id:
            params["container"] = container_id
        # docs: agents-and-tools/tool-use/code-execution-tool — files reach the container through
        # the Files API, whose beta header every request with container_upload blocks needs.
        # Skills need no beta header: ``container.skills`` is GA in anthropic 2.17.
        uploads = any(b.get("type") == "container_upload" for m in messages for b in m["content"])
        betas = [b for b in (settings.code_execution.beta, FILES_API_BETA if uploads else None) if b]
        if betas:
            params["extra_headers"] = {"anthropic-beta": ",".join(betas)}
        return params

    @staticmethod
    def messages_for(job: Job, *, fresh_container: bool, reset: bool) -> list[dict[str, Any]]:
        """The earlier turns and the new question (cache breakpoints are added per request).

        Container uploads go in this (newest) user turn: only the new files when the
        conversation's container is reused, every file of the conversation otherwise.
        """
        attach = list(job.thread_files or job.files) if fresh_container else list(job.files)
        reattached = [f.filename for f in attach if f not in job.files] if reset else []
        notes = [FileNote(f.filename, f.kind, f.size_bytes) for f in (attach if not job.history else job.files)]
        text = user_prompt(
            job.question,
            notes,
            truncated=job.question_truncated,
            asked_by=job.asked_by,
            other_participant=job.other_participant,
            follow_up=bool(job.history),
            reattached=reattached if reset else None,
        )
        # The question first, then the uploads: history is stored without the uploads, so a
        # follow-up's replayed turn still matches the prefix this request cached up to the text.
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        content.extend({"type": "container_upload", "file_id": f.file_id} for f in attach)
        history = [{"role": m["role"], "content": [dict(b) for b in m["content"]]} for m in job.history]
        return [*history, {"role": "user", "content": content}]

    async def run(self, job: Job) -> AsyncIterator[AnalysisEvent]:
        """Analyse ``job``, yielding progress events and ending with Done or Failed.

        A container the API no longer accepts (expired, unknown) is replaced by a fresh
        one with the conversation's files attached again, once, before any work began.
        """
        turn = _Turn(
            container_id=job.container_id, meter=job.meter, give_up_at=self.clock() + self.settings.run_deadline_s
        )
        reset = job.container_reset
        while True:
            messages = self.messages_for(job, fresh_container=turn.container_id is None, reset=reset)
            try:
                async for event in self._converse(messages, turn, job):
                    yield event
                return
            except (anthropic.BadRequestError, anthropic.NotFoundError) as error:
                if job.history and turn.steps == 0 and is_too_long(error):
                    log.info("prompt too long with %d history messages; leaving out older ones", len(job.history))
                    job = replace(job, history=halved(job.history))
                    continue
                if turn.container_id and not reset and turn.steps == 0 and is_container_problem(error):
                    log.info(
                        "container %s refused (%s); trying once in a fresh one", turn.container_id, api_message(error)
                    )
                    turn.container_id = None
                    reset = True
                    if job.reattach is not None:
                        job = replace(job, thread_files=tuple(await job.reattach()))
                    continue
                yield self._failed(error, turn)
                return
            except (anthropic.APIError, httpx2.TransportError, StreamBroken) as error:
                yield self._failed(error, turn)
                return

    async def _converse(self, messages: list[dict[str, Any]], turn: _Turn, job: Job) -> AsyncIterator[AnalysisEvent]:
        """The API calls of one answer, continuing paused turns up to the cap."""
        turn.cache_anchors = cache_anchors(messages)
        for call in range(self.settings.max_continuations + 1):
            message = None
            async for item in self._call_with_retries(messages, turn):
                if isinstance(item, anthropic.types.Message):
                    message = item
                else:
                    yield item
            if message is None:  # pragma: no cover - the stream always ends with a message
                raise RuntimeError("stream ended without a message")
            usage = _usage(message)
            turn.usage = turn.usage + usage
            yield usage
            if message.container is not None:
                turn.container_id = message.container.id
                turn.container_expires_at = message.container.expires_at.isoformat()
            turn.content.extend(block.to_dict(mode="json") for block in message.content)
            for block in message.content:
                async for file_event in self._collect_files(block, turn):
                    yield file_event
            if message.stop_reason != "pause_turn":
                yield finish(message.stop_reason, turn, messages, rounds=self.settings.max_continuations + 1)
                return
            # The continuation reads this call's entry (at its end) and writes one at the echo's end.
            if (end := last_cacheable(messages)) is not None:
                turn.cache_anchors.append(end)
            _echo(messages, message)
            log.info("pause_turn: continuing (%d of %d)", call + 1, self.settings.max_continuations)
        yield finish("pause_turn_cap", turn, messages, rounds=self.settings.max_continuations + 1)

    async def _call_with_retries(
        self, messages: list[dict[str, Any]], turn: _Turn
    ) -> AsyncIterator[AnalysisEvent | anthropic.types.Message]:
        """One API call, retried with backoff on overloads, rate limits, server errors and
        dropped connections — announcing each retry, so the thread can say Claude is busy.
        A 429/529 that says when to come back is waited out without using up a retry, for as
        long as the run's deadline allows. A partial answer from a broken attempt is discarded."""
        attempts = self.settings.anthropic_max_retries + 1
        attempt = 1
        while True:
            answer_parts, content = len(turn.answer_parts), len(turn.content)
            await self.pacer.gate()
            try:
                async for item in self._stream_once(messages, turn):
                    yield item
                return
            except (anthropic.APIError, httpx2.TransportError, StreamBroken) as error:
                if is_rate_limited(error):
                    response = getattr(error, "response", None)
                    self.pacer.refused(response.headers if response is not None else {})
                wait = rate_limit_wait(error) if is_retryable(error) else None
                paced = wait is not None
                if wait is not None:
                    if self.clock() + wait >= turn.give_up_at:
                        log.warning("rate limited for longer than the run may take (%.0fs); giving up", wait)
                        raise
                    log.info("rate limited (%r); waiting %.1fs, as the API asked", error, wait)
                else:
                    if attempt == attempts or not is_retryable(error):
                        raise
                    wait = retry_delay(error, attempt)
                    attempt += 1
                    log.info("attempt %d of %d failed (%r); retrying in %.1fs", attempt - 1, attempts, error, wait)
                del turn.answer_parts[answer_parts:], turn.content[content:]
                kind = anthropic_error_kind(error)
                yield Retrying(retry_notice(error), attempt, attempts, wait, kind=kind, rate_limited=paced)
                await self.sleep(wait)

    def _failed(self, error: AnthropicFailure, turn: _Turn) -> Failed:
        problem = describe_anthropic_error(error)
        log.warning("analysis failed: %s", problem.detail)
        failed = _failure(turn, problem.message, retryable=problem.retryable, detail=problem.detail)
        return replace(failed, kind=anthropic_error_kind(error))

    async def _stream_once(
        self, messages: list[dict[str, Any]], turn: _Turn
    ) -> AsyncIterator[AnalysisEvent | anthropic.types.Message]:
        """One streamed API call: yields events as blocks complete, then the final Message."""
        params = self.request_params(messages, turn.container_id, turn.cache_anchors)
        # The engine retries itself (announcing it), so the SDK's own retries are off here.
        async with self.client.with_options(max_retries=0).messages.stream(**params) as stream:
            self.pacer.accepted(stream.response.headers)
            in_flight = Usage()
            async for event in _unbroken(stream):
                if turn.meter is not None and event.type == "message_start":
                    in_flight = _usage_of(event.message.usage)
                    turn.meter(in_flight)
                elif turn.meter is not None and event.type == "message_delta":
                    turn.meter(replace(in_flight, output_tokens=event.usage.output_tokens))
                if event.type == "content_block_start" and event.content_block.type == "server_tool_use":
                    turn.steps += 1
                    turn.step_of_tool_use[event.content_block.id] = turn.steps
                    yield StepStarted(turn.steps, PENDING_STEP_TITLE)
                elif event.type == "content_block_stop":
                    for item in self._block_events(event.content_block, turn):
                        yield item
            final = await stream.get_final_message()
            if turn.meter is not None:
                turn.meter(Usage())  # counted whole, from the final message, by the caller
            yield final

    def _block_events(self, block: Any, turn: _Turn) -> list[AnalysisEvent]:
        if block.type == "server_tool_use":
            step = turn.step_of_tool_use.get(block.id, turn.steps)
            title, language, code = step_title(block)
            turn.answer_parts.clear()  # text before a step is narration, not the answer
            started = StepStarted(step, title, runs_code=block.name in ("code_execution", "bash_code_execution"))
            if started.runs_code:
                turn.code_steps.add(step)
            return [started, CodeWritten(step, language, code)] if code else [started]
        if block.type in WEB_RESULT_TYPES:
            step = turn.step_of_tool_use.get(block.tool_use_id, turn.steps)
            error = getattr(block.content, "error_code", None)
            return [StepOutput(step=step, error_code=str(error) if error else None, sources=web_sources(block))]
        if block.type in TOOL_RESULT_TYPES:
            step = turn.step_of_tool_use.get(block.tool_use_id, turn.steps)
            output = result_output(step, block)
            if output.error_code:
                turn.tool_errors.append(output.error_code)
            turn.answer_parts.clear()
            return [output]
        if block.type == "text" and block.text.strip():
            turn.answer_parts.append(block.text)
            return [TextWritten(block.text)]
        return []

    async def _collect_files(self, block: Any, turn: _Turn) -> AsyncIterator[OutputFile]:
        if block.type not in TOOL_RESULT_TYPES:
            return
        known = {f.file_id for f in turn.files}
        for file_id in result_output(0, block).file_ids:
            if file_id in known:
                continue
            await self.pacer.gate()
            meta = await self.client.files.retrieve_metadata(file_id, extra_headers=FILES_API_HEADERS)
            output = OutputFile(meta.id, meta.filename, meta.mime_type, meta.size_bytes)
            turn.files.append(output)
            known.add(file_id)
            yield output


async def _unbroken(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The stream's events; a connection that drops once it has begun raises :class:`StreamBroken`,
    whatever the SDK release calls it."""
    try:
        async for event in stream:
            yield event
    except (httpx2.TransportError, anthropic.APIConnectionError) as error:
        raise StreamBroken(repr(error)) from error


def finish(stop_reason: str | None, turn: _Turn, messages: list[dict[str, Any]], *, rounds: int) -> Done | Failed:
    """The outcome of an answer that ended with ``stop_reason`` after ``rounds`` API calls at most."""
    answer = turn.answer
    notes: list[str] = []
    errors = sorted(set(turn.tool_errors))
    if stop_reason == "refusal":
        return _failure(
            turn,
            "Claude declined to carry out this analysis. Rephrase the question if you think that's a mistake.",
            retryable=False,
            detail="stop_reason=refusal",
        )
    if stop_reason == "model_context_window_exceeded":
        return _failure(
            turn,
            "The analysis outgrew Claude's context window. Ask a narrower question or share a smaller extract.",
            retryable=False,
            detail="stop_reason=model_context_window_exceeded",
        )
    if stop_reason == "max_tokens":
        notes.append("The answer hit the length limit and was cut off; ask a narrower follow-up for the rest.")
    if stop_reason == "pause_turn_cap":
        notes.append(f"The analysis was stopped after {rounds} rounds of work; the answer may be incomplete.")
    if errors:
        notes.append("Some steps failed: " + "; ".join(describe_tool_error(code) for code in errors) + ".")
    if not answer and not turn.files:
        reason = notes[-1] if notes else "Claude finished without an answer."
        return _failure(
            turn,
            f"The analysis finished without an answer. {reason} Try again, perhaps with a more specific question.",
            retryable=True,
            detail=f"empty answer, stop_reason={stop_reason}, tool_errors={errors}",
        )
    newest_user = next(m for m in reversed(messages) if m["role"] == "user")
    return Done(
        answer=answer,
        files=tuple(turn.files),
        notes=tuple(notes),
        user_content=storable(newest_user["content"]),
        assistant_content=storable(turn.content),
        container_expires_at=turn.container_expires_at,
        usage=turn.usage,
        steps=turn.steps,
        code_runs=len(turn.code_steps),
        container_id=turn.container_id,
    )


def _failure(turn: _Turn, message: str, *, retryable: bool, detail: str) -> Failed:
    return Failed(
        message,
        retryable=retryable,
        usage=turn.usage,
        steps=turn.steps,
        code_runs=len(turn.code_steps),
        container_id=turn.container_id,
        detail=detail,
    )


def _usage(message: anthropic.types.Message) -> Usage:
    """The usage the API reports for one call (docs: api/messages — ``usage``)."""
    return _usage_of(message.usage)


def _usage_of(usage: anthropic.types.Usage) -> Usage:
    server_tools = usage.server_tool_use
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
        web_search_requests=server_tools.web_search_requests if server_tools else 0,
        web_fetch_requests=server_tools.web_fetch_requests if server_tools else 0,
    )


def _echo(messages: list[dict[str, Any]], message: anthropic.types.Message) -> None:
    """Hand a paused turn back as-is, extending the assistant turn we already echoed."""
    content = [block.to_dict(mode="json") for block in message.content]
    if messages[-1]["role"] == "assistant":
        messages[-1]["content"].extend(content)
    else:
        messages.append({"role": "assistant", "content": content})
