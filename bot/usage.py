"""Usage figures from the run ledger, and how they read in Slack. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.pricing import estimated_cost
from bot.quotas import run_tokens

WINDOWS: tuple[tuple[str, float], ...] = (("last hour", 3600.0), ("last 24 h", 86400.0), ("last 30 days", 30 * 86400.0))


def run_cost(row: Mapping[str, Any]) -> float:
    """Estimated cost of one ledger row."""
    return estimated_cost(
        row["model"] or "",
        input_tokens=row["input_tokens"] or 0,
        output_tokens=row["output_tokens"] or 0,
        cache_read_tokens=row["cache_read_tokens"] or 0,
        cache_write_tokens=row["cache_write_tokens"] or 0,
        web_search_requests=row["web_search_requests"] or 0,
    )


@dataclass(frozen=True)
class Tally:
    label: str
    runs: int
    tokens: int  # as quotas count them: every input token (cached or not) and output
    cached_tokens: int  # of which read from the prompt cache
    output_tokens: int
    web_searches: int
    cost: float

    @property
    def input_tokens(self) -> int:
        return self.tokens - self.output_tokens


def tally(rows: Iterable[Mapping[str, Any]], *, now: float, started: Mapping[int, float]) -> list[Tally]:
    """Runs, tokens and estimated cost per window; ``started`` maps run id → start time."""
    rows = list(rows)
    tallies = []
    for label, seconds in WINDOWS:
        inside = [r for r in rows if now - started[r["id"]] <= seconds]
        tallies.append(
            Tally(
                label,
                len(inside),
                sum(run_tokens(r) for r in inside),
                sum(r["cache_read_tokens"] or 0 for r in inside),
                sum(r["output_tokens"] or 0 for r in inside),
                sum(r["web_search_requests"] or 0 for r in inside),
                sum(run_cost(r) for r in inside),
            )
        )
    return tallies


@dataclass(frozen=True)
class Quota:
    runs_last_hour: int
    runs_per_hour: int
    tokens_last_day: int
    daily_tokens: int
    exempt: bool = False


def usage_text(
    tallies: list[Tally], quota: Quota | None = None, top_users: list[tuple[str, int, int, float]] | None = None
) -> str:
    """``/analyze usage``: the caller's figures, their quota and, for admins, the top users
    of the workspace (user id, runs, tokens, cost) over the last 24 hours."""
    lines = ["*Your analyses*"]
    for t in tallies:
        searches = f", {t.web_searches:,} web search{'es' if t.web_searches != 1 else ''}" if t.web_searches else ""
        lines.append(
            f"• {t.label}: {t.runs} run{'s' if t.runs != 1 else ''}, {t.tokens:,} tokens "
            f"({t.input_tokens:,} in, {t.cached_tokens:,} of them from the cache; {t.output_tokens:,} out)"
            f"{searches}, ≈ ${t.cost:,.2f}"
        )
    if quota is not None:
        if quota.exempt:
            lines.append("*Your limits:* none per person (you're an admin); the workspace limit still applies.")
        else:
            lines.append(
                f"*Your limits:* {quota.runs_last_hour} of {quota.runs_per_hour} analyses in the last hour · "
                f"{quota.tokens_last_day:,} of {quota.daily_tokens:,} tokens in the last 24 h"
            )
    if top_users:
        lines.append("*Top users in this workspace, last 24 h*")
        for user_id, runs, tokens, cost in top_users:
            lines.append(f"• <@{user_id}>: {runs} run{'s' if runs != 1 else ''}, {tokens:,} tokens, ≈ ${cost:,.2f}")
    lines.append("_Costs are estimates from list prices; sandbox time is not included._")
    return "\n".join(lines)


def top_users(rows: Iterable[Mapping[str, Any]], limit: int = 5) -> list[tuple[str, int, int, float]]:
    """(user id, runs, tokens, cost) of the heaviest users in ``rows``, heaviest first."""
    per_user: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row["user_id"]:
            per_user.setdefault(str(row["user_id"]), []).append(row)
    totals = []
    for user_id, runs in per_user.items():
        tokens = sum(run_tokens(r) for r in runs)
        cost = sum(run_cost(r) for r in runs)
        totals.append((user_id, len(runs), tokens, cost))
    return sorted(totals, key=lambda t: (-t[2], t[0]))[:limit]
