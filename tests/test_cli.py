"""The command line as an operator uses it: real processes, real signals, the fakes."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bot.store import Store
from tests.conftest import STREAMING_CSV
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.postgres import PostgresServer
from tests.processes import LISTENING, free_port, start_cli, wait_for_line


async def test_a_missing_setting_stops_start_up_with_one_line(tmp_path: Path) -> None:
    process = await start_cli("serve", env={"SLACK_BOT_TOKEN": "xoxb-1"}, cwd=tmp_path)
    _, stderr = await process.communicate()
    assert process.returncode == 2
    assert stderr.decode() == "slack-analyst: ANTHROPIC_API_KEY: is not set\n"


async def test_a_malformed_setting_is_named(tmp_path: Path) -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "ANTHROPIC_API_KEY": "sk-ant-1"}
    process = await start_cli("serve", env={**env, "ANALYST_MAX_FILE_MB": "ten"}, cwd=tmp_path)
    _, stderr = await process.communicate()
    assert process.returncode == 2
    assert stderr.decode() == "slack-analyst: ANALYST_MAX_FILE_MB: should be a number, got 'ten'\n"


async def test_settings_are_read_from_a_dot_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=xoxb-1\nANTHROPIC_API_KEY=sk-ant-1\nANALYST_CODE_EXECUTION=1999\n")
    process = await start_cli("serve", "--http", env={"SLACK_SIGNING_SECRET": "s"}, cwd=tmp_path)
    _, stderr = await process.communicate()
    assert process.returncode == 2
    assert stderr.decode().startswith("slack-analyst: ANALYST_CODE_EXECUTION: unknown tool version '1999'")


async def test_a_postgresql_database_that_refuses_stops_start_up_with_one_line(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack, postgres_server: PostgresServer
) -> None:
    url = postgres_server.url("no_such_database").replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
    process = await start_cli("serve", "--http", env={**env, "ANALYST_DB": url, "PORT": "0"}, cwd=tmp_path)
    _, stderr = await process.communicate()
    text = stderr.decode()
    assert process.returncode == 1
    assert text.startswith(
        "slack-analyst: could not connect to the database postgresql://postgres:***@/no_such_database"
    )
    assert 'database "no_such_database" does not exist' in text and "Check ANALYST_DB" in text
    assert "s3cret" not in text and "Traceback" not in text and text.count("\n") == 1


async def test_a_database_file_that_cannot_be_created_stops_start_up_with_one_line(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack
) -> None:
    (tmp_path / "data").write_text("a file where the database's folder should be")
    db = tmp_path / "data" / "analyst.db"
    process = await start_cli("serve", "--http", env={**env, "ANALYST_DB": str(db), "PORT": "0"}, cwd=tmp_path)
    _, stderr = await process.communicate()
    text = stderr.decode()
    assert process.returncode == 1
    assert text.startswith(f"slack-analyst: could not open the database {db}: ") and "Check ANALYST_DB" in text
    assert "Traceback" not in text and text.count("\n") == 1


async def _mention_and_wait_for_the_answer(
    slack: FakeSlack, deliver: Callable[[dict[str, Any]], Awaitable[object]]
) -> None:
    csv = slack.host_file(name="streaming.csv", content=STREAMING_CSV.read_bytes())
    message, envelope = slack.mention_event("C0DATA", "U0ALICE", "what drives churn?", files=[csv])
    await deliver(envelope)
    await slack.wait_for(
        lambda: "white_check_mark" in slack.message("C0DATA", message["ts"]).reactions, timeout=60, what="the answer"
    )
    assert any("Free" in slack.visible_text(m) for m in slack.thread("C0DATA", message["ts"]))


async def test_serve_over_http_answers_a_mention_and_stops_cleanly_on_sigterm(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack
) -> None:
    port = free_port()
    process = await start_cli("serve", env={**env, "PORT": str(port)}, cwd=tmp_path)
    assert process.stderr is not None
    await wait_for_line(process.stderr, LISTENING, [])

    async def deliver(envelope: dict[str, Any]) -> None:
        status, _, _ = await slack.deliver_http(f"http://127.0.0.1:{port}/slack/events", envelope)
        assert status == 200

    await _mention_and_wait_for_the_answer(slack, deliver)
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), timeout=60)
    assert process.returncode == 0


async def test_serve_over_socket_mode(tmp_path: Path, env: dict[str, str], slack: FakeSlack) -> None:
    process = await start_cli("serve", env={**env, "SLACK_APP_TOKEN": slack.app_token}, cwd=tmp_path)
    await slack.wait_socket_connected(timeout=60)

    async def deliver(envelope: dict[str, Any]) -> None:
        ack = await slack.deliver_socket(envelope, timeout=30)
        assert ack["envelope_id"]

    await _mention_and_wait_for_the_answer(slack, deliver)
    process.send_signal(signal.SIGINT)
    await asyncio.wait_for(process.wait(), timeout=60)
    assert process.returncode == 0


async def test_ask_in_the_terminal(tmp_path: Path, claude: FakeAnthropic) -> None:
    env = {
        "ANTHROPIC_API_KEY": claude.api_key,
        "ANTHROPIC_BASE_URL": claude.base_url,
        "ANALYST_DB": str(tmp_path / "db.sqlite"),
    }
    process = await start_cli(
        "ask", str(STREAMING_CSV), "-q", "what drives churn?", "--out", str(tmp_path / "out"), env=env, cwd=tmp_path
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    output = stdout.decode()
    assert process.returncode == 0, stderr.decode()
    assert "▶ step 1" in output and re.search(r"Free\D{0,40}4\d(\.\d)?%", output)
    saved = tmp_path / "out" / "churn_by_tier.png"
    assert saved.read_bytes().startswith(b"\x89PNG")
    assert f"saved {saved}" in output
    # The notebook of the run beside the charts (tests/test_notebook.py reruns one).
    notebook = tmp_path / "out" / "analysis.ipynb"
    assert f"saved {notebook}" in output and '"nbformat": 4' in notebook.read_text()

    # The ledger follows the terminal run as it follows Slack's: code runs and files included.
    async with Store(tmp_path / "db.sqlite") as store:
        [run] = await store.all_runs()
        generated = [f for f in await store.files() if f["origin"] == "generated"]
    assert run["source"] == "cli" and run["status"] == "succeeded"
    assert run["code_executions"] >= 1 and run["input_tokens"] > 0
    assert run["files_out"] == len([p for p in (tmp_path / "out").iterdir() if p != notebook]) >= 1
    assert {f["filename"] for f in generated} >= {"churn_by_tier.png"}  # kept for the retention sweep


async def test_ask_refuses_a_file_it_cannot_read(tmp_path: Path, claude: FakeAnthropic) -> None:
    deck = tmp_path / "deck.pptx"
    deck.write_bytes(b"PK\x03\x04")
    env = {
        "ANTHROPIC_API_KEY": claude.api_key,
        "ANTHROPIC_BASE_URL": claude.base_url,
        "ANALYST_DB": str(tmp_path / "d"),
    }
    process = await start_cli("ask", str(deck), env=env, cwd=tmp_path)
    _, stderr = await process.communicate()
    assert process.returncode == 2
    assert "deck.pptx" in stderr.decode() and "CSV" in stderr.decode()
    assert claude.requests == []
