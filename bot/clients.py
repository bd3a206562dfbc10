"""The API clients the bot uses, built once from the settings.

Every Slack client gets slack-sdk's retry handlers (rate limits honour ``Retry-After``;
server errors and dropped connections are retried with backoff) and the configured API
base URL. The Anthropic client uses the SDK's own retries for 408/409/429/5xx/529.
"""

from __future__ import annotations

import anthropic
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import FILES_API_BETA, Settings

ANTHROPIC_TIMEOUT_S = 600.0


def slack_client(settings: Settings, token: str | None = None) -> AsyncWebClient:
    return AsyncWebClient(
        token=token or settings.slack_bot_token,
        base_url=settings.slack_api_url,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def anthropic_client(settings: Settings) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key=settings.anthropic_api_key,
        base_url=settings.anthropic_base_url,
        max_retries=settings.anthropic_max_retries,
        timeout=ANTHROPIC_TIMEOUT_S,
        # anthropic 2.17's client.files sends no beta header; the Files API needs it (docs:
        # build-with-claude/files). Messages calls set their own betas (bot/engine.py).
        default_headers={"anthropic-beta": FILES_API_BETA},
    )
