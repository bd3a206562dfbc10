"""Turns the scenarios' measurements into benchmarks/RESULTS.md: the machine, the tables with
median and spread over repeats, the ratio to the naive baseline, the targets, and, where a
target is missed, why and what comes next."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.bots import ALL, ANALYST, ANALYST_UNCAPPED, NAIVE, NULL
from benchmarks.profile_report import HotSpot
from benchmarks.rig import REPO
from benchmarks.scale import RETRIED_SHARE, ScaleRun
from benchmarks.scenarios import CacheRun, DedupeRun, LoadRun, MemoryRun
from benchmarks.stats import median, percentile, spread

ACK_P99_MS = 50.0
FEEDBACK_P99_MS = 300.0
CPU_PER_ANALYSIS_MS = 100.0
RSS_GROWTH_MB = 64.0
RSS_TARGET_SIZE_MB = 400
THROUGHPUT_OF_CEILING = 90.0
THROUGHPUT_TARGET_N = 200
UPLOADS_PER_FILE = 1
CACHED_SHARE = 70.0
#: The "50 simultaneous deliveries" of the ack and feedback targets.
ACK_N = 50


@dataclass
class Results:
    options: dict[str, Any]
    loads: list[LoadRun] = field(default_factory=list)
    memory: list[MemoryRun] = field(default_factory=list)
    dedupe: list[DedupeRun] = field(default_factory=list)
    cache: list[CacheRun] = field(default_factory=list)
    rate_limited: dict[str, Any] | None = None
    scale: list[ScaleRun] = field(default_factory=list)
    profile: tuple[float, list[HotSpot], list[HotSpot]] | None = None
    profile_note: str = ""
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: The machine and the commit, read when the run starts (the tree may change while it runs).
    machine: list[str] = field(default_factory=lambda: machine())
    seconds: float = 0.0

    def runs(self, bot: str, n: int) -> list[LoadRun]:
        return [r for r in self.loads if r.bot == bot and r.n == n]

    def ack_n(self) -> int | None:
        sizes = sorted({r.n for r in self.loads})
        fitting = [n for n in sizes if n <= ACK_N]
        return fitting[-1] if fitting else None


# -- formatting ------------------------------------------------------------------------------


def _num(value: float, digits: int = 0) -> str:
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞"
    return f"{value:,.{digits}f}"


def _spread_text(values: Sequence[float], digits: int = 0, unit: str = "") -> str:
    """median [min–max]unit, or just the value for one repeat."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "—"
    middle = median(finite)
    low, high = spread(finite)
    if len(finite) == 1 or _num(low, digits) == _num(high, digits):
        return f"{_num(middle, digits)}{unit}"
    return f"{_num(middle, digits)}{unit} [{_num(low, digits)}–{_num(high, digits)}]"


def _ratio(value: float, baseline: float) -> str:
    if math.isnan(value) or math.isnan(baseline) or baseline == 0 or math.isinf(baseline):
        return "—"
    ratio = value / baseline
    return f"{ratio:.2g}×"


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("**pass**" if ok else "**miss**")


