"""The App Home tab: what the bot does and how to start, the person's quota and latest
analyses, and for admins the workspace's last 7 days — a ``home`` view within Block Kit's
limits whatever the history.

:func:`home_view` is pure (tests call it directly); :func:`show_home` reads the figures
from the analyst, looks up each thread's permalink and publishes the view.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.analyst import Analyst
from bot.history import Allowance, HomeData, PastRun, QuotaLeft, WeekFigures
from bot.quotas import slack_time
from handlers.slack.errors import slack_error_code

log = logging.getLogger(__name__)

JSON = dict[str, Any]

# docs: reference/views/home-tab-views — "blocks: ... Max of 100 blocks."
MAX_VIEW_BLOCKS = 100
# docs: reference/block-kit/blocks/section-block — "text: ... Maximum length for the text in this field is 3000"
SECTION_TEXT_LIMIT = 3000

STATUS = {
    "succeeded": "✅ done",
    "failed": "⚠️ failed",
    "cancelled": "⏹️ stopped",
    "queued": "⏳ waiting",
    "running": "⏳ running",
    "refused": "🚫 refused",
}
COST_NOTE = "Costs are estimates from list prices; sandbox time is not included."
UNAVAILABLE = (
    "Your quota and latest analyses couldn't be loaded just now. Open this tab again in a minute; "
    "if it keeps happening, tell whoever runs the bot."
)


# -- the view (pure) -----------------------------------------------------------------------


def home_view(
    data: HomeData | None, *, permalinks: Mapping[int, str] | None = None, bot_user_id: str | None = None
) -> JSON:
    """The Home tab: the how-to; with history, the quota and latest analyses; for admins,
    the workspace's week. ``data`` None (the figures couldn't be read) shows the how-to
    and says so. ``permalinks`` maps run ids to their thread's link (runs without one are
    listed unlinked)."""
    blocks = how_to_blocks(bot_user_id)
    if data is None:
        blocks.append(_context(UNAVAILABLE))
    elif data.has_history:
        blocks += [_divider(), *quota_blocks(data.quota), _divider(), *history_blocks(data.runs, permalinks or {})]
    if data is not None and data.workspace is not None and data.workspace.runs:
        blocks += [_divider(), *workspace_blocks(data.workspace)]
    return {"type": "home", "blocks": blocks}


def how_to_blocks(bot_user_id: str | None = None) -> list[JSON]:
    me = f"<@{bot_user_id}>" if bot_user_id else "@Analyst"
    return [
        _header("A data scientist in your threads"),
        _section(
            "Share a CSV or a spreadsheet and ask a question. I analyse it with Claude, which runs real "
            "code (pandas, matplotlib) in a sandbox as often as the question needs, then post the "
            "findings, the charts and the code in the thread."
        ),
        _section(
            "*How to start*\n"
            f"• *Mention me with a file* in a channel I'm in: {me} what drives churn here? 📎\n"
            "• *`/analyze [question]`* in a channel: uses the file you shared there most recently, "
            "or a file link in the question.\n"
            "• *Send me a direct message* (the Messages tab) with a file or a question.\n"
            "Reply in the thread to follow up. `/analyze usage` shows your usage, `/analyze help` more."
        ),
    ]


def quota_blocks(quota: QuotaLeft) -> list[JSON]:
    if quota.exempt:
        text = (
            "No per-person limits: you're an admin (the workspace's daily token limit still applies). "
            f"In use: {_plural(quota.runs.used, 'analysis', 'analyses')} this hour, "
            f"{quota.tokens.used:,} tokens in 24 h."
        )
    else:
        text = "\n".join(
            [
                f"• *Analyses this hour:* {_allowance(quota.runs, '', 'another frees', 'one frees')}",
                f"• *Tokens in 24 h:* {_allowance(quota.tokens, ',', 'more come back', 'they come back')}",
            ]
        )
    return [_header("Your quota"), _section(text)]


def _allowance(allowance: Allowance, fmt: str, more_at: str, next_at: str) -> str:
    if allowance.left:
        line = f"{allowance.left:{fmt}} of {allowance.limit:{fmt}} left"
        when = more_at
    else:
        line = f"none left ({allowance.used:{fmt}} of {allowance.limit:{fmt}} used)"
        when = next_at
    if allowance.frees_at is not None and allowance.used:
        line += f" — {when} at {slack_time(allowance.frees_at)}"
    return line


def history_blocks(runs: Iterable[PastRun], permalinks: Mapping[int, str]) -> list[JSON]:
    listed = list(runs)
    title = "Your latest analysis" if len(listed) == 1 else f"Your latest {len(listed)} analyses"
    return [
        _header(title),
        *(_section(past_run_text(run, permalinks.get(run.id))) for run in listed),
        _context(COST_NOTE),
    ]


def past_run_text(run: PastRun, permalink: str | None) -> str:
    question = escape(run.question) if run.question else "(no question: the file alone)"
    first = f"*<{permalink}|{question}>*" if permalink else f"*{question}*"
    details = []
    if run.files:
        names = ", ".join(f"`{escape(name)}`" for name in run.files)
        details.append(f"📎 {names}" + (f" and {run.more_files} more" if run.more_files else ""))
    details += [STATUS.get(run.status, run.status), _cost(run.cost), _date_time(run.started_at)]
    return f"{first}\n{' · '.join(details)}"


def workspace_blocks(week: WeekFigures) -> list[JSON]:
    blocks = [
        _header("This workspace, last 7 days"),
        _section(
            f"*{_plural(week.runs, 'analysis', 'analyses')}* · *{week.tokens:,}* tokens · {_cost(week.cost)}\n"
            f"*Feedback:* {week.ratings.describe()}"
        ),
    ]
    if week.top_users:
        lines = [
            f"• <@{user_id}>: {_plural(runs, 'run', 'runs')}, {tokens:,} tokens, {_cost(cost)}"
            for user_id, runs, tokens, cost in week.top_users
        ]
        blocks.append(_section("*Top users*\n" + "\n".join(lines)))
    return blocks


def escape(text: str) -> str:
    """Text shown as is in ``mrkdwn``: Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cost(cost: float) -> str:
    return "≈ < $0.01" if 0 < cost < 0.005 else f"≈ ${cost:,.2f}"


