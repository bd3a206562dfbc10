"""`slack-analyst usage`: the ledger's runs, failures, tokens, cost, code runs and ratings, as an
operator reads them in a terminal (table), a spreadsheet (CSV) or a script (JSON)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.feedback import FeedbackStore
from bot.store import Store
from bot.usage_report import parse_duration, summarise

DAY = 86400.0
MODEL = "claude-sonnet-5-5"  # $2 in, $10 out, $0.10 cache read per million tokens (bot/pricing.py)


def _populate(path: Path | str, now: float) -> None:
    """A week of ledger: U1 the top spender, U2 with a failure and a refusal, U3 who stopped one,
    a run from the terminal (no user or channel), and one run too old for the default window."""

    async def write() -> None:
        moment = [now]
        async with Store(path, clock=lambda: moment[0]) as store:

            async def run(ago_days: float, **fields: Any) -> int:
                moment[0] = now - ago_days * DAY
                return await store.create_run(**{"team_id": "T1", "model": MODEL, **fields})

            feedback = FeedbackStore(store)
            # U1 in #C1: $2 + $1 = $3.00, two days ago; rated 👍 by two people and 👎 by one.
            top = await run(
                2, source="mention", status="succeeded", user_id="U1", channel_id="C1",
                input_tokens=1_000_000, output_tokens=100_000, code_executions=4,
            )  # fmt: skip
            for person, rating in (("U7", "good"), ("U8", "good"), ("U9", "bad")):
                await feedback.rate(run_id=top, user_id=person, team_id="T1", rating=rating)
            await feedback.comment(run_id=top, user_id="U6", team_id="T1", comment="no rating, just words")
            # U2 in #C2: a failure ($0.20) on day 1 and a refusal (nothing spent) on day 3.
            await run(
                1, source="command", status="failed", user_id="U2", channel_id="C2",
                input_tokens=100_000, code_executions=1,
            )  # fmt: skip
            await run(3, source="command", status="refused", user_id="U2", channel_id="C2", model=None)
            # U3 in #C1: stopped after reading 1M cached tokens ($0.10), with one 👎.
            stopped = await run(
                3, source="dm", status="cancelled", user_id="U3", channel_id="C1", cache_read_tokens=1_000_000
            )
            await feedback.rate(run_id=stopped, user_id="U3", team_id="T1", rating="bad")
            # The terminal (`slack-analyst ask`): no user, no channel; $0.01.
            await run(1, source="cli", status="succeeded", output_tokens=1_000)
            # Ten days ago: outside the default 7 days.
            await run(10, source="mention", status="succeeded", user_id="U4", channel_id="C3", input_tokens=5_000_000)

    asyncio.run(write())


@pytest.fixture
def now() -> float:
    return time.time()


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, now: float, store_target: Path | str) -> Path | str:
    """ANALYST_DB (an SQLite file, then a PostgreSQL URL), populated; no Slack or Anthropic
    credentials in the environment."""
    monkeypatch.chdir(tmp_path)
    for name in ("ANTHROPIC_API_KEY", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANALYST_DB", str(store_target))
    _populate(store_target, now)
    return store_target


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["usage", *args])
    out, err = capsys.readouterr()
    return status, out, err


def _table_rows(out: str) -> dict[str, list[str]]:
    """The table's rows by their first cell (headings and rules left out)."""
    lines = out.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("---")]
    body = [*lines[rules[0] + 1 : rules[1]], lines[rules[1] + 1]]
    return {line.split()[0]: line.split()[1:] for line in body}