def machine() -> list[str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = ""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return [
        f"- Machine: {os.cpu_count()} cores ({cpu}), {memory}; {platform.platform()}; "
        f"load average at the start {load} (1, 5, 15 min: other work on the machine shares its cores)",
        f"- Python {platform.python_version()} ({sys.executable})",
        f"- Commit: `{commit or 'unknown'}`{' with uncommitted changes' if dirty else ''}",
    ]


# -- per-measure values, one per repeat ------------------------------------------------------


def _per_repeat(results: Results, bot: str, n: int | None, value: Callable[[LoadRun], float]) -> list[float]:
    if n is None:
        return []
    return [value(r) for r in results.runs(bot, n)]


def _ack_p99_ms(run: LoadRun) -> float:
    return 1000 * percentile(run.ack_s, 99) if run.ack_s else math.inf


def _feedback_p99_ms(run: LoadRun) -> float:
    # An ask that saw no feedback at all by the deadline counts as infinitely late.
    waits = [a.feedback_s if not math.isnan(a.first_write) else math.inf for a in run.asks]
    return 1000 * percentile(waits, 99)


def _cpu_ms(run: LoadRun) -> float:
    return 1000 * run.cpu_per_analysis_s


def _rig_cpu_ms(run: LoadRun) -> float:
    return 1000 * run.rig_cpu_per_analysis_s


def _overhead_ms(run: LoadRun) -> float:
    return 1000 * median(run.overhead_s) if run.overhead_s else math.nan


def _late_text(values: Sequence[float], deadline_s: float) -> str:
    if values and all(math.isinf(v) for v in values):
        return f"> {deadline_s:.0f} s (none by the deadline)"
    return _spread_text(values, 0, " ms")


# -- the document ----------------------------------------------------------------------------


def render(results: Results) -> str:
    opts = results.options
    deadline = float(opts["deadline_s"])
    bots = [spec for spec in ALL if spec.key in opts["bots"]]
    n50 = results.ack_n()
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python -m benchmarks {opts['argv']}` on {results.started:%Y-%m-%d %H:%M} UTC; "
        f"the run took {results.seconds / 60:.1f} minutes; load average at the end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}.",
        "",
        *results.machine,
        f"- Rig: fake Slack and fake Anthropic in the rig's process{opts['pinning']}; every bot a separate "
        f"process started per configuration (fresh database) and warmed up with one analysis before "
        f"measuring. One analysis = {opts['claude_s']:g} s of Claude time ({opts['steps']} code steps, "
        f"then the fake stalls until {opts['claude_s']:g} s have passed). {opts['repeats']} repeat(s); "
        f"figures are the median over repeats with [lowest–highest] when they differ. A run that has "
        f"not finished {deadline:.0f} s after its deliveries is cut off there.",
        "",
        "## Targets",
        "",
        "| measure | target | " + " | ".join(spec.label for spec in bots) + " | ratio to naive | verdict |",
        "|---|---|" + "---|" * len(bots) + "---|---|",
    ]
    missed: list[str] = []

    def row(measure: str, target: str, values: dict[str, str], ratio: str, ok: bool | None) -> None:
        cells = " | ".join(values.get(spec.key, "—") for spec in bots)
        lines.append(f"| {measure} | {target} | {cells} | {ratio} | {_verdict(ok)} |")

    def medians(fn: Callable[[LoadRun], float], n: int | None) -> dict[str, float]:
        return {spec.key: median(_per_repeat(results, spec.key, n, fn)) for spec in bots}

    # ack latency and first feedback at 50 simultaneous deliveries
    if n50 is not None:

        def target_row(
            measure: str, target: str, limit: float, per_run: Callable[[LoadRun], float],
            text: Callable[[list[float]], str], name: str,
        ) -> None:  # fmt: skip
            assert n50 is not None
            per_bot = {spec.key: _per_repeat(results, spec.key, n50, per_run) for spec in bots}
            middle = medians(per_run, n50)
            ok = _all_below(middle, limit)
            ratio = _ratio(middle.get(ANALYST.key, math.nan), middle.get(NAIVE.key, math.nan))
            row(measure, target, {k: text(v) for k, v in per_bot.items()}, ratio, ok)
            if ok is False:
                missed.append(name)

        target_row(
            f"ack latency p99, {n50} simultaneous deliveries", f"< {ACK_P99_MS:.0f} ms", ACK_P99_MS,
            _ack_p99_ms, lambda v: _spread_text(v, 0, " ms"), "ack",
        )  # fmt: skip
        target_row(
            f"event → first visible feedback p99, {n50} at once", f"< {FEEDBACK_P99_MS:.0f} ms", FEEDBACK_P99_MS,
            _feedback_p99_ms, lambda v: _late_text(v, deadline), "feedback",
        )  # fmt: skip
        target_row(
            f"bot CPU per analysis (/proc), {n50} at once", f"< {CPU_PER_ANALYSIS_MS:.0f} ms", CPU_PER_ANALYSIS_MS,
            _cpu_ms, lambda v: _spread_text(v, 0, " ms"), "cpu",
        )  # fmt: skip
        calls = {spec.key: _per_repeat(results, spec.key, n50, lambda r: r.calls_per_analysis[0]) for spec in bots}
        requests = {spec.key: _per_repeat(results, spec.key, n50, lambda r: r.calls_per_analysis[1]) for spec in bots}
        row(
            f"Slack calls / Anthropic requests per analysis, {n50} at once",
            "(informative)",
            {
                k: f"{_num(median(calls[k]), 1)} / {_num(median(requests[k]), 1)}"
                for k in calls
                if calls[k] and not math.isnan(median(calls[k]))
            },
            "—",
            None,
        )
    if 1 in {r.n for r in results.loads}:
        overhead = {spec.key: _per_repeat(results, spec.key, 1, _overhead_ms) for spec in bots}
        mid = medians(_overhead_ms, 1)
        row(
            "wall time per analysis less Claude time, one at a time",
            "(informative)",
            {k: _spread_text(v, 0, " ms") for k, v in overhead.items()},
            _ratio(mid.get(ANALYST.key, math.nan), mid.get(NAIVE.key, math.nan)),
            None,
        )

    # memory
    for size in sorted({m.megabytes for m in results.memory}):
        growth = {
            spec.key: [m.growth_mb for m in results.memory if m.bot == spec.key and m.megabytes == size]
            for spec in bots
        }
        answered = all(m.ok for m in results.memory if m.megabytes == size)
        mid = {k: median(v) for k, v in growth.items() if v}
        ok = _all_below(mid, RSS_GROWTH_MB) if size == RSS_TARGET_SIZE_MB else None
        row(
            f"peak RSS growth relaying a {size} MB file" + ("" if answered else " (not every run answered)"),
            f"< {RSS_GROWTH_MB:.0f} MB at {RSS_TARGET_SIZE_MB} MB",
            {k: _spread_text(v, 1, " MB") for k, v in growth.items() if v},
            _ratio(mid.get(ANALYST.key, math.nan), mid.get(NAIVE.key, math.nan)),
            ok,
        )
        if ok is False:
            missed.append("memory")

    # dedupe
    for mode in dict.fromkeys(d.mode for d in results.dedupe):
        uploads = {d.bot: d.uploads for d in results.dedupe if d.mode == mode}
        ok = uploads.get(ANALYST.key, 0) <= UPLOADS_PER_FILE if ANALYST.key in uploads else None
        row(
            f"Files API uploads for the same file asked 10 times, {mode}",
            f"{UPLOADS_PER_FILE}",
            {k: str(v) for k, v in uploads.items()},
            _ratio(float(uploads.get(ANALYST.key, math.nan)), float(uploads.get(NAIVE.key, math.nan))),
            ok,
        )
        if ok is False:
            missed.append("dedupe")

    # cache
    if results.cache:
        later = [min(run.shares[2:]) * 100 for run in results.cache if len(run.shares) >= 3]
        ok = bool(later) and median(later) >= CACHED_SHARE
        per_turn = " / ".join(
            _spread_text([100 * run.shares[t] for run in results.cache], 0, "%") for t in range(len(FIVE_TURNS))
        )
        row(
            "cached share of input tokens, 5-turn thread (turns 1–5)",
            f"≥ {CACHED_SHARE:.0f}% from turn 3",
            {ANALYST.key: per_turn, NAIVE.key: "no history"},
            "—",
            ok,
        )
        if not ok:
            missed.append("cache")

    # throughput summary row
    sizes = sorted({r.n for r in results.loads})
    if THROUGHPUT_TARGET_N in sizes:
        target_ok = _throughput_ok(results)
        row(
            f"throughput at {THROUGHPUT_TARGET_N} at once, % of ceiling, 0 errors",
            f"≥ {THROUGHPUT_OF_CEILING:.0f}%",
            {
                spec.key: _of_ceiling_text(results, spec.key, THROUGHPUT_TARGET_N)
                for spec in bots
                if spec.key != NULL.key
            },
            _ratio(_pct(results, ANALYST.key, THROUGHPUT_TARGET_N), _pct(results, NAIVE.key, THROUGHPUT_TARGET_N)),
            target_ok,
        )
        if target_ok is False:
            missed.append("throughput")

    lines += ["", *_throughput_section(results, bots, sizes, deadline)]
    lines += _rate_limited_section(results)
    lines += _scale_section(results)
    lines += _profile_section(results)
    lines += _missed_section(results, missed, n50)
    return "\n".join(lines) + "\n"


FIVE_TURNS = range(5)


def _all_below(values: dict[str, float], limit: float) -> bool | None:
    """The verdict is the real bot's (in every configuration run)."""
    ours = [v for k, v in values.items() if k in (ANALYST.key, ANALYST_UNCAPPED.key) and not math.isnan(v)]
    return None if not ours else all(v < limit for v in ours)


def _pct(results: Results, bot: str, n: int) -> float:
    return median([r.percent_of_ideal for r in results.runs(bot, n)])


def _of_ceiling(results: Results, bot: str, n: int) -> float:
    ceiling = _pct(results, NULL.key, n)
    return 100 * _pct(results, bot, n) / ceiling if ceiling else math.nan


def _of_ceiling_text(results: Results, bot: str, n: int) -> str:
    errors = max((r.errors for r in results.runs(bot, n)), default=0)
    return f"{_num(_of_ceiling(results, bot, n))}%, {errors} errors"


def _throughput_ok(results: Results) -> bool | None:
    verdicts = []
    for bot in (ANALYST.key, ANALYST_UNCAPPED.key):
        runs = results.runs(bot, THROUGHPUT_TARGET_N)
        if runs and results.runs(NULL.key, THROUGHPUT_TARGET_N):
            errors = max(r.errors for r in runs)
            verdicts.append(_of_ceiling(results, bot, THROUGHPUT_TARGET_N) >= THROUGHPUT_OF_CEILING and errors == 0)
    return None if not verdicts else all(verdicts)


def _throughput_section(results: Results, bots: list[Any], sizes: list[int], deadline: float) -> list[str]:
    lines = [
        "## Throughput",
        "",
        f"Analyses completed per second as a % of ideal (n analyses every {results.options['claude_s']:g} s: "
        "all at once, no overhead); each cell is the median [lowest–highest] over repeats, then the worst "
        "repeat's failures (an answer that failed, or an ack later than Slack's 3 s) and the analyses "
        f"still unfinished at the {deadline:.0f} s cut-off, then the bot's CPU per analysis and the rig's "
        "(the fakes serving that bot's calls, on the rig's own core).",
        "",
        "| simultaneous analyses | " + " | ".join(spec.label for spec in bots) + " |",
        "|---|" + "---|" * len(bots),
    ]
    for n in sizes:
        cells = []
        for spec in bots:
            runs = results.runs(spec.key, n)
            if not runs:
                cells.append("—")
                continue
            failed = max(r.failed for r in runs)
            unfinished = max(r.unfinished for r in runs)
            notes = []
            if failed:
                notes.append(f"{failed} failed")
            if unfinished:
                notes.append(f"{unfinished} unfinished")
            # A run cut off at the deadline spent CPU on analyses it never finished: no per-analysis figure.
            cpu = median([_cpu_ms(r) for r in runs if not r.unfinished])
            rig_cpu = median([_rig_cpu_ms(r) for r in runs if not r.unfinished])
            cell = _spread_text([r.percent_of_ideal for r in runs], 0, "%")
            if spec.key != NULL.key and results.runs(NULL.key, n):
                cell += f" ({_num(_of_ceiling(results, spec.key, n))}% of ceiling)"
            cell += "; " + (", ".join(notes) if notes else "0 errors")
            cell += f"; {_num(cpu)} ms CPU, rig {_num(rig_cpu)} ms" if not math.isnan(cpu) else "; cut off"
            cells.append(cell)
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _rate_limited_section(results: Results) -> list[str]:
    """The fake Anthropic refuses (429, ``retry-after``) once a window's input tokens run out."""
    r = results.rate_limited
    if r is None:
        return []
    ok = r["failed"] == 0 and r["retried_too_soon"] == 0 and r["finished"] == r["analyses"]
    lines = [
        "## Rate-limited scenario",
        "",
        f"{r['analyses']} analyses at once against a fake Anthropic that allows {r['limit_per_window']:,} input "
        f"tokens per {r['window_s']:.0f} s window (about half of what they need; one analysis takes about "
        f"{r['input_tokens_per_analysis']:,}) and answers 429 `rate_limit_error` with `retry-after` beyond it.",
        "",
        "| finished | failed | late acks | Messages requests | answered 429 | retried sooner than `retry-after` "
        "| busiest window's input tokens | took | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {r['finished']}/{r['analyses']} | {r['failed']} | {r['late_acks']} | {r['messages_requests']} | "
        f"{r['refused_429']} | {r['retried_too_soon']} | {r['busiest_window_input_tokens']:,} of "
        f"{r['limit_per_window']:,} | {r['minutes']} min | {_verdict(ok)} |",
    ]
    return [*lines, ""]


def _scale_section(results: Results) -> list[str]:
    """Issue #12's figure: two replicas on PostgreSQL reach at least one process on SQLite."""
    if not results.scale:
        return []
    n = results.scale[0].n
    lines = [
        "## Several replicas",
        "",
        f"{n} analyses at once, each from its own person with its own CSV: one process on SQLite, then two "
        "replicas on one PostgreSQL (the suite's throwaway server, `fsync` off) receiving them round-robin, "
        f"with one in {RETRIED_SHARE} delivered again at the other replica as a Slack retry. Both replicas "
        "share the bots' CPU set, so this says whether sharing the work through the database costs "
        "throughput, not how it scales with cores (`benchmarks/scale.py`).",
        "",
        "| setup | % of ideal | succeeded | runs in the ledger / messages / expected | exactly once |",
        "|---|---|---|---|---|",
    ]
    for setup in dict.fromkeys(r.setup for r in results.scale):
        runs = [r for r in results.scale if r.setup == setup]
        percent = [r.percent_of_ideal for r in runs]
        lines.append(
            f"| {setup} | {_spread_text(percent, unit='%')} | "
            f"{min(r.succeeded for r in runs)}/{n} (worst repeat) | "
            + ", ".join(f"{r.runs} / {r.distinct_messages} / {r.expected_runs}" for r in runs)
            + f" | {'yes' if all(r.exactly_once for r in runs) else '**no**'} |"
        )
    single = [r.percent_of_ideal for r in results.scale if r.setup.startswith("1 ")]
    double = [r.percent_of_ideal for r in results.scale if not r.setup.startswith("1 ")]
    if single and double:
        ok = median(double) >= median(single) and all(r.exactly_once for r in results.scale)
        verdict = _verdict(ok)
        lines += ["", f"Target: two replicas on PostgreSQL ≥ one on SQLite, exactly once: {verdict}."]
    return [*lines, ""]


def _profile_section(results: Results) -> list[str]:
    if results.profile is None:
        return []
    total, by_self, by_cumulative = results.profile
    lines = [
        "## Where the bot's CPU goes",
        "",
        f"cProfile of the bot process (`this bot, ANALYST_MAX_CONCURRENT=1000`) during one "
        f"{results.options['profile_n']}-way run (start-up and warm-up left out), counting the main "
        f"thread's CPU time (`benchmarks/profiled.py`): {total:.1f} CPU seconds profiled. {results.profile_note}",
        "",
        "Top functions by own CPU time:",
        "",
        "| function | share of CPU | seconds | calls |",
        "|---|---|---|---|",
        *[f"| `{h.where}` | {100 * h.share:.1f}% | {h.seconds:.2f} | {h.calls:,} |" for h in by_self],
        "",
        "The bot's own functions by cumulative CPU time (each includes what it calls, so shares overlap):",
        "",
        "| function | share of CPU | seconds | calls |",
        "|---|---|---|---|",
        *[f"| `{h.where}` | {100 * h.share:.1f}% | {h.seconds:.2f} | {h.calls:,} |" for h in by_cumulative],
        "",
    ]
    return lines


def _missed_section(results: Results, missed: list[str], n50: int | None) -> list[str]:
    lines = ["## Where a target is missed: why, and what comes next", ""]
    if not missed:
        return [*lines, "Every target measured here holds.", ""]
    cpu_ms = median(_per_repeat(results, ANALYST_UNCAPPED.key, n50, _cpu_ms)) if n50 else math.nan
    claude_s = float(results.options["claude_s"])
    ack_floor = median(_per_repeat(results, NULL.key, n50, _ack_p99_ms)) if n50 else math.nan
    big = THROUGHPUT_TARGET_N
    big_cpu_ms = median(_per_repeat(results, ANALYST_UNCAPPED.key, big, _cpu_ms))
    big_rig_ms = median(_per_repeat(results, ANALYST_UNCAPPED.key, big, _rig_cpu_ms))
    null_rig_ms = median(_per_repeat(results, NULL.key, big, _rig_cpu_ms))
    rig_s = big * big_rig_ms / 1000
    rig_bound = 100 * claude_s / max(claude_s, rig_s) if not math.isnan(rig_s) else math.nan
    ceiling = _pct(results, NULL.key, big)
    rig_bound_of_ceiling = 100 * rig_bound / ceiling if ceiling else math.nan
    # The wall time the target allows, all of which the bot's one core could spend on the work.
    needed_s = claude_s / (THROUGHPUT_OF_CEILING / 100 * ceiling / 100) if ceiling else math.nan
    needed_ms = 1000 * needed_s / big
    notes = {
        "ack": "A signed event is acknowledged before Bolt dispatches it, but its request still waits for the "
        "event loop, busy with the deliveries before it and the analyses they started (see the CPU per "
        f"analysis and the profile). The do-nothing bot's p99 in the same run was {_num(ack_floor)} ms: the "
        "rig's own sending and timing of 50 deliveries on its one core (which serves the bot's calls "
        "meanwhile) is part of every figure. Next: less CPU per analysis.",
        "feedback": "The first visible write (the :eyes: reaction) comes once the event is claimed, the "
        "thread's lock taken and the request admitted (three transactions, which a burst shares through "
        "SQLite's group commit, alongside the asker's users.info lookup), each step queueing behind the same "
        "CPU work on the one event loop. Next: as for acks.",
        "cpu": f"The real bot spends {_num(cpu_ms)} ms of CPU per analysis; one core then serves at most "
        f"{_num(1000 / cpu_ms if cpu_ms else math.nan, 1)} analyses a second, against the "
        f"{_num(THROUGHPUT_TARGET_N / claude_s)} a second that {THROUGHPUT_TARGET_N} analyses of "
        f"{claude_s:g} s need. The profile above names where it goes; those hot spots are the next work.",
        "memory": "A relayed file grows the bot's memory beyond the target: find the copy in memory (download, "
        "hash or upload) with the profile of a single big relay.",
        "dedupe": "The same bytes were uploaded more than once: concurrent asks race past the hash lookup. Next: "
        "claim the hash before uploading (one upload in flight per content).",
        "cache": "Follow-ups read less than the target from the cache: check where the previous request's "
        "breakpoint sits against the 20-block lookback.",
        "throughput": f"At {THROUGHPUT_TARGET_N} at once the real bot reaches less than "
        f"{THROUGHPUT_OF_CEILING:.0f}% of the ceiling; all {THROUGHPUT_TARGET_N} run at once (the adaptive "
        "limiter), so two CPUs bound it. The bot's: "
        f"{_num(big_cpu_ms)} ms per analysis, {_num(THROUGHPUT_TARGET_N * big_cpu_ms / 1000, 1)} s of one core "
        f"for {THROUGHPUT_TARGET_N} analyses that ideally take {claude_s:g} s. The rig's: its fakes spend "
        f"{_num(big_rig_ms)} ms serving one analysis's calls (the do-nothing bot's one call each: "
        f"{_num(null_rig_ms)} ms), so on its one core even a bot that cost nothing would reach at most "
        f"{_num(rig_bound)}% of ideal here, {_num(rig_bound_of_ceiling)}% of the ceiling. To reach the target the "
        f"bot would have to finish {THROUGHPUT_TARGET_N} analyses within {_num(needed_s, 1)} s, so spend at most "
        f"{_num(needed_ms, 1)} ms of its one core on each (it spends {_num(big_cpu_ms)} ms, about half of it in "
        "its two Anthropic SDK requests and ten Slack Web API calls). That needs more than this machine's two "
        "cores: replicas (#12, the scale figure) on more cores. Next here: fewer calls per analysis, less CPU "
        "per call.",
    }
    for key in missed:
        lines.append(f"- **{key}**: {notes[key]}")
    return [*lines, ""]


NOTES_BEGIN = "<!-- notes:begin (kept by the next run) -->"
NOTES_END = "<!-- notes:end -->"


def kept_notes(previous: str) -> str:
    """The hand-written notes of an earlier RESULTS.md, markers included ("" if none)."""
    start, end = previous.find(NOTES_BEGIN), previous.find(NOTES_END)
    if start < 0 or end < start:
        return ""
    return previous[start : end + len(NOTES_END)]


def write(results: Results, path: Path) -> None:
    """Write RESULTS.md, keeping the notes section of the one it replaces."""
    notes = kept_notes(path.read_text()) if path.exists() else ""
    text = render(results)
    path.write_text(text + ("\n" + notes + "\n" if notes else ""))
