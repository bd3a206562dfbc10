"""Reads a cProfile dump of the bot process into the hot spots RESULTS.md lists."""

from __future__ import annotations

import pstats
from dataclasses import dataclass
from pathlib import Path

from benchmarks.rig import REPO

PROJECT_DIRS = ("bot/", "handlers/")


@dataclass(frozen=True)
class HotSpot:
    where: str  # file:function
    share: float  # of the profiled CPU time
    seconds: float
    calls: int


def _where(filename: str, function: str) -> str:
    path = filename
    if path.startswith(str(REPO) + "/"):
        path = path[len(str(REPO)) + 1 :]
    elif "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif "/lib/python3" in path:
        path = "stdlib/" + path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return f"{path}:{function}"


def hot_spots(dump: Path, *, top: int = 15) -> tuple[float, list[HotSpot], list[HotSpot]]:
    """(profiled CPU seconds, top functions by own time, top project functions by cumulative time)."""
    stats = pstats.Stats(str(dump))
    table = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in table.values()) or 1.0
    own = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:top]
    by_self = [HotSpot(_where(f, fn), tt / total, tt, nc) for (f, _, fn), (_, nc, tt, _, _) in own]
    project = [
        (key, value)
        for key, value in table.items()
        if key[0].startswith(str(REPO) + "/") and key[0][len(str(REPO)) + 1 :].startswith(PROJECT_DIRS)
    ]
    project.sort(key=lambda item: item[1][3], reverse=True)
    by_cumulative = [HotSpot(_where(f, fn), ct / total, ct, nc) for (f, _, fn), (_, nc, _, ct, _) in project[:top]]
    return total, by_self, by_cumulative
