"""The bots under test, as processes: the real bot (two configurations), the naive tutorial bot
and the do-nothing bot, each started the way an operator would start it."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.proc import BotProcess, free_port
from benchmarks.rig import DoneRule, Rig


@dataclass(frozen=True)
class BotSpec:
    key: str
    label: str
    argv: tuple[str, ...]  # "{port}" is replaced by the port it listens on
    done_rule: DoneRule
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/"

    def command(self, port: int) -> list[str]:
        return [part.replace("{port}", str(port)) for part in self.argv]


ANALYST_ARGV = (sys.executable, "-m", "bot", "serve", "--http", "--port", "{port}")
#: The real bot as shipped: every setting at its default.
ANALYST = BotSpec("analyst", "this bot, defaults", ANALYST_ARGV, "reaction", ready_path="/healthz")
#: The real bot with the per-process cap lifted (issue #11's second column).
ANALYST_UNCAPPED = BotSpec(
    "analyst_1000",
    "this bot, `ANALYST_MAX_CONCURRENT=1000`",
    ANALYST_ARGV,
    "reaction",
    env={"ANALYST_MAX_CONCURRENT": "1000"},
    ready_path="/healthz",
)
NAIVE = BotSpec("naive", "naive tutorial bot", (sys.executable, "-m", "benchmarks.naive_bot"), "reply")
NULL = BotSpec("null", "do-nothing bot (ceiling)", (sys.executable, "-m", "benchmarks.null_bot"), "reply")
ALL = (ANALYST, ANALYST_UNCAPPED, NAIVE, NULL)
BY_KEY = {spec.key: spec for spec in ALL}


async def start_bot(
    spec: BotSpec, rig: Rig, workdir: Path, *, cpu: set[int] | None, extra_env: dict[str, str] | None = None
) -> BotProcess:
    """Start ``spec`` on a free port in a fresh working directory (a fresh database too)."""
    port = free_port()
    db = workdir / "analyst.db"
    # A --workdir reused from an earlier invocation holds that run's database, whose claimed
    # event ids would turn this one's deliveries into duplicates: start it afresh.
    for leftover in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        leftover.unlink(missing_ok=True)
    env = {**rig.env(db), "PORT": str(port), **spec.env, **(extra_env or {})}
    process = BotProcess(spec.key, spec.command(port), env, workdir, port, ready_path=spec.ready_path, cpu=cpu)
    return await process.start()


def events_url(process: BotProcess) -> str:
    return process.url + "/slack/events"
