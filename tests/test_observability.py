"""What an operator sees of the bot: /metrics, /healthz, JSON logs without secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.cli import main
from bot.limiter import ADAPTIVE_MAX_WIDTH, START_WIDTH
from bot.logs import TextFormatter, configure_logging, log_handler, run_context, secrets_in
from tests.conftest import STREAMING_CSV
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.scripts import Code, Text, scripted
from tests.fakes.slack import FakeSlack
from tests.harness import Harness


def quick_answer() -> Any:
    return scripted(Code("print(6 * 7)"), Text("The answer is 42."))


async def scrape(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()


async def healthz(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(url + "/healthz") as response:
        return response.status, await response.json()


def value(text: str, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels`` in a scrape (0 when absent, as Prometheus reads it)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Leaves the root logger as it found it (tests here configure it as the CLI does)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


# -- /metrics ----------------------------------------------------------------------------------


async def test_one_analysis_shows_in_metrics_as_the_ledger_records_it(harness: Harness, streaming_csv: bytes) -> None:
    before = await scrape(harness.running.url)
    assert value(before, "analyst_runs_total", status="succeeded", source="mention") == 0
    # ANALYST_MAX_CONCURRENT is unset: the limiter is adaptive, starting generous.
    assert value(before, "analyst_queue_slots") == START_WIDTH
    assert value(before, "analyst_limiter_ceiling") == ADAPTIVE_MAX_WIDTH
    assert value(before, "analyst_limiter_paused_seconds") == 0

    await harness.mention("what drives churn?", files=[harness.file("streaming.csv", streaming_csv)])
    text = await scrape(harness.running.url)
    assert value(text, "analyst_runs_total", status="succeeded", source="mention") == 1
    assert value(text, "analyst_run_duration_seconds_count") == 1
    assert value(text, "analyst_first_feedback_seconds_count") == 1
    [run] = await harness.running.analyst.store.all_runs()
    assert value(text, "analyst_tokens_total", kind="input") == run["input_tokens"]
    assert value(text, "analyst_tokens_total", kind="cache_read") == run["cache_read_tokens"]
    assert value(text, "analyst_tokens_total", kind="cache_write") == run["cache_write_tokens"]
    assert value(text, "analyst_tokens_total", kind="output") == run["output_tokens"] > 0
    assert value(text, "analyst_code_executions_total") == run["code_executions"] > 0
    assert value(text, "analyst_estimated_cost_dollars_total") > 0
    assert value(text, "analyst_files_uploaded_total") == 1
    assert value(text, "analyst_files_deduplicated_total") == 0
    assert value(text, "analyst_queue_running") == 0

    # The same file again, in a new thread: reused, not uploaded.
    await harness.mention("and by plan?", files=[harness.file("streaming.csv", streaming_csv)])
    text = await scrape(harness.running.url)
    assert value(text, "analyst_runs_total", status="succeeded", source="mention") == 2
    assert value(text, "analyst_files_uploaded_total") == 1
    assert value(text, "analyst_files_deduplicated_total") == 1


async def test_a_quota_refusal_is_counted_by_its_limit(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = quick_answer()
    async with Harness({**env, "ANALYST_RUNS_PER_HOUR": "1"}, slack, claude) as harness:
        await harness.mention("what is 6 times 7?")
        await harness.mention("and 7 times 8?")
        text = await scrape(harness.running.url)
    assert value(text, "analyst_quota_refusals_total", limit="ANALYST_RUNS_PER_HOUR") == 1
    assert value(text, "analyst_runs_total", status="succeeded", source="mention") == 1


async def test_slack_and_anthropic_errors_are_counted_by_kind(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = quick_answer()
    claude.fail_next("messages", status=529, retry_after=0)
    slack.fail_next("reactions.add", error="too_many_reactions")
    asked = await harness.mention("what is 6 times 7?")
    assert "The answer is 42." in harness.thread_text(asked)
    text = await scrape(harness.running.url)
    assert value(text, "analyst_errors_total", service="anthropic", kind="overloaded") == 1
    assert value(text, "analyst_errors_total", service="slack", kind="too_many_reactions") == 1


async def test_retention_deletions_are_counted(harness: Harness, streaming_csv: bytes) -> None:
    await harness.mention("what drives churn?", files=[harness.file("streaming.csv", streaming_csv)])
    analyst = harness.running.analyst
    await analyst.store.database.execute("UPDATE files SET created_at = '2000-01-01T00:00:00.000Z'")
    report = await analyst.sweeper.sweep_once()
    text = await scrape(harness.running.url)
    deleted = report.files_deleted + report.files_already_gone
    assert deleted >= 1
    assert value(text, "analyst_retention_deletions_total", what="file") == deleted


# -- /healthz ------------------------------------------------------------------------------------


async def test_healthz_reports_database_slack_and_limiter_and_503_without_a_database(harness: Harness) -> None:
    status, report = await healthz(harness.running.url)
    assert status == 200
    assert report["ok"] is True
    assert report["database"] == {"ok": True}
    assert report["slack"] == {"ok": True, "mode": "http"}
    assert report["limiter"] == {
        "running": 0,
        "waiting": 0,
        "slots": START_WIDTH,
        "ceiling": None,
        "max": ADAPTIVE_MAX_WIDTH,
        "paused_s": 0.0,
        "headroom": {},
    }

    await harness.running.analyst.store.close()  # the database is gone
    status, report = await healthz(harness.running.url)
    assert status == 503
    assert report["ok"] is False and report["database"] == {"ok": False}


async def test_socket_mode_serves_metrics_and_healthz_on_the_metrics_port(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = quick_answer()
    async with Harness(env, slack, claude, socket=True, metrics_port=0) as harness:
        url = harness.running.metrics_url
        status, report = await healthz(url)
        assert status == 200 and report["slack"] == {"ok": True, "mode": "socket"}
        _, envelope = slack.mention_event("C0DATA", "U0ALICE", "what is 6 times 7?")
        await slack.deliver_socket(envelope)
        await harness.settle()
        text = await scrape(url)
        assert value(text, "analyst_runs_total", status="succeeded", source="mention") == 1


async def test_the_healthcheck_command_probes_healthz(harness: Harness, root_logging: None) -> None:
    port = harness.running.url.rsplit(":", 1)[1]
    assert await asyncio.to_thread(main, ["healthcheck", "--http", "--port", port]) == 0
    await harness.running.analyst.store.close()
    assert await asyncio.to_thread(main, ["healthcheck", "--http", "--port", port]) == 1


# -- logs ----------------------------------------------------------------------------------------


async def test_json_logs_carry_the_run_and_never_a_secret_or_the_data(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, root_logging: None
) -> None:
    output = io.StringIO()
    env = {**env, "SLACK_APP_TOKEN": slack.app_token}  # set, so it would be in reach of a log line
    configure_logging("DEBUG", "json", secrets=secrets_in(env), stream=output)
    async with Harness(env, slack, claude) as harness:
        harness.env = env
        await harness.mention("what drives churn?", files=[harness.file("streaming.csv", STREAMING_CSV.read_bytes())])
        [run] = await harness.running.analyst.store.all_runs()
    logged = output.getvalue()
    lines = [json.loads(line) for line in logged.splitlines()]
    assert lines and all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    of_the_run = [line for line in lines if line.get("run_id") == run["id"]]
    assert of_the_run, "no log line carried the run's id"
    assert all(line["channel"] == "C0DATA" and line["user"] == "U0ALICE" for line in of_the_run)
    assert {line["logger"] for line in of_the_run} - {"bot.run"}  # lines of the engine, intake… too
    for secret in (slack.bot_token, slack.signing_secret, slack.app_token, claude.api_key):
        assert secret not in logged
    data_line = STREAMING_CSV.read_text().splitlines()[5]
    assert data_line not in logged


def test_the_redact_filter_removes_credentials_and_configured_secrets() -> None:
    output = io.StringIO()
    logger = logging.getLogger("tests.observability.redact")
    handler = log_handler("json", output, secrets=["a-signing-secret-value"])
    logger.addHandler(handler)
    try:
        logger.warning(
            "token %s and key %s and %s", "xoxb-1234-abcdefgh", "sk-ant-api03-abcdefghij", "a-signing-secret-value"
        )
        try:
            raise RuntimeError("failed with xapp-1-A0APP-12345678")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    logged = output.getvalue()
    for secret in ("xoxb-1234-abcdefgh", "sk-ant-api03-abcdefghij", "a-signing-secret-value", "xapp-1-A0APP-12345678"):
        assert secret not in logged
    assert "[redacted slack-token]" in logged and "[redacted secret]" in logged


def test_text_logs_for_people_show_the_run(root_logging: None) -> None:
    output = io.StringIO()
    handler = log_handler("text", output)
    logger = logging.getLogger("tests.observability.text")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with run_context(run_id=7, channel="C0DATA", user="U0ALICE"):
            logger.info("analysing")
        logger.info("idle")
    finally:
        logger.removeHandler(handler)
    first, second = output.getvalue().splitlines()
    assert first.endswith("INFO tests.observability.text: [run 7 C0DATA U0ALICE] analysing")
    assert second.endswith("INFO tests.observability.text: idle")


async def test_log_format_text_on_the_command_line(root_logging: None) -> None:
    # healthcheck against a port nothing listens on: it configures logging, then fails to connect.
    assert await asyncio.to_thread(main, ["--log-format", "text", "healthcheck", "--port", "1"]) == 1
    [handler] = logging.getLogger().handlers
    assert isinstance(handler.formatter, TextFormatter)
