"""People's ratings of answers: one row per run and person, the latest rating and comment.

Slack's feedback buttons send every toggle and no current state, so the last write wins.
A 👎 may come with a comment ("what was wrong?"), written to the same row.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.schema import RATINGS, Rating
from bot.store import Store, upsert


@dataclass(frozen=True)
class Ratings:
    good: int = 0
    bad: int = 0

    @property
    def total(self) -> int:
        return self.good + self.bad

    def describe(self) -> str:
        """e.g. "👍 3 · 👎 1 (75 % positive)", or "no ratings"."""
        if not self.total:
            return "no ratings"
        return f"👍 {self.good} · 👎 {self.bad} ({round(100 * self.good / self.total)} % positive)"


class FeedbackStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def rate(self, *, run_id: int, user_id: str, team_id: str, rating: Rating) -> None:
        """Record ``user_id``'s rating of the run's answer, replacing any earlier one."""
        if rating not in RATINGS:
            raise ValueError(f"unknown rating {rating!r}")
        row = {"run_id": run_id, "user_id": user_id, "team_id": team_id, "rating": rating}
        await self._upsert(row)

    async def comment(self, *, run_id: int, user_id: str, team_id: str, comment: str) -> None:
        """Record what ``user_id`` said was wrong with the run's answer (keeps their rating)."""
        await self._upsert({"run_id": run_id, "user_id": user_id, "team_id": team_id, "comment": comment})

    async def _upsert(self, row: dict[str, object]) -> None:
        sql, params = upsert("feedback", {**row, "updated_at": self.store.now()}, key=("run_id", "user_id"))
        await self.store.database.execute(sql, params)

    async def of_run(self, run_id: int) -> list[dict[str, object]]:
        """Every person's feedback on the run, oldest first."""
        return await self.store.database.fetch(
            "SELECT * FROM feedback WHERE run_id = ? ORDER BY updated_at, user_id", [run_id]
        )

    async def ratings_since(self, since: str, *, team_id: str | None = None) -> Ratings:
        """The ratings given since ``since`` (in one workspace, or all)."""
        where, params = "updated_at >= ?", [since]
        if team_id is not None:
            where, params = where + " AND team_id = ?", [*params, team_id]
        rows = await self.store.database.fetch(
            f"SELECT rating, COUNT(*) AS n FROM feedback WHERE {where} GROUP BY rating",  # noqa: S608 - fixed clauses
            params,
        )
        counts = {row["rating"]: row["n"] for row in rows}
        return Ratings(good=int(counts.get("good", 0)), bad=int(counts.get("bad", 0)))