def _plural(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


def _date_time(timestamp: float) -> str:
    """A date and time Slack shows in each reader's own time zone (UTC in the fallback)."""
    fallback = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(timestamp)}^{{date_short_pretty}} {{time}}|{fallback}>"


def _header(text: str) -> JSON:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}


def _section(text: str) -> JSON:
    if len(text) > SECTION_TEXT_LIMIT:
        text = text[: SECTION_TEXT_LIMIT - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> JSON:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _divider() -> JSON:
    return {"type": "divider"}


# -- publishing ------------------------------------------------------------------------------


async def permalinks(client: AsyncWebClient, runs: Iterable[PastRun]) -> dict[int, str]:
    """Each run's thread link (``chat.getPermalink``); a thread Slack won't link is left out."""
    listed = [run for run in runs if run.channel_id and run.thread_ts]
    threads = sorted({(str(run.channel_id), str(run.thread_ts)) for run in listed})

    async def link(channel_id: str, thread_ts: str) -> str | None:
        try:
            answer = await client.chat_getPermalink(channel=channel_id, message_ts=thread_ts)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as error:
            log.info("no permalink for %s/%s: %s", channel_id, thread_ts, slack_error_code(error))
            return None
        found = answer.get("permalink")
        return str(found) if found else None

    found = dict(zip(threads, await asyncio.gather(*(link(*thread) for thread in threads)), strict=True))
    return {run.id: url for run in listed if (url := found.get((str(run.channel_id), str(run.thread_ts))))}


async def show_home(
    analyst: Analyst, client: AsyncWebClient, *, user_id: str, team_id: str, bot_user_id: str | None
) -> None:
    """Publish the person's Home tab (``views.publish``), from the store's figures."""
    data: HomeData | None
    try:
        data = await analyst.home(user_id, team_id)
    except Exception:
        log.exception("could not read the Home tab figures of %s", user_id)
        data = None
    links = await permalinks(client, data.runs) if data is not None else {}
    try:
        await client.views_publish(user_id=user_id, view=home_view(data, permalinks=links, bot_user_id=bot_user_id))
    except (SlackApiError, aiohttp.ClientError, TimeoutError) as error:
        log.warning("could not publish the Home tab of %s: %s", user_id, slack_error_code(error))