def test_the_default_table_lists_people_top_spender_first_with_totals(
    ledger: Path | str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(capsys)
    assert (status, err) == (0, "")
    assert out.startswith("Usage since ") and ", by user\n" in out.splitlines()[0] + "\n"
    assert out.splitlines()[2].split() == [
        "user", "runs", "ok", "failed", "stopped", "refused", "tokens", "est.", "cost", "code", "runs", "👍", "👎"
    ]  # fmt: skip
    rows = _table_rows(out)
    #                runs ok failed stopped refused tokens        cost        code 👍 👎
    assert rows == {
        "U1": ["1", "1", "0", "0", "0", "1,100,000", "$3.0000", "4", "2", "1"],
        "U2": ["1", "0", "1", "0", "1", "100,000", "$0.2000", "1", "0", "0"],
        "U3": ["1", "0", "0", "1", "0", "1,000,000", "$0.1000", "0", "0", "1"],
        "(none)": ["1", "1", "0", "0", "0", "1,000", "$0.0100", "0", "0", "0"],
        "total": ["4", "2", "1", "1", "1", "2,201,000", "$3.3100", "5", "2", "2"],
    }
    assert list(rows) == ["U1", "U2", "U3", "(none)", "total"]  # by cost, descending
    assert out.rstrip().endswith("code-execution container time is not included.")
    # Aligned: the rows, the totals line and the rules are equally wide, numbers right-aligned.
    table = out.splitlines()[3:10]
    assert len({len(line) for line in table}) == 1
    assert table[1].endswith("4   2   1") and table[-1].endswith("5   2   2")


def test_csv_by_channel(ledger: Path | str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "--by", "channel", "--format", "csv")
    assert status == 0
    records = list(csv.DictReader(io.StringIO(out)))
    assert list(records[0]) == [
        "channel", "runs", "succeeded", "failed", "cancelled", "refused",
        "tokens", "cost_usd", "code_executions", "thumbs_up", "thumbs_down",
    ]  # fmt: skip
    by_channel = {r["channel"]: r for r in records}
    assert [r["channel"] for r in records] == ["C1", "C2", "(none)", "total"]
    assert by_channel["C1"] == {
        "channel": "C1", "runs": "2", "succeeded": "1", "failed": "0", "cancelled": "1", "refused": "0",
        "tokens": "2100000", "cost_usd": "3.1", "code_executions": "4", "thumbs_up": "2", "thumbs_down": "2",
    }  # fmt: skip
    assert by_channel["C2"]["refused"] == "1" and by_channel["C2"]["failed"] == "1"
    assert by_channel["total"]["runs"] == "4" and by_channel["total"]["cost_usd"] == "3.31"


def test_json_by_day_runs_in_date_order(ledger: Path | str, now: float, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "--by", "day", "--format", "json")
    assert status == 0
    report = json.loads(out)
    assert report["by"] == "day"
    days = [time.strftime("%Y-%m-%d", time.gmtime(now - n * DAY)) for n in (3, 2, 1)]
    assert [row["day"] for row in report["rows"]] == days  # oldest first, UTC dates
    three_days_ago, two_days_ago, yesterday = report["rows"]
    assert (three_days_ago["runs"], three_days_ago["refused"], three_days_ago["cancelled"]) == (1, 1, 1)
    assert two_days_ago["cost_usd"] == 3.0 and two_days_ago["thumbs_up"] == 2
    assert (yesterday["runs"], yesterday["failed"], yesterday["tokens"]) == (2, 1, 101_000)
    assert report["totals"] == {
        "runs": 4, "succeeded": 2, "failed": 1, "cancelled": 1, "refused": 1, "tokens": 2_201_000,
        "cost_usd": 3.31, "code_executions": 5, "thumbs_up": 2, "thumbs_down": 2,
    }  # fmt: skip
    assert report["since"] < days[0]


def test_since_moves_the_window(ledger: Path | str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "--since", "2w", "--format", "json")
    report = json.loads(out)
    assert report["rows"][0]["user"] == "U4"  # ten days ago, $10: now the top spender
    assert report["totals"]["runs"] == 5

    _, out, _ = _run(capsys, "--since", "36h", "--format", "json")
    assert [row["user"] for row in json.loads(out)["rows"]] == ["U2", "(none)"]

    _, out, _ = _run(capsys, "--since", "90m", "--format", "json")
    assert json.loads(out)["rows"] == []


def test_nothing_in_the_window_says_so(ledger: Path | str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, "--since", "90m")
    assert (status, err) == (0, "")
    assert out.startswith("No runs since ") and out.rstrip().endswith(f"(UTC) in {ledger}.")

    # CSV and JSON stay well-formed on stdout; the note goes to stderr.
    status, out, err = _run(capsys, "--since", "90m", "--format", "csv")
    assert status == 0 and err.startswith("No runs since ")
    assert [r["user"] for r in csv.DictReader(io.StringIO(out))] == ["total"]
    status, out, err = _run(capsys, "--since", "90m", "--format", "json")
    assert status == 0 and err.startswith("No runs since ")
    assert json.loads(out)["totals"]["runs"] == 0


def test_an_empty_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANALYST_DB", str(tmp_path / "fresh.db"))

    async def create() -> None:
        async with Store(tmp_path / "fresh.db"):
            pass

    asyncio.run(create())
    status, out, _ = _run(capsys)
    assert status == 0 and out.startswith("No runs since ")


def test_no_database_is_an_error_and_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "data" / "analyst.db"
    monkeypatch.setenv("ANALYST_DB", str(missing))
    status, out, err = _run(capsys)
    assert (status, out) == (1, "")
    assert err == (
        f"slack-analyst: no database at {missing}: the bot creates it when it first runs; "
        "set ANALYST_DB to the file `serve` uses\n"
    )
    assert not missing.parent.exists()


def test_a_file_that_is_not_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a database, just text that is long enough to have a header\n" * 20)
    monkeypatch.setenv("ANALYST_DB", str(tmp_path / "notes.txt"))
    status, out, err = _run(capsys)
    assert (status, out) == (1, "")
    assert err.startswith(f"slack-analyst: could not read the ledger in {tmp_path / 'notes.txt'}: ")
    assert err.count("\n") == 1


def test_an_unreachable_postgresql_database_is_one_line_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    socket = tmp_path / "no-server-here"
    monkeypatch.setenv("ANALYST_DB", f"postgresql://bot:s3cret-pw@/analyst?host={socket}")
    status, out, err = _run(capsys)
    assert (status, out) == (1, "")
    assert err.startswith(f"slack-analyst: could not read the ledger in postgresql://bot:***@/analyst?host={socket}: ")
    assert err.count("\n") == 1 and "s3cret-pw" not in err


@pytest.mark.parametrize("since", ["7x", "7", "d", "0d", "-1d", "1.5h", ""])
def test_a_bad_since_is_one_line_and_exit_2(ledger: Path | str, capsys: pytest.CaptureFixture[str], since: str) -> None:
    status, out, err = _run(capsys, f"--since={since}")
    assert (status, out) == (2, "")
    assert err.startswith("slack-analyst: --since: ") and err.count("\n") == 1
    assert "7d" in err  # says what a good value looks like


def test_an_unknown_grouping_is_refused(ledger: Path | str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["usage", "--by", "team"])
    assert stopped.value.code == 2
    assert "invalid choice: 'team'" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "seconds"), [("90m", 5400), ("24h", 86400), ("7d", 604800), ("2w", 1209600)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_summarise_counts_refused_requests_apart_from_runs() -> None:
    row = {
        "user_id": "U1", "channel_id": "C1", "started_at": "2026-12-01T10:00:00.000Z", "model": MODEL,
        "input_tokens": 1_000_000, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0,
        "web_search_requests": 0, "code_executions": 2, "feedback_good": 0, "feedback_bad": 0,
    }  # fmt: skip
    rows, totals = summarise([{**row, "status": "succeeded"}, {**row, "status": "refused"}], "user")
    assert [(r.key, r.runs, r.refused, r.tokens, r.cost, r.code_executions) for r in rows] == [
        ("U1", 1, 1, 1_000_000, 2.0, 2)
    ]
    assert totals.key == "total" and totals.runs == 1
