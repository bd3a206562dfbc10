"""The benchmark rig's reference bots (benchmarks/, otherwise not part of the test run) answer a
mention against the fakes, as separate processes: the naive tutorial bot and the do-nothing bot."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bots import NAIVE, NULL, BotSpec
from benchmarks.claude import fixed_time
from benchmarks.proc import BotProcess, free_port
from benchmarks.report import NOTES_BEGIN, NOTES_END, Results, kept_notes, render
from benchmarks.rig import Ask, bot_env
from benchmarks.scale import ScaleRun
from benchmarks.scenarios import LoadRun
from benchmarks.stats import median, percentile
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack


@pytest.mark.parametrize("spec", [NAIVE, NULL], ids=lambda spec: spec.key)
async def test_a_reference_bot_answers_a_mention(
    spec: BotSpec, slack: FakeSlack, claude: FakeAnthropic, tmp_path: Path
) -> None:
    claude.script = fixed_time(claude_s=0.01)
    port = free_port()
    env = {**bot_env(slack, claude, tmp_path / "analyst.db"), "PORT": str(port)}
    process = await BotProcess(spec.key, spec.command(port), env, tmp_path, port).start()
    try:
        csv = slack.host_file(name="churn.csv", content=b"customer_id,churned\n1,0\n2,1\n")
        message, envelope = slack.mention_event("C0DATA", "U0ALICE", "what drives churn?", files=[csv])
        status, _, _ = await slack.deliver_http(process.url + "/slack/events", envelope)
        assert status == 200

        def replies() -> list[str]:
            return [slack.visible_text(m) for m in slack.thread("C0DATA", message["ts"]) if m.bot_id]

        await slack.wait_for(lambda: bool(replies()), timeout=30, what=f"{spec.key}'s reply")
        assert "Overall churn is 29.1%" in replies()[0], process.log_tail()
        # The naive bot relays the file to the Files API; the do-nothing bot never touches it.
        assert len(claude.uploads) == (1 if spec is NAIVE else 0)
    finally:
        await process.stop()


def test_p99_of_fifty_samples_is_the_slowest_and_the_median_of_an_even_count_is_a_mean() -> None:
    samples = [float(k) for k in range(1, 51)]
    assert percentile(samples, 99) == 50.0
    assert percentile(samples, 50) == 25.0
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5


def test_a_new_results_file_keeps_the_notes_written_into_the_old_one() -> None:
    old = f"# Benchmark results\n| old table |\n\n{NOTES_BEGIN}\nWhy the cache share is low.\n{NOTES_END}\n"
    assert kept_notes(old) == f"{NOTES_BEGIN}\nWhy the cache share is low.\n{NOTES_END}"
    assert kept_notes("# Benchmark results\n") == ""


def test_the_rate_limited_and_replica_sections_say_what_was_measured() -> None:
    rate = {
        "analyses": 50, "finished": 50, "failed": 0, "late_acks": 0, "input_tokens_per_analysis": 75,
        "limit_per_window": 1875, "window_s": 60.0, "messages_requests": 57, "refused_429": 7,
        "retried_too_soon": 0, "windows": 2, "busiest_window_input_tokens": 1875, "minutes": 1.1,
    }  # fmt: skip
    scale = [
        ScaleRun("1 replica, SQLite", 200, 0, 2.0, 8.0, 200, 201, 201, 0, 1),
        ScaleRun("2 replicas, PostgreSQL", 200, 0, 2.0, 10.0, 200, 202, 202, 20, 2),
    ]
    options = {
        "argv": "--only rate,scale", "repeats": 1, "deadline_s": 60.0, "claude_s": 2.0, "steps": 0,
        "bots": ["analyst"], "profile_n": 200, "pinning": "",
    }  # fmt: skip
    text = render(Results(options, rate_limited=rate, scale=scale, machine=["test machine"]))
    assert "| 50/50 | 0 | 0 | 57 | 7 | 0 | 1,875 of 1,875 | 1.1 min | **pass** |" in text
    assert "| 1 replica, SQLite | 25% |" in text and "| 2 replicas, PostgreSQL | 20% |" in text
    assert "two replicas on PostgreSQL ≥ one on SQLite, exactly once: **miss**" in text


def test_a_missed_throughput_target_says_how_much_cpu_per_analysis_it_would_need() -> None:
    def load(bot: str, elapsed_s: float, cpu_ms: float, rig_ms: float) -> LoadRun:
        asks = []
        for number in range(200):
            ask = Ask("C0DATA", f"1.{number}", "U0ALICE", "reaction", sent=0.0, acked=0.01, ack_status=200)
            ask.first_write, ask.finished = 0.2, elapsed_s
            ask.done.set()
            asks.append(ask)
        return LoadRun(bot, 200, 0, 2.0, 60.0, asks, elapsed_s, 200 * cpu_ms / 1000, rig_cpu_s=200 * rig_ms / 1000)

    options = {
        "argv": "--only load", "repeats": 1, "deadline_s": 60.0, "claude_s": 2.0, "steps": 0,
        "bots": ["analyst_1000", "null"], "profile_n": 200, "pinning": "",
    }  # fmt: skip
    loads = [load("analyst_1000", 10.0, 40.0, 20.0), load("null", 2.5, 2.0, 3.0)]  # 20 % and 80 % of ideal
    text = render(Results(options, loads=loads, machine=["test machine"]))
    # 90 % of the ceiling (80 % of ideal) is 2 s of Claude time in 2.8 s: 13.9 ms of one core each.
    assert "finish 200 analyses within 2.8 s, so spend at most 13.9 ms of its one core on each" in text
    assert "(it spends 40 ms" in text
