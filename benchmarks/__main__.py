"""python -m benchmarks: run the rig and write benchmarks/RESULTS.md (see benchmarks/README.md)."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import claude as fixed_claude
from benchmarks import report
from benchmarks.bots import ALL, ANALYST, ANALYST_UNCAPPED, BY_KEY, NAIVE, BotSpec
from benchmarks.profile_report import hot_spots
from benchmarks.rig import Rig, split_cpus
from benchmarks.scale import scale_runs
from benchmarks.scenarios import BotSession, cache_run, dedupe_run, load_run, memory_run, rate_limited_run

HERE = Path(__file__).resolve().parent
MEASURES = ("load", "memory", "dedupe", "cache", "rate", "scale", "profile")
QUICK = {"repeats": 1, "concurrency": "1,10,50", "sizes": "10", "deadline": 20.0}
FULL = {"repeats": 3, "concurrency": "1,10,50,200", "sizes": "10,100,400", "deadline": 60.0}


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 repeat; 1, 10, 50 at once; a 10 MB file; no profile")
    parser.add_argument("--repeats", type=int, help="repeats of each measure (full: 3)")
    parser.add_argument("--only", default=",".join(MEASURES), help=f"measures to run, of: {','.join(MEASURES)}")
    parser.add_argument("--bots", default=",".join(s.key for s in ALL), help="bots to compare (keys of bots.py)")
    parser.add_argument("--concurrency", help="simultaneous analyses per load run (full: 1,10,50,200)")
    parser.add_argument("--sizes", help="file sizes in MB for the memory measure (full: 10,100,400)")
    parser.add_argument("--deadline", type=float, help="seconds before a load run is cut off (full: 60)")
    parser.add_argument("--profile-n", type=int, default=200, help="simultaneous analyses of the profiled run")
    parser.add_argument("--claude-s", type=float, default=fixed_claude.CLAUDE_S, help="Claude time per analysis")
    parser.add_argument(
        "--steps", type=int, default=fixed_claude.STEPS, help="code steps per analysis (default: none; see claude.py)"
    )
    parser.add_argument("--no-pin", action="store_true", help="don't pin the rig and the bots to separate cores")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="where to write the results")
    parser.add_argument("--workdir", type=Path, help="keep the bots' databases and logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.quick and "--only" not in argv:
        args.only = ",".join(m for m in MEASURES if m != "profile")
    args.measures = [m for m in args.only.split(",") if m]
    unknown = set(args.measures) - set(MEASURES)
    if unknown:
        parser.error(f"unknown measure(s): {', '.join(sorted(unknown))}")
    args.specs = [BY_KEY[key] for key in args.bots.split(",") if key]
    return args


async def run(args: argparse.Namespace, argv: Sequence[str]) -> report.Results:
    rig_cpus, bot_cpus = (None, None) if args.no_pin else split_cpus()
    if rig_cpus:
        os.sched_setaffinity(0, rig_cpus)
    pinning = f", pinned to CPU {sorted(rig_cpus)}, the bots to CPU {sorted(bot_cpus or [])}" if rig_cpus else ""
    options = {
        "argv": shlex.join(argv),
        "repeats": args.repeats,
        "deadline_s": args.deadline,
        "claude_s": args.claude_s,
        "steps": args.steps,
        "bots": [s.key for s in args.specs],
        "profile_n": args.profile_n,
        "pinning": pinning,
    }
    results = report.Results(options)
    started = time.perf_counter()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="slack-analyst-bench-"))
    print(f"benchmarks: bots' databases and logs in {workdir}", flush=True)
    users = itertools.count(1)
    async with Rig(workdir, claude_s=args.claude_s, steps=args.steps) as rig:
        if "load" in args.measures:
            print("load: n analyses delivered at once", flush=True)
            for repeat in range(args.repeats):
                for spec in args.specs:
                    session = BotSession(rig, spec, workdir, bot_cpus, _log)
                    try:
                        for n in _ints(args.concurrency):
                            results.loads.append(await load_run(session, n, repeat, args.deadline, lambda: next(users)))
                    finally:
                        await session.close()
        if "memory" in args.measures:
            print("memory: peak RSS growth relaying one file", flush=True)
            for repeat in range(args.repeats):
                for spec in _present(args.specs, ANALYST, NAIVE):
                    for size in _ints(args.sizes):
                        results.memory.append(await memory_run(rig, spec, size, repeat, workdir, bot_cpus, _log))
        if "dedupe" in args.measures:
            print("dedupe: the same file asked about 10 times", flush=True)
            for spec in _present(args.specs, ANALYST, NAIVE):
                for mode in ("one after another", "all at once"):
                    results.dedupe.append(await dedupe_run(rig, spec, mode, workdir, bot_cpus, _log))
        if "cache" in args.measures and ANALYST in args.specs:
            print("cache: a 5-turn thread", flush=True)
            for repeat in range(args.repeats):
                results.cache.append(await cache_run(rig, repeat, workdir, bot_cpus, _log))
        if "rate" in args.measures:
            results.rate_limited = await rate_limited_run(rig, workdir, bot_cpus, _log)
            if results.rate_limited is None:
                print("rate: skipped (the fake Anthropic has no per-minute budget yet)", flush=True)
        if "scale" in args.measures:
            n = max(_ints(args.concurrency))
            print(f"scale: {n} at once, one process on SQLite, then two replicas on PostgreSQL", flush=True)
            results.scale = await scale_runs(rig, n, args.repeats, args.deadline, workdir, bot_cpus, _log)
        if "profile" in args.measures:
            print(f"profile: cProfile of the bot at {args.profile_n} at once", flush=True)
            dump = workdir / "analyst.prof"
            profiled = BotSpec(
                "analyst_profiled",
                ANALYST_UNCAPPED.label,
                (sys.executable, "-m", "benchmarks.profiled", str(dump), "bot", "serve", "--http", "--port", "{port}"),
                "reaction",
                env=ANALYST_UNCAPPED.env,
                ready_path="/healthz",
            )
            session = BotSession(rig, profiled, workdir, bot_cpus, _log)
            try:
                process = await session.ensure()  # started and warmed up: now profile
                os.kill(process.pid, signal.SIGUSR1)
                profiled_run = await load_run(
                    session, args.profile_n, 0, max(args.deadline, 120.0), lambda: next(users)
                )
                os.kill(process.pid, signal.SIGUSR2)
                await _wait_for_file(dump)
            finally:
                await session.close()
            results.profile = hot_spots(dump)
            results.profile_note = (
                f"Under the profiler that run reached {profiled_run.percent_of_ideal:.0f}% of ideal with "
                f"{1000 * profiled_run.cpu_per_analysis_s:.0f} ms CPU per analysis (cProfile's own overhead "
                "included), so read the shares, not the seconds."
            )
    results.seconds = time.perf_counter() - started
    return results


async def _wait_for_file(path: Path, limit_s: float = 60.0) -> None:
    """Poll until the profiled process has written its stats (it does so between two events)."""
    deadline = time.perf_counter() + limit_s
    while not path.exists() and time.perf_counter() < deadline:  # noqa: ASYNC110 - another process's file
        await asyncio.sleep(0.1)


def _present(specs: list[BotSpec], *wanted: BotSpec) -> list[BotSpec]:
    return [spec for spec in wanted if spec in specs]


def _log(line: str) -> None:
    print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    results = asyncio.run(run(args, argv))
    report.write(results, args.out)
    print(f"benchmarks: wrote {args.out} ({results.seconds / 60:.1f} minutes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
