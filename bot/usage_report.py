"""``slack-analyst usage``: the ledger's runs since a moment, grouped and formatted. Pure.

Rows come from :meth:`bot.store.Store.runs_since` (each run with its 👍/👎 counts). Runs count
as quotas and ``/analyze usage`` count them: admitted runs only (refused requests are shown in a
column of their own and never count as runs), tokens by :func:`bot.quotas.run_tokens`, cost by
:func:`bot.usage.run_cost` (an estimate from list prices; sandbox time is not included).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

from bot.quotas import run_tokens
from bot.usage import run_cost

Grouping = Literal["user", "channel", "day"]
Format = Literal["table", "csv", "json"]
GROUPINGS: tuple[Grouping, ...] = get_args(Grouping)
FORMATS: tuple[Format, ...] = get_args(Format)

#: The label of runs without a user or channel (``slack-analyst ask`` records neither).
NONE_LABEL = "(none)"
TOTAL_LABEL = "total"
COST_NOTE = "Costs are estimates from list prices; code-execution container time is not included."

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)\s*([mhdw])")


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``90m``, ``24h``, ``7d`` or ``2w``; ValueError says what's wrong."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use a number and a unit, m, h, d or w (e.g. 90m, 24h, 7d, 2w)")
    seconds = int(match[1]) * _UNITS[match[2]]
    if seconds <= 0:
        raise ValueError(f"{text!r} is no time at all: use a positive duration (e.g. 7d)")
    return float(seconds)


@dataclass(frozen=True)
class UsageRow:
    """One group's figures (or the totals)."""

    key: str
    runs: int  # admitted: every status but ``refused``
    succeeded: int
    failed: int
    cancelled: int
    refused: int
    tokens: int
    cost: float
    code_executions: int
    thumbs_up: int
    thumbs_down: int


def _key(row: Mapping[str, Any], by: Grouping) -> str:
    if by == "day":
        return str(row["started_at"])[:10]  # stored as UTC ISO 8601: the date is its first 10 characters
    value = row["user_id" if by == "user" else "channel_id"]
    return str(value) if value else NONE_LABEL


def _summarise(key: str, runs: list[Mapping[str, Any]]) -> UsageRow:
    admitted = [r for r in runs if r["status"] != "refused"]

    def status(name: str) -> int:
        return sum(1 for r in runs if r["status"] == name)

    return UsageRow(
        key=key,
        runs=len(admitted),
        succeeded=status("succeeded"),
        failed=status("failed"),
        cancelled=status("cancelled"),
        refused=status("refused"),
        tokens=sum(run_tokens(r) for r in admitted),
        cost=sum(run_cost(r) for r in admitted),
        code_executions=sum(r["code_executions"] or 0 for r in admitted),
        thumbs_up=sum(r["feedback_good"] or 0 for r in runs),
        thumbs_down=sum(r["feedback_bad"] or 0 for r in runs),
    )


def summarise(rows: Iterable[Mapping[str, Any]], by: Grouping) -> tuple[list[UsageRow], UsageRow]:
    """One :class:`UsageRow` per group, and the totals.

    By user or channel, the top spenders come first (cost, then tokens, descending; then the
    key); by day, the days run in order, oldest first.
    """
    rows = list(rows)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(_key(row, by), []).append(row)
    summaries = [_summarise(key, runs) for key, runs in groups.items()]
    if by == "day":
        summaries.sort(key=lambda s: s.key)
    else:
        summaries.sort(key=lambda s: (-s.cost, -s.tokens, s.key))
    return summaries, _summarise(TOTAL_LABEL, rows)


_COLUMNS: tuple[tuple[str, str], ...] = (
    # (UsageRow field, table heading)
    ("runs", "runs"),
    ("succeeded", "ok"),
    ("failed", "failed"),
    ("cancelled", "stopped"),
    ("refused", "refused"),
    ("tokens", "tokens"),
    ("cost", "est. cost"),
    ("code_executions", "code runs"),
    ("thumbs_up", "👍"),
    ("thumbs_down", "👎"),
)


def _cell(row: UsageRow, name: str) -> str:
    value = getattr(row, name)
    return f"${value:,.4f}" if name == "cost" else f"{value:,}"


def _width(text: str) -> int:
    """Terminal columns ``text`` takes (the 👍/👎 headings are two wide)."""
    return sum(2 if ord(char) >= 0x1F000 else 1 for char in text)


def format_table(rows: list[UsageRow], totals: UsageRow, *, by: Grouping, since: str) -> str:
    """Aligned plain text for a terminal: a heading, a row per group, a totals line, the cost note."""
    header = [by, *(heading for _, heading in _COLUMNS)]
    body = [[row.key, *(_cell(row, name) for name, _ in _COLUMNS)] for row in [*rows, totals]]
    widths = [max(_width(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0] + " " * (widths[0] - _width(cells[0]))
        rest = [" " * (w - _width(c)) + c for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [f"Usage since {since} (UTC), by {by}", "", line(header), rule]
    lines += [line(cells) for cells in body[:-1]]
    lines += [rule, line(body[-1]), "", COST_NOTE]
    return "\n".join(lines) + "\n"


def _record(row: UsageRow) -> dict[str, Any]:
    """The row's fields in order, ``cost`` as ``cost_usd`` (rounded to a millionth of a dollar)."""
    return {("cost_usd" if k == "cost" else k): (round(v, 6) if k == "cost" else v) for k, v in asdict(row).items()}


def _field_names(by: Grouping) -> list[str]:
    names = [by if f.name == "key" else f.name for f in fields(UsageRow)]
    return ["cost_usd" if name == "cost" else name for name in names]


def format_csv(rows: list[UsageRow], totals: UsageRow, *, by: Grouping) -> str:
    """A header row, a row per group and a last row keyed ``total``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=_field_names(by), lineterminator="\n")
    writer.writeheader()
    for row in [*rows, totals]:
        record = _record(row)
        record[by] = record.pop("key")
        writer.writerow(record)
    return out.getvalue()


def format_json(rows: list[UsageRow], totals: UsageRow, *, by: Grouping, since: str) -> str:
    """``{"since", "by", "rows": [...], "totals": {...}}``; each row is keyed by the grouping's name."""

    def keyed(row: UsageRow) -> dict[str, Any]:
        record = _record(row)
        return {by: record.pop("key"), **record}

    totals_record = _record(totals)
    del totals_record["key"]
    document = {"since": since, "by": by, "rows": [keyed(row) for row in rows], "totals": totals_record}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render(rows: Iterable[Mapping[str, Any]], *, by: Grouping, fmt: Format, since: str) -> str:
    """The report of ``rows`` (ledger rows with ``feedback_good``/``feedback_bad``) in ``fmt``."""
    summaries, totals = summarise(rows, by)
    if fmt == "csv":
        return format_csv(summaries, totals, by=by)
    if fmt == "json":
        return format_json(summaries, totals, by=by, since=since)
    return format_table(summaries, totals, by=by, since=since)
