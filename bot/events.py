"""The progress events an analysis yields, in order, to whoever is watching.

The engine produces them; the Slack publisher and the terminal ``ask`` command are two
consumers of the same stream. Every stream ends with exactly one :class:`Done` or
:class:`Failed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.quotas import tokens_used


@dataclass(frozen=True)
class StepStarted:
    """Claude started a step in the sandbox (running code, editing a file).

    Announced twice: when the step begins (generic title) and once its input is known.
    ``runs_code`` is False for file edits and views, which execute nothing.
    """

    step: int
    title: str
    runs_code: bool = True


@dataclass(frozen=True)
class CodeWritten:
    """The code (or command) of a step, as Claude wrote it."""

    step: int
    language: str  # "python" or "bash"
    code: str


@dataclass(frozen=True)
class StepOutput:
    """What a step printed, its exit status and the files it produced."""

    step: int
    stdout: str = ""
    stderr: str = ""
    return_code: int | None = None
    file_ids: tuple[str, ...] = ()
    error_code: str | None = None  # a tool-level error (execution_time_exceeded, …)

    @property
    def ok(self) -> bool:
        return self.error_code is None and (self.return_code in (None, 0))


@dataclass(frozen=True)
class TextWritten:
    """A piece of Claude's prose (narration between steps, or part of the answer)."""

    text: str


@dataclass(frozen=True)
class OutputFile:
    """A file the analysis produced, ready to download from the Files API."""

    file_id: str
    filename: str
    mime_type: str
    size_bytes: int


@dataclass(frozen=True)
class Retrying:
    """A call to Claude failed in a way worth retrying; the next attempt follows ``delay`` s."""

    message: str
    attempt: int
    of: int
    delay: float


@dataclass(frozen=True)
class Usage:
    """What one API call used: tokens (input split as the API reports it) and server tools.

    ``input_tokens`` is only the part neither read from nor written to the prompt cache;
    :func:`bot.quotas.tokens_used` is what counts. Web searches are billed per search,
    web fetches only as tokens (``usage.server_tool_use``).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    web_search_requests: int = 0
    web_fetch_requests: int = 0

    @property
    def tokens(self) -> int:
        """The tokens used, as quotas count them (:func:`bot.quotas.tokens_used`)."""
        return tokens_used(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            web_search_requests=self.web_search_requests + other.web_search_requests,
            web_fetch_requests=self.web_fetch_requests + other.web_fetch_requests,
        )


@dataclass(frozen=True)
class Done:
    """The analysis finished. ``answer`` is the interpretation to show."""

    answer: str
    container_id: str | None
    usage: Usage
    steps: int
    files: tuple[OutputFile, ...] = ()
    notes: tuple[str, ...] = field(default=())  # e.g. "the answer was cut off"
    # The exchange as API content, for the conversation's history.
    user_content: list[dict[str, Any]] = field(default_factory=list)
    assistant_content: list[dict[str, Any]] = field(default_factory=list)
    container_expires_at: str | None = None


@dataclass(frozen=True)
class Failed:
    """The analysis could not finish. ``message`` is written for the person who asked."""

    message: str
    retryable: bool
    usage: Usage = field(default_factory=Usage)
    steps: int = 0
    container_id: str | None = None
    detail: str = ""  # for the ledger and logs, never shown


Event = StepStarted | CodeWritten | StepOutput | TextWritten | OutputFile | Retrying | Usage | Done | Failed
