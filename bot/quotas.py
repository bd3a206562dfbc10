"""Quota arithmetic: may this person start an analysis now, and if not, when? Pure.

Every limit is counted from the run ledger (one source of truth, so limits survive
restarts and agree with ``/analyze usage``): runs a person started in the rolling hour,
their analyses queued or running, and the tokens they used (:func:`tokens_used`) over the
rolling 24 hours, for them and for the whole workspace. Refused requests are recorded but
never count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

HOUR = 3600.0
DAY = 86400.0


def tokens_used(*, input_tokens: int, output_tokens: int, cache_read_tokens: int, cache_write_tokens: int) -> int:
    """The tokens an analysis used — what quotas, ``/analyze usage`` and the ledger's totals count.

    Every input token counts, cached or not: the API's ``input_tokens`` is only the part
    after the last cache breakpoint. docs: build-with-claude/prompt-caching — "total input
    tokens = cache_read_input_tokens + cache_creation_input_tokens + input_tokens".
    """
    return input_tokens + cache_read_tokens + cache_write_tokens + output_tokens


def run_tokens(row: Mapping[str, Any]) -> int:
    """:func:`tokens_used` of one run in the ledger (``runs`` row; missing counts are 0)."""
    return tokens_used(
        input_tokens=row["input_tokens"] or 0,
        output_tokens=row["output_tokens"] or 0,
        cache_read_tokens=row["cache_read_tokens"] or 0,
        cache_write_tokens=row["cache_write_tokens"] or 0,
    )


@dataclass(frozen=True)
class Limits:
    runs_per_hour: int
    max_concurrent_per_user: int
    daily_tokens_per_user: int
    daily_tokens_per_workspace: int


@dataclass(frozen=True)
class Totals:
    """The ledger's counts, summed: what the store reads first (one aggregate per scope), so
    admitting someone under every limit never reads the runs themselves."""

    runs_last_hour: int  # the person's admitted runs started in the rolling hour
    active: int  # the person's runs queued or running
    user_tokens: int  # the person's tokens over the rolling 24 hours
    workspace_tokens: int  # everyone's in the workspace


def limit_reached(totals: Totals, limits: Limits, *, exempt: bool = False) -> str | None:
    """The setting of the first limit ``totals`` reach (in the order :func:`check` tells them),
    or None when every count is under its limit. ``exempt`` skips the per-user limits."""
    if not exempt:
        if totals.active >= limits.max_concurrent_per_user:
            return "ANALYST_MAX_CONCURRENT_PER_USER"
        if totals.runs_last_hour >= limits.runs_per_hour:
            return "ANALYST_RUNS_PER_HOUR"
        if totals.user_tokens >= limits.daily_tokens_per_user:
            return "ANALYST_DAILY_TOKENS_PER_USER"
    if totals.workspace_tokens >= limits.daily_tokens_per_workspace:
        return "ANALYST_DAILY_TOKENS_PER_WORKSPACE"
    return None


@dataclass(frozen=True)
class LedgerState:
    """What the ledger says, as of ``now``."""

    run_starts: Sequence[float]  # the person's admitted runs in the last hour (start times)
    active: int  # the person's runs queued or running
    user_tokens: Sequence[tuple[float, int]]  # (start, tokens) of the person's runs in the last 24 h
    workspace_tokens: Sequence[tuple[float, int]]  # the same for everyone in the workspace

    @property
    def totals(self) -> Totals:
        return Totals(
            runs_last_hour=len(self.run_starts),
            active=self.active,
            user_tokens=sum(tokens for _, tokens in self.user_tokens),
            workspace_tokens=sum(tokens for _, tokens in self.workspace_tokens),
        )


@dataclass(frozen=True)
class Refusal:
    limit: str  # the setting's name, for the ledger
    message: str  # for the person
    next_slot_at: float | None  # when a slot frees (None: when a running analysis ends)


def slack_time(timestamp: float) -> str:
    """A time Slack shows in each reader's own time zone (UTC in the fallback)."""
    fallback = datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M UTC")
    return f"<!date^{int(timestamp)}^{{time}}|{fallback}>"


def _in_minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes / 60:.1f} h"


def run_slot_frees_at(starts: Sequence[float], limit: int) -> float:
    """When a person with runs started at ``starts`` (the rolling hour's, at least ``limit``
    of them) may start another."""
    return sorted(starts)[len(starts) - limit] + HOUR


def when_tokens_free(entries: Sequence[tuple[float, int]], limit: int) -> float | None:
    """When enough of the rolling window's usage ages out to go back under ``limit``."""
    total = sum(tokens for _, tokens in entries)
    for started, tokens in sorted(entries):
        total -= tokens
        if total < limit:
            return started + DAY
    return None


def _tokens_refusal(
    entries: Sequence[tuple[float, int]], limit: int, setting: str, who: str, whose: str, now: float
) -> Refusal:
    """The refusal once the rolling 24 hours of ``entries`` reached ``limit`` tokens."""
    used = sum(tokens for _, tokens in entries)
    frees_at = when_tokens_free(entries, limit)
    when = f" Capacity frees at {slack_time(frees_at)} (in {_in_minutes(frees_at - now)})." if frees_at else ""
    return Refusal(setting, f"{who} used {used:,} of {whose} {limit:,} tokens for the last 24 hours.{when}", frees_at)


def check(usage: LedgerState, limits: Limits, *, now: float, exempt: bool = False) -> Refusal | None:
    """The first limit this request would break (:func:`limit_reached`), explained, or None to
    admit it. ``exempt`` (admins) skips the per-user limits; the workspace's still applies."""
    reached = limit_reached(usage.totals, limits, exempt=exempt)
    if reached == "ANALYST_MAX_CONCURRENT_PER_USER":
        plural = "analyses" if limits.max_concurrent_per_user != 1 else "analysis"
        return Refusal(
            reached,
            f"You already have {usage.active} {plural} in progress (the limit is "
            f"{limits.max_concurrent_per_user} at a time). Ask again when it has finished.",
            None,
        )
    if reached == "ANALYST_RUNS_PER_HOUR":
        starts = usage.run_starts
        frees = run_slot_frees_at(starts, limits.runs_per_hour)
        return Refusal(
            reached,
            f"You've reached your limit of {limits.runs_per_hour} analyses per hour "
            f"({len(starts)} in the last hour). Your next slot frees at {slack_time(frees)} "
            f"(in {_in_minutes(frees - now)}).",
            frees,
        )
    if reached == "ANALYST_DAILY_TOKENS_PER_USER":
        return _tokens_refusal(usage.user_tokens, limits.daily_tokens_per_user, reached, "You've", "your", now)
    if reached == "ANALYST_DAILY_TOKENS_PER_WORKSPACE":
        return _tokens_refusal(
            usage.workspace_tokens, limits.daily_tokens_per_workspace, reached, "This workspace has", "its", now
        )
    return None
