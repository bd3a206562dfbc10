"""Failures, translated into sentences for the person in the thread. Pure functions.

Each message says what failed and whether trying again helps; details that only an
operator needs (status codes, request ids) go to the log and the run ledger instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import anthropic
import httpx2

from bot.schema import RunStatus


@dataclass(frozen=True)
class Problem:
    """A failure as the person sees it (``message``) and as the ledger records it (``detail``)."""

    message: str
    retryable: bool
    detail: str


class UserFacingError(Exception):
    """An error whose text is meant for the person who asked."""

    def __init__(self, message: str, *, retryable: bool = False, detail: str = "", status: RunStatus = "failed"):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.detail = detail or message
        self.status = status


class FileUnavailable(UserFacingError):
    """The surface has no such file for the bot: never existed, deleted, or somewhere the bot isn't."""


TOOL_ERRORS = {
    "execution_time_exceeded": "a step of the analysis ran longer than the sandbox allows",
    "output_file_too_large": "a file the analysis produced was too large to return",
    "unavailable": "the code sandbox was unavailable",
    "too_many_requests": "the code sandbox was busy",
    "invalid_tool_input": "Claude sent the sandbox malformed input",
    "file_not_found": "a file the analysis needed was missing from the sandbox",
}


def describe_tool_error(code: str) -> str:
    return TOOL_ERRORS.get(code, f"the sandbox reported `{code}`")


def error_type(error: anthropic.APIStatusError) -> str | None:
    """The API's error type (``overloaded_error``, …), also for errors sent inside a stream."""
    body = error.body if isinstance(error.body, dict) else {}
    inner = body.get("error") if isinstance(body.get("error"), dict) else body
    value = inner.get("type") if isinstance(inner, dict) else None
    return str(value) if value else getattr(error, "type", None)


def api_message(error: anthropic.APIStatusError) -> str:
    """The API's own ``error.message`` (anthropic 2.17 calls it ``api_message``; read from the
    body so older SDK releases give the same), never the SDK's rendering of the whole error."""
    body = error.body if isinstance(error.body, dict) else {}
    inner = body.get("error") if isinstance(body.get("error"), dict) else body
    value = inner.get("message") if isinstance(inner, dict) else None
    return str(value) if isinstance(value, str) else str(getattr(error, "api_message", None) or "")


def _request_id(error: anthropic.APIStatusError) -> str:
    request_id = getattr(error, "request_id", None)
    return f" request_id={request_id}" if request_id else ""


class StreamBroken(Exception):
    """The connection dropped after Claude had started answering.

    SDK releases disagree on what a dropped stream raises (a raw ``httpx2`` transport
    error up to anthropic 2.16, ``anthropic.APIConnectionError`` from 2.17), so the
    engine turns either, when raised mid-stream, into this one exception.
    """


AnthropicFailure = anthropic.APIError | httpx2.TransportError | StreamBroken


def anthropic_error_kind(error: AnthropicFailure) -> str:
    """A short, bounded name for how a call to Anthropic failed (a metrics label): the API's
    error type without ``_error`` (``overloaded``, ``rate_limit``, …), else ``http_<status>``,
    ``stream_broken``, ``timeout`` or ``connection``."""
    if isinstance(error, StreamBroken | httpx2.TransportError):
        return "stream_broken"
    if isinstance(error, anthropic.APITimeoutError):
        return "timeout"
    if isinstance(error, anthropic.APIConnectionError):
        return "connection"
    if isinstance(error, anthropic.APIStatusError):
        kind = error_type(error)
        if kind and re.fullmatch(r"[a-z_]{1,40}", kind):
            return kind.removesuffix("_error")
        return f"http_{error.status_code}"
    return "other"


def describe_anthropic_error(error: AnthropicFailure) -> Problem:
    """What to tell a person when the Anthropic API failed (after the SDK's own retries).

    Errors inside a streamed answer arrive differently: a broken connection as
    :class:`StreamBroken`, an ``error`` event as an APIStatusError with the event's type.
    """
    if isinstance(error, StreamBroken | httpx2.TransportError):
        return Problem(
            "The connection to Claude broke in the middle of the answer, so I haven't posted a partial "
            "result. Try again.",
            True,
            f"anthropic stream broken: {error!r}",
        )
    if isinstance(error, anthropic.APITimeoutError):
        return Problem("Claude took too long to answer. Try again in a minute.", True, "anthropic timeout")
    if isinstance(error, anthropic.APIConnectionError):
        return Problem(
            "I couldn't reach Claude (network error). Try again in a minute.",
            True,
            f"anthropic connection: {error}",
        )
    if not isinstance(error, anthropic.APIStatusError):
        return Problem("Something went wrong talking to Claude. Try again.", True, f"anthropic: {error}")
    detail = f"anthropic {error.status_code}: {error.message}{_request_id(error)}"
    status = error.status_code
    kind = error_type(error)
    if kind == "overloaded_error" or isinstance(error, anthropic.OverloadedError) or status == 529:
        return Problem("Claude is overloaded right now. Try again in a few minutes.", True, detail)
    if isinstance(error, anthropic.RateLimitError):
        return Problem("This workspace has hit its Anthropic rate limit. Try again in a few minutes.", True, detail)
    if isinstance(error, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
        return Problem(
            "The bot's Anthropic API key was rejected, so retrying won't help. "
            "Ask whoever runs the bot to check ANTHROPIC_API_KEY.",
            False,
            detail,
        )
    if isinstance(error, anthropic.ContentTooLargeError) or status == 413:
        return Problem("That request was too large for Claude. Try a smaller file or extract.", False, detail)
    if isinstance(error, anthropic.BadRequestError):
        return Problem(
            "Claude rejected the request, so retrying the same thing won't help. "
            "Try rephrasing, or a smaller or simpler file. (The bot's operator can find details in the log.)",
            False,
            detail,
        )
    if status >= 500:
        return Problem("Claude's service had an error. Try again in a few minutes.", True, detail)
    return Problem("Claude returned an unexpected error. Try again.", True, detail)
