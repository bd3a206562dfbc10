"""The progress events of one run, in order, as its subscribers see them.

A run is one stream. The run lifecycle (:mod:`bot.run`) emits the events around the
analysis: :class:`Queued`, :class:`Started`, :class:`Preparing`, :class:`FilesRefused`,
:class:`FilesReady`, :class:`QuestionTruncated`; the engine (:mod:`bot.engine`) emits the
analysis itself: steps, code, outputs, text, files, retries and usage, ending with exactly
one :class:`Done` or :class:`Failed`. The run then says :class:`FilesLeftOut` if it had to,
and ends the stream with :class:`Finished` (after :class:`Cancelled` when someone stopped
it), or with :class:`Interrupted` when the process is shutting down. Subscribers — a
surface's publisher, the ledger — consume the same stream.

These are *progress* events, not Slack events: Slack's payloads never get past ``handlers/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.pricing import estimated_cost
from bot.quotas import tokens_used
from bot.schema import RunStatus

#: The title a step is first announced with, before its input (and so its real title) is known.
PENDING_STEP_TITLE = "Working in the sandbox"


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
    # The pages a web search found or a web fetch read, as (url, title).
    sources: tuple[tuple[str, str], ...] = ()

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
    kind: str = ""  # what failed (bot.errors.anthropic_error_kind), for the metrics
    # A 429/529 that said when to come back: waited out without using up an attempt
    # (``attempt`` is the same one again).
    rate_limited: bool = False


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

    def cost(self, model: str) -> float:
        """Estimated cost in dollars at ``model``'s list prices (:func:`bot.pricing.estimated_cost`)."""
        return estimated_cost(
            model,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            web_search_requests=self.web_search_requests,
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
    code_runs: int = 0  # steps that executed code (file edits and views execute nothing)
    notes: tuple[str, ...] = field(default=())  # e.g. "the answer was cut off"
    # The exchange as API content, for the conversation's history.
    user_content: list[dict[str, Any]] = field(default_factory=list)
    assistant_content: list[dict[str, Any]] = field(default_factory=list)
    container_expires_at: str | None = None


@dataclass(frozen=True)
class Failed:
    """The analysis could not finish. ``message`` is written for the person who asked.

    The engine emits it when Claude's side fails; the run emits it for everything else
    (a refused file, a download that broke, a deadline), with the ledger ``status``.
    """

    message: str
    retryable: bool
    usage: Usage = field(default_factory=Usage)
    steps: int = 0
    container_id: str | None = None
    detail: str = ""  # for the ledger and logs, never shown
    code_runs: int = 0
    status: RunStatus = "failed"  # "refused" when it was the data, not the work
    kind: str = ""  # when Anthropic failed: how (bot.errors.anthropic_error_kind), for the metrics


# -- the run around the analysis ------------------------------------------------------------


@dataclass(frozen=True)
class QuestionTruncated:
    """The question was longer than the limit; its first ``limit`` characters are used."""

    limit: int


@dataclass(frozen=True)
class Queued:
    """Every slot is taken: the run waits, ``position`` in line."""

    position: int


@dataclass(frozen=True)
class Started:
    """The run has its slot and begins."""


@dataclass(frozen=True)
class Preparing:
    """The files are being fetched and checked; ``title`` names the work."""

    title: str


@dataclass(frozen=True)
class FilesRefused:
    """Some of the files can't be used (each reason says why); the rest are analysed."""

    reasons: tuple[str, ...]


@dataclass(frozen=True)
class FilesReady:
    """The data is in the Files API, ready for the sandbox; the analysis begins.

    ``columns`` are the header of the first new CSV/TSV file, when it could be read
    (:func:`bot.columns.header_columns`): what the surface suggests questions about."""

    names: tuple[str, ...]
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class FilesLeftOut:
    """Thread files that couldn't be brought back into a fresh container."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Finished:
    """The run is over. ``status`` is the ledger's; ``files_posted`` what the surface delivered."""

    status: RunStatus
    error: str | None = None
    code_runs: int = 0
    files_posted: int = 0


@dataclass(frozen=True)
class Cancelled:
    """The run was stopped by ``by`` (its asker or an admin); Finished follows, ``cancelled``."""

    by: str


@dataclass(frozen=True)
class Interrupted:
    """The process is shutting down mid-run: the run stays queued for the next start."""


Outcome = Done | Failed


AnalysisEvent = StepStarted | CodeWritten | StepOutput | TextWritten | OutputFile | Retrying | Usage | Done | Failed
"""What the engine emits."""

RunEvent = (
    AnalysisEvent
    | QuestionTruncated
    | Queued
    | Started
    | Preparing
    | FilesRefused
    | FilesReady
    | FilesLeftOut
    | Cancelled
    | Finished
    | Interrupted
)
"""Everything a run's subscribers see."""
