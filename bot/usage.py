"""Usage figures from the run ledger, and how they read in Slack. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.pricing import estimated_cost

WINDOWS: tuple[tuple[str, float], ...] = (("last hour", 3600.0), ("last 24 h", 86400.0), ("last 30 days", 30 * 86400.0))


@dataclass(frozen=True)
class Tally:
    label: str
    runs: int
    input_tokens: int
    output_tokens: int
    cost: float

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


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
                sum(r["input_tokens"] or 0 for r in inside),
                sum(r["output_tokens"] or 0 for r in inside),
                sum(
                    estimated_cost(
                        r["model"] or "",
                        input_tokens=r["input_tokens"] or 0,
                        output_tokens=r["output_tokens"] or 0,
                        cache_read_tokens=r["cache_read_tokens"] or 0,
                        cache_write_tokens=r["cache_write_tokens"] or 0,
                    )
                    for r in inside
                ),
            )
        )
    return tallies


def usage_text(tallies: list[Tally]) -> str:
    lines = ["*Your analyses*"]
    for t in tallies:
        lines.append(
            f"• {t.label}: {t.runs} run{'s' if t.runs != 1 else ''}, {t.tokens:,} tokens "
            f"({t.input_tokens:,} in, {t.output_tokens:,} out), ≈ ${t.cost:,.2f}"
        )
    lines.append("_Costs are estimates from list prices; sandbox time is not included._")
    return "\n".join(lines)
