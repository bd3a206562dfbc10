"""The Slack Web API clients the bot uses, built once from the settings.

Every client gets slack-sdk's retry handlers (rate limits honour ``Retry-After``; server
errors and dropped connections are retried with backoff) and the configured API base URL.
The bot's Web API calls share one aiohttp session (:func:`slack_session`): without one,
slack-sdk opens a new session, and a new connection, for every call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.settings import Settings
from handlers.slack.errors import slack_error_code

# slack-sdk's default: long enough for any Web API call.
SLACK_TIMEOUT_S = 30
# The slowest uplink an upload should still finish on. slack-sdk applies its client timeout
# to the whole POST of a file's bytes, so uploads get a timeout sized for the largest file.
SLOWEST_UPLOAD_BYTES_PER_S = 512 * 1024
# Open connections to Slack's Web API at most (aiohttp's default); more calls wait for one.
SLACK_CONNECTIONS = 100


def slack_session() -> aiohttp.ClientSession:
    """The one HTTP session (keep-alive connections) for the bot's Web API calls; create it
    in the running loop and close it on shutdown. slack-sdk applies a client's ``timeout``
    only to sessions it makes itself, so this session carries :data:`SLACK_TIMEOUT_S`."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=SLACK_TIMEOUT_S),
        connector=aiohttp.TCPConnector(limit=SLACK_CONNECTIONS),
    )


def upload_timeout_s(max_file_mb: float) -> int:
    """Seconds an upload of a ``max_file_mb`` file may take: the API's own allowance plus
    the transfer at :data:`SLOWEST_UPLOAD_BYTES_PER_S`."""
    transfer = math.ceil(max(max_file_mb, 0.0) * 1024 * 1024 / SLOWEST_UPLOAD_BYTES_PER_S)
    return SLACK_TIMEOUT_S + transfer


class MeteredWebClient(AsyncWebClient):
    """An AsyncWebClient that tells ``on_error`` the error code of every failed Web API call
    (after slack-sdk's retries): the one place Slack's errors are counted (bot/metrics.py)."""

    on_error: Callable[[str], None] | None = None

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        try:
            return await super().api_call(api_method, **kwargs)
        except (SlackApiError, SlackRequestError, aiohttp.ClientError, TimeoutError) as error:
            if self.on_error is not None:
                self.on_error(slack_error_code(error))
            raise


def slack_client(
    settings: Settings,
    token: str | None = None,
    *,
    session: aiohttp.ClientSession | None = None,
    on_error: Callable[[str], None] | None = None,
) -> AsyncWebClient:
    """The bot's Web API client, over ``session`` (:func:`slack_session`; None: a new session
    per call); ``on_error`` is told the code of every failed call."""
    client = MeteredWebClient(
        token=token or settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=SLACK_TIMEOUT_S,
        session=session,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )
    client.on_error = on_error
    return client


def upload_client(client: AsyncWebClient, settings: Settings) -> AsyncWebClient:
    """A twin of ``client`` (same token, API and retries) for ``files_upload_v2``, with a
    timeout that lets a file of ``ANALYST_MAX_OUTPUT_FILE_MB`` through. It has no shared
    session: slack-sdk applies that timeout only to a session it opens per call."""
    twin = MeteredWebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=upload_timeout_s(settings.max_output_file_mb),
        retry_handlers=client.retry_handlers,
    )
    twin.on_error = getattr(client, "on_error", None)
    return twin


async def post_message(
    client: AsyncWebClient, channel: str, text: str, *, thread_ts: str | None = None, **kwargs: Any
) -> str:
    """Post the bot's message (in ``thread_ts``'s thread, if given); returns its ts.

    Links are never unfurled: the bot's messages quote questions and Claude's words, and a
    link in them must not fetch a preview of anything.
    """
    response = await client.chat_postMessage(
        channel=channel, thread_ts=thread_ts, text=text, unfurl_links=False, unfurl_media=False, **kwargs
    )
    return str(response["ts"])
