"""The Anthropic client the bot uses, built once from the settings.

It uses the SDK's own retries for 408/409/429/5xx/529 (the engine turns them off for its
streamed calls, which it retries itself), and the SDK's aiohttp transport
(``DefaultAioHttpClient``, the ``aiohttp`` extra): the same client and errors (its transport
errors are httpx2's), on the HTTP stack the bot already runs for Slack, at less CPU per request
than httpx's own (benchmarks/RESULTS.md). Slack's clients are the Slack edge's
(``handlers/slack/clients.py``).
"""

from __future__ import annotations

import anthropic

from bot.settings import FILES_API_BETA, Settings

ANTHROPIC_TIMEOUT_S = 600.0


def anthropic_client(settings: Settings) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        http_client=anthropic.DefaultAioHttpClient(timeout=ANTHROPIC_TIMEOUT_S),
        api_key=settings.anthropic_api_key,
        base_url=settings.anthropic_base_url,
        max_retries=settings.anthropic_max_retries,
        timeout=ANTHROPIC_TIMEOUT_S,
        # anthropic 2.17's client.files sends no beta header; the Files API needs it (docs:
        # build-with-claude/files). Messages calls set their own betas (bot/engine.py).
        default_headers={"anthropic-beta": FILES_API_BETA},
    )
