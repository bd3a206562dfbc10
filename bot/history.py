"""What a person's Home tab shows, read from the store: the quota they have left (and when
more comes back), their latest analyses and, for admins, the workspace's last 7 days.

Plain data for a surface to lay out. The counting is the ledger's, as admission and
``/analyze usage`` count (:func:`bot.usage.tally`, :mod:`bot.quotas`); the rest are pure
functions over ``runs`` rows, so tests can call them directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.feedback import FeedbackStore, Ratings
from bot.quotas import DAY, HOUR, run_slot_frees_at, run_tokens, when_tokens_free
from bot.requests import AnalysisRequest
from bot.sanitize import neutralize
from bot.schema import RunStatus
from bot.settings import Settings
from bot.store import ConversationStore, Store, parse_iso, thread_key, utc_iso
from bot.usage import run_cost, tally, top_users

#: How many of a person's analyses the Home tab lists.
LAST_RUNS = 10
WEEK = 7 * DAY
QUESTION_CHARS = 300
FILE_NAME_CHARS = 80
FILES_SHOWN = 5


@dataclass(frozen=True)
class Allowance:
    """One rolling limit: how much of it is used, and when more of it comes back."""

    used: int
    limit: int
    frees_at: float | None  # when the next analysis / tokens become available (None: nothing used)

    @property
    def left(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True)
class QuotaLeft:
    exempt: bool  # admins have no per-person limits
    runs: Allowance  # analyses started in the rolling hour
    tokens: Allowance  # tokens used in the rolling 24 hours


@dataclass(frozen=True)
class PastRun:
    """One of the person's analyses, ready to show (texts neutralised and clipped)."""

    id: int
    question: str
    files: tuple[str, ...]  # at most FILES_SHOWN names
    more_files: int  # files beyond those
    status: RunStatus
    started_at: float
    tokens: int
    cost: float
    channel_id: str | None
    thread_ts: str | None


@dataclass(frozen=True)
class WeekFigures:
    """The workspace's last 7 days (admins see them)."""

    runs: int
    tokens: int
    cost: float
    top_users: list[tuple[str, int, int, float]]  # (user id, runs, tokens, cost), heaviest first
    ratings: Ratings


@dataclass(frozen=True)
class HomeData:
    user_id: str
    quota: QuotaLeft
    runs: tuple[PastRun, ...]  # newest first
    workspace: WeekFigures | None  # admins only

    @property
    def has_history(self) -> bool:
        return bool(self.runs)


# -- pure functions --------------------------------------------------------------------


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis where it was cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def next_run_at(starts: Sequence[float], limit: int) -> float | None:
    """When one more analysis becomes available, given the rolling hour's start times: at
    the limit, when admission would take the next one; below it, when the oldest leaves
    the window. None when the hour has none."""
    if not starts:
        return None
    if len(starts) >= limit:
        return run_slot_frees_at(starts, limit)
    return min(starts) + HOUR


def next_tokens_at(entries: Sequence[tuple[float, int]], limit: int) -> float | None:
    """When tokens come back, given the rolling day's (start, tokens): at or over the limit,
    when usage falls back under it; below it, when the oldest run's leave the window."""
    if not entries:
        return None
    if sum(tokens for _, tokens in entries) >= limit:
        return when_tokens_free(entries, limit)
    return min(start for start, _ in entries) + DAY


def quota_left(
    rows: Sequence[Mapping[str, Any]], *, now: float, runs_per_hour: int, daily_tokens: int, exempt: bool
) -> QuotaLeft:
    """The person's allowances as of ``now``, from their admitted runs of the last 24 hours."""
    started = {row["id"]: parse_iso(row["started_at"]) for row in rows}
    hour, day = tally(rows, now=now, started=started)[:2]
    starts = [at for at in started.values() if now - at <= HOUR]
    entries = [(started[row["id"]], run_tokens(row)) for row in rows if now - started[row["id"]] <= DAY]
    return QuotaLeft(
        exempt=exempt,
        runs=Allowance(hour.runs, runs_per_hour, next_run_at(starts, runs_per_hour)),
        tokens=Allowance(day.tokens, daily_tokens, next_tokens_at(entries, daily_tokens)),
    )


def asked_with(row: Mapping[str, Any]) -> list[str]:
    """Names of the files the run's request came with (none for a follow-up without files)."""
    try:
        request = AnalysisRequest.from_json(str(row["request"]))
    except (KeyError, TypeError, ValueError):
        return []
    return [file.name for file in request.files if file.name]


def past_run(row: Mapping[str, Any], conversation_files: Sequence[str]) -> PastRun:
    """A ledger row as the Home tab lists it. Its files are the ones the question came
    with, else the conversation's (what a follow-up analysed)."""
    names = asked_with(row) or list(conversation_files)
    shown = tuple(clip(neutralize(name), FILE_NAME_CHARS) for name in names[:FILES_SHOWN])
    question = " ".join(str(row["question"] or "").split())
    return PastRun(
        id=int(row["id"]),
        question=clip(neutralize(question), QUESTION_CHARS),
        files=shown,
        more_files=max(0, len(names) - FILES_SHOWN),
        status=row["status"],
        started_at=parse_iso(row["started_at"]),
        tokens=run_tokens(row),
        cost=run_cost(row),
        channel_id=row["channel_id"],
        thread_ts=row["thread_ts"],
    )


def week_figures(rows: Iterable[Mapping[str, Any]], ratings: Ratings) -> WeekFigures:
    """Totals, top users and ratings of the workspace's admitted runs of the week."""
    rows = list(rows)
    return WeekFigures(
        runs=len(rows),
        tokens=sum(run_tokens(row) for row in rows),
        cost=sum(run_cost(row) for row in rows),
        top_users=top_users(rows),
        ratings=ratings,
    )


def _conversation(row: Mapping[str, Any]) -> str | None:
    channel_id, thread_ts = row["channel_id"], row["thread_ts"]
    return thread_key(channel_id, thread_ts) if channel_id and thread_ts else None


# -- from the store ----------------------------------------------------------------------


async def home_data(store: Store, settings: Settings, *, user_id: str, team_id: str) -> HomeData:
    """Everything the person's Home tab shows, as of now."""
    now = store.clock()
    admin = user_id in settings.admins
    day = await store.admitted_runs_of_user_since(user_id, utc_iso(now - DAY))
    quota = quota_left(
        day, now=now, runs_per_hour=settings.runs_per_hour, daily_tokens=settings.daily_tokens_per_user, exempt=admin
    )
    latest = await store.latest_runs_of_user(user_id, LAST_RUNS)
    files = await ConversationStore(store).file_names(key for row in latest if (key := _conversation(row)))
    runs = tuple(past_run(row, files.get(_conversation(row) or "", [])) for row in latest)
    workspace = None
    if admin:
        since = utc_iso(now - WEEK)
        ratings = await FeedbackStore(store).ratings_since(since, team_id=team_id)
        workspace = week_figures(await store.admitted_runs_of_team_since(team_id, since), ratings)
    return HomeData(user_id=user_id, quota=quota, runs=runs, workspace=workspace)
